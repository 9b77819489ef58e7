"""Environment steps per second while training, per vectorisation backend.

For each task, backend and env count N: ``pgrad.Reinforce(env, num_envs=N,
vectorization=backend, n_steps=max(4, 256 // N))`` (about 256 transitions per update, so the
update's share per step is the same at every N), the vector env built and one batch learned
outside the timing, then ``learn`` for at least ``--seconds`` of wall time; then the same
vector env alone, stepped with random actions for half as long ("env only": the bound on
training throughput with that backend). Each cell also records CPU µs per env step (this
process's threads, EnvPool's included, plus an async env's workers): on a shared machine
wall-clock rates swing with the load, CPU time per step much less. Env steps count
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
import gc
import json
import os
import sys
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from cartpole import count_env_steps
from cartpole import machine_info as cartpole_machine_info

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


def machine_info(argv: list[str]) -> dict[str, Any]:
    """Command, date, machine, load (benchmarks/cartpole.py's), and the versions of every
    backend measured here."""
    info = cartpole_machine_info(argv)
    info["versions"] = {n: _version(n) for n in (
        "torch", "gymnasium", "numpy", "envpool", "ale-py", "mujoco", "box2d",
        "stable_baselines3")}
    info["torch_threads"] = 1
    return info


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(envs: gym.vector.VectorEnv | None = None) -> float:
    """CPU seconds used so far by this process (all threads, EnvPool's included) and by an
    async vector env's worker processes."""
    total = time.process_time()
    base = None if envs is None else envs.unwrapped
    for proc in getattr(base, "processes", []) if isinstance(
            base, gym.vector.AsyncVectorEnv) else []:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
        except (OSError, IndexError, ValueError):
            pass
    return total


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
    count = count_env_steps(collector)
    cpu, start = cpu_seconds(collector.envs), time.perf_counter()
    while time.perf_counter() - start < seconds:
        agent.learn(per_learn, tensorboard=False)
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(collector.envs) - cpu
    agent.close()
    stepped = count()
    return {"env_steps": stepped, "seconds": elapsed, "steps_per_s": stepped / elapsed,
            "cpu_us_per_step": 1e6 * cpu / stepped, "build_s": build_s, "n_steps": n_steps}


def env_only_cell(env_id: str, backend: str, num_envs: int,
                  seconds: float) -> dict[str, float]:
    """Steps/s and CPU µs per step of the vector env alone, stepped with random actions (no
    policy, no update): the bound on what training can reach with this backend."""
    envs = pgrad.make_vec_env(env_id, num_envs, backend)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(64)]
    envs.reset(seed=0)
    for a in actions[:8]:
        envs.step(a)
    calls, cpu, start = 0, cpu_seconds(envs), time.perf_counter()
    while time.perf_counter() - start < seconds:
        envs.step(actions[calls % 64])
        calls += 1
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(envs) - cpu
    envs.close()
    return {"env_only_steps_per_s": calls * num_envs / elapsed,
            "env_only_cpu_us_per_step": 1e6 * cpu / (calls * num_envs)}


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


def projection(task_rows: list[dict[str, Any]], counts: list[int],
               cores: int = 16) -> list[str]:
    """Training steps/s projected to ``cores`` free cores from CPU time per step (a model,
    not a measurement): a Python-stepped backend runs env, act and update in one thread,
    ``1e6 / cpu_us_per_step``; EnvPool spreads the env's share over ``min(N, cores)``
    threads while the rest stays serial, ``1e6 / (train − env + env / min(N, cores))``."""
    out = []
    for n in counts:
        cells = {r["backend"]: r for r in task_rows
                 if r["num_envs"] == n and "cpu_us_per_step" in r}
        serial = [cells[b]["cpu_us_per_step"] for b in ("native", "sync") if b in cells]
        pool = cells.get("envpool")
        if n < 8 or not serial or pool is None:
            continue
        env = pool["env_only_cpu_us_per_step"]
        rest = max(pool["cpu_us_per_step"] - env, 0.0)
        best_serial = 1e6 / min(serial)
        projected = 1e6 / (rest + env / min(n, cores))
        out += [f"N={n}, projected to {cores} free cores: best of native/sync "
                f"{best_serial:,.0f}, envpool {projected:,.0f} steps/s "
                f"({projected / best_serial:.1f}×; EnvPool's env share "
                f"{env / max(pool['cpu_us_per_step'], env):.0%} of its CPU per step)"]
    return out


def _row(label: str, cells: dict[int, dict[str, Any]], key: str, counts: list[int],
         fmt: str) -> str:
    return f"| {label} | " + " | ".join(
        format(cells[n][key], fmt) if key in cells.get(n, {}) else "—" for n in counts) + " |"


def to_markdown(info: dict[str, Any], rows: list[dict[str, Any]],
                sb3: dict[str, dict[str, Any]], counts: list[int]) -> str:
    """The results as Markdown: per task, steps/s (training, env only), CPU µs per env step,
    envpool's ratio to the best Gymnasium backend and the 16-core projection."""
    lines = ["# Throughput: env steps/s while training, per vectorisation backend", "",
             f"Command: `{info['command']}`  ", f"Date: {info['date_utc']}  ",
             f"Machine: {info['cpu']}, {info['cores']} cores, {info['os']}  ",
             f"Versions: Python {info['python']}, pgrad {info['pgrad']} (git {info['git']}), "
             + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v) + "  ",
             "Load average (1, 5, 15 min) at start "
             + ", ".join(f"{x:.1f}" for x in info["load_avg_start"]) + ", at end "
             + ", ".join(f"{x:.1f}" for x in info["load_avg_end"])
             + f" on {info['cores']} cores: the machine was shared, the figures are rough.", "",
             "Rows: env steps/s while `Reinforce.learn` trains (N envs, n_steps = max(4, "
             "256 // N)); *env only*: the vector env stepped with random actions; *CPU "
             "µs/step*: CPU time (all threads and worker processes) per env step. One torch "
             "thread. SB3 A2C: `MlpPolicy`, 8 envs, `DummyVecEnv`, one torch thread.", ""]
    header = ["| | " + " | ".join(f"N={n}" for n in counts) + " |",
              "|---|" + "---:|" * len(counts)]
    for task, env_id in TASKS.items():
        task_rows = [r for r in rows if r["task"] == task and "skipped" not in r]
        if not task_rows:
            continue
        by_backend = {b: {r["num_envs"]: r for r in task_rows if r["backend"] == b}
                      for b in BACKENDS}
        by_backend = {b: c for b, c in by_backend.items() if c}
        lines += [f"## {env_id}", "", *header]
        for key, what, fmt in (("steps_per_s", "steps/s, training", ",.0f"),
                               ("env_only_steps_per_s", "steps/s, env only", ",.0f"),
                               ("cpu_us_per_step", "CPU µs/step, training", ",.1f"),
                               ("env_only_cpu_us_per_step", "CPU µs/step, env only", ",.1f")):
            for backend, cells in by_backend.items():
                lines.append(_row(f"{backend}, {what}", cells, key, counts, fmt))
        if task in sb3:
            lines.append(f"| SB3 A2C (N={sb3[task]['num_envs']}), steps/s, training | "
                         + " | ".join(f"{sb3[task]['steps_per_s']:,.0f}"
                                      if n == sb3[task]["num_envs"] else "" for n in counts)
                         + " |")
        lines.append("")
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
                lines.append(f"- N={n}: envpool ÷ best Gymnasium backend = {', '.join(ratios)}")
        lines += [f"- {line}" for line in projection(task_rows, counts)]
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
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="only rewrite --out's Markdown from a saved results JSON")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads(args.render.read_text())
        counts = sorted({r["num_envs"] for r in saved["pgrad"]})
        args.out.write_text(to_markdown(saved["machine"], saved["pgrad"], saved["sb3_a2c"],
                                        counts) + "\n")
        print(f"wrote {args.out}")
        return
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
                    row.update(env_only_cell(env_id, backend, n, args.seconds / 2))
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
