"""pgrad.compare and pgrad.plot: the grid runs, the plot and the table are written, the
statistics are right, and bad input fails in one line."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys

import numpy as np
import pytest

import pgrad
from pgrad.envs import LINEWALK_ID
from pgrad.errors import PgradError
from pgrad.tools import compare, plot
from pgrad.tools.cli import main
from pgrad.tools.compare import directory_name, label, parse_overrides

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = "num_envs=4,batch_episodes=4,hidden_sizes=8,diagnostics_every=0"


def test_parse_overrides_converts_to_the_field_types() -> None:
    assert parse_overrides("baseline=false, lr=3e-3,hidden_sizes=32x16,n-steps=none") == {
        "baseline": False, "learning_rate": 3e-3, "hidden_sizes": (32, 16), "n_steps": None}
    assert parse_overrides("") == {}
    for bad in ["baseline", "nope=1", "baseline=maybe", "num_envs=two", "env_id=CartPole-v1"]:
        with pytest.raises(PgradError):
            parse_overrides(bad)


def test_bootstrap_ci_and_interquartile_mean() -> None:
    samples = np.random.default_rng(0).normal(10.0, 2.0, size=(400, 3))
    low, high = plot.bootstrap_ci(samples)
    assert low.shape == (3,) and np.all(low < samples.mean(0)) and np.all(samples.mean(0) < high)
    assert np.allclose(high - low, 2 * 1.96 * 2.0 / 20, rtol=0.2)  # ≈ the normal CI
    assert plot.interquartile_mean(np.array([0.0, 1, 2, 3, 4, 5, 6, 1000])) == 3.5
    assert plot.interquartile_mean(np.array([5.0])) == 5.0


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "grid"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["compare", LINEWALK_ID, "--seeds", "2", "--total-timesteps", "600",
                     "--set", f"baseline=true,{SMALL}", "--set", f"baseline=false,{SMALL}",
                     "--out", str(out), "--jobs", "2", "--threshold", "0.3"])
    assert code == 0
    return out, stdout.getvalue()


def test_compare_writes_runs_plot_and_table(grid) -> None:
    out, stdout = grid
    for config in ["baseline=true", "baseline=false"]:
        for seed in (0, 1):
            run = out / directory_name(label(parse_overrides(f"{config},{SMALL}"))) / f"seed{seed}"
            assert (run / "progress.csv").exists() and (run / "model.safetensors").exists()
            assert json.loads((run / "config.json").read_text())["seed"] == seed
    assert (out / "curves.png").read_bytes()[:8] == PNG_MAGIC
    table = (out / "curves.md").read_text()
    assert "baseline=True" in table and "baseline=False" in table and "/2" in table
    with open(out / "curves.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["configuration"] for r in rows) == ["baseline=False", "baseline=True"]
    assert all(r["seeds"] == "2" and r["threshold"] == "0.3" for r in rows)
    assert "curves.png" in stdout


def test_plot_redraws_existing_runs_and_other_metrics(grid, tmp_path) -> None:
    out, _ = grid
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["plot", str(out), "--out", str(tmp_path / "again.png"),
                     "--threshold", "0.3"]) == 0
        assert main(["plot", *map(str, sorted(out.glob("baseline=true*/seed*"))),
                     "--metric", "train/entropy", "--out", str(tmp_path / "kl.png")]) == 0
    assert (tmp_path / "again.png").read_bytes()[:8] == PNG_MAGIC
    again, first = ((p.read_text().splitlines()) for p in (tmp_path / "again.md",
                                                          out / "curves.md"))
    assert sorted(again) == sorted(first)  # the same table (rows sorted by directory)
    assert first[2].startswith("| baseline=True")  # compare keeps the order of its --set
    assert "| " + LINEWALK_ID + " | 2 |" in (tmp_path / "kl.md").read_text()  # one group


def test_group_runs_labels_by_what_differs(grid) -> None:
    groups = plot.group_runs(plot.load_runs([grid[0]]))
    assert sorted(groups) == ["baseline=False", "baseline=True"]
    assert all(len(runs) == 2 for runs in groups.values())


def test_plot_without_matplotlib_says_how_to_install(grid, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["plot", str(grid[0]), "--out", "/nonexistent/x.png"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and 'pip install "pgrad[plot]"' in err


@pytest.mark.parametrize("argv", [
    ["compare", "NoSuchEnv-v0", "--seeds", "1"],
    ["compare", LINEWALK_ID, "--set", "learning_rate=-1", "--seeds", "1"],
    ["compare", LINEWALK_ID, "--set", "bogus=1"],
    ["compare", LINEWALK_ID, "--seeds", "0"],
    ["plot", "/nonexistent/dir"],
    ["plot", "GRID", "--metric", "diagnostics/kl"],  # diagnostics_every=0: no values
    ["plot", "GRID", "--metric", "no/such_column"],
])
def test_bad_input_is_one_line_and_exit_2(argv, grid, capsys, tmp_path) -> None:
    argv = [str(grid[0]) if a == "GRID" else a for a in argv]
    code = main([*argv, "--out", str(tmp_path / "out.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "error" in err, err


def test_steps_to_threshold_count_only_full_windows_of_episodes(tmp_path) -> None:
    def run(returns, episodes) -> plot.Run:
        return plot.Run(path=tmp_path, config={}, columns={
            "step": np.array([10.0, 20, 30, 40]), plot.RETURN_KEY: np.array(returns),
            "rollout/episodes": np.array(episodes)})

    lucky = run([1.0, 0.2, 0.9, 0.9], [1, 50, 100, 150])  # 1.0 from one episode: no
    never = run([1.0, 0.2, 0.3, 0.3], [1, 50, 100, 150])
    (row,) = plot.summarize({"x": [lucky, never]}, threshold=0.8)
    assert row.reached == 1 and row.steps_to_threshold_median == np.inf
    (row,) = plot.summarize({"x": [lucky, lucky]}, threshold=0.8)
    assert row.steps_to_threshold_median == 30.0 and row.final_mean == pytest.approx(0.9)
    # Runs that log rollout/window_full (the trainer's own verdict) are read by it, not by
    # the 100-episode rule: a window of whole batches may fill at 128 episodes.
    late = run([1.0, 0.2, 0.9, 0.9], [1, 50, 100, 150])
    late.columns["rollout/window_full"] = np.array([0.0, 0.0, 0.0, 1.0])
    (row,) = plot.summarize({"x": [late]}, threshold=0.8)
    assert row.steps_to_threshold_median == 40.0


def test_the_trainer_logs_whether_the_window_is_full(tmp_path) -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, num_envs=8, batch_episodes=64)
    agent.learn(8_000, run_dir=tmp_path / "run", progress_bar=False, tensorboard=False)
    (run,) = plot.load_runs([tmp_path / "run"])
    full = run.columns["rollout/window_full"]
    episodes = run.columns["rollout/episodes"]
    assert full[0] == 0.0 and full[-1] == 1.0  # 64-episode batches: full from the 2nd on
    np.testing.assert_array_equal(full == 1.0, episodes >= 128)


# ---------------------------------------------------------------- one configuration, one dir
def test_equal_settings_written_differently_are_one_configuration() -> None:
    texts = ["baseline=false,lr=3e-3", "baseline=false, lr=3e-3", " baseline = false ,lr=0.003",
             "lr=0.003,baseline=no", "learning-rate=3E-3,baseline=False"]
    settings = {tuple(sorted(parse_overrides(t).items())) for t in texts}
    assert len(settings) == 1
    assert label(parse_overrides(texts[1])) == "baseline=false,learning_rate=0.003"
    with pytest.raises(PgradError, match="given twice"):
        compare.plan_grid(LINEWALK_ID, texts[:2], [0])
    with pytest.raises(PgradError, match="given twice"):
        compare.plan_grid(LINEWALK_ID, ["", " "], [0])


def test_distinct_settings_get_distinct_directories() -> None:
    texts = ["baseline=false,lr=3e-3", "baseline=false", "hidden_sizes=32,32",
             "hidden_sizes=32x32,n_steps=none", "hidden_sizes=3,232", "activation=relu",
             "lr=0.1", "lr=0.10000000000000002", ""]
    labels = [label(parse_overrides(t)) for t in texts]
    assert len(set(labels)) == len(labels)
    names = [directory_name(x) for x in labels]
    assert len(set(names)) == len(names)
    assert directory_name("baseline=false,learning_rate=0.003") == \
        "baseline=false+learning_rate=0.003"
    odd = ["a/b", "a_b", "a b", "a,b", "a+b", ".", "..", "x" * 300, "x" * 301]
    odd_names = [directory_name(x) for x in odd]
    assert len(set(odd_names)) == len(odd) and all("/" not in n and n not in (".", "..")
                                                   for n in odd_names)


def test_commas_inside_values_belong_to_the_value() -> None:
    assert parse_overrides("hidden_sizes=32,32, baseline=false") == {
        "hidden_sizes": (32, 32), "baseline": False}
    assert parse_overrides("hidden_sizes=[128, 128], baseline=false") == {
        "hidden_sizes": (128, 128), "baseline": False}
    assert parse_overrides("hidden_sizes=(16,)") == {"hidden_sizes": (16,)}
    with pytest.raises(PgradError, match="hidden_sizes"):
        parse_overrides("hidden_sizes=[128, 128")
    with pytest.raises(PgradError, match="twice"):
        parse_overrides("lr=0.1,lr=0.2")


def test_compare_refuses_a_huge_grid_before_training(tmp_path) -> None:
    with pytest.raises(PgradError, match="at most 1000 seeds"):
        compare.plan_grid(LINEWALK_ID, [""], list(range(1001)))
    with pytest.raises(PgradError, match="at most 10000 runs"):
        compare.plan_grid(LINEWALK_ID, [f"lr=0.{k + 1}" for k in range(11)], list(range(1000)))


def test_compare_without_matplotlib_fails_before_training(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(compare, "run_grid", lambda *a, **k: pytest.fail("trained"))
    code = main(["compare", LINEWALK_ID, "--seeds", "1", "--out", str(tmp_path / "g")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and 'pip install "pgrad[plot]"' in err
    assert not (tmp_path / "g").exists()


# ---------------------------------------------------------------- plot groups
def fake_run(path, seed: int, total: int | None, final: float, **config) -> None:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"env_id": LINEWALK_ID, "seed": seed,
                                                  **config}))
    if total is not None:
        (path / "run.json").write_text(json.dumps({"total_timesteps": total}))
    (path / "progress.csv").write_text(
        f"step,{plot.RETURN_KEY}\n10,0.0\n{total or 20},{final}\n")


def test_plot_groups_by_configuration_env_and_budget(tmp_path) -> None:
    fake_run(tmp_path / "long", 0, 300_000, 1.0)
    fake_run(tmp_path / "short", 0, 30_000, 0.5)  # same seed, other budget: not a 2nd seed
    fake_run(tmp_path / "long1", 1, 300_000, 0.8)
    fake_run(tmp_path / "other_env", 0, 300_000, 0.2, env_id="CartPole-v1")
    groups = plot.group_runs(plot.load_runs([tmp_path]))
    sizes = {name: sorted(r.path.name for r in runs) for name, runs in groups.items()}
    assert sorted(sizes.values()) == [["long", "long1"], ["other_env"], ["short"]]
    assert any("total_timesteps=30000" in name for name in sizes)
    assert any("env_id=CartPole-v1" in name for name in sizes)
