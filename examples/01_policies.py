"""Sampling from a policy: mirrors the tutorial's section "Policy Network".

The tutorial writes two policies by hand: a softmax (Categorical) policy for discrete
actions, demonstrated with a 4-dim state and 2 actions, and a diagonal Gaussian policy for
continuous actions, demonstrated with an 8-dim state and a 3-dim action ("e.g.,
LunarLanderContinuous"). pgrad builds either one from Gymnasium spaces with
``pgrad.make_policy``; this script samples actions from both and prints, as the tutorial
does, each action with log π(a|s) and π(a|s), then the deterministic action used for
evaluation (argmax for Categorical, the mean for Gaussian).

Run: ``python examples/01_policies.py``
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

import pgrad


def categorical_demo() -> None:
    print("== Categorical policy: obs dim 4, Discrete(2) actions ==")
    obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
    act_space = gym.spaces.Discrete(2)
    torch.manual_seed(42)
    # value_net=None: a plain policy, like the tutorial's (the default adds a V(s) head).
    policy = pgrad.make_policy(obs_space, act_space, hidden_sizes=(128, 128), value_net=None)
    print(f"{type(policy).__name__}, {sum(p.numel() for p in policy.parameters())} parameters")

    state = torch.randn(1, 4)  # pgrad policies take batches: [B, *obs_shape]
    with torch.no_grad():
        for _ in range(5):
            dist = policy.distribution(state)
            action = dist.sample()
            log_prob = dist.log_prob(action)
            print(f"Action: {action.item()}, log π(a|s): {log_prob.item():.4f}, "
                  f"π(a|s): {log_prob.exp().item():.4f}")
        probs = policy.distribution(state).probs.squeeze(0)
        greedy = policy.sample(state, deterministic=True)
    print(f"π(·|s) = {[round(p, 4) for p in probs.tolist()]}")
    print(f"Deterministic action (argmax): {greedy.item()}")
    print(f"As the env takes it (policy.to_env): {int(policy.to_env(greedy)[0])}")


def gaussian_demo() -> None:
    print("\n== Diagonal Gaussian policy: obs dim 8, Box(3,) actions "
          "(like LunarLanderContinuous) ==")
    obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(8,), dtype=np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
    torch.manual_seed(42)
    # state_dependent_std=True is the tutorial's log-std head; the default is a learned
    # state-independent log-std parameter (as in SB3 / CleanRL).
    policy = pgrad.make_policy(obs_space, act_space, hidden_sizes=(128, 128),
                               state_dependent_std=True, value_net=None)
    print(f"{type(policy).__name__}, {sum(p.numel() for p in policy.parameters())} parameters")

    state = torch.randn(1, 8)
    with torch.no_grad():
        dist = policy.distribution(state)
        action = dist.sample()
        log_prob = dist.log_prob(action)  # summed over the 3 action dims
        mean, std = dist.mean.squeeze(0), dist.stddev.squeeze(0)
        greedy = policy.sample(state, deterministic=True)
        greedy_log_prob = dist.log_prob(greedy)
    print(f"Action shape: {tuple(action.squeeze(0).shape)}")
    print(f"Action: {[round(a, 4) for a in action.squeeze(0).tolist()]}")
    print(f"log π(a|s): {log_prob.item():.4f}  (density π(a|s): {log_prob.exp().item():.4f})")
    print(f"mean μ(s): {[round(m, 4) for m in mean.tolist()]}")
    print(f"std σ(s):  {[round(s, 4) for s in std.tolist()]}")
    print(f"Deterministic action (the mean): {[round(a, 4) for a in greedy.squeeze(0).tolist()]}"
          f", log π: {greedy_log_prob.item():.4f}")
    clipped = [round(float(a), 4) for a in policy.to_env(action)[0]]
    print(f"As the env takes it (policy.to_env, clipped to [-1, 1]): {clipped}")


if __name__ == "__main__":
    categorical_demo()
    gaussian_demo()
