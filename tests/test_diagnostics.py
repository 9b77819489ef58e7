"""pgrad.diagnostics and the γ^t option: per-episode gradients equal one backward per
episode, the CSV of a default run has the diagnostics columns, diagnostics never change
training, and ``discount_policy_gradient`` weights each step by γ^t."""

from __future__ import annotations

import contextlib
import csv
import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import differing_parameters

import pgrad
from pgrad import diagnostics, exact
from pgrad.diagnostics import (
    approx_kl,
    episode_segments,
    gradient_statistics,
    per_episode_gradients,
)
from pgrad.envs import LINEWALK_ID
from pgrad.losses import reinforce_loss
from pgrad.policies import make_policy
from pgrad.tools.cli import main

DIAGNOSTICS = ["diagnostics/grad_variance", "diagnostics/grad_snr", "diagnostics/kl",
               "diagnostics/grad_variance_without_baseline",
               "diagnostics/grad_snr_without_baseline"]


def test_episode_segments_by_hand() -> None:
    # env 0: one episode of 3 steps then idle; env 1: 2 steps, reset step, 1 step
    valid = torch.tensor([[1, 1], [1, 1], [1, 0], [0, 1]], dtype=torch.bool)
    steps = torch.tensor([[0, 0], [1, 1], [2, 0], [0, 0]])
    segment, position, count = episode_segments(valid, steps)
    # time-major order of valid steps: (0,0) (0,1) (1,0) (1,1) (2,0) (3,1)
    assert count == 3
    assert segment.tolist() == [0, 1, 0, 1, 0, 2]
    assert position.tolist() == [0, 0, 1, 1, 2, 0]


def test_an_episode_continued_from_an_earlier_batch_is_one_segment() -> None:
    valid = torch.ones(3, 1, dtype=torch.bool)
    segment, position, count = episode_segments(valid, torch.tensor([[7], [8], [0]]))
    assert count == 2 and segment.tolist() == [0, 0, 1] and position.tolist() == [0, 1, 0]


@pytest.mark.parametrize("value_net", [None, "shared", "separate"])
def test_per_episode_gradients_equal_one_backward_per_episode(value_net) -> None:
    policy = make_policy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(3),
                         hidden_sizes=(8,), value_net=value_net)
    lengths = [4, 1, 6]
    obs = torch.randn(sum(lengths), 3)
    actions = torch.randint(0, 3, (sum(lengths),))
    adv = torch.randn(sum(lengths))
    segment = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])
    position = torch.cat([torch.arange(n) for n in lengths])
    perm = torch.randperm(len(segment))  # any order of the steps
    grads = per_episode_gradients(policy, obs[perm], actions[perm], adv[perm], segment[perm],
                                  position[perm], len(lengths))
    for i in range(len(lengths)):
        mine = segment == i
        policy.zero_grad()
        log_probs = policy.distribution(obs[mine]).log_prob(actions[mine])
        (log_probs * adv[mine]).sum().backward()
        expected = torch.cat([p.grad.flatten() for p in policy.parameters()
                              if p.grad is not None and p.grad.abs().sum() > 0])
        assert torch.allclose(grads[i], expected, atol=1e-5), i
    assert per_episode_gradients(policy, obs, actions, adv, segment, position, 3,
                                 max_episodes=2).shape[0] == 2


def _reference_gradients(policy, obs, actions, adv, segment, count):
    """One backward per episode: the definition of g_e, over the parameters log π uses."""
    rows = []
    for i in range(count):
        mine = segment == i
        policy.zero_grad()
        log_probs = policy.distribution(obs[mine]).log_prob(actions[mine])
        (log_probs * adv[mine]).sum().backward()
        rows.append(torch.cat([p.grad.flatten() for p in policy.parameters()
                               if p.grad is not None]))  # zero_grad set the others to None
    return torch.stack(rows)


POLICY_KINDS = {  # name: (observation space, action space, make_policy kwargs, fast path)
    "discrete-separate": (gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(3),
                          {"value_net": "separate"}, True),
    "multidiscrete": (gym.spaces.Box(-1, 1, (3,)), gym.spaces.MultiDiscrete([2, 3]), {}, True),
    "multibinary": (gym.spaces.Box(-1, 1, (3,)), gym.spaces.MultiBinary(2), {}, True),
    "gaussian-state-dependent": (gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (2,)),
                                 {"state_dependent_std": True}, True),
    "gaussian-tanh": (gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (2,)),
                      {"state_dependent_std": True, "action_bound": "tanh"}, True),
    "normalized-obs": (gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2),
                       {"normalize_obs": True}, True),
    "one-hot-obs": (gym.spaces.Discrete(5), gym.spaces.Discrete(2), {}, True),
    # a parameter outside nn.Linear (log σ, convolutions): one backward per episode
    "gaussian-log-std": (gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (2,)), {}, False),
    "cnn": (gym.spaces.Box(0, 255, (4, 4, 1), dtype="uint8"), gym.spaces.Discrete(2),
            {"cnn_arch": "small"}, False),
}


@pytest.mark.parametrize("kind", list(POLICY_KINDS))
def test_per_episode_gradients_of_every_kind_of_policy(kind, monkeypatch) -> None:
    obs_space, action_space, kwargs, fast = POLICY_KINDS[kind]
    torch.manual_seed(0)
    policy = make_policy(obs_space, action_space, hidden_sizes=(8,), **kwargs)
    if policy.obs_rms is not None:  # statistics that change the input
        policy.obs_rms.update(torch.randn(50, 3) * 3 + 1)
    obs_space.seed(0)
    action_space.seed(0)
    lengths = [3, 1, 5, 2]
    n = sum(lengths)
    obs = torch.as_tensor(np.stack([obs_space.sample() for _ in range(n)]))
    actions = torch.as_tensor(np.stack([action_space.sample() for _ in range(n)]))
    actions = actions.clamp(-1.9, 1.9).to(policy.action_dtype)  # inside a tanh bound
    advs = torch.randn(2, n)
    segment = torch.cat([torch.full((k,), i) for i, k in enumerate(lengths)])
    position = torch.cat([torch.arange(k) for k in lengths])
    perm = torch.randperm(n)
    if fast:  # the one-pass path must serve this policy
        monkeypatch.setattr(diagnostics, "_episode_by_episode", None)
    both = per_episode_gradients(policy, obs[perm], actions[perm], advs[:, perm],
                                 segment[perm], position[perm], len(lengths))
    assert both.shape[:2] == (2, len(lengths))
    for w in range(2):
        expected = _reference_gradients(policy, obs, actions, advs[w], segment, len(lengths))
        assert torch.allclose(both[w], expected, atol=1e-5, rtol=1e-4), (kind, w)
        one = per_episode_gradients(policy, obs, actions, advs[w], segment, position,
                                    len(lengths))
        assert torch.allclose(one, both[w], atol=1e-6, rtol=1e-5), (kind, w)


def test_gradient_statistics() -> None:
    grads = torch.tensor([[1.0, 0.0], [3.0, 2.0]])  # mean (2, 1), variances 2 and 2
    variance, snr = gradient_statistics(grads)
    assert variance == pytest.approx(4.0) and snr == pytest.approx(5 / 4)
    assert all(math.isnan(x) for x in gradient_statistics(grads[:1]))


def test_approx_kl_is_zero_for_the_same_policy_and_matches_the_exact_kl() -> None:
    old = torch.distributions.Categorical(logits=torch.tensor([0.0, 1.0, -1.0]))
    new = torch.distributions.Categorical(logits=torch.tensor([0.3, 0.8, -1.2]))
    actions = old.sample((200_000,))
    assert approx_kl(old.log_prob(actions), old.log_prob(actions)) == 0.0
    exact_kl = float(torch.distributions.kl_divergence(old, new))
    assert approx_kl(old.log_prob(actions), new.log_prob(actions)) == pytest.approx(
        exact_kl, rel=0.05)


def test_default_training_run_logs_the_diagnostics_columns(tmp_path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", "--total-timesteps", "3000", "--out", str(tmp_path / "run"),
                     "--no-progress", "--no-tensorboard"])
    assert code == 0
    with open(tmp_path / "run" / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 2
    for key in [*DIAGNOSTICS, "train/explained_variance", "train/entropy"]:
        assert key in rows[0], key
    first = {k: float(rows[0][k]) for k in DIAGNOSTICS}  # computed at the first update
    assert first["diagnostics/grad_variance"] > 0 and first["diagnostics/grad_snr"] > 0
    assert first["diagnostics/kl"] >= 0
    assert all(math.isnan(float(rows[1][k])) for k in DIAGNOSTICS)  # every 10 updates


def test_diagnostics_do_not_change_training() -> None:
    agents = []
    for every in (0, 1):
        agent = pgrad.Reinforce("CartPole-v1", seed=2, diagnostics_every=every, num_envs=8,
                                batch_episodes=8, hidden_sizes=(16,))
        agent.learn(1500, tensorboard=False)
        agent.close()
        agents.append(agent)
    assert agents[0].num_updates >= 3
    assert differing_parameters(agents[0].policy, agents[1].policy) == []


@pytest.mark.parametrize("env_id, kwargs", [
    ("Pendulum-v1", {}), ("Pendulum-v1", {"state_dependent_std": True}),  # Gaussian
    ("FrozenLake-v1", {}),  # Discrete observations, one-hot encoded
    ("CartPole-v1", {"value_net": "shared", "discount_policy_gradient": True}),
])
def test_diagnostics_for_every_kind_of_policy(env_id, kwargs) -> None:
    agent = pgrad.Reinforce(env_id, seed=0, num_envs=4, batch_episodes=4, hidden_sizes=(8,),
                            diagnostics_every=1, **kwargs)
    metrics = agent.update(agent.make_collector().collect())
    agent.close()
    assert metrics["diagnostics/grad_variance"] > 0 and metrics["diagnostics/kl"] >= 0


def test_n_steps_batches_get_diagnostics_too() -> None:
    agent = pgrad.Reinforce("CartPole-v1", seed=0, n_steps=16, num_envs=4, hidden_sizes=(16,),
                            diagnostics_every=1)
    metrics = agent.update(agent.make_collector().collect())
    agent.close()
    assert metrics["diagnostics/grad_variance"] > 0 and metrics["diagnostics/grad_snr"] > 0


# ---------------------------------------------------------------- the γ^t option
def test_collector_records_each_steps_index_within_its_episode() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=1, num_envs=3, batch_episodes=5,
                            hidden_sizes=(8,))
    batch = agent.make_collector().collect()
    agent.close()
    assert batch.episode_steps is not None
    for i in range(3):
        expected, t = [], 0
        for row in range(batch.valid.shape[0]):
            if not batch.valid[row, i]:
                t = 0
                continue
            expected.append(t)
            done = batch.terminated[row, i] or batch.truncated[row, i]
            t = 0 if done else t + 1
        assert batch.episode_steps[:, i][batch.valid[:, i]].tolist() == expected


def test_discount_policy_gradient_weights_each_step_by_gamma_to_the_t() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=1, num_envs=4, batch_episodes=4,
                            hidden_sizes=(8,), baseline=False, gamma=0.9,
                            discount_policy_gradient=True, normalize_advantages=False)
    batch = agent.make_collector().collect()
    valid = batch.valid
    terminated = batch.terminated | batch.truncated  # the LineWalk preset: limits end
    returns = pgrad.discounted_returns(batch.rewards, 0.9, terminated=terminated,
                                       truncated=batch.truncated)[valid]
    weights = 0.9 ** batch.episode_steps[valid].double()
    with torch.no_grad():
        log_probs = agent.policy.distribution(batch.obs[:-1][valid]).log_prob(
            batch.actions[valid])
    expected = -(log_probs.double() * returns.double() * weights).mean()
    metrics = agent.update(batch)
    agent.close()
    assert metrics["train/loss_policy"] == pytest.approx(float(expected), rel=1e-5)
    assert weights.min() < 0.5  # some late steps were down-weighted


def test_gamma_t_weights_turn_the_loss_into_the_unbiased_estimator() -> None:
    """On pgrad.exact's MDPs, −B ∇ of reinforce_loss with policy_weights = γ^t is the
    exact module's unbiased estimator (ii); without them, the biased (iv)."""
    mdp = exact.make_chain_mdp(gamma=0.9)
    theta = torch.randn(mdp.num_states, mdp.num_actions, dtype=torch.float64)
    episodes = exact.sample_episodes(theta, mdp, 5, generator=torch.Generator().manual_seed(0))
    for weighted, estimator in [(True, "reward_to_go"), (False, "reward_to_go_without_gamma_t")]:
        expected = exact.reinforce_estimates(theta, mdp, episodes, estimator)
        for k in range(5):
            running = episodes.running[:, k]
            states, actions = episodes.states[running, k], episodes.actions[running, k]
            rewards = episodes.rewards[running, k]
            returns = torch.stack([sum(mdp.gamma ** (j - t) * rewards[j]
                                       for j in range(t, len(rewards)))
                                   for t in range(len(rewards))])
            steps = torch.arange(len(rewards), dtype=torch.float64)
            theta_k = theta.clone().requires_grad_(True)
            log_probs = torch.log_softmax(theta_k, dim=1)[states, actions]
            loss = reinforce_loss(log_probs, returns,
                                  policy_weights=mdp.gamma ** steps if weighted else None)
            (grad,) = torch.autograd.grad(loss["loss_policy"], theta_k)
            assert torch.allclose(-grad * len(rewards), expected[k], atol=1e-10), (estimator, k)
