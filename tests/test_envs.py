"""pgrad.envs: LineWalk is the tutorial's SimpleEnv; vector envs and env-id errors."""

from __future__ import annotations

import os
import signal

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import pgrad.envs as envs_module
from pgrad import Reinforce, evaluate
from pgrad.envs import (
    DEFAULT_MAX_EPISODE_STEPS,
    LINEWALK_ID,
    LineWalkEnv,
    LineWalkVectorEnv,
    check_env_id,
    has_time_limit,
    make_env,
    make_vec_env,
)
from pgrad.errors import PgradError
from pgrad.trainer import Interrupted


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


# ---------------------------------------------------------------- episodes without a time limit
ENDLESS_ID = "pgrad-test/EndlessNoLimit-v0"


@pytest.fixture
def endless_id(monkeypatch) -> str:
    """A registered env that never ends and has no time limit; the cap notice not yet given."""
    from conftest import EndlessEnv

    monkeypatch.setattr(envs_module, "_NOTICED", set())
    if ENDLESS_ID not in gym.registry:
        gym.register(ENDLESS_ID, entry_point=EndlessEnv)
    return ENDLESS_ID


def episode_lengths(envs, steps: int) -> list[int]:
    """Lengths of the episodes of sub-env 0 that end within ``steps`` steps."""
    envs.reset(seed=0)
    lengths, length, prev_done = [], 0, False
    for _ in range(steps):
        _, _, terminated, truncated, _ = envs.step(np.zeros(envs.num_envs, dtype=np.int64))
        if not prev_done:
            length += 1
        prev_done = bool(terminated[0] or truncated[0])
        if prev_done:
            assert truncated[0] and not terminated[0]
            lengths.append(length)
            length = 0
    envs.close()
    return lengths


def test_an_env_without_a_time_limit_gets_the_default_cap_and_one_notice(
        endless_id: str, capsys) -> None:
    from conftest import EndlessEnv

    assert not has_time_limit(gym.make(endless_id))
    cap = DEFAULT_MAX_EPISODE_STEPS
    assert episode_lengths(make_vec_env(endless_id, 2), 2 * cap + 2) == [cap, cap]
    assert episode_lengths(make_vec_env(endless_id, 2, "async"), cap + 1) == [cap]
    assert episode_lengths(make_vec_env(EndlessEnv, 2), cap + 1) == [cap]  # a callable
    assert has_time_limit(make_env(endless_id, cap_endless=True))  # as video makes it
    out = capsys.readouterr()
    assert out.out.count("no time limit of its own") == 2  # once per env name, on stdout
    assert "--max-episode-steps" in out.out and "--n-steps" in out.out
    assert len(out.out.strip().splitlines()) == 2 and out.err == ""


def test_max_episode_steps_caps_any_env(endless_id: str, capsys) -> None:
    from conftest import make_endless_env

    assert episode_lengths(make_vec_env(endless_id, 2, max_episode_steps=7), 16) == [7, 7]
    assert episode_lengths(make_vec_env(make_endless_env, 1, max_episode_steps=5), 6) == [5]
    for vectorization in ("native", "sync"):  # CartPole's own 500 steps replaced
        envs = make_vec_env("CartPole-v1", 1, vectorization, max_episode_steps=3)
        envs.reset(seed=0)
        ends = [bool(envs.step(np.array([i % 2]))[3][0]) for i in range(3)]
        assert ends == [False, False, True]
        envs.close()
    assert capsys.readouterr() == ("", "")  # asked-for caps say nothing


def test_no_default_cap_without_whole_episodes_or_with_a_limit(endless_id: str, capsys) -> None:
    from conftest import make_endless_env

    envs = make_vec_env(endless_id, 1, cap_endless=False)
    envs.reset(seed=0)
    assert not any(envs.step(np.zeros(1, dtype=np.int64))[3][0]
                   for _ in range(DEFAULT_MAX_EPISODE_STEPS + 5))
    envs.close()
    assert has_time_limit(make_endless_env())
    assert episode_lengths(make_vec_env(make_endless_env, 1), 21) == [20]  # its own limit
    assert capsys.readouterr() == ("", "")


def test_training_on_an_endless_env_keeps_to_one_batch_of_the_cap(endless_id, capsys,
                                                                  monkeypatch) -> None:
    cap = 60  # the default, made smaller to keep the test fast
    monkeypatch.setattr(envs_module, "DEFAULT_MAX_EPISODE_STEPS", cap)
    agent = Reinforce(endless_id, num_envs=2, batch_episodes=4, hidden_sizes=(8,),
                      diagnostics_every=0)
    agent.learn(total_timesteps=100)
    assert agent.last_result is not None and agent.last_result.updates == 1
    assert agent.num_timesteps == 4 * cap  # one batch: 4 episodes cut at the cap
    assert agent.episode_returns == [float(cap)] * 4
    result = evaluate(agent, episodes=3)  # the same cap, announced by training only
    assert result.lengths.tolist() == [cap] * 3
    out = capsys.readouterr().out
    assert out.count("no time limit of its own") == 1 and f"cut at {cap} steps" in out
    agent.close()

    stepped = Reinforce(endless_id, num_envs=2, n_steps=16, hidden_sizes=(8,),
                        diagnostics_every=0)  # n_steps batches need no cap: no notice
    stepped.learn(total_timesteps=64)
    assert stepped.num_timesteps == 64 and stepped.episode_returns == []
    assert capsys.readouterr() == ("", "")


def test_a_signal_during_an_endless_batch_is_honoured_after_that_batch(endless_id) -> None:
    from conftest import EndlessEnv

    class SignalAtStep10(EndlessEnv):
        steps = 0

        def step(self, action):
            SignalAtStep10.steps += 1
            if SignalAtStep10.steps == 10:
                os.kill(os.getpid(), signal.SIGTERM)
            return super().step(action)

    agent = Reinforce(SignalAtStep10, num_envs=2, batch_episodes=2, hidden_sizes=(8,),
                      diagnostics_every=0, max_episode_steps=300)
    with pytest.raises(Interrupted) as info:
        agent.learn(total_timesteps=10**9)
    assert info.value.signum == signal.SIGTERM
    assert agent.num_timesteps == 2 * 300 and agent.num_updates == 1
