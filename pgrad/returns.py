"""Discounted returns: the G_t of the policy gradient theorem.

    G_t = R_{t+1} + γ R_{t+2} + γ² R_{t+3} + …   (within one episode)

Pure tensor maths (torch only). Time is the first dimension: ``rewards[t]`` is the reward
received after the action taken at step ``t`` (the tutorial's R_{t+1}). Rewards are ``[T]``
for one stream of steps or ``[T, N]`` for N parallel environments.

Episode ends are kept apart, as Gymnasium reports them:

* ``terminated[t]``: the episode reached a true terminal state after step ``t``; nothing
  follows, so G_t = R_{t+1}.
* ``truncated[t]``: the episode was *cut* after step ``t`` (a time limit), and the last row
  ``t = T-1`` of a batch that ends mid-episode is cut too. The future after a cut is unknown;
  it is estimated by ``γ V(s_{t+1})`` when ``next_values`` (the baseline) is given, and taken
  as 0 when it is not. Without a baseline, a cut episode therefore contributes the truncated
  return Σ of the rewards it did see: exact for the finite-horizon objective that a time
  limit defines (CartPole-v1's 500 steps), biased low for a task meant to be endless.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["discounted_returns", "gae_advantages", "lambda_returns", "normalize"]


def discounted_returns(
    rewards: Tensor,
    gamma: float,
    *,
    terminated: Tensor | None = None,
    truncated: Tensor | None = None,
    next_values: Tensor | None = None,
    normalize: bool = False,
) -> Tensor:
    """Discounted return G_t of every step, restarting at each episode end.

    Args:
        rewards: ``[T]`` or ``[T, N]``; ``rewards[t]`` follows the action at step ``t``.
        gamma: discount factor γ in [0, 1].
        terminated: bool, shape of ``rewards``; the episode ended in a terminal state after
            step ``t``. Default: no step terminates.
        truncated: bool, shape of ``rewards``; the episode was cut after step ``t`` (time
            limit). ``terminated`` wins where both are set. The last row is always a cut
            unless it terminated. Default: no step is truncated.
        next_values: shape of ``rewards``; V(s_{t+1}), the baseline's value of the
            observation after step ``t``. Read only at cuts, where
            G_t = R_{t+1} + γ V(s_{t+1}). Default: 0 at cuts (no bootstrapping).
        normalize: return (G - mean(G)) / (std(G) + 1e-8) over all entries, the tutorial's
            normalisation (unbiased std, skipped for a single entry).

    Returns:
        G with the shape of ``rewards``: float32 for integer or bool rewards (a discount
        is a fraction), otherwise the dtype of ``rewards``.

    Example (the tutorial's 10-step episode):
        >>> r = torch.tensor([0.0] * 9 + [1.0])
        >>> discounted_returns(r, 0.99)[:3]
        tensor([0.9135, 0.9227, 0.9321])

    One Python loop, over time; each step is one fused multiply-add over the N envs.
    """
    if rewards.dim() not in (1, 2):
        raise ValueError(f"rewards must have shape [T] or [T, N], got {tuple(rewards.shape)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not rewards.is_floating_point():  # integer γ would be 0
        rewards = rewards.to(torch.float32)
    length = rewards.shape[0]
    dones_after = torch.zeros(rewards.shape, dtype=torch.bool, device=rewards.device)
    term = dones_after if terminated is None else _as_bool(terminated, rewards, "terminated")
    # cut is written below: a copy, never the caller's tensor.
    cut = (dones_after if truncated is None else _as_bool(truncated, rewards, "truncated")).clone()
    if length:
        cut[-1] = True
    cut &= ~term

    # G_t = a_t + c_t G_{t+1}: a_t holds the reward and any bootstrap, c_t the carry.
    carry = torch.full_like(rewards, gamma).masked_fill_(term | cut, 0.0)
    offset = rewards
    if next_values is not None:
        if next_values.shape != rewards.shape:
            raise ValueError(
                f"next_values must match rewards {tuple(rewards.shape)}, "
                f"got {tuple(next_values.shape)}"
            )
        offset = rewards + gamma * torch.where(cut, next_values.to(rewards.dtype), 0.0)

    returns = _scan(offset, carry)
    return _normalized(returns) if normalize else returns


def lambda_returns(
    rewards: Tensor,
    next_values: Tensor,
    gamma: float,
    lam: float,
    *,
    terminated: Tensor | None = None,
    truncated: Tensor | None = None,
) -> Tensor:
    """The λ-return of every step (Sutton & Barto §12.1), restarting at each episode end::

        G^λ_t = R_{t+1} + γ [(1 − λ) V(s_{t+1}) + λ G^λ_{t+1}]   (the episode goes on)
        G^λ_t = R_{t+1} + γ V(s_{t+1})                            (cut after step t)
        G^λ_t = R_{t+1}                                           (terminated after step t)

    Args:
        rewards: ``[T]`` or ``[T, N]``.
        next_values: shape of ``rewards``; V(s_{t+1}) after every step (not read where the
            episode terminated).
        gamma: discount factor γ in [0, 1].
        lam: λ in [0, 1]. λ = 1 gives the discounted returns bootstrapped at cuts, bit for
            bit those of :func:`discounted_returns` with the same ``next_values``; λ = 0
            the one-step targets R + γ V(s').
        terminated, truncated: bool, shape of ``rewards``, as in :func:`discounted_returns`
            (the last row is a cut unless it terminated).

    Returns:
        G^λ with the shape of ``rewards`` (float32 for integer or bool rewards).
    """
    if rewards.dim() not in (1, 2):
        raise ValueError(f"rewards must have shape [T] or [T, N], got {tuple(rewards.shape)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.float32)
    if next_values.shape != rewards.shape:
        raise ValueError(f"next_values must match rewards {tuple(rewards.shape)}, "
                         f"got {tuple(next_values.shape)}")
    no = torch.zeros(rewards.shape, dtype=torch.bool, device=rewards.device)
    term = no if terminated is None else _as_bool(terminated, rewards, "terminated")
    cut = (no if truncated is None else _as_bool(truncated, rewards, "truncated")).clone()
    if rewards.shape[0]:
        cut[-1] = True
    cut &= ~term
    values = next_values.to(rewards.dtype)
    # G_t = a_t + c_t G_{t+1}, a_t = R + γ·(V' at a cut, (1 − λ) V' where the episode goes
    # on, 0 at a termination), c_t = γλ where it goes on. With λ = 1 these are exactly the
    # terms of discounted_returns.
    bootstrap = torch.where(cut, values, torch.where(term, 0.0, (1.0 - lam) * values))
    offset = rewards + gamma * bootstrap
    carry = torch.full_like(rewards, gamma * lam).masked_fill_(term | cut, 0.0)
    return _scan(offset, carry)


def gae_advantages(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    gamma: float,
    lam: float,
    *,
    terminated: Tensor | None = None,
    truncated: Tensor | None = None,
) -> Tensor:
    """GAE(λ) advantages (Schulman et al., 2016): A_t = G^λ_t − V(s_t) = Σ_k (γλ)^k δ_{t+k},
    δ_t = R_{t+1} + γ V(s_{t+1}) − V(s_t), within each episode (see :func:`lambda_returns`).

    Args:
        rewards, next_values, terminated, truncated: ``[T]`` or ``[T, N]``, as in
            :func:`lambda_returns`.
        values: shape of ``rewards``; V(s_t).
        gamma, lam: γ and λ in [0, 1]. λ = 1 is the Monte-Carlo advantage G_t − V(s_t)
            (unbiased); λ < 1 trades variance for the bias of V's error (actor-critic).

    Returns:
        A with the shape of ``rewards``.
    """
    if values.shape != rewards.shape:
        raise ValueError(f"values must match rewards {tuple(rewards.shape)}, "
                         f"got {tuple(values.shape)}")
    returns = lambda_returns(rewards, next_values, gamma, lam, terminated=terminated,
                             truncated=truncated)
    return returns - values.to(returns.dtype)


def _scan(offset: Tensor, carry: Tensor) -> Tensor:
    """x_t = offset_t + carry_t · x_{t+1} backwards along the first dimension, x_{T-1} =
    offset_{T-1}: one fused multiply-add over the N envs per step."""
    returns = torch.empty_like(offset)
    if offset.shape[0]:
        returns[-1] = offset[-1]
    # The rows as views, made once: indexing a tensor costs more than the row's FMA.
    offsets, carries, rows = offset.unbind(0), carry.unbind(0), returns.unbind(0)
    for t in range(offset.shape[0] - 2, -1, -1):
        torch.addcmul(offsets[t], carries[t], rows[t + 1], out=rows[t])
    return returns


def normalize(x: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """(x - mean) / (std + eps) over the entries where ``mask`` is true (all by default).

    The std is the unbiased one, as ``Tensor.std()``; with fewer than two entries the input is
    returned unchanged (the tutorial's ``len(returns) > 1`` guard). Entries outside the mask
    are left as they were.
    """
    if mask is None:
        return _normalized(x, eps)
    out = x.clone()
    out[mask] = _normalized(x[mask], eps)
    return out


def _normalized(x: Tensor, eps: float = 1e-8) -> Tensor:
    if x.numel() < 2:
        return x
    return (x - x.mean()) / (x.std() + eps)


def _as_bool(flags: Tensor, like: Tensor, name: str) -> Tensor:
    if flags.shape != like.shape:
        raise ValueError(
            f"{name} must match rewards {tuple(like.shape)}, got {tuple(flags.shape)}"
        )
    return flags.to(device=like.device, dtype=torch.bool)
