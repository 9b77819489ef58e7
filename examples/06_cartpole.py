"""The whole API in Stable-Baselines3's shape, on CartPole-v1: the tutorial's section "Full
REINFORCE Agent", as a library.

    agent = pgrad.Reinforce("CartPole-v1", baseline=True, seed=0)   # build
    agent.learn(total_timesteps=..., stop_return=195)                # train
    agent.save(path); agent = pgrad.Reinforce.load(path)             # checkpoint
    action, _ = agent.predict(obs, deterministic=True)               # act
    pgrad.evaluate(agent, episodes=20)                               # evaluate

Training uses pgrad's default settings (``pgrad.Config()``, tuned for CartPole; the script
prints the main ones) and stops early once the mean return of the last 100 training
episodes reaches ``--stop-return`` (195, CartPole-v0's "solved" line; the maximum is 500).
The checkpoint is a single ``.safetensors`` file, written to a temporary folder and deleted
at the end.

Run: ``python examples/06_cartpole.py [--timesteps N] [--stop-return X] [--seed S]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import pgrad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=400_000,
                        help="most training env steps (default 400000)")
    parser.add_argument("--stop-return", type=float, default=195.0,
                        help="stop once the last-100 training return reaches this (default 195)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small MLP: one CPU thread is fastest

    # 1. build and train
    agent = pgrad.Reinforce("CartPole-v1", baseline=True, seed=args.seed)
    cfg = agent.config
    print(f"config: {cfg.num_envs} envs, {cfg.batch_episodes} episodes per update, "
          f"lr {cfg.learning_rate:g}, hidden {cfg.hidden_sizes}, value net {cfg.value_net!r}")
    before = pgrad.evaluate(agent, episodes=20)
    print(f"before training: eval return {before.mean:.1f} ± {before.std:.1f}")
    agent.learn(total_timesteps=args.timesteps, stop_return=args.stop_return,
                tensorboard=False)
    result = agent.last_result
    assert result is not None
    print(f"trained: {result.steps} steps, {result.updates} updates, {result.episodes} "
          f"episodes in {result.seconds:.1f}s ({result.steps / result.seconds:,.0f} steps/s)")
    stop = "reached" if result.reached_stop_return else "not reached"
    print(f"last-100 training return {result.return_mean:.1f} "
          f"(stop_return {args.stop_return:g} {stop})")

    # 2. save and load
    with tempfile.TemporaryDirectory() as tmp:
        path = agent.save(Path(tmp) / "cartpole")
        print(f"saved {path.name} ({path.stat().st_size / 1024:.0f} KiB)")
        loaded = pgrad.Reinforce.load(path)
    print(f"loaded: {type(loaded.policy).__name__}, baseline {loaded.config.baseline}, "
          f"{loaded.num_timesteps} timesteps")

    # 3. predict: one episode by hand, with a plain Gymnasium env
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=args.seed)
    episode_return, done, seen = 0.0, False, [obs]
    while not done:
        action, _ = loaded.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action)
        episode_return += float(reward)
        done = terminated or truncated
        seen.append(obs)
    env.close()
    print(f"one episode with loaded.predict(): return {episode_return:.0f}")
    batch = np.stack(seen[:8])  # predict also takes a batch [B, *obs_shape]
    actions, _ = loaded.predict(batch)
    assert np.array_equal(agent.predict(batch)[0], actions), "load changed the policy"
    print(f"predict on its first 8 observations: {actions.tolist()} "
          "(identical for the original and the loaded agent)")

    # 4. evaluate
    evaluation = pgrad.evaluate(loaded, episodes=20, deterministic=True)
    print(f"after training: eval return {evaluation.mean:.1f} ± {evaluation.std:.1f} over "
          f"{evaluation.episodes} episodes (min {evaluation.returns.min():.0f}, "
          f"max {evaluation.returns.max():.0f})")
    agent.close()


if __name__ == "__main__":
    main()
