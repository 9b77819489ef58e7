"""Evaluation: play a trained agent for a number of episodes and report the returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from pgrad.envs import EnvSource, check_spaces, make_vec_env
from pgrad.errors import PgradError
from pgrad.policies import Policy
from pgrad.rollout import EpisodeTracker
from pgrad.threads import torch_threads

Reinforce = Any
"""A :class:`pgrad.Reinforce` (typed loosely: the agent imports this module)."""

__all__ = ["EvalResult", "evaluate", "play_episodes"]


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
             vectorization: str = "auto", threads: int | None = 1,
             render_mode: str | None = None) -> EvalResult:
    """Play ``episodes`` full episodes of ``agent`` in ``env`` (default: the agent's env).

    Episodes run in a vector env of up to ``num_envs`` copies (one, stepped in this
    process, with ``render_mode="human"``: a window shows them); see :func:`play_episodes`
    for which episodes count.
    ``deterministic`` takes the policy's mode (argmax / mean) instead of sampling.
    ``threads``: torch CPU threads while playing (None: leave torch's setting); the
    previous setting is restored afterwards.
    """
    if episodes < 1:
        raise PgradError(f"episodes must be at least 1, got {episodes}")
    if num_envs < 1:
        raise PgradError(f"num_envs must be at least 1, got {num_envs}")
    if threads is not None and threads < 1:
        raise PgradError(f"threads must be at least 1 (or None), got {threads}")
    source = env if env is not None else agent.env_source
    if source is None:
        raise PgradError("no environment to evaluate in: pass env=")
    kwargs: dict[str, Any] = agent.env_options(own_env=env is None)
    if render_mode is not None:
        if callable(source):
            raise PgradError("render_mode needs an environment id, not a callable")
        kwargs["render_mode"] = render_mode
        if render_mode == "human":  # one window: one env, stepped in this process
            num_envs, vectorization = 1, "sync"
    envs = make_vec_env(source, min(num_envs, episodes), vectorization, **kwargs)
    try:
        check_spaces(envs, agent.observation_space, agent.action_space)
        with torch_threads(threads):
            return play_episodes(agent.policy, envs, episodes, deterministic=deterministic,
                                 seed=seed)
    finally:
        envs.close()


def play_episodes(policy: Policy, envs: VectorEnv, episodes: int, *,
                  deterministic: bool = True, seed: int | None = 0) -> EvalResult:
    """Reset ``envs`` (with ``seed``) and play ``policy`` until ``episodes`` have finished.

    Env ``i`` of N counts its first ``episodes // N`` episodes (one more for the first
    ``episodes % N`` envs) and no others, so every counted episode is one an env would have
    played anyway: short episodes are not favoured, as they would be by counting the first
    ``episodes`` to finish. Returns are grouped by env. With a ``seed``, a stochastic
    policy samples from its own generator, so the result repeats exactly.
    """
    n = envs.num_envs
    quota = np.full(n, episodes // n) + (np.arange(n) < episodes % n)  # episodes per env
    returns: list[list[float]] = [[] for _ in range(n)]
    lengths: list[list[int]] = [[] for _ in range(n)]
    tracker = EpisodeTracker(n)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=policy.device).manual_seed(seed)
    obs, _ = envs.reset(seed=seed)
    counts = np.zeros(n, dtype=np.int64)
    with torch.inference_mode():
        while (counts < quota).any():
            actions = policy.sample(obs, deterministic, generator)
            obs, rewards, terminated, truncated, _ = envs.step(policy.to_env(actions))
            _, finished = tracker.step(rewards, terminated, truncated)
            if finished is None:
                continue
            for i, ret, length in zip(finished.envs.tolist(), finished.returns.tolist(),
                                      finished.lengths.tolist(), strict=True):
                if counts[i] < quota[i]:
                    returns[i].append(ret)
                    lengths[i].append(length)
                    counts[i] += 1
    return EvalResult(returns=np.array([r for env_returns in returns for r in env_returns]),
                      lengths=np.array([k for env_lengths in lengths for k in env_lengths]))
