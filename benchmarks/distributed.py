"""Data-parallel throughput: CartPole-v1, defaults, 1 vs K processes (gloo, this machine).

    python benchmarks/distributed.py                    # K = 1 and 2, 3 repeats each
    python benchmarks/distributed.py --nprocs 1 2 4 --repeats 1 --steps 300000

Each run is ``torchrun --standalone --nproc-per-node K benchmarks/distributed.py --worker``:
K workers train ``pgrad.Reinforce("CartPole-v1")`` with the default settings for ``--steps``
env steps *in total* (each worker plays 64 envs, 64 whole episodes per update, so one update
learns from 64·K episodes). Rank 0 times every phase of every update —

* rollout: ``collector.collect()`` (env steps + acting), per rank;
* update: ``agent.update`` in full, the all-reduces inside it included;
* grad all-reduce: ``World.average_gradients`` (one all-reduce of every gradient, 9,155
  floats + the sample count for the default network), *waiting for the slowest rank
  included*; norm/stat all-reduces: the advantage normalisation's two and the rollout
  statistics' one (a few float64 each);

— and after training measures the bare cost of those collectives (no waiting: a barrier
first, then 200 back-to-back all-reduces). Results go to ``benchmarks/results/distributed.md``
with the command, machine, versions, date and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------- worker
def _timed(owner: Any, name: str, key: str, totals: dict[str, float],
           counts: dict[str, int]) -> None:
    """Replace ``owner.name`` (an instance attribute) by a wrapper that adds up its time."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - start
            counts[key] += 1

    setattr(owner, name, wrapper)


def worker(steps: int, out: Path, seed: int) -> None:
    import torch
    import torch.distributed as dist

    import pgrad
    from pgrad import distributed

    world = distributed.init("cpu", timeout=120)
    torch.set_num_threads(1)
    agent = pgrad.Reinforce("CartPole-v1", seed=seed)
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    collector = agent.make_collector()
    _timed(collector, "collect", "rollout", totals, counts)
    _timed(agent, "update", "update", totals, counts)
    _timed(agent.world, "average_gradients", "grad_allreduce", totals, counts)
    _timed(agent.world, "normalize", "norm_allreduce", totals, counts)
    _timed(agent.world, "rollout_stats", "stats_allreduce", totals, counts)
    if world.distributed:
        dist.barrier()
    start = time.perf_counter()
    agent.learn(steps, tensorboard=False)
    seconds = time.perf_counter() - start
    result = agent.last_result
    assert result is not None
    agent.close()

    bare: dict[str, float] = {}
    if world.distributed:
        n_params = sum(p.numel() for p in agent.policy.parameters())
        for key, tensor in {"grad": torch.zeros(n_params + 1),
                            "small": torch.zeros(6, dtype=torch.float64)}.items():
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(200):
                dist.all_reduce(tensor)
            bare[key] = (time.perf_counter() - t0) / 200
    if world.is_main:
        updates = result.updates
        out.write_text(json.dumps({
            "nproc": world.size, "steps": result.steps, "seconds": seconds,
            "sps": result.steps / seconds, "updates": updates,
            "return_mean": result.return_mean,
            "per_update_ms": {k: 1e3 * v / updates for k, v in totals.items()},
            "bare_allreduce_us": {k: 1e6 * v for k, v in bare.items()},
            "params": sum(p.numel() for p in agent.policy.parameters()),
        }))
    distributed.shutdown()


# ---------------------------------------------------------------------------- driver
def run_once(nproc: int, steps: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
               "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={nproc}", str(Path(__file__).resolve()), "--worker",
                   "--steps", str(steps), "--seed", str(seed), "--json", str(out)]
        subprocess.run(command, check=True, env=env, timeout=900)
        return json.loads(out.read_text())


def _versions() -> dict[str, Any]:
    from cartpole import machine_info  # the header every benchmark writes

    return machine_info(sys.argv)


def render(info: dict[str, Any], runs: list[dict[str, Any]], steps: int) -> str:
    lines = [
        "# Data-parallel throughput (torch.distributed, gloo, one machine)",
        "",
        f"- command: `{info['command']}`",
        f"- date: {info['date_utc']}",
        f"- machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, "
        f"{info['os']}",
        f"- versions: Python {info['python']}, torch {info['torch']}, Gymnasium "
        f"{info['gymnasium']}, NumPy {info['numpy']}, pgrad {info['pgrad']} (git "
        f"{info['git']})",
        f"- load average (1, 5, 15 min) at start: {info['load_avg_start']}, at end: "
        f"{info['load_avg_end']}",
        "- **the machine was shared** with other jobs while this ran (see the load average):"
        " timings are indicative, not clean",
        f"- each run: CartPole-v1 with its preset (64 envs and 64 whole episodes "
        f"per worker per update, 2×64 MLPs, 1 torch thread per worker), {steps:,} env steps "
        "in total over all workers, seed 0",
        "",
        "| processes | env steps/s (all workers) | updates | rollout ms/update | update "
        "ms/update | of which grad all-reduce | norm + stats all-reduces | bare all-reduce, "
        "grads | bare all-reduce, 6 floats |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        ms = r["per_update_ms"]
        bare = r["bare_allreduce_us"]
        lines.append(
            f"| {r['nproc']} | {r['sps']:,.0f} | {r['updates']} | {ms.get('rollout', 0):.1f} | "
            f"{ms.get('update', 0):.2f} | {ms.get('grad_allreduce', 0):.2f} | "
            f"{ms.get('norm_allreduce', 0) + ms.get('stats_allreduce', 0):.2f} | "
            + (f"{bare['grad']:.0f} µs | {bare['small']:.0f} µs |" if bare else "– | – |"))
    by_k: dict[int, list[float]] = defaultdict(list)
    for r in runs:
        by_k[r["nproc"]].append(r["sps"])
    lines += ["", "Median env steps/s per process count: " + ", ".join(
        f"K = {k}: {sorted(v)[len(v) // 2]:,.0f}" for k, v in sorted(by_k.items())), ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "distributed.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.steps, args.json, args.seed)
        return
    info = _versions()
    runs = []
    for _ in range(args.repeats):  # interleaved, so a burst of load hits every K alike
        for nproc in args.nprocs:
            run = run_once(nproc, args.steps, args.seed)
            print(json.dumps(run), flush=True)
            runs.append(run)
    info["load_avg_end"] = os.getloadavg()
    text = render(info, runs, args.steps)
    analysis = HERE / "results" / "distributed-analysis.md"
    if analysis.exists():
        text += "\n" + analysis.read_text()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    (args.out.with_suffix(".json")).write_text(json.dumps({"info": info, "runs": runs},
                                                          indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
