"""learn(callback=...): called after every update, may add metrics, stops on False; the
evaluation and checkpoint callbacks."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from pgrad import Callback, CheckpointCallback, EvalCallback, Reinforce
from pgrad.envs import LINEWALK_ID
from pgrad.errors import PgradError

SMALL = {"num_envs": 4, "batch_episodes": 4, "hidden_sizes": (8,), "diagnostics_every": 0}


def make_agent() -> Reinforce:
    return Reinforce(LINEWALK_ID, **SMALL)


def read_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_function_returning_false_stops_training_after_that_update() -> None:
    calls: list[tuple[int, float]] = []

    def stop_at_third(agent: Reinforce, metrics: dict[str, float]) -> bool:
        calls.append((agent.num_updates, metrics["rollout/batch_steps"]))
        return len(calls) < 3

    agent = make_agent()
    agent.learn(10**6, callback=stop_at_third)
    assert [n for n, _ in calls] == [1, 2, 3] and agent.num_updates == 3
    assert agent.num_timesteps == sum(steps for _, steps in calls)
    assert agent.last_result is not None and not agent.last_result.reached_stop_return


def test_a_list_of_callbacks_all_run_and_any_false_stops() -> None:
    class Count(Callback):
        def __init__(self) -> None:
            self.calls = 0

        def on_update(self, agent, metrics):
            self.calls += 1
            metrics["custom/calls"] = float(self.calls)  # logged with the row

    count = Count()
    agent = make_agent()
    agent.learn(10**6, callback=[lambda a, m: a.num_updates < 2, count])
    assert count.calls == 2 and agent.num_updates == 2


def test_callback_metrics_are_logged_and_a_stop_still_saves(tmp_path: Path) -> None:
    agent = make_agent()
    agent.learn(10**6, run_dir=tmp_path, tensorboard=False,
                callback=lambda a, m: m.update({"custom/x": 7.0}) or a.num_updates < 2)
    rows = read_rows(tmp_path)
    assert [r["custom/x"] for r in rows] == ["7.0", "7.0"]
    assert Reinforce.load(tmp_path).num_timesteps == agent.num_timesteps


def test_a_callback_that_is_not_callable_is_refused() -> None:
    with pytest.raises(PgradError, match="callback"):
        make_agent().learn(100, callback=[42])  # type: ignore[list-item]


def test_eval_callback_records_eval_metrics_and_saves_the_best(tmp_path: Path) -> None:
    run = tmp_path / "run"
    evaluation = EvalCallback(300, episodes=4, run_dir=run)
    agent = make_agent()
    agent.learn(1200, run_dir=run, tensorboard=False, callback=evaluation)
    rows = read_rows(run)
    evaluated = [r for r in rows if r["eval/return_mean"] != "nan"]
    # One evaluation each time the step count crosses a multiple of 300.
    crossings = {int(r["step"]) // 300 for r in rows if int(r["step"]) >= 300}
    assert len(evaluated) == len(evaluation.evaluations) == len(crossings) >= 2
    for row, (step, mean, std) in zip(evaluated, evaluation.evaluations, strict=True):
        assert int(row["step"]) == step
        assert float(row["eval/return_mean"]) == pytest.approx(mean)
        assert float(row["eval/return_std"]) == pytest.approx(std)
    assert all(math.isfinite(m) for _, m, _ in evaluation.evaluations)
    assert evaluation.best_mean == max(m for _, m, _ in evaluation.evaluations)
    # Saved when the mean improved: the agent of the first evaluation reaching the best.
    first_best = next(s for s, m, _ in evaluation.evaluations if m == evaluation.best_mean)
    assert Reinforce.load(run / "best.safetensors").num_timesteps == first_best


def test_eval_callback_uses_a_separate_env_and_leaves_training_unchanged() -> None:
    plain, evaluated = make_agent(), make_agent()
    plain.learn(800)
    evaluated.learn(800, callback=EvalCallback(200, episodes=3))
    assert plain.episode_returns == evaluated.episode_returns
    for a, b in zip(plain.policy.parameters(), evaluated.policy.parameters(), strict=True):
        assert bool((a == b).all())


def test_checkpoint_callback_saves_at_each_multiple(tmp_path: Path) -> None:
    checkpoints = CheckpointCallback(400, tmp_path, prefix="cp")
    agent = make_agent()
    agent.learn(1000, callback=checkpoints)
    assert len(checkpoints.saved) >= 2
    steps = [Reinforce.load(p).num_timesteps for p in checkpoints.saved]
    assert [p.name for p in checkpoints.saved] == [f"cp_{s}_steps.safetensors" for s in steps]
    assert [s // 400 for s in steps] == sorted(set(s // 400 for s in steps))


@pytest.mark.parametrize("make", [lambda: EvalCallback(0), lambda: EvalCallback(10, 0),
                                  lambda: CheckpointCallback(0, ".")])
def test_callback_settings_are_checked(make) -> None:
    with pytest.raises(PgradError, match="at least 1"):
        make()
