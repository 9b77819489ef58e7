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

Per-episode gradients of the batch's first 64 episodes cost one extra forward and backward
pass over their steps (both weightings at once, for MLP policies; see
:func:`per_episode_gradients`), so the agent computes them, and the KL, only every
``Config.diagnostics_every`` updates.
"""

from __future__ import annotations

from collections.abc import Callable

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
    """g_e = Σ_{t∈e} ∇ log π(a_t|s_t) · Â_t for the first ``K ≤ max_episodes`` episodes,
    flattened over the policy's parameters (those ``log π`` depends on): ``[K, P]`` for
    advantages ``[B]``, or ``[W, K, P]`` for ``W`` weightings of the same steps
    (``advantages``: ``[W, B]``), which share one forward and backward pass.

    ``obs``, ``actions``, ``advantages``, ``segment`` are the batch's valid steps in one
    order (see :func:`episode_segments`; ``position``, a step's place in its episode, does
    not change a sum over the episode).

    When every such parameter belongs to an ``nn.Linear`` layer applied once to ``[B, I]``
    rows (the MLP policies), all K episodes take one forward and one backward pass: with
    x_t the layer's input and δ_t = ∂ log π(a_t|s_t) / ∂(its output) at step t, the
    episode's gradient is Σ_{t∈e} Â_t δ_t x_tᵀ for the weight and Σ_{t∈e} Â_t δ_t for the
    bias, one small matrix product per episode (each step's output feeds only its own
    log π). Otherwise (convolutions, a state-independent log σ), one backward pass per
    episode and weighting. The two agree up to float rounding. (``torch.func.vmap`` would
    batch the passes too, but it imports ``torch._dynamo``, which costs a short training
    run more start-up than the diagnostics take.)
    """
    weights = advantages.detach()
    single = weights.dim() == 1
    if single:
        weights = weights.unsqueeze(0)
    k = min(num_segments, max_episodes)
    kept = (segment < k).nonzero().squeeze(1)
    order = kept[torch.argsort(segment[kept], stable=True)]  # episode by episode
    sizes = torch.bincount(segment[kept], minlength=k).tolist()
    features = policy.preprocess(obs[order])  # type: ignore[operator]
    kept_actions, kept_weights = actions[order], weights[:, order]

    def log_probs(x: Tensor, a: Tensor) -> Tensor:
        dist = policy.distribution_from_features(policy.backbone(x))  # type: ignore[operator]
        return dist.log_prob(a)

    with torch.enable_grad():
        # Only parameters that log π depends on: a separate value network would add zeros.
        params = list(policy.parameters())
        probe = log_probs(features[:1], kept_actions[:1]).sum()
        used = [p for p, g in zip(params, torch.autograd.grad(probe, params, allow_unused=True),
                                  strict=True) if g is not None]
        grads = _linear_layer_gradients(policy, features, kept_actions, kept_weights, sizes,
                                        used, log_probs)
        if grads is None:
            grads = _episode_by_episode(features, kept_actions, kept_weights, sizes, used,
                                        log_probs)
    return grads[0] if single else grads


def _linear_layer_gradients(policy: nn.Module, x: Tensor, actions: Tensor, weights: Tensor,
                            sizes: list[int], used: list[nn.Parameter],
                            log_probs: Callable[[Tensor, Tensor], Tensor]) -> Tensor | None:
    """``[W, K, P]`` per-episode gradients from one forward and one backward pass over the
    ``B`` kept steps (``x``: ``[B, ...]`` sorted episode by episode, ``sizes`` their
    episode lengths, ``weights``: ``[W, B]``); None unless every parameter in ``used`` is
    the weight or bias of an ``nn.Linear`` called exactly once on ``[B, I]`` rows."""
    calls: dict[nn.Linear, list[tuple[Tensor, Tensor]]] = {}

    def record(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        calls.setdefault(module, []).append((inputs[0], output))  # type: ignore[index]

    linears = [m for m in policy.modules() if type(m) is nn.Linear]
    hooks = [m.register_forward_hook(record) for m in linears]
    try:
        total = log_probs(x, actions).sum()
    finally:
        for hook in hooks:
            hook.remove()
    owner: dict[nn.Parameter, tuple[nn.Linear, str]] = {}
    rows = x.shape[0]
    for module, seen in calls.items():
        inputs, output = seen[0]
        if len(seen) != 1 or inputs.dim() != 2 or inputs.shape[0] != rows:
            return None
        owner[module.weight] = (module, "weight")
        if module.bias is not None:
            owner[module.bias] = (module, "bias")
    if any(p not in owner for p in used):
        return None
    modules = list(dict.fromkeys(owner[p][0] for p in used))
    deltas = torch.autograd.grad(total, [calls[m][0][1] for m in modules])
    bounds = [0, *torch.tensor(sizes).cumsum(0).tolist()]
    count, num_weightings = len(sizes), weights.shape[0]
    per_module: dict[nn.Linear, tuple[Tensor, Tensor]] = {}
    for module, delta in zip(modules, deltas, strict=True):
        inputs = calls[module][0][0].detach()
        out_dim, in_dim = module.weight.shape
        # Â_t δ_t for every weighting, [B, W·O], and x_t with a 1 for the bias, [B, I + 1].
        weighted = (weights.T.unsqueeze(2) * delta.unsqueeze(1)).reshape(
            rows, num_weightings * out_dim)
        augmented = torch.cat([inputs, inputs.new_ones(rows, 1)], dim=1)
        blocks = torch.stack([weighted[a:b].T @ augmented[a:b]
                              for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        blocks = blocks.reshape(count, num_weightings, out_dim, in_dim + 1).transpose(0, 1)
        per_module[module] = blocks[..., :in_dim], blocks[..., in_dim]
    parts = [per_module[owner[p][0]][0 if owner[p][1] == "weight" else 1] for p in used]
    return torch.cat([part.reshape(num_weightings, count, -1) for part in parts], dim=2)


def _episode_by_episode(x: Tensor, actions: Tensor, weights: Tensor, sizes: list[int],
                        used: list[nn.Parameter],
                        log_probs: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """``[W, K, P]`` per-episode gradients, one forward per episode and one backward per
    episode and weighting (``x``: ``[B, ...]`` sorted episode by episode, ``sizes`` their
    lengths, ``weights``: ``[W, B]``)."""
    rows = []
    for x_e, a_e, w_e in zip(x.split(sizes), actions.split(sizes), weights.split(sizes, dim=1),
                             strict=True):
        episode_log_probs = log_probs(x_e, a_e)
        last = w_e.shape[0] - 1
        rows.append(torch.stack([
            torch.cat([g.reshape(-1) for g in torch.autograd.grad(
                (episode_log_probs * w).sum(), used, retain_graph=i < last)])
            for i, w in enumerate(w_e)]))
    return torch.stack(rows, dim=1)


def gradient_statistics(grads: Tensor) -> tuple[float, float]:
    """``(grad_variance, grad_snr)`` of per-episode gradients ``[K, P]`` (nan if K < 2)."""
    if grads.shape[0] < 2:
        return float("nan"), float("nan")
    mean = grads.mean(dim=0)
    # Σ_i Var_e[g_e,i] as one sum over the contiguous [K, P] (var(dim=0) reads it strided).
    variance = (grads - mean).pow(2).sum() / (grads.shape[0] - 1)
    signal = mean.pow(2).sum()
    snr = signal / variance if variance > 0 else torch.tensor(float("nan"))
    return float(variance), float(snr)


def approx_kl(old_log_probs: Tensor, new_log_probs: Tensor) -> float:
    """KL(π_old ‖ π_new) estimated on actions drawn from π_old: mean[(r − 1) − log r]."""
    log_ratio = new_log_probs - old_log_probs
    return float((log_ratio.exp() - 1 - log_ratio).mean())
