"""pgrad.losses: the REINFORCE loss terms, their gradients and their signs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrad.losses import advantages, reinforce_loss
from pgrad.policies import make_policy
from pgrad.returns import normalize

OBS_SPACE = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)


def batch(size: int = 8) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "log_probs": torch.randn(size, generator=gen).requires_grad_(),
        "returns": torch.randn(size, generator=gen) * 3,
        "values": torch.randn(size, generator=gen).requires_grad_(),
        "entropy": torch.rand(size, generator=gen).requires_grad_(),
    }


# ---------------------------------------------------------------- the terms
def test_terms_equal_their_formulas() -> None:
    b = batch()
    out = reinforce_loss(**b, vf_coef=0.7, ent_coef=0.05)
    adv = b["returns"] - b["values"].detach()

    torch.testing.assert_close(out["loss_policy"], -(b["log_probs"] * adv).mean())
    torch.testing.assert_close(out["loss_value"],
                               torch.nn.functional.mse_loss(b["values"], b["returns"]))
    torch.testing.assert_close(out["entropy"], b["entropy"].mean())
    torch.testing.assert_close(
        out["loss"], out["loss_policy"] + 0.7 * out["loss_value"] - 0.05 * out["entropy"])
    torch.testing.assert_close(out["advantage_mean"], adv.mean())


def test_without_baseline_the_advantage_is_the_return() -> None:
    b = batch()
    out = reinforce_loss(b["log_probs"], b["returns"])
    torch.testing.assert_close(out["loss_policy"], -(b["log_probs"] * b["returns"]).mean())
    assert out["loss_value"].item() == 0.0
    assert out["entropy"].item() == 0.0
    torch.testing.assert_close(out["loss"], out["loss_policy"])


def test_entropy_bonus_lowers_the_loss() -> None:
    b = batch()
    without = reinforce_loss(**b, ent_coef=0.0)["loss"]
    out = reinforce_loss(**b, ent_coef=0.1)
    out["loss"].backward()
    # Minimising the loss raises the entropy: dL/dH_i = −ent_coef / B.
    torch.testing.assert_close(out["loss"], without - 0.1 * b["entropy"].mean())
    torch.testing.assert_close(b["entropy"].grad, torch.full((8,), -0.1 / 8))


def test_value_gradient_comes_only_from_the_value_loss() -> None:
    b = batch()
    reinforce_loss(**b, vf_coef=0.5)["loss"].backward()
    # d/dV of 0.5 · mean((V − G)²) = (V − G) / B; the policy term adds nothing.
    expected = (b["values"].detach() - b["returns"]) / 8
    torch.testing.assert_close(b["values"].grad, expected)


def test_advantages_are_detached() -> None:
    b = batch()
    returns = b["returns"].clone().requires_grad_()
    for adv in (advantages(returns, b["values"]), advantages(returns),
                advantages(returns, b["values"], normalize_advantages=True)):
        assert not adv.requires_grad


def test_policy_loss_sends_no_gradient_into_the_shared_value_head() -> None:
    policy = make_policy(OBS_SPACE, gym.spaces.Discrete(3), hidden_sizes=(16,),
                         value_net="shared")
    obs = torch.rand(10, 4) * 2 - 1
    actions = torch.randint(0, 3, (10,))
    log_probs, entropy, values = policy.evaluate_actions(obs, actions)

    out = reinforce_loss(log_probs, torch.randn(10), values, entropy)
    out["loss_policy"].backward()

    assert policy.value_head is not None
    for p in policy.value_head.parameters():
        assert p.grad is None or torch.count_nonzero(p.grad) == 0
    assert policy.logits_head.weight.grad is not None
    assert torch.count_nonzero(policy.logits_head.weight.grad) > 0


@pytest.mark.parametrize("bad", ["log_probs", "values"])
def test_column_vectors_are_rejected(bad: str) -> None:
    """A [B, 1] tensor against a [B] one would broadcast to [B, B]: the classic bug."""
    b = batch()
    b[bad] = b[bad].unsqueeze(-1)
    with pytest.raises(ValueError):
        reinforce_loss(**b)


# ---------------------------------------------------------------- normalisation
def test_normalize_advantages() -> None:
    b = batch()
    out = reinforce_loss(**b, normalize_advantages=True)
    adv = b["returns"] - b["values"].detach()
    expected = (adv - adv.mean()) / (adv.std() + 1e-8)

    torch.testing.assert_close(out["loss_policy"], -(b["log_probs"] * expected).mean())
    torch.testing.assert_close(out["advantage_mean"], adv.mean())  # before normalising
    torch.testing.assert_close(advantages(b["returns"], b["values"],
                                          normalize_advantages=True), expected)
    normalized = advantages(b["returns"], normalize_advantages=True)
    assert normalized.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert normalized.std().item() == pytest.approx(1.0, abs=1e-6)


def test_normalize_advantages_leaves_a_single_step_alone() -> None:
    out = reinforce_loss(torch.tensor([-0.5]), torch.tensor([2.0]), normalize_advantages=True)
    assert out["loss_policy"].item() == pytest.approx(1.0)


def test_normalize_without_baseline_is_the_tutorials_return_normalisation() -> None:
    b = batch()
    out = reinforce_loss(b["log_probs"], b["returns"], normalize_advantages=True)
    expected = -(b["log_probs"] * normalize(b["returns"])).mean()
    torch.testing.assert_close(out["loss_policy"], expected)


# ---------------------------------------------------------------- gradient direction
def bandit_step(return_: float, value: float | None = None) -> tuple[float, float]:
    """One SGD step on a one-step bandit after taking action 1; (π(1) before, after)."""
    torch.manual_seed(0)
    policy = make_policy(OBS_SPACE, gym.spaces.Discrete(3), hidden_sizes=(8,),
                         value_net=None)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.5)
    obs = torch.tensor([[0.1, -0.2, 0.3, 0.05]])
    action = torch.tensor([1])
    before = policy.distribution(obs).probs[0, 1].item()

    log_probs, _, _ = policy.evaluate_actions(obs, action)
    values = None if value is None else torch.tensor([value], requires_grad=True)
    loss = reinforce_loss(log_probs, torch.tensor([return_]), values)["loss"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    after = policy.distribution(obs).probs[0, 1].item()
    return before, after


def test_positive_return_raises_the_probability_of_the_action() -> None:
    before, after = bandit_step(+1.0)
    assert after > before


def test_negative_return_lowers_the_probability_of_the_action() -> None:
    before, after = bandit_step(-1.0)
    assert after < before


def test_return_below_the_baseline_lowers_the_probability_of_the_action() -> None:
    before, after = bandit_step(+1.0, value=3.0)
    assert after < before


def test_zero_advantage_leaves_the_policy_unchanged() -> None:
    before, after = bandit_step(2.0, value=2.0)
    assert after == before


def test_value_targets_replace_the_returns_in_the_value_loss_only() -> None:
    b = batch()
    targets = torch.randn(8, generator=torch.Generator().manual_seed(5))
    out = reinforce_loss(**b, value_targets=targets)
    plain = reinforce_loss(**b)
    assert torch.equal(out["loss_policy"], plain["loss_policy"])
    assert torch.allclose(out["loss_value"], (b["values"] - targets).pow(2).mean())
    with pytest.raises(ValueError, match="value_targets"):
        reinforce_loss(**b, value_targets=torch.zeros(3))
