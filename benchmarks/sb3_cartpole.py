"""Whole-process time to solve CartPole-v1: the ``pgrad train`` command vs Stable-Baselines3
PPO with rl-baselines3-zoo's CartPole-v1 hyper-parameters, each in a fresh process.

    python benchmarks/sb3_cartpole.py [--pgrad-seeds 5] [--sb3-seeds 3]

prints the table; ``benchmarks/cartpole.py`` runs the same comparison as its section (g)
and writes it to ``results/cartpole.md``.

One stopping rule for both: training ends once the mean return of the last 100 training
episodes is ≥ 475 (pgrad's ``--stop-return 475``, checked after every update; SB3: a
callback checking its own 100-episode buffer after every vector step that ends an
episode). Both run with one torch thread (``OMP_NUM_THREADS=1`` and
``torch.set_num_threads(1)``: SB3's fastest setting on 2 cores, pgrad's default).

* **whole process**: wall time of the subprocess, from start to exit: interpreter, imports,
  env, training, writing the model. pgrad's bytecode is compiled first, as SB3's was when
  pip installed it (a checkout's modules are otherwise compiled on their first import, or
  in every process where ``PYTHONDONTWRITEBYTECODE`` is set).
* **training only**: time inside training — pgrad's ``time/elapsed`` of its last
  ``progress.csv`` row, SB3's ``model.learn`` timed in the worker.

SB3 settings (rl-zoo ``hyperparams/ppo.yml``, CartPole-v1): 8 envs (``make_vec_env``, a
``DummyVecEnv`` of Monitor-wrapped envs), ``n_steps=32``, ``batch_size=256``,
``gae_lambda=0.8``, ``gamma=0.98``, ``n_epochs=20``, ``ent_coef=0.0``, learning rate and
clip range linear from 1e-3 and 0.2 to 0 over zoo's ``n_timesteps=1e5`` (the budget: a run
that has not met the rule by then counts as unsolved).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import startup

ENV_ID = "CartPole-v1"
SOLVE_RETURN = 475.0
PGRAD_MAX_STEPS = 1_000_000
SB3_TIMESTEPS = 100_000
ROOT = Path(__file__).resolve().parents[1]
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _env() -> dict[str, str]:
    """The subprocesses' environment: one thread, and this checkout's pgrad first."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **THREAD_ENV, "PYTHONPATH": path}


def run_pgrad(seed: int, timeout: float = 600.0) -> dict[str, Any]:
    """``python -m pgrad train CartPole-v1 --stop-return 475 --seed S`` in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        command = [sys.executable, "-m", "pgrad", "train", ENV_ID, "--seed", str(seed),
                   "--stop-return", f"{SOLVE_RETURN:g}", "--total-timesteps",
                   str(PGRAD_MAX_STEPS), "--no-progress", "--no-tensorboard",
                   "--out", str(run_dir)]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, env=_env(),
                              cwd=tmp, timeout=timeout)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"pgrad seed {seed} exited {proc.returncode}: "
                               f"{proc.stderr.strip()[-500:]}")
        with (run_dir / "progress.csv").open() as f:
            last = list(csv.DictReader(f))[-1]
    return {"seed": seed, "solved": "stop return 475 reached" in proc.stdout,
            "steps": int(last["step"]), "process_seconds": wall,
            "train_seconds": float(last["time/elapsed"]),
            "command": " ".join(command[1:4] + command[4:-2])}


# ------------------------------------------------------------------------- SB3 worker
def sb3_worker(seed: int) -> dict[str, Any]:
    """Train SB3 PPO (rl-zoo CartPole-v1) until the rule or the budget; runs in the child."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)

    class StopAtReturn(BaseCallback):
        """Stop once the last 100 training episodes (SB3's ep_info_buffer) average ≥ X."""

        def __init__(self, threshold: float) -> None:
            super().__init__()
            self.threshold = threshold
            self.reached = False
            self.ended = False

        def _on_step(self) -> bool:
            # SB3 adds the episodes that end at a step to its buffer after this call:
            # check the step after one ended.
            buffer = self.model.ep_info_buffer
            if self.ended and len(buffer) == buffer.maxlen:
                self.reached = statistics.fmean(e["r"] for e in buffer) >= self.threshold
            self.ended = bool(self.locals["dones"].any())
            return not self.reached

    envs = make_vec_env(ENV_ID, n_envs=8, seed=seed)
    model = PPO("MlpPolicy", envs, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                n_epochs=20, ent_coef=0.0, learning_rate=lambda p: p * 1e-3,
                clip_range=lambda p: p * 0.2, seed=seed, verbose=0)
    callback = StopAtReturn(SOLVE_RETURN)
    start = time.perf_counter()
    model.learn(SB3_TIMESTEPS, callback=callback)
    train_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model")  # as pgrad writes its model
    return {"seed": seed, "solved": callback.reached, "steps": int(model.num_timesteps),
            "train_seconds": train_seconds, "torch_threads": torch.get_num_threads()}


def run_sb3(seed: int, timeout: float = 1800.0) -> dict[str, Any]:
    """:func:`sb3_worker` in a fresh process (imports included in the wall time)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(seed)]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"SB3 seed {seed} exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-500:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "process_seconds": wall}


# ------------------------------------------------------------------------- comparison
def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r["solved"]]
    return statistics.median(values) if values else None


def side_by_side(pgrad_seeds: int, sb3_seeds: int, log: Any = print) -> dict[str, Any]:
    """Run both, seeds interleaved (so that load changes hit both); medians and ratios."""
    startup.compile_bytecode(ROOT)
    pgrad_runs: list[dict[str, Any]] = []
    sb3_runs: list[dict[str, Any]] = []
    for seed in range(max(pgrad_seeds, sb3_seeds)):
        if seed < pgrad_seeds:
            pgrad_runs.append(run_pgrad(seed))
            log(f"  pgrad seed {seed}: {_line(pgrad_runs[-1])}")
        if seed < sb3_seeds:
            sb3_runs.append(run_sb3(seed))
            log(f"  SB3 PPO seed {seed}: {_line(sb3_runs[-1])}")
    out: dict[str, Any] = {"rule": f"mean return of the last 100 training episodes ≥ "
                                   f"{SOLVE_RETURN:g}", "threads": 1,
                           "pgrad": pgrad_runs, "sb3": sb3_runs,
                           "sb3_budget": SB3_TIMESTEPS, "pgrad_budget": PGRAD_MAX_STEPS}
    for key in ("process_seconds", "train_seconds", "steps"):
        p, s = _median(pgrad_runs, key), _median(sb3_runs, key)
        out[f"pgrad_median_{key}"], out[f"sb3_median_{key}"] = p, s
        out[f"ratio_{key}"] = s / p if p and s else None
    return out


def _line(r: dict[str, Any]) -> str:
    return (f"solved={r['solved']} steps={r['steps']:,} process {r['process_seconds']:.2f} s, "
            f"training {r['train_seconds']:.2f} s")


def render(res: dict[str, Any]) -> list[str]:
    """Markdown lines of the comparison (used by cartpole.py's section (g))."""

    def n(x: float | None, digits: int = 2) -> str:
        return "–" if x is None else f"{x:,.{digits}f}"

    rows = []
    for name, runs in (("pgrad", res["pgrad"]), ("SB3 PPO", res["sb3"])):
        rows += [f"| {name} | {r['seed']} | {'yes' if r['solved'] else '**no**'} | "
                 f"{r['steps']:,} | {r['process_seconds']:.2f} | {r['train_seconds']:.2f} |"
                 for r in runs]
    solved_p = sum(r["solved"] for r in res["pgrad"])
    solved_s = sum(r["solved"] for r in res["sb3"])
    return [
        f"Rule for both: stop when the {res['rule']} (pgrad `--stop-return 475`, budget "
        f"{res['pgrad_budget']:,} steps; SB3 a callback on its 100-episode buffer, budget "
        f"zoo's {res['sb3_budget']:,} steps). One torch thread each (`OMP_NUM_THREADS=1`). "
        "Each run is a fresh process; *process* is its wall time from start to exit "
        "(imports, env, training, writing the model), *training* the time inside training "
        "(pgrad's last `time/elapsed`, SB3's `model.learn`). Seeds interleaved. Both read "
        "compiled bytecode (pgrad's is compiled before the runs; pip compiled SB3's). SB3: "
        "`PPO(\"MlpPolicy\", make_vec_env(\"CartPole-v1\", 8), n_steps=32, batch_size=256, "
        "gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0, learning_rate=lin_1e-3, "
        "clip_range=lin_0.2)` (rl-baselines3-zoo).", "",
        "| | solved | median steps | median process s | median training s |",
        "|---|---|---|---|---|",
        f"| pgrad (`pgrad train`, CartPole's preset) | {solved_p}/{len(res['pgrad'])} | "
        f"{n(res['pgrad_median_steps'], 0)} | {n(res['pgrad_median_process_seconds'])} | "
        f"{n(res['pgrad_median_train_seconds'])} |",
        f"| SB3 PPO (rl-zoo) | {solved_s}/{len(res['sb3'])} | {n(res['sb3_median_steps'], 0)} | "
        f"{n(res['sb3_median_process_seconds'])} | {n(res['sb3_median_train_seconds'])} |",
        f"| **SB3 ÷ pgrad** | | {n(res['ratio_steps'], 1)}× | "
        f"**{n(res['ratio_process_seconds'], 1)}×** | **{n(res['ratio_train_seconds'], 1)}×** |",
        "", "Medians over the solved seeds. Every run:", "",
        "| who | seed | solved | steps | process s | training s |", "|---|---|---|---|---|---|",
        *rows,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pgrad-seeds", type=int, default=5)
    parser.add_argument("--sb3-seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, metavar="FILE.md",
                        help="also write the table to FILE.md, with the command, machine, "
                        "versions, date and load")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(sb3_worker(args.worker)))
        return 0
    load_start = os.getloadavg()
    res = side_by_side(args.pgrad_seeds, args.sb3_seeds)
    table = "\n".join(render(res))
    print(table)
    if args.out is not None:
        args.out.write_text(_header(argv, load_start) + table + "\n")
        print(f"wrote {args.out}")
    return 0


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines
                 if line.startswith("model name")), "")


def _header(argv: list[str] | None, load_start: tuple[float, ...]) -> str:
    """The results file's opening: command, date, machine, versions, load."""
    import platform

    import gymnasium
    import stable_baselines3
    import torch

    command = shlex.join(["python", "benchmarks/sb3_cartpole.py",
                          *(sys.argv[1:] if argv is None else argv)])
    load = ", ".join(f"{x:.2f}" for x in load_start)
    load_end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"# Whole-process time to solve CartPole-v1: pgrad train vs SB3 PPO\n\n"
            f"Command: `{command}`  \n"
            f"Date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}  \n"
            f"Machine: {_cpu_model() or platform.machine()}, {os.cpu_count()} cores, "
            f"{platform.platform()}  \n"
            f"Versions: Python {platform.python_version()}, torch {torch.__version__}, "
            f"gymnasium {gymnasium.__version__}, stable-baselines3 "
            f"{stable_baselines3.__version__}, pgrad (git {startup.git_describe(ROOT)})  \n"
            f"Load average (1, 5, 15 min) at start: {load}; at end: {load_end}\n\n")


if __name__ == "__main__":
    sys.exit(main())
