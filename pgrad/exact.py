"""Exact policy gradients on finite MDPs, and the Monte-Carlo REINFORCE estimators to check.

For a finite MDP held as tensors and a tabular softmax policy π(a|s) = softmax(θ[s])_a:

    P_π[s, s'] = Σ_a π(a|s) P[s, a, s']        r_π[s] = Σ_a π(a|s) R[s, a]
    V^π        = (I − γ P_π)⁻¹ r_π              (the Bellman equation, solved)
    J(θ)       = Σ_s μ(s) V^π(s) = E[ Σ_t γ^t R_{t+1} ],   s_0 ~ μ
    Q^π(s, a)  = R[s, a] + γ Σ_s' P[s, a, s'] V^π(s')
    d_γ(s)     = Σ_t γ^t Pr(s_t = s) = [μᵀ (I − γ P_π)⁻¹](s)

J is an exact, differentiable function of θ (one linear solve, float64), so ∇J comes from
autograd; the policy gradient theorem gives the same in closed form for a softmax policy:

    ∂J/∂θ[s, a] = d_γ(s) π(a|s) (Q^π(s, a) − V^π(s)).

The Monte-Carlo side samples K episodes under π_θ (vectorised over episodes, one Python step
per time step) and returns one gradient estimate per episode, ``[K, S, A]``, so tests can
take their mean and variance. With G_t = Σ_{k≥t} γ^{k−t} R_{k+1} and
∇log π(a|s) = onehot(a) − π(·|s) in row s (zero elsewhere):

    "full_return"                  Σ_t ∇log π(a_t|s_t) · (G_0 − b(s_t))        (i)
    "reward_to_go"                 Σ_t γ^t ∇log π(a_t|s_t) · (G_t − b(s_t))    (ii), (iii)
    "reward_to_go_without_gamma_t" Σ_t ∇log π(a_t|s_t) · (G_t − b(s_t))        (iv)

(i)–(iii) are unbiased for ∇J with any baseline b(s) that does not depend on the action.
(iv) is the estimator used in practice, and in the tutorial: it drops γ^t, and its
expectation Σ_s η(s) π(a|s) (Q − V)(s, a) weights states by their *undiscounted* expected
visits η instead of d_γ, so it is not the gradient of the discounted objective (Nota &
Thomas, 2020, "Is the Policy Gradient a Gradient?"). On an MDP whose episodes never end, η
is infinite and (iv) grows with the horizon.

Choices:

* The objective is the discounted, infinite-horizon one, γ < 1. A terminal state is an
  *absorbing* state with zero reward (every action loops back to it, R = 0); nothing needs
  declaring. An episode ends when it enters one: no action is taken there.
* Sampled episodes are cut at a fixed horizon H, by default the smallest H with
  γ^H < 1e-6 (:func:`default_horizon`). (i)–(iii) are then exactly unbiased for the gradient
  of the H-step objective, which differs from ∇J by O(γ^H). (iv) has no γ^t to make the cut
  harmless: give it a horizon by which episodes have ended.
* Rewards are deterministic: taking a in s pays R[s, a] (the expectation is what J needs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "ESTIMATORS",
    "Episodes",
    "Estimator",
    "FiniteMDP",
    "J",
    "default_horizon",
    "discounted_state_visitation",
    "expected_estimate",
    "grad_J",
    "make_chain_mdp",
    "make_linewalk_mdp",
    "make_random_mdp",
    "policy_gradient_theorem",
    "policy_probs",
    "q_values",
    "reinforce_estimates",
    "sample_episodes",
    "undiscounted_state_visitation",
    "values",
]

Estimator = Literal["full_return", "reward_to_go", "reward_to_go_without_gamma_t"]
ESTIMATORS: tuple[Estimator, ...] = ("full_return", "reward_to_go", "reward_to_go_without_gamma_t")

_DTYPE = torch.float64
_TOL = 1e-8


# ---------------------------------------------------------------- the MDP
@dataclass(frozen=True)
class FiniteMDP:
    """A finite, discounted MDP as tensors (stored as float64, S states, A actions)."""

    transitions: Tensor
    """``[S, A, S]``: P[s, a, s'], the probability of s' after taking a in s."""
    rewards: Tensor
    """``[S, A]``: R[s, a], the reward for taking a in s."""
    gamma: float
    """Discount factor γ in [0, 1)."""
    initial: Tensor
    """``[S]``: μ(s), the distribution of the first state."""

    def __post_init__(self) -> None:
        for name in ("transitions", "rewards", "initial"):
            value = getattr(self, name)
            if not isinstance(value, Tensor):
                raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
            if not value.is_floating_point():
                raise ValueError(f"{name} must be a floating-point tensor, got {value.dtype}")
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} must be finite (no nan or inf)")
            object.__setattr__(self, name, value.detach().to(_DTYPE))
        p, r, mu = self.transitions, self.rewards, self.initial
        if p.dim() != 3 or p.shape[0] != p.shape[2] or 0 in p.shape:
            raise ValueError(f"transitions must have shape [S, A, S], got {tuple(p.shape)}")
        num_states, num_actions = p.shape[:2]
        if r.shape != (num_states, num_actions):
            raise ValueError(
                f"rewards must have shape [S, A] = {(num_states, num_actions)}, "
                f"got {tuple(r.shape)}"
            )
        if mu.shape != (num_states,):
            raise ValueError(
                f"initial must have shape [S] = ({num_states},), got {tuple(mu.shape)}"
            )
        _check_distribution(p, "transitions[s, a, :]")
        _check_distribution(mu, "initial")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(
                f"gamma must be in [0, 1) for the discounted objective, got {self.gamma}"
            )

    @property
    def num_states(self) -> int:
        """S."""
        return self.transitions.shape[0]

    @property
    def num_actions(self) -> int:
        """A."""
        return self.transitions.shape[1]

    @property
    def absorbing(self) -> Tensor:
        """``[S]`` bool: terminal states, those every action keeps with reward 0."""
        stays = self.transitions.diagonal(dim1=0, dim2=2).T  # [S, A]: P[s, a, s]
        return ((stays == 1.0) & (self.rewards == 0.0)).all(dim=1)


def _check_distribution(probs: Tensor, name: str) -> None:
    if (probs < 0).any():
        raise ValueError(f"{name} must be non-negative probabilities")
    sums = probs.sum(dim=-1)
    if not torch.allclose(sums, torch.ones_like(sums), rtol=0.0, atol=_TOL):
        worst = (sums - 1).abs().max().item()
        raise ValueError(f"{name} must sum to 1 over the last axis; off by up to {worst:.3g}")


# ---------------------------------------------------------------- small MDPs for tests
def make_chain_mdp(gamma: float = 0.9, slip: float = 0.1) -> FiniteMDP:
    """Two states, two actions: 0 = stay, 1 = move to the other state; starts in state 0.

    Each action does the other's effect with probability ``slip``. Staying in state 1 pays
    1, everything else 0: the agent must move first and then stay.
    """
    stay = torch.eye(2, dtype=_DTYPE)
    move = stay.flip(0)
    transitions = torch.stack(
        [(1 - slip) * stay + slip * move, (1 - slip) * move + slip * stay], dim=1
    )
    rewards = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=_DTYPE)
    return FiniteMDP(transitions, rewards, gamma, torch.tensor([1.0, 0.0], dtype=_DTYPE))


def make_random_mdp(
    num_states: int = 4, num_actions: int = 3, gamma: float = 0.9, seed: int = 0
) -> FiniteMDP:
    """A random MDP: P[s, a, ·] and μ uniform on the simplex, R[s, a] uniform in [0, 1)."""
    gen = torch.Generator().manual_seed(seed)

    def simplex(*shape: int) -> Tensor:  # Dirichlet(1, …, 1): normalised exponentials
        x = -torch.log1p(-torch.rand(shape, generator=gen, dtype=_DTYPE))
        return x / x.sum(dim=-1, keepdim=True)

    transitions = simplex(num_states, num_actions, num_states)
    rewards = torch.rand(num_states, num_actions, generator=gen, dtype=_DTYPE)
    return FiniteMDP(transitions, rewards, gamma, simplex(num_states))


def make_linewalk_mdp(half_width: int = 10, gamma: float = 0.99) -> FiniteMDP:
    """The tutorial's 1-D walk (``pgrad/LineWalk-v0``) as a finite MDP, without its step cap.

    Positions i = −n…n (x = i/10 for n = 10) are states 0…2n, the start is i = 0, and state
    2n+1 is terminal. Action 1 moves right, 0 left; moving past +n pays +1 and ends the
    episode, past −n pays −1 and ends it, any other step pays 0.01.
    """
    n = half_width
    num_states = 2 * n + 2
    terminal = num_states - 1
    transitions = torch.zeros(num_states, 2, num_states, dtype=_DTYPE)
    rewards = torch.full((num_states, 2), 0.01, dtype=_DTYPE)
    for state in range(2 * n + 1):
        transitions[state, 0, state - 1 if state > 0 else terminal] = 1.0
        transitions[state, 1, state + 1 if state < 2 * n else terminal] = 1.0
    rewards[0, 0], rewards[2 * n, 1] = -1.0, 1.0
    transitions[terminal, :, terminal] = 1.0
    rewards[terminal] = 0.0
    initial = torch.zeros(num_states, dtype=_DTYPE)
    initial[n] = 1.0
    return FiniteMDP(transitions, rewards, gamma, initial)


# ---------------------------------------------------------------- exact quantities
def policy_probs(theta: Tensor) -> Tensor:
    """π(a|s) = softmax(θ[s])_a, ``[S, A]`` in float64 (differentiable in θ)."""
    return torch.softmax(theta.to(_DTYPE), dim=-1)


def values(theta: Tensor, mdp: FiniteMDP) -> Tensor:
    """V^π = (I − γ P_π)⁻¹ r_π, ``[S]``."""
    pi = _probs(theta, mdp)
    p_pi = torch.einsum("sa,sat->st", pi, mdp.transitions)
    r_pi = (pi * mdp.rewards).sum(dim=1)
    eye = torch.eye(mdp.num_states, dtype=_DTYPE)
    return torch.linalg.solve(eye - mdp.gamma * p_pi, r_pi)


def q_values(theta: Tensor, mdp: FiniteMDP) -> Tensor:
    """Q^π(s, a) = R[s, a] + γ Σ_s' P[s, a, s'] V^π(s'), ``[S, A]``."""
    return mdp.rewards + mdp.gamma * mdp.transitions @ values(theta, mdp)


def J(theta: Tensor, mdp: FiniteMDP) -> Tensor:
    """J(θ) = μ · V^π = E[Σ_t γ^t R_{t+1}], a float64 scalar with gradient in ``theta``.

    Args:
        theta: ``[S, A]`` logits of the tabular softmax policy.
        mdp: the MDP.
    """
    return mdp.initial @ values(theta, mdp)


def grad_J(theta: Tensor, mdp: FiniteMDP) -> Tensor:
    """∇_θ J(θ), ``[S, A]`` float64, by autograd through the linear solve of :func:`J`."""
    theta = theta.detach().to(_DTYPE).requires_grad_(True)
    (grad,) = torch.autograd.grad(J(theta, mdp), theta)
    return grad


def discounted_state_visitation(theta: Tensor, mdp: FiniteMDP) -> Tensor:
    """d_γ(s) = Σ_t γ^t Pr(s_t = s) = [μᵀ (I − γ P_π)⁻¹](s), ``[S]``.

    Not normalised: it sums to 1/(1 − γ); (1 − γ) d_γ is a distribution. J = d_γ · r_π.
    """
    pi = _probs(theta, mdp)
    p_pi = torch.einsum("sa,sat->st", pi, mdp.transitions)
    eye = torch.eye(mdp.num_states, dtype=_DTYPE)
    return torch.linalg.solve((eye - mdp.gamma * p_pi).T, mdp.initial)


def undiscounted_state_visitation(theta: Tensor, mdp: FiniteMDP) -> Tensor:
    """η(s) = Σ_t Pr(s_t = s, episode still running), the expected visits, ``[S]``.

    0 at absorbing states. Finite only if every episode ends: from every state some
    absorbing state must be reachable (a softmax policy tries every action), else
    ValueError.
    """
    pi = _probs(theta, mdp)
    running = ~mdp.absorbing
    if not _always_terminates(mdp):
        raise ValueError(
            "undiscounted visits are infinite: some state cannot reach an absorbing state "
            "(a terminal state that every action keeps, with reward 0)"
        )
    p_pi = torch.einsum("sa,sat->st", pi, mdp.transitions)[running][:, running]
    eye = torch.eye(p_pi.shape[0], dtype=_DTYPE)
    visits = torch.zeros(mdp.num_states, dtype=_DTYPE)
    visits[running] = torch.linalg.solve((eye - p_pi).T, mdp.initial[running])
    return visits


def policy_gradient_theorem(theta: Tensor, mdp: FiniteMDP) -> Tensor:
    """∇J by the policy gradient theorem: d_γ(s) π(a|s) (Q^π(s, a) − V^π(s)), ``[S, A]``.

    Σ_s d_γ(s) Σ_a ∇π(a|s) Q^π(s, a), written out for the softmax policy.
    """
    return _weighted_advantages(theta, mdp, discounted_state_visitation(theta, mdp))


def expected_estimate(theta: Tensor, mdp: FiniteMDP, estimator: Estimator) -> Tensor:
    """What :func:`reinforce_estimates` averages to as K, H → ∞, ``[S, A]`` (any baseline).

    ∇J for "full_return" and "reward_to_go"; for "reward_to_go_without_gamma_t",
    η(s) π(a|s) (Q^π(s, a) − V^π(s)) with η the undiscounted visits (episodes must end).
    """
    _check_estimator(estimator)
    if estimator == "reward_to_go_without_gamma_t":
        return _weighted_advantages(theta, mdp, undiscounted_state_visitation(theta, mdp))
    return policy_gradient_theorem(theta, mdp)


def _weighted_advantages(theta: Tensor, mdp: FiniteMDP, visits: Tensor) -> Tensor:
    pi = _probs(theta, mdp).detach()
    q = q_values(theta.detach(), mdp)
    v = (pi * q).sum(dim=1, keepdim=True)
    return visits.detach()[:, None] * pi * (q - v)


def _always_terminates(mdp: FiniteMDP) -> bool:
    reaches = mdp.absorbing.clone()
    step = (mdp.transitions > 0).any(dim=1)  # [S, S]: s' reachable from s in one step
    for _ in range(mdp.num_states):
        reaches = reaches | (step & reaches[None, :]).any(dim=1)
    return bool(reaches.all())


def _probs(theta: Tensor, mdp: FiniteMDP) -> Tensor:
    if theta.shape != (mdp.num_states, mdp.num_actions):
        raise ValueError(
            f"theta must have shape [S, A] = {(mdp.num_states, mdp.num_actions)}, "
            f"got {tuple(theta.shape)}"
        )
    return policy_probs(theta)


# ---------------------------------------------------------------- Monte-Carlo REINFORCE
@dataclass(frozen=True)
class Episodes:
    """K sampled episodes, time first, padded to the horizon H."""

    states: Tensor
    """``[H, K]`` long: s_t."""
    actions: Tensor
    """``[H, K]`` long: a_t (meaningless where not ``running``)."""
    rewards: Tensor
    """``[H, K]`` float64: R_{t+1} = R[s_t, a_t], 0 where not ``running``."""
    running: Tensor
    """``[H, K]`` bool: step t was taken (s_t is not absorbing)."""


def default_horizon(gamma: float, tol: float = 1e-6) -> int:
    """The smallest H ≥ 1 with γ^H < tol: 132 for γ = 0.9, 1375 for γ = 0.99."""
    if gamma <= 0.0:
        return 1
    return max(1, math.floor(math.log(tol) / math.log(gamma)) + 1)


def sample_episodes(
    theta: Tensor,
    mdp: FiniteMDP,
    num_episodes: int,
    *,
    horizon: int | None = None,
    generator: torch.Generator | None = None,
) -> Episodes:
    """Roll out K episodes from s_0 ~ μ under π_θ, all K in step (inverse-CDF sampling).

    Args:
        theta: ``[S, A]`` policy logits.
        mdp: the MDP.
        num_episodes: K.
        horizon: H, the cut; default :func:`default_horizon` (γ^H < 1e-6). Sampling stops
            early, and the tensors are shorter, once every episode has ended.
        generator: the source of randomness (seed it for reproducible episodes).
    """
    horizon = default_horizon(mdp.gamma) if horizon is None else horizon
    if num_episodes < 1 or horizon < 1:
        raise ValueError(f"num_episodes and horizon must be ≥ 1, got {num_episodes}, {horizon}")
    cum_pi = _probs(theta, mdp).detach().cumsum(dim=1)
    cum_p = mdp.transitions.cumsum(dim=2)
    absorbing = mdp.absorbing
    last_action, last_state = mdp.num_actions - 1, mdp.num_states - 1

    def draw(cdf: Tensor) -> Tensor:  # one index per row of the [K, n] CDF
        u = torch.rand(num_episodes, 1, generator=generator, dtype=_DTYPE)
        return (cdf <= u).sum(dim=1)

    states = torch.empty(horizon, num_episodes, dtype=torch.long)
    actions = torch.empty_like(states)
    state = draw(mdp.initial.cumsum(0).expand(num_episodes, -1)).clamp_(max=last_state)
    length = horizon
    for t in range(horizon):
        if absorbing[state].all():
            length = t
            break
        states[t] = state
        actions[t] = draw(cum_pi[state]).clamp_(max=last_action)
        state = draw(cum_p[state, actions[t]]).clamp_(max=last_state)
    states, actions = states[:length], actions[:length]
    running = ~absorbing[states]
    rewards = torch.where(running, mdp.rewards[states, actions], 0.0)
    return Episodes(states, actions, rewards, running)


def reinforce_estimates(
    theta: Tensor,
    mdp: FiniteMDP,
    episodes: Episodes,
    estimator: Estimator = "reward_to_go",
    baseline: Tensor | float | None = None,
) -> Tensor:
    """One REINFORCE gradient estimate per episode, ``[K, S, A]`` float64.

    See the module docstring for the three estimators. ∇log π uses the softmax's closed
    form onehot(a_t) − π(·|s_t), so nothing is differentiated here.

    Args:
        theta: ``[S, A]`` the logits the episodes were sampled with.
        mdp: the MDP.
        episodes: from :func:`sample_episodes`.
        estimator: "full_return" (i), "reward_to_go" (ii, iii) or
            "reward_to_go_without_gamma_t" (iv).
        baseline: b(s_t) subtracted from the return: ``[S]`` per state (e.g.
            :func:`values`), a constant, or None (0).

    Returns:
        The mean over K estimates ∇J (or, for (iv), :func:`expected_estimate`).
    """
    _check_estimator(estimator)
    pi = _probs(theta, mdp).detach()
    states, actions, running = episodes.states, episodes.actions, episodes.running
    num_steps, num_episodes = states.shape
    num_states, num_actions = mdp.num_states, mdp.num_actions

    returns = _returns_to_go(episodes.rewards, mdp.gamma)  # G_t, [H, K]
    if estimator == "full_return":
        returns = returns[:1].expand(num_steps, -1)
    if baseline is not None:
        b = torch.as_tensor(baseline, dtype=_DTYPE).detach()
        if b.dim() == 1 and b.shape != (num_states,):
            raise ValueError(f"baseline must be a number or [S] = ({num_states},), got "
                             f"{tuple(b.shape)}")
        returns = returns - (b[states] if b.dim() == 1 else b)
    weights = torch.where(running, returns, 0.0)
    if estimator == "reward_to_go":
        discounts = mdp.gamma ** torch.arange(num_steps, dtype=_DTYPE)
        weights = weights * discounts[:, None]

    # Σ_t w_t (e_{s_t} ⊗ onehot(a_t)) − Σ_t w_t (e_{s_t} ⊗ π(·|s_t))
    flat = (states * num_actions + actions).T
    estimates = torch.zeros(num_episodes, num_states * num_actions, dtype=_DTYPE)
    estimates.scatter_add_(1, flat, weights.T)
    per_state = torch.zeros(num_episodes, num_states, dtype=_DTYPE)
    per_state.scatter_add_(1, states.T, weights.T)
    return estimates.view(num_episodes, num_states, num_actions) - per_state[:, :, None] * pi


def _returns_to_go(rewards: Tensor, gamma: float) -> Tensor:
    """G_t = R_{t+1} + γ G_{t+1}, cut after the last row, ``[H, K]`` in float64.

    pgrad.returns.discounted_returns computes the same, but rounds γ to float32; the checks
    here compare against float64 exact values.
    """
    returns = torch.empty_like(rewards)
    following = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        following = returns[t] = rewards[t] + gamma * following
    return returns


def _check_estimator(estimator: str) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
