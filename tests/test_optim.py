"""pgrad.optim.Adam against torch.optim.Adam: the same parameters, bit for bit, after many
steps; the same state_dict; each loads the other's state and both continue identically."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch

from pgrad.optim import Adam

SETTINGS = {
    "defaults": {},
    "weight-decay": {"weight_decay": 0.1},
    "amsgrad": {"amsgrad": True, "betas": (0.8, 0.99), "eps": 1e-6},
}


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=gen))
            for shape in [(7, 3), (3,), (2, 7), ()]]


def _groups(params: list[torch.nn.Parameter], **settings) -> list[dict]:
    return [{"params": params[:2], "lr": 0.01, **settings},
            {"params": params[2:], "lr": 0.003, **settings}]


def _steps(optimizer, params: list[torch.nn.Parameter], steps: int, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    for t in range(steps):
        optimizer.zero_grad(set_to_none=True)
        for i, p in enumerate(params):
            if (t + i) % 5 != 4:  # now and then a parameter without a gradient
                p.grad = torch.randn(p.shape, generator=gen) * 10.0 ** (i - 2)
        optimizer.step()


def _same_state(ours: dict, theirs: dict) -> None:
    assert ours["param_groups"] == theirs["param_groups"]
    assert ours["state"].keys() == theirs["state"].keys()
    for index, entry in theirs["state"].items():
        assert ours["state"][index].keys() == entry.keys()
        for key, value in entry.items():
            assert ours["state"][index][key].dtype == value.dtype, key
            assert torch.equal(ours["state"][index][key], value), (index, key)


@pytest.mark.parametrize("setting", SETTINGS)
def test_steps_are_bit_identical_to_torch_adam(setting: str) -> None:
    ours_params, torch_params = _params(), _params()
    ours = Adam(_groups(ours_params, **SETTINGS[setting]))
    theirs = torch.optim.Adam(_groups(torch_params, **SETTINGS[setting]))
    _steps(ours, ours_params, 30)
    _steps(theirs, torch_params, 30)
    for a, b in zip(ours_params, torch_params, strict=True):
        assert torch.equal(a, b)
    _same_state(ours.state_dict(), theirs.state_dict())


def test_a_fresh_optimizer_has_torch_adams_state_dict() -> None:
    _same_state(Adam(_groups(_params())).state_dict(),
                torch.optim.Adam(_groups(_params())).state_dict())
    single = _params()
    assert Adam(single).state_dict() == torch.optim.Adam(single).state_dict()


@pytest.mark.parametrize("direction", ["torch-to-ours", "ours-to-torch"])
def test_each_resumes_from_the_others_state(direction: str) -> None:
    first_params, second_params = _params(), _params()
    first = (torch.optim.Adam(_groups(first_params))
             if direction == "torch-to-ours" else Adam(_groups(first_params)))
    _steps(first, first_params, 10)
    with torch.no_grad():
        for a, b in zip(second_params, first_params, strict=True):
            a.copy_(b)
    second = (Adam(_groups(second_params)) if direction == "torch-to-ours"
              else torch.optim.Adam(_groups(second_params)))
    second.load_state_dict(copy.deepcopy(first.state_dict()))  # as from a file: no sharing
    _steps(second, second_params, 10, seed=2)
    _steps(first, first_params, 10, seed=2)
    for a, b in zip(second_params, first_params, strict=True):
        assert torch.equal(a, b)


def test_a_numeric_step_count_loads_as_a_tensor() -> None:
    params = _params()
    saved = Adam(params)
    _steps(saved, params, 3)
    state = saved.state_dict()
    state = {**state, "state": {k: {**v, "step": float(v["step"])}
                                for k, v in state["state"].items()}}
    loaded = Adam(params)
    loaded.load_state_dict(state)
    steps = [entry["step"] for entry in loaded.state.values()]
    assert all(torch.is_tensor(s) and s.dtype == torch.float32 for s in steps)


def test_groups_of_other_sizes_and_settings_it_lacks_are_refused() -> None:
    params = _params()
    state = Adam(_groups(params)).state_dict()
    with pytest.raises(ValueError, match="number of parameter groups"):
        Adam(params).load_state_dict(state)
    with pytest.raises(ValueError, match="maximize"):
        bad = {**state, "param_groups": [{**g, "maximize": True} for g in state["param_groups"]]}
        Adam(_groups(params)).load_state_dict(bad)


def test_importing_and_stepping_does_not_import_dynamo() -> None:
    probe = ("import sys, torch\nfrom pgrad.optim import Adam\n"
             "p = torch.nn.Parameter(torch.ones(3)); o = Adam([p], lr=0.1)\n"
             "p.grad = torch.ones(3); o.step(); o.zero_grad()\n"
             "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "False"
