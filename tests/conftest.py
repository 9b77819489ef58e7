"""Shared helpers: a plain-loop reference for returns, scripted policies, tiny environments."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrad.policies import Policy

UNSCALED: dict[str, Any] = {
    "normalize_obs": False, "scale_rewards": False, "value_steps": 1, "learning_rate": 1e-2,
    "grad_clip": "separate",
}
"""pgrad's defaults before the suite chose new ones (``pgrad.presets``' large-batch settings
without the batch sizes): raw observations and rewards, so V(s) is in the returns' own units,
one value step, Adam at 1e-2, separate clipping. Tests whose figures were fitted to them, or
that read V(s) in reward units, keep them."""


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Every test starts from the same torch, NumPy and Python random state."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)


def loop_returns(
    rewards: Sequence[float],
    gamma: float,
    terminated: Sequence[bool] | None = None,
    truncated: Sequence[bool] | None = None,
    next_values: Sequence[float] | None = None,
) -> list[float]:
    """G_t of one stream of steps, one Python float at a time (the reference).

    A terminated step ends its episode: G_t = r_t. A cut (truncated, or the last step) is
    bootstrapped: G_t = r_t + γ V(s_{t+1}), with V = 0 when ``next_values`` is None.
    """
    length = len(rewards)
    returns = [0.0] * length
    following = 0.0
    for t in reversed(range(length)):
        if terminated is not None and terminated[t]:
            following = float(rewards[t])
        elif (truncated is not None and truncated[t]) or t == length - 1:
            bootstrap = 0.0 if next_values is None else float(next_values[t])
            following = float(rewards[t]) + gamma * bootstrap
        else:
            following = float(rewards[t]) + gamma * following
        returns[t] = following
    return returns


def loop_returns_tensor(
    rewards: torch.Tensor,
    gamma: float,
    terminated: torch.Tensor | None = None,
    truncated: torch.Tensor | None = None,
    next_values: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`loop_returns` on every column of ``[T]`` or ``[T, N]`` tensors, in float64."""

    def column(x: torch.Tensor | None, i: int | None) -> list[Any] | None:
        if x is None:
            return None
        return (x if i is None else x[:, i]).tolist()

    if rewards.dim() == 1:
        out = loop_returns(rewards.tolist(), gamma, column(terminated, None),
                           column(truncated, None), column(next_values, None))
        return torch.tensor(out, dtype=torch.float64)
    columns = [
        loop_returns(column(rewards, i), gamma, column(terminated, i), column(truncated, i),
                     column(next_values, i))
        for i in range(rewards.shape[1])
    ]
    return torch.tensor(columns, dtype=torch.float64).T.reshape(rewards.shape)


def tutorial_returns(rewards: Sequence[float], gamma: float = 0.99) -> list[float]:
    """The tutorial's ``compute_returns(..., normalize=False)`` loop, verbatim in spirit."""
    total = 0.0
    returns: list[float] = []
    for r in reversed(rewards):
        total = r + gamma * total
        returns.insert(0, total)
    return returns


def script_actions(policy: Policy, action: int) -> None:
    """Make ``policy`` always take ``action`` (in the rollout and in evaluation)."""

    def sample(obs: Any, deterministic: bool = False, generator: Any = None) -> torch.Tensor:
        return torch.full((len(obs),), action, dtype=torch.int64)

    policy.sample = sample  # type: ignore[method-assign]


def differing_parameters(a: torch.nn.Module, b: torch.nn.Module) -> list[str]:
    """Names of the state-dict entries of ``a`` and ``b`` that are not bit-identical."""
    sa, sb = a.state_dict(), b.state_dict()
    return sorted(k for k in sa.keys() | sb.keys()
                  if k not in sa or k not in sb or not torch.equal(sa[k], sb[k]))


class EndlessEnv(gym.Env[np.ndarray, np.int64]):
    """Reward 1 at every step, never terminates, the same observation forever.

    Cut by a time limit, its true value is Σ γ^k = 1 / (1 − γ) at every state.
    """

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.ones(1, dtype=np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return np.ones(1, dtype=np.float32), 1.0, False, False, {}


def make_endless_env(max_episode_steps: int = 20) -> gym.Env:
    """:class:`EndlessEnv` under a ``TimeLimit``."""
    return gym.wrappers.TimeLimit(EndlessEnv(), max_episode_steps=max_episode_steps)


class ContinuousEnv(gym.Env[np.ndarray, np.ndarray]):
    """A small env with unbounded Box observations and bounded Box actions (for Gaussians)."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.t = 0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.standard_normal(3).astype(np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.t += 1
        obs = self.np_random.standard_normal(3).astype(np.float32)
        return obs, -float(np.square(action).sum()), False, self.t >= 10, {}


class TextEnv(gym.Env[str, np.int64]):
    """Observes a Text space, which no pgrad policy supports."""

    observation_space = gym.spaces.Text(5)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return "a", {}

    def step(self, action):
        return "a", 0.0, True, False, {}


def make_text_env() -> gym.Env:
    return TextEnv()


TEXT_ENV_ID = "pgrad-test/TextObs-v0"


def register_text_env() -> None:
    if TEXT_ENV_ID not in gym.registry:
        gym.register(TEXT_ENV_ID, entry_point=make_text_env)


def make_space_env(observation_space: gym.Space, action_space: gym.Space) -> gym.Env:
    """A 10-step env in the given spaces (tests/test_spaces.py's SpaceEnv)."""
    from test_spaces import SpaceEnv

    return SpaceEnv(observation_space, action_space)


SPACE_ENV_CASES = [
    (gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (3,)), "mode": gym.spaces.Discrete(3)}),
     gym.spaces.MultiDiscrete([2, 3])),
    (gym.spaces.MultiBinary(4), gym.spaces.MultiBinary(3)),
]
