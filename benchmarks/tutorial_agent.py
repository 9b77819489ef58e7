"""Faithful re-implementation of the tutorial's REINFORCE agent, used as a speed baseline.

The algorithm follows the "Full REINFORCE Agent" tutorial section: a 2x128 tanh
shared backbone, a categorical policy head, an optional value baseline, Adam with
lr 3e-4, gamma 0.99, normalised returns, gradient clipping to 0.5 and exactly one
update per episode, with actions chosen one observation at a time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical


class REINFORCEAgent:
    """Per-episode REINFORCE agent with an optional learned value baseline."""

    def __init__(
        self,
        state_dim: int,
        n_actions: int,
        lr: float = 3e-4,
        gamma: float = 0.99,
        use_baseline: bool = True,
        seed: int = 42,
    ) -> None:
        """Build the networks and the Adam optimiser, seeding torch first."""
        torch.manual_seed(seed)
        self.gamma = gamma
        self.use_baseline = use_baseline
        self.backbone = nn.Sequential(
            nn.Linear(state_dim, 128),
            nn.Tanh(),
            nn.Linear(128, 128),
            nn.Tanh(),
        )
        self.policy_head = nn.Linear(128, n_actions)
        self.value_head: nn.Linear | None = nn.Linear(128, 1) if use_baseline else None
        params = list(self.backbone.parameters()) + list(self.policy_head.parameters())
        if self.value_head is not None:
            params += list(self.value_head.parameters())
        self.optimizer = torch.optim.Adam(params, lr=lr)
        self.ep_log_probs: list[torch.Tensor] = []
        self.ep_values: list[torch.Tensor] = []
        self.ep_rewards: list[float] = []

    def reset_episode(self) -> None:
        """Clear the per-episode buffers."""
        self.ep_log_probs = []
        self.ep_values = []
        self.ep_rewards = []

    def act(self, state: Sequence[float] | np.ndarray) -> int:
        """Sample an action for a single observation and record its log-prob (and value)."""
        s = torch.as_tensor(state, dtype=torch.float32).unsqueeze(0)
        features = self.backbone(s)
        dist = Categorical(logits=self.policy_head(features))
        action = dist.sample()
        self.ep_log_probs.append(dist.log_prob(action).squeeze())
        if self.value_head is not None:
            self.ep_values.append(self.value_head(features).squeeze())
        return int(action.item())

    def store_reward(self, reward: float) -> None:
        """Record the reward received after the last action."""
        self.ep_rewards.append(float(reward))

    def finish_episode(self) -> float:
        """Do one gradient update from the finished episode and return the loss."""
        g = 0.0
        returns: list[float] = []
        for r in reversed(self.ep_rewards):
            g = r + self.gamma * g
            returns.insert(0, g)
        ret = torch.tensor(returns, dtype=torch.float32)
        if len(ret) > 1:
            ret = (ret - ret.mean()) / (ret.std() + 1e-8)

        log_probs = torch.stack(self.ep_log_probs)
        if self.use_baseline:
            values = torch.stack(self.ep_values)
            adv = ret - values.detach()
            loss = -(log_probs * adv).mean() + 0.5 * nn.functional.mse_loss(values, ret)
        else:
            loss = -(log_probs * ret).mean()

        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"], 0.5)
        self.optimizer.step()
        self.reset_episode()
        return float(loss.item())


def run_tutorial_agent(seconds: float, seed: int = 0, baseline: bool = True) -> dict:
    """Train the tutorial agent on CartPole-v1 for a wall-clock budget and report throughput.

    The budget is checked between episodes, so a run overshoots it by at most one
    episode. Returns env_steps, seconds, steps_per_s, episodes and
    last100_return_mean (mean undiscounted return of the last 100 episodes).
    """
    env = gym.make("CartPole-v1")
    agent = REINFORCEAgent(
        int(env.observation_space.shape[0]),
        int(env.action_space.n),
        use_baseline=baseline,
        seed=seed,
    )
    episode_returns: list[float] = []
    env_steps = 0
    reset_seed: int | None = seed
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        obs, _ = env.reset(seed=reset_seed)
        reset_seed = None
        total = 0.0
        done = False
        while not done:
            action = agent.act(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            agent.store_reward(float(reward))
            total += float(reward)
            env_steps += 1
            done = terminated or truncated
        agent.finish_episode()
        episode_returns.append(total)
    elapsed = time.perf_counter() - start
    env.close()
    last = episode_returns[-100:]
    return {
        "env_steps": env_steps,
        "seconds": elapsed,
        "steps_per_s": env_steps / elapsed if elapsed > 0 else 0.0,
        "episodes": len(episode_returns),
        "last100_return_mean": float(np.mean(last)) if last else 0.0,
    }


if __name__ == "__main__":
    print(run_tutorial_agent(10.0))
