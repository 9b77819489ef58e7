"""Start-up: ``pgrad --help`` and every error that needs no model import neither torch nor
gymnasium; ``import pgrad`` is lazy and still exports every public name."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

HEAVY = ("torch", "gymnasium")

PROBE = """
import json, runpy, sys
sys.argv = ["pgrad", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_module("pgrad", run_name="__main__")
except SystemExit as e:
    code = e.code
heavy = [m for m in HEAVY if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
""".replace("HEAVY", repr(HEAVY))


def probe(*argv: str) -> tuple[int, list[str], str]:
    """Run ``python -m pgrad ARGV`` in a fresh interpreter; its exit code, the heavy modules
    it imported, and its stderr (without the probe's line)."""
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True,
                          text=True, timeout=60, check=False)
    *err, last = proc.stderr.strip().splitlines()
    result = json.loads(last)
    return result["code"], result["heavy"], "\n".join(err)


@pytest.mark.parametrize("argv", [
    ["--help"], ["train", "--help"], ["eval", "--help"], ["compare", "--help"],
    ["plot", "--help"],
], ids=lambda a: " ".join(a))
def test_help_imports_neither_torch_nor_gymnasium(argv: list[str]) -> None:
    code, heavy, _ = probe(*argv)
    assert code == 0 and heavy == []


@pytest.mark.parametrize("argv", [
    ["bogus"], ["train", "--lr", "-1"], ["train", "--num-envs", "abc"],
    ["train", "--total-timesteps", "0"], ["train", "--nproc", "2", "--lr", "-1"],
    ["train", "--resume", "x", "--lr", "0.1"], ["eval", "RUN", "--seed", "-1"],
    ["eval", "RUN", "--episodes", "0"], ["compare", "CartPole-v1", "--seeds", "1000000000"],
    ["compare", "CartPole-v1", "--set", "bogus=1"], ["plot", "RUN", "--out", ""],
], ids=lambda a: " ".join(a))
def test_errors_that_need_no_model_import_neither(argv: list[str]) -> None:
    code, heavy, err = probe(*argv)
    assert code == 2 and heavy == [], (code, heavy, err)
    assert len(err.splitlines()) == 1 and "error" in err and "Traceback" not in err


def test_import_pgrad_is_lazy_and_exports_every_name() -> None:
    script = (f"import sys, pgrad; lazy = [m for m in {HEAVY!r} if m in sys.modules]; "
              "names = sorted(n for n in pgrad.__all__ if getattr(pgrad, n) is None); "
              "print(lazy, names, pgrad.Reinforce.__name__, 'pgrad/LineWalk-v0' in "
              "__import__('gymnasium').registry)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["[]", "[]", "Reinforce", "True"]


def test_unknown_attribute_is_an_attribute_error() -> None:
    import pgrad

    with pytest.raises(AttributeError, match="no_such_name"):
        pgrad.no_such_name  # noqa: B018
    assert "Reinforce" in dir(pgrad)


def test_core_never_imports_the_tools() -> None:
    """``pgrad.tools`` sits on top of the core: no core module imports it."""
    from pathlib import Path

    import pgrad

    root = Path(pgrad.__file__).parent
    offenders = [p.name for p in root.glob("*.py") if "pgrad.tools" in p.read_text()
                 and p.name != "__main__.py"]
    assert offenders == []


def test_constants_match_the_implementations() -> None:
    from pgrad.constants import ACTIVATION_NAMES
    from pgrad.networks import ACTIVATIONS

    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES


def test_sigint_during_start_up_is_one_line_and_exit_130(tmp_path) -> None:
    """Ctrl-C while torch is still being imported: no KeyboardInterrupt traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "pgrad", "train", "pgrad/LineWalk-v0",
                             "--out", str(tmp_path / "run"), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal: a test runner's worker may ignore SIGINT,
                            # and an ignored disposition is inherited
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.4)  # arguments parsed (0.15 s), torch importing (seconds)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_linewalk_is_known_to_gymnasium_after_a_bare_import_pgrad() -> None:
    code = ("import sys, pgrad\n"
            "assert 'gymnasium' not in sys.modules\n"
            "import gymnasium as gym\n"
            "env = gym.make('pgrad/LineWalk-v0')\n"
            "assert type(gym.__spec__.loader).__module__ != 'pgrad'\n"
            "print(env.spec.id)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pgrad/LineWalk-v0"
