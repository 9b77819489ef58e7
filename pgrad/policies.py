"""Policies: a batch of observations → a ``torch.distributions`` distribution over actions.

A policy is one network module and one distribution adapter (Stable-Baselines3's split of
``common/policies.py`` and ``common/distributions.py``)::

    obs [B, *obs_shape]
      → encoder        flatten / one-hot (MLP input [B, D]) or image → [B, C, H, W] in [0, 1]
                       (pgrad.encoders; parameter-free)
      → obs_rms        running mean/std normalisation (normalize_obs; optional)
      → backbone       MLP, or CNN then MLP for images (pgrad.networks) → features [B, F]
      → heads          logits / mean (+ log-std), created by the adapter → π(·|s)
                       (pgrad.distributions: Categorical, MultiCategorical, Bernoulli,
                       Gaussian with clip or tanh bounds)
      ↘ value head     V(s) [B] on the same features (value_net="shared", the tutorial's
                       design) or on a separate backbone of the same shape ("separate")

Contract (every policy):

* ``distribution(obs)``: a distribution whose ``log_prob(actions)`` and ``entropy()`` have
  shape ``[B]`` (a Gaussian's are summed over the action dimensions).
* ``sample(obs, deterministic=False, generator=None)`` → actions ``[B, *action_shape]`` as
  stored (``deterministic``: the mode, argmax for Categorical and the mean for Gaussian);
  ``to_env(actions)`` → the env's actions (NumPy).
* ``deterministic_action(obs)``: raw obs → env-ready mode actions in torch ops only (for
  ``torch.jit.trace`` / ``torch.onnx.export``).
* ``value(obs)`` → V(s) of shape ``[B]`` (never ``[B, 1]``), when the policy has a baseline.
* ``evaluate_actions(obs, actions)`` → ``(log_probs, entropy, values)`` in one forward pass,
  used by the update.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from pgrad.constants import VALUE_NETS
from pgrad.distributions import ACTION_BOUNDS, TanhSquashedNormal, make_distribution
from pgrad.encoders import ENCODERS, ObservationEncoder, make_encoder
from pgrad.networks import CNN_ARCHS, backbone, init_layer
from pgrad.normalization import RunningMeanStd
from pgrad.spaces import (
    CHANNEL_ORDERS,
    SUPPORTED_SPACES,
    UnsupportedSpaceError,
    flat_observation_space,
)

__all__ = [
    "ACTION_BOUNDS",
    "CHANNEL_ORDERS",
    "CNN_ARCHS",
    "ENCODERS",
    "SUPPORTED_SPACES",
    "VALUE_NETS",
    "BernoulliPolicy",
    "CategoricalPolicy",
    "GaussianPolicy",
    "MultiCategoricalPolicy",
    "ObservationEncoder",
    "Policy",
    "TanhSquashedNormal",
    "UnsupportedSpaceError",
    "flat_observation_space",
    "make_policy",
]



class Policy(nn.Module):
    """Encoder → backbone → heads, with an optional value baseline, for any supported
    action space (the adapter comes from :func:`pgrad.distributions.make_distribution`).

    ``encoder`` (``"auto"``, ``"mlp"``, ``"cnn"``), ``channel_order`` and ``cnn_arch``
    choose how observations are read (see :mod:`pgrad.spaces` for the image rule); the
    Gaussian options (``state_dependent_std``, ``log_std_*``, ``action_bound``) matter for
    ``Box`` actions only.
    """

    action_space_type: ClassVar[type[gym.Space] | None] = None
    """The action space a subclass is for (None: any supported one)."""

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        hidden_sizes: Sequence[int] = (128, 128),
        activation: str = "tanh",
        value_net: str | None = "shared",
        normalize_obs: bool = False,
        obs_clip: float = 10.0,
        encoder: str = "auto",
        channel_order: str = "auto",
        cnn_arch: str = "auto",
        state_dependent_std: bool = False,
        log_std_init: float = 0.0,
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
        action_bound: str = "clip",
    ) -> None:
        super().__init__()
        if value_net not in (*VALUE_NETS, None):
            raise ValueError(f"value_net must be one of {VALUE_NETS} or None, got {value_net!r}")
        space_type = self.action_space_type
        if space_type is not None and not isinstance(action_space, space_type):
            raise UnsupportedSpaceError(f"{type(self).__name__} needs a {space_type.__name__} "
                                        f"action space, got {action_space}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.encoder = make_encoder(observation_space, encoder, channel_order)
        self.action_dist = make_distribution(
            action_space, state_dependent_std=state_dependent_std, log_std_init=log_std_init,
            log_std_min=log_std_min, log_std_max=log_std_max, action_bound=action_bound)
        self.action_shape: tuple[int, ...] = self.action_dist.action_shape
        """The shape of one action as stored."""
        self.action_dtype: torch.dtype = self.action_dist.action_dtype
        """The dtype of stored actions."""
        self.obs_dim = self.encoder.dim
        in_shape = self.encoder.out_shape
        # Running observation statistics (updated by the agent from its rollouts), applied
        # to the encoded observation wherever the policy is used.
        self.obs_rms = RunningMeanStd(in_shape, clip=obs_clip) if normalize_obs else None
        self.backbone, self.feature_dim = backbone(in_shape, hidden_sizes, activation, cnn_arch)
        self.value_net = value_net
        self.value_backbone: nn.Module | None = None
        self.value_head: nn.Linear | None = None
        if value_net == "separate":
            self.value_backbone = backbone(in_shape, hidden_sizes, activation, cnn_arch)[0]
        if value_net is not None:
            self.value_head = init_layer(nn.Linear(self.feature_dim, 1), 1.0)
        for name, head in self.action_dist.heads(self.feature_dim).items():
            setattr(self, name, head)
        for name, (tensor, persistent) in self.action_dist.buffers().items():
            self.register_buffer(name, tensor, persistent=persistent)

    @property
    def has_baseline(self) -> bool:
        """Whether the policy carries a learned value baseline V(s)."""
        return self.value_head is not None

    @property
    def device(self) -> torch.device:
        """Where the parameters live; observations are moved there. Cached (the rollout
        asks at every step); ``.to()`` and ``load_state_dict`` refresh it."""
        device = self.__dict__.get("_device")
        if device is None:
            device = next(self.parameters()).device
            self.__dict__["_device"] = device
        return device

    def _apply(self, fn: Any, recurse: bool = True) -> Policy:
        self.__dict__.pop("_device", None)  # .to(), .cuda(), .float(), ... may move it
        return super()._apply(fn, recurse)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self.__dict__.pop("_device", None)  # assign=True takes the given tensors' device
        return super().load_state_dict(*args, **kwargs)

    def _normalize(self, x: Tensor) -> Tensor:
        """``obs_rms.normalize(x)`` without a Python branch on the statistics' count (so
        a trace keeps both cases): x as it is until a batch has been seen."""
        rms = self.obs_rms
        if rms is None:
            return x
        normalized = ((x - rms.mean.to(x.dtype)) / rms.std.to(x.dtype)).clamp(-rms.clip, rms.clip)
        return torch.where(rms.count > 0, normalized, x)

    def preprocess(self, obs: Tensor | np.ndarray) -> Tensor:
        """obs ``[B, *obs_shape]`` (array or tensor) → the backbone's float input (``[B,
        obs_dim]``, or ``[B, C, H, W]`` for images), normalised by the running statistics
        when ``normalize_obs`` is on."""
        return self._normalize(self.encoder(torch.as_tensor(obs, device=self.device)))

    def _values(self, x: Tensor, features: Tensor | None = None) -> Tensor | None:
        """V(s) ``[B]`` from preprocessed obs ``x`` (and the policy's backbone features)."""
        if self.value_head is None:
            return None
        if self.value_backbone is not None:
            features = self.value_backbone(x)
        elif features is None:
            features = self.backbone(x)
        return self.value_head(features).squeeze(-1)

    def distribution_from_features(self, features: Tensor) -> Distribution:
        """π(·|s) from the backbone's features ``[B, F]``."""
        return self.action_dist.distribution(self, features)

    def forward(self, obs: Tensor | np.ndarray) -> tuple[Distribution, Tensor | None]:
        """obs ``[B, *obs_shape]`` → (distribution over actions, V(s) ``[B]`` or None)."""
        x = self.preprocess(obs)
        features = self.backbone(x)
        return self.distribution_from_features(features), self._values(x, features)

    def distribution(self, obs: Tensor | np.ndarray) -> Distribution:
        """π(·|s) for a batch of observations."""
        return self.distribution_from_features(self.backbone(self.preprocess(obs)))

    def value(self, obs: Tensor | np.ndarray) -> Tensor:
        """The baseline V(s), shape ``[B]``."""
        values = self._values(self.preprocess(obs))
        if values is None:
            raise RuntimeError("this policy has no value baseline (value_net=None)")
        return values

    def sample(self, obs: Tensor | np.ndarray, deterministic: bool = False,
               generator: torch.Generator | None = None) -> Tensor:
        """Actions ``[B, *action_shape]`` as stored: the rollout's fast path (no log-prob,
        no distribution object); ``deterministic`` takes the mode.

        ``generator`` (on the policy's device) makes the draw independent of torch's global
        random stream; by default the global stream is used.
        """
        features = self.backbone(self.preprocess(obs))
        if deterministic:
            return self.action_dist.mode(self, features)
        return self.action_dist.sample(self, features, generator)

    def evaluate_actions(
        self, obs: Tensor, actions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One forward pass: ``(log π(a|s) [B], entropy [B], V(s) [B] or None)``."""
        dist, values = self(obs)
        return dist.log_prob(actions), dist.entropy(), values

    def to_env(self, actions: Tensor) -> np.ndarray:
        """Actions as the environment takes them (a NumPy array on the CPU)."""
        return self.action_dist.to_env(self, actions)

    def deterministic_action(self, obs: Tensor) -> Tensor:
        """Raw observations ``[B, *obs_shape]`` (as the vector env gives them, on the
        policy's device) → the env's actions for the mode of π, as a tensor in the action
        space's dtype: argmax + start for Discrete / MultiDiscrete, the mean clipped or
        tanh-squashed into the bounds for Box, 0/1 for MultiBinary. Equals
        ``to_env(sample(obs, deterministic=True))``, in torch ops only and with no branch on
        values, so ``torch.jit.trace`` and ``torch.onnx.export`` capture all of it."""
        features = self.backbone(self._normalize(self.encoder(obs)))
        return self.action_dist.env_actions(self, self.action_dist.mode(self, features))


class CategoricalPolicy(Policy):
    """Softmax policy for a ``Discrete(n)`` action space: π(a|s) = softmax(logits(s))_a."""

    action_space_type = gym.spaces.Discrete


class MultiCategoricalPolicy(Policy):
    """Independent Categoricals for a ``MultiDiscrete(nvec)`` action space."""

    action_space_type = gym.spaces.MultiDiscrete


class BernoulliPolicy(Policy):
    """Independent Bernoullis for a ``MultiBinary`` action space."""

    action_space_type = gym.spaces.MultiBinary


class GaussianPolicy(Policy):
    """Diagonal Gaussian policy for a float ``Box`` action space, the bounds kept by clipping
    (``action_bound="clip"``) or a tanh squash (``"tanh"``); see
    :mod:`pgrad.distributions`."""

    action_space_type = gym.spaces.Box


_POLICIES: dict[type[gym.Space], type[Policy]] = {
    gym.spaces.Discrete: CategoricalPolicy,
    gym.spaces.MultiDiscrete: MultiCategoricalPolicy,
    gym.spaces.MultiBinary: BernoulliPolicy,
    gym.spaces.Box: GaussianPolicy,
}


def make_policy(
    observation_space: gym.Space, action_space: gym.Space, **kwargs: Any
) -> Policy:
    """The policy for these Gymnasium spaces: Categorical for ``Discrete`` actions,
    independent Categoricals for ``MultiDiscrete``, Bernoulli for ``MultiBinary``, diagonal
    Gaussian for float ``Box`` actions; an MLP on flattened observations, or a CNN on
    image-shaped ``Box`` observations. Keyword arguments go to :class:`Policy`
    (``hidden_sizes``, ``activation``, ``value_net``, ``normalize_obs``, ``obs_clip``,
    ``encoder``, ``channel_order``, ``cnn_arch``, and for Gaussian ``state_dependent_std``,
    ``log_std_init``, ``log_std_min``, ``log_std_max``, ``action_bound``).

    Raises:
        UnsupportedSpaceError: naming the space and listing the supported ones.
    """
    cls = next((cls for space, cls in _POLICIES.items() if isinstance(action_space, space)),
               Policy)
    return cls(observation_space, action_space, **kwargs)
