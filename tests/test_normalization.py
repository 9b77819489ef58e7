"""Running statistics: exact merging, use in the policy, survival through checkpoints."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgrad
from pgrad.normalization import RunningMeanStd


def test_batches_merge_to_the_statistics_of_their_concatenation() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (1, 7, 50, 3)]
    rms = RunningMeanStd((4,))
    for b in batches:
        rms.update(torch.as_tensor(b))
    everything = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean.numpy(), everything.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rms.var.numpy(), everything.var(0), rtol=1e-12)
    assert rms.count.item() == len(everything)


def test_normalize_centres_scales_and_clips() -> None:
    rms = RunningMeanStd((2,), clip=3.0)
    x = torch.tensor([[0.0, 10.0], [2.0, 30.0]])
    assert torch.equal(rms.normalize(x), x)  # nothing seen yet: unchanged
    rms.update(x)
    out = rms.normalize(torch.tensor([[1.0, 20.0], [100.0, -100.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0], [3.0, -3.0]]))


def test_empty_batch_changes_nothing() -> None:
    rms = RunningMeanStd((2,))
    rms.update(torch.zeros(0, 2))
    assert rms.count.item() == 0


def test_observation_statistics_are_learned_saved_and_applied(tmp_path: Path) -> None:
    agent = pgrad.Reinforce("CartPole-v1", seed=0, num_envs=4, batch_episodes=4,
                            normalize_obs=True, scale_rewards=True)
    agent.learn(2_000, tensorboard=False)
    rms = agent.policy.obs_rms
    assert rms is not None and rms.count.item() > 0
    assert agent.return_rms.count.item() > 0
    loaded = pgrad.Reinforce.load(agent.save(tmp_path / "m.safetensors"))
    assert loaded.policy.obs_rms is not None
    for name in ("mean", "var", "count"):
        assert torch.equal(getattr(loaded.policy.obs_rms, name), getattr(rms, name))
        assert torch.equal(getattr(loaded.return_rms, name), getattr(agent.return_rms, name))
    obs = np.array([[0.1, -0.2, 0.05, 0.3], [2.0, 1.0, -0.1, -1.0]], dtype=np.float32)
    with torch.no_grad():
        expected = agent.policy.distribution(obs).logits
        torch.testing.assert_close(loaded.policy.distribution(obs).logits, expected)
        raw = agent.policy.backbone(torch.as_tensor(obs))
        assert not torch.allclose(agent.policy.logits_head(raw), expected)  # stats applied


def test_reward_scaling_makes_learning_scale_free() -> None:
    """Rewards ×1000 are divided by a std 1000× larger: the same updates, the same weights."""
    def trained(scale: float) -> pgrad.Reinforce:
        def make():
            return gym.wrappers.TransformReward(gym.make("CartPole-v1"), lambda r: r * scale)
        agent = pgrad.Reinforce(make, seed=0, num_envs=4, batch_episodes=4,
                                scale_rewards=True, vectorization="sync")
        return agent.learn(3_000, tensorboard=False)

    small, large = trained(1.0), trained(1000.0)
    assert large.return_rms.std.item() == pytest.approx(1000 * small.return_rms.std.item(),
                                                        rel=1e-6)
    for a, b in zip(small.policy.parameters(), large.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    unscaled = pgrad.Reinforce(lambda: gym.make("CartPole-v1"), seed=0, num_envs=4,
                               batch_episodes=4, scale_rewards=False,
                               vectorization="sync").learn(
                                   3_000, tensorboard=False)
    assert not all(torch.allclose(a, b) for a, b in zip(
        small.policy.parameters(), unscaled.policy.parameters(), strict=True))


# ---------------------------------------------------------------- huge magnitudes
def test_constant_observations_of_1e200_have_zero_variance_not_nan() -> None:
    # The first merge computed δ² · count with δ² = inf and count = 0: inf · 0 = nan.
    rms = RunningMeanStd((2,))
    rms.update(torch.tensor([[1e200, -1e200], [1e200, -1e200]], dtype=torch.float64))
    assert rms.mean.tolist() == [1e200, -1e200]
    assert rms.var.tolist() == [0.0, 0.0]
    rms.update(torch.tensor([[1e200, -1e200]], dtype=torch.float64))
    assert rms.mean.tolist() == [1e200, -1e200] and rms.var.tolist() == [0.0, 0.0]
    out = rms.normalize(torch.tensor([[1e200, -1e200]], dtype=torch.float64))
    assert out.tolist() == [[0.0, 0.0]]


def test_deviations_above_1e154_give_the_exact_finite_variance() -> None:
    # Squares of deviations overflow float64 above ~1.3e154; their weighted mean need not.
    big = 1e155
    batch = torch.zeros(1000, 1, dtype=torch.float64)
    batch[0, 0] = big
    rms = RunningMeanStd((1,))
    rms.update(batch)
    mean = big / 1000
    # Var = (1/n) Σ (x − mean)² = big² (n − 1) / n², written so that nothing overflows.
    expected = (big * (999 ** 0.5) / 1000) ** 2
    assert rms.mean.item() == pytest.approx(mean, rel=1e-12)
    assert rms.var.item() == pytest.approx(expected, rel=1e-12)

    merged = RunningMeanStd((1,))
    merged.update(torch.zeros(999, 1, dtype=torch.float64))
    merged.update(torch.full((1, 1), big, dtype=torch.float64))  # δ = 1e155 at count 999
    assert merged.mean.item() == pytest.approx(mean, rel=1e-12)
    assert merged.var.item() == pytest.approx(expected, rel=1e-12)


def test_a_variance_that_overflows_is_inf_never_nan() -> None:
    rms = RunningMeanStd((1,))
    rms.update(torch.tensor([[1e200], [-1e200]], dtype=torch.float64))
    rms.update(torch.tensor([[3e200]], dtype=torch.float64))
    assert rms.var.item() == float("inf") and not torch.isnan(rms.mean).any()
    assert torch.isfinite(rms.normalize(torch.tensor([[5e200]], dtype=torch.float64))).all()
