"""``pgrad compare``: a grid of configurations × seeds, run in parallel, then plotted.

Each configuration is a set of :class:`pgrad.Config` overrides written as comma-separated
``key=value`` pairs (``"baseline=false,learning_rate=3e-3"``). Every (configuration, seed)
pair is one ordinary training run with its own run directory,
``OUT/<configuration>/seed<k>/`` (``config.json``, ``progress.csv``, ``model.safetensors``),
so ``pgrad plot OUT`` and ``pgrad eval OUT/<configuration>/seed<k>`` work on them later.
Runs go to worker processes (``spawn``, one torch thread each), as many at a time as the
machine has cores. All runs of a configuration get the same budget of env steps and no
early stop, so their curves cover the same range.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgrad.config import Config
from pgrad.errors import PgradError

__all__ = ["RunSpec", "parse_overrides", "run_grid"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_overrides(text: str) -> dict[str, Any]:
    """``"baseline=false,hidden_sizes=32x32"`` → ``{"baseline": False, "hidden_sizes":
    (32, 32)}``, each value converted to its :class:`Config` field's type. Dashes in keys
    are accepted (``learning-rate``), as is ``lr``; an empty string is no override."""
    fields = {f.name: str(f.type) for f in dataclasses.fields(Config)}
    out: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = pair.partition("=")
        name = {"lr": "learning_rate"}.get(key.strip(), key.strip().replace("-", "_"))
        if not sep or name not in fields or name == "env_id":
            raise PgradError(f"bad setting {pair!r}: write key=value with a pgrad.Config "
                             f"field as key ({', '.join(n for n in fields if n != 'env_id')})")
        out[name] = _convert(name, fields[name], value.strip())
    return out


def _convert(name: str, kind: str, value: str) -> Any:
    if kind.endswith("| None") and value.lower() == "none":
        return None
    base = kind.split(" | ")[0]
    try:
        if base == "bool":
            if value.lower() not in _TRUE | _FALSE:
                raise ValueError(value)
            return value.lower() in _TRUE
        if base == "tuple[int, ...]":
            return tuple(int(v) for v in re.split(r"[x ]", value) if v)
        return {"int": int, "float": float, "str": str}[base](value)
    except ValueError:
        raise PgradError(f"{name}={value!r}: expected {kind}") from None


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid."""

    env_id: str
    label: str
    overrides: dict[str, Any]
    seed: int
    total_timesteps: int
    run_dir: str
    tensorboard: bool = False


def _run_one(spec: RunSpec) -> dict[str, Any]:
    """Train one run in this (worker) process; returns its final numbers."""
    import torch

    from pgrad.agent import Reinforce

    torch.set_num_threads(1)
    start = time.perf_counter()
    agent = Reinforce(spec.env_id, **{**spec.overrides, "seed": spec.seed})
    try:
        agent.learn(spec.total_timesteps, run_dir=spec.run_dir, tensorboard=spec.tensorboard)
    finally:
        agent.close()
    result = agent.last_result
    assert result is not None
    return {"label": spec.label, "seed": spec.seed, "return_mean": result.return_mean,
            "steps": result.steps, "seconds": time.perf_counter() - start}


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def directory_name(label: str) -> str:
    """A file-system-safe directory name for a configuration's label."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", label) or "default"


def run_grid(env_id: str, configurations: list[str], seeds: list[int], total_timesteps: int,
             out: Path, jobs: int | None = None, tensorboard: bool = False,
             report: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Train every configuration (``key=value,…`` strings; ``""`` is the defaults) with
    every seed, ``jobs`` processes at a time; returns one result dict per run."""
    if total_timesteps < 1:
        raise PgradError(f"total_timesteps must be at least 1, got {total_timesteps}")
    if not seeds:
        raise PgradError("give at least one seed")
    from pgrad.envs import check_env_id
    from pgrad.presets import preset

    check_env_id(env_id)
    parsed = [parse_overrides(c) for c in configurations]
    for overrides in parsed:  # fail on a bad value now, not in a worker
        Config(env_id=env_id, **{**preset(env_id), **overrides})
    labels = [c.strip() or "defaults" for c in configurations]
    if len(set(labels)) != len(labels):
        raise PgradError("the same configuration was given twice")
    specs = []
    for label, overrides in zip(labels, parsed, strict=True):
        for seed in seeds:
            run_dir = out / directory_name(label) / f"seed{seed}"
            if (run_dir / "model.safetensors").exists():
                raise PgradError(f"{run_dir} already holds a trained run; choose another --out")
            specs.append(RunSpec(env_id, label, overrides, seed, total_timesteps,
                                 str(run_dir), tensorboard))
    jobs = max(1, min(jobs or default_jobs(), len(specs)))
    results = []
    if jobs == 1:
        for spec in specs:
            results.append(_run_one(spec))
            if report:
                report(results[-1])
        return results
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(_run_one, spec) for spec in specs]
        try:
            for future in as_completed(futures):
                results.append(future.result())
                if report:
                    report(results[-1])
        except BaseException:  # a failed run or Ctrl-C: start no more runs
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results
