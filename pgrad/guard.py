"""The divergence guard: an update whose loss, gradient or resulting parameters are not
finite (nan or inf) never reaches the weights or a checkpoint unnoticed.

Cost in the hot path: one ``torch.isfinite`` on (loss + gradient norm) before the
optimiser's step, and one on the parameters' largest magnitude after it; two scalars
synchronised per update. Observations and rewards are checked by the collector
(:mod:`pgrad.rollout`) as they arrive.

``Config.on_nonfinite``: ``"stop"`` raises :class:`Diverged` (the trainer then saves
nothing, so the last checkpoint on disk is the last good one); ``"skip"`` drops the
update (gradients cleared, no step) and counts it in ``agent.skipped_updates``.
Non-finite parameters always stop: a step cannot be taken back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from pgrad.errors import PgradError

if TYPE_CHECKING:
    from pgrad.agent import Reinforce
    from pgrad.rollout import Batch

__all__ = ["Diverged", "check_parameters", "check_update"]


class Diverged(PgradError):
    """Training produced nan or inf; ``what`` names it, ``step`` is the env step count."""

    def __init__(self, what: str, update: int, step: int) -> None:
        self.what, self.update, self.step = what, update, step
        super().__init__(f"training diverged: the {what} is not finite (nan or inf) at update "
                         f"{update}, step {step}; nothing was saved after the last checkpoint "
                         "(lower the learning rate, or set on_nonfinite='skip')")


def check_update(agent: Reinforce, loss: torch.Tensor, grad_norm: torch.Tensor,
                 batch: Batch) -> bool:
    """True when ``loss`` and ``grad_norm`` are finite and the step may be taken."""
    if bool(torch.isfinite(loss.detach() + grad_norm)):
        return True
    what = "loss" if not bool(torch.isfinite(loss.detach())) else "gradient"
    agent.optimizer.zero_grad(set_to_none=True)
    if agent.config.on_nonfinite == "skip":
        agent.skipped_updates += 1
        return False
    raise Diverged(what, agent.num_updates + 1, agent.num_timesteps + batch.num_steps)


def check_parameters(agent: Reinforce, batch: Batch) -> None:
    """Raise :class:`Diverged` unless every parameter is finite (checked after a step)."""
    params = [p.detach() for p in agent.policy.parameters()]
    largest = torch.nn.utils.get_total_norm(params, norm_type=float("inf"))
    if not bool(torch.isfinite(largest)):
        raise Diverged("parameters", agent.num_updates + 1, agent.num_timesteps + batch.num_steps)
