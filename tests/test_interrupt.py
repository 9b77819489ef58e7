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
from pgrad.envs import LINEWALK_ID
from pgrad.tools.cli import main

TINY = ["--num-envs", "4", "--batch-episodes", "4", "--hidden-sizes", "8", "--seed", "2",
        "--no-progress", "--no-tensorboard"]


# ``pgrad`` whose checkpoint writer pauses halfway through each file, so that a kill at a
# random moment usually lands in the middle of writing one: the case atomicity is for.
SLOW_WRITER = """
import sys, time
import safetensors.torch
import pgrad.checkpoint
from pgrad.tools.cli import main

def slow_save_file(tensors, filename, metadata=None):
    data = safetensors.torch.save(tensors, metadata=metadata)
    with open(filename, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        time.sleep(0.03)
        f.write(data[len(data) // 2:])

pgrad.checkpoint.save_file = slow_save_file
sys.exit(main(sys.argv[1:]))
"""


def pgrad_train(*args: str, slow_writer: bool = False) -> subprocess.Popen:
    command = ["-c", SLOW_WRITER] if slow_writer else ["-m", "pgrad"]
    return subprocess.Popen([sys.executable, *command, "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_training(out: Path, slow_writer: bool = False) -> subprocess.Popen:
    """``pgrad train`` on LineWalk for (practically) ever, saving every 200 steps."""
    return pgrad_train(LINEWALK_ID, "--out", str(out), "--total-timesteps", str(10**9),
                       "--save-every", "200", *TINY, slow_writer=slow_writer)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def wait_for_temporary_file(run: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(p.startswith(".model.safetensors.") for p in os.listdir(run)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint was being written"
        time.sleep(0.001)


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
    """Killed three times (twice at a random moment after its first save, while it saves
    every few milliseconds with a writer that pauses mid-file, and once while a new
    checkpoint is half written), each time resumed: the checkpoint always loads and
    training moves on."""
    run = tmp_path / "run"
    rng = random.Random(6)
    steps: list[int] = []
    proc = start_training(run, slow_writer=True)
    for kill in range(3):
        wait_for(run / "model.safetensors", proc)
        if kill == 1:  # once, at the moment a new checkpoint is half written
            wait_for_temporary_file(run, proc)
        else:
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
            proc = pgrad_train("--resume", str(run), "--no-progress", slow_writer=True)
    assert steps == sorted(steps)
