"""CartPole-v1 tuning grid of pgrad, and what ``torch.compile`` does to its policy.

    python benchmarks/tune_cartpole.py [--seeds 5] [--no-compile] [--out PATH.md]

Part 1 trains every row of ``GRID`` over S seeds,
``pgrad.Reinforce("CartPole-v1", seed=s, **settings).learn(budget, stop_return=475)``, then
evaluates each agent (100 deterministic episodes), and tabulates solved k/S and the median
and range of env steps and seconds to solve. Part 2 (``--compile``, on by default) times
``torch.compile`` on the default policy: compile cost, steady-state µs per ``policy.sample``
and per update, compiled vs eager, and whether it pays back within one default training
run. Results: ``benchmarks/results/tuning.md`` and ``tuning.json`` (raw numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import limits
import numpy as np
import torch
from cartpole import (
    ENV_ID,
    EVAL_EPISODES,
    HERE,
    SOLVE_RETURN,
    _config_diff,
    _guarded,
    _n,
    _range,
    _table,
    check,
    machine_info,
    seed_all,
    summarize,
)

import pgrad

DEFAULT_OUT = HERE / "results" / "tuning.md"


@dataclass(frozen=True)
class Setting:
    """One row of the grid: settings over the defaults, and the step budget per seed."""

    name: str
    why: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    budget: int = 1_000_000


# Settings tried by hand while tuning the defaults; the first row is the defaults.
GRID: tuple[Setting, ...] = (
    Setting("default", "the current defaults (Monte-Carlo, separate value MLP)"),
    Setting("width-128", "the tutorial's width", {"hidden_sizes": (128, 128)}),
    Setting("shared", "the tutorial's shared backbone", {"value_net": "shared"}, 600_000),
    Setting("lr-3e-3", "lower learning rate", {"learning_rate": 3e-3}),
    Setting("lr-3e-4", "the tutorial's learning rate", {"learning_rate": 3e-4}, 600_000),
    Setting("envs-32", "smaller batches", {"num_envs": 32, "batch_episodes": 32}),
    Setting("envs-128", "larger batches", {"num_envs": 128, "batch_episodes": 128}),
    Setting("no-norm", "raw advantages", {"normalize_advantages": False}),
    Setting("no-baseline", "no value baseline (normalised returns)", {"baseline": False}),
    Setting("n-step", "n-step actor-critic, bootstrapped", {"n_steps": 16, "num_envs": 128}),
    # Around CartPole's preset of 2026-12-03 (2×32 at 2e-2; docs/presets.md).
    Setting("previous", "the preset until 2026-12-03: 2×64 at 1e-2",
            {"hidden_sizes": (64, 64), "learning_rate": 1e-2}),
    Setting("width-64", "2×64 at the preset's 2e-2", {"hidden_sizes": (64, 64)}),
    Setting("lr-1e-2", "2×32 at 1e-2", {"learning_rate": 1e-2}),
    Setting("lr-1.5e-2", "2×32 at 1.5e-2", {"learning_rate": 1.5e-2}),
    Setting("lr-3e-2", "2×32 at 3e-2", {"learning_rate": 3e-2}),
    Setting("width-16", "2×16 at 3e-2", {"hidden_sizes": (16, 16), "learning_rate": 3e-2}),
)


# ---------------------------------------------------------------------------- part 1: grid
def solve(setting: Setting, seed: int) -> dict[str, Any]:
    """Train one seed until the last 100 training episodes average ≥ 475, then evaluate."""
    seed_all(seed)
    agent = pgrad.Reinforce(ENV_ID, seed=seed, **setting.kwargs)
    agent.learn(setting.budget, stop_return=SOLVE_RETURN, tensorboard=False)
    r = agent.last_result
    assert r is not None
    ev = pgrad.evaluate(agent, episodes=EVAL_EPISODES)
    agent.close()
    check(ev.episodes == EVAL_EPISODES, f"evaluation played {ev.episodes} episodes")
    check(r.reached_stop_return or r.steps >= setting.budget, f"stopped early after {r.steps}")
    return {"seed": seed, "solved": r.reached_stop_return, "steps": r.steps,
            "seconds": r.seconds, "steps_per_s": r.steps / r.seconds, "updates": r.updates,
            "train_return": r.return_mean, "eval_mean": ev.mean, "eval_std": ev.std}


def run_setting(setting: Setting, seeds: int) -> dict[str, Any]:
    """All seeds of one setting, with the 1-minute load average when it started."""
    load = os.getloadavg()[0]
    runs = []
    for seed in range(seeds):
        runs.append(r := solve(setting, seed))
        print(f"  {setting.name} seed {seed}: solved={r['solved']} steps={r['steps']} "
              f"{r['seconds']:.2f}s eval={r['eval_mean']:.1f}", flush=True)
    return {"name": setting.name, "why": setting.why, "kwargs": setting.kwargs,
            "budget": setting.budget, "load_1min": load, "runs": runs,
            "summary": summarize(runs)}


# ---------------------------------------------------------------------------- part 2: compile
def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _update_step(policy: pgrad.Policy, evaluate: Callable[..., Any], batch: int,
                 config: pgrad.Config) -> Callable[[], None]:
    """One update as ``Reinforce.update`` does it, on random data of ``batch`` samples."""
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    gen = torch.Generator().manual_seed(batch)
    obs = 0.05 * torch.randn(batch, policy.obs_dim, generator=gen)
    actions = torch.randint(0, 2, (batch,), generator=gen)
    returns = 50 * torch.rand(batch, generator=gen)

    def step() -> None:
        log_probs, entropy, values = evaluate(obs, actions)
        loss = pgrad.reinforce_loss(log_probs, returns, values, entropy, vf_coef=config.vf_coef,
                                    normalize_advantages=config.normalize_advantages)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm or 1e9)
        optimizer.step()

    return step


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"


def _graphs() -> int:
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def _compiled_agent(seed: int) -> pgrad.Reinforce:
    """A default agent whose ``policy.sample`` and ``policy.evaluate_actions`` are compiled
    (observations passed as tensors: see the NumPy finding)."""
    agent = pgrad.Reinforce(ENV_ID, seed=seed)
    policy = agent.policy
    sample = torch.compile(policy.sample)

    def tensor_sample(obs: Any, deterministic: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        return sample(torch.as_tensor(obs), deterministic, generator)

    policy.sample = tensor_sample  # type: ignore[method-assign]
    policy.evaluate_actions = torch.compile(policy.evaluate_actions)  # type: ignore[method-assign]
    return agent


def _counted_run(agent: pgrad.Reinforce) -> dict[str, Any]:
    """Learn to 475 and count the rollout's ``sample`` calls and the update samples."""
    policy, calls, rows, samples = agent.policy, [0], [0], [0]
    sample, update = policy.sample, agent.update

    def counting_sample(obs: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        calls[0] += 1
        rows[0] += len(obs)
        return sample(obs, *args, **kwargs)

    def counting_update(batch: Any) -> dict[str, float]:
        samples[0] += batch.num_steps
        return update(batch)

    policy.sample = counting_sample  # type: ignore[method-assign]
    agent.update = counting_update  # type: ignore[method-assign]
    agent.learn(1_000_000, stop_return=SOLVE_RETURN, tensorboard=False)
    agent.close()
    r = agent.last_result
    assert r is not None
    return {"seconds": r.seconds, "steps": r.steps, "solved": r.reached_stop_return,
            "updates": r.updates, "sample_calls": calls[0],
            "mean_sample_batch": rows[0] / max(calls[0], 1), "update_samples": samples[0]}


def compile_check(seed: int = 0) -> dict[str, Any]:
    """Compile cost, steady-state cost and payback of ``torch.compile`` on the default policy.

    Runs in a fresh inductor cache directory, so the first compile is a cold one.
    """
    config = limits.cartpole_config()
    out: dict[str, Any] = {"torch": torch.__version__, "mode": "default"}
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache, limits.torch_threads(1):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        try:
            eager = limits.make_default_policy(config, seed)
            compiled = limits.make_default_policy(config, seed)
            gen = torch.Generator().manual_seed(seed)
            obs = (0.05 * np.random.default_rng(seed).standard_normal((256, 4))).astype(
                np.float32)
            c_sample = torch.compile(compiled.sample)
            acts: dict[str, Callable[[np.ndarray], Any]] = {
                "eager": lambda o: eager.sample(o, generator=gen),
                "compiled": lambda o: c_sample(torch.from_numpy(o), generator=gen)}
            with torch.inference_mode():   # as the rollout acts
                graphs = _graphs()
                out["act_compile_s"] = _timed(lambda: acts["compiled"](obs[:64]))
                out["act_recompile_s"] = _timed(lambda: acts["compiled"](obs[:17]))
                out["act_third_shape_s"] = _timed(lambda: acts["compiled"](obs[:5]))
                out["act_graphs"] = _graphs() - graphs
                for b in (64, 256):
                    for kind, act in acts.items():
                        out[f"act_{b}_{kind}_us"] = 1e6 * limits._time_per_call(
                            lambda act=act, b=b: act(obs[:b]), 2_000, 50, 5)
                try:   # exactly as the rollout calls it: NumPy observations
                    torch.compile(compiled.sample)(obs[:64], generator=gen)
                    out["act_numpy"] = "works"
                except Exception as e:  # noqa: BLE001 — reported, not fatal
                    out["act_numpy"] = _error(e)
            c_eval = torch.compile(compiled.evaluate_actions)
            graphs = _graphs()
            out["update_compile_s"] = _timed(_update_step(compiled, c_eval, 16_384, config))
            out["update_recompile_s"] = _timed(_update_step(compiled, c_eval, 15_000, config))
            out["update_graphs"] = _graphs() - graphs
            for kind, pol, ev in (("eager", eager, eager.evaluate_actions),
                                  ("compiled", compiled, c_eval)):
                out[f"update_16k_{kind}_us"] = 1e6 * limits._time_per_call(
                    _update_step(pol, ev, 16_384, config), 30, 2, 5)
            probe = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh())
            probe.compile()
            graphs = _graphs()
            probe(torch.zeros(3, 4))
            out["module_compile_graphs"] = _graphs() - graphs

            out["eager_run"] = _counted_run(pgrad.Reinforce(ENV_ID, seed=seed))
            try:
                out["compiled_run"] = _counted_run(_compiled_agent(seed))
            except Exception as e:  # noqa: BLE001
                out["compiled_run"] = {"error": _error(e)}
        finally:
            torch._dynamo.reset()
            if previous is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous
    run = out["eager_run"]
    out["compile_cost_s"] = (out["act_compile_s"] + out["act_recompile_s"]
                             + out["update_compile_s"] + out["update_recompile_s"])
    out["saved_per_run_s"] = 1e-6 * (
        run["sample_calls"] * (out["act_64_eager_us"] - out["act_64_compiled_us"])
        + run["update_samples"] / 16_384
        * (out["update_16k_eager_us"] - out["update_16k_compiled_us"]))
    return out


# ---------------------------------------------------------------------------- report
def _header(res: dict[str, Any]) -> list[str]:
    h = res["header"]
    load = ", ".join(f"{x:.2f}" for x in h["load_avg_start"])
    end = ", ".join(f"{x:.2f}" for x in res["load_avg_end"])
    return [
        f"Command: `{h['command']}`  ",
        f"Date: {h['date_utc']}; wall time of the whole run: {res['wall_seconds']:.0f} s  ",
        f"Machine: {h['cpu']}, {h['cores']} cores, {h['ram_gib']} GiB RAM, {h['os']}  ",
        f"Versions: Python {h['python']}, torch {h['torch']}, gymnasium {h['gymnasium']}, "
        f"numpy {h['numpy']}, pgrad {h['pgrad']} (git {h['git']})  ",
        f"Torch threads: {h['torch_threads']}; single process; every run seeded.  ",
        f"Load average (1, 5, 15 min) at start: {load}; at end: {end} (above ~1 on this "
        "2-core machine means other processes shared the cores: seconds are then inflated).",
    ]


def _grid_section(res: dict[str, Any]) -> list[str]:
    rows, seeds_rows = [], []
    for g in res["grid"].values():
        if "runs" not in g:
            continue
        s = g["summary"]
        failed = [r["train_return"] for r in g["runs"] if not r["solved"]]
        rows.append([g["name"], _config_diff(g["kwargs"]), g["why"], f"{g['budget']:,}",
                     f"**{s['solved']}/{s['seeds']}**", _range(s["steps"]),
                     _range(s["seconds"], 2), _n(s["median_steps_per_s"]),
                     _n(s["eval_mean_median"], 1),
                     ", ".join(f"{x:.0f}" for x in failed) or "–", f"{g['load_1min']:.2f}"])
        seeds_rows.append([g["name"]] + [
            f"{r['seconds']:.2f} s" if r["solved"] else f"**no** ({r['train_return']:.0f})"
            for r in g["runs"]])
    n_seeds = max((len(r) - 1 for r in seeds_rows), default=0)
    return [
        "## Part 1: the tuning grid", "",
        f"`pgrad.Reinforce(\"CartPole-v1\", seed=s, **settings).learn(budget, "
        f"stop_return={SOLVE_RETURN:.0f}, tensorboard=False)` for s = 0 … S−1, then "
        f"`pgrad.evaluate(agent, episodes={EVAL_EPISODES})` (deterministic). Solved: the "
        "last 100 training episodes average ≥ 475 within the budget. Steps and seconds: "
        "median (min – max) over the solved seeds; seconds include building the vector env. "
        "*unsolved: final return*: the training return the unsolved seeds ended at. "
        "*load*: 1-minute load average when the row started.", "",
        _table(["setting", "settings", "why tried", "budget (steps)", "solved",
                "steps to solve", "seconds to solve", "median steps/s", "median eval mean",
                "unsolved: final return", "load"], rows), "",
        "Per seed (seconds to solve, or the final training return):", "",
        _table(["setting", *(f"seed {i}" for i in range(n_seeds))], seeds_rows),
    ]


def _compile_section(c: dict[str, Any]) -> list[str]:
    if "error" in c:
        return ["## Part 2: torch.compile", "", f"torch.compile failed: `{c['error']}`"]
    run, comp = c["eager_run"], c["compiled_run"]
    pays = c["saved_per_run_s"] > c["compile_cost_s"]
    e2e = ("failed: `" + comp["error"] + "`" if "error" in comp else
           f"{comp['seconds']:.2f} s ({comp['steps']:,} steps, solved={comp['solved']}) "
           f"vs {run['seconds']:.2f} s eager ({run['steps']:,} steps)")
    return [
        "## Part 2: torch.compile on the default policy", "",
        f"torch {c['torch']}, `torch.compile` mode default, 1 thread, a fresh (cold) inductor "
        "cache. Acting: `torch.compile(policy.sample)` under `inference_mode` with the "
        "rollout's generator, fed `torch.from_numpy(obs)`. Update: "
        "`torch.compile(policy.evaluate_actions)`, then `reinforce_loss`, backward, "
        "`clip_grad_norm_` and Adam eagerly, on 16,384 samples. Steady state: median of 5 "
        "chunks after warm-up.", "",
        _table(["", "eager", "compiled", "first call (compile)",
                "first call at a new batch size (recompile)"],
               [["`policy.sample`, batch 64", f"{c['act_64_eager_us']:.1f} µs",
                 f"{c['act_64_compiled_us']:.1f} µs", f"{c['act_compile_s']:.2f} s",
                 f"{c['act_recompile_s']:.2f} s (batch 17; batch 5 then "
                 f"{c['act_third_shape_s']:.3f} s)"],
                ["`policy.sample`, batch 256", f"{c['act_256_eager_us']:.1f} µs",
                 f"{c['act_256_compiled_us']:.1f} µs", "–", "–"],
                ["update, 16,384 samples", f"{c['update_16k_eager_us'] / 1e3:.2f} ms",
                 f"{c['update_16k_compiled_us'] / 1e3:.2f} ms",
                 f"{c['update_compile_s']:.2f} s",
                 f"{c['update_recompile_s']:.2f} s (15,000 samples)"]]), "",
        f"- Graphs compiled: {c['act_graphs']} for acting, {c['update_graphs']} for the "
        "update, static for the first batch size, dynamic from the second (the generator "
        "argument of `exponential_` is a graph break: the network is compiled, the Gumbel "
        "draw runs eagerly). Batch sizes vary in training (whole-episode batches act only "
        "for the still-counted envs at the end, and every update has its own number of "
        "samples), so a run always pays the recompile. The first compile in a process also "
        "pays inductor's start-up.",
        f"- `torch.compile(policy.sample)` called exactly as the rollout calls it (NumPy "
        f"observations, `inference_mode`): {c['act_numpy']}.",
        f"- `nn.Module.compile()` (in place) on a small MLP captured "
        f"{c['module_compile_graphs']} graph(s) on its first call.",
        f"- A default training run (seed 0, eager): {run['seconds']:.2f} s, "
        f"{run['sample_calls']:,} `sample` calls (mean batch {run['mean_sample_batch']:.1f}), "
        f"{run['updates']} updates of {run['update_samples']:,} samples in all.",
        f"- **Payback**: compile cost {c['compile_cost_s']:.1f} s (first calls + one "
        f"recompile each) against an estimated saving of {c['saved_per_run_s']:+.2f} s per "
        f"default run (calls × µs saved at batch 64, samples × µs saved per update sample): "
        f"{'pays back' if pays else '**does not pay back**'} within a default run.",
        f"- End to end, the same seed with both compiled (after the measurements above, so "
        f"the compile cache is warm: a lower bound on a fresh run's cost): {e2e}.",
    ]


def render(res: dict[str, Any]) -> str:
    """The Markdown results file."""
    out = ["# pgrad CartPole-v1 tuning grid and torch.compile", "", *_header(res), "",
           *_grid_section(res)]
    if "compile" in res:
        out += ["", *_compile_section(res["compile"])]
    if res["errors"]:
        out += ["", "## Errors", ""]
        out += [f"- **{e['section']}**: `{e['error']}`" for e in res["errors"]]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the grid (and the compile check), write Markdown and JSON; 1 if anything crashed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per setting (default 5)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure torch.compile on the policy (default on)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=[g.name for g in GRID],
                        help="run only these rows of the grid")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="Markdown file (default benchmarks/results/tuning.md); JSON "
                             "goes next to it")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    threads = pgrad.Config().threads
    if threads is not None:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    res: dict[str, Any] = {
        "header": machine_info(sys.argv if argv is None else [sys.argv[0], *argv]),
        "seeds": args.seeds, "errors": [], "grid": {}}
    for g in GRID:
        if args.only and g.name not in args.only:
            continue
        res["grid"][g.name] = _guarded(res, f"{g.name}, {args.seeds} seeds",
                                       lambda g=g: run_setting(g, args.seeds)) or {}
    if args.compile:
        res["compile"] = _guarded(res, "torch.compile", compile_check) or {
            "error": res["errors"][-1]["error"]}
    res["wall_seconds"] = time.perf_counter() - start
    res["load_avg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(res))
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.json').name} "
          f"in {res['wall_seconds']:.0f} s")
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
