"""Data-parallel training over processes and machines with ``torch.distributed``.

K workers (launched by ``torchrun`` or ``pgrad train --nproc K``) each play their own vector
envs with their own seed stream (``seed + 1000 · rank``) and share one set of weights:

    every rank: collect its batch → its loss, a mean over its n_r valid samples → backward
    all ranks:  ∇ = Σ_r n_r ∇L_r / Σ_r n_r      (one all-reduce of [n_r ∇L_r, n_r])
    every rank: clip ‖∇‖ → the same Adam step  → the same parameters

Because every loss term is a mean over valid samples, Σ_r (n_r / N) ∇L_r is exactly the
gradient of the single-process loss on the union of the workers' batches, provided the
advantages are normalised with the *global* mean and std — :meth:`World.normalize` computes
them with two all-reduces (sum and count, then the sum of squared deviations). Clipping
acts on the averaged gradient, so it too equals the single-process clip.

Rank 0 alone logs, shows progress and writes checkpoints; the env-step count and the
episode statistics behind ``stop_return`` are summed over ranks, so every rank stops at the
same update (a rank that stopped alone would leave the others waiting in an all-reduce).

With one process every helper here is a no-op, or the exact single-process computation.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from pgrad.errors import PgradError
from pgrad.normalization import RunningMeanStd
from pgrad.returns import normalize

__all__ = ["DEFAULT_TIMEOUT", "SEED_STRIDE", "RolloutStats", "World", "init", "shutdown",
           "world"]

DEFAULT_TIMEOUT = 60.0
"""Seconds a collective may wait for its peers before the worker fails (not hangs)."""
SEED_STRIDE = 1000
"""Rank r plays its envs and samples its actions from seed + SEED_STRIDE · r."""


@dataclass(frozen=True)
class RolloutStats:
    """Per-update rollout figures, summed over all ranks."""

    steps: int
    """Valid env transitions of this update's batches, all ranks."""
    episodes: int
    """Training episodes finished so far, all ranks."""
    return_mean: float
    """Mean return of every rank's last (up to 100) finished episodes; nan if none."""
    length_mean: float
    """Mean length of the same episodes."""
    full_window: bool
    """Whether every rank's window of recent episodes is full (the stop-return criterion)."""
    interrupted: bool = False
    """Whether any rank has received SIGINT / SIGTERM (so that all stop at this update)."""


class World:
    """Where this process stands: ``rank`` of ``size`` workers (size 1: no distribution)."""

    def __init__(self, rank: int = 0, size: int = 1,
                 device: torch.device | str = "cpu") -> None:
        self.rank = rank
        self.size = size
        self.device = torch.device(device)
        """Where collectives of small host values run (cuda under NCCL, else cpu)."""

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size})"

    @property
    def is_main(self) -> bool:
        """Rank 0: the one worker that logs, shows progress and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def seed_offset(self) -> int:
        """Added to ``config.seed`` for this rank's envs and action sampling."""
        return SEED_STRIDE * self.rank

    # ------------------------------------------------------------------ collectives
    def _all_reduce(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over all ranks in place; a lost peer is a PgradError."""
        try:
            dist.all_reduce(tensor)
        except (RuntimeError, dist.DistError) as e:
            raise _peer_error(self, "all-reduce", e) from e
        return tensor

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (float64)."""
        if not self.distributed:
            return [float(v) for v in values]
        return self._all_reduce(
            torch.tensor(values, dtype=torch.float64, device=self.device)).tolist()

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers into every rank's ``module``."""
        if not self.distributed:
            return
        try:
            with torch.no_grad():
                for tensor in [*module.parameters(), *module.buffers()]:
                    dist.broadcast(tensor.data, src=0)
        except (RuntimeError, dist.DistError) as e:
            raise _peer_error(self, "broadcast", e) from e

    def own_stream(self, generator: torch.Generator, seed: int, num_updates: int) -> None:
        """Give a resumed rank r > 0 an action stream of its own.

        A checkpoint holds rank 0's generator state, so after loading one every rank would
        sample the same action noise; rank r > 0 reseeds from its stream and the update
        count instead. A fresh agent (no update yet) already has its own stream.
        """
        if self.distributed and self.rank > 0 and num_updates > 0:
            generator.manual_seed(seed + self.seed_offset + num_updates)

    def normalize(self, x: Tensor, eps: float = 1e-8) -> Tensor:
        """(x − mean) / (std + eps) with the mean and unbiased std of *all* ranks' x.

        One process: exactly :func:`pgrad.returns.normalize`. Two all-reduces (count and
        sum, then the sum of squared deviations from the global mean), which is as precise
        as the single-process two-pass formula.
        """
        if not self.distributed:
            return normalize(x, eps=eps)
        count, total = self._all_reduce(
            torch.stack([x.new_tensor(float(x.numel()), dtype=torch.float64),
                         x.detach().sum(dtype=torch.float64)]))
        if count < 2:
            return x
        mean = total / count
        squares = self._all_reduce((x.detach().double() - mean).pow(2).sum().reshape(1))
        std = (squares[0] / (count - 1)).sqrt()
        return (x - mean.to(x.dtype)) / (std.to(x.dtype) + eps)

    def update_running_stats(self, stats: RunningMeanStd, x: Tensor) -> None:
        """``stats.update(x)`` with the batch of *all* ranks: the same running mean and
        variance on every rank, equal to one process updating on the concatenated batches.

        Two all-reduces: (count, Σx, Σ|x|), then Σ((x − mean) / s)² per feature, with
        s = Σ|x| / count: deviations are scaled before squaring, so that observations
        beyond 1e154 do not overflow (as in :meth:`RunningMeanStd.update`).
        """
        if not self.distributed:
            stats.update(x)
            return
        x = x.detach().to(torch.float64).reshape(x.shape[0], *stats.mean.shape)
        head = self._all_reduce(torch.cat([x.new_tensor([float(x.shape[0])]),
                                           x.sum(0).reshape(-1), x.abs().sum(0).reshape(-1)]))
        count = float(head[0])
        if count == 0:
            return
        size = stats.mean.numel()
        mean = (head[1:1 + size] / count).view_as(stats.mean)
        scale = (head[1 + size:] / count).view_as(stats.mean)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        squares = self._all_reduce(((x - mean) / scale).pow(2).sum(0).reshape(-1))
        var = ((squares.view_as(stats.mean) / count).sqrt() * scale).pow(2)
        stats.update_from_moments(mean, var, count)

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter],
                          num_samples: int) -> None:
        """Replace each gradient by Σ_r n_r ∇_r / Σ_r n_r, in one all-reduce.

        ``num_samples`` is this rank's n_r, the number of samples its loss is a mean over.
        Parameters without a gradient keep none (every rank has the same ones: the same
        loss), so Adam skips them as it does in one process.
        """
        if not self.distributed:
            return
        params = [p for p in parameters if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [grads[0].new_ones(1)])
        flat.mul_(float(num_samples))
        self._all_reduce(flat)
        total = float(flat[-1])
        if total <= 0:
            raise PgradError("no rank had a valid sample in this update")
        flat.div_(total)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def rollout_stats(self, batch_steps: int, episodes: int, returns: Sequence[float],
                      lengths: Sequence[float], full_window: bool,
                      interrupted: bool = False) -> RolloutStats:
        """Step count, episode statistics and interruption, summed over ranks, in one
        all-reduce."""
        sums = self.sum([batch_steps, episodes, math.fsum(returns), math.fsum(lengths),
                         len(returns), 0.0 if full_window else 1.0, float(interrupted)])
        steps, episodes_all, ret_sum, len_sum, count, not_full, signalled = sums
        return RolloutStats(
            steps=int(steps), episodes=int(episodes_all),
            return_mean=ret_sum / count if count else math.nan,
            length_mean=len_sum / count if count else math.nan,
            full_window=not_full == 0, interrupted=signalled > 0)


_SINGLE = World()


def world() -> World:
    """This process's :class:`World`: from ``torch.distributed`` once initialised."""
    if dist.is_available() and dist.is_initialized():
        nccl = dist.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if nccl else "cpu"
        return World(dist.get_rank(), dist.get_world_size(), device)
    return _SINGLE


def launched() -> bool:
    """Whether this process was started by torchrun (its env vars are set)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def init(device: torch.device | str = "cpu", timeout: float = DEFAULT_TIMEOUT) -> World:
    """Join the process group torchrun described in the env vars (a no-op otherwise).

    Backend gloo for a CPU device, NCCL for CUDA (each rank on ``cuda:LOCAL_RANK``).
    ``timeout`` seconds bound every rendezvous and collective: a dead or stuck peer makes
    the others fail with an error instead of hanging.
    """
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return world()
    if not dist.is_available():
        raise PgradError("this torch build has no torch.distributed")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    except (RuntimeError, ValueError, dist.DistError) as e:
        raise PgradError(f"could not join the {os.environ['WORLD_SIZE']}-process group at "
                         f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} "
                         f"within {timeout:g} s: {e}") from e
    return world()


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _peer_error(w: World, what: str, error: BaseException) -> PgradError:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return PgradError(f"rank {w.rank} of {w.size}: {what} failed — a peer worker died, "
                      f"was killed or timed out ({first})")
