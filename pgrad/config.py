"""Settings of a REINFORCE agent: one frozen dataclass, each field with its help text.

The same fields are the keyword arguments of :class:`pgrad.Reinforce`, the options of
``pgrad train`` and the ``config`` saved in every checkpoint.

Vocabulary: a *step* is one transition of one environment; a *batch* is what one update
learns from; an *episode* runs from a reset to a termination or truncation.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from pgrad.envs import ENV_WRAPPERS, VECTORIZATIONS
from pgrad.errors import PgradError
from pgrad.networks import ACTIVATIONS
from pgrad.policies import ACTION_BOUNDS, CHANNEL_ORDERS, CNN_ARCHS, ENCODERS, VALUE_NETS

__all__ = ["Config"]

DEVICES = ("cpu", "cuda", "auto")
NONFINITE = ("stop", "skip")
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
    "None": (type(None),), "tuple[int, ...]": (tuple,),
    "tuple[str, ...]": (tuple,), "dict[str, Any]": (dict,),
}


MAX_INT = 2**62
"""Largest integer any setting may hold (JSON and torch need machine integers)."""
MAX_WIDTH = 2**14
"""Widest hidden layer."""
MAX_LAYERS = 64
MAX_HIDDEN_WEIGHTS = 2**26
"""Most weights between consecutive hidden layers, Σ h_i · h_(i+1) (256 MiB in float32)."""
MAX_NUM_ENVS = 2**16
MAX_BATCH_EPISODES = 2**20
MAX_BATCH_STEPS = 2**24
"""Most steps in one fixed-step batch, n_steps · num_envs."""
MAX_VALUE_STEPS = 10_000
MAX_THREADS = 1024
MAX_STR = 4096
LOG_STD_RANGE = (-50.0, 20.0)
"""log-std values allowed (exp(20) ≈ 5e8; beyond, float32 Gaussians overflow)."""
POSITIVE: dict[str, float] = {"learning_rate": 1e3, "max_grad_norm": 1e12, "obs_clip": 1e6,
                              "max_episode_steps": 1e8}
"""Float settings that must lie in (0, cap]."""
NON_NEGATIVE: dict[str, float] = {"vf_coef": 1e6, "ent_coef": 1e6}
"""Float settings that must lie in [0, cap]."""


def _finite(value: Any) -> bool:
    """True for a finite int or float (a huge int that overflows a float is not)."""
    try:
        number = float(value)
    except (OverflowError, TypeError, ValueError):
        return False
    return number - number == 0  # inf - inf and nan - nan are nan


def _short(value: Any) -> str:
    """``repr(value)``, cut to 80 characters for messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_type(name: str, annotation: str, value: Any) -> None:
    """Raise a PgradError unless ``value`` fits the field's annotation (e.g. 'int | None')."""
    allowed = tuple(t for part in annotation.split(" | ") for t in _TYPES[part])
    if isinstance(value, bool) and bool not in allowed:
        allowed = ()
    if not isinstance(value, allowed):
        raise PgradError(f"{name} must be {annotation.replace(' | ', ' or ')}, "
                         f"got {_short(value)} ({type(value).__name__})")


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class Config:
    """All settings of an agent. Defaults solve CartPole-v1."""

    env_id: str | None = field(default="CartPole-v1", metadata=_help(
        "Gymnasium environment id (None when the agent was built from a callable)."))
    env_packages: tuple[str, ...] = field(default=(), metadata=_help(
        "Python modules to import before the env id is looked up (they register their "
        "ids), e.g. ale_py or minatar; the id may also name its module: module:EnvId."))
    env_kwargs: dict[str, Any] = field(default_factory=dict, metadata=_help(
        "Keyword arguments of the env's constructor (gymnasium.make), as JSON values."))
    env_wrapper: str | None = field(default=None, metadata=_help(
        "Wrapper put around each env: 'atari' (Gymnasium's AtariPreprocessing and a stack "
        "of 4 frames: [4, 84, 84] uint8 images; extra [atari]) or None."))
    max_episode_steps: int | None = field(default=None, metadata=_help(
        "Cut episodes at this many steps (Gymnasium's TimeLimit: a truncation, bootstrapped "
        "from V). Unset: the env's own limit; an env with none gets 1000 steps when batches "
        "are whole episodes, and in evaluation."))
    num_envs: int = field(default=64, metadata=_help(
        "Number of environments stepped together (one vector env)."))
    batch_episodes: int = field(default=64, metadata=_help(
        "Episodes per update when batches are whole episodes (n_steps unset): Monte-Carlo "
        "REINFORCE, each episode played from its reset to its end under one policy."))
    n_steps: int | None = field(default=None, metadata=_help(
        "If set, a batch is n_steps steps of every env instead of whole episodes; episodes "
        "cut by the end of a batch are bootstrapped from the value baseline (an n-step "
        "actor-critic estimator, not Monte-Carlo REINFORCE). Needs baseline."))
    baseline: bool = field(default=True, metadata=_help(
        "Learn a value baseline V(s) and use the advantage G - V(s)."))
    bootstrap_truncated: bool = field(default=True, metadata=_help(
        "Estimate the future after a time-limit truncation as γ V(s') (the limit is an "
        "artificial cut of an endless task); off: the episode ends there (the limit is part "
        "of the task, as in the tutorial's 50-step walk). Needs baseline to matter."))
    value_net: str = field(default="separate", metadata=_help(
        "Baseline network: 'separate' (its own MLP of the same size) or 'shared' (a value "
        "head on the policy's backbone, the tutorial's design; learns worse on raw returns)."))
    hidden_sizes: tuple[int, ...] = field(default=(64, 64), metadata=_help(
        "Hidden layer widths of the MLP (the tutorial's is 128 128; 64 64 learns CartPole "
        "as well and trains twice as fast)."))
    activation: str = field(default="tanh", metadata=_help(
        f"Hidden activation: {', '.join(ACTIVATIONS)}."))
    learning_rate: float = field(default=1e-2, metadata=_help("Adam learning rate."))
    gamma: float = field(default=0.99, metadata=_help("Discount factor."))
    max_grad_norm: float | None = field(default=0.5, metadata=_help(
        "Clip the gradient's global norm to this (None: no clipping)."))
    value_steps: int = field(default=1, metadata=_help(
        "Gradient steps on the value loss per batch: the first is shared with the policy's, "
        "the others fit V alone (Spinning Up's train_v_iters)."))
    vf_coef: float = field(default=0.5, metadata=_help("Weight of the value loss."))
    ent_coef: float = field(default=0.0, metadata=_help("Weight of the entropy bonus."))
    discount_policy_gradient: bool = field(default=False, metadata=_help(
        "Weight each step's policy-gradient term by γ^t, t its index within its episode: "
        "the unbiased gradient of the discounted objective. Off (the tutorial's estimator, "
        "and nearly everyone's) drops γ^t; see docs/policy-gradient.md."))
    diagnostics_every: int = field(default=10, metadata=_help(
        "Every this many updates, log the variance and signal-to-noise ratio of the "
        "per-episode policy-gradient estimates and the KL between the policies before and "
        "after the update (diagnostics/*, NaN in other rows; 0: never). 10 adds about 3 percent "
        "to a default CartPole run's CPU time, 1 about 80 percent."))
    normalize_advantages: bool = field(default=True, metadata=_help(
        "Normalise advantages over the batch, (A - mean) / (std + 1e-8); without a baseline "
        "this is the tutorial's return normalisation."))
    normalize_obs: bool = field(default=False, metadata=_help(
        "Normalise observations by running mean and std (updated from every batch, saved in "
        "the checkpoint, applied at evaluation), clipped to ±obs_clip."))
    obs_clip: float = field(default=10.0, metadata=_help(
        "Clip normalised observations to ± this."))
    scale_rewards: bool = field(default=False, metadata=_help(
        "Divide rewards by the running std of the (Monte-Carlo) returns seen so far, this "
        "batch's included, as SB3's VecNormalize does: the baseline then learns numbers near "
        "1 whatever the reward's scale."))
    state_dependent_std: bool = field(default=False, metadata=_help(
        "Gaussian policies: log-std from a head on the backbone (the tutorial's) instead of "
        "a state-independent parameter."))
    action_bound: str = field(default="clip", metadata=_help(
        "Gaussian policies: keep actions in the Box by 'clip' (clip the sample sent to the "
        "env; learn from the unclipped sample) or 'tanh' (squash, with the log-det-Jacobian "
        "in the log-prob)."))
    log_std_init: float = field(default=0.0, metadata=_help("Gaussian policies: initial log-std."))
    log_std_min: float = field(default=-20.0, metadata=_help("Gaussian policies: log-std floor."))
    log_std_max: float = field(default=2.0, metadata=_help("Gaussian policies: log-std cap."))
    encoder: str = field(default="auto", metadata=_help(
        "How observations are read: 'cnn' (a convolutional network on image observations), "
        "'mlp' (flattened, into the MLP) or 'auto' (cnn for an image-shaped Box: rank 2 or "
        "3, uint8, bool or floats in [0, 1], sides of at least 8 pixels; mlp otherwise)."))
    channel_order: str = field(default="auto", metadata=_help(
        "Image observations: 'hwc' (channels last), 'chw' (channels first) or 'auto' "
        "(channels first when the first axis is shorter than the last)."))
    cnn_arch: str = field(default="auto", metadata=_help(
        "Image observations: 'nature' (the Nature-DQN CNN, images of at least 36x36), "
        "'small' (MinAtar's one-layer CNN) or 'auto' (nature where it fits)."))
    vectorization: str = field(default="auto", metadata=_help(
        "Vector env: 'native' (the env's own vectorised version), 'sync', 'async' "
        "(subprocesses), 'envpool' (EnvPool's C++ thread pool, extra [envpool]), or 'auto' "
        "(native where it exists, envpool for the envs it is verified on, else sync)."))
    threads: int | None = field(default=1, metadata=_help(
        "Torch CPU threads while training (None: leave torch's setting). One thread is "
        "fastest for small MLPs and never oversubscribes a busy machine."))
    on_nonfinite: str = field(default="stop", metadata=_help(
        "When the loss, the gradient or the parameters are not finite (nan or inf): "
        "'stop' training with an error naming what diverged and the step (the last "
        "checkpoint stays as it was), or 'skip' the update and go on."))
    seed: int = field(default=0, metadata=_help("Seed of torch, NumPy and the environments."))
    device: str = field(default="cpu", metadata=_help(
        "Torch device of the networks: cpu, cuda, cuda:N or auto."))

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise PgradError(message)

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check_type(f.name, str(f.type), value)
            if isinstance(value, float) or (isinstance(value, int) and "float" in str(f.type)
                                            and not isinstance(value, bool)):
                need(_finite(value), f"{f.name} must be a finite number, got {_short(value)}")
            elif isinstance(value, int) and not isinstance(value, bool):
                need(-MAX_INT <= value <= MAX_INT,
                     f"{f.name} must be at most {MAX_INT} in size, got {_short(value)}")
            elif isinstance(value, str):
                need(len(value) <= MAX_STR and "\x00" not in value,
                     f"{f.name} must be a short string without NUL bytes")
        for name, cap in POSITIVE.items():
            value = getattr(self, name)
            need(value is None or 0 < value <= cap,
                 f"{name} must be positive and at most {cap:g}, got {value}")
        for name, cap in NON_NEGATIVE.items():
            value = getattr(self, name)
            need(0 <= value <= cap, f"{name} must be in [0, {cap:g}], got {value}")
        need(1 <= self.num_envs <= MAX_NUM_ENVS,
             f"num_envs must be in [1, {MAX_NUM_ENVS}], got {self.num_envs}")
        need(1 <= self.batch_episodes <= MAX_BATCH_EPISODES,
             f"batch_episodes must be in [1, {MAX_BATCH_EPISODES}], got {self.batch_episodes}")
        need(self.n_steps is None or 1 <= self.n_steps * self.num_envs <= MAX_BATCH_STEPS,
             f"n_steps must be at least 1 and n_steps x num_envs at most {MAX_BATCH_STEPS} "
             f"(one batch's steps), got n_steps={self.n_steps}, num_envs={self.num_envs}")
        need(all(isinstance(m, str) and m.replace(".", "_").isidentifier()
                 for m in self.env_packages),
             f"env_packages must be Python module names, got {self.env_packages}")
        need(all(isinstance(k, str) for k in self.env_kwargs) and _is_json(self.env_kwargs),
             f"env_kwargs must map names to JSON values, got {self.env_kwargs!r}")
        need(not {"max_episode_steps", "render_mode"} & set(self.env_kwargs),
             "give max_episode_steps as its own setting (--max-episode-steps), not in "
             "env_kwargs; render_mode is chosen by pgrad")
        need(self.env_wrapper is None or self.env_wrapper in ENV_WRAPPERS,
             f"env_wrapper must be one of {', '.join(ENV_WRAPPERS)} or None, got "
             f"{self.env_wrapper!r}")
        need(self.n_steps is None or self.baseline,
             "n_steps batches cut episodes and bootstrap them from the value baseline: use "
             "them with baseline=True, or leave n_steps unset for whole-episode batches")
        need(self.value_net in VALUE_NETS,
             f"value_net must be one of {', '.join(VALUE_NETS)}, got {self.value_net!r}")
        widths = self.hidden_sizes
        need(1 <= len(widths) <= MAX_LAYERS
             and all(isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= MAX_WIDTH
                     for h in widths),
             f"hidden_sizes must be 1 to {MAX_LAYERS} widths, each in [1, {MAX_WIDTH}], "
             f"got {_short(widths)}")
        weights = sum(a * b for a, b in zip(widths, widths[1:], strict=False))
        need(weights <= MAX_HIDDEN_WEIGHTS,
             f"hidden_sizes {_short(widths)} make {weights} weights between hidden layers, "
             f"more than the {MAX_HIDDEN_WEIGHTS} allowed; use narrower or fewer layers")
        need(self.activation in ACTIVATIONS,
             f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        need(0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}")
        need(1 <= self.value_steps <= MAX_VALUE_STEPS,
             f"value_steps must be in [1, {MAX_VALUE_STEPS}], got {self.value_steps}")
        lo, hi = LOG_STD_RANGE
        for name in ("log_std_init", "log_std_min", "log_std_max"):
            need(lo <= getattr(self, name) <= hi,
                 f"{name} must be in [{lo:g}, {hi:g}], got {getattr(self, name)}")
        need(self.log_std_min < self.log_std_max,
             f"log_std_min ({self.log_std_min}) must be below log_std_max ({self.log_std_max})")
        need(self.diagnostics_every >= 0,
             f"diagnostics_every must be non-negative, got {self.diagnostics_every}")
        need(0 <= self.seed < 2**31, f"seed must be in [0, 2**31), got {self.seed}")
        need(self.threads is None or 1 <= self.threads <= MAX_THREADS,
             f"threads must be in [1, {MAX_THREADS}] (or None), got {self.threads}")
        need(self.action_bound in ACTION_BOUNDS,
             f"action_bound must be one of {', '.join(ACTION_BOUNDS)}, "
             f"got {self.action_bound!r}")
        for name, choices in (("encoder", ENCODERS), ("channel_order", CHANNEL_ORDERS),
                              ("cnn_arch", CNN_ARCHS)):
            need(getattr(self, name) in choices, f"{name} must be one of {', '.join(choices)}, "
                                                 f"got {getattr(self, name)!r}")
        need(self.vectorization in VECTORIZATIONS,
             f"vectorization must be one of {', '.join(VECTORIZATIONS)}, "
             f"got {self.vectorization!r}")
        need(self.on_nonfinite in NONFINITE,
             f"on_nonfinite must be one of {', '.join(NONFINITE)}, got {self.on_nonfinite!r}")
        need(self.device in DEVICES
             or (self.device.startswith("cuda:") and self.device[5:].isdigit()
                 and len(self.device) <= 9),
             f"device must be one of {', '.join(DEVICES)} or cuda:N, got {self.device!r}")

    @property
    def policy_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`pgrad.policies.make_policy`."""
        return {
            "hidden_sizes": self.hidden_sizes,
            "activation": self.activation,
            "value_net": self.value_net if self.baseline else None,
            "state_dependent_std": self.state_dependent_std,
            "log_std_init": self.log_std_init,
            "log_std_min": self.log_std_min,
            "log_std_max": self.log_std_max,
            "action_bound": self.action_bound,
            "normalize_obs": self.normalize_obs,
            "obs_clip": self.obs_clip,
            "encoder": self.encoder,
            "channel_order": self.channel_order,
            "cnn_arch": self.cnn_arch,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        data = dataclasses.asdict(self)
        data["hidden_sizes"] = list(self.hidden_sizes)
        data["env_packages"] = list(self.env_packages)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            raise PgradError(f"a config must be an object of settings, got "
                             f"{type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise PgradError(f"unknown config keys: {_short(unknown)}")
        data = dict(data)
        widths = data.get("hidden_sizes")
        if isinstance(widths, list | tuple) and len(widths) <= MAX_LAYERS:
            data["hidden_sizes"] = tuple(widths)
        elif "hidden_sizes" in data:
            raise PgradError(f"hidden_sizes must be a list of 1 to {MAX_LAYERS} widths, got "
                             f"{_short(widths)}")
        if isinstance(data.get("env_packages"), list):
            data["env_packages"] = tuple(data["env_packages"])
        return cls(**data)
