"""pgrad.checkpoint: round trips, strictness on bad files, no unpickling, atomic writes."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ContinuousEnv, differing_parameters
from safetensors import safe_open
from safetensors.torch import save_file

import pgrad
from pgrad import checkpoint
from pgrad.envs import LINEWALK_ID
from pgrad.errors import PgradError


def linewalk_agent() -> pgrad.Reinforce:
    """A LineWalk agent after a few updates, so that Adam has state."""
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, num_envs=4, batch_episodes=4)
    agent.learn(300, tensorboard=False)
    agent.close()
    return agent


@pytest.fixture(scope="module")
def trained_file(tmp_path_factory) -> Path:
    return linewalk_agent().save(tmp_path_factory.mktemp("ckpt") / "model.safetensors")


def rewrite_metadata(source: Path, target: Path, change, resign: bool = True,
                     change_tensors=None) -> Path:
    """Copy a checkpoint with its 'pgrad' metadata passed through ``change(dict)`` (and its
    tensors through ``change_tensors(dict)``); with ``resign`` the digest is recomputed (a
    consistent file with wrong content, as an attacker would write it)."""
    with safe_open(str(source), framework="pt") as f:
        meta = json.loads(f.metadata()["pgrad"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    change(meta)
    if change_tensors is not None:
        change_tensors(tensors)
    if resign:
        meta["sha256"] = checkpoint.digest(meta, tensors)
    save_file(tensors, str(target), metadata={"pgrad": json.dumps(meta)})
    return target


def plain_param_groups(optimizer: torch.optim.Optimizer) -> list[dict]:
    """Param groups as JSON would hold them (tuples as lists)."""
    return json.loads(json.dumps(optimizer.state_dict()["param_groups"]))


# ---------------------------------------------------------------- round trips
def test_round_trip_restores_everything(tmp_path: Path) -> None:
    agent = linewalk_agent()
    path = agent.save(tmp_path / "agent.safetensors")
    loaded = pgrad.Reinforce.load(path)

    assert differing_parameters(agent.policy, loaded.policy) == []
    assert loaded.config == agent.config
    assert loaded.observation_space == agent.observation_space
    assert loaded.action_space == agent.action_space
    assert (loaded.num_timesteps, loaded.num_updates) == (agent.num_timesteps,
                                                          agent.num_updates)
    assert agent.num_updates > 0

    state, loaded_state = agent.optimizer.state_dict(), loaded.optimizer.state_dict()
    assert state["state"].keys() == loaded_state["state"].keys()
    for index, entry in state["state"].items():
        assert entry.keys() == loaded_state["state"][index].keys()
        for key, value in entry.items():
            assert torch.equal(value, loaded_state["state"][index][key]), (index, key)
    assert plain_param_groups(loaded.optimizer) == plain_param_groups(agent.optimizer)

    obs = np.random.default_rng(0).uniform(-1, 1, (32, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
    torch.manual_seed(5)
    sampled, _ = agent.predict(obs, deterministic=False)
    torch.manual_seed(5)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=False)[0], sampled)


def test_training_continues_identically_after_a_round_trip(tmp_path: Path) -> None:
    """Resuming from a checkpoint continues the run as if it had never stopped: same
    weights, Adam state and action noise (the agent's own generator). LineWalk always
    resets to the same state, so the environments agree too."""
    agent = linewalk_agent()
    loaded = pgrad.Reinforce.load(agent.save(tmp_path / "agent"))
    assert torch.equal(loaded.generator.get_state(), agent.generator.get_state())
    for a in (agent, loaded):
        a.learn(300, tensorboard=False)
        a.close()
    assert differing_parameters(agent.policy, loaded.policy) == []
    assert agent.num_updates == loaded.num_updates


def test_gaussian_agent_with_infinite_bounds_round_trips(tmp_path: Path) -> None:
    agent = pgrad.Reinforce(ContinuousEnv, seed=0, num_envs=2, batch_episodes=2,
                            state_dependent_std=True)
    agent.learn(40, tensorboard=False)
    agent.close()
    loaded = pgrad.Reinforce.load(agent.save(tmp_path / "gauss.safetensors"))

    assert np.isinf(loaded.observation_space.low).all()
    assert np.isinf(loaded.observation_space.high).all()
    assert loaded.observation_space == agent.observation_space
    assert loaded.action_space == agent.action_space
    assert loaded.config == agent.config and loaded.config.env_id is None
    assert differing_parameters(agent.policy, loaded.policy) == []
    obs = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])


def test_discrete_observation_space_round_trips(tmp_path: Path) -> None:
    agent = pgrad.Reinforce("FrozenLake-v1", seed=0)
    loaded = pgrad.Reinforce.load(agent.save(tmp_path / "lake"))
    assert loaded.observation_space == agent.observation_space
    assert int(loaded.predict(3)[0]) == int(agent.predict(3)[0])


def test_save_paths(tmp_path: Path) -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0)
    assert agent.save(tmp_path / "no_suffix") == tmp_path / "no_suffix.safetensors"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert agent.save(run_dir) == run_dir / "model.safetensors"
    assert agent.save(tmp_path / "new" / "dir" / "m.safetensors").is_file()
    loaded = pgrad.Reinforce.load(run_dir)  # a run directory loads its model
    assert differing_parameters(agent.policy, loaded.policy) == []


def test_load_with_device_override(tmp_path: Path) -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0)
    loaded = pgrad.Reinforce.load(agent.save(tmp_path / "m"), device="cpu")
    assert loaded.config.device == "cpu"
    assert loaded.policy.device == torch.device("cpu")


def test_file_holds_only_tensors_and_json(trained_file: Path) -> None:
    with safe_open(str(trained_file), framework="pt") as f:
        metadata = f.metadata()
        keys = list(f.keys())
    assert set(metadata) == {"pgrad"}
    meta = json.loads(metadata["pgrad"])
    assert meta["format"] == checkpoint.FORMAT
    assert meta["format_version"] == checkpoint.FORMAT_VERSION
    assert all(k.startswith(("policy.", "optim.", "return_rms.")) or k == "agent.generator"
               for k in keys)


# ---------------------------------------------------------------- bad files
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PgradError, match="no checkpoint"):
        pgrad.Reinforce.load(tmp_path / "nothing.safetensors")
    with pytest.raises(PgradError, match="no checkpoint"):
        pgrad.Reinforce.load(tmp_path)  # a directory without model.safetensors


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.5, 0.999])
def test_truncated_file(trained_file: Path, tmp_path: Path, fraction: float) -> None:
    data = trained_file.read_bytes()
    path = tmp_path / "model.safetensors"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(PgradError):
        pgrad.Reinforce.load(path)


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(PgradError):
        pgrad.Reinforce.load(path)


def test_safetensors_without_pgrad_metadata(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(3)}, str(path), metadata={"other": "x"})
    with pytest.raises(PgradError, match="not a pgrad checkpoint"):
        pgrad.Reinforce.load(path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m.update(format_version=99), "version"),
        (lambda m: m.pop("format_version"), "version"),
        (lambda m: m.update(format="other"), "not a pgrad checkpoint"),
        (lambda m: m.pop("config"), "malformed"),
        (lambda m: m["config"].update(hidden_sizes=[7]), "weights"),
        (lambda m: m["config"].update(hidden_sizes=[10**6, 10**6]), "hidden_sizes"),
        (lambda m: m["action_space"].update(n=10**12), "Discrete n"),
        (lambda m: m["config"].update(unknown_option=1), "unknown config"),
        (lambda m: m["config"].update(gamma=3.0), "gamma"),
        (lambda m: m["observation_space"].update(type="Graph"), "space"),
    ],
    ids=["future-version", "no-version", "other-format", "no-config", "wrong-shapes",
         "huge-network", "huge-action-space",
         "unknown-key", "invalid-config", "unknown-space"],
)
def test_inconsistent_metadata(trained_file: Path, tmp_path: Path, change, match) -> None:
    path = rewrite_metadata(trained_file, tmp_path / "model.safetensors", change)
    with pytest.raises(PgradError, match=match):
        pgrad.Reinforce.load(path)


def _nested_tuple(depth: int) -> dict:
    space: dict = {"type": "Discrete", "n": 2, "start": 0}
    for _ in range(depth):
        space = {"type": "Tuple", "spaces": [space]}
    return space


def _set_rng(meta: dict, value) -> None:
    meta["rollout"]["env_rng"] = value


def _rng_state(big: int) -> list:
    return [{"bit_generator": "PCG64", "state": {"state": big, "inc": 1},
             "has_uint32": 0, "uinteger": 0}]


def _group(**changes):
    return lambda m: m["optimizer"]["param_groups"][0].update(changes)


# Issue 13's crafted metadata, each written with a recomputed digest: every one is refused
# by the field checks, before a tensor is read or a policy is built.
HOSTILE_METADATA = {
    "num-timesteps-infinity": (lambda m: m.update(num_timesteps=float("inf")), "num_timesteps"),
    "num-timesteps-huge": (lambda m: m.update(num_timesteps=10**30), "num_timesteps"),
    "num-updates-float": (lambda m: m.update(num_updates=3.5), "num_updates"),
    "skipped-negative": (lambda m: m.update(skipped_updates=-1), "skipped_updates"),
    "env-rng-int": (lambda m: _set_rng(m, 5), "env_rng"),
    "env-rng-2**300": (lambda m: _set_rng(m, _rng_state(2**300)), "env_rng"),
    "env-rng-wrong-kind": (lambda m: _set_rng(m, [{"bit_generator": "os.system"}]), "env_rng"),
    "rollout-nan-return": (lambda m: m["rollout"].update(episode_returns=[float("nan")]),
                           "episode_returns"),
    "rollout-huge-seed": (lambda m: m["rollout"].update(reset_seed=2**80), "reset_seed"),
    "multidiscrete-2**40": (lambda m: m.update(action_space={
        "type": "MultiDiscrete", "nvec": [2**40], "start": [0], "dtype": "int64"}), "nvec"),
    "multidiscrete-ragged": (lambda m: m.update(action_space={
        "type": "MultiDiscrete", "nvec": [[2], [2, 3]], "start": [[0], [0, 0]],
        "dtype": "int64"}), "rectangular"),
    "discrete-2**70": (lambda m: m["action_space"].update(n=2**70), "Discrete n"),
    "discrete-n-string": (lambda m: m["action_space"].update(n="2"), "Discrete n"),
    "box-shape-2**40": (lambda m: m["observation_space"].update(shape=[2**40]), "Box shape"),
    "box-bounds-short": (lambda m: m["observation_space"].update(low=[0.0]), "Box low"),
    "box-dtype-object": (lambda m: m["observation_space"].update(dtype="object"), "Box dtype"),
    "dict-malformed-child": (lambda m: m.update(observation_space={
        "type": "Dict", "spaces": {"a": {"type": "Box"}}}), "Box shape"),
    "tuple-400-deep": (lambda m: m.update(observation_space=_nested_tuple(400)), "nested"),
    "tuple-9-deep": (lambda m: m.update(observation_space=_nested_tuple(9)), "nested"),
    "config-not-object": (lambda m: m.update(config=[1, 2]), "object"),
    "config-nan-log-std": (lambda m: m["config"].update(log_std_init=float("nan")),
                           "log_std_init"),
    "config-huge-envs": (lambda m: m["config"].update(num_envs=2**31), "num_envs"),
    "config-huge-n-steps": (lambda m: m["config"].update(n_steps=99999999999), "n_steps"),
    "config-width-string": (lambda m: m["config"].update(hidden_sizes=["64"]), "hidden_sizes"),
    "multi-gb-policy": (lambda m: (m["config"].update(hidden_sizes=[8192]), m.update(
        action_space={"type": "MultiDiscrete", "nvec": [2**20] * 4, "start": [0] * 4,
                      "dtype": "int64"})), "numbers, more than"),
    "lr-negative": (_group(lr=-0.01), "lr"),
    "lr-string": (_group(lr="abc"), "lr"),
    "lr-infinite": (_group(lr=float("inf")), "lr"),
    "betas-one": (_group(betas=[0.9, 1.0]), "betas"),
    "eps-zero": (_group(eps=0), "eps"),
    "maximize": (_group(maximize=True), "maximize"),
    "unknown-group-key": (_group(momentum=0.9), "unknown optimizer"),
    "params-missing": (_group(params=[0]), "param_groups"),
    "optim-state-index": (lambda m: m["optimizer"]["state"].update({"99": {}}), "parameter"),
    "generator-device-int": (lambda m: m.update(generator_device=5), "generator_device"),
    "optim-no-state": (lambda m: m["optimizer"].pop("state"), "optimizer state is malformed"),
    "optim-groups-object": (lambda m: m["optimizer"].update(param_groups={"lr": 1}),
                            "param_groups"),
    "rollout-no-episodes": (lambda m: m["rollout"].pop("episodes"), "malformed"),
}


@pytest.mark.parametrize("name", list(HOSTILE_METADATA))
def test_hostile_metadata_is_refused(trained_file: Path, tmp_path: Path, name: str) -> None:
    change, match = HOSTILE_METADATA[name]
    path = rewrite_metadata(trained_file, tmp_path / "model.safetensors", change)
    with pytest.raises(PgradError, match=match):
        pgrad.Reinforce.load(path)


def _first_policy_tensor(tensors: dict) -> str:
    return next(k for k in sorted(tensors) if k.startswith("policy."))


HOSTILE_TENSORS = {
    "float-generator": (lambda t: t.update({"agent.generator": torch.zeros(5056)}),
                        "agent.generator"),
    "short-generator": (lambda t: t.update({"agent.generator": t["agent.generator"][:100]}),
                        "generator state is malformed"),
    "complex-weights": (lambda t: t.update({_first_policy_tensor(t): torch.full(
        t[_first_policy_tensor(t)].shape, complex("nan+1j"), dtype=torch.complex64)}),
        "weights do not match"),
    "float64-weights": (lambda t: t.update({_first_policy_tensor(t): t[
        _first_policy_tensor(t)].double()}), "weights do not match"),
    "int-weights": (lambda t: t.update({_first_policy_tensor(t): t[
        _first_policy_tensor(t)].long()}), "weights do not match"),
    "missing-tensor": (lambda t: t.pop(_first_policy_tensor(t)), "missing"),
    "extra-tensor": (lambda t: t.update({"policy.extra": torch.zeros(3)}), "unexpected"),
    "extra-optim": (lambda t: t.update({"optim.0.evil": torch.zeros(3)}), "unexpected"),
    "optim-shape": (lambda t: t.update({"optim.0.exp_avg": torch.zeros(1)}),
                    "optim.0.exp_avg is malformed"),
    "negative-exp-avg-sq": (lambda t: t.update({"optim.0.exp_avg_sq": -t["optim.0.exp_avg"]
                                                .abs() - 1}), "negative"),
    "nan-adam-state": (lambda t: t["optim.1.exp_avg"].fill_(float("nan")), "non-finite"),
    "inf-return-stats": (lambda t: t.update({"return_rms.var": torch.tensor(
        float("inf"), dtype=torch.float64)}), "non-finite"),
}


@pytest.mark.parametrize("name", list(HOSTILE_TENSORS))
def test_hostile_tensors_are_refused(trained_file: Path, tmp_path: Path, name: str) -> None:
    change, match = HOSTILE_TENSORS[name]
    path = rewrite_metadata(trained_file, tmp_path / "model.safetensors", lambda m: None,
                            change_tensors=change)
    with pytest.raises(PgradError, match=match):
        pgrad.Reinforce.load(path)


def test_unexpected_errors_while_loading_are_one_pgrad_error(trained_file: Path,
                                                               monkeypatch) -> None:
    """Whatever goes wrong inside loading (here: an error no check foresaw) is a PgradError;
    a KeyboardInterrupt is not swallowed."""
    def boom(*args, **kwargs):
        raise ZeroDivisionError("unforeseen")

    monkeypatch.setattr(checkpoint, "digest", boom)
    with pytest.raises(PgradError, match="ZeroDivisionError: unforeseen"):
        pgrad.Reinforce.load(trained_file)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "digest", interrupt)
    with pytest.raises(KeyboardInterrupt):
        pgrad.Reinforce.load(trained_file)


def test_version_2_file_without_skipped_updates_loads(trained_file: Path,
                                                      tmp_path: Path) -> None:
    path = rewrite_metadata(trained_file, tmp_path / "model.safetensors",
                            lambda m: m.pop("skipped_updates"))
    assert pgrad.Reinforce.load(path).skipped_updates == 0


# ---------------------------------------------------------------- AgentState
def test_checkpoint_module_knows_no_agent() -> None:
    """checkpoint works on AgentState values: it imports nothing of pgrad.agent."""
    source = Path(checkpoint.__file__).read_text()
    assert "pgrad.agent" not in source and "import agent" not in source


def test_agent_state_round_trips_through_a_file(tmp_path: Path) -> None:
    agent = linewalk_agent()
    state = agent.state()
    assert isinstance(state, checkpoint.AgentState)
    with pytest.raises(AttributeError):
        state.num_timesteps = 0  # frozen
    loaded = checkpoint.load(checkpoint.save(tmp_path / "m", state))
    assert loaded.config == state.config
    assert (loaded.num_timesteps, loaded.num_updates, loaded.skipped_updates) == (
        state.num_timesteps, state.num_updates, state.skipped_updates)
    assert loaded.rollout == json.loads(json.dumps(state.rollout))
    assert loaded.policy.keys() == state.policy.keys()
    assert all(torch.equal(loaded.policy[k], v) for k, v in state.policy.items())
    assert torch.equal(loaded.generator, state.generator)
    rebuilt = pgrad.Reinforce.from_state(loaded)
    assert differing_parameters(agent.policy, rebuilt.policy) == []
    assert torch.equal(rebuilt.generator.get_state(), agent.generator.get_state())
    assert rebuilt.resume_state == loaded.rollout


def test_edited_metadata_fails_the_integrity_check(trained_file: Path, tmp_path: Path) -> None:
    path = rewrite_metadata(trained_file, tmp_path / "model.safetensors",
                            lambda m: m.update(num_timesteps=10**9), resign=False)
    with pytest.raises(PgradError, match="integrity"):
        pgrad.Reinforce.load(path)


@pytest.mark.parametrize("where", [0.6, 0.8, 0.999])
def test_flipped_bit_in_the_weights_fails_the_integrity_check(trained_file: Path,
                                                              tmp_path: Path,
                                                              where: float) -> None:
    data = bytearray(trained_file.read_bytes())
    data[int(len(data) * where)] ^= 0x01  # in the tensor bytes, after the JSON header
    path = tmp_path / "model.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(PgradError, match="integrity|not a readable"):
        pgrad.Reinforce.load(path)


def test_non_finite_weights_are_refused(trained_file: Path, tmp_path: Path) -> None:
    with safe_open(str(trained_file), framework="pt") as f:
        meta = json.loads(f.metadata()["pgrad"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    name = next(k for k in tensors if k.startswith("policy."))
    tensors[name][..., 0] = float("nan")
    meta["sha256"] = checkpoint.digest(meta, tensors)
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path), metadata={"pgrad": json.dumps(meta)})
    with pytest.raises(PgradError, match="non-finite"):
        pgrad.Reinforce.load(path)


def test_version_1_files_still_load(trained_file: Path, tmp_path: Path) -> None:
    """Files from before the digest and rollout state (format 1) load as they did."""
    def to_v1(meta: dict) -> None:
        meta.update(format_version=1)
        meta.pop("sha256")
        meta.pop("rollout")

    path = rewrite_metadata(trained_file, tmp_path / "model.safetensors", to_v1, resign=False)
    assert pgrad.Reinforce.load(path).num_updates > 0


def test_metadata_that_is_not_json(trained_file: Path, tmp_path: Path) -> None:
    with safe_open(str(trained_file), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path), metadata={"pgrad": "{not json"})
    with pytest.raises(PgradError, match="JSON"):
        pgrad.Reinforce.load(path)


class CreatesFileWhenUnpickled:
    """Unpickling this object opens (creates) ``path``: a harmless stand-in for an exploit."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_loading_never_unpickles(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"policy": CreatesFileWhenUnpickled(marker)}
    path = tmp_path / "run" / "model.safetensors"
    path.parent.mkdir()
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    assert not marker.exists()

    with pytest.raises(PgradError):
        pgrad.Reinforce.load(path.parent)
    assert not marker.exists()


# ---------------------------------------------------------------- atomic writes
def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0)
    agent.save(tmp_path / "model.safetensors")
    agent.save(tmp_path / "model.safetensors")  # overwrite
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0)
    path = agent.save(tmp_path / "model.safetensors")
    before = path.read_bytes()

    def broken_save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", broken_save_file)
    with torch.no_grad():
        next(agent.policy.parameters()).add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        agent.save(path)

    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]
