"""``Reinforce.predict`` follows Stable-Baselines3's contract, so SB3's tools take a pgrad
agent: ``evaluate_policy`` plays the same episodes as ``pgrad.evaluate`` on the same seeds.

Making both play the same episodes: the policy is deterministic; both vector envs hold
separate copies of the env, reset with seeds ``seed + i`` (SB3's ``VecEnv.seed`` and
Gymnasium's ``reset(seed=...)`` agree) and reset without a seed after each episode, so each
copy's random stream is the same in both. SB3 resets a finished copy at once, Gymnasium on
the next step; that changes no episode. Episodes are spread over the copies differently
when their number is not a multiple of the copies (SB3 gives the extra ones to the last
copies, pgrad to the first), so the tests use a multiple.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import pgrad

BOX = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)


class DictEnv(gym.Env):
    """Dict observations (a Box and a Discrete), 5–15 steps, its own copy of its spaces;
    rewards depend on the action and the observation and are not integers, but multiples
    of 1/4 (SB3's vector env stores rewards as float32, which holds these exactly)."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Dict({"pos": copy.deepcopy(BOX),
                                                  "mode": gym.spaces.Discrete(3)})
        self.action_space = gym.spaces.Discrete(3)
        self.obs: dict[str, Any] = {}
        self.t, self.length = 0, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.observation_space.seed(seed)
        self.t, self.length = 0, int(self.np_random.integers(5, 16))
        self.obs = self.observation_space.sample()
        return self.obs, {}

    def step(self, action):
        reward = float(action == self.obs["mode"]) + 0.25 * float(self.obs["pos"][0] > 0)
        self.t += 1
        self.obs = self.observation_space.sample()
        return self.obs, reward, False, self.t >= self.length, {}


def _cartpole_agent() -> pgrad.Reinforce:
    """A CartPole agent trained a little: deterministic episodes of varied length."""
    agent = pgrad.Reinforce("CartPole-v1", seed=0, num_envs=8, batch_episodes=8,
                            hidden_sizes=(16,))
    agent.learn(6_000, tensorboard=False)
    agent.close()
    return agent


# ---------------------------------------------------------------- predict's contract
def test_predict_returns_actions_and_the_state_it_was_given() -> None:
    agent = pgrad.Reinforce("CartPole-v1", seed=0, hidden_sizes=(8,))
    obs = np.random.default_rng(0).uniform(-0.2, 0.2, (5, 4)).astype(np.float32)
    actions, state = agent.predict(obs, state=None, episode_start=np.ones(5, dtype=bool),
                                   deterministic=True)
    assert state is None and actions.shape == (5,)
    action, state = agent.predict(obs[0])
    assert state is None and np.shape(action) == () and action == actions[0]
    marker = object()
    assert agent.predict(obs, state=marker)[1] is marker  # SB3 returns the state it got


def test_predict_takes_dict_and_tuple_observations_in_every_form() -> None:
    """One dict, a dict of batched arrays (a vector env's), a list of dicts; Tuple alike."""
    for space in (gym.spaces.Dict({"pos": BOX, "mode": gym.spaces.Discrete(3)}),
                  gym.spaces.Tuple((gym.spaces.Discrete(4), BOX))):
        agent = pgrad.Reinforce(None, _spaces=(space, gym.spaces.Discrete(5)), seed=0,
                                hidden_sizes=(8,))
        with_batch = gym.vector.utils.batch_space(space, 6)
        with_batch.seed(0)
        batch = with_batch.sample()
        items = list(gym.vector.utils.iterate(with_batch, batch))
        flat = np.stack([gym.spaces.flatten(space, o) for o in items])
        expected = agent.policy.to_env(agent.policy.sample(flat, deterministic=True))
        np.testing.assert_array_equal(agent.predict(batch)[0], expected)
        np.testing.assert_array_equal(agent.predict(items)[0], expected)
        assert [int(agent.predict(o)[0]) for o in items] == expected.tolist()


def test_predict_on_a_malformed_dict_is_one_line_error() -> None:
    space = gym.spaces.Dict({"pos": BOX, "mode": gym.spaces.Discrete(3)})
    agent = pgrad.Reinforce(None, _spaces=(space, gym.spaces.Discrete(2)), seed=0,
                            hidden_sizes=(8,))
    with pytest.raises(pgrad.PgradError, match="has no entry 'mode'"):
        agent.predict({"pos": np.zeros(3, dtype=np.float32)})


# ---------------------------------------------------------------- SB3's evaluate_policy
def _sb3_episodes(agent: pgrad.Reinforce, make_env: Any, episodes: int,
                  num_envs: int) -> tuple[list[float], list[int], float]:
    sb3 = pytest.importorskip("stable_baselines3",
                              reason="stable-baselines3 is not installed (pgrad[test])")
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import DummyVecEnv

    assert sb3.__version__
    vec = DummyVecEnv([make_env] * num_envs)
    vec.seed(0)
    returns, lengths = evaluate_policy(agent, vec, n_eval_episodes=episodes,
                                       return_episode_rewards=True, warn=False)
    vec.seed(0)
    mean, _ = evaluate_policy(agent, vec, n_eval_episodes=episodes, warn=False)
    return [float(r) for r in returns], [int(n) for n in lengths], float(mean)


@pytest.mark.slow
@pytest.mark.parametrize("num_envs", [1, 3])
def test_evaluate_policy_plays_the_episodes_pgrad_evaluate_plays(num_envs: int) -> None:
    agent = _cartpole_agent()
    make_env = lambda: gym.make("CartPole-v1")  # noqa: E731
    returns, lengths, mean = _sb3_episodes(agent, make_env, 6, num_envs)
    result = pgrad.evaluate(agent, make_env, episodes=6, seed=0, num_envs=num_envs,
                            vectorization="sync")
    assert len(set(returns)) > 1  # episodes of different lengths: a real comparison
    assert sorted(returns) == sorted(result.returns.tolist())
    assert sorted(lengths) == sorted(result.lengths.tolist())
    assert mean == pytest.approx(result.mean, abs=1e-9)


def test_evaluate_policy_on_dict_observations_matches_pgrad_evaluate() -> None:
    """SB3's vector env hands predict a dict of batched arrays; pgrad flattens it as its
    own training envs do."""
    agent = pgrad.Reinforce(DictEnv, seed=0, hidden_sizes=(8,))
    returns, lengths, mean = _sb3_episodes(agent, DictEnv, 4, 2)
    result = pgrad.evaluate(agent, DictEnv, episodes=4, seed=0, num_envs=2)
    assert len(set(lengths)) > 1
    assert len(set(returns)) > 1 and any(r != int(r) for r in returns)
    assert sorted(returns) == sorted(result.returns.tolist())
    assert mean == pytest.approx(result.mean, abs=1e-12)
