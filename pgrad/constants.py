"""Names of the choices some settings take, shared by ``config`` (validation, ``--help``) and
the modules that implement them. Plain tuples: importing this costs nothing (no torch,
no gymnasium), so ``pgrad --help`` stays fast."""

from __future__ import annotations

__all__ = ["ACTION_BOUNDS", "ACTIVATION_NAMES", "CHANNEL_ORDERS", "CNN_ARCHS", "ENCODERS",
           "ENV_WRAPPERS", "GRAD_CLIPS", "LR_SCHEDULES", "STOP_ON", "VALUE_NETS",
           "VALUE_TARGETS", "VECTORIZATIONS"]

VECTORIZATIONS = ("auto", "native", "sync", "async", "envpool")
"""How a vector env is built (``pgrad.envs.make_vec_env``)."""
ACTIVATION_NAMES = ("tanh", "relu", "elu", "gelu", "silu")
"""Hidden activations of the MLP (``pgrad.networks.ACTIVATIONS`` maps them to modules)."""
VALUE_NETS = ("shared", "separate")
"""Baseline network layouts (``pgrad.policies``)."""
ACTION_BOUNDS = ("clip", "tanh")
"""How a Gaussian policy keeps actions in a Box (``pgrad.policies``)."""
ENCODERS = ("auto", "mlp", "cnn")
"""Observation encoders (``pgrad.encoders``): ``auto`` picks the CNN for image-shaped Boxes."""
CHANNEL_ORDERS = ("auto", "hwc", "chw")
"""Where an image's channel axis is (``pgrad.spaces``)."""
CNN_ARCHS = ("auto", "nature", "small")
"""Convolution stacks of the CNN encoder (``pgrad.networks.CNN_STACKS``)."""
GRAD_CLIPS = ("joint", "separate")
"""How gradients are clipped (``pgrad.agent``): one norm over policy and value together, or
each clipped on its own (``max_grad_norm``, ``vf_max_grad_norm``)."""
LR_SCHEDULES = ("constant", "linear")
"""Learning-rate schedules (``pgrad.agent``): constant, or linear decay to 0 over the run."""
VALUE_TARGETS = ("mc", "gae")
"""What the value baseline fits (``pgrad.agent``): Monte-Carlo returns or the λ-returns."""
STOP_ON = ("train", "eval")
"""Which return ``stop_return`` is compared with (``pgrad.trainer``)."""
ENV_WRAPPERS = ("atari",)
"""Wrappers pgrad applies by name (``Config.env_wrapper``; ``pgrad.envs.wrap_env``)."""
