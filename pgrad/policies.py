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

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from pgrad.errors import PgradError
from pgrad.networks import init_layer, mlp

__all__ = [
    "SUPPORTED_SPACES",
    "CategoricalPolicy",
    "GaussianPolicy",
    "Policy",
    "UnsupportedSpaceError",
    "make_policy",
]

SUPPORTED_SPACES = {
    "observation": "Box (any shape, flattened), Discrete (one-hot)",
    "action": "Discrete (Categorical policy), Box (diagonal Gaussian policy)",
}
VALUE_NETS = ("shared", "separate")


class UnsupportedSpaceError(PgradError):
    """A Gymnasium space that no pgrad policy handles."""


def _obs_dim(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape, dtype=np.int64))
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    raise UnsupportedSpaceError(
        f"observation space {space} is not supported; "
        f"supported: {SUPPORTED_SPACES['observation']}"
    )


class Policy(nn.Module):
    """Shared machinery: observation encoding, MLP backbone, optional value baseline.

    Subclasses add the action head and the distribution.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        hidden_sizes: Sequence[int] = (128, 128),
        activation: str = "tanh",
        value_net: str | None = "shared",
    ) -> None:
        super().__init__()
        if value_net not in (*VALUE_NETS, None):
            raise ValueError(f"value_net must be one of {VALUE_NETS} or None, got {value_net!r}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.obs_dim = _obs_dim(observation_space)
        self._one_hot = isinstance(observation_space, gym.spaces.Discrete)
        self._obs_start = int(observation_space.start) if self._one_hot else 0
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
        """obs ``[B, *obs_shape]`` (array or tensor) → float features ``[B, obs_dim]``."""
        obs_t = torch.as_tensor(obs, device=self.device)
        if self._one_hot:
            return nn.functional.one_hot(obs_t.long() - self._obs_start, self.obs_dim).float()
        return obs_t.reshape(obs_t.shape[0], self.obs_dim).float()

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


class GaussianPolicy(Policy):
    """Diagonal Gaussian policy for a ``Box`` action space: a ∼ N(μ(s), diag σ²).

    log σ is a learned parameter independent of the state (``state_dependent_std=False``,
    the default, as in SB3 / CleanRL), or the tutorial's state-dependent head; either way it
    is clamped to ``[log_std_min, log_std_max]`` (defaults −20 and 2) so σ never underflows to
    0 or overflows. Actions sent to the environment are clipped to the space's bounds; the
    stored action and its log-prob are those of the unclipped sample, which is what was drawn
    from π (clipping inside the log-prob would corrupt the gradient).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        state_dependent_std: bool = False,
        log_std_init: float = 0.0,
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(observation_space, action_space, **kwargs)
        if not isinstance(action_space, gym.spaces.Box):
            raise UnsupportedSpaceError(f"GaussianPolicy needs a Box action space, "
                                        f"got {action_space}")
        if not log_std_min < log_std_max:
            raise ValueError(f"log_std_min ({log_std_min}) must be below log_std_max "
                             f"({log_std_max})")
        self.action_shape = tuple(action_space.shape)
        self.action_dim = int(np.prod(self.action_shape, dtype=np.int64))
        self.log_std_min = float(log_std_min)
        self.log_std_max = float(log_std_max)
        self.state_dependent_std = state_dependent_std
        self.mean_head = init_layer(nn.Linear(self.feature_dim, self.action_dim), 0.01)
        self.log_std: nn.Parameter | None = None
        self.log_std_head: nn.Linear | None = None
        if state_dependent_std:
            self.log_std_head = init_layer(nn.Linear(self.feature_dim, self.action_dim), 0.01)
            nn.init.constant_(self.log_std_head.bias, log_std_init)
        else:
            self.log_std = nn.Parameter(torch.full((self.action_dim,), float(log_std_init)))
        self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32))

    def _mean_std(self, features: Tensor) -> tuple[Tensor, Tensor]:
        mean = self.mean_head(features)
        log_std = self.log_std_head(features) if self.log_std_head is not None else self.log_std
        assert log_std is not None
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        return mean, log_std.exp().expand_as(mean)

    def _distribution(self, features: Tensor) -> Distribution:
        mean, std = self._mean_std(features)
        batch_shape = (mean.shape[0], *self.action_shape)
        return Independent(
            Normal(mean.reshape(batch_shape), std.reshape(batch_shape), validate_args=False),
            len(self.action_shape),
            validate_args=False,
        )

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
        clipped = torch.clamp(actions.detach(), low, high)
        return clipped.cpu().numpy().astype(self.action_space.dtype)


def make_policy(
    observation_space: gym.Space, action_space: gym.Space, **kwargs: Any
) -> Policy:
    """The policy for these Gymnasium spaces: Categorical for ``Discrete`` actions, diagonal
    Gaussian for ``Box`` actions. Keyword arguments go to the policy's constructor
    (``hidden_sizes``, ``activation``, ``value_net``, and for Gaussian ``state_dependent_std``,
    ``log_std_init``, ``log_std_min``, ``log_std_max``).

    Raises:
        UnsupportedSpaceError: naming the space and listing the supported ones.
    """
    _obs_dim(observation_space)
    if isinstance(action_space, gym.spaces.Discrete):
        for key in ("state_dependent_std", "log_std_init", "log_std_min", "log_std_max"):
            kwargs.pop(key, None)
        return CategoricalPolicy(observation_space, action_space, **kwargs)
    if isinstance(action_space, gym.spaces.Box):
        if not np.issubdtype(action_space.dtype, np.floating):
            raise UnsupportedSpaceError(
                f"action space {action_space} has an integer dtype; a Gaussian policy needs "
                f"float actions. Supported: {SUPPORTED_SPACES['action']}"
            )
        return GaussianPolicy(observation_space, action_space, **kwargs)
    raise UnsupportedSpaceError(
        f"action space {action_space} is not supported; supported: {SUPPORTED_SPACES['action']}"
    )
