"""Learning benchmark on any environment: several seeds, env steps, wall-clock, evaluation.

One command per environment and configuration; each run appends a section to
``benchmarks/results/learning.md`` (and the raw numbers to ``learning.json``)::

    python benchmarks/learning.py InvertedPendulum-v5 --steps 500000 --seeds 3 \\
        --set num_envs=16 --set batch_episodes=16

Every seed trains ``pgrad.Reinforce(env, seed=s, **settings)`` for ``--steps`` env steps,
evaluates the final policy deterministically over ``--episodes`` episodes, and records the
first step at which the mean of the last 100 training episodes reached ``--target``.
Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from cartpole import _config_diff, _n, _table, machine_info, seed_all

import pgrad

RESULTS = Path(__file__).resolve().parent / "results"


def parse_value(text: str) -> Any:
    """'16' → 16, '3e-4' → 0.0003, 'true' → True, '64,64' → (64, 64), else the string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    if "," in text:
        return tuple(int(x) for x in text.split(",") if x)
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def run_seed(env_id: str, settings: dict[str, Any], seed: int, steps: int,
             episodes: int, target: float | None) -> dict[str, Any]:
    """Train one seed and evaluate it."""
    seed_all(seed)
    agent = pgrad.Reinforce(env_id, seed=seed, **settings)
    reached_at = None
    start = time.perf_counter()
    chunk = max(steps // 50, 1)
    while agent.num_timesteps < steps:
        agent.learn(min(chunk, steps - agent.num_timesteps), tensorboard=False)
        returns = agent.episode_returns
        if (target is not None and reached_at is None and len(returns) == 100
                and float(np.mean(returns)) >= target):
            reached_at = agent.num_timesteps
    seconds = time.perf_counter() - start
    evaluation = pgrad.evaluate(agent, episodes=episodes)
    train_return = float(np.mean(agent.episode_returns))
    agent.close()
    return {"seed": seed, "steps": agent.num_timesteps, "seconds": seconds,
            "train_return": train_return,
            "eval_mean": evaluation.mean, "eval_std": evaluation.std,
            "target_reached_at": reached_at}


def render(info: dict[str, Any], env_id: str, settings: dict[str, Any], steps: int,
           target: float | None, runs: list[dict[str, Any]]) -> str:
    evals = [r["eval_mean"] for r in runs]
    reached = [r for r in runs if r["target_reached_at"] is not None]
    rows = [[r["seed"], _n(r["steps"]), _n(r["seconds"], 1), _n(r["train_return"], 1),
             f"{_n(r['eval_mean'], 1)} ± {_n(r['eval_std'], 1)}",
             _n(r["target_reached_at"]) if r["target_reached_at"] else "–"] for r in runs]
    target_text = "" if target is None else (
        f"; training mean of the last 100 episodes reached {target:g} on "
        f"{len(reached)}/{len(runs)} seeds")
    return "\n".join([
        f"## {env_id} — {_config_diff(settings)}",
        "",
        f"Command: `{info['command']}`  ",
        f"Date: {info['date_utc']}; machine: {info['cpu']}, {info['cores']} cores; "
        f"torch {info['torch']}, gymnasium {info['gymnasium']}, pgrad {info['pgrad']} "
        f"(git {info['git']}); load average at start {info['load_avg_start'][0]:.2f}.  ",
        f"Budget {steps:,} env steps per seed; evaluation: deterministic, "
        f"{runs[0]['episodes']} episodes.",
        "",
        f"**Evaluation mean: median {_n(float(np.median(evals)), 1)} (min {_n(min(evals), 1)}"
        f" – max {_n(max(evals), 1)})**{target_text}.",
        "",
        _table(["seed", "steps", "seconds", "train return (last 100)", "eval mean ± std",
                "target reached at step"], rows),
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_id")
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from this one")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes")
    parser.add_argument("--target", type=float, default=None,
                        help="report when the training return first reaches this")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a pgrad.Config setting (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS / "learning.md")
    args = parser.parse_args(argv)
    settings = {}
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = parse_value(value)
    info = machine_info(["benchmarks/learning.py", *argv])
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        run = run_seed(args.env_id, settings, seed, args.steps, args.episodes, args.target)
        run["episodes"] = args.episodes
        print(json.dumps(run), flush=True)
        runs.append(run)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.out.exists():
        args.out.write_text("# pgrad learning benchmarks\n\nEach section: one command of "
                            "`benchmarks/learning.py`, appended as it ran.\n\n")
    with args.out.open("a") as f:
        f.write(render(info, args.env_id, settings, args.steps, args.target, runs) + "\n")
    raw = args.out.with_suffix(".json")
    records = json.loads(raw.read_text()) if raw.exists() else []
    records.append({"info": info, "env_id": args.env_id, "settings": settings,
                    "steps": args.steps, "target": args.target, "runs": runs})
    raw.write_text(json.dumps(records, indent=1, default=str) + "\n")
    print(f"appended to {args.out}")
    return 0 if all(math.isfinite(r["eval_mean"]) for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
