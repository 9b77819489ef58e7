"""Adam, as ``torch.optim.Adam`` computes it on the CPU, without ``torch.optim``.

Constructing any ``torch.optim`` optimizer imports ``torch._dynamo`` (its methods are
wrapped by ``torch._disable_dynamo``, which imports it on first call), a large share of a
short training process's start-up (benchmarks/results/startup.md). This optimizer runs the
same per-tensor update as ``torch.optim.Adam(foreach=False)`` (the CPU default), op for op,
so its results are bit-identical on the CPU; its ``state_dict`` has torch's layout, so
checkpoints written with either load into the other::

    m_t = β₁ m_{t−1} + (1 − β₁) g_t            (g_t + λ θ with weight_decay λ)
    v_t = β₂ v_{t−1} + (1 − β₂) g_t²
    θ_t = θ_{t−1} − lr / (1 − β₁ᵗ) · m_t / (√v_t / √(1 − β₂ᵗ) + ε)

(``amsgrad``: v_t replaced by max(v̂_{t−1}, v_t) in the denominator; ``decoupled_weight_decay``:
θ scaled by 1 − lr λ before the update instead, as AdamW.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["Adam"]

SUPPORTED = {"maximize": False, "capturable": False, "differentiable": False, "fused": None}
"""Settings of torch's Adam this one has only in their default (off) state; ``fused=False``
is off too. ``foreach`` (how torch batches its kernels) does not change the result here."""


class Adam:
    """Adam over parameter groups (each a dict with ``params`` and optionally ``lr``), with
    ``torch.optim.Adam``'s defaults and its ``param_groups``, ``state``, ``zero_grad``,
    ``step``, ``state_dict`` and ``load_state_dict``."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False) -> None:
        self.defaults: dict[str, Any] = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
            "amsgrad": amsgrad, "maximize": False, "foreach": None, "capturable": False,
            "differentiable": False, "fused": None, "decoupled_weight_decay": False}
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: list[dict[str, Any]] = [
            {**self.defaults, **group, "params": list(group["params"])} for group in groups]
        self.state: dict[Tensor, dict[str, Tensor]] = {}
        """Per parameter: ``step`` (a float32 scalar on the CPU), ``exp_avg``, ``exp_avg_sq``
        (and ``max_exp_avg_sq`` with amsgrad), created at its first step."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (``set_to_none``) or zero it."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step of every parameter that has a gradient."""
        for group in self.param_groups:
            _check_supported(group)
            beta1, beta2 = group["betas"]
            lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state.get(param)
                if not state:
                    state = self.state[param] = _new_state(param, group["amsgrad"])
                state["step"] += 1
                if weight_decay != 0:
                    if group["decoupled_weight_decay"]:
                        param.mul_(1 - lr * weight_decay)
                    else:
                        grad = grad.add(param, alpha=weight_decay)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = state["step"].item()
                step_size = lr / (1 - beta1**step)
                bias_correction2_sqrt = (1 - beta2**step) ** 0.5
                if group["amsgrad"]:
                    torch.maximum(state["max_exp_avg_sq"], exp_avg_sq,
                                  out=state["max_exp_avg_sq"])
                    exp_avg_sq = state["max_exp_avg_sq"]
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
                param.addcdiv_(exp_avg, denom, value=-step_size)

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Adam.state_dict``'s layout: parameters numbered group by group;
        the state's tensors are the optimizer's own (not copies)."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            for param in group["params"]:
                index.setdefault(id(param), len(index))
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": [index[id(p)] for p in group["params"]]})
        state = {index[id(p)]: entry for p, entry in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take a ``state_dict`` of this optimizer or of ``torch.optim.Adam`` over groups of
        the same sizes: its settings and, cast to each parameter's dtype and device, its
        state (a step count saved as a number becomes a float32 tensor, as torch does)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(saved["params"]) != len(group["params"])
               for saved, group in zip(saved_groups, self.param_groups, strict=True)):
            raise ValueError("loaded state dict contains a parameter group that doesn't "
                             "match the size of optimizer's group")
        params = {}
        groups = []
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            params.update(zip(saved["params"], group["params"], strict=True))
            groups.append({**saved, "params": group["params"]})
        for group in groups:
            _check_supported(group)
        state = {}
        for key, entry in state_dict["state"].items():
            param = params[int(key)]
            state[param] = {name: _cast(name, value, param) for name, value in entry.items()}
        self.param_groups, self.state = groups, state


def _new_state(param: Tensor, amsgrad: bool) -> dict[str, Tensor]:
    state = {"step": torch.tensor(0.0, dtype=torch.float32),
             "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
             "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format)}
    if amsgrad:
        state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


def _cast(name: str, value: Any, param: Tensor) -> Tensor:
    """A saved state value as the optimizer keeps it: the step a float32 CPU scalar, the
    moments a copy in the parameter's dtype, on its device."""
    if name == "step":
        return (value.clone() if torch.is_tensor(value)
                else torch.tensor(float(value), dtype=torch.float32))
    dtype = param.dtype if param.is_floating_point() else value.dtype
    return value.to(dtype=dtype, device=param.device, copy=True)


def _check_supported(group: dict[str, Any]) -> None:
    """Raise ValueError for a setting of torch's Adam that this one does not have."""
    for key, default in SUPPORTED.items():
        if group.get(key, default) not in (default, False):
            raise ValueError(f"Adam setting {key}={group[key]!r} is not supported "
                             f"(only {key}={default!r})")
