"""pgrad.rollout: batches under next-step autoreset, whole episodes and n-step segments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import script_actions

from pgrad.envs import LINEWALK_ID, make_vec_env
from pgrad.policies import make_policy
from pgrad.rollout import Batch, Collector

GOAL_RETURN = 10 * 0.01 + 1.0


def collector(env_id: str = LINEWALK_ID, num_envs: int = 3, action: int | None = None,
              **kwargs) -> Collector:
    envs = make_vec_env(env_id, num_envs)
    policy = make_policy(envs.single_observation_space, envs.single_action_space,
                         hidden_sizes=(16,))
    if action is not None:
        script_actions(policy, action)
    return Collector(envs, policy, seed=0, **kwargs)


def ended(batch: Batch) -> torch.Tensor:
    return batch.terminated | batch.truncated


def valid_pattern(*segments: tuple[int, int], length: int) -> list[bool]:
    """A column of ``valid`` flags: True on the half-open row ranges given."""
    column = [False] * length
    for start, stop in segments:
        column[start:stop] = [True] * (stop - start)
    return column


def assert_complete_episodes(batch: Batch) -> None:
    """Every valid row belongs to an episode that starts and ends in this batch."""
    done = ended(batch)
    for i in range(batch.valid.shape[1]):
        valid = batch.valid[:, i].tolist()
        for t, is_valid in enumerate(valid):
            if is_valid and not done[t, i]:
                assert t + 1 < len(valid) and valid[t + 1], f"env {i} row {t} is left open"
            if is_valid and done[t, i] and t + 1 < len(valid):
                assert not valid[t + 1], f"env {i} row {t + 1} is a reset step marked valid"


# ---------------------------------------------------------------- scripted LineWalk
def test_whole_episodes_of_an_always_right_policy() -> None:
    c = collector(num_envs=3, action=1, episodes=5)
    batch = c.collect()

    # Envs 0 and 1 play two episodes each (11 steps, a reset step, 11 steps), env 2 one.
    assert batch.valid.shape == (23, 3)
    assert batch.valid[:, 0].tolist() == valid_pattern((0, 11), (12, 23), length=23)
    assert batch.valid[:, 1].tolist() == valid_pattern((0, 11), (12, 23), length=23)
    assert batch.valid[:, 2].tolist() == valid_pattern((0, 11), length=23)
    assert batch.terminated[batch.valid].sum() == 5
    assert batch.num_steps == 55
    assert c.episodes == 5 and c.steps == 55
    assert list(c.episode_lengths) == [11] * 5
    assert list(c.episode_returns) == pytest.approx([GOAL_RETURN] * 5, abs=1e-6)
    # Reset steps: the obs before is the final one, the obs after is the reset one.
    assert batch.obs[11, 0, 0].item() == pytest.approx(1.1)
    assert batch.obs[12, 0, 0].item() == 0.0
    assert batch.rewards[11, 0].item() == 0.0


def test_n_steps_of_an_always_right_policy_carry_over_between_batches() -> None:
    c = collector(num_envs=2, action=1, n_steps=30)
    first = c.collect()
    assert first.valid.shape == (30, 2)
    assert first.obs.shape == (31, 2, 4)
    for i in range(2):
        assert first.valid[:, i].tolist() == valid_pattern((0, 11), (12, 23), (24, 30),
                                                           length=30)
        assert torch.nonzero(first.terminated[:, i]).flatten().tolist() == [10, 22]
    assert c.episodes == 4
    assert list(c.episode_returns) == pytest.approx([GOAL_RETURN] * 4, abs=1e-6)
    last_obs = first.obs[-1].clone()
    assert last_obs[:, 0].tolist() == pytest.approx([0.6, 0.6], abs=1e-6)  # mid-episode

    second = c.collect()
    torch.testing.assert_close(second.obs[0], last_obs)  # no reset between batches
    assert second.valid[:5].all() and second.terminated[4].all()
    assert not second.valid[5].any()  # the reset step after the carried-over episode
    assert list(c.episode_lengths)[-2:] == [11, 11]  # 6 steps + 5 steps: one episode each


def test_always_left_episodes_end_at_minus_one() -> None:
    c = collector(num_envs=2, action=0, episodes=2)
    c.collect()
    assert list(c.episode_returns) == pytest.approx([0.1 - 1.0] * 2, abs=1e-6)


# ---------------------------------------------------------------- random policies
@pytest.mark.parametrize(("num_envs", "episodes"), [(3, 7), (10, 7), (4, 4), (1, 3)])
def test_whole_episode_batches_hold_exactly_that_many_complete_episodes(
    num_envs: int, episodes: int
) -> None:
    c = collector("CartPole-v1", num_envs=num_envs, episodes=episodes)
    for _ in range(2):
        before = c.episodes
        batch = c.collect()
        assert int((ended(batch) & batch.valid).sum()) == episodes
        assert c.episodes - before == episodes
        assert_complete_episodes(batch)
        assert batch.obs.shape[0] == batch.valid.shape[0] + 1
        assert ended(batch)[-1].any()  # the batch stops as soon as the last episode ends


def test_linewalk_whole_episode_batch_is_complete_with_truncations() -> None:
    c = collector(num_envs=4, episodes=12)
    batch = c.collect()
    assert int((ended(batch) & batch.valid).sum()) == 12
    assert_complete_episodes(batch)


def test_n_steps_obs_has_one_more_row_and_follows_the_actions() -> None:
    c = collector(num_envs=4, n_steps=40)
    for _ in range(3):
        batch = c.collect()
        assert batch.valid.shape == batch.rewards.shape == (40, 4)
        assert batch.actions.shape == (40, 4)
        assert batch.obs.shape == (41, 4, 4)
        x, moves = batch.obs[:, :, 0].double(), batch.actions.double() * 0.2 - 0.1
        valid = batch.valid
        # A transition moves x by ±0.1 (the final obs of an episode included) …
        torch.testing.assert_close(x[1:][valid], (x[:-1] + moves)[valid], atol=1e-5, rtol=0)
        # … and a reset step returns the start state, with reward 0.
        assert (x[1:][~valid] == 0).all()
        assert (batch.rewards[~valid] == 0).all()
        assert (ended(batch)[:-1] <= ~valid[1:]).all()  # after an end: a reset step


def test_cartpole_episode_returns_equal_the_rewards_of_valid_rows() -> None:
    c = collector("CartPole-v1", num_envs=4, episodes=9)
    batch = c.collect()
    returns, lengths = [], []
    for i in range(4):
        total, length = 0.0, 0
        for t in range(batch.valid.shape[0]):
            if batch.valid[t, i]:
                total += batch.rewards[t, i].item()
                length += 1
                if ended(batch)[t, i]:
                    returns.append(total)
                    lengths.append(length)
                    total, length = 0.0, 0
    assert sorted(returns) == sorted(c.episode_returns)
    assert sorted(lengths) == sorted(c.episode_lengths)
    assert sum(c.episode_returns) == batch.rewards[batch.valid].sum().item()
    assert sum(lengths) == batch.num_steps


def test_batches_store_actions_as_sampled() -> None:
    c = collector(num_envs=2, n_steps=5)
    batch = c.collect()
    assert batch.actions.dtype == torch.int64
    assert batch.rewards.dtype == torch.float32
    assert batch.terminated.dtype == batch.truncated.dtype == batch.valid.dtype == torch.bool
    assert set(batch.actions.unique().tolist()) <= {0, 1}


def test_stats_window_keeps_whole_batches() -> None:
    c = collector(num_envs=2, action=1, episodes=3, stats_window=4)
    c.collect()
    assert len(c.episode_returns) == 3 and not c.window_full
    c.collect()
    c.collect()  # the window is two batches of 3 (the fewest holding 4 episodes)
    assert len(c.episode_returns) == 6 and c.window_full and c.episodes == 9


def test_same_seed_same_batches() -> None:
    batches = []
    for _ in range(2):
        torch.manual_seed(1)
        c = collector("CartPole-v1", num_envs=3, episodes=4)
        batch = c.collect()
        batches.append({k: v.clone() for k, v in vars(batch).items()})
    for key in batches[0]:
        assert torch.equal(batches[0][key], batches[1][key]), key


def test_collector_needs_exactly_one_batch_kind() -> None:
    envs = make_vec_env(LINEWALK_ID, 2)
    policy = make_policy(envs.single_observation_space, envs.single_action_space)
    with pytest.raises(ValueError):
        Collector(envs, policy)
    with pytest.raises(ValueError):
        Collector(envs, policy, episodes=2, n_steps=3)


def test_reset_obs_is_the_env_reset() -> None:
    c = collector(num_envs=2, action=1, episodes=2)
    batch = c.collect()
    np.testing.assert_array_equal(batch.obs[0].numpy(), np.zeros((2, 4), dtype=np.float32))


def test_episode_tracker_skips_reset_steps_and_reports_finished_episodes() -> None:
    """Two envs under next-step autoreset: env 0 ends at step 1, so step 2 is its reset
    step (reward 0, not counted); env 1 ends at step 2."""
    from pgrad.rollout import EpisodeTracker

    tracker = EpisodeTracker(2)
    no = np.zeros(2, dtype=bool)
    done, finished = tracker.step(np.array([1.0, 2.0]), no, no)
    assert finished is None and tracker.lengths.tolist() == [1, 1]
    done, finished = tracker.step(np.array([1.0, 2.0]), np.array([True, False]), no)
    assert done.tolist() == [True, False] and finished is not None
    assert finished.envs.tolist() == [0] and finished.returns.tolist() == [2.0]
    assert finished.lengths.tolist() == [2] and tracker.after_end.tolist() == [True, False]
    done, finished = tracker.step(np.array([0.0, 2.0]), no, np.array([False, True]))
    assert finished is not None and finished.envs.tolist() == [1]
    assert finished.returns.tolist() == [6.0] and finished.lengths.tolist() == [3]
    assert tracker.lengths.tolist() == [0, 0]  # env 0's reset step counted nowhere
    tracker.step(np.array([5.0, 0.0]), no, no, counted=np.array([True, False]))
    assert tracker.returns.tolist() == [5.0, 0.0]
    tracker.reset()
    assert tracker.returns.tolist() == [0.0, 0.0] and not tracker.after_end.any()
