"""Settings tuned per environment, applied under the user's own settings.

``pgrad.Reinforce("pgrad/LineWalk-v0")`` and ``pgrad train pgrad/LineWalk-v0`` start from the
:class:`pgrad.Config` defaults, then this table's entry for the env id, then whatever the
user gave explicitly (which always wins). The resolved settings are saved with every run
(``config.json``) and checkpoint. Each entry says why it differs from the defaults.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS", "preset"]

PRESETS: dict[str, dict[str, Any]] = {
    # The Config defaults are tuned on CartPole-v1 (benchmarks/cartpole.py).
    "CartPole-v1": {},
    # The CartPole defaults solve it as they are: evaluation −86, −85, −79 after 500k steps,
    # training mean past −100 by 116k–232k steps (benchmarks/results/learning.md).
    "Acrobot-v1": {},
    # The tutorial ends each walk after 50 steps and learns from it as a finished episode.
    # Bootstrapped instead, 50 steps of +0.01 are worth 0.01 / (1 - 0.99) = 1.0 ≈ the goal's
    # 0.9996, and the agent has no reason to walk to the goal.
    "pgrad/LineWalk-v0": {"bootstrap_truncated": False},
    # Episodes of up to 1000 steps: 16 per batch give 4× the updates of 64 for the same
    # steps; evaluation 1000 on 3/3 seeds within 500k steps (benchmarks/results/learning.md).
    "InvertedPendulum-v5": {"num_envs": 16, "batch_episodes": 16},
    # Observations of very different scales and rewards in the hundreds: normalised
    # observations and rewards scaled by the returns' running std. Evaluation after 3M
    # steps: 3067, 1616, 1049 on seeds 0–2 (benchmarks/results/learning.md).
    "HalfCheetah-v5": {"num_envs": 16, "batch_episodes": 16, "normalize_obs": True,
                       "scale_rewards": True},
    # Only a fitted baseline (10 value steps per batch) on normalised observations and scaled
    # rewards learns these at all; Adam at CartPole's 1e-2 reaches the target and falls back,
    # at 3e-3 it holds. Evaluation after 2M / 3M steps, seeds 0–2: Pendulum −868, −219,
    # −202; LunarLander 260, 248, 153 (benchmarks/results/learning.md).
    "Pendulum-v1": {"num_envs": 16, "batch_episodes": 16, "normalize_obs": True,
                    "scale_rewards": True, "value_steps": 10, "learning_rate": 3e-3},
    "LunarLander-v3": {"num_envs": 16, "batch_episodes": 16, "normalize_obs": True,
                       "scale_rewards": True, "value_steps": 10, "learning_rate": 3e-3},
}


def preset(env_id: str | None) -> dict[str, Any]:
    """The tuned settings for ``env_id`` (empty when there are none)."""
    return dict(PRESETS.get(env_id or "", {}))
