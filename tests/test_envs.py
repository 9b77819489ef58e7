"""pgrad.envs: LineWalk is the tutorial's SimpleEnv; vector envs and env-id errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from pgrad.envs import (
    LINEWALK_ID,
    LineWalkEnv,
    LineWalkVectorEnv,
    check_env_id,
    make_env,
    make_vec_env,
)
from pgrad.errors import PgradError


class SimpleEnv:
    """The tutorial's benchmark env, verbatim."""

    def reset(self):
        self.x = 0.0
        return [self.x, 0.0, 0.0, 0.0]

    def step(self, a):
        self.x += 0.1 * (1 if a == 1 else -1)
        done = abs(self.x) > 1.0
        reward = 1.0 if self.x > 1.0 else -1.0 if self.x < -1.0 else 0.01
        return [self.x, 0, 0, 0], reward, done


def play(env, actions) -> list[tuple]:
    """(obs, reward, done) of each step until the episode ends or the actions run out."""
    steps = []
    for a in actions:
        obs, reward, *ends = env.step(a)
        done = any(ends)
        steps.append((np.asarray(obs, dtype=np.float32).tolist(), reward, done))
        if done:
            break
    return steps


ACTION_SEQUENCES = {
    "right": [1] * 20,
    "left": [0] * 20,
    "zigzag": [1, 1, 0] * 40,
    "random": np.random.default_rng(0).integers(0, 2, 50).tolist(),
    "random2": np.random.default_rng(1).integers(0, 2, 50).tolist(),
}


# ---------------------------------------------------------------- the single env
@pytest.mark.parametrize("name", ACTION_SEQUENCES)
def test_linewalk_matches_the_tutorial_simple_env(name: str) -> None:
    actions = ACTION_SEQUENCES[name]
    tutorial, env = SimpleEnv(), LineWalkEnv()
    first_obs, info = env.reset(seed=0)
    assert first_obs.tolist() == tutorial.reset()
    assert first_obs.dtype == np.float32 and info == {}

    assert play(env, actions) == play(tutorial, actions)


def test_eleven_right_moves_reach_the_goal() -> None:
    env = LineWalkEnv()
    env.reset()
    rewards = []
    for step in range(11):
        obs, reward, terminated, truncated, _ = env.step(1)
        rewards.append(reward)
        assert terminated == (step == 10) and not truncated
    assert rewards == [0.01] * 10 + [1.0]
    assert obs[0] == pytest.approx(1.1)


def test_eleven_left_moves_fall_off() -> None:
    env = LineWalkEnv()
    env.reset()
    steps = [env.step(0) for _ in range(11)]
    assert [s[1] for s in steps] == [0.01] * 10 + [-1.0]
    assert [s[2] for s in steps] == [False] * 10 + [True]


def test_registered_linewalk_is_truncated_after_50_steps() -> None:
    env = gym.make(LINEWALK_ID)
    assert env.spec is not None and env.spec.max_episode_steps == 50
    env.reset(seed=0)
    for step in range(50):
        _, reward, terminated, truncated, _ = env.step(step % 2)  # left, right, left, …
        assert reward == 0.01 and not terminated
        assert truncated == (step == 49)
    assert env.observation_space == LineWalkEnv().observation_space
    assert env.action_space == gym.spaces.Discrete(2)


# ---------------------------------------------------------------- the vector env
def vector_actions(num_envs: int, steps: int) -> np.ndarray:
    """Env 0 always right, env 1 zigzags into the time limit, the rest act at random."""
    actions = np.random.default_rng(0).integers(0, 2, (steps, num_envs))
    actions[:, 0] = 1
    actions[:, 1] = np.arange(steps) % 2
    return actions


def test_vector_linewalk_equals_single_envs_with_next_step_autoreset() -> None:
    num_envs, steps = 5, 160
    native = LineWalkVectorEnv(num_envs)
    reference = gym.vector.SyncVectorEnv([lambda: gym.make(LINEWALK_ID)] * num_envs)
    assert reference.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert native.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP

    obs_n, _ = native.reset(seed=0)
    obs_r, _ = reference.reset(seed=0)
    np.testing.assert_array_equal(obs_n, obs_r)
    names = ("obs", "rewards", "terminated", "truncated")
    trace_n = {name: [] for name in names}
    trace_r = {name: [] for name in names}
    for a in vector_actions(num_envs, steps):
        for trace, out in ((trace_n, native.step(a)), (trace_r, reference.step(a))):
            for name, x in zip(names, out[:4], strict=False):
                trace[name].append(x)

    for name in ("obs", "terminated", "truncated", "rewards"):
        np.testing.assert_array_equal(np.stack(trace_n[name]), np.stack(trace_r[name]),
                                      err_msg=name)
    assert np.sum(trace_n["terminated"]) > 10  # both kinds of episode end happened
    assert np.sum(trace_n["truncated"]) >= 3


def test_vector_linewalk_reset_step_is_not_a_move() -> None:
    envs = LineWalkVectorEnv(1)
    envs.reset()
    for _ in range(11):
        obs, reward, terminated, truncated, _ = envs.step(np.array([1]))
    assert terminated[0] and reward[0] == pytest.approx(1.0)
    assert obs[0, 0] == pytest.approx(1.1)  # the true final observation
    obs, reward, terminated, truncated, _ = envs.step(np.array([1]))  # the reset step
    assert obs[0, 0] == 0.0 and reward[0] == 0.0 and not terminated[0] and not truncated[0]
    obs, *_ = envs.step(np.array([1]))
    assert obs[0, 0] == pytest.approx(0.1)


def test_vector_linewalk_spaces() -> None:
    envs = LineWalkVectorEnv(3)
    assert envs.single_observation_space == LineWalkEnv().observation_space
    assert envs.single_action_space == gym.spaces.Discrete(2)
    obs, _ = envs.reset(seed=1)
    assert obs.shape == (3, 4) and obs.dtype == np.float32
    assert envs.observation_space.contains(obs)


# ---------------------------------------------------------------- make_vec_env
@pytest.mark.parametrize(
    ("vectorization", "kind"),
    [
        ("native", LineWalkVectorEnv),
        ("auto", LineWalkVectorEnv),
        ("sync", gym.vector.SyncVectorEnv),
        ("async", gym.vector.AsyncVectorEnv),
    ],
)
def test_make_vec_env_vectorizations(vectorization: str, kind: type) -> None:
    envs = make_vec_env(LINEWALK_ID, 3, vectorization)
    try:
        assert isinstance(envs, kind)
        assert envs.num_envs == 3
        assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        obs, _ = envs.reset(seed=0)
        for _ in range(11):
            obs, rewards, terminated, truncated, _ = envs.step(np.ones(3, dtype=np.int64))
        np.testing.assert_allclose(obs[:, 0], 1.1, rtol=1e-6)
        assert terminated.all() and not truncated.any()
        np.testing.assert_allclose(rewards, 1.0)
    finally:
        envs.close()


def test_make_vec_env_auto_uses_native_cartpole_and_sync_for_callables() -> None:
    envs = make_vec_env("CartPole-v1", 2)
    assert type(envs).__name__ == "CartPoleVectorEnv"
    envs.close()
    envs = make_vec_env(LineWalkEnv, 2)
    assert isinstance(envs, gym.vector.SyncVectorEnv)
    envs.close()


@pytest.mark.parametrize(
    ("env", "kwargs", "match"),
    [
        (LINEWALK_ID, {"num_envs": 0}, "num_envs"),
        (LINEWALK_ID, {"num_envs": 2, "vectorization": "threads"}, "vectorization"),
        (LineWalkEnv, {"num_envs": 2, "vectorization": "native"}, "native"),
        ("Acrobot-v1", {"num_envs": 2, "vectorization": "native"}, "Acrobot-v1"),
        ("CartPole-v2", {"num_envs": 2}, "CartPole-v1"),
    ],
    ids=["zero-envs", "bad-vectorization", "native-callable", "no-native", "unknown-id"],
)
def test_make_vec_env_errors(env, kwargs, match) -> None:
    with pytest.raises(PgradError, match=match):
        make_vec_env(env, **kwargs)


def test_make_vec_env_rejects_same_step_autoreset() -> None:
    with pytest.raises(PgradError, match="next-step"):
        make_vec_env(LINEWALK_ID, 2, "sync",
                     vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})


# ---------------------------------------------------------------- env ids
@pytest.mark.parametrize(
    ("env_id", "suggestion"),
    [("CartPole-v2", "CartPole-v1"), ("pgrad/LineWalk-v1", LINEWALK_ID),
     ("cartpole-v1", "CartPole-v1")],
)
def test_unknown_env_id_suggests_a_close_match(env_id: str, suggestion: str) -> None:
    with pytest.raises(PgradError, match="did you mean") as info:
        check_env_id(env_id)
    assert suggestion in str(info.value)
    assert repr(env_id) in str(info.value)
    with pytest.raises(PgradError):
        make_env(env_id)


def test_unknown_env_id_without_a_close_match_points_to_the_registry() -> None:
    with pytest.raises(PgradError, match="pprint_registry"):
        check_env_id("zzzzzzzzzzzzzzzz")


def test_make_env_passes_kwargs() -> None:
    env = make_env("CartPole-v1", max_episode_steps=7)
    env.reset(seed=0)
    steps = 0
    while True:
        steps += 1
        _, _, terminated, truncated, _ = env.step(steps % 2)
        if terminated or truncated:
            break
    assert truncated and steps == 7
