"""pgrad.policies: the policy contract (shapes, log-probs, modes, spaces) for both policies."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Normal

from pgrad.policies import (
    CategoricalPolicy,
    GaussianPolicy,
    UnsupportedSpaceError,
    make_policy,
)

BOX_OBS = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
BOX_ACTIONS = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
B = 5


def gaussian(**kwargs) -> GaussianPolicy:
    policy = make_policy(BOX_OBS, BOX_ACTIONS, hidden_sizes=(16, 16), **kwargs)
    assert isinstance(policy, GaussianPolicy)
    return policy


def categorical(**kwargs) -> CategoricalPolicy:
    policy = make_policy(BOX_OBS, gym.spaces.Discrete(3), hidden_sizes=(16, 16), **kwargs)
    assert isinstance(policy, CategoricalPolicy)
    return policy


def observations(n: int = B) -> torch.Tensor:
    return torch.randn(n, 4)


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize("value_net", ["shared", "separate"])
@pytest.mark.parametrize(("make", "action_shape"), [(categorical, ()), (gaussian, (3,))],
                         ids=["categorical", "gaussian"])
def test_shapes_are_batch_vectors(make, action_shape, value_net) -> None:
    policy = make(value_net=value_net)
    obs = observations()

    dist = policy.distribution(obs)
    actions = dist.sample()
    log_probs = dist.log_prob(actions)
    lp, entropy, values = policy.evaluate_actions(obs, actions)

    assert actions.shape == (B, *action_shape)
    assert log_probs.shape == (B,)
    assert dist.log_prob(actions).shape == (B,)
    assert dist.entropy().shape == (B,)
    assert policy.value(obs).shape == (B,)
    assert lp.shape == entropy.shape == (B,)
    assert values is not None and values.shape == (B,)
    assert policy.sample(obs).shape == (B, *action_shape)
    torch.testing.assert_close(lp, log_probs)


def test_no_baseline_has_no_value() -> None:
    policy = categorical(value_net=None)
    assert not policy.has_baseline
    assert policy.evaluate_actions(observations(), torch.zeros(B, dtype=torch.long))[2] is None
    with pytest.raises(RuntimeError):
        policy.value(observations())


def test_numpy_observations_are_accepted() -> None:
    policy = categorical()
    obs = np.zeros((B, 4), dtype=np.float32)
    actions = policy.sample(obs)
    assert actions.shape == policy.distribution(obs).log_prob(actions).shape == (B,)


# ---------------------------------------------------------------- Gaussian maths
def test_gaussian_log_prob_is_the_sum_of_per_dimension_normals() -> None:
    policy = gaussian(log_std_init=-0.3)
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor([-0.5, 0.0, 0.4]))
    obs = observations()
    actions = torch.randn(B, 3)

    mean = policy.mean_head(policy.backbone(obs))
    std = torch.tensor([-0.5, 0.0, 0.4]).exp()
    expected = Normal(mean, std).log_prob(actions).sum(-1)

    torch.testing.assert_close(policy.distribution(obs).log_prob(actions), expected)
    torch.testing.assert_close(policy.distribution(obs).entropy(),
                               Normal(mean, std).entropy().sum(-1))


@pytest.mark.parametrize(("log_std", "expected"), [(100.0, 2.0), (-100.0, -20.0)])
def test_log_std_parameter_is_clamped(log_std: float, expected: float) -> None:
    policy = gaussian()
    with torch.no_grad():
        policy.log_std.fill_(log_std)
    std = policy.distribution(observations()).base_dist.scale
    torch.testing.assert_close(std, torch.full((B, 3), math.exp(expected)))
    dist = policy.distribution(observations())
    assert torch.isfinite(dist.log_prob(dist.sample())).all()


@pytest.mark.parametrize(("bias", "expected"), [(100.0, 2.0), (-100.0, -20.0)])
def test_state_dependent_log_std_is_clamped(bias: float, expected: float) -> None:
    policy = gaussian(state_dependent_std=True)
    assert policy.log_std is None and policy.log_std_head is not None
    with torch.no_grad():
        policy.log_std_head.weight.zero_()
        policy.log_std_head.bias.fill_(bias)
    std = policy.distribution(observations()).base_dist.scale
    torch.testing.assert_close(std, torch.full((B, 3), math.exp(expected)))


def test_state_dependent_std_depends_on_the_state() -> None:
    policy = gaussian(state_dependent_std=True)
    with torch.no_grad():
        policy.log_std_head.weight.normal_()
    std = policy.distribution(observations()).base_dist.scale
    assert not torch.allclose(std[0], std[1])


def test_log_std_init() -> None:
    std = gaussian(log_std_init=-1.0).distribution(observations()).base_dist.scale
    torch.testing.assert_close(std, torch.full((B, 3), math.exp(-1.0)))


@pytest.mark.parametrize("make", [gaussian, categorical], ids=["gaussian", "categorical"])
def test_entropy_is_minus_the_mean_log_prob(make) -> None:
    policy = make()
    with torch.no_grad():
        if isinstance(policy, GaussianPolicy):
            policy.log_std.copy_(torch.tensor([-1.0, 0.0, 0.7]))
        else:
            policy.logits_head.bias.copy_(torch.tensor([1.0, -0.5, 0.0]))
        dist = policy.distribution(observations(1))
        samples = dist.sample((200_000,))
        estimate = -dist.log_prob(samples).mean()
    assert estimate.item() == pytest.approx(dist.entropy().item(), rel=0.01)


# ---------------------------------------------------------------- modes and samples
def test_deterministic_categorical_is_the_argmax() -> None:
    policy = categorical()
    with torch.no_grad():
        policy.logits_head.weight.normal_()
    obs = observations(50)
    argmax = policy.distribution(obs).logits.argmax(-1)
    assert torch.equal(policy.sample(obs, deterministic=True), argmax)


def test_deterministic_gaussian_is_the_mean() -> None:
    policy = gaussian()
    obs = observations()
    mean = policy.mean_head(policy.backbone(obs))
    torch.testing.assert_close(policy.sample(obs, deterministic=True), mean)


def test_categorical_sample_follows_the_softmax() -> None:
    policy = categorical()
    with torch.no_grad():
        policy.logits_head.bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
        obs = torch.zeros(60_000, 4)
        probs = policy.distribution(obs[:1]).probs[0]
        counts = torch.bincount(policy.sample(obs), minlength=3).float() / len(obs)
    torch.testing.assert_close(counts, probs, atol=0.01, rtol=0)


def test_gaussian_samples_are_clipped_into_the_action_space() -> None:
    space = gym.spaces.Box(np.array([-0.5, 0.0, -2.0], dtype=np.float32),
                           np.array([0.5, 1.0, 2.0], dtype=np.float32))
    policy = make_policy(BOX_OBS, space, hidden_sizes=(8,), log_std_init=2.0)
    with torch.no_grad():
        actions = policy.sample(observations(200))
    env_actions = policy.to_env(actions)

    assert ((actions < policy.low) | (actions > policy.high)).any()  # unclipped as sampled
    assert env_actions.dtype == np.float32
    assert all(space.contains(a) for a in env_actions)
    np.testing.assert_array_equal(env_actions,
                                  np.clip(actions.numpy(), space.low, space.high))


def test_categorical_samples_lie_in_a_shifted_discrete_space() -> None:
    space = gym.spaces.Discrete(3, start=2)
    policy = make_policy(BOX_OBS, space, hidden_sizes=(8,))
    env_actions = policy.to_env(policy.sample(observations(300)))
    assert all(space.contains(a) for a in env_actions)
    assert set(env_actions.tolist()) == {2, 3, 4}


def test_multidimensional_box_actions() -> None:
    space = gym.spaces.Box(-1.0, 1.0, shape=(2, 2), dtype=np.float32)
    policy = make_policy(BOX_OBS, space, hidden_sizes=(8,))
    with torch.no_grad():
        actions = policy.sample(observations())
        log_probs = policy.distribution(observations()).log_prob(actions)
    assert actions.shape == (B, 2, 2)
    assert log_probs.shape == (B,)
    assert all(space.contains(a) for a in policy.to_env(actions))


# ---------------------------------------------------------------- observation spaces
def test_box_observations_are_flattened() -> None:
    space = gym.spaces.Box(-1.0, 1.0, shape=(2, 3), dtype=np.float32)
    policy = make_policy(space, gym.spaces.Discrete(2), hidden_sizes=(8,))
    obs = torch.randn(B, 2, 3)
    assert policy.obs_dim == 6
    torch.testing.assert_close(policy.preprocess(obs), obs.reshape(B, 6))
    assert policy.distribution(obs).log_prob(policy.sample(obs)).shape == (B,)
    assert policy.value(obs).shape == (B,)


def test_discrete_observations_are_one_hot() -> None:
    space = gym.spaces.Discrete(4, start=-1)
    policy = make_policy(space, gym.spaces.Discrete(2), hidden_sizes=(8,))
    x = policy.preprocess(np.array([-1, 2, 0]))
    expected = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0], [0, 1.0, 0, 0]])
    torch.testing.assert_close(x, expected)
    assert policy.sample(np.array([-1, 2, 0])).shape == (3,)


# ---------------------------------------------------------------- unsupported spaces
@pytest.mark.parametrize(
    ("obs_space", "action_space", "name"),
    [
        (gym.spaces.Text(5), gym.spaces.Discrete(2), "Text"),
        (gym.spaces.Dict({"a": gym.spaces.Sequence(gym.spaces.Discrete(2))}),
         gym.spaces.Discrete(2), "Sequence"),
        (BOX_OBS, gym.spaces.Tuple((gym.spaces.Discrete(2),)), "Tuple"),
        (BOX_OBS, gym.spaces.Text(3), "Text"),
        (BOX_OBS, gym.spaces.Box(0, 5, shape=(2,), dtype=np.int64), "int64"),
    ],
    ids=["text-obs", "dict-of-sequence-obs", "tuple-action", "text-action", "int-box"],
)
def test_unsupported_spaces_are_named(obs_space, action_space, name) -> None:
    with pytest.raises(UnsupportedSpaceError, match=name) as info:
        make_policy(obs_space, action_space)
    assert "supported" in str(info.value).lower()


# ---------------------------------------------------------------- the value network
def test_shared_value_head_uses_the_policy_backbone() -> None:
    policy = categorical(value_net="shared")
    assert policy.value_backbone is None
    obs = observations()
    expected = policy.value_head(policy.backbone(obs)).squeeze(-1)
    torch.testing.assert_close(policy.value(obs), expected)


def test_separate_value_net_has_its_own_backbone() -> None:
    policy = categorical(value_net="separate")
    assert policy.value_backbone is not None
    policy_ids = {id(p) for p in policy.backbone.parameters()}
    assert policy_ids.isdisjoint(id(p) for p in policy.value_backbone.parameters())

    obs = observations()
    log_probs, _, values = policy.evaluate_actions(obs, torch.zeros(B, dtype=torch.long))
    values.sum().backward()
    assert all(p.grad is None for p in policy.backbone.parameters())
    assert policy.logits_head.weight.grad is None

    policy.zero_grad(set_to_none=True)
    log_probs.sum().backward()
    assert all(p.grad is None for p in policy.value_backbone.parameters())


def test_value_net_must_be_known() -> None:
    with pytest.raises(ValueError, match="value_net"):
        categorical(value_net="twin")


def test_initial_policy_is_near_uniform_and_value_near_zero() -> None:
    """Policy head gain 0.01: the untrained policy explores (CleanRL's initialisation)."""
    policy = categorical()
    obs = observations(100)
    probs = policy.distribution(obs).probs
    torch.testing.assert_close(probs, torch.full_like(probs, 1 / 3), atol=0.02, rtol=0)
    assert policy.logits_head.bias.abs().max().item() == 0.0


# ---------------------------------------------------------------- deterministic_action
DETERMINISTIC_CASES = {
    "discrete": dict(action_space=gym.spaces.Discrete(4, start=-1)),
    "multidiscrete": dict(action_space=gym.spaces.MultiDiscrete([[2, 5], [3, 1]],
                                                                start=[[1, 0], [-2, 7]])),
    "multibinary": dict(action_space=gym.spaces.MultiBinary(5)),
    "box-clip": dict(action_space=gym.spaces.Box(-0.01, 0.02, shape=(2, 2), dtype=np.float64)),
    "box-tanh": dict(action_space=gym.spaces.Box(np.array([-2.0, 0.0], dtype=np.float32),
                                                 np.array([2.0, 5.0], dtype=np.float32)),
                     action_bound="tanh"),
}
OBS_SPACE_3D = gym.spaces.Dict({"pos": gym.spaces.Box(-5.0, 5.0, shape=(3,)),
                                "mode": gym.spaces.Discrete(3)})


def _random_observations(space: gym.Space, n: int) -> torch.Tensor:
    space.seed(0)
    flat = gym.spaces.flatten_space(space) if isinstance(space, gym.spaces.Dict) else space
    return torch.as_tensor(np.stack([gym.spaces.flatten(space, space.sample())
                                     if flat is not space else space.sample()
                                     for _ in range(n)]))


@pytest.mark.parametrize("normalize_obs", [False, True], ids=["raw", "normalized"])
@pytest.mark.parametrize("case", list(DETERMINISTIC_CASES))
def test_deterministic_action_equals_the_mode_sent_to_the_env(case: str,
                                                             normalize_obs: bool) -> None:
    kwargs = dict(DETERMINISTIC_CASES[case])
    action_space = kwargs.pop("action_space")
    policy = make_policy(OBS_SPACE_3D, action_space, hidden_sizes=(16,),
                         normalize_obs=normalize_obs, **kwargs)
    with torch.no_grad():
        for p in policy.parameters():  # spread the modes over the whole action space
            p.normal_()
    obs = _random_observations(OBS_SPACE_3D, 64)
    if normalize_obs:
        assert policy.obs_rms is not None
        policy.obs_rms.update(policy.encoder(obs) * 0.5 + 0.2)
    with torch.no_grad():
        expected = policy.to_env(policy.sample(obs, deterministic=True))
        actions = policy.deterministic_action(obs)
    assert actions.dtype == torch.from_numpy(np.zeros(0, action_space.dtype)).dtype
    assert actions.shape == (64, *action_space.shape)
    np.testing.assert_array_equal(actions.numpy(), expected)
    assert expected.dtype == action_space.dtype
    assert all(action_space.contains(a) for a in expected)
    assert len({a.tobytes() for a in expected}) > 1  # not one constant action


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("case", ["multidiscrete", "box-tanh"])
def test_deterministic_action_traces_with_both_normaliser_states(case: str) -> None:
    """Traced before any statistics exist, the trace still normalises once they do: the
    count test is a tensor op, not a Python branch."""
    kwargs = dict(DETERMINISTIC_CASES[case])
    action_space = kwargs.pop("action_space")
    policy = make_policy(OBS_SPACE_3D, action_space, hidden_sizes=(16,), normalize_obs=True,
                         **kwargs)
    with torch.no_grad():
        for p in policy.parameters():
            p.normal_()
    obs = _random_observations(OBS_SPACE_3D, 32)
    traced = torch.jit.trace_module(policy, {"deterministic_action": obs[:4]}, check_trace=False)
    assert policy.obs_rms is not None
    policy.obs_rms.update(policy.encoder(obs) * 4.0 - 2.0)
    with torch.no_grad():
        expected = policy.deterministic_action(obs)
        assert torch.equal(traced.deterministic_action(obs), expected)


# ---------------------------------------------------------------- log-std bounds
def test_log_std_beyond_the_cap_gets_a_gradient_back_inside() -> None:
    """A log-std that overshot log_std_max is still learnable: the gradient that lowers it
    flows (a plain clamp would give zero for good), one that would push it further out
    does not; the forward value stays clamped."""
    policy = gaussian()
    obs = observations()
    with torch.no_grad():
        policy.log_std.fill_(3.0)
        mean = policy.sample(obs, deterministic=True)
    assert policy.distribution(obs).base_dist.scale.max().item() == pytest.approx(math.exp(2.0))

    (-policy.distribution(obs).log_prob(mean).mean()).backward()  # wants σ smaller
    assert policy.log_std.grad is not None and (policy.log_std.grad > 0).all()

    policy.zero_grad()
    (-policy.distribution(obs).entropy().mean()).backward()  # wants σ larger: no gradient
    torch.testing.assert_close(policy.log_std.grad, torch.zeros(3))

    optimizer = torch.optim.Adam([policy.log_std], lr=0.1)
    for _ in range(30):
        optimizer.zero_grad()
        (-policy.distribution(obs).log_prob(mean).mean()).backward()
        optimizer.step()
    assert (policy.log_std < 2.0).all()


def test_log_std_gradient_inside_the_bounds_is_the_plain_one() -> None:
    policy = gaussian(state_dependent_std=True)
    obs = observations()
    actions = torch.randn(B, 3)
    policy.distribution(obs).log_prob(actions).sum().backward()
    ours = policy.log_std_head.weight.grad.clone()

    policy.zero_grad()
    mean = policy.mean_head(policy.backbone(obs))
    log_std = policy.log_std_head(policy.backbone(obs)).clamp(-20.0, 2.0)
    Normal(mean, log_std.exp()).log_prob(actions).sum().backward()
    assert torch.equal(ours, policy.log_std_head.weight.grad)
