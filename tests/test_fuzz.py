"""Property-based fuzz of the ``pgrad`` command line (issue 13): hostile values for the real
option names of ``train``, ``eval``, ``compare`` and ``plot`` end in exit code 0 or 2 with
at most one line on stderr: never a traceback, never a hang.

``main(argv)`` runs in this process with the long-running parts stubbed (training, the
process pool of ``compare``, drawing, filming): everything before them, parsing and
validating, runs for real. Each example has an alarm, and the whole fuzz runs under an
address-space limit so that an option that allocates without bound fails here as a
MemoryError instead of taking the machine down.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import resource
import signal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pgrad.envs import LINEWALK_ID

EXAMPLES = 120
ALARM_SECONDS = 10
HOSTILE_VALUES = [
    "-1", "0", "1", "3", "0.5", "-0.0", "1e-320", "2147483648", "99999999999",
    "99999999999999999999", "1e308", "-1e308", "nan", "inf", "-inf", "", " ", "None",
    "abc", "0x10", "1,2", "-", "\udcff", "\x00", "a" * 5000, "/dev/zero", "/nonexistent/x",
]
NOT_FUZZED = {"-h", "--help", "--nproc", "--dist-timeout", "--device", "--jobs",
              "--vectorization"}
"""--nproc and --dist-timeout launch torchrun workers, --device cuda needs CUDA, --jobs and
async vectorization start processes; their checks are unit-tested in test_cli.py."""
def cli_module() -> Any:
    """The CLI module."""
    from pgrad.tools import cli

    return cli


def options(command: str) -> list[tuple[str, bool]]:
    """(option string, takes a value) for every option of ``pgrad <command>``."""
    parser = cli_module().build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for action in sub.choices[command]._actions:
        for name in action.option_strings:
            if name not in NOT_FUZZED:
                out.append((name, action.nargs != 0))
    return out


class Stop(Exception):
    """Raised by the stubs: the command got past its checks to the long-running part."""


class Hang(BaseException):
    """Raised by the alarm: the command took longer than ALARM_SECONDS."""


def _stop(*args: Any, **kwargs: Any) -> Any:
    raise Stop


def argv_strategy(run_dir: Path, out_dir: Path) -> st.SearchStrategy[list[str]]:
    value = st.sampled_from(HOSTILE_VALUES)

    def with_options(command: str, head: list[str]) -> st.SearchStrategy[list[str]]:
        pair = st.sampled_from(options(command)).flatmap(
            lambda opt: st.lists(value, min_size=1, max_size=2).map(
                lambda vs: [opt[0], *vs[:1]] if opt[0] != "--hidden-sizes" else [opt[0], *vs])
            if opt[1] else st.just([opt[0]]))
        return st.lists(pair, min_size=1, max_size=3).map(
            lambda pairs: head + [a for p in pairs for a in p])

    small = ["--no-progress", "--no-tensorboard", "--num-envs", "1", "--batch-episodes", "1",
             "--hidden-sizes", "4", "--out", str(out_dir / "train")]
    return st.one_of(
        with_options("train", ["train", LINEWALK_ID, *small]),
        with_options("eval", ["eval", str(run_dir), "--episodes", "1"]),
        with_options("compare", ["compare", LINEWALK_ID, "--seeds", "1", "--out",
                                 str(out_dir / "cmp")]),
        with_options("plot", ["plot", str(run_dir), "--out", str(out_dir / "c.png")]),
        value.map(lambda v: ["eval", v]),
        value.map(lambda v: ["train", v, *small]),
        value.map(lambda v: ["plot", v]),
    )


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli_module().main([
            "train", LINEWALK_ID, "--total-timesteps", "100", "--out", str(path),
            "--no-progress", "--no-tensorboard", "--num-envs", "2", "--batch-episodes", "2",
            "--hidden-sizes", "4"]) == 0
    return path


@contextlib.contextmanager
def bounded_memory(extra: int = 3 * 2**30):
    """RLIMIT_AS at this process's current size plus ``extra`` bytes, restored after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        size = int(f.read().split()[0]) * resource.getpagesize()
    limit = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_cli(argv: list[str]) -> tuple[str, str]:
    """(outcome, stderr) of ``main(argv)``: outcome is 'exit 0', 'exit 2', 'stopped' (got
    to a stub) or a failure: 'exit N', 'traceback: <exception>', 'hang'."""
    err = io.StringIO()

    def alarm(signum: int, frame: Any) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(ALARM_SECONDS)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli_module().main(argv)
            except SystemExit as e:  # argparse
                code = e.code if isinstance(e.code, int) else 1
        outcome = f"exit {code}"
    except Stop:
        outcome = "stopped"
    except Hang:
        outcome = "hang"
    except Exception as e:  # noqa: BLE001 (what the fuzz looks for)
        outcome = f"traceback: {type(e).__name__}: {str(e)[:120]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return outcome, err.getvalue()


def test_cli_fuzz_never_ends_in_a_traceback_or_a_hang(fuzz_run: Path, tmp_path: Path,
                                                      monkeypatch) -> None:
    from pgrad import agent, evaluation
    from pgrad.tools import compare, plot

    real_evaluate = evaluation.evaluate

    def short_evaluate(policy_agent: Any, env: Any = None, episodes: int = 10,
                       **kwargs: Any) -> Any:  # every check, at most 2 episodes
        return real_evaluate(policy_agent, env, min(episodes, 2), **kwargs)

    monkeypatch.setattr(agent.Reinforce, "learn", _stop)
    monkeypatch.setattr(evaluation, "evaluate", short_evaluate)
    monkeypatch.setattr(compare, "ProcessPoolExecutor", _stop)
    monkeypatch.setattr(compare, "_run_one", _stop)
    monkeypatch.setattr(plot, "plot_curves", _stop)
    monkeypatch.setattr("pgrad.tools.video.record_video", _stop, raising=False)
    monkeypatch.chdir(tmp_path)
    outcomes: dict[str, int] = {}
    failures: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(argv=argv_strategy(fuzz_run, tmp_path))
    @example(argv=["train", LINEWALK_ID, "--hidden-sizes", "999999999999"])
    @example(argv=["train", LINEWALK_ID, "--num-envs", "2147483648"])
    @example(argv=["train", LINEWALK_ID, "--n-steps", "99999999999"])
    @example(argv=["train", LINEWALK_ID, "--log-std-init", "nan"])
    @example(argv=["train", LINEWALK_ID, "--log-std-init", "1e308", "--log-std-max", "1e308"])
    @example(argv=["train", LINEWALK_ID, "--lr", "-0.01"])
    @example(argv=["eval", str(fuzz_run), "--seed", "-1"])
    @example(argv=["eval", str(fuzz_run), "--seed", "99999999999999999999"])
    @example(argv=["plot", str(fuzz_run), "--out", ""])
    @example(argv=["compare", LINEWALK_ID, "--seeds", "1000000000", "--out",
                   str(tmp_path / "cmp")])
    def check(argv: list[str]) -> None:
        outcome, err = run_cli(argv)
        lines = err.strip().splitlines()
        kind = outcome.split(":")[0]
        if outcome not in ("exit 0", "exit 2", "stopped") or len(lines) > 1 or (
                "Traceback" in err):
            failures.append(f"{argv!r}: {outcome}")
        outcomes[kind] = outcomes.get(kind, 0) + 1

    with bounded_memory():
        check()
    print(f"\nCLI fuzz: {sum(outcomes.values())} argument vectors, outcomes {outcomes}, "
          f"failures {len(failures)}")
    for failure in failures:
        print("  " + failure[:400])
    assert sum(outcomes.values()) >= EXAMPLES
    assert failures == []
