"""REINFORCE with a learned baseline: mirrors the tutorial's section "Variance Reduction with a
Baseline".

The tutorial's ``PolicyWithBaseline`` is a shared backbone with a policy head and a value
head V(s); pgrad builds the same network with ``make_policy(..., value_net="shared")``. On a
synthetic 10-step episode (random states, random rewards in [0, 1)), the returns are
normalised as in the tutorial and one update is made with

    A_t = G_t − V(s_t)                 (V detached)
    L   = −mean[log π(a_t|s_t) · A_t] + 0.5 · mean[(V(s_t) − G_t)²]

via ``pgrad.reinforce_loss(log_probs, returns, values, vf_coef=0.5)``. The script prints the
total / policy / value loss, then shows where each term's gradient goes: the policy loss
sends none to the value head (the baseline is detached inside the advantage), and the value
loss none to the policy head; both reach the shared backbone.

Run: ``python examples/04_baseline_update.py``
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import pgrad


def grad_norm(module: nn.Module) -> float:
    """Norm of the module's gradient; 0 when backward never reached it."""
    grads = [p.grad.norm() for p in module.parameters() if p.grad is not None]
    return torch.stack(grads).norm().item() if grads else 0.0


def gradient_flow(policy: pgrad.Policy, term: torch.Tensor) -> dict[str, float]:
    policy.zero_grad(set_to_none=True)
    term.backward(retain_graph=True)
    return {name: grad_norm(getattr(policy, name))
            for name in ("backbone", "logits_head", "value_head")}


def main() -> None:
    torch.manual_seed(42)
    obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
    policy = pgrad.make_policy(obs_space, gym.spaces.Discrete(2), hidden_sizes=(128, 128),
                               value_net="shared")
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-4)

    # A synthetic episode: 10 random states, the policy's actions, random rewards.
    states = torch.randn(10, 4)
    dist, values = policy(states)  # one forward pass: π(·|s) and V(s), both [10]
    actions = dist.sample()
    log_probs = dist.log_prob(actions)
    rewards = torch.rand(10)
    returns = pgrad.discounted_returns(rewards, gamma=0.99, normalize=True)

    print("t  | action | reward | G_t (norm) |   V(s_t) | A_t = G_t - V(s_t)")
    for t in range(10):
        print(f"{t:2d} | {actions[t].item():6d} | {rewards[t].item():6.3f} | "
              f"{returns[t].item():10.4f} | {values[t].item():8.4f} | "
              f"{returns[t].item() - values[t].item():18.4f}")

    losses = pgrad.reinforce_loss(log_probs, returns, values, vf_coef=0.5)
    print(f"\nTotal loss: {losses['loss'].item():.4f}  (policy: {losses['loss_policy'].item():.4f},"
          f" value: {losses['loss_value'].item():.4f})")

    print("\nGradient norm reaching each part of the network:")
    print("term        |  backbone | logits_head | value_head")
    flows = {name: gradient_flow(policy, losses[name]) for name in ("loss_policy", "loss_value")}
    for name, flow in flows.items():
        print(f"{name:11} | {flow['backbone']:9.4f} | {flow['logits_head']:11.4f} | "
              f"{flow['value_head']:10.4f}")
    assert flows["loss_policy"]["value_head"] == 0.0, "policy loss leaked into the value head"
    assert flows["loss_value"]["logits_head"] == 0.0, "value loss leaked into the policy head"
    assert flows["loss_policy"]["backbone"] > 0 and flows["loss_value"]["backbone"] > 0
    print("OK: the policy loss sends no gradient to the value head (V is detached in A_t).")

    # The update itself, as in the tutorial: total loss, clip to 0.5, Adam step.
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), max_norm=0.5)
    optimizer.step()
    with torch.no_grad():
        new_log_probs = policy.distribution(states).log_prob(actions)
        # the same advantages as before the step, so the policy losses are comparable
        adv = pgrad.advantages(returns, values)
        after = pgrad.reinforce_loss(new_log_probs, adv)["loss_policy"]
        value_after = (policy.value(states) - returns).pow(2).mean()
    print(f"\nAfter one Adam step: value loss {losses['loss_value'].item():.4f} -> "
          f"{value_after.item():.4f}, policy loss (same A_t) "
          f"{losses['loss_policy'].item():.4f} -> {after.item():.4f}")


if __name__ == "__main__":
    main()
