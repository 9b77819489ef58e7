"""Presets of image environments: MinAtar by either id spelling, Atari with its wrappers."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgrad
from pgrad.config import Config
from pgrad.encoders import ImageEncoder
from pgrad.envs import make_env, make_vec_env, wrap_env
from pgrad.errors import PgradError
from pgrad.presets import PRESET_FAMILIES, PRESETS, preset

HAS_MINATAR = importlib.util.find_spec("minatar") is not None
HAS_ATARI = (importlib.util.find_spec("ale_py") is not None
             and importlib.util.find_spec("cv2") is not None)
needs_minatar = pytest.mark.skipif(not HAS_MINATAR, reason="needs minatar")
needs_atari = pytest.mark.skipif(not HAS_ATARI, reason="needs pgrad[atari] (ale-py, opencv)")


def test_minatar_preset_is_found_for_both_id_spellings() -> None:
    plain = preset("MinAtar/Breakout-v1")
    assert plain, "MinAtar/Breakout-v1 has a preset"
    assert preset("minatar:MinAtar/Breakout-v1") == plain
    assert plain["env_packages"] == ("minatar",)


def test_a_module_prefix_does_not_invent_presets() -> None:
    assert preset("minatar:MinAtar/Unknown-v1") == {}
    assert preset("mymod:MountainCar-v0") == preset("MountainCar-v0") == {}


def test_atari_family_covers_v5_ids_only() -> None:
    for env_id in ("ALE/Pong-v5", "ALE/Breakout-v5", "ale_py:ALE/Pong-v5"):
        settings = preset(env_id)
        assert settings["env_wrapper"] == "atari"
        assert settings["env_kwargs"] == {"frameskip": 1}
    assert preset("ALE/Pong-v4") == {}
    assert preset("Pong-v5") == {}


def test_family_presets_are_valid_configs_and_copies() -> None:
    for pattern, settings in PRESET_FAMILIES.items():
        Config(env_id=pattern, **settings)
    preset("ALE/Pong-v5")["env_kwargs"]["frameskip"] = 4
    assert PRESET_FAMILIES["ALE/*-v5"]["env_kwargs"] == {"frameskip": 1}
    for env_id, settings in PRESETS.items():
        Config(env_id=env_id, **settings)


@needs_minatar
@pytest.mark.parametrize("env_id", ["minatar:MinAtar/Breakout-v1", "MinAtar/Breakout-v1"])
def test_minatar_agent_gets_its_preset_and_the_small_cnn(env_id: str) -> None:
    agent = pgrad.Reinforce(env_id)
    assert agent.config.n_steps == preset("MinAtar/Breakout-v1")["n_steps"]
    assert agent.config.learning_rate == preset(env_id)["learning_rate"]
    assert isinstance(agent.policy.encoder, ImageEncoder)
    assert agent.policy.encoder.out_shape == (4, 10, 10)


def test_unknown_wrapper_is_refused() -> None:
    with pytest.raises(PgradError, match="env_wrapper must be one of atari"):
        Config(env_wrapper="nope")


def test_atari_wrapper_refuses_a_non_atari_env() -> None:
    with pytest.raises(PgradError, match="needs an Atari env"):
        wrap_env(gym.make("CartPole-v1"), "atari")


@needs_atari
def test_atari_wrapper_with_envpool_is_refused() -> None:
    with pytest.raises(PgradError, match="not EnvPool's"):
        make_vec_env("ALE/Pong-v5", 2, "envpool", packages=("ale_py",), wrapper="atari",
                     frameskip=1)


@needs_atari
@pytest.mark.parametrize(("frameskip", "wrapper_skip"), [(1, 4), (4, 1)])
def test_atari_wrapper_skips_frames_once(frameskip: int, wrapper_skip: int) -> None:
    env = make_env("ALE/Pong-v5", packages=("ale_py",), wrapper="atari", frameskip=frameskip)
    preprocessing = env.env  # FrameStackObservation(AtariPreprocessing(...))
    assert isinstance(preprocessing, gym.wrappers.AtariPreprocessing)
    assert preprocessing.frame_skip == wrapper_skip
    env.close()


@needs_atari
def test_atari_episode_cap_counts_agent_steps() -> None:
    env = make_env("ALE/Pong-v5", packages=("ale_py",), wrapper="atari", frameskip=1,
                   max_episode_steps=5)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    ends = []
    for _ in range(5):
        obs, _, terminated, truncated, _ = env.step(0)
        ends.append((terminated, truncated))
    assert ends == [(False, False)] * 4 + [(False, True)]
    env.close()


@needs_atari
@pytest.mark.slow
def test_atari_preset_trains_on_stacked_84x84_frames() -> None:
    agent = pgrad.Reinforce("ALE/Pong-v5", num_envs=2, n_steps=8, max_episode_steps=20)
    assert agent.config.env_wrapper == "atari"
    assert agent.observation_space == gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert isinstance(agent.policy.encoder, ImageEncoder)
    assert agent.policy.encoder.out_shape == (4, 84, 84)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    agent.learn(total_timesteps=16, tensorboard=False)
    assert agent.num_timesteps == 16 and agent.num_updates == 1
    obs = agent.collector.envs.reset(seed=0)[0]  # type: ignore[union-attr]
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(),
                                                     strict=True))
    result = pgrad.evaluate(agent, episodes=2, num_envs=2)  # 20-step episodes
    assert result.episodes == 2 and list(result.lengths) == [20, 20]
    agent.close()
