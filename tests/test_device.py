"""Training and checkpoints on CUDA (skipped where no GPU is present)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pgrad

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_trains_on_cuda_and_loads_on_cpu(tmp_path: Path) -> None:
    agent = pgrad.Reinforce("CartPole-v1", seed=0, device="cuda", num_envs=8,
                            batch_episodes=8)
    agent.learn(5_000, tensorboard=False)
    assert all(p.device.type == "cuda" for p in agent.policy.parameters())
    path = agent.save(tmp_path / "model.safetensors")
    on_cpu = pgrad.Reinforce.load(path, device="cpu")
    for (name, a), b in zip(agent.policy.state_dict().items(),
                            on_cpu.policy.state_dict().values(), strict=True):
        torch.testing.assert_close(a.cpu(), b, msg=name)
    result = pgrad.evaluate(on_cpu, episodes=4)
    assert result.episodes == 4


@cuda
def test_continuous_policy_on_cuda() -> None:
    agent = pgrad.Reinforce("Pendulum-v1", seed=0, device="cuda", num_envs=4,
                            batch_episodes=4)
    agent.learn(2_000, tensorboard=False)
    action = agent.predict(agent.observation_space.sample())
    assert agent.action_space.contains(action)


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(pgrad.PgradError, match="CUDA is not available"):
        pgrad.Reinforce("CartPole-v1", device="cuda")
