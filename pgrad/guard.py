"""The divergence guard: an update whose loss, gradient or resulting parameters are not
finite (nan or inf) never reaches the weights or a checkpoint unnoticed.

The guard judges plain tensors and returns a :class:`Verdict`; the agent acts on it (steps,
skips the update, or raises :class:`Diverged`). Under data parallelism the agent sums the
guard's flags over all ranks first (:func:`nonfinite_flags` → ``World.sum`` →
:func:`judge_update`), so every rank reaches the same verdict and steps or skips together.

Cost in the hot path: one ``torch.isfinite`` on (loss, gradient norm) before the
optimiser's step, and one on the parameters' largest magnitude after it; two scalars
synchronised per update (and, with several ranks, one all-reduce of the two flags).
Observations and rewards are checked by the collector (:mod:`pgrad.rollout`) as they
arrive.

``Config.on_nonfinite``: ``"stop"`` → the verdict ``stop`` (the agent raises
:class:`Diverged`; the trainer then saves nothing, so the last checkpoint on disk is the
last good one); ``"skip"`` → the verdict ``skip`` (the agent clears the gradients, takes no
step and counts it in ``agent.skipped_updates``). Non-finite parameters always stop: a step
cannot be taken back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from pgrad.errors import PgradError

__all__ = ["STEP", "Diverged", "Verdict", "judge_parameters", "judge_update", "nonfinite_flags"]


class Diverged(PgradError):
    """Training produced nan or inf; ``what`` names it, ``step`` is the env step count."""

    def __init__(self, what: str, update: int, step: int) -> None:
        self.what, self.update, self.step = what, update, step
        super().__init__(f"training diverged: the {what} is not finite (nan or inf) at update "
                         f"{update}, step {step}; nothing was saved after the last checkpoint "
                         "(lower the learning rate, or set on_nonfinite='skip')")


@dataclass(frozen=True)
class Verdict:
    """What to do with an update: ``step``, ``skip`` it, or ``stop`` training because the
    ``what`` (``"loss"``, ``"gradient"`` or ``"parameters"``) is not finite."""

    action: Literal["step", "skip", "stop"]
    what: str = ""


STEP = Verdict("step")


def nonfinite_flags(loss: Tensor | None, grad_norm: Tensor) -> list[float]:
    """``[loss not finite, gradient not finite]`` as 0.0 / 1.0, one host sync.

    ``loss`` None: not judged (a data-parallel rank with no valid sample has a mean over
    nothing as its loss, but still a finite, all-reduced gradient). Summing these flags
    over ranks before :func:`judge_update` makes the verdict global.
    """
    loss_t = grad_norm.new_zeros(()) if loss is None else loss.detach().to(grad_norm.dtype)
    return (~torch.isfinite(torch.stack([loss_t, grad_norm.detach()]))).double().tolist()


def judge_update(flags: Sequence[float], on_nonfinite: str) -> Verdict:
    """The verdict on an update from ``[loss flags, gradient flags]`` (summed over ranks)."""
    loss_bad, grad_bad = flags
    if not loss_bad and not grad_bad:
        return STEP
    what = "loss" if loss_bad else "gradient"
    return Verdict("skip" if on_nonfinite == "skip" else "stop", what)


def judge_parameters(parameters: Iterable[Tensor]) -> Verdict:
    """``step`` (go on) when every parameter is finite after a step, else ``stop``."""
    largest = torch.nn.utils.get_total_norm([p.detach() for p in parameters],
                                            norm_type=float("inf"))
    return STEP if bool(torch.isfinite(largest)) else Verdict("stop", "parameters")
