"""pgrad.exact: exact J and ∇J on finite MDPs, and the REINFORCE estimators checked against them.

Statistical checks compare a Monte-Carlo mean over K episodes with an exact value in units of
its standard error, z = (mean − exact) / (std / √K), and require |z| < 4 for every component
(under the null a component exceeds 4 with probability 6e-5; the seeds are fixed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import Tensor

from pgrad.exact import (
    ESTIMATORS,
    FiniteMDP,
    J,
    default_horizon,
    discounted_state_visitation,
    expected_estimate,
    grad_J,
    make_chain_mdp,
    make_linewalk_mdp,
    make_random_mdp,
    policy_gradient_theorem,
    policy_probs,
    q_values,
    reinforce_estimates,
    sample_episodes,
    undiscounted_state_visitation,
    values,
)

F64 = torch.float64
Z_MAX = 4.0

MDPS: dict[str, Callable[[], FiniteMDP]] = {
    "chain": lambda: make_chain_mdp(gamma=0.9),
    "random": lambda: make_random_mdp(4, 3, gamma=0.9, seed=1),
    "linewalk": lambda: make_linewalk_mdp(half_width=3, gamma=0.9),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The sampler runs many small ops per step: one thread is fastest (and steady)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def random_theta(mdp: FiniteMDP, seed: int, scale: float = 0.7) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(mdp.num_states, mdp.num_actions, generator=gen, dtype=F64)


def z_scores(samples: Tensor, exact: Tensor) -> Tensor:
    """(mean − exact) / standard error per component; 0 where the samples do not vary."""
    stderr = samples.std(dim=0) / samples.shape[0] ** 0.5
    diff = samples.mean(dim=0) - exact
    return torch.where(stderr > 0, diff / stderr.clamp_min(1e-300), diff.abs() * 1e12)



# ---------------------------------------------------------------- exact J and ∇J
@pytest.mark.parametrize("name", MDPS)
def test_grad_J_matches_central_finite_differences(name: str) -> None:
    mdp = MDPS[name]()
    theta = random_theta(mdp, seed=3)
    eps = 1e-5
    numeric = torch.zeros_like(theta)
    for index in range(theta.numel()):
        step = torch.zeros(theta.numel(), dtype=F64)
        step[index] = eps
        step = step.view_as(theta)
        numeric.view(-1)[index] = (J(theta + step, mdp) - J(theta - step, mdp)) / (2 * eps)
    exact = grad_J(theta, mdp)
    torch.testing.assert_close(exact, numeric, rtol=1e-6, atol=1e-9)
    assert exact.dtype == F64 and exact.shape == theta.shape


@pytest.mark.parametrize("name", MDPS)
def test_autograd_equals_the_policy_gradient_theorem(name: str) -> None:
    mdp = MDPS[name]()
    theta = random_theta(mdp, seed=4)
    torch.testing.assert_close(grad_J(theta, mdp), policy_gradient_theorem(theta, mdp),
                               rtol=1e-10, atol=1e-12)
    # Each row of a softmax gradient sums to 0 (adding a constant to θ[s] changes nothing).
    torch.testing.assert_close(grad_J(theta, mdp).sum(dim=1), torch.zeros(mdp.num_states,
                               dtype=F64), rtol=0, atol=1e-12)


def test_value_identities() -> None:
    mdp = make_random_mdp(5, 3, gamma=0.8, seed=2)
    theta = random_theta(mdp, seed=5)
    pi, v, q = policy_probs(theta), values(theta, mdp), q_values(theta, mdp)
    torch.testing.assert_close((pi * q).sum(dim=1), v)  # V = Σ_a π Q
    visits = discounted_state_visitation(theta, mdp)
    assert visits.sum().item() == pytest.approx(1 / (1 - mdp.gamma), rel=1e-12)
    r_pi = (pi * mdp.rewards).sum(dim=1)
    assert (visits @ r_pi).item() == pytest.approx(J(theta, mdp).item(), rel=1e-12)


def test_hand_checked_values() -> None:
    # Chain without slip, policy "move from 0, stay in 1": reward 1 from t = 1 on.
    chain = make_chain_mdp(gamma=0.9, slip=0.0)
    sure = torch.tensor([[-50.0, 50.0], [50.0, -50.0]], dtype=F64)
    assert J(sure, chain).item() == pytest.approx(0.9 / (1 - 0.9), rel=1e-12)
    # LineWalk, always right from the middle: n steps paying 0.01, then +1 on exit.
    n, gamma = 3, 0.9
    walk = make_linewalk_mdp(half_width=n, gamma=gamma)
    right = torch.tensor([[-50.0, 50.0]] * walk.num_states, dtype=F64)
    expected = sum(0.01 * gamma**t for t in range(n)) + gamma**n
    assert J(right, walk).item() == pytest.approx(expected, rel=1e-12)
    assert walk.absorbing.tolist() == [False] * (2 * n + 1) + [True]
    assert not chain.absorbing.any()


def test_default_horizon() -> None:
    assert default_horizon(0.9) == 132 and 0.9**132 < 1e-6 <= 0.9**131
    assert default_horizon(0.99) == 1375
    assert default_horizon(0.0) == 1


# ---------------------------------------------------------------- Monte-Carlo vs exact
def test_J_and_visitation_match_a_monte_carlo_average() -> None:
    mdp = make_random_mdp(4, 3, gamma=0.9, seed=1)
    theta = random_theta(mdp, seed=6)
    gen = torch.Generator().manual_seed(10)
    episodes = sample_episodes(theta, mdp, 20_000, generator=gen)
    discounts = mdp.gamma ** torch.arange(episodes.rewards.shape[0], dtype=F64)
    returns = (discounts[:, None] * episodes.rewards).sum(dim=0)  # G_0 per episode
    assert abs(z_scores(returns[:, None], J(theta, mdp)[None]).item()) < Z_MAX
    onehot = torch.nn.functional.one_hot(episodes.states, mdp.num_states).to(F64)
    visits = (discounts[:, None, None] * onehot).sum(dim=0)  # [K, S]
    assert z_scores(visits, discounted_state_visitation(theta, mdp)).abs().max() < Z_MAX


def test_sampling_is_reproducible_and_stops_at_terminal_states() -> None:
    mdp = make_linewalk_mdp(half_width=2, gamma=0.9)
    theta = torch.zeros(mdp.num_states, 2, dtype=F64)
    first = sample_episodes(theta, mdp, 500, generator=torch.Generator().manual_seed(3))
    second = sample_episodes(theta, mdp, 500, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first.states, second.states) and torch.equal(first.actions, second.actions)
    assert first.states.shape[0] < default_horizon(0.9)  # every walk ended early
    # Once an episode stops running it never restarts, and only the exit pays ±1.
    assert (first.running[1:] <= first.running[:-1]).all()
    assert (first.rewards[~first.running] == 0).all()
    assert set(first.rewards.unique().tolist()) <= {0.0, 0.01, 1.0, -1.0}


def test_analytic_score_equals_autograd_of_log_pi() -> None:
    mdp = make_random_mdp(3, 4, gamma=0.8, seed=7)
    theta = random_theta(mdp, seed=8)
    gen = torch.Generator().manual_seed(1)
    episodes = sample_episodes(theta, mdp, 4, horizon=12, generator=gen)
    baseline = values(theta, mdp)
    for estimator in ESTIMATORS:
        estimates = reinforce_estimates(theta, mdp, episodes, estimator, baseline)
        returns = torch.zeros_like(episodes.rewards)
        running_sum = torch.zeros(4, dtype=F64)
        for t in reversed(range(episodes.rewards.shape[0])):  # G_t, a plain loop
            running_sum = episodes.rewards[t] + mdp.gamma * running_sum
            returns[t] = running_sum
        for k in range(4):
            leaf = theta.clone().requires_grad_(True)
            log_pi = torch.log_softmax(leaf, dim=1)[episodes.states[:, k], episodes.actions[:, k]]
            steps = torch.arange(episodes.rewards.shape[0], dtype=F64)
            g = returns[0, k].expand_as(steps) if estimator == "full_return" else returns[:, k]
            weight = g - baseline[episodes.states[:, k]]
            if estimator == "reward_to_go":
                weight = weight * mdp.gamma**steps
            (expected,) = torch.autograd.grad((log_pi * weight).sum(), leaf)
            torch.testing.assert_close(estimates[k], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", MDPS)
def test_reinforce_estimators_are_unbiased(name: str) -> None:
    mdp = MDPS[name]()
    theta = random_theta(mdp, seed=11)
    episodes = sample_episodes(theta, mdp, 20_000, generator=torch.Generator().manual_seed(12))
    exact = grad_J(theta, mdp)
    v = values(theta, mdp)
    cases = {
        "(i) full return": ("full_return", None),
        "(ii) reward-to-go": ("reward_to_go", None),
        "(iii) baseline V^π": ("reward_to_go", v),
        "(iii) constant baseline": ("reward_to_go", float(J(theta, mdp))),
        "(i) with baseline V^π": ("full_return", v),
    }
    for label, (estimator, baseline) in cases.items():
        estimates = reinforce_estimates(theta, mdp, episodes, estimator, baseline)
        assert estimates.shape == (20_000, *theta.shape)
        worst = z_scores(estimates, exact).abs().max().item()
        assert worst < Z_MAX, f"{name} {label}: max |z| = {worst:.2f}"


def test_value_baseline_lowers_the_variance() -> None:
    mdp = make_random_mdp(4, 3, gamma=0.9, seed=1)
    theta = random_theta(mdp, seed=13)
    episodes = sample_episodes(theta, mdp, 5_000, generator=torch.Generator().manual_seed(14))

    def total_variance(estimator: str, baseline: Tensor | None = None) -> float:
        estimates = reinforce_estimates(theta, mdp, episodes, estimator, baseline)  # type: ignore[arg-type]
        return estimates.var(dim=0).sum().item()  # trace of the covariance

    full = total_variance("full_return")
    to_go = total_variance("reward_to_go")
    with_baseline = total_variance("reward_to_go", values(theta, mdp))
    assert to_go < full / 5  # rewards before t are noise for step t's score
    assert with_baseline < to_go / 10


def test_estimator_without_gamma_t_is_biased() -> None:
    """Nota & Thomas (2020): dropping γ^t weights states by undiscounted visits."""
    mdp = make_linewalk_mdp(half_width=3, gamma=0.9)
    theta = random_theta(mdp, seed=15)
    episodes = sample_episodes(theta, mdp, 20_000, horizon=1000,
                               generator=torch.Generator().manual_seed(16))
    assert episodes.running.shape[0] < 1000  # every episode ended before the cut
    estimates = reinforce_estimates(theta, mdp, episodes, "reward_to_go_without_gamma_t")
    exact = grad_J(theta, mdp)
    z = z_scores(estimates, exact)
    assert z.abs().max() > 20  # far outside any confidence interval around ∇J
    # … and it is unbiased for what the theory says it estimates: η(s) π(a|s) A(s, a).
    expected = expected_estimate(theta, mdp, "reward_to_go_without_gamma_t")
    assert z_scores(estimates, expected).abs().max() < Z_MAX
    assert (expected - exact).norm() > 0.2 * exact.norm()
    # Tabular softmax: each state's row is rescaled by η(s) / d_γ(s) ≥ 1, signs are kept.
    ratio = undiscounted_state_visitation(theta, mdp) / discounted_state_visitation(theta, mdp)
    assert (ratio[~mdp.absorbing] >= 1).all()
    torch.testing.assert_close(expected, ratio[:, None] * exact, rtol=1e-9, atol=1e-12)


def test_undiscounted_visits_need_episodes_that_end() -> None:
    mdp = make_random_mdp(3, 2, seed=0)
    with pytest.raises(ValueError, match="absorbing"):
        undiscounted_state_visitation(torch.zeros(3, 2), mdp)
    with pytest.raises(ValueError, match="absorbing"):
        expected_estimate(torch.zeros(3, 2), mdp, "reward_to_go_without_gamma_t")


# ---------------------------------------------------------------- invalid input
def _valid() -> dict:
    mdp = make_chain_mdp()
    return {"transitions": mdp.transitions.clone(), "rewards": mdp.rewards.clone(),
            "gamma": 0.9, "initial": mdp.initial.clone()}


def _with(**changes: object) -> dict:
    return {**_valid(), **changes}


def _bad_row() -> dict:
    kwargs = _valid()
    kwargs["transitions"][0, 1] = torch.tensor([0.5, 0.6])
    return kwargs


INVALID = {
    "transitions not [S, A, S]": (_with(transitions=torch.ones(2, 2, 3) / 3), "shape"),
    "transitions 2-d": (_with(transitions=torch.eye(2)), "shape"),
    "rewards wrong shape": (_with(rewards=torch.zeros(2, 3)), "rewards must have shape"),
    "initial wrong shape": (_with(initial=torch.ones(3) / 3), "initial must have shape"),
    "row sums to 1.1": (_bad_row(), "sum to 1"),
    "negative probability": (_with(initial=torch.tensor([1.5, -0.5])), "non-negative"),
    "initial sums to 2": (_with(initial=torch.tensor([1.0, 1.0])), "sum to 1"),
    "gamma = 1": (_with(gamma=1.0), "gamma"),
    "gamma < 0": (_with(gamma=-0.1), "gamma"),
    "nan reward": (_with(rewards=torch.tensor([[0.0, float("nan")], [1.0, 0.0]])), "finite"),
    "integer tensor": (_with(initial=torch.tensor([1, 0])), "floating-point"),
    "not a tensor": (_with(rewards=[[0.0, 0.0], [1.0, 0.0]]), "torch.Tensor"),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_mdps_raise_value_error(case: str) -> None:
    kwargs, message = INVALID[case]
    with pytest.raises(ValueError, match=message):
        FiniteMDP(**kwargs)


def test_mdp_is_frozen_float64() -> None:
    mdp = FiniteMDP(**_with(rewards=torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float32)))
    assert mdp.rewards.dtype == F64
    with pytest.raises(AttributeError):
        mdp.gamma = 0.5  # type: ignore[misc]


def test_invalid_arguments_raise_value_error() -> None:
    mdp = make_chain_mdp()
    theta = torch.zeros(2, 2, dtype=F64)
    episodes = sample_episodes(theta, mdp, 3, horizon=5, generator=torch.Generator())
    with pytest.raises(ValueError, match="theta must have shape"):
        J(torch.zeros(3, 2), mdp)
    with pytest.raises(ValueError, match="estimator must be one of"):
        reinforce_estimates(theta, mdp, episodes, "vanilla")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="baseline must be"):
        reinforce_estimates(theta, mdp, episodes, "reward_to_go", torch.zeros(3))
    with pytest.raises(ValueError, match="num_episodes"):
        sample_episodes(theta, mdp, 0)
