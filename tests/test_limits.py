"""benchmarks/limits.py's fraction of the ceiling: the two kinds of batch, the valid share
and the bound it sets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import limits  # noqa: E402


def test_share_bound_charges_idle_steps_the_env_step_only() -> None:
    assert limits.share_bound(0.15, 0.3, 1.05, 1.0) == pytest.approx(1.0)
    # a valid step costs 0.15 / 0.5 + 0.3 + 1.05 = 1.65 against 1.5
    assert limits.share_bound(0.15, 0.3, 1.05, 0.5) == pytest.approx(1.5 / 1.65)
    assert limits.share_bound(0.15, 0.3, 1.05, 0.69) > limits.share_bound(0.15, 0.3, 1.05, 0.5)


def test_batch_configs_whole_episodes_and_fixed_steps_of_the_update_size() -> None:
    configs = limits.batch_configs(256, 16_384)
    assert configs["whole_episodes"] == {"num_envs": 256, "batch_episodes": 256}
    assert configs["fixed_steps"] == {"num_envs": 256, "n_steps": 64}


def test_pgrad_rate_counts_idle_steps_of_whole_episode_batches_only() -> None:
    whole = limits.pgrad_rate(8, 600, hidden_sizes=(8,), batch_episodes=8)
    fixed = limits.pgrad_rate(8, 600, hidden_sizes=(8,), n_steps=16)
    for run in (whole, fixed):
        assert run["steps"] >= 600 and run["env_steps"] >= run["steps"]
        assert run["valid_share"] == pytest.approx(run["steps"] / run["env_steps"])
    # finished envs idle until the longest of the batch's episodes ends ...
    assert whole["valid_share"] < 0.9
    # ... while fixed steps lose only Gymnasium's reset steps (one per finished episode)
    assert fixed["valid_share"] > 0.9
