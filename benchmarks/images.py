"""Image-observation benchmark: ``pgrad train`` on an image env, several seeds, against random.

Each seed runs the command a user would type (``pgrad train ENV --seed S …``, one torch
thread), then its final policy is evaluated over ``--episodes`` episodes, deterministic and
stochastic, as ``pgrad eval RUN --episodes N [--no-deterministic]`` does. The random
baseline plays the same env with the same episode cap: uniformly random actions, and the
untrained agent (its near-uniform initial policy) under the same evaluation::

    python benchmarks/images.py minatar:MinAtar/Breakout-v1 --steps 2000000 --seeds 0 1 2

The section is appended to ``benchmarks/results/images.md``, the numbers to ``images.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from cartpole import machine_info

import pgrad
from pgrad.envs import make_env

RESULTS = Path(__file__).resolve().parent / "results"


def random_returns(agent: pgrad.Reinforce, episodes: int) -> np.ndarray:
    """Returns of ``episodes`` episodes of uniformly random actions in the agent's env (same
    packages, kwargs, wrapper and episode cap as its evaluation), episode k seeded k."""
    cfg = agent.config
    assert cfg.env_id is not None
    env = make_env(cfg.env_id, **agent.env_options(whole_episodes=True, announce=False))
    env.action_space.seed(0)
    returns = []
    for k in range(episodes):
        env.reset(seed=k)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return np.asarray(returns)


def training_curve(run: Path, points: int = 8) -> list[tuple[int, float]]:
    """(step, mean return of the last 100 training episodes) at ``points`` even spacings."""
    with open(run / "progress.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("rollout/ep_return_mean")]
    picks = [rows[min(len(rows) - 1, round(i * (len(rows) - 1) / (points - 1)))]
             for i in range(points)]
    return [(int(r["step"]), float(r["rollout/ep_return_mean"])) for r in picks]


def run_seed(env_id: str, steps: int, seed: int, episodes: int, extra: list[str],
             runs: Path) -> dict[str, Any]:
    """Train one seed with the CLI, then evaluate it both ways."""
    variant = "".join(c if c.isalnum() or c in ".-" else "_" for c in "_".join(extra))
    out = runs / "-".join(filter(None, [env_id.replace(":", "_").replace("/", "_"),
                                        variant.strip("-_"), f"s{seed}"]))
    command = ["pgrad", "train", env_id, "--total-timesteps", str(steps), "--seed", str(seed),
               "--out", str(out), "--no-progress", "--no-tensorboard", *extra]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", *command], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    agent = pgrad.Reinforce.load(out)
    deterministic = pgrad.evaluate(agent, episodes=episodes, deterministic=True)
    stochastic = pgrad.evaluate(agent, episodes=episodes, deterministic=False)
    curve = training_curve(out)
    return {"seed": seed, "command": shlex.join(command), "seconds": round(seconds, 1),
            "steps": agent.num_timesteps, "updates": agent.num_updates,
            "deterministic": [deterministic.mean, deterministic.std],
            "stochastic": [stochastic.mean, stochastic.std],
            "training_curve": curve, "config": agent.config.to_dict()}


def render(info: dict[str, Any]) -> str:
    """A markdown section of one benchmark run."""
    m, rnd = info["machine"], info["random"]
    lines = [
        f"## {info['env_id']} — {info['steps']:,} steps, seeds "
        f"{', '.join(str(r['seed']) for r in info['seeds'])}", "",
        f"Command: `{m['command']}`  ",
        f"Date: {m['date_utc']}; machine: {m['cpu']}, {m['cores']} cores (shared with other "
        f"jobs); load average at start {m['load_avg_start'][0]:.2f}; torch {m['torch']}, "
        f"gymnasium {m['gymnasium']}, pgrad {m['pgrad']} (git {m['git']}); one torch thread.  ",
        f"Evaluation: {info['episodes']} episodes per policy, env seeds as "
        f"`pgrad eval RUN --episodes {info['episodes']}` (deterministic: the most likely "
        "action; stochastic: sampled).", "",
        f"**Random baseline:** uniformly random actions {rnd['uniform'][0]:.2f} ± "
        f"{rnd['uniform'][1]:.2f}; the untrained agent, stochastic "
        f"{rnd['untrained_stochastic'][0]:.2f} ± {rnd['untrained_stochastic'][1]:.2f}, "
        f"deterministic {rnd['untrained_deterministic'][0]:.2f} ± "
        f"{rnd['untrained_deterministic'][1]:.2f}.", "",
        "| seed | steps | wall-clock | deterministic | stochastic | training mean (last 100) "
        "at 1/7, 2/7 … of the run |", "|---|---|---|---|---|---|",
    ]
    for r in info["seeds"]:
        curve = ", ".join(f"{value:.1f}" for _, value in r["training_curve"][1:])
        lines.append(f"| {r['seed']} | {r['steps']:,} | {r['seconds'] / 60:.1f} min | "
                     f"{r['deterministic'][0]:.2f} ± {r['deterministic'][1]:.2f} | "
                     f"{r['stochastic'][0]:.2f} ± {r['stochastic'][1]:.2f} | {curve} |")
    lines += ["", "Per-seed commands:", ""]
    lines += [f"    {r['command']}" for r in info["seeds"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_id")
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--runs", type=Path, default=Path("runs/images"))
    parser.add_argument("--out", type=Path, default=RESULTS / "images.md")
    parser.epilog = "Options after -- go to pgrad train (e.g. -- --learning-rate 3e-3)."
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    extra = argv[cut + 1:]
    info: dict[str, Any] = {"machine": machine_info(["benchmarks/images.py", *argv]),
                            "env_id": args.env_id, "steps": args.steps,
                            "episodes": args.episodes}
    untrained = pgrad.Reinforce(args.env_id)
    info["random"] = {
        "uniform": [float(x) for x in _mean_std(random_returns(untrained, args.episodes))],
        "untrained_stochastic": _result(pgrad.evaluate(untrained, episodes=args.episodes,
                                                       deterministic=False)),
        "untrained_deterministic": _result(pgrad.evaluate(untrained, episodes=args.episodes,
                                                          deterministic=True)),
    }
    info["seeds"] = []
    for seed in args.seeds:
        info["seeds"].append(run_seed(args.env_id, args.steps, seed, args.episodes, extra,
                                      args.runs))
        print(json.dumps({k: v for k, v in info["seeds"][-1].items() if k != "config"}),
              flush=True)
    section = render(info)
    print(section)
    with open(args.out, "a") as f:
        f.write("\n" + section)
    store = args.out.with_suffix(".json")
    data = json.loads(store.read_text()) if store.exists() else []
    data.append(info)
    store.write_text(json.dumps(data, indent=1) + "\n")
    return 0


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std())


def _result(result: pgrad.evaluation.EvalResult) -> list[float]:
    return [result.mean, result.std]


if __name__ == "__main__":
    sys.exit(main())
