"""Which Gymnasium spaces a policy handles, and how it reads them.

* :data:`SUPPORTED_SPACES`: the list printed with every refusal (:class:`UnsupportedSpaceError`).
* :func:`flat_observation_space`: Dict and Tuple observations as the vector env gives them,
  flattened to one Box by Gymnasium's ``FlattenObservation``.
* :func:`image_layout`: the image rule. A ``Box`` observation is image-shaped when

  1. it has rank 3 (channels and two spatial axes) or rank 2 (one channel);
  2. its dtype is ``uint8`` (scaled by 1/255), ``bool``, or a float with every bound in
     [0, 1] (both used as they are);
  3. both spatial sides are at least :data:`MIN_IMAGE_SIDE` pixels (smaller grids are
     flattened: an MLP reads them as well).

  The channel axis of a rank-3 image is the first when it is shorter than the last
  (``(3, 64, 64)``, ``(4, 84, 84)``: CHW) and the last otherwise (``(84, 84, 4)``,
  ``(10, 10, 6)``, ``(10, 10, 10)``: HWC, Gymnasium's and MinAtar's convention);
  ``channel_order="chw"`` or ``"hwc"`` overrides the guess.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np

from pgrad.constants import CHANNEL_ORDERS
from pgrad.errors import PgradError

__all__ = [
    "CHANNEL_ORDERS",
    "MIN_IMAGE_SIDE",
    "SUPPORTED_SPACES",
    "ImageLayout",
    "UnsupportedSpaceError",
    "flat_observation_space",
    "image_layout",
    "image_leaves",
]

SUPPORTED_SPACES = {
    "observation": "Box (any shape, flattened; image-shaped Boxes to a CNN), Discrete "
                   "(one-hot), MultiDiscrete (one-hots), MultiBinary, Dict and Tuple of these "
                   "(flattened)",
    "action": "Discrete (Categorical), MultiDiscrete (independent Categoricals), "
              "MultiBinary (Bernoulli), Box with float dtype (diagonal Gaussian)",
}
MIN_IMAGE_SIDE = 8


class UnsupportedSpaceError(PgradError):
    """A Gymnasium space that no pgrad policy handles."""


class ImageLayout(NamedTuple):
    """Where an image observation keeps its channels: ``[B, *shape]`` → ``[B, C, H, W]``."""

    channels: int
    height: int
    width: int
    channels_last: bool
    """HWC (permuted to CHW by the encoder); rank-2 images have one channel and this False."""


def flat_observation_space(space: gym.Space) -> gym.Space:
    """The space a policy sees: Dict and Tuple observations flattened to one Box (the vector
    env is wrapped with Gymnasium's ``FlattenObservation``), every other space as it is."""
    if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        try:
            return gym.spaces.flatten_space(space)
        except NotImplementedError as e:
            raise UnsupportedSpaceError(f"observation space {space} cannot be flattened; "
                                        f"supported: {SUPPORTED_SPACES['observation']}") from e
    return space


def _has_image_dtype(space: gym.spaces.Box) -> bool:
    if space.dtype in (np.uint8, np.bool_):
        return True
    return (np.issubdtype(space.dtype, np.floating)
            and bool(np.all(space.low >= 0.0)) and bool(np.all(space.high <= 1.0)))


def image_layout(space: gym.Space, channel_order: str = "auto",
                 *, require_image_dtype: bool = True) -> ImageLayout | None:
    """The layout of an image-shaped Box (see the module docstring), else None.

    ``require_image_dtype=False`` accepts any rank-2 or rank-3 Box of any size (an explicit
    ``encoder='cnn'``); the size is then checked by the CNN that reads it.
    """
    if channel_order not in CHANNEL_ORDERS:
        raise PgradError(f"channel_order must be one of {', '.join(CHANNEL_ORDERS)}, "
                         f"got {channel_order!r}")
    if not isinstance(space, gym.spaces.Box) or len(space.shape) not in (2, 3):
        return None
    if require_image_dtype and not _has_image_dtype(space):
        return None
    shape = tuple(int(s) for s in space.shape)
    if len(shape) == 2:
        layout = ImageLayout(1, shape[0], shape[1], False)
    else:
        last = channel_order == "hwc" or (channel_order == "auto" and shape[0] >= shape[-1])
        layout = (ImageLayout(shape[2], shape[0], shape[1], True) if last
                  else ImageLayout(shape[0], shape[1], shape[2], False))
    if require_image_dtype and min(layout.height, layout.width) < MIN_IMAGE_SIDE:
        return None
    return layout


def image_leaves(space: gym.Space, path: str = "") -> list[str]:
    """Paths (``"['camera']"``, ``"[0]"``) of the image-shaped Boxes inside a Dict / Tuple."""
    if isinstance(space, gym.spaces.Dict):
        items = [(f"{path}[{key!r}]", sub) for key, sub in space.spaces.items()]
    elif isinstance(space, gym.spaces.Tuple):
        items = [(f"{path}[{i}]", sub) for i, sub in enumerate(space.spaces)]
    else:
        return [path] if path and image_layout(space) is not None else []
    return [leaf for sub_path, sub in items for leaf in image_leaves(sub, sub_path)]
