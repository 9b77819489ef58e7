"""CartPole-v1 benchmark of pgrad: throughput, seeds to solve, the tutorial agent, this
machine's throughput ceiling, and a profile, measured in one run and written to Markdown.

    python benchmarks/cartpole.py [--seeds 10] [--quick] [--no-sb3]
                                  [--out benchmarks/results/cartpole.md]

Sections: (a) training steps/s at 1, 16, 256 envs; (b) the default settings over seeds:
solved?, steps and seconds to solve, evaluation; (c) the same for the other VARIANTS;
(d) the tutorial's per-episode agent's steps/s and pgrad's speed-up over it; (e) the
ceiling from timing one env step, one act and one update per sample; (f) a cProfile of a
default training run, grouped; (g) whole-process time to solve, ``pgrad train`` vs SB3 PPO
with rl-zoo's settings, each in fresh processes (``sb3_cartpole.py``); (h) the start-up
breakdown of ``results/startup.md``. A JSON file with the raw numbers is written next to the
Markdown. Targets are reported, never asserted: the exit status is non-zero only when a
run crashed or a self-check (e.g. a run took fewer steps than asked) failed.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import math
import os
import platform
import pstats
import random
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import limits
import numpy as np
import sb3_cartpole
import torch
from limits import count_env_steps
from tutorial_agent import run_tutorial_agent

import pgrad
from pgrad.presets import preset

ENV_ID = "CartPole-v1"
SOLVE_RETURN = 475.0
MAX_STEPS = 1_000_000
EVAL_EPISODES = 100
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "cartpole.md"
STARTUP_RESULTS = HERE / "results" / "startup.md"


@dataclass(frozen=True)
class Variant:
    """A set of settings trained over seeds until the stop return (sections b and c)."""

    name: str
    label: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    seeds: int | None = None
    """Seeds to run; None: the ``--seeds`` value."""


# Edit this table to benchmark other settings; the first row is section (b).
VARIANTS: tuple[Variant, ...] = (
    Variant("default", "CartPole's preset (`pgrad train`): whole-episode batches = pure "
            "Monte-Carlo REINFORCE, with a learned value baseline"),
    Variant("config-defaults", "the Config defaults, no preset (what an env without a "
            "preset gets): 16 x 16 episodes, fitted baseline, normalised observations, "
            "scaled rewards", {key: getattr(pgrad.Config(), key) for key in preset(ENV_ID)}),
    Variant("n-step", "n-step actor-critic (bootstraps cut episodes from V)",
            {"n_steps": 16, "num_envs": 128}),
    Variant("no-baseline", "Monte-Carlo REINFORCE without a baseline (whole episodes)",
            {"baseline": False}),
)


@dataclass(frozen=True)
class Budget:
    """How much each section runs."""

    seeds: int
    throughput_steps: dict[int, int]
    """Env steps to learn per num_envs in (a), sized for ~3-5 s each on a 2-core CPU."""
    tutorial_seconds: float
    limit_scale: float
    profile_steps: int
    ceiling_repeats: int = 3
    """Rounds of (e): the ceiling, then pgrad at 256 envs, under the same load."""
    pgrad_processes: int = 10
    """Seeds of the whole-process comparison with SB3 (g), pgrad's side."""
    sb3_processes: int = 5
    """Seeds of (g), SB3's side (each run takes 15-60 s on a 2-core VM, by its load)."""


FULL = Budget(seeds=10, throughput_steps={1: 30_000, 16: 350_000, 256: 1_000_000},
              tutorial_seconds=10.0, limit_scale=1.0, profile_steps=400_000)
QUICK = Budget(seeds=2, throughput_steps={1: 1_000, 16: 10_000, 256: 30_000},
               tutorial_seconds=1.0, limit_scale=0.05, profile_steps=20_000,
              ceiling_repeats=1, pgrad_processes=1, sb3_processes=0)


class CheckError(RuntimeError):
    """A self-check failed (a broken run, not a missed target)."""


def check(ok: bool, message: str) -> None:
    """Raise :class:`CheckError` unless ``ok``."""
    if not ok:
        raise CheckError(message)


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch (pgrad seeds its own envs and networks too)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------- header
def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(HERE), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _proc_field(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_info(argv: list[str]) -> dict[str, Any]:
    """Command, date, machine, versions and thread count of this run."""
    mem_kb = _proc_field("/proc/meminfo", "MemTotal").split()[0]
    return {
        "command": "python " + shlex.join(argv),
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu": _proc_field("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "ram_gib": round(int(mem_kb) / 2**20, 1) if mem_kb.isdigit() else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gymnasium": gym.__version__,
        "numpy": np.__version__,
        "pgrad": pgrad.__version__,
        "git": _git_commit(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_start": os.getloadavg(),
    }


# ---------------------------------------------------------------------------- (a)
def throughput(num_envs: int, steps: int, seed: int = 0) -> dict[str, Any]:
    """Learn ``steps`` env steps with ``num_envs`` envs, one episode per env per batch."""
    seed_all(seed)
    agent = pgrad.Reinforce(ENV_ID, seed=seed, num_envs=num_envs, batch_episodes=num_envs)
    collector = agent.make_collector()        # built outside the timing
    stepped = count_env_steps(collector)
    agent.learn(steps)
    agent.close()
    r = agent.last_result
    assert r is not None
    check(r.steps >= steps and r.seconds > 0, f"num_envs={num_envs}: ran {r.steps} steps")
    return {"num_envs": num_envs, "steps": r.steps, "seconds": r.seconds,
            "steps_per_s": r.steps / r.seconds, "updates": r.updates,
            "valid_share": r.steps / stepped(), "return_mean": r.return_mean}


# ---------------------------------------------------------------------------- (b), (c)
def solve(variant: Variant, seed: int) -> dict[str, Any]:
    """Train until the last 100 training episodes average ≥ 475, then evaluate."""
    seed_all(seed)
    agent = pgrad.Reinforce(ENV_ID, seed=seed, **variant.kwargs)
    agent.learn(MAX_STEPS, stop_return=SOLVE_RETURN)
    r = agent.last_result
    assert r is not None
    ev = pgrad.evaluate(agent, episodes=EVAL_EPISODES)
    agent.close()
    check(ev.episodes == EVAL_EPISODES, f"evaluation played {ev.episodes} episodes")
    check(r.reached_stop_return or r.steps >= MAX_STEPS, f"stopped early after {r.steps}")
    return {"seed": seed, "solved": r.reached_stop_return, "steps": r.steps,
            "seconds": r.seconds, "steps_per_s": r.steps / r.seconds, "updates": r.updates,
            "train_return": r.return_mean, "eval_mean": ev.mean, "eval_std": ev.std}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Solved count; median and range of steps and seconds over the solved seeds."""
    solved = [r for r in runs if r["solved"]]
    out: dict[str, Any] = {"seeds": len(runs), "solved": len(solved),
                           "median_steps_per_s": float(np.median([r["steps_per_s"]
                                                                  for r in runs]))}
    for key in ("steps", "seconds"):
        values = [r[key] for r in solved]
        out[key] = ({"median": float(np.median(values)), "min": min(values),
                     "max": max(values)} if values else None)
    out["eval_mean_median"] = float(np.median([r["eval_mean"] for r in runs]))
    return out


def run_variant(variant: Variant, seeds: int) -> dict[str, Any]:
    """All seeds of one variant."""
    config = limits.cartpole_config(**variant.kwargs)
    runs = []
    for seed in range(seeds):
        runs.append(solve(variant, seed))
        r = runs[-1]
        print(f"  {variant.name} seed {seed}: solved={r['solved']} steps={r['steps']} "
              f"{r['seconds']:.2f}s eval={r['eval_mean']:.1f}", flush=True)
    return {"name": variant.name, "label": variant.label, "kwargs": variant.kwargs,
            "config": config.to_dict(), "runs": runs, "summary": summarize(runs)}


# ---------------------------------------------------------------------------- (d)
def tutorial(seconds: float) -> dict[str, Any]:
    """The tutorial's per-episode agent for a wall-clock budget, one torch thread."""
    seed_all(0)
    with limits.torch_threads(1):
        result = run_tutorial_agent(seconds, seed=0)
    check(result["env_steps"] > 0, "the tutorial agent took no steps")
    return result


# ---------------------------------------------------------------------------- (f)
ENV, ACT, UPDATE, OVERHEAD = ("env step", "acting (policy forward + sampling)",
                              "update (forward, backward, optimizer)", "pgrad Python overhead")
SHORT = {ENV: "env", ACT: "acting", UPDATE: "update", OVERHEAD: "pgrad overhead"}
Func = tuple[str, int, str]


def _is(func: Func, path_part: str, name: str | None = None) -> bool:
    return path_part in func[0].replace(os.sep, "/") and (name is None or func[2] == name)


def _anchor(func: Func) -> str | None:
    """The group a call under ``func`` belongs to, if ``func`` decides it."""
    if _is(func, "pgrad/agent.py", "update"):
        return UPDATE
    if _is(func, "pgrad/policies.py") and func[2] in ("sample", "to_env"):
        return ACT
    if _is(func, "gymnasium/"):
        return ENV
    if _is(func, "pgrad/rollout.py") or _is(func, "pgrad/trainer.py"):
        return OVERHEAD
    return None


def _group(stats: dict[Func, Any], func: Func) -> str:
    """Group of a function's own time: its file, else the anchors above it in the call graph."""
    if _is(func, "pgrad/"):
        return SHORT[OVERHEAD]
    if _is(func, "gymnasium/"):
        return SHORT[ENV]
    groups: set[str] = set()
    seen, todo = {func}, [func]
    while todo:
        for caller in stats[todo.pop()][4]:
            if caller in seen:
                continue
            seen.add(caller)
            anchor = _anchor(caller)
            if anchor is not None:
                groups.add(anchor)
            elif caller in stats:
                todo.append(caller)
    return " + ".join(SHORT[g] for g in SHORT if g in groups) or "other"


def _cum_under(stats: dict[Func, Any], caller: Callable[[Func], bool],
               callee: Callable[[Func], bool]) -> float:
    """Cumulative seconds of ``callee`` functions when called directly by ``caller`` ones."""
    total = 0.0
    for func, (_, _, _, _, callers) in stats.items():
        if callee(func):
            total += sum(v[3] for c, v in callers.items() if caller(c))
    return total


def _label(func: Func) -> str:
    path = func[0].replace(os.sep, "/")
    for root in ("pgrad/", "gymnasium/", "torch/", "numpy/"):
        if root in path:
            path = root + path.rsplit(root, 1)[1]
            break
    return func[2] if func[0] == "~" else f"{path}:{func[1]}({func[2]})"


def profile(steps: int, top: int = 12) -> dict[str, Any]:
    """cProfile ``learn`` of a fresh default agent; group the time and list the top functions."""
    seed_all(0)
    plain = pgrad.Reinforce(ENV_ID, seed=0)
    plain.learn(steps)
    plain.close()
    seed_all(0)
    agent = pgrad.Reinforce(ENV_ID, seed=0)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    agent.learn(steps)
    profiler.disable()
    wall = time.perf_counter() - start
    agent.close()
    assert plain.last_result is not None
    stats: dict[Func, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]

    def cum(path: str, name: str) -> float:
        return sum(v[3] for f, v in stats.items() if _is(f, path, name))

    def in_step(f: Func) -> bool:
        return _is(f, "pgrad/rollout.py", "_step")

    def in_update(f: Func) -> bool:  # update and the helpers it calls (_gradient_step, ...)
        return _is(f, "pgrad/agent.py") and f[2] not in ("learn", "__init__")

    learn_s = cum("pgrad/agent.py", "learn")
    collect_s = cum("pgrad/rollout.py", "collect")
    update_s = cum("pgrad/agent.py", "update")
    env_s = _cum_under(stats, in_step, lambda f: f[2] == "step")
    act_s = _cum_under(stats, in_step, lambda f: _is(f, "pgrad/policies.py")
                       and f[2] in ("sample", "to_env"))
    fwd_s = _cum_under(stats, in_update, lambda f: f[2] in ("evaluate_actions", "value",
                                                            "distribution"))
    diag_s = _cum_under(stats, in_update,
                        lambda f: _is(f, "pgrad/diagnostics.py", "per_episode_gradients"))
    bwd_s = _cum_under(stats, in_update, lambda f: _is(f, "torch/_tensor.py", "backward"))
    opt_s = _cum_under(stats, in_update, lambda f: _is(f, "torch/optim/")
                       or _is(f, "pgrad/optim.py", "step")
                       or _is(f, "torch/nn/utils/clip_grad.py"))
    rows = [
        (ENV, "vector CartPole step (called by the collector)", env_s),
        (ACT, "Policy.sample + to_env in the rollout", act_s),
        (UPDATE, "forward: evaluate_actions (+ V at cuts, value fit, KL)", fwd_s),
        (UPDATE, "backward", bwd_s),
        (UPDATE, "clip_grad_norm_ + Adam step", opt_s),
        (UPDATE, "per-episode gradient diagnostics (every diagnostics_every updates)",
         diag_s),
        (UPDATE, "returns, loss, metrics (rest of Reinforce.update)",
         update_s - fwd_s - bwd_s - opt_s - diag_s),
        (OVERHEAD, "collector bookkeeping (rest of Collector.collect)",
         collect_s - env_s - act_s),
        (OVERHEAD, "trainer loop (rest of learn)", learn_s - collect_s - update_s),
    ]
    by_tottime = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return {
        "steps": steps, "learn_seconds_unprofiled": plain.last_result.seconds,
        "learn_seconds_profiled": wall, "learn_cumtime": learn_s,
        "breakdown": [{"group": g, "part": p, "seconds": s} for g, p, s in rows],
        "top": [{"function": _label(f), "group": _group(stats, f), "calls": v[1],
                 "tottime": v[2], "cumtime": v[3]} for f, v in by_tottime],
    }


# ---------------------------------------------------------------------------- report
def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _n(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def _range(stat: dict[str, float] | None, digits: int = 0) -> str:
    if stat is None:
        return "–"
    return (f"{_n(stat['median'], digits)} ({_n(stat['min'], digits)} – "
            f"{_n(stat['max'], digits)})")


def _kwargs(kwargs: dict[str, Any]) -> str:
    return "".join(f", {k}={v!r}" for k, v in kwargs.items())


def _config_diff(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in kwargs.items()) or "CartPole's settings"


def _targets(res: dict[str, Any]) -> list[list[str]]:
    """Issues 3 and 14's targets next to what this run measured (reported, never
    asserted)."""
    rows: list[list[str]] = []

    def row(target: str, value: float | None, shown: str, ok: bool | None) -> None:
        rows.append([target, shown if value is not None else "–",
                     "–" if ok is None or value is None else ("yes" if ok else "**no**")])

    s = res["variants"][VARIANTS[0].name].get("summary")
    if s:
        sec = s["seconds"]["median"] if s["seconds"] else None
        row("CartPole's preset (whole episodes = Monte-Carlo): every seed solves", s["solved"],
            f"{s['solved']}/{s['seeds']}", s["solved"] == s["seeds"])
        row("CartPole's preset: median seconds to solve ≤ 2 (≤ 4 for Monte-Carlo)", sec,
            f"{_n(sec, 2)} s", sec is not None and sec <= 2)
    sps = next((t["steps_per_s"] for t in res.get("throughput", [])
                if t["num_envs"] == 256), None)
    row("≥ 200,000 steps/s at 256 envs", sps, f"{_n(sps)} steps/s", (sps or 0) >= 200_000)
    configs = res.get("limit", {}).get("configs", {})
    for name, label in [("whole_episodes", "whole-episode batches (the target's measure)"),
                        ("fixed_steps", "fixed-step batches (every env step learned from)")]:
        c = configs.get(name, {})
        frac, cpu_frac = c.get("fraction"), c.get("cpu_fraction")
        row(f"≥ 75 % of this machine's ceiling at 256 envs, {label} (e; issue 14, 50 % in "
            "issue 3)", frac,
            f"{100 * (frac or 0):.0f} % wall clock, {100 * (cpu_frac or 0):.0f} % CPU clock",
            (frac or 0) >= 0.75)
    sbs = res.get("sb3", {})
    ratio_p = sbs.get("ratio_process_seconds")
    row("whole-process time to solve ≥ 6× faster than SB3 PPO (g; issue 14)", ratio_p,
        f"{_n(ratio_p, 1)}×", (ratio_p or 0) >= 6)
    ratio_t = sbs.get("ratio_train_seconds")
    row("training-only time to solve ≥ 20× faster than SB3 PPO (g; issue 14)", ratio_t,
        f"{_n(ratio_t, 1)}×", (ratio_t or 0) >= 20)
    ratio = res.get("tutorial", {}).get("ratio_256")
    row("≥ 50× the tutorial agent's steps/s (256 envs)", ratio, f"{_n(ratio, 1)}×",
        (ratio or 0) >= 50)
    return rows


def render(res: dict[str, Any]) -> str:
    """The Markdown results file."""
    h = res["header"]
    d = limits.cartpole_config()
    out = [
        "# pgrad CartPole-v1 benchmark", "",
        f"Command: `{h['command']}`  ",
        f"Date: {h['date_utc']}; wall time of the whole run: {res['wall_seconds']:.0f} s  ",
        f"Machine: {h['cpu']}, {h['cores']} cores, {h['ram_gib']} GiB RAM, {h['os']}  ",
        f"Versions: Python {h['python']}, torch {h['torch']}, gymnasium {h['gymnasium']}, "
        f"numpy {h['numpy']}, pgrad {h['pgrad']} (git {h['git']})  ",
        f"Torch threads: {h['torch_threads']} (pgrad's default, `Config().threads`); "
        "single process; every run seeded.  ",
        "Budgets: " + ", ".join(f"{k}={v}" for k, v in res["budget"].items()) + "  ",
        "Load average (1, 5, 15 min) at start: "
        + ", ".join(f"{x:.2f}" for x in h["load_avg_start"]) + "; at end: "
        + ", ".join(f"{x:.2f}" for x in res["load_avg_end"])
        + " (above ~1 on this machine means other processes shared the cores).", "",
        "Targets are reported, not asserted. 'Solved' = mean return of the last 100 training "
        f"episodes ≥ {SOLVE_RETURN:.0f} (`last_result.reached_stop_return`), within "
        f"{MAX_STEPS:,} steps. Training seconds include building the vector env.", "",
        *(["**Quick smoke run (`--quick`): tiny budgets, the figures mean nothing.**", ""]
          if res["quick"] else []),
        "## Targets (issues 3 and 14; reported, not asserted)", "",
        _table(["target", "measured", "met"], _targets(res)), "",
        "## Variants", "",
        "CartPole's settings (the Config defaults and its preset, pgrad/presets.py): "
        f"`num_envs={d.num_envs}`, `batch_episodes={d.batch_episodes}`, "
        f"`n_steps={d.n_steps}`, `baseline={d.baseline}`, `value_net={d.value_net!r}`, "
        f"`hidden_sizes={d.hidden_sizes}`, `activation={d.activation!r}`, "
        f"`learning_rate={d.learning_rate}`, `gamma={d.gamma}`, "
        f"`max_grad_norm={d.max_grad_norm}`, `normalize_advantages={d.normalize_advantages}`. "
        "They batch whole episodes: pure Monte-Carlo REINFORCE, no bootstrapping.", "",
        _table(["variant", "what", "settings"],
               [[v["name"], v["label"], _config_diff(v["kwargs"])]
                for v in res["variants"].values()]),
    ]
    if "throughput" in res:
        out += ["", "## (a) Training throughput", "",
                "`pgrad.Reinforce(\"CartPole-v1\", num_envs=N, batch_episodes=N, seed=0)`"
                ".learn(steps), other settings default; from `agent.last_result` (vector env "
                "built before timing). *valid share*: learned-from steps ÷ env steps taken "
                "(whole-episode batches leave envs idle while the longest episode finishes).",
                "",
                _table(["num_envs", "steps", "seconds", "steps/s", "updates", "valid share",
                        "final train return"],
                       [[t["num_envs"], _n(t["steps"]), _n(t["seconds"], 2),
                         _n(t["steps_per_s"]), t["updates"], _n(t["valid_share"], 2),
                         _n(t["return_mean"], 1)] for t in res["throughput"]])]
    for key, v in res["variants"].items():
        if "runs" not in v:
            continue
        s = v["summary"]
        section = "(b)" if key == VARIANTS[0].name else "(c)"
        out += ["", f"## {section} Seeds to solve: {v['name']} — {v['label']}", "",
                f"`pgrad.Reinforce(\"CartPole-v1\", seed=s{_kwargs(v['kwargs'])})"
                f".learn({MAX_STEPS:_}, stop_return={SOLVE_RETURN:.0f})`, then "
                f"`pgrad.evaluate(agent, episodes={EVAL_EPISODES})` (deterministic).", "",
                f"**Solved {s['solved']}/{s['seeds']}**; over solved seeds, median (min – max): "
                f"steps {_range(s['steps'])}, seconds {_range(s['seconds'], 2)}; "
                f"median steps/s {_n(s['median_steps_per_s'])}; "
                f"median evaluation mean {_n(s['eval_mean_median'], 1)}.", "",
                _table(["seed", "solved", "steps", "seconds", "steps/s", "updates",
                        "train return", "eval mean ± std"],
                       [[r["seed"], "yes" if r["solved"] else "**no**", _n(r["steps"]),
                         _n(r["seconds"], 2), _n(r["steps_per_s"]), r["updates"],
                         _n(r["train_return"], 1),
                         f"{_n(r['eval_mean'], 1)} ± {_n(r['eval_std'], 1)}"]
                        for r in v["runs"]])]
    if "tutorial" in res:
        t = res["tutorial"]
        out += ["", "## (d) The tutorial's per-episode agent", "",
                "`benchmarks/tutorial_agent.py`: one observation per action, one update per "
                f"episode, torch 1 thread, a {t['budget_seconds']:.0f} s budget.", "",
                _table(["env steps", "seconds", "steps/s", "episodes",
                        "last-100 return", "pgrad 256 envs ÷ tutorial",
                        "pgrad, CartPole's preset (b) ÷ tutorial"],
                       [[_n(t["env_steps"]), _n(t["seconds"], 2), _n(t["steps_per_s"]),
                         t["episodes"], _n(t["last100_return_mean"], 1),
                         f"{_n(t.get('ratio_256'), 1)}×", f"{_n(t.get('ratio_default'), 1)}×"]])]
    if "limit" in res:
        lim = res["limit"]
        out += ["", "## (e) This machine's throughput ceiling", "",
                f"µs per sample, torch {lim['threads']} thread, pgrad's default policy "
                f"(`make_policy(..., **cartpole_config().policy_kwargs)`: "
                f"hidden {lim['hidden_sizes']}, "
                f"value net {lim['value_net']!r}, {lim['parameters']:,} parameters). "
                f"env: native vector CartPole step at {lim['num_envs']} envs; act: "
                f"`policy.to_env(policy.sample(obs))` under inference_mode at batch "
                f"{lim['num_envs']}; update: pgrad's own update code at "
                f"{lim['update_batch']:,} samples (`Reinforce._loss_backward`: forward, "
                f"reinforce_loss, backward, in chunks of {lim['update_chunk']:,} samples as in "
                "training; `Reinforce._gradient_step`: clipping, the guard, Adam), without "
                "the rest of an update (gathering the batch, returns, diagnostics). "
                f"Timed in each of {lim['repeats']} rounds, each round then timing pgrad "
                "(so that both see the same load); medians of the rounds. *CPU*: this "
                "process's CPU clock (`time.process_time`), which other processes on the "
                "cores inflate far less than the wall clock.", "",
                _table(["clock", "env µs", "act µs", "update µs", "total µs",
                        "ceiling samples/s"],
                       [["wall", _n(lim["env_us"], 3), _n(lim["act_us"], 3),
                         _n(lim["update_us"], 3), _n(lim["total_us"], 3),
                         _n(lim["samples_per_s"])],
                        ["CPU", _n(lim["cpu_env_us"], 3), _n(lim["cpu_act_us"], 3),
                         _n(lim["cpu_update_us"], 3), _n(lim["cpu_total_us"], 3),
                         _n(lim["cpu_samples_per_s"])]]), "",
                f"*pgrad*: valid (learned-from) steps per second of `learn` at "
                f"{lim['num_envs']} envs, for two kinds of batch (`benchmarks/limits.py`, "
                "`batch_configs`). *Whole episodes* "
                "are CartPole's preset, issue 14's measure: finished envs idle until the batch's "
                "longest episode ends, so only the *valid share* of the env steps is learned "
                "from (unbiased whole episodes, by design). *Fixed steps* learn from every env "
                "step but Gymnasium's reset steps, in batches the ceiling's update size. The "
                "ceiling charges one env step per sample, so a valid share s caps the fraction "
                "at *bound* = (env + act + update) ÷ (env / s + act + update): the envs step "
                "whether or not their step is learned from. *of bound*: the fraction ÷ that "
                "bound, what pgrad's own machinery (bookkeeping, the rest of an update, and "
                "running env, act and update one after another rather than each alone) leaves "
                "of what the valid share allows.", "",
                _table(["batches", "settings", "steps", "valid share",
                        "pgrad steps/s (wall \\| CPU)",
                        "fraction of ceiling (wall \\| CPU)", "bound (CPU)",
                        "of bound (CPU)", "≥ 75 %"],
                       [[name.replace("_", " "),
                         ", ".join(f"`{k}={v}`" for k, v in c["kwargs"].items()),
                         _n(c["steps"]), _n(c["valid_share"], 3),
                         f"{_n(c['steps_per_s'])} \\| {_n(c['cpu_steps_per_s'])}",
                         f"**{_n(c['fraction'], 2)}** \\| **{_n(c['cpu_fraction'], 2)}**",
                         _n(c["cpu_bound"], 2), _n(c["cpu_of_bound"], 2),
                         "yes" if c["fraction"] >= 0.75 else "**no**"]
                        for name, c in lim["configs"].items()]),
                "", "Rounds (wall \\| CPU):", "",
                _table(["round", "ceiling samples/s", "batches", "pgrad steps/s", "fraction",
                        "valid share", "load average"],
                       [[i, f"{_n(r['samples_per_s'])} \\| {_n(r['cpu_samples_per_s'])}",
                         name.replace("_", " "),
                         f"{_n(run['steps_per_s'])} \\| {_n(run['cpu_steps_per_s'])}",
                         f"{_n(run['fraction'], 2)} \\| {_n(run['cpu_fraction'], 2)}",
                         _n(run["valid_share"], 3),
                         ", ".join(f"{x:.1f}" for x in r["load_avg"])]
                        for i, r in enumerate(lim["rounds"])
                        for name, run in r["runs"].items()])]
    if "profile" in res:
        p = res["profile"]
        total = p["learn_cumtime"]
        out += ["", "## (f) Where the time goes", "",
                f"cProfile around `pgrad.Reinforce(\"CartPole-v1\", seed=0).learn("
                f"{p['steps']:_})` (defaults): {p['learn_seconds_profiled']:.2f} s profiled, "
                f"{p['learn_seconds_unprofiled']:.2f} s for the same run unprofiled "
                "(cProfile inflates Python-heavy parts most).", "",
                _table(["group", "part", "seconds", "share"],
                       [[b["group"], b["part"], _n(b["seconds"], 3),
                         f"{100 * b['seconds'] / total:.0f} %"] for b in p["breakdown"]]),
                "", "Top functions by own time (tottime):", "",
                _table(["function", "group", "calls", "tottime s", "cumtime s"],
                       [[f"`{t['function']}`", t["group"], _n(t["calls"]),
                         _n(t["tottime"], 3), _n(t["cumtime"], 3)] for t in p["top"]])]
    if "sb3" in res:
        out += ["", "## (g) Whole process, side by side with Stable-Baselines3 PPO", "",
                *sb3_cartpole.render(res["sb3"])]
    if res.get("startup"):
        out += ["", "## (h) Start-up of the pgrad command", "",
                f"Copied from `{STARTUP_RESULTS.relative_to(HERE.parent)}` "
                "(`python benchmarks/startup.py --write`, measured separately):", "",
                res["startup"]]
    if res["errors"]:
        out += ["", "## Errors", ""]
        out += [f"- **{e['section']}**: `{e['error']}`" for e in res["errors"]]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- (h)
def _startup_tables() -> str | None:
    """The header line and tables of ``results/startup.md`` (start-up is measured by
    ``startup.py`` in cold processes, apart from this run)."""
    try:
        text = STARTUP_RESULTS.read_text()
    except OSError:
        return None
    body = text.split("\n\n", 1)[1] if "\n\n" in text else text
    return body.split("\n## Reading", 1)[0].replace("\n## ", "\n### ").strip()


# ---------------------------------------------------------------------------- main
def _guarded(res: dict[str, Any], section: str, fn: Callable[[], Any]) -> Any:
    """Run one section; record a crash in ``res['errors']`` and go on with the others."""
    print(f"[{time.strftime('%H:%M:%S')}] {section}", flush=True)
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 — any crash is reported, then exits non-zero
        traceback.print_exc()
        res["errors"].append({"section": section, "error": f"{type(e).__name__}: {e}"})
        return None


def main(argv: list[str] | None = None) -> int:
    """Run every section, write the Markdown and JSON results; 1 if anything crashed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per variant (default 10; 2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="2 seeds and tiny budgets: a smoke run (figures meaningless)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"Markdown file (default {DEFAULT_OUT.relative_to(HERE.parent)}; "
                             "cartpole-quick.md with --quick); JSON goes next to it")
    parser.add_argument("--no-sb3", action="store_true",
                        help="skip (g), the whole-process comparison with SB3 (several minutes)")
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    seeds = args.seeds if args.seeds is not None else budget.seeds
    if seeds < 1:
        parser.error("--seeds must be at least 1")
    out = args.out or DEFAULT_OUT.with_stem("cartpole-quick" if args.quick else "cartpole")

    threads = pgrad.Config().threads
    if threads is not None:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    res: dict[str, Any] = {"header": machine_info(sys.argv if argv is None else
                                                  [sys.argv[0], *argv]),
                           "quick": args.quick, "budget": {**asdict(budget), "seeds": seeds},
                           "errors": [], "variants": {}}

    res["throughput"] = [t for n, steps in budget.throughput_steps.items()
                         if (t := _guarded(res, f"(a) throughput {n} envs",
                                           lambda n=n, steps=steps: throughput(n, steps)))]
    for v in VARIANTS:
        n_seeds = v.seeds or seeds
        res["variants"][v.name] = _guarded(res, f"(b/c) {v.name}, {n_seeds} seeds",
                                           lambda v=v, k=n_seeds: run_variant(v, k)) or {
            "name": v.name, "label": v.label, "kwargs": v.kwargs}
    sps_256 = next((t["steps_per_s"] for t in res["throughput"] if t["num_envs"] == 256), None)
    tut = _guarded(res, "(d) tutorial agent", lambda: tutorial(budget.tutorial_seconds))
    if tut is not None:
        default_runs = res["variants"][VARIANTS[0].name].get("summary")
        tut["budget_seconds"] = budget.tutorial_seconds
        tut["ratio_256"] = sps_256 / tut["steps_per_s"] if sps_256 else None
        tut["ratio_default"] = (default_runs["median_steps_per_s"] / tut["steps_per_s"]
                                if default_runs else None)
        res["tutorial"] = tut
    lim = _guarded(res, "(e) ceiling", lambda: limits.fraction_of_ceiling(
        256, 16_384, steps=budget.throughput_steps[256], repeats=budget.ceiling_repeats,
        threads=threads, scale=budget.limit_scale))
    if lim is not None:
        res["limit"] = lim
    prof = _guarded(res, "(f) profile", lambda: profile(budget.profile_steps))
    if prof is not None:
        res["profile"] = prof
    if not args.no_sb3:
        sbs = _guarded(res, "(g) whole process vs SB3", lambda: sb3_cartpole.side_by_side(
            budget.pgrad_processes, budget.sb3_processes, log=lambda m: print(m, flush=True)))
        if sbs is not None:
            res["sb3"] = sbs
    res["startup"] = _startup_tables()

    res["wall_seconds"] = time.perf_counter() - start
    res["load_avg_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(res))
    out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json').name} in {res['wall_seconds']:.0f} s")
    if res["errors"]:
        print(f"{len(res['errors'])} section(s) crashed: "
              + "; ".join(e["section"] for e in res["errors"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
