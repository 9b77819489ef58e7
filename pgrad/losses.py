"""The REINFORCE loss, with and without a learned baseline. Pure tensor maths (torch only).

    advantage   A_t = G_t                  (no baseline)
                A_t = G_t − V(s_t)         (baseline; V detached: the policy loss never
                                            moves the baseline; G_t may be a λ-return,
                                            which makes A_t the GAE(λ) advantage)
    policy loss     L_π = −mean_t[ log π(a_t|s_t) · A_t ]
    value loss      L_V = mean_t[ (V(s_t) − Ĝ_t)² ]   (Ĝ: the value targets, G by default)
    total           L = L_π + vf_coef · L_V − ent_coef · mean_t[ H(π(·|s_t)) ]

Minimising L_π ascends the policy gradient  ∇J(θ) = E[ Σ_t ∇ log π(a_t|s_t) · G_t ]:
PyTorch minimises, so the sign is flipped.
"""

from __future__ import annotations

from typing import Callable  # noqa: UP035 (the layering test allows typing, not collections)

from torch import Tensor

from pgrad.returns import normalize

__all__ = ["LOSS_TERMS", "advantages", "reinforce_loss"]

LOSS_TERMS = ("loss", "loss_policy", "loss_value", "entropy", "advantage_mean")
"""The names of :func:`reinforce_loss`'s terms, in order."""


def advantages(
    returns: Tensor, values: Tensor | None = None, *, normalize_advantages: bool = False
) -> Tensor:
    """A = G (no baseline) or A = G − V with V detached; optionally normalised.

    Args:
        returns: ``[B]`` discounted returns G_t.
        values: ``[B]`` baseline V(s_t), or None.
        normalize_advantages: (A − mean) / (std + 1e-8) over the batch.

    Returns:
        ``[B]``, detached: no gradient flows through an advantage.
    """
    adv = returns if values is None else returns - values.detach()
    adv = adv.detach()
    return normalize(adv) if normalize_advantages else adv


def reinforce_loss(
    log_probs: Tensor,
    returns: Tensor,
    values: Tensor | None = None,
    entropy: Tensor | None = None,
    *,
    vf_coef: float = 0.5,
    ent_coef: float = 0.0,
    normalize_advantages: bool = False,
    policy_weights: Tensor | None = None,
    normalizer: Callable[[Tensor], Tensor] = normalize,
    value_targets: Tensor | None = None,
) -> dict[str, Tensor]:
    """The REINFORCE objective as named terms.

    Args:
        log_probs: ``[B]`` log π(a_t|s_t) of the actions taken, with gradient.
        returns: ``[B]`` G_t (the value target and, without baseline, the advantage).
        values: ``[B]`` V(s_t) with gradient, or None for REINFORCE without baseline.
        entropy: ``[B]`` H(π(·|s_t)), or None (then no entropy term).
        vf_coef: weight of the value loss.
        ent_coef: weight of the entropy bonus (subtracted from the loss).
        normalize_advantages: normalise A over the batch (see :func:`advantages`).
        policy_weights: ``[B]`` factors on each step's policy term, e.g. γ^t for the
            unbiased gradient of the discounted objective (None: all 1, the usual
            estimator that drops γ^t).
        normalizer: the normalisation used then; data-parallel training passes one with
            the mean and std of all workers' batches (``pgrad.distributed.World.normalize``).
        value_targets: ``[B]`` what V(s_t) fits (None: ``returns``), e.g. the Monte-Carlo
            G_t while ``returns`` holds the λ-returns of GAE advantages.

    Returns:
        ``loss`` (to minimise), ``loss_policy``, ``loss_value`` (0 without baseline),
        ``entropy`` (0 when not given) and ``advantage_mean`` (before normalisation).
    """
    if log_probs.shape != returns.shape or log_probs.dim() != 1:
        raise ValueError(
            "log_probs and returns must both have shape [B], got "
            f"{tuple(log_probs.shape)} and {tuple(returns.shape)}"
        )
    if values is not None and values.shape != returns.shape:
        raise ValueError(f"values must have shape [B] = {tuple(returns.shape)}, "
                         f"got {tuple(values.shape)}")
    if value_targets is None:
        value_targets = returns
    elif value_targets.shape != returns.shape:
        raise ValueError(f"value_targets must have shape [B] = {tuple(returns.shape)}, "
                         f"got {tuple(value_targets.shape)}")
    adv = advantages(returns, values)
    adv_used = normalizer(adv) if normalize_advantages else adv
    if policy_weights is not None:
        adv_used = adv_used * policy_weights.detach()
    loss_policy = -(log_probs * adv_used).mean()
    zero = loss_policy.new_zeros(())
    loss_value = zero if values is None else (values - value_targets.detach()).pow(2).mean()
    mean_entropy = zero if entropy is None else entropy.mean()
    loss = loss_policy + vf_coef * loss_value - ent_coef * mean_entropy
    return {
        "loss": loss,
        "loss_policy": loss_policy,
        "loss_value": loss_value,
        "entropy": mean_entropy,
        "advantage_mean": adv.mean(),
    }
