"""Observation encoders: a raw observation batch → the float tensor the network reads.

Parameter-free and made of torch ops only (so a traced policy carries them):

* :class:`ObservationEncoder` (the MLP's input): Box and MultiBinary flattened, Discrete and
  MultiDiscrete one-hot encoded; Dict and Tuple arrive flattened by the vector env.
* :class:`ImageEncoder` (the CNN's input): ``[B, H, W, C]`` or ``[B, C, H, W]`` (or
  ``[B, H, W]``) → ``[B, C, H, W]`` floats, uint8 scaled to [0, 1].

:func:`make_encoder` chooses between them by the rule of :mod:`pgrad.spaces`
(``encoder="auto"``), or as told (``"mlp"``, ``"cnn"``).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from pgrad.constants import ENCODERS
from pgrad.errors import PgradError
from pgrad.spaces import (
    SUPPORTED_SPACES,
    ImageLayout,
    UnsupportedSpaceError,
    flat_observation_space,
    image_layout,
    image_leaves,
)

__all__ = ["ENCODERS", "ImageEncoder", "ObservationEncoder", "make_encoder"]



class ObservationEncoder(nn.Module):
    """obs ``[B, *obs_shape]`` → float features ``[B, dim]``: Box and MultiBinary flattened,
    Discrete and MultiDiscrete one-hot encoded. Dict / Tuple arrive flattened (see
    :func:`pgrad.spaces.flat_observation_space`)."""

    def __init__(self, space: spaces.Space) -> None:
        super().__init__()
        space = flat_observation_space(space)
        self.kind = type(space).__name__
        if isinstance(space, spaces.Box | spaces.MultiBinary):
            self.dim = int(np.prod(space.shape, dtype=np.int64))
            starts, sizes = np.zeros(0), np.zeros(0)
        elif isinstance(space, spaces.Discrete):
            starts, sizes = np.array([space.start]), np.array([space.n])
        elif isinstance(space, spaces.MultiDiscrete):
            starts, sizes = space.start.ravel(), space.nvec.ravel()
        else:
            raise UnsupportedSpaceError(f"observation space {space} is not supported; "
                                        f"supported: {SUPPORTED_SPACES['observation']}")
        if sizes.size:
            self.dim = int(sizes.sum())
        self.out_shape: tuple[int, ...] = (self.dim,)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if sizes.size else sizes
        self.register_buffer("starts", torch.as_tensor(starts, dtype=torch.long),
                             persistent=False)
        self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.long),
                             persistent=False)

    def forward(self, obs: Tensor) -> Tensor:
        batch = obs.shape[0]
        if self.kind in ("Box", "MultiBinary"):
            return obs.reshape(batch, self.dim).float()
        index = obs.reshape(batch, -1).long() - self.starts + self.offsets
        return torch.zeros(batch, self.dim, device=obs.device).scatter_(1, index, 1.0)


class ImageEncoder(nn.Module):
    """Images ``[B, *obs_shape]`` → ``[B, C, H, W]`` float32: channels moved first, uint8
    divided by 255 (bool and float images are taken as they are)."""

    def __init__(self, space: spaces.Box, layout: ImageLayout) -> None:
        super().__init__()
        self.layout = layout
        self.divisor = 255.0 if space.dtype == np.uint8 else None
        self.out_shape = (layout.channels, layout.height, layout.width)
        self.dim = int(np.prod(self.out_shape, dtype=np.int64))

    def forward(self, obs: Tensor) -> Tensor:
        x = obs.permute(0, 3, 1, 2) if self.layout.channels_last else obs
        x = x.reshape(x.shape[0], *self.out_shape).float()
        return x if self.divisor is None else x / self.divisor


def make_encoder(space: spaces.Space, encoder: str = "auto",
                 channel_order: str = "auto") -> ObservationEncoder | ImageEncoder:
    """The encoder of an observation space: ``"auto"`` takes the CNN's :class:`ImageEncoder`
    for an image-shaped Box (the rule in :mod:`pgrad.spaces`) and the MLP's
    :class:`ObservationEncoder` for everything else; ``"mlp"`` and ``"cnn"`` force one.

    Raises:
        PgradError: an image inside a Dict / Tuple observation (not supported yet), or
            ``encoder="cnn"`` for a space that is not a rank-2 or rank-3 Box.
    """
    if encoder not in ENCODERS:
        raise PgradError(f"encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
    if encoder == "mlp":
        return ObservationEncoder(space)
    if isinstance(space, spaces.Dict | spaces.Tuple):
        leaves = image_leaves(space)
        if leaves or encoder == "cnn":
            where = f" (at {', '.join(leaves)})" if leaves else ""
            raise PgradError(f"images inside Dict or Tuple observations are not supported "
                             f"yet{where}: wrap the env to return the image alone, or use "
                             "encoder 'mlp' to flatten everything")
        return ObservationEncoder(space)
    layout = image_layout(space, channel_order, require_image_dtype=encoder == "auto")
    if layout is None:
        if encoder == "cnn":
            raise PgradError(f"encoder 'cnn' needs an image observation (a Box of rank 2 or "
                             f"3), got {space}; use encoder 'mlp' or 'auto'")
        return ObservationEncoder(space)
    assert isinstance(space, spaces.Box)
    return ImageEncoder(space, layout)
