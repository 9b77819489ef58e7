"""Test envs registered on import, as third-party env packages do (``module:EnvId`` tests).

``PgradTest/Kwargs-v0``: pays ``reward`` at each of its ``length`` steps (kwargs of the
constructor, to check ``env_kwargs`` reach it). ``PgradTest/Endless-v0``: never
terminates and is registered without a time limit (CliffWalking's situation).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

KWARGS_ID = "PgradTest/Kwargs-v0"
ENDLESS_ID = "PgradTest/Endless-v0"


class KwargsEnv(gym.Env[np.ndarray, np.int64]):
    """``length`` steps of reward ``reward``; the observation is the steps left."""

    def __init__(self, reward: float = 1.0, length: int = 5) -> None:
        self.reward, self.length = float(reward), int(length)
        self.observation_space = gym.spaces.Box(0.0, np.inf, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return np.array([self.length], dtype=np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.t += 1
        left = np.array([self.length - self.t], dtype=np.float32)
        return left, self.reward, self.t >= self.length, False, {}


class EndlessEnv(gym.Env[np.ndarray, np.int64]):
    """Reward 1 forever; no terminal state, no time limit."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return np.zeros(1, dtype=np.float32), 1.0, False, False, {}


gym.register(KWARGS_ID, entry_point=KwargsEnv, max_episode_steps=100)
gym.register(ENDLESS_ID, entry_point=EndlessEnv)
