"""Hostile and broken input: crafted pickles, damaged checkpoints, misbehaving environments
and diverging training each end in a one-line error, no traceback, no code run."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import resource
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import EndlessEnv
from safetensors.torch import save_file
from test_checkpoint import CreatesFileWhenUnpickled, rewrite_metadata

import pgrad
from pgrad.envs import LINEWALK_ID
from pgrad.guard import Diverged
from pgrad.tools.cli import main


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", LINEWALK_ID, "--total-timesteps", "300", "--out", str(path),
                     "--no-progress", "--no-tensorboard", "--num-envs", "4",
                     "--batch-episodes", "4", "--hidden-sizes", "8"]) == 0
    return path


# ---------------------------------------------------------------- crafted pickles
def test_eval_of_a_pickle_payload_runs_no_code(tmp_path: Path) -> None:
    """The issue's must-show: ``pgrad eval`` on a file that creates a file when unpickled
    prints one line, exits non-zero, and the file is not created."""
    marker = tmp_path / "pwned"
    payload = tmp_path / "model.safetensors"
    payload.write_bytes(pickle.dumps({"policy": CreatesFileWhenUnpickled(marker)}))
    pickle.loads(payload.read_bytes())  # the payload works: unpickling creates the marker
    assert marker.exists()
    marker.unlink()

    proc = subprocess.run([sys.executable, "-m", "pgrad", "eval", str(payload)],
                          capture_output=True, text=True, timeout=120, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "not a readable pgrad checkpoint" in lines[0]
    assert not marker.exists()


def test_eval_of_a_run_dir_holding_a_pickle_payload_runs_no_code(tmp_path: Path,
                                                                 capsys) -> None:
    marker = tmp_path / "pwned"
    payload = tmp_path / "model.safetensors"
    payload.write_bytes(pickle.dumps({"policy": CreatesFileWhenUnpickled(marker)}))
    assert "not a readable" in one_line_error(capsys, main(["eval", str(tmp_path)]))
    assert not marker.exists()


def test_eval_and_resume_of_a_torch_save_payload_run_no_code(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    torch.save({"policy": CreatesFileWhenUnpickled(marker)}, tmp_path / "model.safetensors")
    one_line_error(capsys, main(["eval", str(tmp_path)]))
    one_line_error(capsys, main(["train", "--resume", str(tmp_path), "--no-progress"]))
    assert not marker.exists()


# ---------------------------------------------------------------- damaged checkpoints
def damage(kind: str, source: Path, target: Path) -> None:
    data = source.read_bytes()
    if kind == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif kind == "flipped-bit":
        changed = bytearray(data)
        changed[-5] ^= 0x10
        target.write_bytes(bytes(changed))
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "wrong-version":
        rewrite_metadata(source, target, lambda m: m.update(format_version=3))
    elif kind == "wrong-shape":
        rewrite_metadata(source, target, lambda m: m["config"].update(hidden_sizes=[9]))
    elif kind == "edited-counter":
        rewrite_metadata(source, target, lambda m: m.update(num_timesteps=-1), resign=False)


    elif kind in ("deep-json", "huge-number"):
        text = "[" * 100_000 if kind == "deep-json" else '{"format": ' + "9" * 100_000 + "}"
        save_file({"w": torch.zeros(1)}, str(target), metadata={"pgrad": text})


KINDS = ["truncated", "flipped-bit", "empty", "wrong-version", "wrong-shape",
         "edited-counter", "deep-json", "huge-number"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["eval", "resume"])
def test_damaged_checkpoint_fails_in_one_line(run_dir: Path, tmp_path: Path, capsys,
                                              kind: str, command: str) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    damage(kind, run_dir / "model.safetensors", bad / "model.safetensors")
    argv = (["eval", str(bad)] if command == "eval"
            else ["train", "--resume", str(bad), "--no-progress"])
    line = one_line_error(capsys, main(argv))
    assert str(bad) in line


def test_resume_of_a_missing_run_fails_in_one_line(tmp_path: Path, capsys) -> None:
    line = one_line_error(capsys, main(["train", "--resume", str(tmp_path / "nope")]))
    assert "no checkpoint" in line


@pytest.mark.parametrize("args", [["--lr", "1"], ["--out", "x"], ["CartPole-v1"]],
                         ids=["config-option", "out", "env-id"])
def test_resume_refuses_changed_settings(run_dir: Path, capsys, args: list[str]) -> None:
    line = one_line_error(capsys, main(["train", "--resume", str(run_dir), *args]))
    assert "saved settings" in line


@pytest.mark.parametrize("args", [["--save-every", "0"], ["--on-nonfinite", "ignore"]])
def test_invalid_reliability_options_fail_in_one_line(tmp_path: Path, capsys,
                                                      args: list[str]) -> None:
    one_line_error(capsys, main(["train", LINEWALK_ID, "--out", str(tmp_path / "r"),
                                 "--no-progress", *args]))


def test_malformed_run_file_fails_in_one_line(run_dir: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "model.safetensors").write_bytes((run_dir / "model.safetensors").read_bytes())
    (copy / "run.json").write_text("[1, 2")
    assert "run.json" in one_line_error(capsys, main(["train", "--resume", str(copy)]))


# ---------------------------------------------------------------- the hostile corpus
# Issue 13's corpus: crafted run directories, each given to ``pgrad eval DIR`` and
# ``pgrad train --resume DIR`` (and ``pgrad plot DIR`` for the log files) in a child
# process. Forking one warmed-up driver per command keeps ~100 runs at a few seconds in all
# while every run is still a separate process: its exit code, its stderr, its peak memory
# (``wait4``'s ``ru_maxrss``) and its time are its own. The driver runs under
# ``RLIMIT_AS`` so that a regression (an 8 TiB allocation, /dev/zero read to the end)
# fails here instead of taking the machine down, and every child has an alarm.

MEMORY_LIMIT = 3 * 2**30
CHILD_SECONDS = 20
DRIVER = r"""
import json, os, resource, signal, sys, time, traceback
resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
import torch
torch.set_num_threads(1)
try:
    from pgrad.tools.cli import main
except ImportError:
    from pgrad.tools.cli import main
import pgrad.agent  # warm every import a command needs, so each child starts at once
torch.optim.Adam([torch.zeros(1, requires_grad=True)])
cases = json.load(open(sys.argv[1]))
results = []
for case in cases:
    err = case["stderr"]
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        signal.alarm(CHILD_SECONDS)
        try:
            code = main(case["argv"])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stderr.flush()
        os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    results.append({"name": case["name"], "code": os.waitstatus_to_exitcode(status),
                    "seconds": time.monotonic() - start, "maxrss_kb": usage.ru_maxrss,
                    "stderr": open(err, errors="replace").read()})
print(json.dumps(results))
""".replace("MEMORY_LIMIT", str(MEMORY_LIMIT)).replace("CHILD_SECONDS", str(CHILD_SECONDS))


def _tensors_and_meta(model: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(model), framework="pt") as f:
        return (json.loads(f.metadata()["pgrad"]),
                {k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118 (not a dict)


def _raw_safetensors(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def _first(tensors: dict) -> str:
    return next(k for k in sorted(tensors) if k.startswith("policy."))


def _retype(dtype: torch.dtype, value: complex | float | None = None):
    def change(t: dict) -> None:
        key = _first(t)
        t[key] = (t[key].to(dtype) if value is None
                  else torch.full(t[key].shape, value, dtype=dtype))
    return change


def _signed(change_meta=None, change_tensors=None):
    def write(source: Path, target: Path) -> None:
        rewrite_metadata(source, target, change_meta or (lambda m: None),
                         change_tensors=change_tensors)
    return write


def _bytes(make):
    return lambda source, target: target.write_bytes(make(source.read_bytes()))


def _pickle_payload(source: Path, target: Path) -> None:
    target.write_bytes(pickle.dumps({"policy": CreatesFileWhenUnpickled(
        target.parent / "pwned")}))


def _torch_payload(source: Path, target: Path) -> None:
    torch.save({"policy": CreatesFileWhenUnpickled(target.parent / "pwned")}, target)


def _huge_shape(source: Path, target: Path) -> None:
    meta, _ = _tensors_and_meta(source)
    target.write_bytes(_raw_safetensors({"__metadata__": {"pgrad": json.dumps(meta)},
                                         "w": {"dtype": "F32", "shape": [2**40],
                                               "data_offsets": [0, 4]}}, b"\0" * 4))


def _offsets_past_the_end(source: Path, target: Path) -> None:
    target.write_bytes(_raw_safetensors({"w": {"dtype": "F32", "shape": [2**30],
                                               "data_offsets": [0, 2**32]}}, b"\0" * 8))


def _metadata_text(text: str):
    def write(source: Path, target: Path) -> None:
        _, tensors = _tensors_and_meta(source)
        save_file(tensors, str(target), metadata={"pgrad": text})
    return write


def _no_pgrad_metadata(source: Path, target: Path) -> None:
    save_file({"w": torch.zeros(3)}, str(target), metadata={"other": "x"})


def _edited_unsigned(source: Path, target: Path) -> None:
    rewrite_metadata(source, target, lambda m: m.update(num_timesteps=7), resign=False)


def _symlink_to_dev_zero(source: Path, target: Path) -> None:
    target.symlink_to("/dev/zero")


def _fifo(source: Path, target: Path) -> None:
    os.mkfifo(target)


def _directory(source: Path, target: Path) -> None:
    target.mkdir()


def _text(content: bytes):
    return lambda source, target: target.write_bytes(content)


def _group(**changes):
    return _signed(lambda m: m["optimizer"]["param_groups"][0].update(changes))


def _nested_tuple(depth: int) -> dict:
    space: dict = {"type": "Discrete", "n": 2, "start": 0}
    for _ in range(depth):
        space = {"type": "Tuple", "spaces": [space]}
    return space


PCG_2_300 = [{"bit_generator": "PCG64", "state": {"state": 2**300, "inc": 1},
              "has_uint32": 0, "uinteger": 0}]
DEEP = b"[" * 100_000 + b"]" * 100_000

# name → (file of the run directory it replaces, how to write it, commands it applies to)
CHECKPOINT_COMMANDS = ("eval", "resume")
CORPUS: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    "pickle-payload": ("model.safetensors", _pickle_payload, CHECKPOINT_COMMANDS),
    "torch-zip-payload": ("model.safetensors", _torch_payload, CHECKPOINT_COMMANDS),
    "truncated-half": ("model.safetensors", _bytes(lambda b: b[: len(b) // 2]),
                       CHECKPOINT_COMMANDS),
    "truncated-8-bytes": ("model.safetensors", _bytes(lambda b: b[:8]), CHECKPOINT_COMMANDS),
    "empty": ("model.safetensors", _bytes(lambda b: b""), CHECKPOINT_COMMANDS),
    "random-bytes": ("model.safetensors", _bytes(
        lambda b: np.random.default_rng(0).bytes(4096)), CHECKPOINT_COMMANDS),
    "header-length-2**62": ("model.safetensors", _bytes(
        lambda b: struct.pack("<Q", 2**62) + b[8:]), CHECKPOINT_COMMANDS),
    "header-length-negative": ("model.safetensors", _bytes(
        lambda b: struct.pack("<q", -1) + b[8:]), CHECKPOINT_COMMANDS),
    "shape-2**40": ("model.safetensors", _huge_shape, CHECKPOINT_COMMANDS),
    "offsets-past-the-end": ("model.safetensors", _offsets_past_the_end, CHECKPOINT_COMMANDS),
    "flipped-bit": ("model.safetensors", _bytes(
        lambda b: b[:-5] + bytes([b[-5] ^ 0x10]) + b[-4:]), CHECKPOINT_COMMANDS),
    "digest-mismatch": ("model.safetensors", _edited_unsigned, CHECKPOINT_COMMANDS),
    "metadata-not-json": ("model.safetensors", _metadata_text("{not json"),
                          CHECKPOINT_COMMANDS),
    "metadata-nested-100000": ("model.safetensors", _metadata_text(DEEP.decode()),
                               CHECKPOINT_COMMANDS),
    "metadata-100000-digits": ("model.safetensors", _metadata_text(
        '{"format": ' + "9" * 100_000 + "}"), CHECKPOINT_COMMANDS),
    "metadata-config-mistyped": ("model.safetensors", _signed(
        lambda m: m.update(config="CartPole")), CHECKPOINT_COMMANDS),
    "metadata-counter-string": ("model.safetensors", _signed(
        lambda m: m.update(num_updates="12")), CHECKPOINT_COMMANDS),
    "future-version": ("model.safetensors", _signed(lambda m: m.update(format_version=3)),
                       CHECKPOINT_COMMANDS),
    "no-pgrad-metadata": ("model.safetensors", _no_pgrad_metadata, CHECKPOINT_COMMANDS),
    "nan-weights": ("model.safetensors", _signed(change_tensors=_retype(
        torch.float32, float("nan"))), CHECKPOINT_COMMANDS),
    "complex64-nan-weights": ("model.safetensors", _signed(change_tensors=_retype(
        torch.complex64, complex("nan+nanj"))), CHECKPOINT_COMMANDS),
    "float64-weights": ("model.safetensors", _signed(change_tensors=_retype(torch.float64)),
                        CHECKPOINT_COMMANDS),
    "missing-tensor": ("model.safetensors", _signed(change_tensors=lambda t: t.pop(_first(t))),
                       CHECKPOINT_COMMANDS),
    "extra-tensor": ("model.safetensors", _signed(change_tensors=lambda t: t.update(
        {"policy.extra": torch.zeros(2)})), CHECKPOINT_COMMANDS),
    "num-timesteps-infinity": ("model.safetensors", _signed(
        lambda m: m.update(num_timesteps=float("inf"))), CHECKPOINT_COMMANDS),
    "num-timesteps-10**30": ("model.safetensors", _signed(
        lambda m: m.update(num_timesteps=10**30)), CHECKPOINT_COMMANDS),
    "float-generator-state": ("model.safetensors", _signed(change_tensors=lambda t: t.update(
        {"agent.generator": torch.zeros(5056)})), CHECKPOINT_COMMANDS),
    "env-rng-5": ("model.safetensors", _signed(
        lambda m: m["rollout"].update(env_rng=5)), CHECKPOINT_COMMANDS),
    "env-rng-2**300": ("model.safetensors", _signed(
        lambda m: m["rollout"].update(env_rng=PCG_2_300)), CHECKPOINT_COMMANDS),
    "multidiscrete-nvec-2**40": ("model.safetensors", _signed(lambda m: m.update(
        action_space={"type": "MultiDiscrete", "nvec": [2**40], "start": [0],
                      "dtype": "int64"})), CHECKPOINT_COMMANDS),
    "multi-gb-policy": ("model.safetensors", _signed(lambda m: (
        m["config"].update(hidden_sizes=[8192]), m.update(action_space={
            "type": "MultiDiscrete", "nvec": [2**20] * 4, "start": [0] * 4,
            "dtype": "int64"}))), CHECKPOINT_COMMANDS),
    "discrete-n-2**70": ("model.safetensors", _signed(
        lambda m: m["action_space"].update(n=2**70)), CHECKPOINT_COMMANDS),
    "dict-malformed-child": ("model.safetensors", _signed(lambda m: m.update(
        observation_space={"type": "Dict", "spaces": {"a": {"type": "Box"}}})),
        CHECKPOINT_COMMANDS),
    "tuple-nested-400": ("model.safetensors", _signed(
        lambda m: m.update(observation_space=_nested_tuple(400))), CHECKPOINT_COMMANDS),
    "config-num-envs-2**31": ("model.safetensors", _signed(
        lambda m: m["config"].update(num_envs=2**31)), CHECKPOINT_COMMANDS),
    "config-log-std-nan": ("model.safetensors", _signed(
        lambda m: m["config"].update(log_std_init=float("nan"))), CHECKPOINT_COMMANDS),
    "optimizer-lr-negative": ("model.safetensors", _group(lr=-0.01), CHECKPOINT_COMMANDS),
    "optimizer-lr-string": ("model.safetensors", _group(lr="abc"), CHECKPOINT_COMMANDS),
    "optimizer-unknown-key": ("model.safetensors", _group(nesterov=True), CHECKPOINT_COMMANDS),
    "checkpoint-symlink-dev-zero": ("model.safetensors", _symlink_to_dev_zero,
                                    CHECKPOINT_COMMANDS),
    "checkpoint-fifo": ("model.safetensors", _fifo, CHECKPOINT_COMMANDS),
    "checkpoint-directory": ("model.safetensors", _directory, ("resume",)),
    "config-json-fifo": ("config.json", _fifo, ("resume", "plot")),
    "config-json-dev-zero": ("config.json", _symlink_to_dev_zero, ("resume", "plot")),
    "config-json-directory": ("config.json", _directory, ("resume", "plot")),
    "config-json-nested-100000": ("config.json", _text(DEEP), ("resume", "plot")),
    "run-json-total-infinity": ("run.json", _text(b'{"total_timesteps": Infinity}'),
                                ("resume",)),
    "run-json-total-1e300": ("run.json", _text(b'{"total_timesteps": 1e300}'), ("resume",)),
    "run-json-nested-100000": ("run.json", _text(DEEP), ("resume",)),
    "run-json-invalid-utf8": ("run.json", _text(b'{"stop_return": "\xff\xfe"}'),
                              ("resume",)),
    "run-json-fifo": ("run.json", _fifo, ("resume",)),
    "run-json-dev-zero": ("run.json", _symlink_to_dev_zero, ("resume",)),
    "run-json-2-mb": ("run.json", _text(b'{"a": "' + b"x" * 2**21 + b'"}'), ("resume",)),
    "progress-csv-invalid-utf8": ("progress.csv", _text(b"step,x\n1,\xff\n"),
                                  ("resume", "plot")),
    "progress-csv-200-kb-field": ("progress.csv", _text(
        b'step,x\n1,"' + b"9" * 200_000 + b'"\n'), ("plot",)),
    "progress-csv-fifo": ("progress.csv", _fifo, ("resume", "plot")),
    "progress-csv-dev-zero": ("progress.csv", _symlink_to_dev_zero, ("resume", "plot")),
}
COMMANDS = {"eval": lambda d: ["eval", str(d), "--episodes", "1"],
            "resume": lambda d: ["train", "--resume", str(d), "--no-progress",
                                 "--no-tensorboard", "--total-timesteps", "600"],
            "plot": lambda d: ["plot", str(d), "--out", str(d / "curves.png")]}


def run_corpus(cases: list[dict[str, Any]], folder: Path) -> list[dict[str, Any]]:
    """Run each case's argv through the CLI in a child of one driver process (above)."""
    spec = folder / "cases.json"
    spec.write_text(json.dumps(cases))
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(spec)], capture_output=True,
                          text=True, timeout=30 + CHILD_SECONDS * len(cases), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_corpus(run_dir: Path, root: Path) -> list[dict[str, Any]]:
    cases = []
    for name, (file, write, commands) in CORPUS.items():
        for command in commands:
            folder = root / f"{name}-{command}"
            shutil.copytree(run_dir, folder, ignore=shutil.ignore_patterns("events.*"))
            (folder / file).unlink()
            write(run_dir / file, folder / file)
            cases.append({"name": f"{name}/{command}", "argv": COMMANDS[command](folder),
                          "stderr": str(root / f"{name}-{command}.err"),
                          "marker": str(folder / "pwned")})
    return cases


def test_hostile_corpus_each_refused_in_one_line(run_dir: Path, tmp_path: Path) -> None:
    """Issue 13's must-show: every crafted run directory, through the real CLI in its own
    process, exits 2 with one line on stderr, no traceback, no code run, bounded memory and
    time. The untouched run, through the same harness, evaluates and exits 0."""
    cases = build_corpus(run_dir, tmp_path)
    control = {"name": "control/eval", "argv": COMMANDS["eval"](run_dir),
               "stderr": str(tmp_path / "control.err"), "marker": str(tmp_path / "none")}
    results = run_corpus([control, *cases], tmp_path)
    assert results[0]["code"] == 0, results[0]
    failures = []
    for case, result in zip(cases, results[1:], strict=True):
        lines = result["stderr"].strip().splitlines()
        if (result["code"] != 2 or len(lines) != 1 or "Traceback" in result["stderr"]
                or Path(case["marker"]).exists() or result["seconds"] > CHILD_SECONDS):
            failures.append(f"{case['name']}: exit {result['code']}: {result['stderr'][-500:]}")
    refused = len(cases) - len(failures)
    peak = max(r["maxrss_kb"] for r in results) / 1024
    executed = sum(Path(c["marker"]).exists() for c in cases)
    tracebacks = sum("Traceback" in r["stderr"] for r in results)
    print(f"\nhostile corpus: {len(CORPUS)} variants, {len(cases)} runs, {refused} refused in "
          f"one line (exit 2), tracebacks {tracebacks}, code executed {executed}, peak memory "
          f"{peak:.0f} MiB (limit {MEMORY_LIMIT // 2**20} MiB), slowest "
          f"{max(r['seconds'] for r in results):.1f} s")
    assert failures == []
    assert peak < 2048
    assert len(CORPUS) >= 30


def test_resume_with_a_fifo_config_does_not_block(run_dir: Path, tmp_path: Path) -> None:
    """Issue 13: a ``config.json`` that is a FIFO blocked ``pgrad train --resume`` forever.
    End to end, as a user runs it (``python -m pgrad``), under a memory limit."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("events.*"))
    (copy / "config.json").unlink()
    os.mkfifo(copy / "config.json")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    proc = subprocess.run([sys.executable, "-m", "pgrad", "train", "--resume", str(copy),
                           "--no-progress"], capture_output=True, text=True, timeout=120,
                          check=False, preexec_fn=limit)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "config.json is a FIFO" in lines[0] and "Traceback" not in proc.stderr
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 2**21  # KiB: < 2 GiB


ABSURD_OPTIONS = {
    "hidden-sizes-999999999999": (["--hidden-sizes", "999999999999"], "hidden_sizes"),
    "hidden-sizes-multi-gb": (["--hidden-sizes", "16384", "16384", "16384"], "hidden_sizes"),
    "num-envs-2**31": (["--num-envs", "2147483648"], "num_envs"),
    "n-steps-99999999999": (["--n-steps", "99999999999"], "n_steps"),
    "batch-episodes-2**40": (["--batch-episodes", str(2**40)], "batch_episodes"),
    "log-std-init-nan": (["--log-std-init", "nan"], "log_std_init"),
    "log-std-1e308": (["--log-std-init", "1e308", "--log-std-max", "1e308"], "log_std"),
    "lr-inf": (["--lr", "inf"], "learning_rate"),
    "gamma-nan": (["--gamma", "nan"], "gamma"),
    "max-grad-norm-nan": (["--max-grad-norm", "nan"], "max_grad_norm"),
    "ent-coef-inf": (["--ent-coef", "inf"], "ent_coef"),
    "value-steps-10**12": (["--value-steps", str(10**12)], "value_steps"),
    "threads-2**31": (["--threads", "2147483648"], "threads"),
    "diagnostics-every-10**30": (["--diagnostics-every", str(10**30)], "diagnostics_every"),
}


def test_absurd_sizes_and_values_are_refused_before_anything_is_built(tmp_path: Path) -> None:
    """``pgrad train`` with sizes that would take the machine's memory, or values that are
    not finite, is refused in one line by Config's checks: each run in its own process
    under RLIMIT_AS, so a regression that allocates cannot take the machine down."""
    cases = [{"name": name, "argv": ["train", LINEWALK_ID, "--out", str(tmp_path / name),
                                     "--no-progress", "--no-tensorboard", *args],
              "stderr": str(tmp_path / f"{name}.err"), "marker": str(tmp_path / "none")}
             for name, (args, _) in ABSURD_OPTIONS.items()]
    results = run_corpus(cases, tmp_path)
    for (name, (_, field)), result in zip(ABSURD_OPTIONS.items(), results, strict=True):
        lines = result["stderr"].strip().splitlines()
        assert result["code"] == 2 and len(lines) == 1, (name, result)
        assert field in lines[0] and "Traceback" not in result["stderr"], (name, lines)
        assert not (tmp_path / name).exists()  # refused before the run directory is made


# ---------------------------------------------------------------- misbehaving envs
class BadEnv(EndlessEnv):
    """EndlessEnv that misbehaves at its 7th step: ``how`` says in which way."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how, self.t = how, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.t = 0
        if self.how == "raise-reset":
            raise RuntimeError("the simulator crashed")
        return super().reset(seed=seed, options=options)

    def step(self, action: Any):
        self.t += 1
        obs, reward, terminated, truncated, info = super().step(action)
        if self.t == 7:
            if self.how == "raise":
                raise RuntimeError("the simulator crashed")
            if self.how == "shape":
                obs = np.ones(3, dtype=np.float32)
            if self.how == "nan-obs":
                obs = np.full(1, np.nan, dtype=np.float32)
            if self.how == "nan-reward":
                reward = float("nan")
            if self.how == "inf-reward":
                reward = float("inf")
        return obs, reward, terminated, self.t >= 10, info


ENV_FAULTS = {"raise": "raised RuntimeError", "raise-reset": "at reset",
              "shape": "shape", "nan-obs": "non-finite observation",
              "nan-reward": "non-finite reward", "inf-reward": "non-finite reward"}


@pytest.fixture(scope="module")
def registered_bad_envs() -> None:
    for how in ENV_FAULTS:
        env_id = f"pgradtest/Bad-{how}-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=BadEnv, kwargs={"how": how})


@pytest.mark.parametrize("how", list(ENV_FAULTS))
def test_misbehaving_env_fails_in_one_line_naming_env_and_step(
        how: str, registered_bad_envs: None, tmp_path: Path, capsys) -> None:
    env_id = f"pgradtest/Bad-{how}-v0"
    code = main(["train", env_id, "--out", str(tmp_path / "r"), "--no-progress",
                 "--no-tensorboard", "--num-envs", "2", "--batch-episodes", "2",
                 "--vectorization", "sync", "--total-timesteps", "100"])
    line = one_line_error(capsys, code)
    assert env_id in line and ENV_FAULTS[how] in line
    if how != "raise-reset":
        assert "at step 13" in line  # 2 envs × 6 good steps, then the 7th
    assert not (tmp_path / "r" / "model.safetensors").exists()


# ---------------------------------------------------------------- divergence
class HugeRewardEnv(EndlessEnv):
    """Rewards of 3e38 (finite) after ``calm`` steps: the returns overflow to inf."""

    steps = 0
    calm = 400

    def step(self, action: Any):
        HugeRewardEnv.steps += 1
        obs, _, terminated, truncated, info = super().step(action)
        reward = 3e38 if HugeRewardEnv.steps > self.calm else float(action)
        return obs, reward, terminated, truncated, info


def huge_reward_agent(**kwargs: Any) -> pgrad.Reinforce:
    HugeRewardEnv.steps = 0
    return pgrad.Reinforce(lambda: gym.wrappers.TimeLimit(HugeRewardEnv(), 10), seed=0,
                           num_envs=2, batch_episodes=2, hidden_sizes=(8,),
                           vectorization="sync", **kwargs)


def test_divergence_stops_naming_what_and_when_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    agent = huge_reward_agent()
    with pytest.raises(Diverged, match=r"the loss is not finite .* at update \d+, step \d+"):
        agent.learn(2000, run_dir=tmp_path, tensorboard=False, save_every=100)
    before = (tmp_path / "model.safetensors").read_bytes()
    good = pgrad.Reinforce.load(tmp_path)  # the last good checkpoint, finite and loadable
    assert 300 <= good.num_timesteps <= 400 < agent.num_timesteps + 20
    assert all(torch.isfinite(p).all() for p in agent.policy.parameters())
    assert (tmp_path / "model.safetensors").read_bytes() == before


def test_divergence_can_skip_the_update(tmp_path: Path) -> None:
    agent = huge_reward_agent(on_nonfinite="skip")
    agent.learn(600, tensorboard=False)
    assert agent.skipped_updates > 0
    assert agent.num_updates + agent.skipped_updates == agent.num_timesteps // 20
    assert all(torch.isfinite(p).all() for p in agent.policy.parameters())


def test_non_finite_parameters_stop_training(monkeypatch) -> None:
    agent = pgrad.Reinforce(LINEWALK_ID, seed=0, num_envs=2, batch_episodes=2)
    step = agent.optimizer.step

    def poisoned_step(*args: Any, **kwargs: Any) -> Any:
        out = step(*args, **kwargs)
        with torch.no_grad():
            next(agent.policy.parameters())[0, 0] = float("inf")
        return out

    monkeypatch.setattr(agent.optimizer, "step", poisoned_step)
    with pytest.raises(Diverged, match="parameters .* at update 1"):
        agent.learn(10, tensorboard=False)


def test_divergence_from_the_cli_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda *a, **k: torch.tensor(float("nan")))
    code = main(["train", LINEWALK_ID, "--out", str(tmp_path / "r"), "--no-progress",
                 "--no-tensorboard", "--num-envs", "2", "--batch-episodes", "2"])
    line = one_line_error(capsys, code)
    assert "gradient is not finite" in line and "update 1" in line

