"""pgrad.guard judges plain tensors and returns a verdict; it changes nothing itself."""

from __future__ import annotations

import pytest
import torch

from pgrad import guard

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(("loss", "grad_norm", "flags"), [
    (1.0, 2.0, [0.0, 0.0]), (NAN, 2.0, [1.0, 0.0]), (1.0, INF, [0.0, 1.0]),
    (-INF, NAN, [1.0, 1.0])])
def test_flags_name_what_is_not_finite(loss: float, grad_norm: float,
                                       flags: list[float]) -> None:
    assert guard.nonfinite_flags(torch.tensor(loss), torch.tensor(grad_norm)) == flags


def test_a_loss_left_unjudged_counts_only_the_gradient() -> None:
    assert guard.nonfinite_flags(None, torch.tensor(3.0)) == [0.0, 0.0]
    assert guard.nonfinite_flags(None, torch.tensor(NAN)) == [0.0, 1.0]


@pytest.mark.parametrize(("flags", "on_nonfinite", "verdict"), [
    ([0.0, 0.0], "stop", guard.STEP),
    ([0.0, 0.0], "skip", guard.STEP),
    ([1.0, 0.0], "stop", guard.Verdict("stop", "loss")),
    ([0.0, 2.0], "stop", guard.Verdict("stop", "gradient")),  # summed over two ranks
    ([1.0, 1.0], "skip", guard.Verdict("skip", "loss")),
    ([0.0, 1.0], "skip", guard.Verdict("skip", "gradient"))])
def test_verdict_on_an_update(flags: list[float], on_nonfinite: str,
                              verdict: guard.Verdict) -> None:
    assert guard.judge_update(flags, on_nonfinite) == verdict


def test_verdict_on_parameters() -> None:
    params = [torch.ones(2, 3), torch.zeros(4)]
    assert guard.judge_parameters(params) == guard.STEP
    params[1][2] = INF
    assert guard.judge_parameters(params) == guard.Verdict("stop", "parameters")


def test_diverged_names_what_update_and_step() -> None:
    error = guard.Diverged("gradient", 7, 140)
    assert (error.what, error.update, error.step) == ("gradient", 7, 140)
    assert "the gradient is not finite (nan or inf) at update 7, step 140" in str(error)
