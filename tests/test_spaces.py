"""Every supported space trains and evaluates; Gaussian action bounds keep log-probs exact."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

import pgrad
from pgrad.encoders import ImageEncoder
from pgrad.policies import BernoulliPolicy, MultiCategoricalPolicy, make_policy

BOX_OBS = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)


class SpaceEnv(gym.Env):
    """A 10-step episode in the given spaces; reward 1 when the first action entry is its
    space's low end (so there is something to learn); records the actions it receives."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.received: list[Any] = []
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        self.received.append(np.array(action, copy=True))
        self.t += 1
        first = np.asarray(action).ravel()[0] if np.ndim(action) else action
        reward = float(first == 0)
        return self.observation_space.sample(), reward, False, self.t >= 10, {}


SPACES = {
    "discrete-obs": (gym.spaces.Discrete(5, start=-2), gym.spaces.Discrete(3)),
    "multidiscrete-obs": (gym.spaces.MultiDiscrete([3, 4]), gym.spaces.Discrete(2)),
    "multibinary-obs": (gym.spaces.MultiBinary(4), gym.spaces.Discrete(2)),
    "dict-obs": (gym.spaces.Dict({"pos": BOX_OBS, "mode": gym.spaces.Discrete(3)}),
                 gym.spaces.Discrete(2)),
    "tuple-obs": (gym.spaces.Tuple((BOX_OBS, gym.spaces.MultiBinary(2))),
                  gym.spaces.Discrete(2)),
    "multidiscrete-action": (BOX_OBS, gym.spaces.MultiDiscrete([2, 3, 4], start=[1, 0, -1])),
    "multibinary-action": (BOX_OBS, gym.spaces.MultiBinary(3)),
    "box-action-clip": (BOX_OBS, gym.spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32)),
    "box-action-2d": (BOX_OBS, gym.spaces.Box(-1.0, 1.0, shape=(2, 2), dtype=np.float32)),
    "uint8-image-obs": (gym.spaces.Box(0, 255, shape=(2, 9, 8), dtype=np.uint8),
                        gym.spaces.Discrete(2)),
    "bool-image-obs": (gym.spaces.Box(0, 1, shape=(10, 10, 3), dtype=np.bool_),
                       gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)),
}


@pytest.mark.parametrize("name", list(SPACES))
def test_every_supported_space_trains_saves_and_evaluates(name: str, tmp_path: Path) -> None:
    obs_space, action_space = SPACES[name]
    agent = pgrad.Reinforce(lambda: SpaceEnv(obs_space, action_space), seed=0, num_envs=4,
                            batch_episodes=4, hidden_sizes=(16,))
    agent.learn(200, tensorboard=False)
    assert agent.num_updates >= 1
    assert ("image" in name) == isinstance(agent.policy.encoder, ImageEncoder)
    loaded = pgrad.Reinforce.load(agent.save(tmp_path / "m.safetensors"),
                                  env=lambda: SpaceEnv(obs_space, action_space))
    assert loaded.observation_space == obs_space and loaded.action_space == action_space
    obs = obs_space.sample()
    action, state = loaded.predict(obs)
    assert action_space.contains(action) and state is None
    np.testing.assert_array_equal(action, agent.predict(obs)[0])
    result = pgrad.evaluate(loaded, episodes=3)
    assert result.episodes == 3


def test_tanh_bound_trains_on_a_box_action() -> None:
    space = gym.spaces.Box(np.array([-2.0, 0.0], dtype=np.float32),
                           np.array([2.0, 5.0], dtype=np.float32))
    agent = pgrad.Reinforce(lambda: SpaceEnv(BOX_OBS, space), seed=0, num_envs=2,
                            batch_episodes=2, action_bound="tanh")
    agent.learn(100, tensorboard=False)
    assert space.contains(agent.predict(BOX_OBS.sample())[0])


def test_multidiscrete_action_offsets_reach_the_env() -> None:
    space = gym.spaces.MultiDiscrete([2, 3], start=[5, -1])
    policy = make_policy(BOX_OBS, space)
    assert isinstance(policy, MultiCategoricalPolicy)
    with torch.no_grad():
        dist = policy.distribution(torch.zeros(500, 3))
        actions = dist.sample()
        log_probs = dist.log_prob(actions)
    env_actions = policy.to_env(actions)
    assert all(space.contains(a) for a in env_actions)
    assert set(env_actions[:, 1].tolist()) == {-1, 0, 1}
    assert log_probs.shape == (500,)
    # Near-uniform at initialisation: log π ≈ log(1/2 · 1/3).
    assert log_probs.mean().item() == pytest.approx(math.log(1 / 6), abs=0.01)


def test_multibinary_log_prob_and_entropy_sum_over_bits() -> None:
    policy = make_policy(BOX_OBS, gym.spaces.MultiBinary(4))
    assert isinstance(policy, BernoulliPolicy)
    obs = torch.zeros(2, 3)
    actions = torch.tensor([[0.0, 1, 1, 0], [1, 1, 1, 1]])
    log_probs, entropy, _ = policy.evaluate_actions(obs, actions)
    assert log_probs.shape == entropy.shape == (2,)
    torch.testing.assert_close(log_probs, torch.full((2,), 4 * math.log(0.5)), atol=0.02,
                               rtol=0)


# ---------------------------------------------------------------- Gaussian action bounds
def test_tanh_log_prob_matches_the_change_of_variables() -> None:
    low = torch.tensor([-2.0, 0.0])
    high = torch.tensor([2.0, 5.0])
    space = gym.spaces.Box(low.numpy(), high.numpy())
    policy = make_policy(BOX_OBS, space, action_bound="tanh", log_std_init=-0.5)
    obs = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        dist = policy.distribution(obs)
        u = dist.sample()
        base = dist.base_dist
        reference = TransformedDistribution(
            Normal(base.loc, base.scale),
            [TanhTransform(), AffineTransform((low + high) / 2, (high - low) / 2)])
        a = torch.as_tensor(policy.to_env(u))
        expected = reference.log_prob(a).sum(-1)
        torch.testing.assert_close(dist.log_prob(u), expected, atol=2e-3, rtol=1e-4)


def test_tanh_log_prob_is_finite_for_saturated_samples() -> None:
    policy = make_policy(BOX_OBS, gym.spaces.Box(-1.0, 1.0, shape=(2,)), action_bound="tanh")
    u = torch.tensor([[40.0, -40.0], [1e4, 0.0]])
    log_probs, _, _ = policy.evaluate_actions(torch.zeros(2, 3), u)
    assert torch.isfinite(log_probs).all()
    env = policy.to_env(u)
    assert np.all(env >= -1.0) and np.all(env <= 1.0)


def test_tanh_needs_finite_bounds() -> None:
    with pytest.raises(pgrad.PgradError, match="finite bounds"):
        make_policy(BOX_OBS, gym.spaces.Box(-np.inf, np.inf, shape=(2,)), action_bound="tanh")


def test_clip_mode_stores_the_unclipped_sample_and_sends_the_clipped_one() -> None:
    space = gym.spaces.Box(-0.1, 0.1, shape=(1,), dtype=np.float32)
    envs: list[SpaceEnv] = []

    def make() -> SpaceEnv:
        envs.append(SpaceEnv(BOX_OBS, space))
        return envs[-1]

    agent = pgrad.Reinforce(make, seed=0, num_envs=1, batch_episodes=1, log_std_init=1.0,
                            vectorization="sync")
    batch = agent.make_collector().collect()
    stored = batch.actions[batch.valid].squeeze(-1)
    sent = np.concatenate(envs[-1].received).astype(np.float32)
    assert stored.abs().max() > 0.1  # σ = e: samples leave the bounds
    np.testing.assert_allclose(sent, np.clip(stored.numpy(), -0.1, 0.1))
    # The update's log-prob is the density of the stored, unclipped sample.
    with torch.no_grad():
        log_probs, _, _ = agent.policy.evaluate_actions(batch.obs[:-1][batch.valid],
                                                        batch.actions[batch.valid])
        dist = agent.policy.distribution(batch.obs[:-1][batch.valid])
    torch.testing.assert_close(log_probs, dist.log_prob(batch.actions[batch.valid]))


@pytest.mark.parametrize("state_dependent", [False, True])
def test_extreme_observations_give_finite_log_probs(state_dependent: bool) -> None:
    policy = make_policy(gym.spaces.Box(-np.inf, np.inf, shape=(3,)),
                         gym.spaces.Box(-1.0, 1.0, shape=(2,)),
                         state_dependent_std=state_dependent)
    obs = torch.tensor([[1e30, -1e30, 0.0], [1e-30, 0.0, 3e38]])
    actions = policy.sample(obs)
    log_probs = policy.distribution(obs).log_prob(actions)
    assert torch.isfinite(actions).all() and torch.isfinite(log_probs).all()
