"""pgrad.returns: exact discounted returns, episode ends, bootstrapping, normalisation."""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

import pytest
import torch
from conftest import loop_returns, loop_returns_tensor, tutorial_returns
from hypothesis import given, settings
from hypothesis import strategies as st

from pgrad.returns import discounted_returns, normalize

TUTORIAL_REWARDS = [0.0] * 9 + [1.0]
TUTORIAL_RAW = [0.9135, 0.9227, 0.9321, 0.9415, 0.9510, 0.9606, 0.9703, 0.9801, 0.9900, 1.0000]


def random_episode_inputs(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {
        "rewards": torch.randn(shape, generator=gen, dtype=dtype),
        "terminated": torch.rand(shape, generator=gen) < 0.15,
        "truncated": torch.rand(shape, generator=gen) < 0.15,
        "next_values": torch.randn(shape, generator=gen, dtype=dtype) * 5,
    }


# ---------------------------------------------------------------- the tutorial's example
def test_tutorial_raw_returns_are_powers_of_gamma() -> None:
    returns = discounted_returns(torch.tensor(TUTORIAL_REWARDS), 0.99)
    expected = [0.99 ** (9 - t) for t in range(10)]
    assert returns.tolist() == pytest.approx(expected, abs=1e-6)
    assert returns.tolist() == pytest.approx(tutorial_returns(TUTORIAL_REWARDS), abs=1e-6)
    assert returns.tolist() == pytest.approx(TUTORIAL_RAW, abs=1e-4)


def test_tutorial_normalized_returns() -> None:
    raw = tutorial_returns(TUTORIAL_REWARDS)
    mean, std = statistics.mean(raw), statistics.stdev(raw)  # stdev: unbiased, as Tensor.std
    expected = [(g - mean) / (std + 1e-8) for g in raw]

    returns = discounted_returns(torch.tensor(TUTORIAL_REWARDS), 0.99, normalize=True)

    assert returns.tolist() == pytest.approx(expected, abs=1e-4)
    assert returns[0].item() == pytest.approx(-1.4664, abs=1e-4)  # the tutorial's table
    assert returns[-1].item() == pytest.approx(1.5062, abs=1e-4)
    assert normalize(torch.tensor(raw)).tolist() == pytest.approx(expected, abs=1e-4)


# ---------------------------------------------------------------- hand-checkable cases
def test_gamma_0_1_with_a_termination_in_the_middle() -> None:
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0])
    terminated = torch.tensor([False, True, False, False])
    returns = discounted_returns(rewards, 0.1, terminated=terminated)
    # Episode 1: G1 = 2, G0 = 1 + 0.1·2. Episode 2 is cut by the batch end (no baseline):
    # G3 = 4, G2 = 3 + 0.1·4.
    assert returns.tolist() == pytest.approx([1.2, 2.0, 3.4, 4.0], abs=1e-6)


def test_two_envs_terminated_versus_truncated() -> None:
    rewards = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    terminated = torch.tensor([[False, False], [True, False], [False, False], [False, False]])
    truncated = torch.tensor([[False, False], [False, True], [False, False], [False, False]])
    next_values = torch.full((4, 2), 10.0)

    plain = discounted_returns(rewards, 0.1, terminated=terminated, truncated=truncated)
    boot = discounted_returns(rewards, 0.1, terminated=terminated, truncated=truncated,
                              next_values=next_values)

    # Env 0 terminated after step 1: never bootstrapped there. Env 1 was cut after step 1:
    # no baseline → G1 = 2; baseline → G1 = 2 + 0.1·10 = 3, G0 = 1 + 0.1·3 = 1.3.
    # The last row of both is a cut: G3 = 4 (+ 0.1·10 = 5 with a baseline), G2 = 3 + 0.1·G3.
    expected_plain = torch.tensor([[1.2, 1.2], [2.0, 2.0], [3.4, 3.4], [4.0, 4.0]])
    expected_boot = torch.tensor([[1.2, 1.3], [2.0, 3.0], [3.5, 3.5], [5.0, 5.0]])
    torch.testing.assert_close(plain, expected_plain)
    torch.testing.assert_close(boot, expected_boot)


def test_next_values_are_read_only_at_cuts() -> None:
    rewards = torch.tensor([1.0, 1.0, 1.0])
    next_values = torch.tensor([100.0, 100.0, 7.0])
    returns = discounted_returns(rewards, 0.1, next_values=next_values)
    # Only the last row is a cut: G2 = 1 + 0.1·7, G1 = 1 + 0.1·G2, G0 = 1 + 0.1·G1.
    assert returns.tolist() == pytest.approx([1.117, 1.17, 1.7], abs=1e-6)


def test_terminated_wins_over_truncated() -> None:
    rewards = torch.tensor([1.0, 2.0])
    both = torch.tensor([True, True])
    returns = discounted_returns(rewards, 0.5, terminated=both, truncated=both,
                                 next_values=torch.tensor([9.0, 9.0]))
    assert returns.tolist() == [1.0, 2.0]


def test_last_row_terminated_is_not_bootstrapped() -> None:
    returns = discounted_returns(torch.tensor([1.0, 1.0]), 0.5,
                                 terminated=torch.tensor([False, True]),
                                 next_values=torch.tensor([9.0, 9.0]))
    assert returns.tolist() == [1.5, 1.0]


def test_float64_returns_keep_gamma_in_float64() -> None:
    rewards = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    returns = discounted_returns(rewards, 0.99)
    assert returns.dtype == torch.float64
    assert returns.tolist() == [0.99 * 0.99, 0.99, 1.0]


def test_gamma_zero_and_one() -> None:
    rewards = torch.tensor([1.0, 2.0, 3.0])
    assert discounted_returns(rewards, 0.0).tolist() == [1.0, 2.0, 3.0]
    assert discounted_returns(rewards, 1.0).tolist() == [6.0, 5.0, 3.0]


def test_empty_batch() -> None:
    assert discounted_returns(torch.zeros(0), 0.9).shape == (0,)
    assert discounted_returns(torch.zeros(0, 3), 0.9).shape == (0, 3)


def test_time_limit_bootstrap_recovers_the_infinite_horizon_value() -> None:
    """Reward 1 forever, cut after 20 steps: with V(s_20) = 1/(1−γ) every G_t is 1/(1−γ)."""
    gamma = 0.9
    rewards = torch.ones(20, dtype=torch.float64)
    truncated = torch.zeros(20, dtype=torch.bool)
    truncated[-1] = True
    value = 1 / (1 - gamma)

    boot = discounted_returns(rewards, gamma, truncated=truncated,
                              next_values=torch.full((20,), value, dtype=torch.float64))
    cut = discounted_returns(rewards, gamma, truncated=truncated)

    assert boot.tolist() == pytest.approx([value] * 20, rel=1e-6)
    assert cut[0].item() == pytest.approx((1 - gamma**20) / (1 - gamma), rel=1e-6)
    assert cut[0].item() < 0.9 * value


# ---------------------------------------------------------------- the loop reference
@pytest.mark.parametrize(
    ("dtype", "tolerance"), [(torch.float32, 1e-4), (torch.float64, 1e-12)], ids=["f32", "f64"]
)
@pytest.mark.parametrize("shape", [(50,), (40, 6)], ids=["T", "TxN"])
def test_matches_the_python_loop(shape, dtype, tolerance) -> None:
    inputs = random_episode_inputs(shape, dtype, seed=0)
    for gamma in (0.0, 0.37, 0.99, 1.0):
        for with_values in (False, True):
            kwargs = dict(inputs) if with_values else {**inputs, "next_values": None}
            returns = discounted_returns(gamma=gamma, **kwargs)
            expected = loop_returns_tensor(gamma=gamma, **kwargs)
            assert returns.dtype == dtype
            assert returns.shape == shape
            torch.testing.assert_close(returns.double(), expected, rtol=tolerance,
                                       atol=tolerance)


@settings(max_examples=60, deadline=None, database=None)
@given(
    data=st.data(),
    length=st.integers(1, 25),
    num_envs=st.one_of(st.none(), st.integers(1, 4)),
    gamma=st.floats(0.0, 1.0),
    with_values=st.booleans(),
)
def test_property_matches_the_python_loop(data, length, num_envs, gamma, with_values) -> None:
    shape = (length,) if num_envs is None else (length, num_envs)
    size = length * (num_envs or 1)
    floats = st.floats(-10, 10, allow_nan=False, width=32)

    def tensor(elements, dtype) -> torch.Tensor:
        values = data.draw(st.lists(elements, min_size=size, max_size=size))
        return torch.tensor(values, dtype=dtype).reshape(shape)

    rewards = tensor(floats, torch.float32)
    terminated = tensor(st.booleans(), torch.bool)
    truncated = tensor(st.booleans(), torch.bool)
    next_values = tensor(floats, torch.float32) if with_values else None

    returns = discounted_returns(rewards, gamma, terminated=terminated, truncated=truncated,
                                 next_values=next_values)
    expected = loop_returns_tensor(rewards, gamma, terminated, truncated, next_values)
    torch.testing.assert_close(returns.double(), expected, rtol=1e-5, atol=1e-3)


def test_concatenated_episodes_equal_episodes_alone() -> None:
    gen = torch.Generator().manual_seed(1)
    gamma = 0.95
    lengths = [1, 7, 3, 12, 5]
    episodes = [torch.randn(n, generator=gen) for n in lengths]
    ends = [torch.zeros(n, dtype=torch.bool) for n in lengths]
    for end in ends:
        end[-1] = True

    joined = discounted_returns(torch.cat(episodes), gamma, terminated=torch.cat(ends))
    pairs = zip(episodes, ends, strict=True)
    alone = [discounted_returns(r, gamma, terminated=e) for r, e in pairs]

    torch.testing.assert_close(joined, torch.cat(alone))
    assert joined[lengths[0] - 1].item() == episodes[0][-1].item()


def test_concatenated_truncated_episodes_equal_episodes_alone() -> None:
    gen = torch.Generator().manual_seed(2)
    lengths = [4, 6, 2]
    rewards = [torch.randn(n, generator=gen) for n in lengths]
    values = [torch.randn(n, generator=gen) for n in lengths]
    cuts = [torch.arange(n) == n - 1 for n in lengths]

    joined = discounted_returns(torch.cat(rewards), 0.9, truncated=torch.cat(cuts),
                                next_values=torch.cat(values))
    alone = [discounted_returns(r, 0.9, truncated=c, next_values=v)
             for r, c, v in zip(rewards, cuts, values, strict=True)]

    torch.testing.assert_close(joined, torch.cat(alone))


def test_inputs_are_not_mutated() -> None:
    inputs = random_episode_inputs((30, 4), torch.float32, seed=3)
    for flags in (inputs["terminated"], inputs["truncated"]):
        flags[-1] = False  # the function marks the last row as a cut: on its own copy
    before = {k: v.clone() for k, v in inputs.items()}

    discounted_returns(gamma=0.9, normalize=True, **inputs)

    for name, tensor in inputs.items():
        assert torch.equal(tensor, before[name]), name


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rewards": torch.zeros(2, 3, 4)},
        {"rewards": torch.zeros(())},
        {"rewards": torch.zeros(5, 2), "terminated": torch.zeros(5, dtype=torch.bool)},
        {"rewards": torch.zeros(5, 2), "truncated": torch.zeros(2, 5, dtype=torch.bool)},
        {"rewards": torch.zeros(5), "next_values": torch.zeros(5, 1)},
        {"rewards": torch.zeros(5), "gamma": 1.5},
        {"rewards": torch.zeros(5), "gamma": -0.1},
    ],
    ids=["3d", "scalar", "terminated", "truncated", "next_values", "gamma>1", "gamma<0"],
)
def test_bad_shapes_and_gamma_raise_value_error(kwargs) -> None:
    kwargs = {"gamma": 0.9, **kwargs}
    with pytest.raises(ValueError):
        discounted_returns(**kwargs)


# ---------------------------------------------------------------- normalize
def test_normalize_uses_the_unbiased_std() -> None:
    x = torch.tensor([1.0, 2.0, 4.0, 9.0])
    mean, std = statistics.mean(x.tolist()), statistics.stdev(x.tolist())
    expected = [(v - mean) / (std + 1e-8) for v in x.tolist()]
    assert normalize(x).tolist() == pytest.approx(expected, abs=1e-6)


def test_normalize_single_entry_is_unchanged() -> None:
    assert normalize(torch.tensor([3.0])).tolist() == [3.0]
    assert discounted_returns(torch.tensor([3.0]), 0.9, normalize=True).tolist() == [3.0]


def test_normalize_with_mask_leaves_masked_out_entries_unchanged() -> None:
    x = torch.tensor([[1.0, 50.0], [2.0, -7.0], [6.0, 0.5]])
    mask = torch.tensor([[True, False], [True, False], [True, True]])
    inside = [1.0, 2.0, 6.0, 0.5]
    mean, std = statistics.mean(inside), statistics.stdev(inside)

    out = normalize(x, mask)

    assert out[~mask].tolist() == [50.0, -7.0]
    assert out[mask].tolist() == pytest.approx([(v - mean) / (std + 1e-8) for v in inside])
    assert x.tolist() == [[1.0, 50.0], [2.0, -7.0], [6.0, 0.5]]


def test_normalize_with_empty_mask_changes_nothing() -> None:
    x = torch.tensor([1.0, 2.0])
    assert torch.equal(normalize(x, torch.zeros(2, dtype=torch.bool)), x)


# ---------------------------------------------------------------- layering
@pytest.mark.parametrize("module", ["returns.py", "losses.py"])
def test_pure_maths_modules_import_only_torch(module: str) -> None:
    source = (Path(__file__).resolve().parent.parent / "pgrad" / module).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0] if node.level == 0 else "pgrad")
    assert imported <= {"__future__", "torch", "pgrad", "math", "typing"}, imported


def test_loop_reference_agrees_with_the_tutorial() -> None:
    assert loop_returns(TUTORIAL_REWARDS, 0.99) == pytest.approx(
        tutorial_returns(TUTORIAL_REWARDS), abs=1e-12)


# ---------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_and_bool_rewards_are_discounted_as_floats(dtype: torch.dtype) -> None:
    # full_like on an integer tensor once turned γ = 0.99 into 0: [0, 0, 1] came back
    returns = discounted_returns(torch.tensor([0, 0, 1]).to(dtype), 0.99)
    assert returns.dtype == torch.float32
    torch.testing.assert_close(returns, torch.tensor([0.9801, 0.99, 1.0]))


def test_integer_rewards_with_episode_ends_and_bootstrap() -> None:
    rewards = torch.tensor([[1, 2], [3, 4]])
    got = discounted_returns(rewards, 0.5, terminated=torch.tensor([[1, 0], [0, 0]]),
                             next_values=torch.tensor([[0.0, 0.0], [10.0, 20.0]]))
    expected = discounted_returns(rewards.float(), 0.5,
                                  terminated=torch.tensor([[1, 0], [0, 0]]),
                                  next_values=torch.tensor([[0.0, 0.0], [10.0, 20.0]]))
    assert torch.equal(got, expected)
    assert got.tolist() == [[1.0, 2 + 0.5 * (4 + 0.5 * 20)], [3 + 0.5 * 10, 4 + 0.5 * 20]]


def test_float64_rewards_stay_float64() -> None:
    returns = discounted_returns(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), 0.99)
    assert returns.dtype == torch.float64
    assert returns.tolist() == [0.99 * 0.99, 0.99, 1.0]


# ---------------------------------------------------------------- λ-returns and GAE(λ)
def reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """A_t = Σ_k (γλ)^k δ_{t+k} within the episode, δ = r + γ V(s') − V(s), written as a
    plain loop over one env (the last row is a cut)."""
    length = len(rewards)
    adv = [0.0] * length
    for t in range(length):
        total, factor = 0.0, 1.0
        for k in range(t, length):
            end = terminated[k] or truncated[k] or k == length - 1
            future = 0.0 if terminated[k] else next_values[k]
            total += factor * (rewards[k] + gamma * future - values[k])
            if end:
                break
            factor *= gamma * lam
        adv[t] = total
    return adv


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95])
def test_gae_equals_the_sum_of_discounted_td_errors(lam: float) -> None:
    from pgrad.returns import gae_advantages

    data = random_episode_inputs((40, 3), torch.float64, seed=7)
    values = torch.randn((40, 3), generator=torch.Generator().manual_seed(1),
                         dtype=torch.float64)
    # Within an episode V(s_{t+1}) is the next row's V(s): make the data consistent.
    next_values = data["next_values"].clone()
    ends = data["terminated"] | data["truncated"]
    next_values[:-1] = torch.where(ends[:-1], next_values[:-1], values[1:])
    adv = gae_advantages(data["rewards"], values, next_values, 0.9, lam,
                         terminated=data["terminated"], truncated=data["truncated"])
    for i in range(3):
        expected = reference_gae(data["rewards"][:, i].tolist(), values[:, i].tolist(),
                                 next_values[:, i].tolist(), data["terminated"][:, i].tolist(),
                                 data["truncated"][:, i].tolist(), 0.9, lam)
        assert adv[:, i].tolist() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lambda_one_is_bit_for_bit_the_discounted_returns(dtype: torch.dtype) -> None:
    from pgrad.returns import lambda_returns

    data = random_episode_inputs((200, 5), dtype, seed=3)
    mc = discounted_returns(data["rewards"], 0.99, terminated=data["terminated"],
                            truncated=data["truncated"], next_values=data["next_values"])
    lam = lambda_returns(data["rewards"], data["next_values"], 0.99, 1.0,
                         terminated=data["terminated"], truncated=data["truncated"])
    assert torch.equal(mc, lam)


def test_lambda_zero_is_the_one_step_target() -> None:
    from pgrad.returns import lambda_returns

    rewards = torch.tensor([1.0, 2.0, 3.0])
    next_values = torch.tensor([10.0, 20.0, 30.0])
    terminated = torch.tensor([False, False, True])
    out = lambda_returns(rewards, next_values, 0.5, 0.0, terminated=terminated)
    assert out.tolist() == [1.0 + 0.5 * 10.0, 2.0 + 0.5 * 20.0, 3.0]


def test_lambda_returns_reject_bad_input() -> None:
    from pgrad.returns import gae_advantages, lambda_returns

    r = torch.zeros(4)
    with pytest.raises(ValueError, match="lam"):
        lambda_returns(r, r, 0.9, 1.5)
    with pytest.raises(ValueError, match="next_values"):
        lambda_returns(r, torch.zeros(3), 0.9, 0.5)
    with pytest.raises(ValueError, match="values"):
        gae_advantages(r, torch.zeros(5), r, 0.9, 0.5)
