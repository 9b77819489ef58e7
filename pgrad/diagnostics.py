"""Gradient diagnostics: how noisy is the policy-gradient estimate, and how far did a step go.

One update's policy gradient is an average over the episodes of its batch. Each episode e
gives its own estimate

    g_e = Σ_{t ∈ e} ∇ log π(a_t|s_t) · Â_t          (Â: the advantage the update used)

and the batch's gradient is proportional to their mean ḡ. From the K per-episode estimates
of one batch:

    grad_variance = Σ_i Var_e[g_e,i]          (trace of the covariance, over all parameters)
    grad_snr      = ‖ḡ‖² / grad_variance      (signal-to-noise ratio of one episode's estimate)

A baseline exists to lower ``grad_variance`` and so raise ``grad_snr`` (on the same scale of
Â: normalised advantages make runs with and without a baseline comparable). The batch's
own estimate has K times the SNR of one episode's.

``approx_kl`` measures how far one update moved the policy: KL(π_old ‖ π_new) on the
batch's states, estimated from the sampled actions' log-probabilities with
mean[(r − 1) − log r], r = π_new/π_old (unbiased, never negative; Schulman's "k3").

With a baseline, the agent also logs ``grad_variance_without_baseline`` and
``grad_snr_without_baseline``: the same batch's per-episode gradients with A = G (normalised
the same way), so the variance the baseline removed is measured on identical episodes.

Per-episode gradients cost about one extra forward and backward pass over the batch's first
episodes (one pass per episode; twice with a baseline), so the agent computes them, and the
KL, only every ``Config.diagnostics_every`` updates.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["approx_kl", "episode_segments", "gradient_statistics", "per_episode_gradients"]


def episode_segments(valid: Tensor, episode_steps: Tensor) -> tuple[Tensor, Tensor, int]:
    """Which episode each valid step belongs to, and its position in it.

    Args:
        valid: ``[T, N]`` bool.
        episode_steps: ``[T, N]`` index of the step within its episode.

    Returns:
        ``(segment [B], position [B], K)`` for the ``B`` valid steps in time-major order
        (the order of ``x[valid]``): the episode index in ``0 … K − 1`` (a batch of
        ``n_steps`` may hold only part of an episode; each part counts as one) and the
        step's index within that part.
    """
    first_row = torch.zeros_like(valid)
    first_row[0] = True
    starts = valid & ((episode_steps == 0) | first_row)
    # Env-major order makes every episode a contiguous run of valid steps.
    valid_e, starts_e = valid.T.reshape(-1), starts.T.reshape(-1)
    starts_v = starts_e[valid_e]
    segment_v = torch.cumsum(starts_v.long(), 0) - 1
    rank = torch.arange(segment_v.numel(), device=valid.device)
    position_v = rank - rank[starts_v][segment_v]
    segment = torch.full(valid.T.shape, -1, dtype=torch.long, device=valid.device)
    position = torch.full_like(segment, -1)
    segment.view(-1)[valid_e] = segment_v
    position.view(-1)[valid_e] = position_v
    return segment.T[valid], position.T[valid], int(starts_v.sum())


def per_episode_gradients(policy: nn.Module, obs: Tensor, actions: Tensor,
                          advantages: Tensor, segment: Tensor, position: Tensor,
                          num_segments: int, max_episodes: int = 64) -> Tensor:
    """``[K, P]``: g_e = Σ_{t∈e} ∇ log π(a_t|s_t) · Â_t for the first ``K ≤ max_episodes``
    episodes, flattened over the policy's parameters (those ``log π`` depends on).

    ``obs``, ``actions``, ``advantages``, ``segment`` are the batch's valid steps in one
    order (see :func:`episode_segments`; ``position``, a step's place in its episode, does
    not change a sum over the episode). One backward pass per episode: ``torch.func``'s
    ``vmap`` would batch them, but it imports ``torch._dynamo``, which costs a short
    training run more start-up than these passes take.
    """
    k = min(num_segments, max_episodes)
    kept = (segment < k).nonzero().squeeze(1)
    order = kept[torch.argsort(segment[kept], stable=True)]  # episode by episode
    sizes = torch.bincount(segment[kept], minlength=k).tolist()
    features = policy.preprocess(obs[order]).split(sizes)  # type: ignore[operator]
    episode_actions, weights = actions[order].split(sizes), advantages[order].detach().split(sizes)
    params = list(policy.parameters())

    def log_probs(x: Tensor, a: Tensor) -> Tensor:
        dist = policy.distribution_from_features(policy.backbone(x))  # type: ignore[operator]
        return dist.log_prob(a)

    with torch.enable_grad():
        # Only parameters that log π depends on: a separate value network would add zeros.
        probe = log_probs(features[0][:1], episode_actions[0][:1]).sum()
        used = [p for p, g in zip(params, torch.autograd.grad(probe, params, allow_unused=True),
                                  strict=True) if g is not None]
        grads = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(
                     (log_probs(x, a) * w).sum(), used)])
                 for x, a, w in zip(features, episode_actions, weights, strict=True)]
    return torch.stack(grads)


def gradient_statistics(grads: Tensor) -> tuple[float, float]:
    """``(grad_variance, grad_snr)`` of per-episode gradients ``[K, P]`` (nan if K < 2)."""
    if grads.shape[0] < 2:
        return float("nan"), float("nan")
    variance = grads.var(dim=0).sum()
    signal = grads.mean(dim=0).pow(2).sum()
    snr = signal / variance if variance > 0 else torch.tensor(float("nan"))
    return float(variance), float(snr)


def approx_kl(old_log_probs: Tensor, new_log_probs: Tensor) -> float:
    """KL(π_old ‖ π_new) estimated on actions drawn from π_old: mean[(r − 1) − log r]."""
    log_ratio = new_log_probs - old_log_probs
    return float((log_ratio.exp() - 1 - log_ratio).mean())
