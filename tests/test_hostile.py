"""Hostile and broken input: crafted pickles, damaged checkpoints, misbehaving environments
and diverging training each end in a one-line error, no traceback, no code run."""

from __future__ import annotations

import contextlib
import io
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import EndlessEnv
from safetensors.torch import save_file
from test_checkpoint import CreatesFileWhenUnpickled, rewrite_metadata

import pgrad
from pgrad.envs import LINEWALK_ID
from pgrad.guard import Diverged
from pgrad.tools.cli import main


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", LINEWALK_ID, "--total-timesteps", "300", "--out", str(path),
                     "--no-progress", "--no-tensorboard", "--num-envs", "4",
                     "--batch-episodes", "4", "--hidden-sizes", "8"]) == 0
    return path


# ---------------------------------------------------------------- crafted pickles
def test_eval_of_a_pickle_payload_runs_no_code(tmp_path: Path) -> None:
    """The issue's must-show: ``pgrad eval`` on a file that creates a file when unpickled
    prints one line, exits non-zero, and the file is not created."""
    marker = tmp_path / "pwned"
    payload = tmp_path / "model.safetensors"
    payload.write_bytes(pickle.dumps({"policy": CreatesFileWhenUnpickled(marker)}))
    pickle.loads(payload.read_bytes())  # the payload works: unpickling creates the marker
    assert marker.exists()
    marker.unlink()

    proc = subprocess.run([sys.executable, "-m", "pgrad", "eval", str(payload)],
                          capture_output=True, text=True, timeout=120, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "not a readable pgrad checkpoint" in lines[0]
    assert not marker.exists()


def test_eval_of_a_run_dir_holding_a_pickle_payload_runs_no_code(tmp_path: Path,
                                                                 capsys) -> None:
    marker = tmp_path / "pwned"
    payload = tmp_path / "model.safetensors"
    payload.write_bytes(pickle.dumps({"policy": CreatesFileWhenUnpickled(marker)}))
    assert "not a readable" in one_line_error(capsys, main(["eval", str(tmp_path)]))
    assert not marker.exists()


def test_eval_and_resume_of_a_torch_save_payload_run_no_code(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    torch.save({"policy": CreatesFileWhenUnpickled(marker)}, tmp_path / "model.safetensors")
    one_line_error(capsys, main(["eval", str(tmp_path)]))
    one_line_error(capsys, main(["train", "--resume", str(tmp_path), "--no-progress"]))
    assert not marker.exists()


# ---------------------------------------------------------------- damaged checkpoints
def damage(kind: str, source: Path, target: Path) -> None:
    data = source.read_bytes()
    if kind == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif kind == "flipped-bit":
        changed = bytearray(data)
        changed[-5] ^= 0x10
        target.write_bytes(bytes(changed))
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "wrong-version":
        rewrite_metadata(source, target, lambda m: m.update(format_version=3))
    elif kind == "wrong-shape":
        rewrite_metadata(source, target, lambda m: m["config"].update(hidden_sizes=[9]))
    elif kind == "edited-counter":
        rewrite_metadata(source, target, lambda m: m.update(num_timesteps=-1), resign=False)


    elif kind in ("deep-json", "huge-number"):
        text = "[" * 100_000 if kind == "deep-json" else '{"format": ' + "9" * 100_000 + "}"
        save_file({"w": torch.zeros(1)}, str(target), metadata={"pgrad": text})


KINDS = ["truncated", "flipped-bit", "empty", "wrong-version", "wrong-shape",
         "edited-counter", "deep-json", "huge-number"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["eval", "resume"])
def test_damaged_checkpoint_fails_in_one_line(run_dir: Path, tmp_path: Path, capsys,
                                              kind: str, command: str) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    damage(kind, run_dir / "model.safetensors", bad / "model.safetensors")
    argv = (["eval", str(bad)] if command == "eval"
            else ["train", "--resume", str(bad), "--no-progress"])
    line = one_line_error(capsys, main(argv))
    assert str(bad) in line


def test_resume_of_a_missing_run_fails_in_one_line(tmp_path: Path, capsys) -> None:
    line = one_line_error(capsys, main(["train", "--resume", str(tmp_path / "nope")]))
    assert "no checkpoint" in line


@pytest.mark.parametrize("args", [["--lr", "1"], ["--out", "x"], ["CartPole-v1"]],
                         ids=["config-option", "out", "env-id"])
def test_resume_refuses_changed_settings(run_dir: Path, capsys, args: list[str]) -> None:
    line = one_line_error(capsys, main(["train", "--resume", str(run_dir), *args]))
    assert "saved settings" in line


@pytest.mark.parametrize("args", [["--save-every", "0"], ["--on-nonfinite", "ignore"]])
def test_invalid_reliability_options_fail_in_one_line(tmp_path: Path, capsys,
                                                      args: list[str]) -> None:
    one_line_error(capsys, main(["train", LINEWALK_ID, "--out", str(tmp_path / "r"),
                                 "--no-progress", *args]))


def test_malformed_run_file_fails_in_one_line(run_dir: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "model.safetensors").write_bytes((run_dir / "model.safetensors").read_bytes())
    (copy / "run.json").write_text("[1, 2")
    assert "run.json" in one_line_error(capsys, main(["train", "--resume", str(copy)]))


# ---------------------------------------------------------------- misbehaving envs
class BadEnv(EndlessEnv):
    """EndlessEnv that misbehaves at its 7th step: ``how`` says in which way."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how, self.t = how, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.t = 0
        if self.how == "raise-reset":
            raise RuntimeError("the simulator crashed")
        return super().reset(seed=seed, options=options)

    def step(self, action: Any):
        self.t += 1
        obs, reward, terminated, truncated, info = super().step(action)
        if self.t == 7:
            if self.how == "raise":
                raise RuntimeError("the simulator crashed")
            if self.how == "shape":
                obs = np.ones(3, dtype=np.float32)
            if self.how == "nan-obs":
                obs = np.full(1, np.nan, dtype=np.float32)
            if self.how == "nan-reward":
                reward = float("nan")
            if self.how == "inf-reward":
                reward = float("inf")
        return obs, reward, terminated, self.t >= 10, info


ENV_FAULTS = {"raise": "raised RuntimeError", "raise-reset": "at reset",
              "shape": "shape", "nan-obs": "non-finite observation",
              "nan-reward": "non-finite reward", "inf-reward": "non-finite reward"}


@pytest.fixture(scope="module")
def registered_bad_envs() -> None:
    for how in ENV_FAULTS:
        env_id = f"pgradtest/Bad-{how}-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=BadEnv, kwargs={"how": how})


@pytest.mark.parametrize("how", list(ENV_FAULTS))
def test_misbehaving_env_fails_in_one_line_naming_env_and_step(
        how: str, registered_bad_envs: None, tmp_path: Path, capsys) -> None:
    env_id = f"pgradtest/Bad-{how}-v0"
    code = main(["train", env_id, "--out", str(tmp_path / "r"), "--no-progress",
                 "--no-tensorboard", "--num-envs", "2", "--batch-episodes", "2",
                 "--vectorization", "sync", "--total-timesteps", "100"])
    line = one_line_error(capsys, code)
    assert env_id in line and ENV_FAULTS[how] in line
    if how != "raise-reset":
        assert "at step 13" in line  # 2 envs × 6 good steps, then the 7th
    assert not (tmp_path / "r" / "model.safetensors").exists()


# ---------------------------------------------------------------- divergence
class HugeRewardEnv(EndlessEnv):
    """Rewards of 3e38 (finite) after ``calm`` steps: the returns overflow to inf."""

    steps = 0
    calm = 400

    def step(self, action: Any):
        HugeRewardEnv.steps += 1
        obs, _, terminated, truncated, info = super().step(action)
        reward = 3e38 if HugeRewardEnv.steps > self.calm else float(action)
        return obs, reward, terminated, truncated, info


def huge_reward_agent(**kwargs: Any) -> pgrad.Reinforce:
    HugeRewardEnv.steps = 0
    return pgrad.Reinforce(lambda: gym.wrappers.TimeLimit(HugeRewardEnv(), 10), seed=0,
                           num_envs=2, batch_episodes=2, hidden_sizes=(8,),
                           vectorization="sync", **kwargs)


def test_divergence_stops_naming_what_and_when_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    agent = huge_reward_agent()
    with pytest.raises(Diverged, match=r"the loss is not finite .* at update \d+, step \d+"):
        agent.learn(2000, run_dir=tmp_path, tensorboard=False, save_every=100)
    before = (tmp_path / "model.safetensors").read_bytes()
    good = pgrad.Reinforce.load(tmp_path)  # the last good checkpoint, finite and loadable
    assert 300 <= good.num_timesteps <= 400 < agent.num_timesteps + 20
    assert all(torch.isfinite(p).all() for p in agent.policy.parameters())
    assert (tmp_path / "model.safetensors").read_bytes() == before


def test_divergence_can_skip_the_update(tmp_path: Path) -> None:
    agent = huge_reward_agent(on_nonfinite="skip")
    agent.learn(600, tensorboard=False)
    assert agent.skipped_updates > 0
    assert agent.num_updates + agent.skipped_updates == agent.num_timesteps // 20
    assert all(torch.isfinite(p).all() for p in agent.policy.parameters())


def test_non_finite_parameters_stop_training(monkeypatch) -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, num_envs=2, batch_episodes=2)
    step = agent.optimizer.step

    def poisoned_step(*args: Any, **kwargs: Any) -> Any:
        out = step(*args, **kwargs)
        with torch.no_grad():
            next(agent.policy.parameters())[0, 0] = float("inf")
        return out

    monkeypatch.setattr(agent.optimizer, "step", poisoned_step)
    with pytest.raises(Diverged, match="parameters .* at update 1"):
        agent.learn(10, tensorboard=False)


def test_divergence_from_the_cli_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda *a, **k: torch.tensor(float("nan")))
    code = main(["train", LINEWALK_ID, "--out", str(tmp_path / "r"), "--no-progress",
                 "--no-tensorboard", "--num-envs", "2", "--batch-episodes", "2"])
    line = one_line_error(capsys, code)
    assert "gradient is not finite" in line and "update 1" in line

