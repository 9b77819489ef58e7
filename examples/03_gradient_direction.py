"""Which way does a REINFORCE step push? Mirrors the tutorial's section "REINFORCE Algorithm →
REINFORCE Gradient Update" ("Verify gradient direction: higher return should increase
log_prob").

One update of L = −log π(a|s) · G, with ``pgrad.reinforce_loss``, Adam (lr 3e-4) and the
gradient's norm clipped to 0.5, as in the tutorial. Starting from the same weights and the
same sampled action:

* G = +10 raises π(a|s), the probability of the action that was taken;
* G = −10 lowers it.

One difference from the tutorial's code: it normalises the returns inside the update, and the
(unbiased) std of a single return is NaN, so its loss (and then its weights) become NaN.
``pgrad.normalize`` leaves a single entry unchanged; here the raw return is used, which is
what the check is about.

Run: ``python examples/03_gradient_direction.py``
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import torch

import pgrad


def one_update(policy: pgrad.Policy, state: torch.Tensor, action: torch.Tensor,
               ret: float) -> tuple[float, torch.Tensor]:
    """One REINFORCE step on (state, action, return); returns (loss, π(·|s) after)."""
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-4)
    log_prob = policy.distribution(state).log_prob(action)  # [1], with gradient
    losses = pgrad.reinforce_loss(log_prob, torch.tensor([ret]))
    optimizer.zero_grad()
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), max_norm=0.5)
    optimizer.step()
    with torch.no_grad():
        return losses["loss"].item(), policy.distribution(state).probs.squeeze(0)


def main() -> None:
    torch.manual_seed(42)
    obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
    initial = pgrad.make_policy(obs_space, gym.spaces.Discrete(2), hidden_sizes=(128, 128),
                                value_net=None)
    state = torch.tensor([[0.1, -0.2, 0.3, 0.05]])
    with torch.no_grad():
        action = initial.distribution(state).sample()
        probs_before = initial.distribution(state).probs.squeeze(0)
    a = action.item()
    print(f"state {[round(x, 2) for x in state.squeeze(0).tolist()]}, sampled action a = {a}")

    for ret in (10.0, -10.0):
        policy = copy.deepcopy(initial)  # the same starting weights for both checks
        loss, probs_after = one_update(policy, state, action, ret)
        change = probs_after[a].item() - probs_before[a].item()
        print(f"\nReturn G = {ret:+.1f}")
        print(f"Loss: {loss:.4f}")
        print(f"Probs before update: {[round(p, 6) for p in probs_before.tolist()]}")
        print(f"Probs after  update: {[round(p, 6) for p in probs_after.tolist()]}")
        direction = "raised" if change > 0 else "lowered"
        print(f"π(a={a}|s) {direction} by {abs(change):.6f}")
        expected = 1.0 if ret > 0 else -1.0
        assert change * expected > 0, f"G = {ret} moved π(a|s) the wrong way ({change:+.6f})"
    print("\nOK: a positive return reinforces the taken action, a negative one discourages it.")


if __name__ == "__main__":
    main()
