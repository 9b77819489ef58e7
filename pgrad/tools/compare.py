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
import hashlib
import json
import multiprocessing
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgrad.config import Config, FieldKind, field_kind
from pgrad.errors import PgradError

__all__ = ["RunSpec", "directory_name", "label", "parse_overrides", "plan_grid", "run_grid"]

MAX_SEEDS = 1000
"""Most seeds per configuration (each is a full training run)."""
MAX_RUNS = 10_000
"""Most runs in one grid."""
_KEY = r"[A-Za-z_][A-Za-z0-9_-]*"


def _fields() -> dict[str, FieldKind]:
    return {f.name: field_kind(str(f.type)) for f in dataclasses.fields(Config)
            if f.name != "env_id"}


def parse_overrides(text: str) -> dict[str, Any]:
    """``"baseline=false, hidden_sizes=32x32"`` → ``{"baseline": False, "hidden_sizes":
    (32, 32)}``, each value read by its :class:`Config` field's parser
    (:func:`pgrad.config.field_kind`). Pairs are separated by commas (a comma followed by
    a value, as in ``hidden_sizes=32,32``, belongs to the value); dashes in keys are
    accepted (``learning-rate``), as is ``lr``; an empty string is no override. Keys keep
    the order given."""
    fields = _fields()
    out: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in re.split(rf",\s*(?={_KEY}\s*=)", text))):
        key, sep, value = pair.partition("=")
        name = {"lr": "learning_rate"}.get(key.strip(), key.strip().replace("-", "_"))
        if not sep or name not in fields:
            raise PgradError(f"bad setting {pair!r}: write key=value with a pgrad.Config "
                             f"field as key ({', '.join(fields)})")
        if name in out:
            raise PgradError(f"{name} is set twice in {text!r}")
        try:
            out[name] = fields[name].parse(value)
        except ValueError as e:
            raise PgradError(f"{name}={value.strip()!r}: expected {fields[name].annotation} "
                             f"({e})") from None
    return out


def label(overrides: dict[str, Any]) -> str:
    """The normalised text of a configuration: its ``key=value`` pairs in the order given,
    each key the field's name and each value as the field formats it (``"defaults"`` for
    no override): ``"lr=3e-3, hidden_sizes=32 32"`` → ``learning_rate=0.003,hidden_sizes=32x32``.
    """
    fields = _fields()
    return ",".join(f"{k}={fields[k].format(v)}" for k, v in overrides.items()) or "defaults"


def directory_name(label: str) -> str:
    """A file-system-safe directory name for a configuration's label, distinct for distinct
    labels: ``baseline=false,learning_rate=0.003`` → ``baseline=false+learning_rate=0.003``;
    a label with other characters (or a ``+``, or too long) gets them replaced and a digest
    of the whole label appended."""
    safe = label.replace(",", "+")
    if ("+" not in label and len(safe) <= 100 and safe not in (".", "..")
            and re.fullmatch(r"[A-Za-z0-9_.=+-]+", safe)):
        return safe
    short = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", safe)[:80]
    return f"{short}-{hashlib.sha256(label.encode()).hexdigest()[:10]}"


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
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(  # what pgrad train writes there too
        {"total_timesteps": spec.total_timesteps, "stop_return": None}, indent=2) + "\n")
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


def plan_grid(env_id: str, configurations: list[str],
              seeds: list[int]) -> list[tuple[str, dict[str, Any]]]:
    """Each configuration's label and overrides, checked (values, duplicates, sizes) before
    anything runs."""
    from pgrad.presets import preset

    if not seeds:
        raise PgradError("give at least one seed")
    if len(seeds) > MAX_SEEDS:
        raise PgradError(f"at most {MAX_SEEDS} seeds per configuration, got {len(seeds)}")
    if len(seeds) * len(configurations) > MAX_RUNS:
        raise PgradError(f"at most {MAX_RUNS} runs in one grid, got "
                         f"{len(seeds) * len(configurations)}")
    plan = []
    for text in configurations:
        overrides = parse_overrides(text)
        Config(env_id=env_id, **{**preset(env_id), **overrides})  # a bad value fails now
        plan.append((label(overrides), overrides))
    settings = [sorted(label({k: v}) for k, v in overrides.items()) for _, overrides in plan]
    for i, these in enumerate(settings):
        if these in settings[:i]:
            raise PgradError(f"the same configuration was given twice: {configurations[i]!r} "
                             f"is {configurations[settings.index(these)]!r}")
    return plan


def run_grid(env_id: str, configurations: list[str], seeds: list[int], total_timesteps: int,
             out: Path, jobs: int | None = None, tensorboard: bool = False,
             report: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Train every configuration (``key=value,…`` strings; ``""`` is the defaults) with
    every seed, ``jobs`` processes at a time; returns one result dict per run."""
    if total_timesteps < 1:
        raise PgradError(f"total_timesteps must be at least 1, got {total_timesteps}")
    from pgrad.envs import check_env_id

    check_env_id(env_id)
    plan = plan_grid(env_id, configurations, seeds)
    specs = []
    for name, overrides in plan:
        for seed in seeds:
            run_dir = out / directory_name(name) / f"seed{seed}"
            if (run_dir / "model.safetensors").exists():
                raise PgradError(f"{run_dir} already holds a trained run; choose another --out")
            specs.append(RunSpec(env_id, name, overrides, seed, total_timesteps,
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
