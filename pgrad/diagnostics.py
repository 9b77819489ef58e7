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

Per-episode gradients cost about one extra forward and backward pass over the batch (one
``torch.func.vmap`` over episodes padded to the longest; twice with a baseline), so the agent
computes them, and the KL, only every ``Config.diagnostics_every`` updates.
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


class _LogProb(nn.Module):
    """``log π(a|s)`` as a module's forward, for ``torch.func.functional_call``."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, features: Tensor, actions: Tensor) -> Tensor:
        """``features``: preprocessed observations (one-hot encoding is not vmap-able)."""
        policy = self.policy
        return policy.distribution_from_features(  # type: ignore[operator]
            policy.backbone(features)).log_prob(actions)


def per_episode_gradients(policy: nn.Module, obs: Tensor, actions: Tensor,
                          advantages: Tensor, segment: Tensor, position: Tensor,
                          num_segments: int, max_episodes: int = 64) -> Tensor:
    """``[K, P]``: g_e = Σ_{t∈e} ∇ log π(a_t|s_t) · Â_t for the first ``K ≤ max_episodes``
    episodes, flattened over the policy's parameters (those ``log π`` depends on).

    ``obs``, ``actions``, ``advantages``, ``segment``, ``position`` are the batch's valid
    steps in one order (see :func:`episode_segments`). Episodes are padded to the longest
    and the gradients taken in one ``vmap`` over episodes; padding has weight zero.
    """
    from torch.func import functional_call, grad, vmap

    k = min(num_segments, max_episodes)
    keep = segment < k
    obs = policy.preprocess(obs)  # type: ignore[operator]
    segment, position = segment[keep], position[keep]
    length = int(position.max()) + 1
    pad_obs = obs.new_zeros((k, length, *obs.shape[1:]))
    pad_actions = actions.new_zeros((k, length, *actions.shape[1:]))
    pad_adv = advantages.new_zeros((k, length))
    pad_obs[segment, position] = obs[keep]
    pad_actions[segment, position] = actions[keep]
    pad_adv[segment, position] = advantages[keep].detach()

    module = _LogProb(policy)
    params = {name: p.detach() for name, p in module.named_parameters()}
    # Only parameters that log π depends on: a separate value network would add zeros.
    with torch.enable_grad():
        probe = module(obs[:1], actions[:1]).sum()
        used = torch.autograd.grad(probe, list(dict(module.named_parameters()).values()),
                                   allow_unused=True)
    names = [n for n, g in zip(params, used, strict=True) if g is not None]
    fixed = {n: p for n, p in params.items() if n not in names}

    def episode_objective(trainable: dict[str, Tensor], o: Tensor, a: Tensor,
                          w: Tensor) -> Tensor:
        log_probs = functional_call(module, {**trainable, **fixed}, (o, a))
        return (log_probs * w).sum()

    grads = vmap(grad(episode_objective), in_dims=(None, 0, 0, 0))(
        {n: params[n] for n in names}, pad_obs, pad_actions, pad_adv)
    return torch.cat([grads[n].reshape(k, -1) for n in names], dim=1)


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
