"""The agent builds its optimizer on first use: loading and predicting never build one; a
loaded checkpoint's optimizer state is still checked at load and applied when training needs
it. Neither prediction nor training imports ``torch._dynamo`` (which any ``torch.optim``
optimizer and ``torch.func`` import: a large share of start-up)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pgrad

PROBE = """
import sys
import pgrad
agent = pgrad.Reinforce.load(sys.argv[1])
agent.predict(agent.observation_space.sample())
print("torch._dynamo" in sys.modules)
"""

TRAIN_PROBE = """
import sys
import pgrad
agent = pgrad.Reinforce("CartPole-v1", seed=0, num_envs=4, batch_episodes=4,
                        diagnostics_every=1)
agent.learn(300, tensorboard=False)
assert agent.num_updates >= 2
print("torch._dynamo" in sys.modules)
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    agent = pgrad.Reinforce("CartPole-v1", seed=0, num_envs=4, batch_episodes=4)
    agent.learn(400, tensorboard=False)
    return agent.save(tmp_path_factory.mktemp("lazy") / "model.safetensors")


def test_load_and_predict_build_no_optimizer(saved: Path) -> None:
    agent = pgrad.Reinforce.load(saved)
    agent.predict(agent.observation_space.sample())
    assert agent._optimizer is None


def test_load_and_predict_do_not_import_dynamo(saved: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, str(saved)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.strip() == "False"


def test_training_with_diagnostics_does_not_import_dynamo() -> None:
    out = subprocess.run([sys.executable, "-c", TRAIN_PROBE], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "False"


def test_the_loaded_state_is_applied_when_the_optimizer_is_built(saved: Path) -> None:
    state = pgrad.checkpoint.load(saved)
    agent = pgrad.Reinforce.from_state(state)
    entries = agent.optimizer.state_dict()["state"]
    assert len(entries) == len(list(agent.policy.parameters()))
    saved_steps = {float(entry["step"]) for entry in state.optimizer["state"].values()}
    assert {float(entry["step"]) for entry in entries.values()} == saved_steps
    assert min(saved_steps) > 0
    assert [g["lr"] for g in agent.optimizer.param_groups] == [
        g["lr"] for g in state.optimizer["param_groups"]]


def test_an_optimizer_state_of_other_groups_fails_at_load(saved: Path) -> None:
    state = pgrad.checkpoint.load(saved)
    groups = state.optimizer["param_groups"]
    merged = {**groups[0], "params": [i for g in groups for i in g["params"]]}
    assert len(groups) == 2  # the default: policy and value apart (grad_clip='separate')
    wrong = dataclasses.replace(state, optimizer={**state.optimizer, "param_groups": [merged]},
                                config=dataclasses.replace(state.config, vf_lr=1e-3))
    with pytest.raises(ValueError, match="parameter groups"):
        pgrad.Reinforce.from_state(wrong)


def test_saving_an_untrained_loaded_agent_keeps_its_optimizer_state(saved: Path,
                                                                      tmp_path: Path) -> None:
    again = pgrad.Reinforce.load(saved).save(tmp_path / "again.safetensors")
    first, second = pgrad.checkpoint.load(saved), pgrad.checkpoint.load(again)
    assert first.optimizer["param_groups"] == second.optimizer["param_groups"]
    for index, entry in first.optimizer["state"].items():
        for key, value in entry.items():
            assert torch.equal(torch.as_tensor(second.optimizer["state"][index][key]),
                               torch.as_tensor(value))
