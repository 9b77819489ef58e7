"""Running statistics for observation normalisation and return scaling.

Kept as buffers of a module, so they travel in the policy's ``state_dict`` — and hence in
the safetensors checkpoint, as plain tensors — and are applied wherever the policy is used,
evaluation included.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["RunningMeanStd"]


class RunningMeanStd(nn.Module):
    """Mean and variance of everything seen so far, per feature, updated batch by batch.

    ``update(x)`` merges a batch ``x: [B, *shape]`` with the parallel-variance formula
    (Chan et al.): the result equals the mean and (population) variance of all batches
    concatenated. ``normalize(x) = clip((x − mean) / sqrt(var + eps), −clip, clip)``.
    """

    def __init__(self, shape: tuple[int, ...] = (), *, clip: float = 10.0,
                 eps: float = 1e-8) -> None:
        super().__init__()
        self.clip = clip
        self.eps = eps
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Merge the batch ``x: [B, *shape]`` into the statistics."""
        if x.shape[0] == 0:
            return
        x = x.to(torch.float64)
        mean = x.mean(0)
        self.update_from_moments(mean, _mean_square(x - mean), float(x.shape[0]))

    @torch.no_grad()
    def update_from_moments(self, batch_mean: Tensor, batch_var: Tensor, n: float) -> None:
        """Merge a batch given by its mean, population variance and size ``n`` > 0 (how
        data-parallel workers merge the statistics of all their batches together).

        With weights w = count / total and w' = n / total (Chan et al.)::

            mean ← mean + w' δ                   δ = batch_mean − mean
            var  ← w var + w' batch_var + (δ √(w w'))²

        Weighting before squaring keeps every intermediate below the result: no overflow
        (and no inf · 0 = nan at the first batch) unless the variance itself overflows.
        """
        total = self.count + n
        old, new = self.count / total, n / total
        delta = batch_mean - self.mean
        self.mean += delta * new
        self.var.copy_(self.var * old + batch_var * new + (delta * (old * new).sqrt()).pow(2))
        self.count.copy_(total)

    @property
    def std(self) -> Tensor:
        """sqrt(var + eps), in float32."""
        return (self.var + self.eps).sqrt().float()

    def normalize(self, x: Tensor) -> Tensor:
        """(x − mean) / std, clipped to ±clip; x unchanged while nothing has been seen."""
        if self.count == 0:
            return x
        out = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return out.clamp(-self.clip, self.clip)


def _mean_square(deviations: Tensor) -> Tensor:
    """mean(d², dim 0) with d scaled by its largest magnitude before squaring, so that
    deviations above 1e154 do not overflow (float64) when their mean square does not."""
    scale = deviations.abs().amax(0)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return ((deviations / scale).pow(2).mean(0).sqrt() * scale).pow(2)

