"""The benchmark suite harness (benchmarks/suite.py): thresholds, zoo table, runs, report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import suite  # noqa: E402
import suite_sb3  # noqa: E402


def test_every_suite_env_has_a_zoo_entry_for_both_algorithms() -> None:
    for algo in ("a2c", "ppo"):
        assert set(suite_sb3.ZOO[algo]) == set(suite.ENVS)
    with pytest.raises(ValueError, match="no rl-baselines3-zoo entry"):
        suite_sb3.zoo_hyperparams("ppo", "Pong-v5")
    entry = suite_sb3.zoo_hyperparams("ppo", "Hopper-v5")
    entry["policy_kwargs"]["net_arch"]["pi"].append(1)  # a copy: the table is unchanged
    assert suite_sb3.ZOO["ppo"]["Hopper-v5"]["policy_kwargs"]["net_arch"]["pi"] == [256, 256]


def test_linear_schedule_decays_to_zero() -> None:
    pytest.importorskip("stable_baselines3")
    schedule = suite_sb3._schedule("lin_0.001")
    assert schedule(1.0) == pytest.approx(0.001)  # progress_remaining = 1 at the start
    assert schedule(0.5) == pytest.approx(0.0005)
    assert schedule(0.0) == pytest.approx(0.0)
    assert suite_sb3._schedule(3e-4) == 3e-4


def test_thresholds_per_row() -> None:
    assert suite.reaches(150.0, "LunarLander-v3", "defaults")
    assert not suite.reaches(150.0, "LunarLander-v3", "preset")
    assert suite.reaches(-390.0, "Pendulum-v1", "defaults")
    assert not suite.reaches(-390.0, "Pendulum-v1", "mc")
    assert suite.reaches(1000.0, "InvertedPendulum-v5", "preset")
    assert not suite.reaches(999.0, "InvertedPendulum-v5", "preset")


def _fake_run(out: Path, row: str, seed: int, final: float,
              env_id: str = "CartPole-v1") -> None:
    record = {
        "env_id": env_id, "row": row, "seed": seed, "budget": 1000, "eval_every": 500,
        "eval_episodes": 5, "final_episodes": 20, "jobs": 1,
        "row_command": f"python benchmarks/suite.py {env_id} --rows {row}",
        "info": {"date_utc": "2026-01-01 00:00:00 UTC", "cpu": "cpu", "cores": 2,
                 "ram_gib": 1.0, "os": "os", "python": "3", "torch": "t", "gymnasium": "g",
                 "numpy": "n", "pgrad": "p", "git": "abc"},
        "steps": 1000, "train_seconds": 2.0, "eval_seconds": 0.1, "steps_per_s": 500.0,
        "curve": [{"mark": 0, "step": 0, "mean": 10.0, "std": 0.0},
                  {"mark": 500, "step": 510, "mean": final / 2, "std": 1.0},
                  {"mark": 1000, "step": 1020, "mean": final, "std": 1.0}],
        "final_returns": [final] * 20, "final_mean": final, "final_std": 0.0,
        "settings": {}, "versions": {}, "wall_seconds": 3.0, "load_samples": [3.0, 3.0],
    }
    path = suite.run_path(out, env_id, row, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


@pytest.mark.slow
def test_report_counts_thresholds_and_marks_failing_seeds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rliable")
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(suite, "BOOTSTRAP_REPS", 200)
    out = tmp_path / "suite"
    for seed, final in enumerate([500.0, 480.0, 200.0, 500.0]):
        _fake_run(out, "preset", seed, final)
    md = suite.write_report(out).read_text()
    line = next(x for x in md.splitlines() if x.startswith("| pgrad, preset |"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[1] == "4" and cells[2] == "3/4 (≥ 475)"
    assert cells[3] == "490.0"  # IQM of 200, 480, 500, 500: mean of the middle two
    assert "**s2: 200**" in cells[6] and "s0: 500" in cells[6]
    assert cells[7].startswith("≈")  # load 3 on 2 cores: rough
    assert (out / "CartPole-v1" / "curves.png").stat().st_size > 0


@pytest.mark.slow
def test_one_pgrad_run_writes_its_json_and_is_then_skipped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("rliable")
    pytest.importorskip("matplotlib")
    threads = torch.get_num_threads()
    out = tmp_path / "suite"
    path = suite.run_path(out, "CartPole-v1", "defaults", 0)
    job = suite.Job("CartPole-v1", "defaults", 0, 3000, 1000, 2, path, "cmd", 1)
    try:
        record = suite.execute(job)
    finally:
        torch.set_num_threads(threads)
    assert "error" not in record, record.get("traceback")
    saved = json.loads(path.read_text())
    assert saved["steps"] >= 3000 and len(saved["final_returns"]) == suite.FINAL_EPISODES
    marks = [p["mark"] for p in saved["curve"]]  # a batch of 64 episodes is > 1000 steps
    assert marks[0] == 0 and marks[-1] == 3000 and marks == sorted(set(marks))
    assert all(p["step"] >= p["mark"] for p in saved["curve"])
    before = path.stat().st_mtime_ns
    assert suite.main(["CartPole-v1", "--rows", "defaults", "--seeds", "1", "--budget", "3000",
                       "--eval-every", "1000", "--out", str(out)]) == 0
    assert "0 runs to do" in capsys.readouterr().out
    assert path.stat().st_mtime_ns == before
    assert "| pgrad, defaults (no preset) | 1 |" in out.with_suffix(".md").read_text()


def test_row_configs_resolve_as_the_agent_does() -> None:
    import pgrad

    preset = suite.row_config("preset", "Pendulum-v1", 3)
    assert preset == pgrad.Reinforce("Pendulum-v1", seed=3).config
    assert suite.row_config("defaults", "Pendulum-v1", 3) == pgrad.Config(env_id="Pendulum-v1",
                                                                          seed=3)
    mc = suite.row_config("mc", "Pendulum-v1", 3, {"gae_lambda": 0.9, "n_steps": 8})
    assert (mc.gae_lambda, mc.n_steps, mc.learning_rate) == (1.0, None, preset.learning_rate)
    tuned = suite.row_config("preset", "Pendulum-v1", 3, {"gae_lambda": 0.9})
    assert tuned.gae_lambda == 0.9 and tuned.value_steps == preset.value_steps


def test_a_variant_needs_its_own_out_and_valid_settings(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        suite.main(["Pendulum-v1", "--set", "gae_lambda=0.9"])
    assert "give it its own --out DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        suite.main(["Pendulum-v1", "--set", "no_such=1", "--out", "x"])
    assert "--set: bad setting 'no_such=1'" in capsys.readouterr().err


def test_runs_of_identical_settings_are_reused_not_rerun(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "suite"
    ran: list[tuple[str, int]] = []

    def fake_execute(job: suite.Job) -> dict:
        ran.append((job.row, job.seed))
        _fake_run(out, job.row, job.seed, -80.0, env_id=job.env_id)
        record = json.loads(job.path.read_text())
        record.update(budget=job.budget, eval_every=job.eval_every,
                      eval_episodes=job.eval_episodes,
                      settings=suite.row_config(job.row, job.env_id, job.seed).to_dict())
        job.path.write_text(json.dumps(record))
        return record

    class Pool:  # runs jobs in this process, in order
        def __init__(self, *args: object, **kwargs: object) -> None: ...
        def __enter__(self) -> Pool: return self
        def __exit__(self, *exc: object) -> None: ...
        def submit(self, fn, job):  # type: ignore[no-untyped-def]
            import concurrent.futures as cf
            future: cf.Future = cf.Future()
            future.set_result(fn(job))
            return future

    monkeypatch.setattr(suite, "execute", fake_execute)
    monkeypatch.setattr(suite.cf, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(suite, "write_report", lambda out: out.with_suffix(".md"))
    args = ["Acrobot-v1", "--seeds", "2", "--budget", "1000", "--eval-every", "500",
            "--eval-episodes", "5", "--out", str(out)]
    # Acrobot's preset is the defaults, with whole-episode batches and λ = 1: the three
    # pgrad rows are one.
    assert suite.main([*args, "--rows", "preset,defaults,mc"]) == 0
    assert ran == [("preset", 0), ("preset", 1)]
    for row in ("defaults", "mc"):
        copy = json.loads(suite.run_path(out, "Acrobot-v1", row, 1).read_text())
        assert copy["reused_from"] == "preset-seed1.json" and copy["row"] == row
    assert suite.main([*args, "--rows", "defaults", "--force"]) == 0
    assert ran[2:] == [("defaults", 0), ("defaults", 1)]
    assert suite.main([*args, "--rows", "preset"]) == 0
    assert ran[4:] == []  # finished, with the row's settings: skipped
    # A preset that changed since a run: that run is replaced, the others stay.
    kept = suite.run_path(out, "Acrobot-v1", "preset", 0).read_text()
    record = json.loads(suite.run_path(out, "Acrobot-v1", "preset", 1).read_text())
    record["settings"]["learning_rate"] = 0.5
    suite.run_path(out, "Acrobot-v1", "preset", 1).write_text(json.dumps(record))
    capsys.readouterr()
    assert suite.main([*args, "--rows", "preset"]) == 0
    assert "preset-seed1.json ran with other settings than the row has now" in \
        capsys.readouterr().out
    # Replaced by the identical defaults run (the same Config on Acrobot), not rerun.
    assert ran[4:] == []
    replaced = json.loads(suite.run_path(out, "Acrobot-v1", "preset", 1).read_text())
    assert replaced["reused_from"] == "defaults-seed1.json"
    assert replaced["settings"]["learning_rate"] != 0.5
    assert suite.run_path(out, "Acrobot-v1", "preset", 0).read_text() == kept


def test_the_bootstrap_interval_is_the_same_whatever_numpy_s_global_state() -> None:
    pytest.importorskip("rliable")
    import numpy as np

    finals = np.array([-80.0, -76.0, -90.0, -87.0, -97.0, -92.0, -85.0, -87.0, -80.0, -78.0])
    np.random.seed(1)
    first = suite.iqm_ci(finals)
    np.random.seed(2)
    expected_next = np.random.random()
    np.random.seed(2)
    second = suite.iqm_ci(finals)
    assert first == second and first[1] < first[0] < first[2]
    assert np.random.random() == expected_next  # the caller's generator is left as it was


def test_a_reused_run_knows_whether_its_source_still_holds_it(tmp_path: Path) -> None:
    _fake_run(tmp_path, "defaults", 0, 200.0)
    here = suite.run_path(tmp_path, "CartPole-v1", "defaults", 0).parent
    copy = {"reused_from": "defaults-seed0.json", "final_returns": [200.0] * 20}
    assert suite._source_holds(here, copy)
    _fake_run(tmp_path, "defaults", 0, 130.0)  # the source rerun with other settings
    assert not suite._source_holds(here, copy)
    assert not suite._source_holds(here, {**copy, "reused_from": "missing-seed0.json"})
