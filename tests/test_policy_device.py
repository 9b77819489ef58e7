"""``Policy.device`` is cached for the rollout's hot path and follows the parameters."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from pgrad.policies import make_policy


def _policy() -> torch.nn.Module:
    obs = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    return make_policy(obs, gym.spaces.Discrete(2), hidden_sizes=(8,))


def test_device_follows_to_and_load_state_dict_with_assign() -> None:
    policy = _policy()
    assert policy.device == torch.device("cpu")
    policy.to("meta")
    assert policy.device == torch.device("meta")
    policy.load_state_dict(_policy().state_dict(), assign=True)
    assert policy.device == torch.device("cpu")
    assert policy.sample(np.zeros((2, 3), np.float32)).shape == (2,)
