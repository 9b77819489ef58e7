"""Small network pieces: an MLP, a CNN for image observations, and orthogonal layer
initialisation with per-layer gains."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, TypeVar

from torch import nn

from pgrad.errors import PgradError

__all__ = ["ACTIVATIONS", "CNN_ARCHS", "CNN_STACKS", "ConvLayer", "backbone", "cnn",
           "cnn_arch_for", "init_layer", "mlp"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}

_Layer = TypeVar("_Layer", nn.Linear, nn.Conv2d)


class ConvLayer(NamedTuple):
    """One convolution: ``channels`` output channels, a ``kernel`` × ``kernel`` window."""

    channels: int
    kernel: int
    stride: int


CNN_STACKS: dict[str, tuple[tuple[ConvLayer, ...], int]] = {
    # Mnih et al. (2015), "Human-level control through deep RL" (the Nature DQN): needs
    # images of at least 36 × 36 pixels.
    "nature": ((ConvLayer(32, 8, 4), ConvLayer(64, 4, 2), ConvLayer(64, 3, 1)), 512),
    # Young & Tian (2019), MinAtar's network: for small images (at least 3 × 3), such as
    # MinAtar's 10 × 10 grids, where the Nature kernels do not fit.
    "small": ((ConvLayer(16, 3, 1),), 128),
}
"""Convolution stacks (ReLU after each) and the width of the linear layer that follows."""
CNN_ARCHS = ("auto", *CNN_STACKS)


def init_layer(layer: _Layer, gain: float) -> _Layer:
    """Orthogonal weights scaled by ``gain``, zero bias (CleanRL / SB3 convention)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(in_dim: int, hidden_sizes: Sequence[int], activation: str = "tanh") -> nn.Sequential:
    """``in_dim → hidden_sizes[0] → … → hidden_sizes[-1]``, an activation after each layer.

    Hidden layers get gain √2. The output width is ``hidden_sizes[-1]`` (``in_dim`` when
    ``hidden_sizes`` is empty: the identity).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
        )
    layers: list[nn.Module] = []
    width = in_dim
    for size in hidden_sizes:
        layers += [init_layer(nn.Linear(width, size), math.sqrt(2)), ACTIVATIONS[activation]()]
        width = size
    return nn.Sequential(*layers)


def cnn_arch_for(height: int, width: int, arch: str = "auto") -> str:
    """``arch``, or for ``"auto"`` the Nature stack where it fits and the small one else."""
    if arch == "auto":
        return "nature" if _conv_output(CNN_STACKS["nature"][0], height, width) else "small"
    if arch not in CNN_ARCHS:
        raise PgradError(f"cnn_arch must be one of {', '.join(CNN_ARCHS)}, got {arch!r}")
    return arch


def _conv_output(layers: Sequence[ConvLayer], height: int, width: int) -> tuple[int, int] | None:
    """Spatial size after the (unpadded) convolutions, None where a kernel does not fit."""
    for layer in layers:
        if min(height, width) < layer.kernel:
            return None
        height = (height - layer.kernel) // layer.stride + 1
        width = (width - layer.kernel) // layer.stride + 1
    return height, width


def cnn(channels: int, height: int, width: int, arch: str = "auto") -> nn.Sequential:
    """Images ``[B, channels, height, width]`` (floats) → features ``[B, out]``: the
    convolutions of ``CNN_STACKS[arch]``, each followed by a ReLU, then a linear layer to
    ``out`` (512 for ``nature``, 128 for ``small``) and a ReLU. Gains √2, as CleanRL's Atari
    agents. The output width is the ``out_features`` of the last ``nn.Linear``.

    Raises:
        PgradError: the images are too small for the chosen stack.
    """
    arch = cnn_arch_for(height, width, arch)
    convs, out = CNN_STACKS[arch]
    size = _conv_output(convs, height, width)
    if size is None:
        need = "36 × 36" if arch == "nature" else "3 × 3"
        raise PgradError(f"images of {height} × {width} pixels are too small for the "
                         f"'{arch}' CNN (it needs at least {need}); use cnn_arch 'small' or "
                         "encoder 'mlp'")
    layers: list[nn.Module] = []
    in_channels = channels
    for conv in convs:
        layers += [init_layer(nn.Conv2d(in_channels, conv.channels, conv.kernel, conv.stride),
                              math.sqrt(2)), nn.ReLU()]
        in_channels = conv.channels
    flat = in_channels * size[0] * size[1]
    layers += [nn.Flatten(), init_layer(nn.Linear(flat, out), math.sqrt(2)), nn.ReLU()]
    return nn.Sequential(*layers)


def backbone(in_shape: tuple[int, ...], hidden_sizes: Sequence[int], activation: str = "tanh",
             cnn_arch: str = "auto") -> tuple[nn.Sequential, int]:
    """The trunk on encoded observations, and its output width.

    ``in_shape = (D,)``: ``mlp(D, hidden_sizes)``. ``in_shape = (C, H, W)`` (images):
    ``Sequential(cnn(C, H, W, cnn_arch), mlp(cnn width, hidden_sizes))``.
    """
    if len(in_shape) == 3:
        trunk = cnn(*in_shape, arch=cnn_arch)
        linear = trunk[-2]
        assert isinstance(linear, nn.Linear)
        width = linear.out_features
        net = nn.Sequential(trunk, mlp(width, hidden_sizes, activation))
    else:
        width = in_shape[0]
        net = mlp(width, hidden_sizes, activation)
    return net, (hidden_sizes[-1] if hidden_sizes else width)
