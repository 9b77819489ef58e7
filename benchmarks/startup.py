"""Start-up cost of the ``pgrad`` command, phase by phase, each in a fresh interpreter.

``python benchmarks/startup.py`` times (median of ``--repeats`` cold processes):

* ``pgrad --help`` and ``pgrad train --help`` as whole processes (``python -m pgrad``);
* ``pgrad train CartPole-v1 --total-timesteps 1`` as a whole process;
* the phases of that start-up measured inside one process, in the order ``pgrad train``
  meets them: ``import torch``, ``import gymnasium``, the rest of pgrad's imports, making the
  env that probes the spaces, building the policy, constructing pgrad's Adam
  (``pgrad.optim``, which does not import ``torch._dynamo`` as ``torch.optim`` does), the
  TensorBoard writer (import + first event file), and the first batch and update;
* ``pgrad eval`` of a saved CartPole model (one episode) as a whole process;
* what the interpreter's exit costs after ``import torch``: ``python -c "import torch"``
  against the same process ending with ``gc.freeze()``, as the ``pgrad`` command does;
* for reference, what importing ``torch._dynamo`` costs (any ``torch.optim`` optimizer's
  first use and ``torch.func`` import it), in a process that already imported torch.

It writes ``benchmarks/results/startup.md`` (with ``--write``) with the machine, versions,
date and load average; ``--before CHECKOUT`` adds a column timing the whole commands with
pgrad imported from another checkout (``python benchmarks/startup.py --before ../main``).
Each checkout's bytecode is compiled first, as pip does when it installs a package and
Python on a module's first import (unless ``PYTHONDONTWRITEBYTECODE`` is set, as it is on
the VMs these benchmarks ran on: then every process compiles pgrad's source again).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = r'''
import json, sys, tempfile, time
t = [("start", time.perf_counter())]
def mark(name): t.append((name, time.perf_counter()))
import torch; mark("import torch")
import gymnasium as gym; mark("import gymnasium")
import pgrad.agent, pgrad.trainer; mark("import pgrad (agent, trainer)")
from pgrad.envs import make_env
env = make_env("CartPole-v1"); env.close(); mark("make the env (probe spaces)")
from pgrad.policies import make_policy
torch.manual_seed(0); policy = make_policy(env.observation_space, env.action_space)
mark("build the policy")
from pgrad.optim import Adam
Adam(policy.parameters(), lr=1e-2); mark("construct pgrad's Adam")
from torch.utils.tensorboard import SummaryWriter
w = SummaryWriter(tempfile.mkdtemp()); w.add_scalar("x", 1.0, 0); w.close()
mark("TensorBoard writer (import + first event)")
agent = pgrad.agent.Reinforce("CartPole-v1", seed=0)
mark("Reinforce(...) (env, policy)")
agent.learn(1); agent.close(); mark("first batch and update")
dynamo = "torch._dynamo" in sys.modules
import torch._dynamo; mark("(not in pgrad train: import torch._dynamo)")
print(json.dumps([[(b[0], b[1] - a[1]) for a, b in zip(t, t[1:])], dynamo]))
'''


ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], tree: str | None = None) -> float:
    """Seconds ``command`` took (its exit status is not checked: errors are timed too),
    run outside any checkout with pgrad imported from ``tree`` (default: this one)."""
    env = dict(os.environ, PYTHONPATH=str(Path(tree or ROOT).resolve()))
    start = time.perf_counter()
    subprocess.run(command, check=False, capture_output=True, env=env,
                   cwd=tempfile.gettempdir())
    return time.perf_counter() - start


EXIT = {
    "python -c 'import torch'": "import torch",
    "python -c 'import torch' ending with gc.freeze() (as pgrad does)":
        "import torch, gc; gc.freeze()",
}


def compile_bytecode(tree: str | Path) -> None:
    """Write the ``__pycache__`` of ``tree``'s pgrad package (what an installed package has)."""
    if not compileall.compile_dir(str(Path(tree) / "pgrad"), quiet=1):
        raise SystemExit(f"could not compile {tree}/pgrad")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", default=None, metavar="CHECKOUT",
                        help="also time the whole commands with pgrad imported from this "
                        "checkout (e.g. the main branch), for a before/after column")
    parser.add_argument("--write", action="store_true",
                        help="write benchmarks/results/startup.md")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        wholes = {
            "pgrad --help": [py, "-m", "pgrad", "--help"],
            "pgrad train --help": [py, "-m", "pgrad", "train", "--help"],
            "pgrad train --lr -1 (an error)": [py, "-m", "pgrad", "train", "--lr", "-1"],
        }
        train = [py, "-m", "pgrad", "train", "CartPole-v1", "--total-timesteps", "1",
                 "--no-progress"]
        trees = {"now": None, **({"before": args.before} if args.before else {})}
        for tree in trees.values():
            compile_bytecode(tree or ROOT)
        train_name = " ".join(["pgrad", *train[3:]])
        eval_name = "pgrad eval MODEL --episodes 1"
        times: dict[str, dict[str, list[float]]] = {
            name: {column: [] for column in trees} for name in [*wholes, train_name, eval_name]}
        exit_times: dict[str, list[float]] = {name: [] for name in EXIT}
        # Round by round, every command and checkout in turn, so that all columns meet the
        # same machine: a shared VM's speed drifts over minutes.
        for k in range(args.repeats):
            for column, tree in trees.items():
                for name, command in wholes.items():
                    times[name][column].append(timed(command, tree))
                run_dir = Path(tmp) / f"{column}{k}"
                times[train_name][column].append(timed([*train, "--out", str(run_dir)], tree))
                times[eval_name][column].append(timed(
                    [py, "-m", "pgrad", "eval", str(run_dir / "model.safetensors"),
                     "--episodes", "1"], tree))
            for name, code in EXIT.items():
                exit_times[name].append(timed([py, "-c", code]))
        whole = {name: {column: statistics.median(v) for column, v in columns.items()}
                 for name, columns in times.items()}
        exits = {name: statistics.median(v) for name, v in exit_times.items()}
        phases: dict[str, list[float]] = {}
        dynamo = []
        for _ in range(args.repeats):
            out = subprocess.run([py, "-c", PHASES], check=True, capture_output=True,
                                 text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                 cwd=tmp).stdout.strip().splitlines()[-1]
            marks, imported = json.loads(out)
            dynamo.append(imported)
            for name, seconds in marks:
                phases.setdefault(name, []).append(seconds)
    report = _report(whole, {k: statistics.median(v) for k, v in phases.items()}, exits,
                     args.repeats, args.before, any(dynamo))
    print(report)
    if args.write:
        path = Path(__file__).parent / "results" / "startup.md"
        path.write_text(report)
        print(f"written to {path}")


def _report(whole: dict[str, dict[str, float]], phases: dict[str, float],
            exits: dict[str, float], repeats: int, before: str | None, dynamo: bool) -> str:
    import gymnasium
    import torch

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# Start-up of the pgrad command",
        "",
        f"`python benchmarks/startup.py --write` on {time.strftime('%Y-%m-%d %H:%M %Z')}: "
        f"{platform.node()}, {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}, torch {torch.__version__}, gymnasium "
        f"{gymnasium.__version__}; git commit {git_describe()}; load average at the end {load} "
        f"(a shared machine: other jobs were running). Each figure is the median of "
        f"{repeats} cold processes; pgrad's bytecode was compiled beforehand (`__pycache__`, "
        f"as an installed package has it; PYTHONDONTWRITEBYTECODE is "
        f"{'set' if os.environ.get('PYTHONDONTWRITEBYTECODE') else 'not set'} here).",
        "",
        "## Whole processes",
        "",
        *(["| command | seconds |", "|---|---|"] if before is None else
          [f"| command | seconds | before: pgrad from `{before}` ({git_describe(before)}) |",
           "|---|---|---|"]),
        *[f"| `{name}` | " + " | ".join(f"{s:.2f}" for s in cols.values()) + " |"
          for name, cols in whole.items()],
        "",
        "## Phases of `pgrad train` (inside one process, in order)",
        "",
        "| phase | seconds |",
        "|---|---|",
        *[f"| {name} | {s:.2f} |" for name, s in phases.items()],
        "",
        "## The interpreter's exit",
        "",
        "| process | seconds |",
        "|---|---|",
        *[f"| `{name}` | {s:.2f} |" for name, s in exits.items()],
        "",
        "## Reading",
        "",
        f"`import torch` is {_torch_share(phases):.0%} of the phases of `pgrad train`; "
        f"`torch._dynamo` was {'' if dynamo else 'not '}imported by them. "
        "Importing `torch._dynamo` (the last phase, timed apart) is what constructing any "
        "`torch.optim` optimizer costs, and `torch.func`'s transforms: pgrad uses neither "
        "(`pgrad.optim.Adam` is torch's Adam op for op, with its `state_dict` layout; the "
        "per-episode gradient diagnostics take one backward pass per episode), and the "
        "agent builds its optimizer only when it trains, so `pgrad eval` builds none. "
        "The command parses and checks its arguments before importing torch or gymnasium "
        "(`pgrad --help` and argument errors), `import pgrad` is lazy (PEP 562), and the "
        "TensorBoard writer is imported only when a run writes TensorBoard files "
        "(`--no-tensorboard` skips it). pgrad does not patch torch.",
        "",
        f"At exit the interpreter runs a full garbage collection over every object alive, "
        f"most of them torch's: {_exit_cost(exits):.2f} s after `import torch` alone (the "
        "exit table). The `pgrad` command (the console script and `python -m pgrad`) calls "
        "`gc.freeze()` once the command is done, which takes those objects out of the "
        "collector's reach; a program that calls `pgrad.tools.cli.main()` itself is left "
        f"alone.{_before_sentence(whole, before)}",
        "",
    ]
    return "\n".join(lines)


def _before_sentence(whole: dict[str, dict[str, float]], before: str | None) -> str:
    if before is None:
        return ""
    saved = [(name, cols["before"] - cols["now"]) for name, cols in whole.items()
             if name.startswith(("pgrad train CartPole", "pgrad eval"))]
    return (" Before − now, from the *before* column of the same run: "
            + "; ".join(f"`{name}` {s:.2f} s" for name, s in saved) + ".")


def _exit_cost(exits: dict[str, float]) -> float:
    plain, frozen = exits.values()
    return plain - frozen


def _torch_share(phases: dict[str, float]) -> float:
    own = {name: s for name, s in phases.items() if not name.startswith("(not in")}
    return own.get("import torch", 0.0) / max(sum(own.values()), 1e-9)


def git_describe(tree: str | Path | None = None) -> str:
    """``git describe`` of the checkout at ``tree`` (default: this one)."""
    proc = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                          text=True, check=False, cwd=tree or Path(__file__).parent)
    return proc.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
