"""pgrad.export: the exported ONNX and TorchScript files act as ``agent.predict`` does.

The files are run in a separate interpreter in which ``import pgrad`` fails, by
onnxruntime and by ``torch.jit.load``, on 1,000 observations sampled from each agent's
observation space; discrete actions must be identical and continuous ones within 1e-5.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgrad
from pgrad.errors import PgradError

pytest.importorskip("onnx", reason="ONNX export needs the export extra (pgrad[export])")
pytest.importorskip("onnxscript", reason="ONNX export needs the export extra (pgrad[export])")
pytest.importorskip("onnxruntime", reason="running ONNX files needs onnxruntime (pgrad[export])")
# torch 2.13 deprecates TorchScript in favour of torch.export; loading it is what we test.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

BOX = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
SAMPLES = 1000
FORMATS = ("onnx", "torchscript")


def _agent(obs_space: gym.Space, action_space: gym.Space, **kwargs: object) -> pgrad.Reinforce:
    """An untrained agent with large random weights, so that its actions vary with the
    observation and reach past the action bounds (clip and tanh saturate)."""
    agent = pgrad.Reinforce(None, _spaces=(obs_space, action_space), seed=0,
                            hidden_sizes=(16, 16), **kwargs)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in agent.policy.parameters():
            std = 2.0 / param.shape[-1] ** 0.5 if param.dim() == 2 else 0.5
            param.normal_(0.0, std, generator=generator)
    return agent


def _normalised_agent() -> pgrad.Reinforce:
    agent = _agent(BOX, gym.spaces.Discrete(4), normalize_obs=True, obs_clip=5.0)
    rms = agent.policy.obs_rms
    assert rms is not None
    # Running statistics far from (0, 1), and one feature whose scaled values pass the clip.
    data = torch.randn(500, 3, generator=torch.Generator().manual_seed(2))
    rms.update(data * torch.tensor([1.0, 0.05, 2.0]) + torch.tensor([0.0, 0.6, -1.0]))
    return agent


AGENTS = {
    "discrete": lambda: _agent(BOX, gym.spaces.Discrete(3, start=2)),
    "box-clip": lambda: _agent(BOX, gym.spaces.Box(-0.5, 0.5, shape=(2, 2), dtype=np.float32)),
    "box-tanh": lambda: _agent(BOX, gym.spaces.Box(np.array([-2.0, 0.0], dtype=np.float32),
                                                   np.array([2.0, 5.0], dtype=np.float32)),
                               action_bound="tanh"),
    "multidiscrete": lambda: _agent(BOX, gym.spaces.MultiDiscrete([2, 3, 4], start=[1, 0, -1])),
    "normalised-obs": _normalised_agent,
    "multibinary": lambda: _agent(gym.spaces.MultiBinary(5), gym.spaces.MultiBinary(3)),
    "discrete-obs": lambda: _agent(gym.spaces.Discrete(6, start=-2), gym.spaces.Discrete(3)),
    "dict-obs": lambda: _agent(gym.spaces.Dict({"pos": BOX, "mode": gym.spaces.Discrete(3)}),
                               gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)),
}

# Run by a fresh interpreter: no pgrad (its import fails), only the files and the inputs.
RUNNER = """
import sys
sys.modules["pgrad"] = None
import json
from pathlib import Path
import numpy as np
import onnxruntime
import torch

folder = Path(sys.argv[1])
for name in json.loads((folder / "names.json").read_text()):
    obs = np.load(folder / f"{name}.obs.npy")
    session = onnxruntime.InferenceSession(str(folder / f"{name}.onnx"),
                                           providers=["CPUExecutionProvider"])
    np.save(folder / f"{name}.onnx.out.npy", session.run(None, {"obs": obs})[0])
    np.save(folder / f"{name}.onnx.one.npy", session.run(None, {"obs": obs[:1]})[0])
    module = torch.jit.load(str(folder / f"{name}.pt"))
    with torch.no_grad():
        np.save(folder / f"{name}.torchscript.out.npy", module(torch.from_numpy(obs)).numpy())
        np.save(folder / f"{name}.torchscript.one.npy", module(torch.from_numpy(obs[:1])).numpy())
"""


def _observations(space: gym.Space) -> tuple[list, np.ndarray]:
    """``SAMPLES`` observations from ``space`` (as the env gives them) and the same batch
    flattened as the exported file takes it."""
    space = copy.deepcopy(space)
    space.seed(3)
    raw = [space.sample() for _ in range(SAMPLES)]
    if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        flat_space = gym.spaces.flatten_space(space)
        flat = np.stack([gym.spaces.flatten(space, o) for o in raw]).astype(flat_space.dtype)
    else:
        flat = np.stack([np.asarray(o) for o in raw]).astype(space.dtype)
    return raw, flat


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Each agent exported in both formats, with ``predict``'s actions and the files'
    actions (computed without pgrad)."""
    folder = tmp_path_factory.mktemp("exported")
    results: dict[str, dict] = {}
    for name, make in AGENTS.items():
        agent = make()
        raw, flat = _observations(agent.observation_space)
        np.save(folder / f"{name}.obs.npy", flat)
        assert agent.export(folder / f"{name}.onnx") == folder / f"{name}.onnx"
        agent.export(folder / f"{name}.pt", format="torchscript")
        expected, state = agent.predict(raw, deterministic=True)
        assert state is None
        results[name] = {"agent": agent, "expected": expected, "obs": flat}
    (folder / "names.json").write_text(json.dumps(list(AGENTS)))
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(folder)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name, entry in results.items():
        entry["folder"] = folder
        for fmt in FORMATS:
            entry[fmt] = np.load(folder / f"{name}.{fmt}.out.npy")
            entry[f"{fmt}-one"] = np.load(folder / f"{name}.{fmt}.one.npy")
    return results


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(AGENTS))
def test_exported_file_acts_as_predict(exported: dict[str, dict], name: str, fmt: str) -> None:
    entry = exported[name]
    expected, actions = entry["expected"], entry[fmt]
    space = entry["agent"].action_space
    assert actions.shape == expected.shape == (SAMPLES, *space.shape)
    assert actions.dtype == expected.dtype == space.dtype
    assert all(space.contains(a) for a in actions[:50])
    if np.issubdtype(space.dtype, np.floating):
        np.testing.assert_allclose(actions, expected, rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(actions, expected)
    # A batch of one runs too (the batch dimension is dynamic; the example had 3).
    np.testing.assert_allclose(entry[f"{fmt}-one"], expected[:1], rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["discrete", "box-clip", "box-tanh", "multidiscrete",
                                  "normalised-obs"])
def test_the_comparison_can_fail(exported: dict[str, dict], name: str) -> None:
    """The actions vary with the observation, and the Gaussian means fall outside the
    bounds often enough that a file without the clip or the squash would be caught."""
    entry = exported[name]
    assert len(np.unique(entry["expected"].reshape(SAMPLES, -1), axis=0)) > 1
    policy = entry["agent"].policy
    if isinstance(policy.action_space, gym.spaces.Box):
        with torch.inference_mode():
            means = policy.sample(entry["obs"], deterministic=True).numpy()
        outside = (means < policy.action_space.low) | (means > policy.action_space.high)
        assert 0.05 < outside.mean() < 0.95


@pytest.mark.slow
def test_normalisation_is_inside_the_exported_file(exported: dict[str, dict]) -> None:
    """Without its observation statistics the policy would act differently on most of
    these observations: the files matched predict, so they normalise."""
    entry = exported["normalised-obs"]
    unnormalised = copy.deepcopy(entry["agent"])
    unnormalised.policy.obs_rms.count.zero_()  # no statistics: observations pass unchanged
    assert (unnormalised.predict(entry["obs"])[0] != entry["expected"]).mean() > 0.3
    np.testing.assert_array_equal(entry["onnx"], entry["expected"])


@pytest.mark.slow
def test_onnx_file_has_a_dynamic_batch_and_metadata(exported: dict[str, dict]) -> None:
    import onnx
    import onnxruntime

    path = exported["discrete"]["folder"] / "discrete.onnx"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("obs", "action")
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [3]
    assert inp.type == "tensor(float)" and out.type == "tensor(int64)"
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["pgrad_version"] == pgrad.__version__
    assert json.loads(meta["observation_space"])["type"] == "Box"
    assert json.loads(meta["action_space"]) == {"type": "Discrete", "n": 3, "start": 2}
    assert meta["input"] == "obs [batch, 3] float32"
    assert meta["output"] == "action [batch] int64"
    assert session.get_modelmeta().custom_metadata_map["pgrad_version"] == pgrad.__version__


@pytest.mark.slow
def test_torchscript_file_carries_metadata(exported: dict[str, dict]) -> None:
    extra = {"pgrad.json": ""}
    torch.jit.load(str(exported["dict-obs"]["folder"] / "dict-obs.pt"), _extra_files=extra)
    meta = json.loads(extra["pgrad.json"])
    assert meta["pgrad_version"] == pgrad.__version__
    assert json.loads(meta["observation_space"])["type"] == "Dict"
    assert meta["input"] == "obs [batch, 6] float64"
    assert meta["output"] == "action [batch, 2] float32"


def test_export_names_the_env_and_leaves_the_agent_alone(tmp_path: Path) -> None:
    agent = pgrad.Reinforce("CartPole-v1", seed=0, hidden_sizes=(8,))
    before = {k: v.clone() for k, v in agent.policy.state_dict().items()}
    state = agent.observation_space.np_random.bit_generator.state
    agent.export(tmp_path / "cp.pt", format="torchscript")
    extra = {"pgrad.json": ""}
    torch.jit.load(str(tmp_path / "cp.pt"), _extra_files=extra)
    assert json.loads(extra["pgrad.json"])["env_id"] == "CartPole-v1"
    assert all(torch.equal(v, agent.policy.state_dict()[k]) for k, v in before.items())
    assert agent.observation_space.np_random.bit_generator.state == state
    assert all(p.requires_grad for p in agent.policy.parameters())


def test_unknown_format_is_one_line_error(tmp_path: Path) -> None:
    agent = pgrad.Reinforce("CartPole-v1", seed=0, hidden_sizes=(8,))
    with pytest.raises(PgradError, match="unknown export format 'tflite'; choose one of onnx"):
        agent.export(tmp_path / "x", format="tflite")
    assert not list(tmp_path.iterdir())


def test_missing_onnx_packages_name_the_extra(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # its import now fails
    agent = pgrad.Reinforce("CartPole-v1", seed=0, hidden_sizes=(8,))
    with pytest.raises(PgradError) as info:
        agent.export(tmp_path / "cp.onnx")
    assert str(info.value) == 'ONNX export needs onnxscript: pip install "pgrad[export]"'
    assert not list(tmp_path.iterdir())
    agent.export(tmp_path / "cp.pt", format="torchscript")  # TorchScript needs only torch


# ---------------------------------------------------------------------- the command
def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    pgrad.Reinforce("CartPole-v1", seed=0, hidden_sizes=(8,)).save(run)
    return run


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_export_writes_the_file(tmp_path: Path, fmt: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from pgrad.tools.cli import main

    run = _run_dir(tmp_path)
    assert main(["export", str(run), "--format", fmt]) == 0
    default = run / ("policy.onnx" if fmt == "onnx" else "policy.pt")
    assert capsys.readouterr().out == f"exported {fmt}: {default}\n"
    assert default.stat().st_size > 0
    out = tmp_path / "deploy" / "cartpole.bin"
    assert main(["export", str(run / "model.safetensors"), "--format", fmt,
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 0


def test_cli_export_without_onnx_packages_exits_2(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from pgrad.tools.cli import main

    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", str(tmp_path / "no-such-run")]) == 2
    err = capsys.readouterr().err
    assert err == 'pgrad export: error: ONNX export needs onnx: pip install "pgrad[export]"\n'


def test_cli_export_of_a_missing_run_exits_2(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from pgrad.tools.cli import main

    assert main(["export", str(tmp_path / "nothing"), "--format", "torchscript"]) == 2
    assert capsys.readouterr().err.startswith("pgrad export: error: no checkpoint at ")
