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
    action, _ = agent.predict(agent.observation_space.sample())
    assert agent.action_space.contains(action)


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(pgrad.PgradError, match="CUDA is not available"):
        pgrad.Reinforce("CartPole-v1", device="cuda")


@cuda
def test_every_training_option_runs_on_cuda(tmp_path: Path) -> None:
    agent = pgrad.Reinforce("Pendulum-v1", seed=0, device="cuda", num_envs=4,
                            batch_episodes=4, action_bound="tanh", normalize_obs=True,
                            scale_rewards=True, value_steps=3, diagnostics_every=1,
                            discount_policy_gradient=True)
    agent.learn(2_000, run_dir=tmp_path / "run", tensorboard=False)
    loaded = pgrad.Reinforce.load(tmp_path / "run", device="cuda")
    loaded.learn(1_000, run_dir=tmp_path / "run", tensorboard=False)
    assert loaded.num_timesteps > agent.num_timesteps
    assert pgrad.evaluate(loaded, episodes=2).episodes == 2


@cuda
def test_multidiscrete_and_dict_spaces_on_cuda() -> None:
    from conftest import SPACE_ENV_CASES, make_space_env

    for obs_space, action_space in SPACE_ENV_CASES:
        agent = pgrad.Reinforce(lambda o=obs_space, a=action_space: make_space_env(o, a),
                                seed=0, device="cuda", num_envs=2, batch_episodes=2)
        agent.learn(100, tensorboard=False)
        assert action_space.contains(agent.predict(obs_space.sample())[0])
