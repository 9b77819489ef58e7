"""Policies: a batch of observations → a ``torch.distributions`` distribution over actions.

Contract (every policy):

* ``distribution(obs)``: obs ``[B, *obs_shape]`` → a distribution whose ``log_prob(actions)``
  and ``entropy()`` have shape ``[B]`` (a Gaussian's are summed over the action dimensions).
* ``act(obs, deterministic=False)`` → ``(actions, log_probs)``; ``deterministic`` takes the
  mode (argmax for Categorical, the mean for Gaussian), for evaluation.
* ``value(obs)`` → V(s) of shape ``[B]`` (never ``[B, 1]``), when the policy has a baseline.
* ``evaluate_actions(obs, actions)`` → ``(log_probs, entropy, values)`` in one forward pass,
  used by the update.

The baseline V(s) is a value head on the policy's own backbone (``value_net="shared"``, the
tutorial's design) or a separate MLP of the same size (``value_net="separate"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, Normal

from pgrad.constants import ACTION_BOUNDS, VALUE_NETS
from pgrad.errors import PgradError
from pgrad.networks import init_layer, mlp
from pgrad.normalization import RunningMeanStd

__all__ = [
    "SUPPORTED_SPACES",
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

SUPPORTED_SPACES = {
    "observation": "Box (any shape, flattened), Discrete (one-hot), MultiDiscrete (one-hots), "
                   "MultiBinary, Dict and Tuple of these (flattened)",
    "action": "Discrete (Categorical), MultiDiscrete (independent Categoricals), "
              "MultiBinary (Bernoulli), Box with float dtype (diagonal Gaussian)",
}


class UnsupportedSpaceError(PgradError):
    """A Gymnasium space that no pgrad policy handles."""


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


class ObservationEncoder(nn.Module):
    """obs ``[B, *obs_shape]`` → float features ``[B, dim]``: Box and MultiBinary flattened,
    Discrete and MultiDiscrete one-hot encoded. Dict / Tuple arrive flattened (see
    :func:`flat_observation_space`)."""

    def __init__(self, space: gym.Space) -> None:
        super().__init__()
        space = flat_observation_space(space)
        self.kind = type(space).__name__
        if isinstance(space, gym.spaces.Box | gym.spaces.MultiBinary):
            self.dim = int(np.prod(space.shape, dtype=np.int64))
            starts, sizes = np.zeros(0), np.zeros(0)
        elif isinstance(space, gym.spaces.Discrete):
            starts, sizes = np.array([space.start]), np.array([space.n])
        elif isinstance(space, gym.spaces.MultiDiscrete):
            starts, sizes = space.start.ravel(), space.nvec.ravel()
        else:
            raise UnsupportedSpaceError(f"observation space {space} is not supported; "
                                        f"supported: {SUPPORTED_SPACES['observation']}")
        if sizes.size:
            self.dim = int(sizes.sum())
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


class Policy(nn.Module):
    """Shared machinery: observation encoding, MLP backbone, optional value baseline.

    Subclasses add the action head and the distribution, and say how actions are stored
    (``action_dtype``; ``action_shape`` is the shape of one action).
    """

    action_dtype: torch.dtype = torch.int64
    action_shape: tuple[int, ...] = ()

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
    ) -> None:
        super().__init__()
        if value_net not in (*VALUE_NETS, None):
            raise ValueError(f"value_net must be one of {VALUE_NETS} or None, got {value_net!r}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.encoder = ObservationEncoder(observation_space)
        self.obs_dim = self.encoder.dim
        # Running observation statistics (updated by the agent from its rollouts), applied
        # to the encoded observation wherever the policy is used.
        self.obs_rms = RunningMeanStd((self.obs_dim,), clip=obs_clip) if normalize_obs else None
        self.backbone = mlp(self.obs_dim, hidden_sizes, activation)
        self.feature_dim = hidden_sizes[-1] if hidden_sizes else self.obs_dim
        self.value_net = value_net
        self.value_backbone: nn.Module | None = None
        self.value_head: nn.Linear | None = None
        if value_net == "separate":
            self.value_backbone = mlp(self.obs_dim, hidden_sizes, activation)
        if value_net is not None:
            self.value_head = init_layer(nn.Linear(self.feature_dim, 1), 1.0)

    @property
    def has_baseline(self) -> bool:
        """Whether the policy carries a learned value baseline V(s)."""
        return self.value_head is not None

    @property
    def device(self) -> torch.device:
        """Where the parameters live; observations are moved there."""
        return next(self.parameters()).device

    def preprocess(self, obs: Tensor | np.ndarray) -> Tensor:
        """obs ``[B, *obs_shape]`` (array or tensor) → float features ``[B, obs_dim]``,
        normalised by the running statistics when ``normalize_obs`` is on."""
        x = self.encoder(torch.as_tensor(obs, device=self.device))
        return x if self.obs_rms is None else self.obs_rms.normalize(x)

    def _values(self, x: Tensor, features: Tensor | None = None) -> Tensor | None:
        """V(s) ``[B]`` from preprocessed obs ``x`` (and the policy's backbone features)."""
        if self.value_head is None:
            return None
        if self.value_backbone is not None:
            features = self.value_backbone(x)
        elif features is None:
            features = self.backbone(x)
        return self.value_head(features).squeeze(-1)

    def _distribution(self, features: Tensor) -> Distribution:
        raise NotImplementedError

    def _sample(self, features: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def _mode(self, features: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, obs: Tensor | np.ndarray) -> tuple[Distribution, Tensor | None]:
        """obs ``[B, *obs_shape]`` → (distribution over actions, V(s) ``[B]`` or None)."""
        x = self.preprocess(obs)
        features = self.backbone(x)
        return self._distribution(features), self._values(x, features)

    def distribution(self, obs: Tensor | np.ndarray) -> Distribution:
        """π(·|s) for a batch of observations."""
        return self._distribution(self.backbone(self.preprocess(obs)))

    def value(self, obs: Tensor | np.ndarray) -> Tensor:
        """The baseline V(s), shape ``[B]``."""
        values = self._values(self.preprocess(obs))
        if values is None:
            raise RuntimeError("this policy has no value baseline (value_net=None)")
        return values

    def act(
        self, obs: Tensor | np.ndarray, deterministic: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Sample (or, with ``deterministic``, take the mode of) a ∼ π(·|s).

        Returns ``(actions [B, *action_shape], log_probs [B])``. Builds an autograd graph
        unless called under ``torch.no_grad()`` / ``torch.inference_mode()``.
        """
        dist = self.distribution(obs)
        actions = self._mode_of(dist) if deterministic else dist.sample()
        return actions, dist.log_prob(actions)

    def sample(self, obs: Tensor | np.ndarray, deterministic: bool = False,
               generator: torch.Generator | None = None) -> Tensor:
        """Actions only: the rollout's fast path (no log-prob, no distribution object).

        ``generator`` (on the policy's device) makes the draw independent of torch's global
        random stream; by default the global stream is used, as ``act`` does.
        """
        features = self.backbone(self.preprocess(obs))
        return self._mode(features) if deterministic else self._sample(features, generator)

    def evaluate_actions(
        self, obs: Tensor, actions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One forward pass: ``(log π(a|s) [B], entropy [B], V(s) [B] or None)``."""
        dist, values = self(obs)
        return dist.log_prob(actions), dist.entropy(), values

    def _mode_of(self, dist: Distribution) -> Tensor:
        raise NotImplementedError

    def to_env(self, actions: Tensor) -> np.ndarray:
        """Actions as the environment takes them (a NumPy array on the CPU)."""
        return actions.detach().cpu().numpy()


class CategoricalPolicy(Policy):
    """Softmax policy for a ``Discrete(n)`` action space: π(a|s) = softmax(logits(s))_a."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, **kwargs: Any):
        super().__init__(observation_space, action_space, **kwargs)
        if not isinstance(action_space, gym.spaces.Discrete):
            raise UnsupportedSpaceError(f"CategoricalPolicy needs a Discrete action space, "
                                        f"got {action_space}")
        self.n_actions = int(action_space.n)
        self.action_start = int(action_space.start)
        self.logits_head = init_layer(nn.Linear(self.feature_dim, self.n_actions), 0.01)

    def _distribution(self, features: Tensor) -> Distribution:
        return Categorical(logits=self.logits_head(features), validate_args=False)

    def _sample(self, features: Tensor, generator: torch.Generator | None) -> Tensor:
        # Gumbel-max: argmax(logits + G), G = −log(E), E ~ Exp(1), is an exact draw from
        # softmax(logits), and cheaper than torch.multinomial for small batches.
        logits = self.logits_head(features)
        noise = torch.empty_like(logits).exponential_(generator=generator)
        return (logits - noise.log()).argmax(dim=-1)

    def _mode(self, features: Tensor) -> Tensor:
        return self.logits_head(features).argmax(dim=-1)

    def _mode_of(self, dist: Distribution) -> Tensor:
        assert isinstance(dist, Categorical)
        return dist.logits.argmax(dim=-1)

    def to_env(self, actions: Tensor) -> np.ndarray:
        env_actions = actions.detach().cpu().numpy()
        return env_actions + self.action_start if self.action_start else env_actions


class MultiCategoricalPolicy(Policy):
    """Independent Categoricals for a ``MultiDiscrete(nvec)`` action space:
    π(a|s) = Π_k softmax(logits_k(s))_{a_k}; log-prob and entropy summed over the k."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, **kwargs: Any):
        super().__init__(observation_space, action_space, **kwargs)
        if not isinstance(action_space, gym.spaces.MultiDiscrete):
            raise UnsupportedSpaceError(f"MultiCategoricalPolicy needs a MultiDiscrete action "
                                        f"space, got {action_space}")
        nvec = action_space.nvec.ravel()
        self.action_shape = tuple(action_space.shape)
        self.logits_head = init_layer(nn.Linear(self.feature_dim, int(nvec.sum())), 0.01)
        # Logits of the k-th Categorical sit in row k of a [K, max n] grid padded with −inf.
        valid = np.arange(nvec.max())[None, :] < nvec[:, None]
        self.register_buffer("valid", torch.as_tensor(valid), persistent=False)
        self.register_buffer("start", torch.as_tensor(action_space.start.ravel()),
                             persistent=False)

    def _logits(self, features: Tensor) -> Tensor:
        flat = self.logits_head(features)
        grid = flat.new_full((flat.shape[0], *self.valid.shape), float("-inf"))
        grid[:, self.valid] = flat
        return grid

    def _distribution(self, features: Tensor) -> Distribution:
        logits = self._logits(features).reshape(features.shape[0], *self.action_shape, -1)
        return Independent(Categorical(logits=logits, validate_args=False),
                           len(self.action_shape), validate_args=False)

    def _sample(self, features: Tensor, generator: torch.Generator | None) -> Tensor:
        logits = self._logits(features)
        noise = torch.empty_like(logits).exponential_(generator=generator)
        return (logits - noise.log()).argmax(dim=-1).reshape(-1, *self.action_shape)

    def _mode(self, features: Tensor) -> Tensor:
        return self._logits(features).argmax(dim=-1).reshape(-1, *self.action_shape)

    def _mode_of(self, dist: Distribution) -> Tensor:
        return dist.base_dist.logits.argmax(dim=-1)

    def to_env(self, actions: Tensor) -> np.ndarray:
        start = self.start.reshape(self.action_shape).to(actions.device)
        return (actions.detach() + start).cpu().numpy().astype(self.action_space.dtype)


class BernoulliPolicy(Policy):
    """Independent Bernoullis for a ``MultiBinary`` action space:
    π(a|s) = Π_i σ(l_i)^{a_i} (1 − σ(l_i))^{1 − a_i}; actions are stored as floats 0/1."""

    action_dtype = torch.float32

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, **kwargs: Any):
        super().__init__(observation_space, action_space, **kwargs)
        if not isinstance(action_space, gym.spaces.MultiBinary):
            raise UnsupportedSpaceError(f"BernoulliPolicy needs a MultiBinary action space, "
                                        f"got {action_space}")
        self.action_shape = tuple(action_space.shape)
        size = int(np.prod(self.action_shape, dtype=np.int64))
        self.logits_head = init_layer(nn.Linear(self.feature_dim, size), 0.01)

    def _logits(self, features: Tensor) -> Tensor:
        return self.logits_head(features).reshape(features.shape[0], *self.action_shape)

    def _distribution(self, features: Tensor) -> Distribution:
        return Independent(Bernoulli(logits=self._logits(features), validate_args=False),
                           len(self.action_shape), validate_args=False)

    def _sample(self, features: Tensor, generator: torch.Generator | None) -> Tensor:
        probs = torch.sigmoid(self._logits(features))
        uniform = torch.rand(probs.shape, generator=generator, device=probs.device)
        return (uniform < probs).float()

    def _mode(self, features: Tensor) -> Tensor:
        return (self._logits(features) > 0).float()

    def _mode_of(self, dist: Distribution) -> Tensor:
        return (dist.base_dist.logits > 0).float()

    def to_env(self, actions: Tensor) -> np.ndarray:
        return actions.detach().cpu().numpy().astype(self.action_space.dtype)


class TanhSquashedNormal(Independent):
    """A diagonal Gaussian over u, read as the law of a = low + (tanh(u) + 1)(high − low)/2.

    Samples, ``mean`` and the ``log_prob`` argument are u (what the rollout stores: it
    keeps the log-prob exact with no atanh of a saturated action); ``log_prob(u)`` is the
    log-density of the squashed action a:

        log π(a|s) = log N(u; μ, σ) − Σ_i [log(1 − tanh(u_i)²) + log((high_i − low_i)/2)]

    with log(1 − tanh(u)²) = 2 (log 2 − u − softplus(−2u)), stable for any u. ``entropy()``
    is the Gaussian's (the squashed law has no closed form).
    """

    def __init__(self, base: Normal, event_dims: int, log_half_range: Tensor) -> None:
        super().__init__(base, event_dims, validate_args=False)
        self.log_half_range_sum = log_half_range.sum()

    def log_prob(self, value: Tensor) -> Tensor:
        log_det = 2.0 * (math.log(2.0) - value - nn.functional.softplus(-2.0 * value))
        log_det = log_det.reshape(value.shape[0], -1).sum(-1) + self.log_half_range_sum
        return super().log_prob(value) - log_det


class GaussianPolicy(Policy):
    """Diagonal Gaussian policy for a ``Box`` action space: a ∼ N(μ(s), diag σ²).

    log σ is a learned parameter independent of the state (``state_dependent_std=False``,
    the default, as in SB3 / CleanRL), or the tutorial's state-dependent head; either way it
    is clamped to ``[log_std_min, log_std_max]`` (defaults −20 and 2) so σ never underflows to
    0 or overflows. The action space's bounds are kept in one of two ways:

    * ``action_bound="clip"`` (default): the sample is clipped to the bounds when sent to the
      env; the stored action and its log-prob are those of the unclipped sample, which is
      what was drawn from π (the log-prob of a clipped action would be the density of a
      point that was not drawn, and its gradient would be wrong).
    * ``action_bound="tanh"``: a = low + (tanh(u) + 1)(high − low)/2 with u ∼ N(μ, σ); the
      log-prob carries the change of variables (see :class:`TanhSquashedNormal`). Needs
      finite bounds.
    """

    action_dtype = torch.float32

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        state_dependent_std: bool = False,
        log_std_init: float = 0.0,
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
        action_bound: str = "clip",
        **kwargs: Any,
    ) -> None:
        super().__init__(observation_space, action_space, **kwargs)
        if not isinstance(action_space, gym.spaces.Box):
            raise UnsupportedSpaceError(f"GaussianPolicy needs a Box action space, "
                                        f"got {action_space}")
        if not log_std_min < log_std_max:
            raise PgradError(f"log_std_min ({log_std_min}) must be below log_std_max "
                             f"({log_std_max})")
        if action_bound not in ACTION_BOUNDS:
            raise PgradError(f"action_bound must be one of {', '.join(ACTION_BOUNDS)}, "
                             f"got {action_bound!r}")
        if action_bound == "tanh" and not action_space.is_bounded("both"):
            raise PgradError(f"action_bound 'tanh' needs finite bounds, {action_space} has "
                             "infinite ones; use action_bound 'clip'")
        self.action_shape = tuple(action_space.shape)
        self.action_dim = int(np.prod(self.action_shape, dtype=np.int64))
        self.log_std_min = float(log_std_min)
        self.log_std_max = float(log_std_max)
        self.state_dependent_std = state_dependent_std
        self.action_bound = action_bound
        self.mean_head = init_layer(nn.Linear(self.feature_dim, self.action_dim), 0.01)
        self.log_std: nn.Parameter | None = None
        self.log_std_head: nn.Linear | None = None
        if state_dependent_std:
            self.log_std_head = init_layer(nn.Linear(self.feature_dim, self.action_dim), 0.01)
            nn.init.constant_(self.log_std_head.bias, log_std_init)
        else:
            self.log_std = nn.Parameter(torch.full((self.action_dim,), float(log_std_init)))
        low = torch.as_tensor(action_space.low, dtype=torch.float32)
        high = torch.as_tensor(action_space.high, dtype=torch.float32)
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        if action_bound == "tanh":
            self.register_buffer("log_half_range", ((high - low) / 2).log(), persistent=False)

    def _mean_std(self, features: Tensor) -> tuple[Tensor, Tensor]:
        mean = self.mean_head(features)
        log_std = self.log_std_head(features) if self.log_std_head is not None else self.log_std
        assert log_std is not None
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        return mean, log_std.exp().expand_as(mean)

    def _distribution(self, features: Tensor) -> Distribution:
        mean, std = self._mean_std(features)
        batch_shape = (mean.shape[0], *self.action_shape)
        base = Normal(mean.reshape(batch_shape), std.reshape(batch_shape), validate_args=False)
        if self.action_bound == "tanh":
            return TanhSquashedNormal(base, len(self.action_shape), self.log_half_range)
        return Independent(base, len(self.action_shape), validate_args=False)

    def _sample(self, features: Tensor, generator: torch.Generator | None) -> Tensor:
        mean, std = self._mean_std(features)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype,
                            device=mean.device)
        return (mean + std * noise).reshape(mean.shape[0], *self.action_shape)

    def _mode(self, features: Tensor) -> Tensor:
        return self.mean_head(features).reshape(features.shape[0], *self.action_shape)

    def _mode_of(self, dist: Distribution) -> Tensor:
        return dist.mean

    def to_env(self, actions: Tensor) -> np.ndarray:
        low = self.low.to(actions.device)
        high = self.high.to(actions.device)
        actions = actions.detach()
        if self.action_bound == "tanh":
            bounded = low + (torch.tanh(actions) + 1.0) * (high - low) / 2.0
        else:
            bounded = torch.clamp(actions, low, high)
        return bounded.cpu().numpy().astype(self.action_space.dtype)


_GAUSSIAN_ONLY = ("state_dependent_std", "log_std_init", "log_std_min", "log_std_max",
                  "action_bound")
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
    Gaussian for float ``Box`` actions. Keyword arguments go to the policy's constructor
    (``hidden_sizes``, ``activation``, ``value_net``, and for Gaussian ``state_dependent_std``,
    ``log_std_init``, ``log_std_min``, ``log_std_max``, ``action_bound``; the Gaussian-only
    ones are ignored for the other policies).

    Raises:
        UnsupportedSpaceError: naming the space and listing the supported ones.
    """
    ObservationEncoder(observation_space)  # raises for an unsupported observation space
    cls = _POLICIES.get(type(action_space))
    if cls is None:
        raise UnsupportedSpaceError(f"action space {action_space} is not supported; "
                                    f"supported: {SUPPORTED_SPACES['action']}")
    if cls is GaussianPolicy and not np.issubdtype(action_space.dtype, np.floating):
        raise UnsupportedSpaceError(
            f"action space {action_space} has an integer dtype; a Gaussian policy needs "
            f"float actions. Supported: {SUPPORTED_SPACES['action']}")
    if cls is not GaussianPolicy:
        kwargs = {k: v for k, v in kwargs.items() if k not in _GAUSSIAN_ONLY}
    return cls(observation_space, action_space, **kwargs)
