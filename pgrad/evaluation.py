"""Evaluation: play a trained agent for a number of episodes and report the returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pgrad.envs import EnvSource, check_spaces, make_vec_env
from pgrad.errors import PgradError

Reinforce = Any
"""A :class:`pgrad.Reinforce` (typed loosely: the agent imports this module)."""

__all__ = ["EvalResult", "evaluate"]


@dataclass(frozen=True)
class EvalResult:
    """Returns of ``len(returns)`` evaluation episodes."""

    returns: np.ndarray
    """Undiscounted return of each episode (grouped by sub-env)."""
    lengths: np.ndarray
    """Length of each episode."""

    @property
    def mean(self) -> float:
        """Mean return."""
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        """Standard deviation of the returns (population, as SB3's ``evaluate_policy``)."""
        return float(self.returns.std())

    @property
    def episodes(self) -> int:
        """Number of episodes."""
        return int(self.returns.size)


def evaluate(agent: Reinforce, env: EnvSource | None = None, episodes: int = 10, *,
             deterministic: bool = True, seed: int | None = 0, num_envs: int = 16,
             vectorization: str = "auto") -> EvalResult:
    """Play ``episodes`` full episodes of ``agent`` in ``env`` (default: the agent's env).

    Episodes run in a vector env of up to ``num_envs`` copies; every episode that is
    started is played to its end and counted, so no episode length is favoured.
    ``deterministic`` takes the policy's mode (argmax / mean) instead of sampling.
    """
    if episodes < 1:
        raise PgradError(f"episodes must be at least 1, got {episodes}")
    source = env if env is not None else agent.env_source
    if source is None:
        raise PgradError("no environment to evaluate in: pass env=")
    envs = make_vec_env(source, min(num_envs, episodes), vectorization,
                        **agent.env_options(own_env=env is None))
    check_spaces(envs, agent.observation_space, agent.action_space)
    n = envs.num_envs
    returns: list[list[float]] = [[] for _ in range(n)]
    lengths: list[list[int]] = [[] for _ in range(n)]
    ep_return = np.zeros(n)
    ep_length = np.zeros(n, dtype=np.int64)
    quota = np.full(n, episodes // n) + (np.arange(n) < episodes % n)  # episodes per env
    obs, _ = envs.reset(seed=seed)
    generator = None
    if seed is not None:  # stochastic evaluation repeats exactly under a seed
        generator = torch.Generator(device=agent.policy.device).manual_seed(seed)
    prev_done = np.zeros(n, dtype=bool)
    try:
        with torch.inference_mode():
            while any(len(r) < q for r, q in zip(returns, quota, strict=True)):
                actions = agent.policy.sample(obs, deterministic, generator)
                obs, rewards, terminated, truncated, _ = envs.step(agent.policy.to_env(actions))
                live = ~prev_done
                ep_return += np.where(live, rewards, 0.0)
                ep_length += live
                prev_done = terminated | truncated
                for i in np.flatnonzero(prev_done & live):
                    if len(returns[i]) < quota[i]:
                        returns[i].append(float(ep_return[i]))
                        lengths[i].append(int(ep_length[i]))
                    ep_return[i] = 0.0
                    ep_length[i] = 0
    finally:
        envs.close()
    return EvalResult(returns=np.array([r for env_returns in returns for r in env_returns]),
                      lengths=np.array([n for env_lengths in lengths for n in env_lengths]))
