"""Exact resume: a run stopped at an update boundary and resumed from its checkpoint ends
bit-identical to the same run without a stop, and its logs continue instead of restarting."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import differing_parameters

import pgrad


def settings(vectorization: str) -> dict:
    """CartPole (random resets) with more envs than episodes per batch (idle envs)."""
    return dict(seed=1, num_envs=6, batch_episodes=4, hidden_sizes=(8,),
                vectorization=vectorization)


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith("time/")}
                for row in csv.DictReader(f)]


def optimizer_tensors(agent: pgrad.Reinforce) -> list[torch.Tensor]:
    return [state[k] for state in agent.optimizer.state_dict()["state"].values()
            for k in sorted(state)]


@pytest.mark.parametrize("vectorization", ["native", "sync"])
def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path: Path,
                                                              vectorization: str) -> None:
    first = pgrad.Reinforce("CartPole-v1", **settings(vectorization))
    first.learn(500, run_dir=tmp_path / "resumed", tensorboard=False)
    first.close()
    stopped_at = first.num_timesteps

    resumed = pgrad.Reinforce.load(tmp_path / "resumed")
    assert resumed.num_timesteps == stopped_at
    resumed.learn(500, run_dir=tmp_path / "resumed", tensorboard=False)
    resumed.close()

    whole = pgrad.Reinforce("CartPole-v1", **settings(vectorization))
    whole.learn(stopped_at + 500, run_dir=tmp_path / "whole", tensorboard=False)
    whole.close()

    assert differing_parameters(whole.policy, resumed.policy) == []
    assert all(torch.equal(a, b) for a, b in zip(optimizer_tensors(whole),
                                                 optimizer_tensors(resumed), strict=True))
    assert (resumed.num_timesteps, resumed.num_updates) == (whole.num_timesteps,
                                                            whole.num_updates)
    assert resumed.episode_returns == whole.episode_returns
    # The log continues: same steps, same numbers, one header.
    assert rows(tmp_path / "resumed") == rows(tmp_path / "whole")


def test_resumed_log_drops_rows_after_the_checkpoint(tmp_path: Path) -> None:
    """Rows logged after the checkpoint (a run killed between saves) are not kept twice."""
    run = tmp_path / "run"
    agent = pgrad.Reinforce(pgrad.LINEWALK_ID, seed=0, num_envs=4, batch_episodes=4)
    agent.learn(200, run_dir=run)
    saved_at = agent.num_timesteps
    agent.learn(200, tensorboard=False)  # more rows would be logged by a run dir; fake them
    with open(run / "progress.csv", "a", newline="") as f:
        f.write(f"{saved_at + 10}" + ",1" * (len(rows(run)[0]) - 1) + "\n")
    resumed = pgrad.Reinforce.load(run)
    resumed.learn(200, run_dir=run)
    steps = [int(r["step"]) for r in rows(run)]
    assert steps == sorted(steps) and len(steps) == len(set(steps))
    assert saved_at + 10 not in steps
    assert len(list(run.glob("events.out.tfevents*"))) == 2  # TensorBoard continues


def test_save_every_writes_checkpoints_along_the_way(tmp_path: Path, monkeypatch) -> None:
    saved: list[int] = []
    save = pgrad.Reinforce.save

    def spy(self, path):
        saved.append(self.num_timesteps)
        return save(self, path)

    monkeypatch.setattr(pgrad.Reinforce, "save", spy)
    agent = pgrad.Reinforce(pgrad.LINEWALK_ID, seed=0, num_envs=4, batch_episodes=4)
    agent.learn(1000, run_dir=tmp_path, tensorboard=False, save_every=300)
    assert len(saved) >= 3 and saved[-1] == agent.num_timesteps
    assert all(b - a >= 300 for a, b in zip(saved[:-2], saved[1:-1], strict=True))
    with pytest.raises(pgrad.PgradError, match="save_every"):
        agent.learn(10, save_every=0)


def test_close_then_save_keeps_the_rollout_state(tmp_path: Path) -> None:
    """learn → close → save → load → learn equals learn → learn (CartPole's resets)."""
    a = pgrad.Reinforce("CartPole-v1", **settings("native"))
    a.learn(300, tensorboard=False)
    a.close()
    b = pgrad.Reinforce.load(a.save(tmp_path / "m"))
    b.learn(300, tensorboard=False)
    a.learn(300, tensorboard=False)
    assert differing_parameters(a.policy, b.policy) == []
    assert a.episode_returns == b.episode_returns


def test_n_steps_run_resumes_with_its_counters(tmp_path: Path) -> None:
    """n_steps batches resume (not bit-identically: episodes restart with a reset)."""
    agent = pgrad.Reinforce("CartPole-v1", seed=0, num_envs=4, n_steps=16, hidden_sizes=(8,))
    agent.learn(256, run_dir=tmp_path, tensorboard=False)
    episodes, saved_rows = agent.collector.episodes, rows(tmp_path)
    resumed = pgrad.Reinforce.load(tmp_path)
    resumed.learn(256, run_dir=tmp_path, tensorboard=False)
    assert resumed.num_timesteps >= agent.num_timesteps + 256
    assert resumed.num_updates > agent.num_updates
    assert resumed.collector.episodes >= episodes
    steps = [int(r["step"]) for r in rows(tmp_path)]
    assert rows(tmp_path)[: len(saved_rows)] == saved_rows
    assert steps == sorted(set(steps)) and steps[-1] == resumed.num_timesteps
