"""Per-env presets: applied under the user's settings, saved with the run."""

from __future__ import annotations

import pgrad
from pgrad.config import Config
from pgrad.envs import LINEWALK_ID
from pgrad.presets import PRESETS, preset


def test_every_preset_is_a_valid_config() -> None:
    for env_id, settings in PRESETS.items():
        Config(env_id=env_id, **settings)


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
