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

from pgrad.constants import ACTION_BOUNDS, VALUE_NETS, VECTORIZATIONS
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
    ``32x32``, ``32,32`` or ``32 32`` (``tuple[int, ...]``); ``a,b`` or ``a b``
    (``tuple[str, ...]``); ``key=value`` items or a JSON object (``dict[str, Any]``, each
    value read as JSON where it parses, else kept as a string).
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


def _check_type(name: str, annotation: str, value: Any) -> None:
    """Raise a PgradError unless ``value`` fits the field's annotation (e.g. 'int | None')."""
    field_kind(annotation).check(name, value)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class Config:
    """All settings of an agent. Defaults solve CartPole-v1."""

    env_id: str | None = field(default="CartPole-v1", metadata=_help(
        "Gymnasium environment id (None when the agent was built from a callable)."))
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
    vectorization: str = field(default="auto", metadata=_help(
        "Vector env: 'native' (the env's own vectorised version), 'sync', 'async' "
        "(subprocesses), or 'auto' (native where it exists, else sync)."))
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
            _check_type(f.name, str(f.type), getattr(self, f.name))
        need(self.num_envs >= 1, f"num_envs must be at least 1, got {self.num_envs}")
        need(self.batch_episodes >= 1,
             f"batch_episodes must be at least 1, got {self.batch_episodes}")
        need(self.n_steps is None or self.n_steps >= 1,
             f"n_steps must be at least 1, got {self.n_steps}")
        need(self.n_steps is None or self.baseline,
             "n_steps batches cut episodes and bootstrap them from the value baseline: use "
             "them with baseline=True, or leave n_steps unset for whole-episode batches")
        need(self.value_net in VALUE_NETS,
             f"value_net must be one of {', '.join(VALUE_NETS)}, got {self.value_net!r}")
        need(len(self.hidden_sizes) >= 1
             and all(isinstance(h, int) and not isinstance(h, bool) and h >= 1
                     for h in self.hidden_sizes),
             f"hidden_sizes must be one or more positive widths, got {self.hidden_sizes}")
        need(self.activation in ACTIVATIONS,
             f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        need(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        need(0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}")
        need(self.max_grad_norm is None or self.max_grad_norm > 0,
             f"max_grad_norm must be positive (or None), got {self.max_grad_norm}")
        need(self.value_steps >= 1, f"value_steps must be at least 1, got {self.value_steps}")
        need(self.obs_clip > 0, f"obs_clip must be positive, got {self.obs_clip}")
        need(self.vf_coef >= 0, f"vf_coef must be non-negative, got {self.vf_coef}")
        need(self.ent_coef >= 0, f"ent_coef must be non-negative, got {self.ent_coef}")
        need(self.log_std_min < self.log_std_max,
             f"log_std_min ({self.log_std_min}) must be below log_std_max ({self.log_std_max})")
        need(self.diagnostics_every >= 0,
             f"diagnostics_every must be non-negative, got {self.diagnostics_every}")
        need(0 <= self.seed < 2**31, f"seed must be in [0, 2**31), got {self.seed}")
        need(self.threads is None or self.threads >= 1,
             f"threads must be at least 1 (or None), got {self.threads}")
        need(self.action_bound in ACTION_BOUNDS,
             f"action_bound must be one of {', '.join(ACTION_BOUNDS)}, "
             f"got {self.action_bound!r}")
        need(self.vectorization in VECTORIZATIONS,
             f"vectorization must be one of {', '.join(VECTORIZATIONS)}, "
             f"got {self.vectorization!r}")
        need(self.on_nonfinite in NONFINITE,
             f"on_nonfinite must be one of {', '.join(NONFINITE)}, got {self.on_nonfinite!r}")
        need(self.device in DEVICES or self.device.startswith("cuda:"),
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
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        data = dataclasses.asdict(self)
        data["hidden_sizes"] = list(self.hidden_sizes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise PgradError(f"unknown config keys: {', '.join(unknown)}")
        data = dict(data)
        if "hidden_sizes" in data:
            data["hidden_sizes"] = tuple(int(h) for h in data["hidden_sizes"])
        return cls(**data)
