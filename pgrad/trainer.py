"""The training loop, the one place with side effects: collect → update → log → checkpoint.

Reliability (``docs/reliability.md``): with a ``run_dir`` the loop saves a checkpoint
every ``save_every`` steps and at the end, each written atomically; SIGINT and SIGTERM
let the current update finish, save, and raise :class:`Interrupted` (a second signal
abandons the update at once); an agent that already trained (loaded from a checkpoint)
continues the run's ``progress.csv`` and TensorBoard steps instead of restarting them.

Vocabulary: an *update* is one gradient step on one *batch* (whole episodes, or n_steps
of every env); ``num_timesteps`` counts valid env transitions; the *training return*
(``rollout/ep_return_mean``) is the mean return of a window of at least 100 training
episodes counted in the order they started (whole-episode batches: the last whole batches
that hold 100; see :class:`pgrad.rollout.Collector` and docs/learning-options.md).
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from tqdm.auto import tqdm

from pgrad.callbacks import CallbackLike, UpdateFunction, as_callback
from pgrad.checkpoint import MODEL_FILE
from pgrad.constants import STOP_ON
from pgrad.errors import PgradError
from pgrad.logger import Logger
from pgrad.threads import torch_threads

if TYPE_CHECKING:
    from pgrad.config import Config
    from pgrad.distributed import World
    from pgrad.rollout import Batch, Collector

__all__ = ["Interrupted", "Learner", "TrainResult", "train"]


@runtime_checkable
class Learner(Protocol):
    """What the loop needs of an agent (:class:`pgrad.agent.Reinforce` is one): the loop
    knows it only through this, so the agent may call :func:`train` without a cycle."""

    num_timesteps: int
    """Env transitions so far, all ranks; the loop advances it after each update."""

    @property
    def config(self) -> Config: ...
    @property
    def world(self) -> World: ...
    @property
    def policy(self) -> torch.nn.Module: ...
    @property
    def generator(self) -> torch.Generator: ...
    @property
    def num_updates(self) -> int: ...
    @property
    def skipped_updates(self) -> int: ...

    def make_collector(self) -> Collector:
        """The vector env and its collector (built once, then kept)."""
        ...

    def update(self, batch: Batch) -> dict[str, Any]:
        """One gradient step on ``batch``; the named metrics."""
        ...

    def save(self, path: Path) -> Path:
        """Write a checkpoint to ``path``."""
        ...


class Interrupted(KeyboardInterrupt):
    """Training stopped on a signal after finishing an update (and saving, with a run_dir).

    Attributes: ``signum`` (``signal.SIGINT`` or ``signal.SIGTERM``), ``step`` (the
    agent's step count) and ``checkpoint`` (the file written, or None without a run_dir).
    """

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")


@dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`train` did."""

    steps: int
    """Env transitions collected in this call."""
    seconds: float
    """Wall-clock seconds of this call (environment creation included)."""
    updates: int
    """Gradient steps taken in this call."""
    episodes: int
    """Training episodes finished in this call."""
    return_mean: float
    """The training return at the end: mean over the statistics window of at least 100
    training episodes (nan if none finished)."""
    reached_stop_return: bool
    """Whether training ended because ``stop_return`` was reached."""


def train(agent: Learner, total_timesteps: int, *, stop_return: float | None = None,
          run_dir: str | Path | None = None, progress_bar: bool = False,
          tensorboard: bool = True, save_every: int | None = None,
          callback: CallbackLike | None = None, stop_on: str = "train") -> TrainResult:
    """Train ``agent`` for ``total_timesteps`` more env steps (the last batch may overshoot).

    Args:
        stop_return: end as soon as the return is at least this: with ``stop_on="train"``
            the training return over a full window (at least 100 episodes), with
            ``stop_on="eval"`` the mean of an evaluation (``eval/return_mean``, written by
            an :class:`pgrad.callbacks.EvalCallback`).
        stop_on: ``"train"`` or ``"eval"``, which return ``stop_return`` is compared with.
        run_dir: where to write ``progress.csv``, TensorBoard events, ``config.json`` and the
            final ``model.safetensors``; None writes nothing.
        progress_bar: show a tqdm bar with steps, steps/s and the training return.
        tensorboard: also write TensorBoard event files in ``run_dir``.
        save_every: also save ``run_dir/model.safetensors`` whenever this many steps have
            passed since the last save (None: only at the end and on SIGINT / SIGTERM).
        callback: called after every update with the agent and the metrics, which it may
            extend before they are logged; returning False stops training
            (:mod:`pgrad.callbacks`).

    Raises:
        Interrupted: on SIGINT / SIGTERM (in the main thread), after the update under way
            finished and the checkpoint was saved.
        pgrad.guard.Diverged: nan or inf in the loss, gradient or parameters (unless
            ``on_nonfinite='skip'``); nothing is saved, the last checkpoint stays.
    """
    if total_timesteps < 1:
        raise PgradError(f"total_timesteps must be at least 1, got {total_timesteps}")
    if save_every is not None and save_every < 1:
        raise PgradError(f"save_every must be at least 1 (or None), got {save_every}")
    if stop_on not in STOP_ON:
        raise PgradError(f"stop_on must be one of {', '.join(STOP_ON)}, got {stop_on!r}")
    if not agent.world.is_main:  # data-parallel: rank 0 alone logs and writes files
        run_dir, progress_bar = None, False
    with torch_threads(agent.config.threads), _deferred_signals() as signals:
        return _train(agent, total_timesteps, stop_return, run_dir, progress_bar, tensorboard,
                      save_every, signals, as_callback(callback), stop_on)


class _Signals:
    """The first SIGINT / SIGTERM received inside :func:`_deferred_signals` (or None)."""

    signum: int | None = None


@contextmanager
def _deferred_signals() -> Iterator[_Signals]:
    """Record SIGINT and SIGTERM instead of dying mid-update; a second one raises
    KeyboardInterrupt at once. Outside the main thread signals are left alone."""
    state = _Signals()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if state.signum is not None:
            raise KeyboardInterrupt
        state.signum = signum

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _train(agent: Learner, total_timesteps: int, stop_return: float | None,
           run_dir: str | Path | None, progress_bar: bool, tensorboard: bool,
           save_every: int | None, signals: _Signals,
           callback: UpdateFunction | None = None, stop_on: str = "train") -> TrainResult:
    start = time.perf_counter()
    collector = agent.make_collector()
    world = agent.world
    world.broadcast_module(agent.policy)  # data-parallel: every rank starts from rank 0's
    world.own_stream(agent.generator, agent.config.seed, agent.num_updates)
    # An agent with history continues its run's logs (rows after its step are dropped).
    resume_step = agent.num_timesteps if agent.num_timesteps > 0 else None
    logger = (Logger(run_dir, tensorboard=tensorboard, resume_step=resume_step)
              if run_dir is not None else None)
    model_path = Path(run_dir) / MODEL_FILE if run_dir is not None else None
    last_save = agent.num_timesteps
    if run_dir is not None:
        (Path(run_dir) / "config.json").write_text(
            json.dumps(agent.config.to_dict(), indent=2) + "\n")
    first_step, first_update = agent.num_timesteps, agent.num_updates
    first_episode = episodes = world.rollout_stats(0, collector.episodes, [], [], True).episodes
    target = first_step + total_timesteps
    reached = False
    return_mean = math.nan
    bar = tqdm(total=total_timesteps, disable=not progress_bar, unit="step", dynamic_ncols=True)
    try:
        while agent.num_timesteps < target:
            batch = collector.collect()            # rollout: play the current policy
            metrics = agent.update(batch)          # returns → loss → gradient step
            # Step count and episode statistics of all workers (one process: its own).
            stats = world.rollout_stats(
                batch.num_steps, collector.episodes, collector.episode_returns,
                collector.episode_lengths,
                collector.window_full,
                signals.signum is not None)
            agent.num_timesteps += stats.steps
            episodes = stats.episodes

            elapsed = time.perf_counter() - start
            return_mean = stats.return_mean
            metrics.update({
                "rollout/ep_return_mean": return_mean,
                "rollout/ep_length_mean": stats.length_mean,
                "rollout/episodes": float(stats.episodes),
                "rollout/window_full": float(stats.full_window),
                "rollout/batch_steps": float(stats.steps),
                "train/skipped_updates": float(agent.skipped_updates),
                "time/sps": (agent.num_timesteps - first_step) / max(elapsed, 1e-9),
                "time/elapsed": elapsed,
            })
            stop = callback is not None and not callback(agent, metrics)  # may add metrics
            if logger is not None:
                logger.log(agent.num_timesteps, metrics)
            bar.update(min(stats.steps, target - bar.n))
            bar.set_postfix(sps=f"{metrics['time/sps']:.0f}", ret=f"{return_mean:.1f}",
                            refresh=False)
            if model_path is not None and (
                    stats.interrupted
                    or (save_every is not None and agent.num_timesteps - last_save >= save_every)):
                agent.save(model_path)             # checkpoint, atomically
                last_save = agent.num_timesteps
            if stats.interrupted:  # every rank stops at the same update
                raise Interrupted(signals.signum or signal.SIGTERM, agent.num_timesteps,
                                  model_path)
            if stop_return is not None and _reached(stop_on, stop_return, stats.full_window,
                                                    return_mean, metrics):
                reached = True
                break
            if stop:  # a callback asked to stop
                break
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    if model_path is not None and last_save != agent.num_timesteps:
        agent.save(model_path)
    return TrainResult(
        steps=agent.num_timesteps - first_step,
        seconds=time.perf_counter() - start,
        updates=agent.num_updates - first_update,
        episodes=episodes - first_episode,
        return_mean=return_mean,
        reached_stop_return=reached,
    )



def _reached(stop_on: str, stop_return: float, full_window: bool, return_mean: float,
             metrics: dict[str, Any]) -> bool:
    """Whether ``stop_return`` is reached: by the training return over a full window, or by
    an evaluation made at this update (``eval/return_mean`` is nan between evaluations)."""
    if stop_on == "eval":
        value = float(metrics.get("eval/return_mean", math.nan))
        return not math.isnan(value) and value >= stop_return
    return full_window and return_mean >= stop_return
