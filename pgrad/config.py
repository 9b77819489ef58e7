"""Settings of a REINFORCE agent: one frozen dataclass, each field with its help text.

The same fields are the keyword arguments of :class:`pgrad.Reinforce`, the options of
``pgrad train`` and the ``config`` saved in every checkpoint.

Vocabulary: a *step* is one transition of one environment; a *batch* is what one update
learns from; an *episode* runs from a reset to a termination or truncation.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from pgrad.constants import (
    ACTION_BOUNDS,
    CHANNEL_ORDERS,
    CNN_ARCHS,
    ENCODERS,
    ENV_WRAPPERS,
    GRAD_CLIPS,
    LR_SCHEDULES,
    VALUE_NETS,
    VALUE_TARGETS,
    VECTORIZATIONS,
)
from pgrad.constants import ACTIVATION_NAMES as ACTIVATIONS
from pgrad.errors import PgradError

__all__ = ["Config", "FieldKind", "field_kind"]

DEVICES = ("cpu", "cuda", "auto")
NONFINITE = ("stop", "skip")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_SCALARS: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
}
_CONTAINERS = ("tuple[int, ...]", "tuple[str, ...]", "dict[str, Any]")


@dataclass(frozen=True)
class FieldKind:
    """What a :class:`Config` field's annotation (``'int | None'``, ``'tuple[int, ...]'``,
    ``'dict[str, Any]'``) accepts, read once for every user of the fields: the checks of
    :class:`Config`, the options of ``pgrad train`` and the ``--set`` of ``pgrad compare``.

    ``base`` is the annotation without ``| None``; ``optional`` is whether None is allowed.
    Texts parse as: ``none`` (optional fields); ``true/false/yes/no/on/off/1/0`` (bool);
    ``32x32``, ``32,32``, ``32 32`` or ``[32, 32]`` (``tuple[int, ...]``); ``a,b``, ``a b``
    or ``[a, b]`` (``tuple[str, ...]``); ``key=value`` items or a JSON object
    (``dict[str, Any]``, each value read as JSON where it parses, else kept as a string).
    """

    annotation: str
    base: str
    optional: bool

    @property
    def is_sequence(self) -> bool:
        """Given as several command-line words (``--hidden-sizes 64 64``)."""
        return self.base in _CONTAINERS

    @property
    def metavar(self) -> str:
        """Placeholder of one command-line word."""
        return {"tuple[int, ...]": "N", "tuple[str, ...]": "NAME",
                "dict[str, Any]": "KEY=VALUE"}.get(self.base, self.base.upper())

    def parse(self, text: str) -> Any:
        """The value of one text; ValueError (naming the expected type) when it does not
        fit."""
        text = text.strip()
        if self.optional and text.lower() == "none":
            return None
        if self.base.startswith("tuple") and text[:1] + text[-1:] in ("[]", "()"):
            text = text[1:-1].strip()  # a Python or JSON list, as a user may write it
        if self.base == "tuple[int, ...]":
            return self.parse_words(re.split(r"[x, ]+", text) if text else [])
        if self.base == "tuple[str, ...]":
            return self.parse_words(re.split(r"[, ]+", text) if text else [])
        if self.base == "dict[str, Any]":
            if text.startswith("{"):
                value = _json_object(text)
                if not isinstance(value, dict):
                    raise ValueError(f"expected a JSON object, got {text!r}")
                return value
            return self.parse_words(text.split())
        return self._scalar(text)

    def parse_words(self, words: list[str]) -> Any:
        """The value of several command-line words (sequence kinds) or of one word."""
        words = [w for w in words if w]
        if self.base == "tuple[int, ...]":
            return tuple(_int(w) for w in words)
        if self.base == "tuple[str, ...]":
            return tuple(words)
        if self.base == "dict[str, Any]":
            out: dict[str, Any] = {}
            for word in words:
                key, sep, value = word.partition("=")
                if not sep or not key:
                    raise ValueError(f"expected key=value, got {word!r}")
                out[key] = _json_value(value)
            return out
        if len(words) != 1:
            raise ValueError(f"expected one {self.base}, got {len(words)} words")
        return self.parse(words[0])

    def _scalar(self, text: str) -> Any:
        if self.base == "bool":
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError(f"expected true or false, got {text!r}")
            return text.lower() in _TRUE
        if self.base == "int":
            return _int(text)
        if self.base == "float":
            return float(text)
        return text

    def check(self, name: str, value: Any) -> None:
        """Raise a PgradError unless ``value`` has this kind's type."""
        if value is None and self.optional:
            return
        ok = isinstance(value, _SCALARS.get(self.base, ()))
        if isinstance(value, bool) and self.base != "bool":
            ok = False
        elif self.base.startswith("tuple["):
            item = int if self.base == "tuple[int, ...]" else str
            ok = isinstance(value, tuple) and all(
                isinstance(v, item) and not isinstance(v, bool) for v in value)
        elif self.base == "dict[str, Any]":
            ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        if not ok:
            raise PgradError(f"{name} must be {self.annotation.replace(' | ', ' or ')}, "
                             f"got {_short(value)} ({type(value).__name__})")

    def format(self, value: Any) -> str:
        """A text :meth:`parse` reads back as ``value`` (canonical: one text per value)."""
        if value is None:
            return "none"
        if isinstance(value, bool):
            return "true" if value else "false"
        if self.base == "tuple[int, ...]":
            return "x".join(str(v) for v in value)
        if self.base == "tuple[str, ...]":
            return ",".join(value)
        if self.base == "dict[str, Any]":
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
        return repr(value) if isinstance(value, float) else str(value)


@functools.cache
def field_kind(annotation: str) -> FieldKind:
    """The :class:`FieldKind` of a field's annotation (``str(field.type)``)."""
    parts = [p.strip() for p in annotation.split("|")]
    optional = "None" in parts
    rest = [p for p in parts if p != "None"]
    if len(rest) != 1 or (rest[0] not in _SCALARS and rest[0] not in _CONTAINERS):
        raise TypeError(f"unsupported Config annotation {annotation!r}")
    return FieldKind(annotation, rest[0], optional)


def _int(text: str) -> int:
    if len(text) > 40:  # int() of a huge digit string is slow; no setting is that large
        raise ValueError(f"expected an integer, got {text[:20]!r}…")
    return int(text)


def _json_value(text: str) -> Any:
    """``3`` → 3, ``true`` → True, ``"x"`` → 'x', ``[1, 2]`` → [1, 2]; other text as is."""
    try:
        return _json_object(text)
    except ValueError:
        return text


def _json_object(text: str) -> Any:
    if len(text) > 100_000:
        raise ValueError("value too long")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("value nested too deep") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
                              "max_episode_steps": 1e8, "vf_lr": 1e3, "vf_max_grad_norm": 1e12}
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


def _check_type(name: str, annotation: str, value: Any) -> None:
    """Raise a PgradError unless ``value`` fits the field's annotation (e.g. 'int | None')."""
    field_kind(annotation).check(name, value)


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
    """All settings of an agent. The defaults are for an env without a preset
    (:mod:`pgrad.presets`): measured to learn CartPole, Acrobot, LunarLander and Pendulum
    on most seeds (docs/learning-options.md)."""

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
    num_envs: int = field(default=16, metadata=_help(
        "Number of environments stepped together (one vector env)."))
    batch_episodes: int = field(default=16, metadata=_help(
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
    learning_rate: float = field(default=3e-3, metadata=_help(
        "Adam learning rate (of the policy, and of the value unless vf_lr is set)."))
    vf_lr: float | None = field(default=None, metadata=_help(
        "Adam learning rate of the value-only parameters (None: learning_rate). A shared "
        "backbone (value_net='shared') belongs to the policy and takes learning_rate."))
    lr_schedule: str = field(default="constant", metadata=_help(
        "Learning-rate schedule: 'constant', or 'linear' decay to 0 at the end of the "
        "learn call's budget (lr · (1 - step / target step), derived from the step count, "
        "so a resumed run continues it exactly)."))
    gamma: float = field(default=0.99, metadata=_help("Discount factor."))
    gae_lambda: float = field(default=1.0, metadata=_help(
        "λ of GAE(λ) advantages. 1: the Monte-Carlo advantage G_t - V(s_t) (REINFORCE with "
        "a baseline, unbiased). Below 1: an actor-critic estimator, bootstrapped from V at "
        "every step (less variance, biased by V's error; Spinning Up's VPG uses 0.97). "
        "Needs baseline."))
    value_target: str = field(default="mc", metadata=_help(
        "What V(s) fits: 'mc' (the discounted returns G_t, bootstrapped only at cuts) or "
        "'gae' (the λ-returns A_t + V(s_t), the same as mc when gae_lambda is 1)."))
    max_grad_norm: float | None = field(default=0.5, metadata=_help(
        "Clip the gradient's norm to this (None: no clipping): the norm over policy and "
        "value together with grad_clip='joint', the policy's alone with 'separate'."))
    grad_clip: str = field(default="joint", metadata=_help(
        "'separate': the policy's gradient (shared backbone included) clipped to "
        "max_grad_norm and the value-only parameters' to vf_max_grad_norm, so the value "
        "loss cannot scale the policy step; 'joint': one norm over policy and value "
        "together, clipped to max_grad_norm (the only clip of earlier pgrad; a large value "
        "error then shrinks the policy's step). See docs/learning-options.md."))
    vf_max_grad_norm: float | None = field(default=0.5, metadata=_help(
        "With grad_clip='separate': clip the value-only parameters' gradient norm to this "
        "(None: no clipping)."))
    value_steps: int = field(default=10, metadata=_help(
        "Gradient steps on the value loss per batch: the first is shared with the policy's, "
        "the others fit V alone (Spinning Up's train_v_iters, 80 at its own vf_lr)."))
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
    normalize_obs: bool = field(default=True, metadata=_help(
        "Normalise observations by running mean and std (updated from every batch, saved in "
        "the checkpoint, applied at evaluation), clipped to ±obs_clip."))
    obs_clip: float = field(default=10.0, metadata=_help(
        "Clip normalised observations to ± this."))
    scale_rewards: bool = field(default=True, metadata=_help(
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
        need(0.0 <= self.gae_lambda <= 1.0,
             f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        need(self.gae_lambda == 1.0 or self.baseline,
             "gae_lambda below 1 bootstraps from the value baseline: use it with "
             "baseline=True")
        for name, choices in (("lr_schedule", LR_SCHEDULES), ("grad_clip", GRAD_CLIPS),
                              ("value_target", VALUE_TARGETS)):
            need(getattr(self, name) in choices, f"{name} must be one of {', '.join(choices)}, "
                                                 f"got {getattr(self, name)!r}")
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
