"""Callbacks: code of one's own run after every update, able to stop training.

``agent.learn(total_timesteps, callback=cb)`` calls ``cb`` after every update (before the
row is logged) with the agent and the update's metrics dict; a callback may add metrics
to it (they are logged with the row) and stops training by returning ``False``. A callback
is a :class:`Callback` (override :meth:`Callback.on_update`), a plain function
``f(agent, metrics) -> bool | None``, or a list of them (all are called; training stops if
any returned False). Stable-Baselines3's ``BaseCallback`` idea, kept to one method. In
data-parallel training every rank calls its callbacks (only rank 0's files are written);
a callback that stops training must decide the same on every rank.

Example::

    def stop_at_475(agent, metrics):
        return metrics["rollout/ep_return_mean"] < 475

    agent.learn(200_000, callback=[stop_at_475, EvalCallback(10_000, run_dir="runs/x")])
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgrad.errors import PgradError

if TYPE_CHECKING:
    from pgrad.envs import EnvSource

Reinforce = Any
"""A :class:`pgrad.Reinforce` (named loosely: the agent imports the trainer, which imports
this module)."""

__all__ = ["Callback", "CallbackLike", "CheckpointCallback", "EvalCallback", "as_callback"]

BEST_FILE = "best.safetensors"
BEST_RECORD = "best.json"
"""Beside ``best.safetensors``: the step and mean return of the evaluation that saved it,
read back when a run is continued so that a worse model does not replace it."""


class Callback:
    """Base class of callbacks: :meth:`on_update` runs after every update."""

    def on_update(self, agent: Reinforce, metrics: dict[str, float]) -> bool | None:
        """Called after each update with the agent and the update's metrics (which it may
        extend); return False to stop training, True or None to go on."""
        return None

    def __call__(self, agent: Reinforce, metrics: dict[str, float]) -> bool | None:
        return self.on_update(agent, metrics)


UpdateFunction = Callable[["Reinforce", dict[str, float]], "bool | None"]
CallbackLike = Callback | UpdateFunction | Sequence[Callback | UpdateFunction]
"""What ``learn(callback=...)`` takes: a Callback, a function, or a list of them."""


def as_callback(callback: CallbackLike | None) -> UpdateFunction | None:
    """One function ``f(agent, metrics) -> bool`` calling every callback given (all of
    them, in order; False if any returned False); None for None."""
    if callback is None:
        return None
    callbacks = list(callback) if isinstance(callback, Sequence) else [callback]
    for cb in callbacks:
        if not callable(cb):
            raise PgradError(f"a callback must be a pgrad.callbacks.Callback or a function "
                             f"f(agent, metrics), got {type(cb).__name__}")

    def call_all(agent: Reinforce, metrics: dict[str, float]) -> bool:
        results = [cb(agent, metrics) for cb in callbacks]
        return all(result is not False for result in results)

    return call_all


class _Every(Callback):
    """Fires when the agent's step count crosses a multiple of ``every``."""

    def __init__(self, every: int, name: str) -> None:
        if every < 1:
            raise PgradError(f"{name} must be at least 1, got {every}")
        self.every = every
        self._next = every

    def _due(self, agent: Reinforce) -> bool:
        steps = agent.num_timesteps
        if steps < self._next:
            return False
        self._next = (steps // self.every + 1) * self.every
        return True


class EvalCallback(_Every):
    """Every ``eval_every`` env steps, evaluate the agent on a separate env
    (:func:`pgrad.evaluate`: ``episodes`` whole episodes, its own seed and vector env) and
    record ``eval/return_mean`` and ``eval/return_std`` in the metrics (NaN in the rows
    between evaluations, so the CSV has the columns). With ``run_dir``, save the agent to
    ``run_dir/best.safetensors`` whenever the mean is the best so far (of the run: the
    best mean is kept in ``run_dir/best.json`` and read back when the run continues).
    Every evaluation uses the same ``seed``, so the candidates play the same start states.

    Attributes: ``best_mean`` (the best mean return, -inf before the first evaluation),
    ``evaluations`` (``(step, mean, std)`` of each evaluation).
    """

    def __init__(self, eval_every: int, episodes: int = 10, *, env: EnvSource | None = None,
                 run_dir: str | Path | None = None, deterministic: bool = True,
                 seed: int = 0) -> None:
        super().__init__(eval_every, "eval_every")
        if episodes < 1:
            raise PgradError(f"episodes must be at least 1, got {episodes}")
        self.episodes = episodes
        self.env = env
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.deterministic = deterministic
        self.seed = seed
        self.best_mean = -math.inf
        self.evaluations: list[tuple[int, float, float]] = []
        if self.run_dir is not None and (self.run_dir / BEST_RECORD).is_file():
            self.best_mean = _saved_best(self.run_dir / BEST_RECORD)

    def on_update(self, agent: Reinforce, metrics: dict[str, float]) -> bool | None:
        from pgrad.evaluation import evaluate

        metrics["eval/return_mean"] = metrics["eval/return_std"] = math.nan
        if not self._due(agent):
            return None
        result = evaluate(agent, self.env, self.episodes, deterministic=self.deterministic,
                          seed=self.seed)
        metrics["eval/return_mean"], metrics["eval/return_std"] = result.mean, result.std
        self.evaluations.append((agent.num_timesteps, result.mean, result.std))
        if result.mean > self.best_mean:
            self.best_mean = result.mean
            if self.run_dir is not None and agent.world.is_main:
                agent.save(self.run_dir / BEST_FILE)
                (self.run_dir / BEST_RECORD).write_text(json.dumps(
                    {"step": agent.num_timesteps, "return_mean": result.mean}) + "\n")
        return None


def _saved_best(path: Path) -> float:
    """The mean return recorded in a ``best.json`` (-inf when it holds none)."""
    from pgrad import safeio

    try:
        value = safeio.read_json(path, 4096, "best-model record").get("return_mean")
    except (ValueError, AttributeError) as e:
        raise PgradError(f"{path} is unreadable ({e}); delete it to start a new best "
                         "model") from e
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return -math.inf


class CheckpointCallback(_Every):
    """Every ``save_every`` env steps, save the agent to
    ``run_dir/<prefix>_<step>_steps.safetensors`` (SB3's ``CheckpointCallback``); the
    files written are in ``saved``."""

    def __init__(self, save_every: int, run_dir: str | Path, prefix: str = "model") -> None:
        super().__init__(save_every, "save_every")
        self.run_dir = Path(run_dir)
        self.prefix = prefix
        self.saved: list[Path] = []

    def on_update(self, agent: Reinforce, metrics: dict[str, float]) -> bool | None:
        if self._due(agent) and agent.world.is_main:
            self.saved.append(agent.save(
                self.run_dir / f"{self.prefix}_{agent.num_timesteps}_steps.safetensors"))
        return None
