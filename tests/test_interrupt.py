"""Interruption: ``pgrad train`` as a real subprocess, stopped by SIGINT / SIGTERM (saves,
says how to resume, exits 130 / 143) or killed by SIGKILL at random moments (the last
complete checkpoint always loads); a resumed run ends where an uninterrupted one does."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import differing_parameters

import pgrad
from pgrad.cli import main
from pgrad.envs import LINEWALK_ID

TINY = ["--num-envs", "4", "--batch-episodes", "4", "--hidden-sizes", "8", "--seed", "2",
        "--no-progress", "--no-tensorboard"]


def pgrad_train(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pgrad", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_training(out: Path) -> subprocess.Popen:
    """``pgrad train`` on LineWalk for (practically) ever, saving every 200 steps."""
    return pgrad_train(LINEWALK_ID, "--out", str(out), "--total-timesteps", str(10**9),
                       "--save-every", "200", *TINY)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith("time/")}
                for row in csv.DictReader(f)]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_saves_says_how_to_resume_and_exits(tmp_path: Path, signum: int,
                                                   code: int) -> None:
    run = tmp_path / "run"
    proc = start_training(run)
    wait_for(run / "model.safetensors", proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert signal.Signals(signum).name in lines[0]
    assert f"pgrad train --resume {run}" in lines[0]
    agent = pgrad.Reinforce.load(run)
    assert int(rows(run)[-1]["step"]) == agent.num_timesteps  # saved after the last update
    if signum != signal.SIGTERM:
        return

    # Resumed to a total, the run ends bit-identical to one that never stopped.
    total = str(agent.num_timesteps + 1000)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--resume", str(run), "--total-timesteps", total,
                     "--no-progress"]) == 0
        assert main(["train", LINEWALK_ID, "--out", str(tmp_path / "whole"),
                     "--total-timesteps", total, *TINY]) == 0
    resumed, whole = pgrad.Reinforce.load(run), pgrad.Reinforce.load(tmp_path / "whole")
    assert differing_parameters(resumed.policy, whole.policy) == []
    assert resumed.num_timesteps == whole.num_timesteps
    assert rows(run) == rows(tmp_path / "whole")


def test_sigkill_at_random_moments_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    """Killed three times (at a random moment after its first save, when it saves every
    few milliseconds), each time resumed: the checkpoint always loads and moves on."""
    run = tmp_path / "run"
    rng = random.Random(6)
    steps: list[int] = []
    proc = start_training(run)
    for kill in range(3):
        wait_for(run / "model.safetensors", proc)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL

        agent = pgrad.Reinforce.load(run)  # never a half-written file
        steps.append(agent.num_timesteps)
        assert agent.num_timesteps > 0
        leftovers = [p for p in os.listdir(run) if p.endswith(".tmp")]  # harmless
        assert all(p.startswith((".model.safetensors.", ".progress.csv")) for p in leftovers)
        if kill < 2:
            proc = pgrad_train("--resume", str(run), "--no-progress")
    assert steps == sorted(steps)
