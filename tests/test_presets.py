"""Per-env presets: applied under the user's settings, saved with the run."""

from __future__ import annotations

import pgrad
from pgrad.config import Config
from pgrad.envs import LINEWALK_ID
from pgrad.presets import PRESETS, preset

_KEYS = ("num_envs", "batch_episodes", "n_steps", "normalize_obs", "scale_rewards",
         "value_steps", "learning_rate", "grad_clip", "gae_lambda", "hidden_sizes")
_LARGE = (64, 64, None, False, False, 1, 1e-2, "separate", 1.0, (64, 64))
_FITTED = (16, 16, None, True, True, 10, 3e-3, "joint", 1.0, (64, 64))
MEASURED: dict[str, tuple] = {
    "CartPole-v1": (64, 64, None, False, False, 1, 2e-2, "separate", 1.0, (32, 32)),
    "Acrobot-v1": _FITTED,
    "pgrad/LineWalk-v0": _LARGE,
    "LunarLander-v3": _LARGE,
    "Pendulum-v1": (*_FITTED[:-2], 0.95, (64, 64)),
    "InvertedPendulum-v5": (16, 16, None, False, False, 1, 1e-2, "joint", 1.0, (64, 64)),
    "HalfCheetah-v5": (16, 16, None, True, True, 1, 1e-2, "joint", 1.0, (64, 64)),
    "Walker2d-v5": _FITTED,
    "Hopper-v5": _FITTED,
    "MinAtar/Breakout-v1": (16, 16, 32, False, False, 1, 1e-3, "joint", 1.0, (64, 64)),
    "ALE/Pong-v5": (8, 16, 128, False, False, 1, 2.5e-4, "separate", 1.0, (64, 64)),
    "MountainCar-v0": _FITTED,  # no preset: the defaults
}
"""The settings each env's runs in the benchmarks were measured with (docs/presets.md):
a change of the Config defaults must leave them as they are."""


def test_every_preset_is_a_valid_config() -> None:
    for env_id, settings in PRESETS.items():
        Config(env_id=env_id, **settings)


def test_every_preset_resolves_to_the_settings_it_was_measured_with() -> None:
    for env_id, want in MEASURED.items():
        config = Config(env_id=env_id, **preset(env_id))
        assert tuple(getattr(config, key) for key in _KEYS) == want, env_id


def test_linewalk_preset_ends_episodes_at_the_time_limit() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID)
    assert agent.config.bootstrap_truncated is False
    assert agent.config == Config(env_id=LINEWALK_ID, **preset(LINEWALK_ID))


def test_explicit_settings_win_over_the_preset() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, bootstrap_truncated=True, gamma=0.9)
    assert agent.config.bootstrap_truncated is True
    assert agent.config.gamma == 0.9


def test_an_env_without_preset_gets_the_defaults() -> None:
    assert preset("MountainCar-v0") == {}
    assert pgrad.Reinforce("MountainCar-v0").config == Config(env_id="MountainCar-v0")


def test_preset_returns_a_copy() -> None:
    preset(LINEWALK_ID)["gamma"] = 0.5
    assert "gamma" not in PRESETS[LINEWALK_ID]
