"""pgrad.evaluation: exactly the episodes asked for, their returns and statistics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import script_actions

import pgrad
from pgrad.envs import LINEWALK_ID, LineWalkEnv
from pgrad.errors import PgradError
from pgrad.evaluation import EvalResult, evaluate, play_episodes


def always_right_agent() -> pgrad.Reinforce:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0)
    script_actions(agent.policy, 1)
    return agent


@pytest.mark.parametrize(("episodes", "num_envs"), [(1, 16), (5, 16), (7, 3), (16, 4)])
def test_returns_exactly_the_episodes_asked_for(episodes: int, num_envs: int) -> None:
    agent = pgrad.Reinforce("CartPole-v1", seed=0)
    result = evaluate(agent, episodes=episodes, num_envs=num_envs, deterministic=False)
    assert isinstance(result, EvalResult)
    assert result.episodes == episodes
    assert result.returns.shape == result.lengths.shape == (episodes,)
    assert result.mean == pytest.approx(float(np.mean(result.returns)))
    assert result.std == pytest.approx(float(np.std(result.returns)))
    np.testing.assert_array_equal(result.returns, result.lengths)  # CartPole pays 1 a step


@pytest.mark.parametrize("vectorization", ["auto", "sync"])
def test_always_right_on_linewalk_returns_exactly_1_1(vectorization: str) -> None:
    result = evaluate(always_right_agent(), episodes=6, num_envs=4,
                      vectorization=vectorization)
    assert result.returns.tolist() == [1.1] * 6  # ten steps of 0.01, then the goal's +1
    assert result.lengths.tolist() == [11] * 6
    assert result.mean == pytest.approx(1.1) and result.std == pytest.approx(0.0)


def test_always_left_on_linewalk() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0)
    script_actions(agent.policy, 0)
    result = evaluate(agent, episodes=3)
    assert result.returns.tolist() == pytest.approx([0.1 - 1.0] * 3)


@pytest.mark.parametrize("deterministic", [True, False])
def test_evaluation_is_repeatable_under_a_seed(deterministic: bool) -> None:
    agent = pgrad.Reinforce("CartPole-v1", seed=0)
    torch.manual_seed(1)
    first = evaluate(agent, episodes=4, seed=3, deterministic=deterministic)
    torch.manual_seed(2)  # the global stream plays no part
    second = evaluate(agent, episodes=4, seed=3, deterministic=deterministic)
    np.testing.assert_array_equal(first.returns, second.returns)


def test_evaluate_in_another_env() -> None:
    agent = always_right_agent()
    result = evaluate(agent, LineWalkEnv, episodes=2)
    assert result.returns.tolist() == [1.1, 1.1]


def test_evaluate_truncated_episodes_are_counted() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0)

    def toward_zero(obs, deterministic=False, generator=None):
        return (agent.policy.preprocess(obs)[:, 0] < 0).long()  # right below 0, else left

    agent.policy.sample = toward_zero  # type: ignore[method-assign]
    result = evaluate(agent, episodes=3)
    assert result.lengths.tolist() == [50, 50, 50]  # zigzag around 0 until the time limit
    assert result.returns.tolist() == pytest.approx([0.5] * 3)


def test_evaluate_in_an_env_with_other_spaces_is_an_error() -> None:
    """Acrobot observes 6 numbers, LineWalk 4: the policy cannot act there."""
    with pytest.raises(PgradError, match="spaces"):
        evaluate(pgrad.Reinforce(LINEWALK_ID, seed=0), "Acrobot-v1", episodes=1)


def test_evaluate_needs_at_least_one_episode() -> None:
    with pytest.raises(PgradError, match="episodes"):
        evaluate(always_right_agent(), episodes=0)


def test_evaluate_without_an_environment() -> None:
    env = LineWalkEnv()
    agent = pgrad.Reinforce(None, _spaces=(env.observation_space, env.action_space))
    with pytest.raises(PgradError, match="env"):
        evaluate(agent, episodes=1)


class CountedEpisodes(gym.Env):
    """Env ``index``'s episode j lasts ``1 + (7 * index + 3 * j) % 11`` steps and pays 1 a
    step: every episode's length says which env played it and in which order."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, index: int) -> None:
        self.index, self.episode, self.t = index, -1, 0

    def length(self, episode: int) -> int:
        return 1 + (7 * self.index + 3 * episode) % 11

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return np.zeros(4, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(4, np.float32), 1.0, self.t >= self.length(self.episode), False, {}


@pytest.mark.parametrize("episodes", [8, 13, 37])
def test_counted_episodes_are_each_envs_first_ones(episodes: int) -> None:
    """8 envs, N episodes: exactly N, and they are env k's first N/8 (rounded as the quota
    says) episodes, whatever their lengths: counting the first N to finish would favour the
    short ones."""
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0)
    envs = gym.vector.SyncVectorEnv([lambda i=i: CountedEpisodes(i) for i in range(8)],
                                    autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    result = play_episodes(agent.policy, envs, episodes)
    envs.close()
    quota = [episodes // 8 + (k < episodes % 8) for k in range(8)]
    expected = [CountedEpisodes(k).length(j) for k in range(8) for j in range(quota[k])]
    assert result.episodes == episodes
    assert result.lengths.tolist() == expected
    np.testing.assert_array_equal(result.returns, result.lengths)


def test_evaluate_plays_with_one_thread_and_restores_the_setting() -> None:
    agent = always_right_agent()
    seen = []
    sample = agent.policy.sample

    def recording(obs, deterministic=False, generator=None):
        seen.append(torch.get_num_threads())
        return sample(obs, deterministic, generator)

    agent.policy.sample = recording  # type: ignore[method-assign]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        evaluate(agent, episodes=2)
        assert set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        evaluate(agent, episodes=2, threads=None)
        assert set(seen) == {2}
    finally:
        torch.set_num_threads(before)


def test_evaluate_render_mode_needs_an_id() -> None:
    with pytest.raises(PgradError, match="render_mode"):
        evaluate(always_right_agent(), LineWalkEnv, episodes=1, render_mode="human")


def test_evaluate_passes_the_render_mode_to_the_env(monkeypatch) -> None:
    import pgrad.evaluation

    made = {}
    real = pgrad.evaluation.make_vec_env

    def spy(source, num_envs, vectorization="auto", **kwargs):
        made.update(num_envs=num_envs, vectorization=vectorization, **kwargs)
        return real(source, num_envs, vectorization)  # no window in a test

    monkeypatch.setattr(pgrad.evaluation, "make_vec_env", spy)
    result = evaluate(always_right_agent(), episodes=3, render_mode="human")
    assert {k: made[k] for k in ("num_envs", "vectorization", "render_mode")} == {
        "num_envs": 1, "vectorization": "sync", "render_mode": "human"}
    assert result.episodes == 3
