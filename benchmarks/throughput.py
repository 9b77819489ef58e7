"""Environment steps per second while training, per vectorisation backend.

For each task, backend and env count N: ``pgrad.Reinforce(env, num_envs=N,
vectorization=backend, n_steps=max(4, 256 // N))`` (about 256 transitions per update, so the
update's share per step is the same at every N), the vector env built and one batch learned
outside the timing, then ``learn`` for at least ``--seconds`` of wall time; then the same
vector env alone, stepped with random actions for half as long ("env only": the bound on
training throughput with that backend). Env steps count
every row of every batch (reset steps included): steps/s = env steps ÷ seconds. One torch
thread (pgrad's default). Stable-Baselines3 A2C (``MlpPolicy``, its default ``n_steps=5``,
8 envs in a ``DummyVecEnv``, one torch thread: its fastest setting on 2 cores) is timed on
the same task in the same run for reference.

Tasks: CartPole-v1, HalfCheetah-v5, LunarLander-v3 and Pong. Pong is ``pgrad-bench/Pong-v5``,
registered here: Gymnasium's ``ALE/Pong-v5`` with ``frameskip=1`` and no sticky actions under
``AtariPreprocessing`` (30 no-op starts, frame skip 4, 84×84 grey) and a 4-frame stack, shape
``(4, 84, 84)``; EnvPool's ``Pong-v5`` does the same preprocessing itself (with no fire reset,
to match), mapped with :func:`pgrad.envpool.register_id`.

``python benchmarks/throughput.py`` runs everything (under ~10 minutes on 2 cores) and writes
``benchmarks/results/throughput.md`` and ``.json``; ``--tasks``, ``--backends``,
``--num-envs``, ``--seconds`` and ``--no-sb3`` select less.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import pgrad
from pgrad import envpool as pgrad_envpool

TASKS = {
    "cartpole": "CartPole-v1",
    "halfcheetah": "HalfCheetah-v5",
    "lunarlander": "LunarLander-v3",
    "pong": "pgrad-bench/Pong-v5",
}
BACKENDS = ("native", "sync", "async", "envpool")
RESULTS = Path(__file__).parent / "results"


def make_pong() -> gym.Env:
    """Gymnasium's Pong with the standard Atari preprocessing and a 4-frame stack."""
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0,
                   max_episode_steps=27000 * 4)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84,
                                          terminal_on_life_loss=False, grayscale_obs=True)
    return gym.wrappers.FrameStackObservation(env, 4)


def register_pong() -> None:
    """Register ``pgrad-bench/Pong-v5`` with Gymnasium and with pgrad's EnvPool backend."""
    if TASKS["pong"] not in gym.registry:
        gym.register(TASKS["pong"], entry_point=make_pong)
    pgrad_envpool.register_id(TASKS["pong"], "Pong-v5", use_fire_reset=False,
                              repeat_action_probability=0.0, noop_max=30, frame_skip=4,
                              stack_num=4, img_height=84, img_width=84, gray_scale=True,
                              episodic_life=False, reward_clip=False,
                              max_episode_steps=27000)


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _proc_field(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def machine_info(argv: list[str]) -> dict[str, Any]:
    """Command, date, machine, versions and load of this run."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = "?"
    return {
        "command": "python " + shlex.join(argv),
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu": _proc_field("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {n: _version(n) for n in (
            "torch", "gymnasium", "numpy", "envpool", "ale-py", "mujoco", "box2d",
            "stable_baselines3")},
        "pgrad": pgrad.__version__,
        "git": commit,
        "torch_threads": 1,
        "load_avg_start": os.getloadavg(),
    }


def pgrad_cell(env_id: str, backend: str, num_envs: int, seconds: float) -> dict[str, Any]:
    """Steps/s of ``Reinforce.learn`` with one backend and env count."""
    n_steps = max(4, 256 // num_envs)
    start = time.perf_counter()
    agent = pgrad.Reinforce(env_id, num_envs=num_envs, vectorization=backend,
                            n_steps=n_steps, seed=0)
    collector = agent.make_collector()
    per_learn = n_steps * num_envs
    agent.learn(per_learn, tensorboard=False)  # first batch (warm-up), outside the timing
    build_s = time.perf_counter() - start
    stepped = 0
    collect = collector.collect

    def counting_collect() -> Any:
        nonlocal stepped
        batch = collect()
        stepped += batch.valid.numel()
        return batch

    setattr(collector, "collect", counting_collect)  # noqa: B010  (instance override)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        agent.learn(per_learn, tensorboard=False)
    elapsed = time.perf_counter() - start
    agent.close()
    return {"env_steps": stepped, "seconds": elapsed, "steps_per_s": stepped / elapsed,
            "build_s": build_s, "n_steps": n_steps}


def env_only_cell(env_id: str, backend: str, num_envs: int, seconds: float) -> float:
    """Steps/s of the vector env alone, stepped with random actions (no policy, no update):
    the bound on what training can reach with this backend."""
    envs = pgrad.make_vec_env(env_id, num_envs, backend)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(64)]
    envs.reset(seed=0)
    for a in actions[:8]:
        envs.step(a)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        envs.step(actions[calls % 64])
        calls += 1
    elapsed = time.perf_counter() - start
    envs.close()
    return calls * num_envs / elapsed


def sb3_cell(task: str, env_id: str, seconds: float, num_envs: int = 8) -> dict[str, Any]:
    """Steps/s of SB3 A2C (MlpPolicy, defaults, DummyVecEnv of ``num_envs``)."""
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(make_pong if task == "pong" else env_id, n_envs=num_envs, seed=0)
    model = A2C("MlpPolicy", env, seed=0, device="cpu")
    chunk = model.n_steps * num_envs
    model.learn(chunk)  # warm-up
    stepped, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.learn(chunk * 10, reset_num_timesteps=False)
        stepped += chunk * 10
    elapsed = time.perf_counter() - start
    env.close()
    return {"env_steps": stepped, "seconds": elapsed, "steps_per_s": stepped / elapsed,
            "num_envs": num_envs}


def available(task: str, env_id: str, backend: str) -> str | None:
    """Why a backend cannot run a task here, or None."""
    if backend == "native" and gym.spec(env_id).vector_entry_point is None:
        return "no native implementation"
    if backend == "envpool":
        if not pgrad_envpool.is_installed():
            return "envpool not installed"
        if pgrad_envpool.envpool_id(env_id) is None:
            return "not mapped"
    return None


def to_markdown(info: dict[str, Any], rows: list[dict[str, Any]],
                sb3: dict[str, dict[str, Any]], counts: list[int]) -> str:
    """The results as Markdown tables (analysis is added by hand below them)."""
    lines = ["# Throughput: env steps/s while training, per vectorisation backend", "",
             f"Command: `{info['command']}`  ", f"Date: {info['date_utc']}  ",
             f"Machine: {info['cpu']}, {info['cores']} cores, {info['os']}  ",
             f"Versions: Python {info['python']}, pgrad {info['pgrad']} (git {info['git']}), "
             + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v) + "  ",
             f"Load average (1, 5, 15 min) at start {info['load_avg_start']}, at end "
             f"{info['load_avg_end']}: the machine was shared, the figures are rough.", ""]
    for task, env_id in TASKS.items():
        task_rows = [r for r in rows if r["task"] == task]
        if not task_rows:
            continue
        lines += [f"## {env_id}", "", "| backend | " + " | ".join(f"N={n}" for n in counts)
                  + " |", "|---|" + "---:|" * len(counts)]
        for backend in BACKENDS:
            cells = {r["num_envs"]: r for r in task_rows if r["backend"] == backend}
            if not cells:
                continue
            lines.append(f"| {backend} | " + " | ".join(
                f"{cells[n]['steps_per_s']:,.0f}" if "steps_per_s" in cells.get(n, {})
                else cells.get(n, {}).get("skipped", "—") for n in counts) + " |")
        for backend in BACKENDS:
            cells = {r["num_envs"]: r for r in task_rows if r["backend"] == backend}
            if any("env_only_steps_per_s" in c for c in cells.values()):
                lines.append(f"| {backend}, env only | " + " | ".join(
                    f"{cells[n]['env_only_steps_per_s']:,.0f}"
                    if "env_only_steps_per_s" in cells.get(n, {}) else "—" for n in counts)
                    + " |")
        if task in sb3:
            lines.append(f"| SB3 A2C (N={sb3[task]['num_envs']}) | "
                         + f"{sb3[task]['steps_per_s']:,.0f} |" + " |" * (len(counts) - 1))
        for n in counts:
            ratios = []
            for key, what in (("steps_per_s", "training"), ("env_only_steps_per_s", "env only")):
                gym_best = max((r[key] for r in task_rows if r["num_envs"] == n
                                and r["backend"] != "envpool" and key in r), default=None)
                pool = next((r[key] for r in task_rows if r["num_envs"] == n
                             and r["backend"] == "envpool" and key in r), None)
                if gym_best and pool:
                    ratios.append(f"{pool / gym_best:.2f}× {what}")
            if ratios:
                lines += ["", f"N={n}: envpool ÷ best Gymnasium backend = {', '.join(ratios)}"]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--num-envs", nargs="+", type=int, default=[1, 8, 64])
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="timed seconds per measurement (after a warm-up batch)")
    parser.add_argument("--no-sb3", action="store_true", help="skip the SB3 A2C reference")
    parser.add_argument("--out", type=Path, default=RESULTS / "throughput.md")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    register_pong()
    info = machine_info([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    rows: list[dict[str, Any]] = []
    sb3: dict[str, dict[str, Any]] = {}
    for task in args.tasks:
        env_id = TASKS[task]
        for backend in args.backends:
            for n in args.num_envs:
                row: dict[str, Any] = {"task": task, "env_id": env_id, "backend": backend,
                                       "num_envs": n}
                why = available(task, env_id, backend)
                if why is None:
                    row.update(pgrad_cell(env_id, backend, n, args.seconds))
                    row["env_only_steps_per_s"] = env_only_cell(env_id, backend, n,
                                                                args.seconds / 2)
                else:
                    row["skipped"] = why
                rows.append(row)
                print(json.dumps(row), flush=True)
                gc.collect()
        if not args.no_sb3:
            sb3[task] = sb3_cell(task, env_id, args.seconds)
            print(json.dumps({"task": task, "sb3_a2c": sb3[task]}), flush=True)
    info["load_avg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"machine": info, "pgrad": rows, "sb3_a2c": sb3}, indent=1) + "\n")
    args.out.write_text(to_markdown(info, rows, sb3, args.num_envs) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
