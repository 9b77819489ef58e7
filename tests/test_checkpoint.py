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


def rewrite_metadata(source: Path, target: Path, change, resign: bool = True) -> Path:
    """Copy a checkpoint with its 'pgrad' metadata passed through ``change(dict)``; with
    ``resign`` the digest is recomputed (a consistent file with wrong content)."""
    with safe_open(str(source), framework="pt") as f:
        meta = json.loads(f.metadata()["pgrad"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    change(meta)
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
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    torch.manual_seed(5)
    sampled = agent.predict(obs, deterministic=False)
    torch.manual_seed(5)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=False), sampled)


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
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))


def test_discrete_observation_space_round_trips(tmp_path: Path) -> None:
    agent = pgrad.Reinforce("FrozenLake-v1", seed=0)
    loaded = pgrad.Reinforce.load(agent.save(tmp_path / "lake"))
    assert loaded.observation_space == agent.observation_space
    assert int(loaded.predict(3)) == int(agent.predict(3))


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
