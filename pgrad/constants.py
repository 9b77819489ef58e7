"""Names of the choices some settings take, shared by ``config`` (validation, ``--help``) and
the modules that implement them. Plain tuples: importing this costs nothing (no torch,
no gymnasium), so ``pgrad --help`` stays fast."""

from __future__ import annotations

__all__ = ["ACTIVATION_NAMES", "ACTION_BOUNDS", "VALUE_NETS", "VECTORIZATIONS"]

VECTORIZATIONS = ("auto", "native", "sync", "async")
"""How a vector env is built (``pgrad.envs.make_vec_env``)."""
ACTIVATION_NAMES = ("tanh", "relu", "elu", "gelu", "silu")
"""Hidden activations of the MLP (``pgrad.networks.ACTIVATIONS`` maps them to modules)."""
VALUE_NETS = ("shared", "separate")
"""Baseline network layouts (``pgrad.policies``)."""
ACTION_BOUNDS = ("clip", "tanh")
"""How a Gaussian policy keeps actions in a Box (``pgrad.policies``)."""
