"""The options that make policy gradients reliable: GAE(λ), separate clipping and learning
rates for policy and value, the linear learning-rate schedule, evaluation during training
and stopping on it; each bit-exact on resume."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from conftest import differing_parameters, make_endless_env

import pgrad
from pgrad.callbacks import BEST_FILE, BEST_RECORD, EvalCallback
from pgrad.envs import LINEWALK_ID
from pgrad.errors import PgradError
from pgrad.tools.cli import main

SMALL = {"num_envs": 4, "batch_episodes": 4, "hidden_sizes": (8,), "diagnostics_every": 0}


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as f:
        return list(csv.DictReader(f))


def one_update(**kwargs) -> pgrad.Reinforce:
    agent = pgrad.Reinforce("CartPole-v1", seed=0, num_envs=8, batch_episodes=8,
                            hidden_sizes=(16,), **kwargs)
    agent.update(agent.make_collector().collect())
    agent.close()
    return agent


# ---------------------------------------------------------------- GAE(λ)
def test_gae_lambda_one_through_the_lambda_returns_trains_identically() -> None:
    """value_target='gae' sends the targets through the λ-returns; with λ = 1 they are the
    Monte-Carlo returns bit for bit, so training is identical to the default path."""
    runs = []
    for kwargs in ({}, {"gae_lambda": 1.0, "value_target": "gae"}):
        agent = pgrad.Reinforce("CartPole-v1", seed=2, hidden_sizes=(16,), num_envs=16,
                                batch_episodes=16, value_steps=3, **kwargs)
        agent.learn(2000, tensorboard=False)
        runs.append(agent)
    assert runs[0].num_updates >= 3
    assert differing_parameters(runs[0].policy, runs[1].policy) == []


def test_gae_lambda_below_one_changes_the_update_and_needs_a_baseline() -> None:
    a, b = one_update(), one_update(gae_lambda=0.9)
    assert differing_parameters(a.policy, b.policy)
    with pytest.raises(PgradError, match="gae_lambda"):
        pgrad.Config(gae_lambda=0.9, baseline=False)
    with pytest.raises(PgradError, match="gae_lambda"):
        pgrad.Config(gae_lambda=1.5)


def test_gae_value_target_fits_the_lambda_returns() -> None:
    mc = one_update(gae_lambda=0.8, grad_clip="separate")
    gae = one_update(gae_lambda=0.8, grad_clip="separate", value_target="gae")
    value_keys = [k for k in mc.policy.state_dict() if k.startswith("value_")]
    changed = differing_parameters(mc.policy, gae.policy)
    assert changed and set(changed) <= set(value_keys)  # the policy's own step is the same


# ---------------------------------------------------------------- clipping, learning rates
def policy_grads(agent: pgrad.Reinforce) -> list[torch.Tensor]:
    """The clipped gradients of the policy's own parameters (not the value's)."""
    return [p.grad.clone() for name, p in agent.policy.named_parameters()
            if not name.startswith("value_") and p.grad is not None]


def test_separate_clipping_keeps_the_policy_step_independent_of_the_value_loss() -> None:
    """The value loss ×100: with separate clipping the policy's clipped gradient (and so
    its parameters) are bit-identical; with one joint clip the policy's step shrinks."""
    small = one_update(grad_clip="separate", vf_coef=0.5, vf_max_grad_norm=0.5)
    large = one_update(grad_clip="separate", vf_coef=50.0, vf_max_grad_norm=0.5)
    assert all(torch.equal(a, b) for a, b in zip(policy_grads(small), policy_grads(large),
                                                 strict=True))
    policy_keys = {k for k in small.policy.state_dict() if not k.startswith("value_")}
    assert not set(differing_parameters(small.policy, large.policy)) & policy_keys
    joint_small = one_update(grad_clip="joint", vf_coef=0.5)
    joint_large = one_update(grad_clip="joint", vf_coef=50.0)
    norm = [torch.cat([g.flatten() for g in policy_grads(a)]).norm()
            for a in (joint_small, joint_large)]
    assert norm[1] < 0.5 * norm[0]


def test_separate_groups_hold_the_value_only_parameters_at_their_own_rate() -> None:
    agent = pgrad.Reinforce("CartPole-v1", grad_clip="separate", vf_lr=1e-3)
    policy_group, value_group = agent.optimizer.param_groups
    assert (policy_group["lr"], value_group["lr"]) == (agent.config.learning_rate, 1e-3)
    assert agent.config.learning_rate != 1e-3
    value_ids = {id(p) for m in (agent.policy.value_backbone, agent.policy.value_head)
                 for p in m.parameters()}
    assert {id(p) for p in value_group["params"]} == value_ids
    shared = pgrad.Reinforce("CartPole-v1", value_net="shared", vf_lr=1e-3)
    backbone = {id(p) for p in shared.policy.backbone.parameters()}
    assert backbone <= {id(p) for p in shared.optimizer.param_groups[0]["params"]}
    assert [id(p) for p in shared.optimizer.param_groups[1]["params"]] == [
        id(p) for p in shared.policy.value_head.parameters()]
    joint = pgrad.Reinforce("CartPole-v1", grad_clip="joint")
    assert len(joint.optimizer.param_groups) == 1  # the layout of earlier checkpoints


def test_separate_clipping_logs_both_norms() -> None:
    agent = pgrad.Reinforce("CartPole-v1", seed=0, grad_clip="separate", **SMALL)
    metrics = agent.update(agent.make_collector().collect())
    agent.close()
    assert metrics["train/vf_grad_norm"] > 0 and metrics["train/grad_norm"] > 0


# ---------------------------------------------------------------- learning-rate schedule
def test_linear_schedule_halves_the_rate_at_half_the_budget() -> None:
    """An endless env cut only by n_steps: every batch is 2 × 5 = 10 valid steps, so the
    6th update starts at step 50 of 100."""
    agent = pgrad.Reinforce(lambda: make_endless_env(1000), seed=0, n_steps=5, num_envs=2,
                            hidden_sizes=(8,), lr_schedule="linear", grad_clip="separate",
                            learning_rate=1e-2, vf_lr=2e-3, diagnostics_every=0)
    seen: list[tuple[int, float, float]] = []

    def record(a: pgrad.Reinforce, metrics: dict[str, float]) -> None:
        groups = a.optimizer.param_groups
        seen.append((a.num_timesteps, groups[0]["lr"], groups[1]["lr"]))

    agent.learn(100, callback=record, tensorboard=False)
    steps = [s for s, _, _ in seen]
    assert steps == list(range(10, 101, 10))
    before = [0, *steps[:-1]]  # the rate of an update is set from the steps before it
    assert [lr for _, lr, _ in seen] == pytest.approx([1e-2 * (1 - s / 100) for s in before])
    assert seen[5][1] == pytest.approx(0.5e-2) and seen[5][2] == pytest.approx(1e-3)
    agent.close()


def test_constant_schedule_leaves_the_rate_alone() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, **SMALL)
    agent.learn(300, tensorboard=False)
    assert agent.optimizer.param_groups[0]["lr"] == 1e-2


# ---------------------------------------------------------------- resume, all options on
def test_resume_with_gae_separate_clipping_and_a_linear_schedule_is_bit_exact(
        tmp_path: Path) -> None:
    """A run stopped after 3 updates (as an interrupted CLI run) and resumed to its total
    ends bit-identical to the run without a stop; the schedule's state is the step count."""
    settings = dict(seed=1, num_envs=6, batch_episodes=4, hidden_sizes=(8,), gae_lambda=0.9,
                    grad_clip="separate", vf_max_grad_norm=0.3, vf_lr=3e-3,
                    lr_schedule="linear", value_steps=2)
    total = 1500
    first = pgrad.Reinforce("CartPole-v1", **settings)
    first.learn(total, run_dir=tmp_path / "resumed", tensorboard=False,
                callback=lambda a, m: a.num_updates < 3)
    first.close()
    resumed = pgrad.Reinforce.load(tmp_path / "resumed")
    resumed.learn(total - resumed.num_timesteps, run_dir=tmp_path / "resumed",
                  tensorboard=False)
    whole = pgrad.Reinforce("CartPole-v1", **settings)
    whole.learn(total, run_dir=tmp_path / "whole", tensorboard=False)
    assert whole.num_updates > 3
    assert differing_parameters(whole.policy, resumed.policy) == []
    for a, b in zip(whole.optimizer.param_groups, resumed.optimizer.param_groups, strict=True):
        assert a["lr"] == b["lr"]
    assert resumed.episode_returns == whole.episode_returns

    def strip(run: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows(run)]

    assert strip(tmp_path / "resumed") == strip(tmp_path / "whole")


# ---------------------------------------------------------------- evaluation during training
def test_learn_evaluates_logs_and_keeps_the_best_model(tmp_path: Path) -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, **SMALL)
    agent.learn(1200, run_dir=tmp_path, eval_every=400, eval_episodes=3, tensorboard=False)
    evaluated = [r for r in rows(tmp_path) if not math.isnan(float(r["eval/return_mean"]))]
    assert len(evaluated) == 3
    assert (tmp_path / BEST_FILE).is_file() and (tmp_path / BEST_RECORD).is_file()
    best = max(float(r["eval/return_mean"]) for r in evaluated)
    assert EvalCallback(10, run_dir=tmp_path).best_mean == best
    assert pgrad.Reinforce.load(tmp_path / BEST_FILE).num_timesteps in {
        int(r["step"]) for r in evaluated}


def test_evaluation_uses_its_own_seed_and_deterministic_actions(monkeypatch) -> None:
    import pgrad.evaluation

    calls = []
    real = pgrad.evaluation.evaluate

    def spy(agent, env, episodes, **kwargs):
        calls.append(kwargs)
        return real(agent, env, episodes, **kwargs)

    monkeypatch.setattr(pgrad.evaluation, "evaluate", spy)
    agent = pgrad.Reinforce(LINEWALK_ID, seed=5, **SMALL)
    agent.learn(300, eval_every=100, eval_episodes=2)
    assert calls and all(c["deterministic"] for c in calls)
    assert {c["seed"] for c in calls} == {(5 + pgrad.agent.EVAL_SEED_OFFSET) % 2**31}


def test_stop_on_eval_stops_at_the_first_good_evaluation() -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, **SMALL)
    agent.learn(10**6, eval_every=100, eval_episodes=2, stop_return=-1e9, stop_on="eval")
    assert agent.last_result is not None and agent.last_result.reached_stop_return
    assert 100 <= agent.num_timesteps < 300
    with pytest.raises(PgradError, match="eval_every"):
        agent.learn(100, stop_return=0.0, stop_on="eval")
    with pytest.raises(PgradError, match="stop_on"):
        agent.learn(100, eval_every=10, stop_on="both")


def test_cli_eval_every_writes_eval_rows_and_best_model(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["train", LINEWALK_ID, "--eval-every", "300", "--eval-episodes", "2",
                 "--total-timesteps", "700", "--out", str(out), "--no-progress",
                 "--num-envs", "4", "--batch-episodes", "4", "--hidden-sizes", "8"])
    assert code == 0
    assert (out / BEST_FILE).is_file()
    assert sum(not math.isnan(float(r["eval/return_mean"])) for r in rows(out)) == 2
    code = main(["train", LINEWALK_ID, "--stop-on", "eval", "--stop-return", "1",
                 "--out", str(tmp_path / "x")])
    assert code == 2
    assert "--eval-every" in capsys.readouterr().err


def test_a_checkpoint_with_one_optimizer_group_continues_with_the_joint_clip(
        tmp_path: Path) -> None:
    """A checkpoint written before separate clipping existed has one parameter group and no
    grad_clip in its config; whatever grad_clip the defaults name, it continues jointly."""
    import dataclasses

    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, grad_clip="joint", **SMALL)
    agent.learn(200, tensorboard=False)
    state = agent.state()
    old = dataclasses.replace(state, config=dataclasses.replace(state.config,
                                                                grad_clip="separate"))
    loaded = pgrad.Reinforce.from_state(old)
    assert loaded.config.grad_clip == "joint" and len(loaded.optimizer.param_groups) == 1
    split = pgrad.Reinforce(LINEWALK_ID, seed=0, grad_clip="separate", **SMALL)
    split.learn(200, tensorboard=False)
    split.save(tmp_path / "s.safetensors")
    again = pgrad.Reinforce.load(tmp_path / "s.safetensors")
    assert again.config.grad_clip == "separate" and len(again.optimizer.param_groups) == 2
    for p, q in zip(split.policy.parameters(), again.policy.parameters(), strict=True):
        saved, loaded = split.optimizer.state[p], again.optimizer.state[q]
        assert sorted(saved) == sorted(loaded)
        assert all(torch.equal(saved[k], loaded[k]) for k in saved)


def test_cli_resume_keeps_evaluating_and_the_best_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    flags = ["--out", str(out), "--no-progress", "--num-envs", "4", "--batch-episodes", "4",
             "--hidden-sizes", "8", "--no-tensorboard"]
    assert main(["train", LINEWALK_ID, "--eval-every", "300", "--eval-episodes", "2",
                 "--total-timesteps", "600", *flags]) == 0
    best = EvalCallback(1, run_dir=out).best_mean
    assert main(["train", "--resume", str(out), "--total-timesteps", "1200",
                 "--no-progress"]) == 0
    evaluated = [float(r["eval/return_mean"]) for r in rows(out)
                 if not math.isnan(float(r["eval/return_mean"]))]
    assert len(evaluated) == 4
    assert EvalCallback(1, run_dir=out).best_mean == max([best, *evaluated[2:]])
