"""Deploy a trained policy without pgrad or torch: export it to ONNX, run it with onnxruntime.

The step after the tutorial's "Full REINFORCE Agent": the agent trained there is exported
as one file (observation normalisation, the deterministic action and the action bounds
inside it), and ``deploy`` plays CartPole-v1 with numpy, onnxruntime and gymnasium only.

Run: python examples/07_export.py [--timesteps N]   (needs pip install "pgrad[export]")
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def deploy(model_path: str, seed: int = 0) -> tuple[float, list, list]:
    """One episode with the exported policy: numpy, onnxruntime and gymnasium only."""
    import gymnasium as gym
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    total, done, seen, actions = 0.0, False, [], []
    while not done:
        action = session.run(None, {"obs": np.asarray(obs, np.float32)[None]})[0][0]
        seen.append(obs)
        actions.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        total, done = total + float(reward), terminated or truncated
    return total, seen, actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=300_000)
    args = parser.parse_args()

    # 1. train and export (with pgrad)
    import numpy as np

    import pgrad

    agent = pgrad.Reinforce("CartPole-v1", seed=0)
    agent.learn(args.timesteps, stop_return=475, tensorboard=False)
    print(f"trained {agent.num_timesteps} steps; mean return of the last 100 training "
          f"episodes {np.mean(agent.episode_returns):.1f}")
    agent.close()
    with tempfile.TemporaryDirectory() as tmp:
        path = agent.export(Path(tmp) / "cartpole.onnx")
        print(f"exported {path.name} ({path.stat().st_size / 1024:.0f} KiB)")

        # 2. deploy (no pgrad, no torch)
        episode_return, seen, actions = deploy(str(path))
        print(f"deployed with onnxruntime: one episode, return {episode_return:.0f}")

        import onnxruntime as ort

        meta = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
        print(f"metadata: pgrad {meta['pgrad_version']}, {meta['env_id']}, {meta['input']} "
              f"-> {meta['output']}")

    # 3. the exported file acts as agent.predict does
    expected, _ = agent.predict(np.stack(seen), deterministic=True)
    assert np.array_equal(expected, np.array(actions)), "the export changed the policy"
    print(f"identical to agent.predict on all {len(actions)} steps")


if __name__ == "__main__":
    main()
