"""Small network pieces: an MLP and orthogonal layer initialisation with per-layer gains."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

__all__ = ["ACTIVATIONS", "init_layer", "mlp"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def init_layer(layer: nn.Linear, gain: float) -> nn.Linear:
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
