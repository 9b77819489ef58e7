"""REINFORCE with vs without a baseline on the tutorial's 1-D walk: mirrors the closing
experiment of the tutorial's section "Full REINFORCE Agent".

``pgrad/LineWalk-v0`` is the tutorial's ``SimpleEnv``: a walker starts at x = 0 and steps
±0.1; passing x > 1 pays +1 and ends the episode, passing x < −1 pays −1 and ends it, every
other step pays 0.01, and episodes are cut after 50 steps. So an episode's return tells how
it ended: ≥ 1.1 at the +1 goal, exactly 0.5 at the 50-step time limit, below 0 at the −1 end.

The agent is set up like the tutorial's ``REINFORCEAgent``, every setting spelled out rather
than taken from pgrad's defaults: one episode per update (``num_envs=1, batch_episodes=1``),
Adam with lr 3e-4, γ = 0.99, a 128×128 tanh MLP, the value head on the policy's backbone
(``value_net="shared"``), the gradient clipped to 0.5, value loss weight 0.5, no entropy
bonus, normalised returns (pgrad normalises the advantage G − V; without a baseline that is
the tutorial's return normalisation). The default 20 000 steps are about the tutorial's 400
episodes.

For each setting and seed it prints the mean return of the last 100 training episodes
(``agent.collector.episode_returns``), the fraction of them that reached the +1 goal, and a
deterministic evaluation with ``pgrad.evaluate``. Expect noise: a few seeds are not enough
to rank the two methods, which is why the per-seed rows are shown.

Run: ``python examples/05_linewalk_comparison.py [--seeds N] [--timesteps N]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import pgrad

GOAL = 0.75  # a return above this reached the +1 goal (≥ 1.1); a timeout gives 0.5


def run(baseline: bool, seed: int, timesteps: int, eval_episodes: int) -> dict[str, float]:
    agent = pgrad.Reinforce(pgrad.LINEWALK_ID, baseline=baseline, seed=seed,
                            num_envs=1, batch_episodes=1, learning_rate=3e-4, gamma=0.99,
                            hidden_sizes=(128, 128), activation="tanh", value_net="shared",
                            max_grad_norm=0.5, vf_coef=0.5, ent_coef=0.0,
                            normalize_advantages=True)
    start = time.perf_counter()
    agent.learn(total_timesteps=timesteps, tensorboard=False)
    assert agent.collector is not None and agent.last_result is not None
    last100 = np.array(agent.collector.episode_returns)  # the last 100 training episodes
    result = pgrad.evaluate(agent, episodes=eval_episodes, deterministic=True, seed=seed)
    agent.close()
    return {
        "episodes": agent.last_result.episodes,
        "train_mean": float(last100.mean()),
        "train_goal": float(np.mean(last100 > GOAL)),
        "eval_mean": result.mean,
        "eval_goal": float(np.mean(result.returns > GOAL)),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds per setting (default 2)")
    parser.add_argument("--timesteps", type=int, default=20_000,
                        help="training env steps per run (default 20000, ~400 episodes)")
    parser.add_argument("--eval-episodes", type=int, default=20,
                        help="evaluation episodes per run (default 20)")
    args = parser.parse_args()
    # A small MLP fed one observation at a time: one CPU thread is fastest, and it avoids
    # oversubscribing the cores when other work shares the machine.
    torch.set_num_threads(1)

    print(f"pgrad/LineWalk-v0, {args.timesteps} steps per run, seeds 0..{args.seeds - 1}")
    print("setting       | seed | episodes | last-100 mean | reached +1 | "
          "eval mean | eval +1 | time")
    summary: dict[str, list[dict[str, float]]] = {}
    for baseline in (False, True):
        label = "with baseline" if baseline else "no  baseline "
        for seed in range(args.seeds):
            r = run(baseline, seed, args.timesteps, args.eval_episodes)
            summary.setdefault(label, []).append(r)
            print(f"{label} | {seed:4d} | {r['episodes']:8d} | {r['train_mean']:13.4f} | "
                  f"{r['train_goal']:10.0%} | {r['eval_mean']:9.4f} | {r['eval_goal']:7.0%} | "
                  f"{r['seconds']:4.1f}s", flush=True)

    print()
    for label, runs in summary.items():
        train = np.mean([r["train_mean"] for r in runs])
        goal = np.mean([r["train_goal"] for r in runs])
        ev = np.mean([r["eval_mean"] for r in runs])
        print(f"REINFORCE {label} — last 100-ep avg: {train:.4f}, reached +1: {goal:.0%}, "
              f"eval avg: {ev:.4f}  (mean of {len(runs)} seeds)")


if __name__ == "__main__":
    main()
