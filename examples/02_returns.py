"""Discounted returns: mirrors the tutorial's section "REINFORCE Algorithm → Computing
Discounted Returns".

Part 1 prints the tutorial's table for its 10-step episode (nine rewards of 0.0, then 1.0,
γ = 0.99): the raw return G_t = R_{t+1} + γ G_{t+1} and the normalised one,
(G − mean G) / (std G + 1e-8), both from ``pgrad.discounted_returns``.

Part 2 goes past the tutorial: a ``[T, N]`` batch of N = 2 parallel environments in which
episodes end in the middle of the batch. The return restarts at every episode end; how it
restarts depends on why the episode ended, as Gymnasium reports it:

* terminated (a true terminal state): nothing follows, G_t = R_{t+1};
* truncated (cut by a time limit, or by the end of the batch): the future is unknown; it is
  0 without a baseline, or estimated as γ V(s_{t+1}) when ``next_values`` is given.

Run: ``python examples/02_returns.py``
"""

from __future__ import annotations

import torch

import pgrad


def tutorial_table() -> None:
    print("== The tutorial's 10-step episode, γ = 0.99 ==")
    rewards = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    returns_raw = pgrad.discounted_returns(rewards, gamma=0.99, normalize=False)
    returns_norm = pgrad.discounted_returns(rewards, gamma=0.99, normalize=True)

    print("t  | reward | G_t (raw) | G_t (normalized)")
    for t, (r, g_raw, g_norm) in enumerate(zip(rewards, returns_raw, returns_norm, strict=True)):
        print(f"{t:2d} | {r.item():6.1f} | {g_raw.item():9.4f} | {g_norm.item():16.4f}")
    mean, std = returns_norm.mean().item(), returns_norm.std().item()
    print(f"normalised: mean {mean:+.4f}, std {std:.4f}")


def batch_table() -> None:
    print("\n== A [T, N] batch: 2 envs, 6 steps, reward 1.0 every step, γ = 0.9 ==")
    gamma = 0.9
    steps, envs = 6, 2
    rewards = torch.ones(steps, envs)
    terminated = torch.zeros(steps, envs, dtype=torch.bool)
    truncated = torch.zeros(steps, envs, dtype=torch.bool)
    terminated[2, 0] = True  # env 0: its episode reaches a terminal state after step 2
    truncated[3, 1] = True  # env 1: its episode is cut by a time limit after step 3
    # V(s_{t+1}) from a (pretend) baseline; only read where an episode is cut: env 1 at
    # t = 3, and both envs at the last row, where the batch ends mid-episode.
    next_values = torch.full((steps, envs), 5.0)

    plain = pgrad.discounted_returns(rewards, gamma, terminated=terminated, truncated=truncated)
    boot = pgrad.discounted_returns(rewards, gamma, terminated=terminated, truncated=truncated,
                                    next_values=next_values)

    def end(t: int, i: int) -> str:
        if terminated[t, i]:
            return "terminated"
        if truncated[t, i]:
            return "truncated"
        return "batch end" if t == steps - 1 else ""

    print("V(s_{t+1}) = 5.0 wherever a baseline is used")
    print("t  | env | reward | episode end | G_t (no baseline) | G_t (bootstrap γV)")
    for i in range(envs):
        for t in range(steps):
            print(f"{t:2d} | {i:3d} | {rewards[t, i].item():6.1f} | {end(t, i):>11} | "
                  f"{plain[t, i].item():17.4f} | {boot[t, i].item():18.4f}")
    print("terminated: G_t = r (no bootstrap, both columns agree);  "
          f"cut: G_t = r + γ·V = 1 + {gamma}·5 = {1 + gamma * 5:.4f}")


if __name__ == "__main__":
    tutorial_table()
    batch_table()
