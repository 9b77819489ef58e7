"""Action distributions: the network's features → a distribution over one action space.

One adapter per action space, chosen by :func:`make_distribution` (Stable-Baselines3's
``make_proba_distribution`` idea):

* ``Discrete(n, start)``: :class:`CategoricalAdapter`, π(a|s) = softmax(logits(s))_a;
* ``MultiDiscrete(nvec, start)``: :class:`MultiCategoricalAdapter`, independent Categoricals;
* ``MultiBinary(shape)``: :class:`BernoulliAdapter`, independent Bernoullis;
* float ``Box``: a diagonal Gaussian N(μ(s), diag σ²), kept in the bounds by clipping the
  sample sent to the env (:class:`GaussianClipAdapter`, ``action_bound="clip"``) or by a
  tanh squash with its log-det-Jacobian (:class:`GaussianTanhAdapter`, ``"tanh"``).

An adapter is a recipe, not a module: :meth:`~ActionDistribution.heads` creates the layers
(and :meth:`~ActionDistribution.buffers` the constants) that the network registers under
these names, so a checkpoint names them ``logits_head.weight``, ``log_std``, ``low``, …; every
other method reads them from the network ``net`` it is given, with ``features: [B, F]`` the
backbone's output:

* ``distribution(net, features)``: a ``torch.distributions`` object whose ``log_prob(actions)``
  and ``entropy()`` have shape ``[B]`` (summed over the action's dimensions);
* ``sample(net, features, generator)``: actions ``[B, *action_shape]`` drawn with ``generator``
  (the global stream when None);
* ``mode(net, features)``: the deterministic action (argmax, the mean, logit > 0);
* ``env_actions(net, actions)``: stored actions → env actions as a tensor (start offsets,
  clip or tanh squash, the space's dtype), torch ops only so that it can be traced;
* ``to_env(net, actions)``: the same as a NumPy array on the CPU.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, Normal

from pgrad.constants import ACTION_BOUNDS
from pgrad.errors import PgradError
from pgrad.networks import init_layer
from pgrad.spaces import SUPPORTED_SPACES, UnsupportedSpaceError

__all__ = [
    "ACTION_BOUNDS",
    "ActionDistribution",
    "BernoulliAdapter",
    "CategoricalAdapter",
    "GaussianAdapter",
    "GaussianClipAdapter",
    "GaussianTanhAdapter",
    "MultiCategoricalAdapter",
    "TanhSquashedNormal",
    "bounded_log_std",
    "make_distribution",
    "torch_dtype",
]


Heads = dict[str, nn.Module | nn.Parameter | None]


def torch_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype of a NumPy dtype (``np.int64`` → ``torch.int64``)."""
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


def _gumbel_max(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    """argmax(logits + G), G = −log(E), E ~ Exp(1): an exact draw from softmax(logits) over
    the last axis, and cheaper than ``torch.multinomial`` for small batches."""
    noise = torch.empty_like(logits).exponential_(generator=generator)
    return (logits - noise.log()).argmax(dim=-1)


class ActionDistribution(ABC):
    """The distribution of one action space (see the module docstring for the contract)."""

    action_dtype: torch.dtype = torch.int64
    """How the rollout stores actions."""

    def __init__(self, action_space: gym.Space) -> None:
        self.action_space = action_space
        self.action_shape: tuple[int, ...] = tuple(action_space.shape or ())
        self.env_dtype = torch_dtype(action_space.dtype)

    @abstractmethod
    def heads(self, feature_dim: int) -> Heads:
        """The head layers / parameters on features of width ``feature_dim``, by name, in
        creation order (the order fixes the initial weights drawn from the seed)."""

    def buffers(self) -> dict[str, tuple[Tensor, bool]]:
        """Constants the network keeps for this adapter: name → (tensor, persistent)."""
        return {}

    @abstractmethod
    def distribution(self, net: nn.Module, features: Tensor) -> Distribution:
        """π(·|s) from features ``[B, F]``."""

    @abstractmethod
    def sample(self, net: nn.Module, features: Tensor,
               generator: torch.Generator | None) -> Tensor:
        """Actions ``[B, *action_shape]`` drawn from π(·|s) with ``generator``."""

    @abstractmethod
    def mode(self, net: nn.Module, features: Tensor) -> Tensor:
        """The deterministic action ``[B, *action_shape]``, as stored."""

    @abstractmethod
    def env_actions(self, net: nn.Module, actions: Tensor) -> Tensor:
        """Stored actions ``[B, *action_shape]`` → the env's actions, in its dtype."""

    def to_env(self, net: nn.Module, actions: Tensor) -> np.ndarray:
        """Actions as the environment takes them (a NumPy array on the CPU)."""
        return self.env_actions(net, actions.detach()).cpu().numpy()


class CategoricalAdapter(ActionDistribution):
    """``Discrete(n, start)``: π(a|s) = softmax(logits(s))_a; the env gets a + start."""

    def __init__(self, action_space: gym.spaces.Discrete) -> None:
        super().__init__(action_space)
        self.n_actions = int(action_space.n)
        self.start = int(action_space.start)

    def heads(self, feature_dim: int) -> Heads:
        return {"logits_head": init_layer(nn.Linear(feature_dim, self.n_actions), 0.01)}

    def distribution(self, net: nn.Module, features: Tensor) -> Distribution:
        return Categorical(logits=net.logits_head(features), validate_args=False)

    def sample(self, net: nn.Module, features: Tensor,
               generator: torch.Generator | None) -> Tensor:
        return _gumbel_max(net.logits_head(features), generator)

    def mode(self, net: nn.Module, features: Tensor) -> Tensor:
        return net.logits_head(features).argmax(dim=-1)

    def env_actions(self, net: nn.Module, actions: Tensor) -> Tensor:
        return (actions + self.start if self.start else actions).to(self.env_dtype)


class MultiCategoricalAdapter(ActionDistribution):
    """``MultiDiscrete(nvec, start)``: independent Categoricals,
    π(a|s) = Π_k softmax(logits_k(s))_{a_k}; log-prob and entropy summed over the k.

    The head's Σ nvec logits are laid out on a ``[K, max n]`` grid padded with −inf (the
    buffer ``logit_index`` says which logit goes where), so one argmax serves all k.
    """

    def __init__(self, action_space: gym.spaces.MultiDiscrete) -> None:
        super().__init__(action_space)
        self.nvec = [int(n) for n in action_space.nvec.ravel()]

    def heads(self, feature_dim: int) -> Heads:
        return {"logits_head": init_layer(nn.Linear(feature_dim, sum(self.nvec)), 0.01)}

    def buffers(self) -> dict[str, tuple[Tensor, bool]]:
        nvec = torch.tensor(self.nvec)
        column = torch.arange(max(self.nvec))
        offsets = torch.cumsum(nvec, 0) - nvec
        # Position (k, j) holds logit offsets[k] + j, or the −inf pad (index Σ nvec).
        index = torch.where(column[None, :] < nvec[:, None], offsets[:, None] + column,
                            torch.tensor(sum(self.nvec)))
        start = torch.as_tensor(self.action_space.start.ravel())
        return {"logit_index": (index, False), "start": (start, False)}

    def _logits(self, net: nn.Module, features: Tensor) -> Tensor:
        """``[B, K, max n]``."""
        flat = net.logits_head(features)
        pad = flat.new_full((flat.shape[0], 1), float("-inf"))
        return torch.cat([flat, pad], dim=1)[:, net.logit_index]

    def distribution(self, net: nn.Module, features: Tensor) -> Distribution:
        logits = self._logits(net, features).reshape(features.shape[0], *self.action_shape, -1)
        return Independent(Categorical(logits=logits, validate_args=False),
                           len(self.action_shape), validate_args=False)

    def sample(self, net: nn.Module, features: Tensor,
               generator: torch.Generator | None) -> Tensor:
        return _gumbel_max(self._logits(net, features), generator).reshape(-1, *self.action_shape)

    def mode(self, net: nn.Module, features: Tensor) -> Tensor:
        return self._logits(net, features).argmax(dim=-1).reshape(-1, *self.action_shape)

    def env_actions(self, net: nn.Module, actions: Tensor) -> Tensor:
        start = net.start.reshape(self.action_shape).to(actions.device)
        return (actions + start).to(self.env_dtype)


class BernoulliAdapter(ActionDistribution):
    """``MultiBinary(shape)``: independent Bernoullis,
    π(a|s) = Π_i σ(l_i)^{a_i} (1 − σ(l_i))^{1 − a_i}; actions are stored as floats 0/1."""

    action_dtype = torch.float32

    def __init__(self, action_space: gym.spaces.MultiBinary) -> None:
        super().__init__(action_space)
        self.size = int(np.prod(self.action_shape, dtype=np.int64))

    def heads(self, feature_dim: int) -> Heads:
        return {"logits_head": init_layer(nn.Linear(feature_dim, self.size), 0.01)}

    def _logits(self, net: nn.Module, features: Tensor) -> Tensor:
        return net.logits_head(features).reshape(features.shape[0], *self.action_shape)

    def distribution(self, net: nn.Module, features: Tensor) -> Distribution:
        return Independent(Bernoulli(logits=self._logits(net, features), validate_args=False),
                           len(self.action_shape), validate_args=False)

    def sample(self, net: nn.Module, features: Tensor,
               generator: torch.Generator | None) -> Tensor:
        probs = torch.sigmoid(self._logits(net, features))
        uniform = torch.rand(probs.shape, generator=generator, device=probs.device)
        return (uniform < probs).float()

    def mode(self, net: nn.Module, features: Tensor) -> Tensor:
        return (self._logits(net, features) > 0).float()

    def env_actions(self, net: nn.Module, actions: Tensor) -> Tensor:
        return actions.to(self.env_dtype)


class _InwardClamp(torch.autograd.Function):
    """clamp(x, low, high) whose gradient also flows where x lies outside [low, high] and a
    gradient-descent step (x − lr · grad) would move it back towards the bounds."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, low: float, high: float) -> Tensor:  # type: ignore[override]
        return x.clamp(low, high)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, low, high = inputs
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        inside = (x >= ctx.low) & (x <= ctx.high)
        inward = ((x > ctx.high) & (grad > 0)) | ((x < ctx.low) & (grad < 0))
        return torch.where(inside | inward, grad, torch.zeros_like(grad)), None, None


def bounded_log_std(log_std: Tensor, low: float, high: float) -> Tensor:
    """log σ clamped to ``[low, high]`` in the forward pass (inside the bounds the value is
    ``log_std`` itself, bit for bit). Its gradient is the plain clamp's inside the bounds;
    outside, a plain clamp's gradient is zero, so a log-std that overshot a bound would stay
    there for good. Here the gradient still flows when it points back inside."""
    return _InwardClamp.apply(log_std, low, high)


class GaussianAdapter(ActionDistribution):
    """Float ``Box``: a diagonal Gaussian N(μ(s), diag σ²) (the bounds: see the subclasses).

    log σ is a learned parameter independent of the state (``state_dependent_std=False``,
    the default, as in SB3 / CleanRL), or the tutorial's state-dependent head; either way it
    is bounded to ``[log_std_min, log_std_max]`` (defaults −20 and 2) by
    :func:`bounded_log_std`, so σ never underflows to 0 or overflows and stays learnable.
    """

    action_dtype = torch.float32

    def __init__(self, action_space: gym.spaces.Box, *, state_dependent_std: bool = False,
                 log_std_init: float = 0.0, log_std_min: float = -20.0,
                 log_std_max: float = 2.0) -> None:
        super().__init__(action_space)
        if not np.issubdtype(action_space.dtype, np.floating):
            raise UnsupportedSpaceError(
                f"action space {action_space} has an integer dtype; a Gaussian policy needs "
                f"float actions. Supported: {SUPPORTED_SPACES['action']}")
        if not log_std_min < log_std_max:
            raise PgradError(f"log_std_min ({log_std_min}) must be below log_std_max "
                             f"({log_std_max})")
        self.action_dim = int(np.prod(self.action_shape, dtype=np.int64))
        self.state_dependent_std = state_dependent_std
        self.log_std_init = float(log_std_init)
        self.log_std_min = float(log_std_min)
        self.log_std_max = float(log_std_max)

    def heads(self, feature_dim: int) -> Heads:
        heads: Heads = {"mean_head": init_layer(nn.Linear(feature_dim, self.action_dim), 0.01)}
        if self.state_dependent_std:
            log_std_head = init_layer(nn.Linear(feature_dim, self.action_dim), 0.01)
            nn.init.constant_(log_std_head.bias, self.log_std_init)
            heads.update(log_std_head=log_std_head, log_std=None)
        else:
            heads.update(log_std_head=None, log_std=nn.Parameter(
                torch.full((self.action_dim,), self.log_std_init)))
        return heads

    def buffers(self) -> dict[str, tuple[Tensor, bool]]:
        space = self.action_space
        return {"low": (torch.as_tensor(space.low, dtype=torch.float32), True),
                "high": (torch.as_tensor(space.high, dtype=torch.float32), True)}

    def _mean_std(self, net: nn.Module, features: Tensor) -> tuple[Tensor, Tensor]:
        """μ and σ, ``[B, D]`` each."""
        mean = net.mean_head(features)
        log_std = net.log_std_head(features) if net.log_std_head is not None else net.log_std
        log_std = bounded_log_std(log_std, self.log_std_min, self.log_std_max)
        return mean, log_std.exp().expand_as(mean)

    def _normal(self, net: nn.Module, features: Tensor) -> Normal:
        mean, std = self._mean_std(net, features)
        batch_shape = (mean.shape[0], *self.action_shape)
        return Normal(mean.reshape(batch_shape), std.reshape(batch_shape), validate_args=False)

    def sample(self, net: nn.Module, features: Tensor,
               generator: torch.Generator | None) -> Tensor:
        mean, std = self._mean_std(net, features)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype,
                            device=mean.device)
        return (mean + std * noise).reshape(mean.shape[0], *self.action_shape)

    def mode(self, net: nn.Module, features: Tensor) -> Tensor:
        return net.mean_head(features).reshape(features.shape[0], *self.action_shape)


class GaussianClipAdapter(GaussianAdapter):
    """``action_bound="clip"``: the sample is clipped to the bounds when sent to the env; the
    stored action and its log-prob are those of the unclipped sample, which is what was drawn
    from π (the log-prob of a clipped action would be the density of a point that was not
    drawn, and its gradient would be wrong)."""

    def distribution(self, net: nn.Module, features: Tensor) -> Distribution:
        return Independent(self._normal(net, features), len(self.action_shape),
                           validate_args=False)

    def env_actions(self, net: nn.Module, actions: Tensor) -> Tensor:
        low, high = net.low.to(actions.device), net.high.to(actions.device)
        return torch.clamp(actions, low, high).to(self.env_dtype)


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


class GaussianTanhAdapter(GaussianAdapter):
    """``action_bound="tanh"``: a = low + (tanh(u) + 1)(high − low)/2 with u ∼ N(μ, σ); the
    log-prob carries the change of variables (see :class:`TanhSquashedNormal`). Needs
    finite bounds."""

    def __init__(self, action_space: gym.spaces.Box, **kwargs: Any) -> None:
        super().__init__(action_space, **kwargs)
        if not action_space.is_bounded("both"):
            raise PgradError(f"action_bound 'tanh' needs finite bounds, {action_space} has "
                             "infinite ones; use action_bound 'clip'")

    def buffers(self) -> dict[str, tuple[Tensor, bool]]:
        buffers = super().buffers()
        low, high = buffers["low"][0], buffers["high"][0]
        return {**buffers, "log_half_range": (((high - low) / 2).log(), False)}

    def distribution(self, net: nn.Module, features: Tensor) -> Distribution:
        return TanhSquashedNormal(self._normal(net, features), len(self.action_shape),
                                  net.log_half_range)

    def env_actions(self, net: nn.Module, actions: Tensor) -> Tensor:
        low, high = net.low.to(actions.device), net.high.to(actions.device)
        return (low + (torch.tanh(actions) + 1.0) * (high - low) / 2.0).to(self.env_dtype)


_GAUSSIANS: dict[str, type[GaussianAdapter]] = {
    "clip": GaussianClipAdapter,
    "tanh": GaussianTanhAdapter,
}
assert tuple(_GAUSSIANS) == ACTION_BOUNDS


def make_distribution(action_space: gym.Space, *, state_dependent_std: bool = False,
                      log_std_init: float = 0.0, log_std_min: float = -20.0,
                      log_std_max: float = 2.0, action_bound: str = "clip") -> ActionDistribution:
    """The adapter for an action space (the Gaussian options matter for ``Box`` only).

    Raises:
        UnsupportedSpaceError: naming the space and listing the supported ones.
        PgradError: an unknown ``action_bound``, log-std bounds in the wrong order, or
            ``tanh`` on unbounded actions.
    """
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalAdapter(action_space)
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return MultiCategoricalAdapter(action_space)
    if isinstance(action_space, gym.spaces.MultiBinary):
        return BernoulliAdapter(action_space)
    if isinstance(action_space, gym.spaces.Box):
        if action_bound not in _GAUSSIANS:
            raise PgradError(f"action_bound must be one of {', '.join(ACTION_BOUNDS)}, "
                             f"got {action_bound!r}")
        return _GAUSSIANS[action_bound](
            action_space, state_dependent_std=state_dependent_std, log_std_init=log_std_init,
            log_std_min=log_std_min, log_std_max=log_std_max)
    raise UnsupportedSpaceError(f"action space {action_space} is not supported; "
                                f"supported: {SUPPORTED_SPACES['action']}")
