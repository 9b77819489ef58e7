"""How a LunarLander-v3 policy ends its episodes: landed and at rest, crashed, or cut.

Trains ``pgrad.Reinforce("LunarLander-v3", seed=s)`` (its preset) for ``--steps`` env steps,
then plays ``--episodes`` deterministic episodes (seeds 1,000,000 + i, as the suite's
evaluation) and records, per episode, the return, the length, how it ended (terminated with
+100 = at rest, terminated with -100 = crashed, truncated at the 1000-step limit), which legs
touch the ground at the end, and the actions of its last 100 steps. Written to
``benchmarks/results/lunarlander-episodes.md``::

    python benchmarks/lunarlander_episodes.py --seeds 1 3 6 --steps 2000000

It shows how the suite's failing LunarLander seeds end (rocking on one leg, crashing, hovering).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from cartpole import _table, machine_info, seed_all

import pgrad

RESULTS = Path(__file__).resolve().parent / "results"
ENV_ID = "LunarLander-v3"
ACTIONS = ("noop", "left engine", "main engine", "right engine")
EVAL_SEED_OFFSET = 1_000_000


def play(agent: pgrad.Reinforce, episodes: int) -> list[dict[str, Any]]:
    """Deterministic episodes of ``agent``'s policy, one record each."""
    env = gym.make(ENV_ID)
    records = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=EVAL_SEED_OFFSET + i)
            total, actions = 0.0, []
            while True:
                with torch.no_grad():
                    action = int(agent.policy.deterministic_action(
                        torch.as_tensor(obs[None], dtype=torch.float32))[0])
                actions.append(action)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                if terminated or truncated:
                    break
            end = ("cut at the limit" if truncated else
                   "at rest (+100)" if reward == 100 else
                   "crashed (-100)" if reward == -100 else "terminated")
            records.append({"return": total, "length": len(actions), "end": end,
                            "legs": int(obs[6]) + int(obs[7]),
                            "last_100": np.bincount(actions[-100:], minlength=4).tolist()})
    finally:
        env.close()
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS / "lunarlander-episodes.md")
    args = parser.parse_args(argv)
    info = machine_info([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    lines = ["# How LunarLander-v3 episodes end", "",
             f"Command: `{info['command']}`  ", f"Date: {info['date_utc']}  ",
             f"Machine: {info['cpu']}, {info['cores']} cores; torch {info['torch']}, "
             f"gymnasium {info['gymnasium']}, pgrad {info['pgrad']} (git {info['git']})", "",
             f"Each seed: `pgrad.Reinforce('{ENV_ID}', seed=s)` (its preset) trained for "
             f"{args.steps:,} env steps, then {args.episodes} deterministic episodes. 'last "
             "100 steps' counts the actions of each episode's last 100 steps "
             f"({', '.join(ACTIONS)}).", ""]
    for seed in args.seeds:
        seed_all(seed)
        agent = pgrad.Reinforce(ENV_ID, seed=seed)
        agent.learn(args.steps, tensorboard=False)
        records = play(agent, args.episodes)
        agent.close()
        ends = {e: sum(r["end"] == e for r in records) for e in sorted({r["end"] for r in records})}
        mean = float(np.mean([r["return"] for r in records]))
        print(f"seed {seed}: mean {mean:.1f}, {ends}", flush=True)
        lines += [f"## Seed {seed}: mean return {mean:.1f}; "
                  + ", ".join(f"{n} {e}" for e, n in ends.items()), "",
                  _table(["episode", "return", "length", "end", "legs down", "last 100 steps"],
                         [[str(i), f"{r['return']:.1f}", str(r["length"]), r["end"],
                           str(r["legs"]), " / ".join(map(str, r["last_100"]))]
                          for i, r in enumerate(records)]), ""]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
