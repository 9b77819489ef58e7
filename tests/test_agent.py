"""pgrad.agent: determinism, learning on tiny problems, truncation bootstrapping, predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import UNSCALED, differing_parameters, make_endless_env, make_text_env

import pgrad
from pgrad.envs import LINEWALK_ID, LineWalkEnv
from pgrad.errors import PgradError


def short_run(seed: int, steps: int = 5_000, **kwargs) -> pgrad.Reinforce:
    agent = pgrad.Reinforce("CartPole-v1", seed=seed, **kwargs)
    agent.learn(steps, tensorboard=False)
    agent.close()
    return agent


# ---------------------------------------------------------------- determinism
def test_same_seed_gives_bit_identical_parameters() -> None:
    a, b = short_run(seed=3), short_run(seed=3)
    assert a.num_updates == b.num_updates >= 2
    assert a.num_timesteps == b.num_timesteps
    assert differing_parameters(a.policy, b.policy) == []


def test_different_seeds_give_different_parameters() -> None:
    assert differing_parameters(short_run(seed=3).policy, short_run(seed=4).policy)


def test_same_seed_n_steps_gives_bit_identical_parameters() -> None:
    a = short_run(seed=5, steps=3_000, n_steps=32, num_envs=8)
    b = short_run(seed=5, steps=3_000, n_steps=32, num_envs=8)
    assert differing_parameters(a.policy, b.policy) == []


def test_agents_built_together_train_identically() -> None:
    """Two agents with one seed must not share a random stream: building the second one
    must not change what the first one learns."""
    a = pgrad.Reinforce("CartPole-v1", seed=3)
    b = pgrad.Reinforce("CartPole-v1", seed=3)
    a.learn(5_000, tensorboard=False)
    b.learn(5_000, tensorboard=False)
    assert differing_parameters(a.policy, b.policy) == []


def test_the_weights_do_not_depend_on_the_callers_torch_threads() -> None:
    """The orthogonal initialisation's QR rounds differently with 1 and 2 threads: an
    agent is built under its config's thread count, and leaves the caller's as it was."""
    before = torch.get_num_threads()
    built = []
    try:
        for caller in (1, 2):
            torch.set_num_threads(caller)
            built.append(pgrad.Reinforce("CartPole-v1", seed=1, hidden_sizes=(256, 256)))
            assert torch.get_num_threads() == caller
    finally:
        torch.set_num_threads(before)
    assert differing_parameters(built[0].policy, built[1].policy) == []


def test_agent_leaves_the_global_torch_stream_alone() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, num_envs=4, batch_episodes=4)
    agent.learn(200, tensorboard=False)
    assert torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------- learning
@pytest.mark.slow
def test_linewalk_with_baseline_learns_to_reach_the_goal() -> None:
    # γ = 0.9: with γ = 0.99 and bootstrapped time limits, dithering for 50 steps is worth
    # 0.01 / (1 − 0.99) = 1.0, as much as the goal (0.99¹⁰ + …), and either can be learnt.
    agent = pgrad.Reinforce(LINEWALK_ID, baseline=True, seed=0, gamma=0.9, num_envs=16,
                            batch_episodes=16)
    agent.learn(20_000, tensorboard=False)
    returns = np.array(agent.episode_returns)
    assert len(returns) == 112  # the statistics window: 7 whole batches of 16, ≥ 100 episodes
    assert (returns > 0.5).mean() >= 0.9


@pytest.mark.slow
def test_cartpole_reaches_a_mean_training_return_of_150() -> None:
    agent = pgrad.Reinforce("CartPole-v1", seed=0)
    agent.learn(150_000, stop_return=150, tensorboard=False)
    result = agent.last_result
    assert result is not None
    assert result.reached_stop_return
    assert result.return_mean >= 150
    assert result.steps < 150_000


@pytest.mark.slow
@pytest.mark.parametrize("batch", [{}, {"n_steps": 16}], ids=["episodes", "n_steps"])
def test_time_limit_is_bootstrapped_to_the_infinite_horizon_value(batch) -> None:
    """Reward 1 forever, cut at 20 steps: V(s) → 1/(1−γ) = 10 only if cuts bootstrap.

    Without bootstrapping the value would settle at the mean truncated return, ≈ 6.05.
    """
    gamma = 0.9
    agent = pgrad.Reinforce(make_endless_env, gamma=gamma, num_envs=8, batch_episodes=8,
                            hidden_sizes=(16,), seed=0, **UNSCALED, **batch)
    agent.learn(20_000, tensorboard=False)
    with torch.no_grad():
        value = agent.policy.value(np.ones((1, 1), dtype=np.float32)).item()
    truncated_mean = np.mean([(1 - gamma ** (20 - t)) / (1 - gamma) for t in range(20)])
    assert truncated_mean == pytest.approx(6.05, abs=0.01)
    assert value == pytest.approx(1 / (1 - gamma), abs=0.3)


@pytest.mark.slow
def test_time_limit_as_part_of_the_task_is_not_bootstrapped() -> None:
    """With bootstrap_truncated=False the cut ends the episode: V(s) → the mean truncated
    return ≈ 6.05 instead of 1/(1−γ) = 10."""
    agent = pgrad.Reinforce(make_endless_env, gamma=0.9, num_envs=8, batch_episodes=8,
                            hidden_sizes=(16,), seed=0, bootstrap_truncated=False, **UNSCALED)
    agent.learn(20_000, tensorboard=False)
    with torch.no_grad():
        value = agent.policy.value(np.ones((1, 1), dtype=np.float32)).item()
    assert value == pytest.approx(6.05, abs=0.5)


# ---------------------------------------------------------------- one update
def test_update_reports_named_metrics() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, num_envs=4, batch_episodes=4)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    metrics = agent.update(agent.make_collector().collect())
    assert {"train/loss", "train/loss_policy", "train/loss_value", "train/entropy",
            "train/advantage_mean", "train/grad_norm",
            "train/explained_variance"} <= set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    assert agent.num_updates == 1
    after = list(agent.policy.parameters())
    assert any(not torch.equal(x, y) for x, y in zip(before, after, strict=True))


def test_update_bootstraps_cuts_from_the_next_observation(monkeypatch) -> None:
    """V(s_{t+1}) is read exactly where an episode is cut (time limit or batch end), from
    the observation after the step; terminated and reset steps are never bootstrapped."""
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, num_envs=2, n_steps=60,
                            bootstrap_truncated=True)
    with torch.no_grad():  # an untrained V is 0 at x = 0: make every value distinct
        for p in agent.policy.parameters():
            p.add_(torch.randn_like(p) * 0.3)

    def right_then_zigzag(obs, deterministic=False, generator=None):
        x = agent.policy.preprocess(obs)[:, 0]
        return torch.where(torch.arange(len(x)) == 0, 1, (x < 0).long())

    agent.policy.sample = right_then_zigzag  # type: ignore[method-assign]
    batch = agent.make_collector().collect()
    with torch.no_grad():
        next_obs_values = agent.policy.value(batch.obs[1:].reshape(-1, 4)).reshape(60, 2)
    seen = {}

    def spy(rewards, gamma, **kwargs):
        seen.update(kwargs)
        return pgrad.discounted_returns(rewards, gamma, **kwargs)

    monkeypatch.setattr("pgrad.agent.discounted_returns", spy)
    agent.update(batch)

    # Env 0 goes right: terminated at rows 10, 22, …, 58, then a reset step at row 59.
    # Env 1 zigzags into LineWalk's 50-step limit at row 49 and is mid-episode at row 59.
    assert batch.terminated[:, 0].nonzero().flatten().tolist() == [10, 22, 34, 46, 58]
    assert not batch.valid[59, 0]
    assert batch.truncated[:, 1].nonzero().flatten().tolist() == [49]
    cut = torch.zeros(60, 2, dtype=torch.bool)
    cut[49, 1] = cut[59, 1] = True
    assert (next_obs_values != 0).all()
    torch.testing.assert_close(seen["next_values"][cut], next_obs_values[cut])
    assert (seen["next_values"][~cut] == 0).all()
    assert torch.equal(seen["terminated"].cpu(), batch.terminated)


def test_learn_counts_valid_steps_and_returns_the_agent() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, num_envs=4, batch_episodes=4)
    assert agent.learn(500, tensorboard=False) is agent
    result = agent.last_result
    assert result is not None
    assert result.steps == agent.num_timesteps >= 500
    assert result.updates == agent.num_updates
    assert result.episodes == agent.make_collector().episodes >= 4
    agent.learn(200, tensorboard=False)
    assert agent.num_timesteps >= result.steps + 200


def test_the_agent_is_what_the_training_loop_needs() -> None:
    from pgrad.trainer import Learner

    assert isinstance(pgrad.Reinforce(LINEWALK_ID, seed=0), Learner)


def test_learn_needs_a_positive_step_count() -> None:
    with pytest.raises(PgradError):
        pgrad.Reinforce(LINEWALK_ID).learn(0)


# ---------------------------------------------------------------- predict
def test_predict_single_observation_returns_a_single_action() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0)
    action, state = agent.predict(np.zeros(4, dtype=np.float32))
    assert state is None
    assert np.shape(action) == ()
    assert agent.action_space.contains(action)


def test_predict_batch_returns_a_batch() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0)
    obs = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    actions, _ = agent.predict(obs)
    assert actions.shape == (6,)
    with torch.no_grad():
        argmax = agent.policy.distribution(obs).logits.argmax(-1).numpy()
    np.testing.assert_array_equal(actions, argmax)


def test_predict_gaussian_single_observation() -> None:
    agent = pgrad.Reinforce("Pendulum-v1", seed=0)
    action, _ = agent.predict(np.zeros(3, dtype=np.float32))
    assert action.shape == (1,)
    assert agent.action_space.contains(action)


# ---------------------------------------------------------------- configuration errors
def test_n_steps_without_baseline_is_an_error() -> None:
    with pytest.raises(PgradError, match="baseline"):
        pgrad.Reinforce(LINEWALK_ID, n_steps=16, baseline=False)


def test_unknown_env_id_is_an_error() -> None:
    with pytest.raises(PgradError, match="CartPole-v1"):
        pgrad.Reinforce("CartPole-v9")


def test_unsupported_env_space_is_a_pgrad_error() -> None:
    """A Text observation space: a bad input, reported as a PgradError."""
    with pytest.raises(PgradError, match="Text"):
        pgrad.Reinforce(make_text_env)


@pytest.mark.parametrize(
    "kwargs",
    [{"learning_rate": -1.0}, {"num_envs": 0}, {"gamma": 2.0}, {"hidden_sizes": (0,)},
     {"value_net": "twin"}, {"vectorization": "threads"}, {"num_envs": 2.5}],
)
def test_invalid_settings_are_pgrad_errors(kwargs) -> None:
    with pytest.raises(PgradError):
        pgrad.Reinforce(LINEWALK_ID, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_an_error() -> None:
    with pytest.raises(PgradError, match="CUDA"):
        pgrad.Reinforce(LINEWALK_ID, device="cuda")


def test_agent_from_a_callable_env() -> None:
    agent = pgrad.Reinforce(LineWalkEnv, seed=0, num_envs=2, batch_episodes=2)
    assert agent.config.env_id is None
    agent.learn(100, tensorboard=False)
    assert agent.num_timesteps >= 100


def test_config_object_and_overrides() -> None:
    config = pgrad.Config(env_id=LINEWALK_ID, num_envs=4, seed=7)
    agent = pgrad.Reinforce(LINEWALK_ID, config=config, learning_rate=0.05)
    assert agent.config.num_envs == 4 and agent.config.seed == 7
    assert agent.config.learning_rate == 0.05
    assert agent.optimizer.param_groups[0]["lr"] == 0.05


def test_extra_value_steps_fit_only_the_value_network() -> None:
    """value_steps > 1: the policy's step is the same; V alone takes the extra steps and fits
    the batch's returns better."""
    agents = [pgrad.Reinforce("CartPole-v1", seed=0, num_envs=8, batch_episodes=8,
                              value_steps=steps) for steps in (1, 10)]
    batch = agents[0].make_collector().collect()
    obs, valid = batch.obs[:-1][batch.valid], batch.valid
    returns = pgrad.discounted_returns(batch.rewards, 0.99, terminated=batch.terminated,
                                       truncated=batch.truncated)[valid]
    for agent in agents:
        agent.update(batch)
    one, ten = (dict(a.policy.named_parameters()) for a in agents)
    for name in one:
        same = torch.equal(one[name], ten[name])
        assert same == (not name.startswith(("value_backbone", "value_head"))), name
    with torch.no_grad():
        losses = [(a.policy.value(obs) - returns).pow(2).mean().item() for a in agents]
    assert losses[1] < 0.9 * losses[0]


def test_an_explicit_config_runs_on_the_env_given() -> None:
    agent = pgrad.Reinforce("Acrobot-v1", config=pgrad.Config())
    assert agent.config.env_id == "Acrobot-v1"


@pytest.mark.parametrize("seed", [-1, 2**31, 10**30])
def test_seeds_out_of_range_are_an_error(seed: int) -> None:
    with pytest.raises(PgradError, match="seed"):
        pgrad.Reinforce("CartPole-v1", seed=seed)


# ---------------------------------------------------------------- edge batches
def test_n_steps_1_with_one_env_skips_batches_of_only_a_reset_step() -> None:
    # The step after an episode ends is a reset step: with n_steps=1, num_envs=1 that is a
    # whole batch without a transition. Its mean over nothing once read as divergence.
    agent = pgrad.Reinforce("CartPole-v1", seed=0, n_steps=1, num_envs=1, hidden_sizes=(8,))
    agent.learn(150, tensorboard=False)
    assert agent.num_timesteps == 150
    assert agent.num_updates == 150 and agent.skipped_updates == 0
    assert len(agent.episode_returns) >= 2  # episodes ended, so empty batches came by


def test_an_empty_batch_changes_nothing_and_reports_nan_metrics() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, num_envs=2, n_steps=8, normalize_obs=True,
                            scale_rewards=True)
    batch = agent.make_collector().collect()
    expected_keys = list(pgrad.Reinforce(LINEWALK_ID, seed=0, num_envs=2, n_steps=8)
                         .update(batch))
    batch.valid[:] = False
    state = {k: v.clone() for k, v in agent.policy.state_dict().items()}
    metrics = agent.update(batch)
    assert list(metrics) == expected_keys
    assert all(np.isnan(v) for v in metrics.values())
    assert (agent.num_updates, agent.skipped_updates) == (0, 0)
    assert all(torch.equal(v, agent.policy.state_dict()[k]) for k, v in state.items())
    assert agent.return_rms.count.item() == 0
    assert not agent.optimizer.state  # no Adam step either


def test_explained_variance_of_one_step_is_nan_without_a_warning() -> None:
    import warnings

    from pgrad.agent import _explained_variance

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(_explained_variance(torch.tensor([1.0]), torch.tensor([2.0])))
        assert np.isnan(_explained_variance(torch.ones(3), torch.full((3,), 2.0)))
    assert _explained_variance(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert _explained_variance(None, torch.tensor([1.0, 2.0])) is None


def test_kl_is_measured_before_the_observation_statistics_move() -> None:
    # A step of lr 1e-12 barely moves the policy; the normaliser taking in the first batch
    # moves it a lot. The KL of the update must see only the former.
    agent = pgrad.Reinforce("CartPole-v1", seed=0, num_envs=4, batch_episodes=4,
                            normalize_obs=True, learning_rate=1e-12, diagnostics_every=1)
    metrics = agent.update(agent.make_collector().collect())
    assert agent.policy.obs_rms is not None and agent.policy.obs_rms.count.item() > 0
    assert 0 <= metrics["diagnostics/kl"] < 1e-9
