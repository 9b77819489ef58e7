"""Property-based tests (hypothesis) of returns and losses over random shapes and values.

``tests/test_returns.py`` already checks discounted returns against a Python loop on random
inputs; these check the algebra the estimator relies on: linearity of returns, the
meaning of γ = 0 and of termination, normalisation, the loss's composition, the
invariances of the normalised policy loss, and its gradient."""

from __future__ import annotations

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pgrad.losses import advantages, reinforce_loss
from pgrad.returns import discounted_returns, normalize

SETTINGS = settings(max_examples=40, deadline=None, database=None)
shapes = st.one_of(st.tuples(st.integers(1, 20)),
                   st.tuples(st.integers(1, 12), st.integers(1, 5)))
values = st.floats(-100, 100, allow_nan=False, width=32)


@st.composite
def episode_streams(draw, dtype=torch.float64):
    """Two reward streams sharing episode ends and bootstrap values, with γ."""
    shape = draw(shapes)
    size = torch.Size(shape).numel()

    def tensor(elements, tensor_dtype):
        data = draw(st.lists(elements, min_size=size, max_size=size))
        return torch.tensor(data, dtype=tensor_dtype).reshape(shape)

    return {
        "r1": tensor(values, dtype), "r2": tensor(values, dtype),
        "terminated": tensor(st.booleans(), torch.bool),
        "truncated": tensor(st.booleans(), torch.bool),
        "next_values": tensor(values, dtype),
        "gamma": draw(st.floats(0.0, 1.0)),
    }


def returns_of(rewards, s, next_values=None):
    return discounted_returns(rewards, s["gamma"], terminated=s["terminated"],
                              truncated=s["truncated"], next_values=next_values)


# ---------------------------------------------------------------- returns
@SETTINGS
@given(s=episode_streams(), scale=st.floats(-10, 10))
def test_returns_are_linear_in_the_rewards(s, scale) -> None:
    """G(a r₁ + r₂) = a G(r₁) + G(r₂) with the same episode ends (no bootstrap)."""
    combined = returns_of(scale * s["r1"] + s["r2"], s)
    separate = scale * returns_of(s["r1"], s) + returns_of(s["r2"], s)
    torch.testing.assert_close(combined, separate, rtol=1e-9, atol=1e-7)


@SETTINGS
@given(s=episode_streams())
def test_bootstrap_values_add_linearly(s) -> None:
    """Bootstrapping adds the discounted V at each cut: G(r, V) − G(r, 0) = G(0, V)."""
    with_values = returns_of(s["r1"], s, s["next_values"])
    difference = with_values - returns_of(s["r1"], s)
    torch.testing.assert_close(difference,
                               returns_of(torch.zeros_like(s["r1"]), s, s["next_values"]),
                               rtol=1e-9, atol=1e-6)


@SETTINGS
@given(s=episode_streams())
def test_gamma_zero_or_terminal_everywhere_gives_the_rewards(s) -> None:
    rewards, nv = s["r1"], s["next_values"]
    torch.testing.assert_close(discounted_returns(rewards, 0.0, terminated=s["terminated"],
                                                  truncated=s["truncated"], next_values=nv),
                               rewards)
    everywhere = torch.ones_like(s["terminated"])
    torch.testing.assert_close(discounted_returns(rewards, s["gamma"], terminated=everywhere,
                                                  next_values=nv), rewards)


@SETTINGS
@given(s=episode_streams(dtype=torch.float32))
def test_returns_keep_shape_dtype_and_finiteness(s) -> None:
    returns = returns_of(s["r1"], s, s["next_values"])
    assert returns.shape == s["r1"].shape and returns.dtype == torch.float32
    assert torch.isfinite(returns).all()
    # |G| is bounded by the largest reward (and value) times the longest horizon.
    bound = (s["r1"].abs().max() + s["next_values"].abs().max()) * (s["r1"].shape[0] + 1)
    assert (returns.abs() <= bound * (1 + 1e-5)).all()


@SETTINGS
@given(data=st.lists(st.integers(-50, 50), min_size=2, max_size=60))
def test_normalize_gives_mean_zero_and_std_one(data) -> None:
    x = torch.tensor(data, dtype=torch.float64)
    assume(x.std() > 1e-3)
    z = normalize(x)
    assert abs(float(z.mean())) < 1e-9
    assert abs(float(z.std()) - 1) < 1e-6


# ---------------------------------------------------------------- losses
@st.composite
def loss_inputs(draw):
    size = draw(st.integers(2, 40))

    def vector(elements):
        return torch.tensor(draw(st.lists(elements, min_size=size, max_size=size)),
                            dtype=torch.float64)

    return {"log_probs": vector(st.floats(-20, 0)), "returns": vector(values),
            "values": vector(values), "entropy": vector(st.floats(0, 5)),
            "vf_coef": draw(st.floats(0, 2)), "ent_coef": draw(st.floats(0, 1))}


@SETTINGS
@given(x=loss_inputs(), normalized=st.booleans(), baseline=st.booleans())
def test_loss_is_the_sum_of_its_terms_and_finite(x, normalized, baseline) -> None:
    values = x["values"] if baseline else None
    terms = reinforce_loss(x["log_probs"], x["returns"], values, x["entropy"],
                           vf_coef=x["vf_coef"], ent_coef=x["ent_coef"],
                           normalize_advantages=normalized)
    assert all(t.shape == () and torch.isfinite(t) for t in terms.values())
    expected = (terms["loss_policy"] + x["vf_coef"] * terms["loss_value"]
                - x["ent_coef"] * terms["entropy"])
    torch.testing.assert_close(terms["loss"], expected)
    adv = advantages(x["returns"], values, normalize_advantages=normalized)
    torch.testing.assert_close(terms["loss_policy"], -(x["log_probs"] * adv).mean())


@SETTINGS
@given(x=loss_inputs(), scale=st.floats(0.01, 100), shift=st.floats(-100, 100))
def test_normalized_policy_loss_ignores_the_scale_and_shift_of_returns(x, scale,
                                                                       shift) -> None:
    """With normalised advantages, a positive affine change of G leaves L_π unchanged."""
    assume(x["returns"].std() > 1e-2)
    base = reinforce_loss(x["log_probs"], x["returns"], normalize_advantages=True)
    moved = reinforce_loss(x["log_probs"], scale * x["returns"] + shift,
                           normalize_advantages=True)
    torch.testing.assert_close(moved["loss_policy"], base["loss_policy"], rtol=1e-6,
                               atol=1e-6)


@SETTINGS
@given(x=loss_inputs(), seed=st.integers(0, 2**16))
def test_loss_does_not_depend_on_the_order_of_the_batch(x, seed) -> None:
    order = torch.randperm(len(x["returns"]), generator=torch.Generator().manual_seed(seed))
    a = reinforce_loss(x["log_probs"], x["returns"], x["values"], x["entropy"],
                       normalize_advantages=True)
    b = reinforce_loss(x["log_probs"][order], x["returns"][order], x["values"][order],
                       x["entropy"][order], normalize_advantages=True)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


@SETTINGS
@given(x=loss_inputs())
def test_policy_gradient_is_minus_the_advantage_and_misses_the_baseline(x) -> None:
    """∂L_π/∂log π_t = −A_t / B: positive advantages raise log π; V gets no policy gradient."""
    log_probs = x["log_probs"].clone().requires_grad_()
    values = x["values"].clone().requires_grad_()
    reinforce_loss(log_probs, x["returns"], values)["loss_policy"].backward()
    expected = -(x["returns"] - x["values"]) / len(x["returns"])
    torch.testing.assert_close(log_probs.grad, expected)
    assert values.grad is None or not values.grad.any()
