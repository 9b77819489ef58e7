"""The EnvPool backend (pgrad.envpool) against Gymnasium's own vector envs.

EnvPool's random streams differ from Gymnasium's, so the tests compare structure on the
same seeds and actions: where episodes end and why, reset steps (reward 0, no flags, a
fresh reset observation), true final observations, episode-length distributions, seeding,
spaces, and a training run end to end.
"""

from __future__ import annotations

import sys
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import pgrad
from pgrad import envpool as pe
from pgrad import envs as pgrad_envs
from pgrad.errors import PgradError

needs_envpool = pytest.mark.skipif(
    not pe.is_installed(), reason="envpool is not installed (pip install 'pgrad[envpool]')")


def _gym_vec(env_id: str, n: int, **kwargs: Any) -> gym.vector.VectorEnv:
    return gym.vector.SyncVectorEnv([lambda: gym.make(env_id, **kwargs)] * n)


def _play(vec: gym.vector.VectorEnv, actions: list[Any], seed: int = 0) -> dict[str, np.ndarray]:
    """obs ``[T + 1, N, ...]``, rewards / terminated / truncated ``[T, N]``, and ``reset``
    ``[T, N]``: the step is a reset step (the sub-env's episode ended the step before)."""
    obs, _ = vec.reset(seed=seed)
    rows: dict[str, list[np.ndarray]] = {"obs": [obs], "rew": [], "term": [], "trunc": []}
    for a in actions:
        obs, rew, term, trunc, _ = vec.step(a)
        for key, value in zip(("obs", "rew", "term", "trunc"), (obs, rew, term, trunc),
                              strict=True):
            rows[key].append(np.asarray(value))
    vec.close()
    out = {k: np.stack(v) for k, v in rows.items()}
    done = out["term"] | out["trunc"]
    out["reset"] = np.concatenate([np.zeros_like(done[:1]), done[:-1]])
    return out


def _lengths(run: dict[str, np.ndarray]) -> np.ndarray:
    """Lengths of the episodes that ended in ``run`` (reset steps not counted)."""
    lengths, current = [], np.zeros(run["rew"].shape[1], dtype=int)
    for t in range(run["rew"].shape[0]):
        current += ~run["reset"][t]
        ended = run["term"][t] | run["trunc"][t]
        lengths += current[ended].tolist()
        current[ended] = 0
    return np.array(lengths)


def _check_cartpole_run(run: dict[str, np.ndarray]) -> None:
    """Reset steps pay 0 with no flags and a fresh observation; every other step, the
    final one included, follows the previous state by CartPole's Euler step
    (x' = x + 0.02 ẋ), so the step ending an episode returns the true final observation."""
    obs, reset = run["obs"], run["reset"]
    assert (run["rew"][reset] == 0).all() and (run["rew"][~reset] == 1).all()
    assert not (run["term"][reset] | run["trunc"][reset]).any()
    assert (np.abs(obs[1:][reset]) <= 0.05).all()
    moved = obs[1:, :, 0] - (obs[:-1, :, 0] + 0.02 * obs[:-1, :, 1])
    assert np.abs(moved[~reset]).max() < 1e-5
    assert np.abs(moved[reset]).max() > 1e-3


@needs_envpool
def test_time_limit_pattern_matches_gymnasium() -> None:
    actions = [np.array([t % 2] * 3) for t in range(20)]
    pool = _play(pe.EnvPoolVectorEnv("CartPole-v1", 3, max_episode_steps=5), actions)
    ref = _play(_gym_vec("CartPole-v1", 3, max_episode_steps=5), actions)
    for key in ("term", "trunc", "reset"):
        np.testing.assert_array_equal(pool[key], ref[key])
    np.testing.assert_array_equal(pool["rew"], ref["rew"])
    assert np.flatnonzero(pool["trunc"][:, 0]).tolist() == [4, 10, 16]
    assert not pool["term"].any()
    _check_cartpole_run(pool)
    _check_cartpole_run(ref)


@needs_envpool
def test_terminations_match_gymnasium_in_distribution() -> None:
    actions = [np.ones(32, dtype=np.int64)] * 120
    pool = _play(pe.EnvPoolVectorEnv("CartPole-v1", 32), actions)
    ref = _play(_gym_vec("CartPole-v1", 32), actions)
    for run in (pool, ref):
        _check_cartpole_run(run)
        final = run["obs"][1:][run["term"]]
        assert ((np.abs(final[:, 0]) > 2.4) | (np.abs(final[:, 2]) > 0.2094)).all()
        assert not run["trunc"].any()
    a, b = _lengths(pool), _lengths(ref)
    assert len(a) > 300 and len(b) > 300
    assert set(np.unique(a)) <= set(range(8, 12)) and set(np.unique(b)) <= set(range(8, 12))
    assert abs(a.mean() - b.mean()) < 0.3


@needs_envpool
def test_seeding_follows_gymnasium_convention() -> None:
    vec = pe.EnvPoolVectorEnv("CartPole-v1", 2)
    first, _ = vec.reset(seed=5)
    again, _ = vec.reset(seed=5)
    other, _ = vec.reset(seed=6)
    unseeded, _ = vec.reset()
    vec.close()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(other, unseeded)
    np.testing.assert_array_equal(first[1], other[0])  # sub-env i is seeded with seed + i
    actions = [np.array([1, 0])] * 30
    np.testing.assert_array_equal(_play(pe.EnvPoolVectorEnv("CartPole-v1", 2), actions, 9)["obs"],
                                  _play(pe.EnvPoolVectorEnv("CartPole-v1", 2), actions, 9)["obs"])
    with pytest.raises(PgradError, match="seed"):
        pe.EnvPoolVectorEnv("CartPole-v1", 2).reset(seed=[3, 7])
    with pytest.raises(PgradError, match="seed"):
        pe.EnvPoolVectorEnv("CartPole-v1", 2).reset(seed=[])
    listed, _ = pe.EnvPoolVectorEnv("CartPole-v1", 2).reset(seed=[5, 6])  # Gymnasium's form
    np.testing.assert_array_equal(listed, first)
    for seed in (2**31, -1):  # EnvPool itself asserts on int32 overflow
        with pytest.raises(PgradError, match=r"seeds in \[0, 2\*\*31\)"):
            pe.EnvPoolVectorEnv("CartPole-v1", 2).reset(seed=seed)


@needs_envpool
@pytest.mark.parametrize("env_id, module", [("CartPole-v1", None), ("LunarLander-v3", "Box2D"),
                                            ("HalfCheetah-v5", "mujoco")])
def test_spaces_and_metadata_are_gymnasiums(env_id: str, module: str | None) -> None:
    if module:
        pytest.importorskip(module)
    vec = pe.EnvPoolVectorEnv(env_id, 2)
    reference = gym.make(env_id)
    assert vec.single_observation_space == reference.observation_space
    assert vec.single_action_space == reference.action_space
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    vec.reset(seed=0)
    obs, *_ = vec.step(vec.action_space.sample())  # Gymnasium's dtype (float32 for MuJoCo)
    assert obs.shape == (2, *reference.observation_space.shape)
    assert obs.dtype == reference.observation_space.dtype
    reference.close()
    vec.close()


@needs_envpool
def test_mujoco_truncation_matches_gymnasium() -> None:
    pytest.importorskip("mujoco")
    actions = [np.zeros((2, 6), dtype=np.float32)] * 9
    pool = _play(pe.EnvPoolVectorEnv("HalfCheetah-v5", 2, max_episode_steps=3), actions)
    ref = _play(_gym_vec("HalfCheetah-v5", 2, max_episode_steps=3), actions)
    for key in ("term", "trunc", "reset"):
        np.testing.assert_array_equal(pool[key], ref[key])
    assert np.flatnonzero(pool["trunc"][:, 0]).tolist() == [2, 6]
    for run in (pool, ref):
        assert (run["rew"][run["reset"]] == 0).all() and (run["rew"][~run["reset"]] != 0).all()
        # Reset steps return a fresh state (positions within the reset noise, 0.1); the
        # truncating step returns the episode's own last state, not the reset one.
        assert (np.abs(run["obs"][1:][run["reset"]][:, :8]) <= 0.1).all()
        final = np.flatnonzero(run["trunc"][:, 0])[0]
        assert not np.allclose(run["obs"][final + 1], run["obs"][final + 2])


@needs_envpool
@pytest.mark.slow
@pytest.mark.parametrize("env_id, action_dim, z_range, angle_limit",
                         [("Hopper-v5", 3, (0.7, np.inf), 0.2),
                          ("Walker2d-v5", 6, (0.8, 2.0), 1.0)])
def test_mujoco_terminations_match_gymnasium(env_id: str, action_dim: int,
                                             z_range: tuple[float, float],
                                             angle_limit: float) -> None:
    """Zero actions: the robot falls; EnvPool ends episodes in the same unhealthy states
    (height ``obs[0]`` out of range or torso angle ``obs[1]`` too large) after
    Gymnasium's number of steps, in distribution."""
    pytest.importorskip("mujoco")
    actions = [np.zeros((16, action_dim), dtype=np.float32)] * 600
    pool = _play(pe.EnvPoolVectorEnv(env_id, 16), actions)
    ref = _play(_gym_vec(env_id, 16), actions)
    a, b = _lengths(pool), _lengths(ref)
    assert len(a) > 40 and len(b) > 40
    assert abs(a.mean() - b.mean()) < 0.05 * b.mean()
    for run in (pool, ref):
        assert not run["trunc"].any() and (run["rew"][run["reset"]] == 0).all()
        obs = run["obs"][1:]
        unhealthy = ((obs[..., 0] <= z_range[0]) | (obs[..., 0] >= z_range[1])
                     | (np.abs(obs[..., 1]) >= angle_limit))
        assert unhealthy[run["term"]].all()
        assert not unhealthy[~run["term"] & ~run["reset"]].any()


@needs_envpool
def test_box2d_episode_lengths_match_gymnasium() -> None:
    pytest.importorskip("Box2D")
    actions = [np.zeros(16, dtype=np.int64)] * 300
    pool = _play(pe.EnvPoolVectorEnv("LunarLander-v3", 16), actions)
    ref = _play(_gym_vec("LunarLander-v3", 16), actions)
    a, b = _lengths(pool), _lengths(ref)
    assert len(a) > 40 and len(b) > 40
    assert abs(a.mean() - b.mean()) < 0.1 * b.mean()
    for run in (pool, ref):  # a crash ends the episode with -100
        assert (run["rew"][run["reset"]] == 0).all()
        assert (run["rew"][run["term"]] == -100).mean() > 0.9


@needs_envpool
@pytest.mark.slow
def test_training_end_to_end_is_reproducible(tmp_path: Any) -> None:
    def run() -> pgrad.Reinforce:
        agent = pgrad.Reinforce("CartPole-v1", vectorization="envpool", num_envs=4,
                                batch_episodes=4, seed=3)
        agent.learn(600, tensorboard=False)
        return agent

    a, b = run(), run()
    assert isinstance(a.collector.envs, pe.EnvPoolVectorEnv)
    assert a.num_timesteps >= 600 and len(a.episode_returns) >= 4
    assert a.collector.get_state()["env_rng"] is None  # EnvPool's C++ state is not saved
    for p, q in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert p.equal(q)
    result = pgrad.evaluate(a, episodes=3, vectorization="envpool")
    assert result.episodes == 3 and (result.lengths >= 8).all()
    path = a.save(tmp_path / "agent")  # a checkpoint without env random state resumes
    resumed = pgrad.Reinforce.load(path, env="CartPole-v1")
    resumed.learn(200, tensorboard=False)
    assert resumed.num_timesteps >= a.num_timesteps + 200
    assert isinstance(resumed.collector.envs, pe.EnvPoolVectorEnv)


@needs_envpool
def test_auto_uses_envpool_only_for_verified_families(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("Box2D")
    monkeypatch.setattr(pgrad_envs, "_ANNOUNCED", set())
    for _ in range(2):
        vec = pgrad.make_vec_env("LunarLander-v3", 2, "auto")
        assert isinstance(vec, pe.EnvPoolVectorEnv)
        vec.close()
    assert capsys.readouterr().out.count("vectorization auto uses envpool for LunarLander") == 1
    vec = pgrad.make_vec_env("Walker2d-v5", 2, "auto")  # the verified MuJoCo ids
    assert isinstance(vec, pe.EnvPoolVectorEnv)
    vec.close()
    for env_id in ("CartPole-v1", "Pendulum-v1", "Acrobot-v1", "Ant-v5"):  # not verified
        vec = pgrad.make_vec_env(env_id, 2, "auto")
        assert not isinstance(vec, pe.EnvPoolVectorEnv)
        vec.close()
    vec = pgrad.make_vec_env("LunarLander-v3", 1, "auto")  # one env: nothing in parallel
    assert not isinstance(vec, pe.EnvPoolVectorEnv)
    vec.close()
    vec = pgrad.make_vec_env("Acrobot-v1", 2, "envpool")  # but served on request
    assert isinstance(vec, pe.EnvPoolVectorEnv)
    vec.close()
    monkeypatch.setattr(pe, "is_installed", lambda: False)
    vec = pgrad.make_vec_env("LunarLander-v3", 2, "auto")
    assert isinstance(vec.unwrapped, gym.vector.SyncVectorEnv)
    vec.close()


def test_missing_package_and_unmapped_ids_are_clear_errors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert pgrad.Config(vectorization="envpool").vectorization == "envpool"
    with pytest.raises(PgradError, match="does not serve pgrad/LineWalk-v0"):
        pgrad.make_vec_env(pgrad.LINEWALK_ID, 2, "envpool")
    monkeypatch.setitem(sys.modules, "envpool", None)
    with pytest.raises(PgradError, match=r"pip install 'pgrad\[envpool\]'"):
        pgrad.make_vec_env("CartPole-v1", 2, "envpool")


def test_atari_ids_map_to_envpool_with_gymnasium_layout() -> None:
    pool_id, kwargs, channels_last = pe.envpool_id("ALE/Pong-v5")
    assert (pool_id, channels_last) == ("Pong-v5", True)
    assert kwargs["repeat_action_probability"] == 0.25 and kwargs["frame_skip"] == 4
    assert not pe.auto_supported("ALE/Pong-v5")
    assert pe.envpool_id("NoSuchEnv-v0") is None
