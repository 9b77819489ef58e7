"""The training return is an unbiased estimate of the current policy's return: episodes
enter the statistics window in the order they *started*, never the order they finished
(the episodes that finish last are the long ones)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pgrad
from pgrad import distributed
from pgrad.envs import make_vec_env
from pgrad.policies import make_policy
from pgrad.rollout import Batch, Collector


def frozen_cartpole(monkeypatch: pytest.MonkeyPatch, **kwargs) -> tuple[pgrad.Reinforce,
                                                                        list[Batch]]:
    """A CartPole agent whose update changes nothing (a fixed policy); its batches are
    recorded (copied: the collector reuses its storage)."""
    agent = pgrad.Reinforce("CartPole-v1", seed=3, hidden_sizes=(8,), **kwargs)
    batches: list[Batch] = []

    def update(batch: Batch) -> dict[str, float]:
        batches.append(Batch(**{k: v.clone() for k, v in vars(batch).items()}))
        return {}

    monkeypatch.setattr(agent, "update", update)
    return agent, batches


def episodes_of(batch: Batch) -> list[tuple[int, int, float, int]]:
    """``(start row, env, return, length)`` of every episode that ends in ``batch``."""
    out = []
    done = (batch.terminated | batch.truncated) & batch.valid
    for t, i in zip(*np.nonzero(done.numpy()), strict=True):
        length = int(batch.episode_steps[t, i]) + 1
        ret = float(batch.rewards[t - length + 1: t + 1, i].sum())
        out.append((int(t) - length + 1, int(i), ret, length))
    return out


def test_logged_return_is_the_mean_of_the_batches_episodes(monkeypatch) -> None:
    """Fixed policy, whole-episode batches of 64: the window is the last 2 batches (128
    episodes, the fewest whole batches holding 100), and the logged mean is exactly their
    mean. The old rule (the last 100 episodes to *finish*) keeps the previous batch's 36
    longest episodes and reads high on the same data."""
    agent, batches = frozen_cartpole(monkeypatch, num_envs=64, batch_episodes=64)
    logged: list[float] = []
    agent.learn(5000, callback=lambda a, m: logged.append(m["rollout/ep_return_mean"]))
    assert len(batches) >= 3
    for k, mean in enumerate(logged):
        window = [e for b in batches[max(0, k - 1): k + 1] for e in episodes_of(b)]
        assert len(window) == 64 * min(k + 1, 2)
        assert mean == sum(e[2] for e in window) / len(window)  # CartPole: integer sums
    # The old rule, on the same episodes: the last 100 in order of finishing.
    by_finish = [e for b in batches[-2:] for e in sorted(episodes_of(b),
                                                         key=lambda e: e[0] + e[3])]
    old = np.mean([e[2] for e in by_finish[-100:]])
    assert old > logged[-1] * 1.05  # +13 % here
    assert agent.last_result is not None and agent.last_result.return_mean == logged[-1]


def test_a_batch_of_at_least_100_episodes_is_its_own_window(monkeypatch) -> None:
    agent, batches = frozen_cartpole(monkeypatch, num_envs=32, batch_episodes=120)
    logged: list[float] = []
    agent.learn(2 * 120 * 15, callback=lambda a, m: logged.append(m["rollout/ep_return_mean"]))
    for batch, mean in zip(batches, logged, strict=True):
        assert mean == batch.rewards[batch.valid].sum().item() / 120
    assert len(agent.episode_returns) == 120


def test_stop_return_waits_for_a_full_window(monkeypatch) -> None:
    """--stop-return keeps its meaning: the window must be full (2 batches of 64 here)."""
    agent, batches = frozen_cartpole(monkeypatch, num_envs=64, batch_episodes=64)
    agent.learn(100_000, stop_return=0.0)
    assert agent.last_result is not None and agent.last_result.reached_stop_return
    assert len(batches) == 2


def test_fixed_step_batches_admit_episodes_in_start_order() -> None:
    """n_steps batches: an episode enters the window only once every episode that started
    before it has finished, so a long episode under way holds back the short ones started
    after it; the window's order is the start order."""
    envs = make_vec_env("CartPole-v1", 4, "sync")
    policy = make_policy(envs.single_observation_space, envs.single_action_space,
                         hidden_sizes=(8,))
    c = Collector(envs, policy, seed=0, n_steps=7, stats_window=10_000,
                  generator=torch.Generator().manual_seed(0))
    finished: list[tuple[int, int, float, int]] = []  # (start row, env, return, length)
    returns = [0.0] * 4  # of each env's episode under way
    rows = 0
    held_back = 0
    for _ in range(30):
        batch = c.collect()
        for t in range(batch.valid.shape[0]):
            for i in range(4):
                if not batch.valid[t, i]:
                    continue
                returns[i] += float(batch.rewards[t, i])
                if batch.terminated[t, i] or batch.truncated[t, i]:
                    length = int(batch.episode_steps[t, i]) + 1
                    finished.append((rows + t - length + 1, i, returns[i], length))
                    returns[i] = 0.0
        rows += batch.valid.shape[0]
        running = running_starts(batch, rows)
        ready = sorted(e for e in finished if e[:2] < min(running, default=(math.inf, 0)))
        assert list(c.episode_returns) == [e[2] for e in ready]
        assert list(c.episode_lengths) == [e[3] for e in ready]
        held_back = max(held_back, len(finished) - len(ready))
    assert held_back > 0  # the rule did hold some episodes back
    envs.close()


def running_starts(batch: Batch, rows: int) -> list[tuple[int, int]]:
    """``(start row, env)`` of the episodes under way after ``batch`` (absolute rows)."""
    out = []
    last = batch.valid.shape[0] - 1
    for i in range(batch.valid.shape[1]):
        ended = bool(batch.valid[last, i] and (batch.terminated[last, i]
                                               or batch.truncated[last, i]))
        if ended:
            continue  # next row is a reset step: the next episode starts later
        steps = int(batch.episode_steps[last, i]) + 1 if batch.valid[last, i] else 0
        out.append((rows - steps, i))
    return out


def test_the_saved_window_restores_the_statistic(tmp_path) -> None:
    agent = pgrad.Reinforce("CartPole-v1", seed=0, num_envs=8, batch_episodes=30,
                            hidden_sizes=(8,))
    agent.learn(3000, tensorboard=False)
    agent.save(tmp_path / "a.safetensors")
    loaded = pgrad.Reinforce.load(tmp_path / "a.safetensors")
    loaded.make_collector()
    assert loaded.episode_returns == agent.episode_returns
    assert len(agent.episode_returns) % 30 == 0 and len(agent.episode_returns) == 120
    assert loaded.collector is not None and loaded.collector.window_full


def test_rollout_stats_pool_the_windows_of_all_ranks() -> None:
    """One process: rollout_stats is the plain mean of the window it is given, full or
    not as the collector says."""
    world = distributed.world()
    stats = world.rollout_stats(10, 4, [1.0, 2.0, 4.0], [3, 3, 3], True)
    assert stats.return_mean == pytest.approx(7 / 3) and stats.full_window
    assert math.isnan(world.rollout_stats(0, 0, [], [], False).return_mean)
