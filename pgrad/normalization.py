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
        self.update_from_moments(x.mean(0), x.var(0, unbiased=False), float(x.shape[0]))

    @torch.no_grad()
    def update_from_moments(self, batch_mean: Tensor, batch_var: Tensor, n: float) -> None:
        """Merge a batch given by its mean, population variance and size ``n`` > 0 (how
        data-parallel workers merge the statistics of all their batches together)."""
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        self.var.copy_((self.var * self.count + batch_var * n
                        + delta.pow(2) * self.count * n / total) / total)
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
