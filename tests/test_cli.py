"""pgrad.tools.cli: ``pgrad train`` / ``pgrad eval`` write what they promise, fail in one
line."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gc
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEXT_ENV_ID, register_text_env

import pgrad
from pgrad.config import Config
from pgrad.envs import LINEWALK_ID
from pgrad.presets import preset
from pgrad.tools.cli import main, run

TRAIN_FLAGS = ["--total-timesteps", "--stop-return", "--out", "--progress", "--no-progress",
               "--tensorboard", "--no-tensorboard", "--lr", "--resume", "--save-every"]
EVAL_FLAGS = ["--episodes", "--env", "--seed", "--deterministic", "--no-deterministic",
              "--device", "--json"]


def run_pgrad(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pgrad", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def config_flags() -> list[str]:
    flags = []
    for f in dataclasses.fields(Config):
        if f.name != "env_id":
            flags.append("--" + f.name.replace("_", "-"))
            if f.type == "bool":
                flags.append("--no-" + f.name.replace("_", "-"))
    return flags


def assert_one_line_error(capsys, code: int) -> str:
    out = capsys.readouterr()
    assert code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert "Traceback" not in out.err and "error" in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A LineWalk run trained in-process."""
    path = tmp_path_factory.mktemp("cli") / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", LINEWALK_ID, "--total-timesteps", "2000", "--out", str(path),
                     "--no-progress", "--num-envs", "8", "--batch-episodes", "8",
                     "--hidden-sizes", "16", "16", "--seed", "3"])
    assert code == 0
    return path


# ---------------------------------------------------------------- smoke tests (subprocess)
def test_train_subprocess_writes_the_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_pgrad("train", LINEWALK_ID, "--total-timesteps", "3000", "--out", str(out),
                     "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert f"run directory: {out}" in proc.stdout
    assert (out / "config.json").is_file()
    assert (out / "model.safetensors").is_file()
    assert list(out.glob("events.out.tfevents*"))
    with open(out / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows
    assert {"step", "rollout/ep_return_mean", "train/loss_policy", "time/sps"} <= set(rows[0])
    assert int(rows[-1]["step"]) >= 3000
    assert json.loads((out / "config.json").read_text())["env_id"] == LINEWALK_ID
    # The process exits after gc.freeze() (pgrad.tools.cli.run): what it wrote is whole.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out)).Reload()
    logged = events.Scalars("rollout/ep_return_mean")
    assert [e.step for e in logged] == [int(r["step"]) for r in rows]
    assert [e.value for e in logged] == pytest.approx(
        [float(r["rollout/ep_return_mean"]) for r in rows])
    agent = pgrad.Reinforce.load(out / "model.safetensors")
    assert agent.num_timesteps == int(rows[-1]["step"])


def test_the_command_exits_with_mains_code_after_freezing_the_collector(
        monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["pgrad", "train", "--lr", "-1"])
    assert gc.get_freeze_count() == 0
    try:
        with pytest.raises(SystemExit) as exit_:
            run()
        assert gc.get_freeze_count() > 0  # the exit skips the pass over these objects
    finally:
        gc.unfreeze()
    assert exit_.value.code == 2
    assert "learning_rate must be positive" in capsys.readouterr().err


def test_unknown_env_subprocess_fails_in_one_line() -> None:
    proc = run_pgrad("train", "CartPole-v9", "--total-timesteps", "10")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "CartPole-v9" in lines[0] and "CartPole-v1" in lines[0]


# ---------------------------------------------------------------- train (in-process)
def test_train_writes_config_and_reports(run_dir: Path) -> None:
    config = Config.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert config == Config(**{**preset(LINEWALK_ID), "env_id": LINEWALK_ID, "num_envs": 8,
                               "batch_episodes": 8, "hidden_sizes": (16, 16), "seed": 3})
    assert config.bootstrap_truncated is False  # LineWalk's preset
    assert (run_dir / "model.safetensors").is_file()


def test_train_prints_the_run_directory(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["train", LINEWALK_ID, "--total-timesteps", "100", "--out", str(out),
                 "--no-progress", "--no-tensorboard", "--num-envs", "2",
                 "--batch-episodes", "2", "--stop-return", "5"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert f"run directory: {out}" in stdout
    assert "stop return 5 not reached" in stdout
    assert not list(out.glob("events.out.tfevents*"))


def test_train_refuses_to_overwrite_a_run(run_dir: Path, capsys) -> None:
    code = main(["train", LINEWALK_ID, "--total-timesteps", "10", "--out", str(run_dir),
                 "--no-progress"])
    assert "already" in assert_one_line_error(capsys, code)


def test_train_options_reach_the_config(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["train", LINEWALK_ID, "--total-timesteps", "50", "--out", str(out),
                 "--no-progress", "--no-tensorboard", "--lr", "0.02", "--no-baseline",
                 "--gamma", "0.5", "--max-grad-norm", "none", "--num-envs", "2",
                 "--batch-episodes", "3", "--activation", "relu"])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["learning_rate"] == 0.02 and config["baseline"] is False
    assert config["gamma"] == 0.5 and config["max_grad_norm"] is None
    assert config["batch_episodes"] == 3 and config["activation"] == "relu"


@pytest.mark.parametrize(
    "args",
    [["--lr", "-1"], ["--num-envs", "0"], ["--gamma", "2"], ["--total-timesteps", "0"],
     ["--n-steps", "8", "--no-baseline"], ["--vectorization", "threads"],
     ["--device", "tpu"], ["--hidden-sizes", "0"]],
    ids=["lr", "num-envs", "gamma", "timesteps", "n-steps", "vectorization", "device",
         "hidden-sizes"],
)
def test_invalid_values_fail_in_one_line(args: list[str], tmp_path: Path, capsys) -> None:
    code = main(["train", LINEWALK_ID, "--out", str(tmp_path / "run"), "--no-progress", *args])
    assert_one_line_error(capsys, code)
    assert not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize("args", [["--num-envs", "abc"], ["--gamma"], ["--bogus", "1"]])
def test_unparsable_arguments_fail_in_one_line(args: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", LINEWALK_ID, *args])
    assert_one_line_error(capsys, info.value.code)


def test_unknown_env_fails_in_one_line(capsys) -> None:
    line = assert_one_line_error(capsys, main(["train", "CartPole-v9"]))
    assert "CartPole-v1" in line


def test_unsupported_env_fails_in_one_line(capsys) -> None:
    """An env observing a Text space, which no pgrad policy handles."""
    register_text_env()
    line = assert_one_line_error(capsys, main(["train", TEXT_ENV_ID, "--total-timesteps",
                                               "10", "--no-progress"]))
    assert "Text" in line


# ---------------------------------------------------------------- eval
def test_eval_json(run_dir: Path, capsys) -> None:
    code = main(["eval", str(run_dir), "--json", "--episodes", "5"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 5 and len(result["returns"]) == 5
    assert result["mean"] == pytest.approx(sum(result["returns"]) / 5)
    assert result["std"] >= 0


def test_eval_text(run_dir: Path, capsys) -> None:
    code = main(["eval", str(run_dir / "model.safetensors"), "--episodes", "3",
                 "--no-deterministic"])
    assert code == 0
    assert "over 3 episodes" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [["missing-dir"], ["RUN", "--episodes", "0"], ["RUN", "--env", "CartPole-v9"],
     ["RUN", "--env", "Acrobot-v1"]],
    ids=["missing", "zero-episodes", "unknown-env", "other-spaces"],
)
def test_eval_errors_fail_in_one_line(args: list[str], run_dir: Path, tmp_path: Path,
                                      capsys) -> None:
    args = [str(run_dir) if a == "RUN" else a for a in args]
    if args[0] == "missing-dir":
        args[0] = str(tmp_path / "missing")
    assert_one_line_error(capsys, main(["eval", *args]))


# ---------------------------------------------------------------- help
def help_text(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_names_the_commands(capsys) -> None:
    text = help_text(["--help"], capsys)
    assert "train" in text and "eval" in text


def test_train_help_mentions_every_option(capsys) -> None:
    text = help_text(["train", "--help"], capsys)
    missing = [flag for flag in config_flags() + TRAIN_FLAGS if flag not in text]
    assert missing == []
    assert "env_id" in text


def test_eval_help_mentions_every_option(capsys) -> None:
    text = help_text(["eval", "--help"], capsys)
    assert [flag for flag in EVAL_FLAGS if flag not in text] == []


def test_an_unwritable_run_directory_fails_in_one_line(capsys) -> None:
    line = assert_one_line_error(capsys, main(["train", "--out", "/proc/pgrad-no/run",
                                               "--total-timesteps", "10", "--no-progress"]))
    assert "/proc/pgrad-no" in line


# ---------------------------------------------------------------- faults (issue 13)
def run_pgrad_bytes(*args: str | bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pgrad", *args], capture_output=True,
                          timeout=120, check=False)


def assert_one_line_exit_2(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else proc.stderr
    lines = err.strip().splitlines()
    assert proc.returncode == 2, err
    assert len(lines) == 1 and "Traceback" not in err and "error" in lines[0], err
    return lines[0]


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999", str(2**31)])
def test_eval_seed_out_of_range_is_one_line(seed: str, run_dir: Path, capsys) -> None:
    line = assert_one_line_error(capsys, main(["eval", str(run_dir), "--seed", seed]))
    assert "--seed" in line


@pytest.mark.parametrize("args", [["--num-envs", "0"], ["--num-envs", "100000"],
                                  ["--episodes", "100000000000"], ["--threads", "0"]])
def test_eval_sizes_out_of_range_are_one_line(args: list[str], run_dir: Path, capsys) -> None:
    assert args[0] in assert_one_line_error(capsys, main(["eval", str(run_dir), *args]))


def test_an_undecodable_out_path_is_one_line(tmp_path: Path) -> None:
    proc = run_pgrad_bytes("train", LINEWALK_ID, "--out", bytes(tmp_path) + b"/\xff",
                           "--total-timesteps", "10", "--no-progress")
    assert "UTF-8" in assert_one_line_exit_2(proc)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["plot", "RUN", "--out", ""], ["plot", "RUN", "--out", "DIR"],
    ["compare", LINEWALK_ID, "--plot", ""], ["compare", LINEWALK_ID, "--out", ""],
    ["compare", LINEWALK_ID, "--seeds", "1000000000"], ["train", "--out", ""],
    ["eval", "RUN", "--video", ""],
], ids=["plot-out-empty", "plot-out-dir", "compare-plot-empty", "compare-out-empty",
        "compare-seeds", "train-out-empty", "eval-video-empty"])
def test_empty_paths_and_huge_grids_are_one_line(argv: list[str], run_dir: Path,
                                                 tmp_path: Path) -> None:
    argv = [str(run_dir) if a == "RUN" else str(tmp_path) if a == "DIR" else a for a in argv]
    start = time.perf_counter()
    assert_one_line_exit_2(run_pgrad(*argv))
    assert time.perf_counter() - start < 30  # refused before anything runs
    assert list(tmp_path.iterdir()) == []


def test_nproc_with_a_bad_config_fails_before_launching() -> None:
    proc = run_pgrad("train", "--nproc", "2", "--lr", "-1")
    assert "learning_rate" in assert_one_line_exit_2(proc)
    assert "launching" not in proc.stdout


# ---------------------------------------------------------------- settings that say so
def test_preset_line_names_what_the_preset_changed(tmp_path: Path, capsys) -> None:
    args = ["train", LINEWALK_ID, "--total-timesteps", "20", "--no-progress",
            "--no-tensorboard", "--num-envs", "2", "--batch-episodes", "2"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"pgrad: applying the {LINEWALK_ID} preset")
    assert "bootstrap_truncated=false" in first
    assert main([*args, "--out", str(tmp_path / "b"), "--bootstrap-truncated"]) == 0
    second = capsys.readouterr().out.splitlines()[0]
    assert second.startswith(f"pgrad: applying the {LINEWALK_ID} preset")
    assert "bootstrap_truncated" not in second and "learning_rate=0.01" in second
    assert main(["train", "CartPole-v9", "--total-timesteps", "1"]) == 2  # no preset, no line
    assert "preset" not in capsys.readouterr().out


def test_preset_line_is_none_without_a_preset() -> None:
    from pgrad.tools.cli import preset_line

    assert preset_line("MountainCar-v0", {}) is None
    assert preset_line("Acrobot-v1", {}) is None  # its preset is the defaults
    line = preset_line("CartPole-v1", {"learning_rate": 0.1})
    assert line is not None and "num_envs=64" in line and "learning_rate" not in line
    nothing = preset_line("Pendulum-v1", {"gae_lambda": 0.9})
    assert nothing is not None and "changes nothing here" in nothing


def test_a_budget_smaller_than_a_batch_says_so(tmp_path: Path, capsys) -> None:
    code = main(["train", LINEWALK_ID, "--total-timesteps", "100", "--out", str(tmp_path / "r"),
                 "--no-progress", "--no-tensorboard", "--n-steps", "16", "--num-envs", "8",
                 "--baseline"])
    out = capsys.readouterr().out
    assert code == 0
    assert "one batch is 16 steps x 8 envs = 128 steps" in out and "1 update(s)" in out
    assert "note: only 1 update(s)" in out


def test_budget_line_figures() -> None:
    from pgrad.tools.cli import budget_line

    config = Config(num_envs=4, batch_episodes=64)
    assert budget_line(config, 30_000, 1, 999) is not None
    assert "single update" in budget_line(config, 30_000, 1, 999)
    assert "fewer than 10" in budget_line(config, 100_000, 1, 500)
    assert budget_line(config, 500_000, 1, 500) is None
    assert budget_line(config, 10, 1, None) is None  # episode length unknown: no guess
    steps = Config(n_steps=8, num_envs=4)
    assert budget_line(steps, 320, 1, None) is None
    assert "4 update(s)" in budget_line(steps, 319, 2, None)  # 2 workers: 64-step batches


# ---------------------------------------------------------------- extras, eval options
def test_missing_moviepy_fails_before_playing(run_dir: Path, monkeypatch, capsys) -> None:
    import pgrad.evaluation

    monkeypatch.setitem(sys.modules, "moviepy", None)
    monkeypatch.setattr(pgrad.evaluation, "evaluate", lambda *a, **k: pytest.fail("played"))
    line = assert_one_line_error(capsys, main(["eval", str(run_dir), "--video", "x.mp4"]))
    assert 'pip install "pgrad[video]"' in line


def test_render_human_without_a_display_is_one_line(run_dir: Path, monkeypatch,
                                                    capsys) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    line = assert_one_line_error(capsys, main(["eval", str(run_dir), "--render", "human"]))
    assert "display" in line


def test_eval_stochastic_and_num_envs(run_dir: Path, capsys) -> None:
    assert main(["eval", str(run_dir), "--json", "--episodes", "6", "--num-envs", "4",
                 "--stochastic"]) == 0
    stochastic = json.loads(capsys.readouterr().out)
    assert main(["eval", str(run_dir), "--json", "--episodes", "6", "--num-envs", "4",
                 "--no-deterministic"]) == 0
    assert json.loads(capsys.readouterr().out) == stochastic
    assert stochastic["episodes"] == 6
