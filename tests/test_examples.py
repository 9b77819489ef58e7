"""Every script in ``examples/`` runs (as ``python examples/NAME.py``) and prints what it should.

Each script is run once, in a subprocess with the test's interpreter, from a temporary
working directory (so nothing depends on, or is left in, the repository), with small
arguments where the script takes them; then its output is checked. A new example is run too,
even before it gets a check of its own.
"""

from __future__ import annotations

import ast
import math
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Small arguments for the scripts that train, so the whole file stays well under a minute.
ARGS: dict[str, list[str]] = {
    "05_linewalk_comparison.py": ["--seeds", "1", "--timesteps", "3000", "--eval-episodes", "4"],
    "06_cartpole.py": ["--timesteps", "5000"],
}
SLOW = {"05_linewalk_comparison.py", "06_cartpole.py", "07_export.py"}


def check_01_policies(out: str) -> None:
    samples = re.findall(r"Action: (\d), log π\(a\|s\): (-?\d+\.\d+), π\(a\|s\): (\d\.\d+)", out)
    assert len(samples) == 5
    for action, log_prob, prob in samples:
        assert action in "01"
        assert abs(float(prob) - math.exp(float(log_prob))) < 1e-3
    assert "Deterministic action (argmax):" in out
    assert "Action shape: (3,)" in out
    assert "Deterministic action (the mean):" in out


def check_02_returns(out: str) -> None:
    assert "t  | reward | G_t (raw) | G_t (normalized)" in out
    # The tutorial's numbers: first and last rows of its table.
    assert " 0 |    0.0 |    0.9135 |          -1.4664" in out
    assert " 9 |    1.0 |    1.0000 |           1.5062" in out
    # The batch table: a terminated step is not bootstrapped, a cut one is (1 + 0.9 · 5).
    assert re.search(r" 2 \|   0 \|    1\.0 \|  terminated \|\s+1\.0000 \|\s+1\.0000\n", out)
    assert re.search(r" 3 \|   1 \|    1\.0 \|   truncated \|\s+1\.0000 \|\s+5\.5000\n", out)


def check_03_gradient_direction(out: str) -> None:
    assert re.search(r"Return G = \+10\.0.*?raised by", out, re.S)
    assert re.search(r"Return G = -10\.0.*?lowered by", out, re.S)
    assert "OK: a positive return reinforces the taken action" in out
    assert "nan" not in out.lower()


def check_04_baseline_update(out: str) -> None:
    match = re.search(r"Total loss: (-?\d+\.\d+)  \(policy: (-?\d+\.\d+), value: (\d+\.\d+)\)",
                      out)
    assert match
    total, policy, value = map(float, match.groups())
    assert abs(total - (policy + 0.5 * value)) < 2e-4
    # The policy loss's gradient reaches the value head with norm exactly 0.
    assert re.search(r"loss_policy \|\s+\d+\.\d+ \|\s+\d+\.\d+ \|\s+0\.0000\n", out)
    assert "OK: the policy loss sends no gradient to the value head" in out


def check_05_linewalk_comparison(out: str) -> None:
    for label in ("no  baseline ", "with baseline"):
        match = re.search(rf"REINFORCE {label} — last 100-ep avg: (-?\d+\.\d+), "
                          rf"reached \+1: (\d+)%, eval avg: (-?\d+\.\d+)", out)
        assert match, f"no summary line for {label!r}"
        # A LineWalk return lies in [-1, 1.49]: -1 + 49 · 0.01 at worst, 1 + 49 · 0.01 at best.
        for value in (float(match.group(1)), float(match.group(3))):
            assert -1.0 <= value <= 1.5
        assert 0 <= int(match.group(2)) <= 100


def check_06_cartpole(out: str) -> None:
    assert "saved cartpole.safetensors" in out
    assert "(identical for the original and the loaded agent)" in out
    assert re.search(r"trained: \d+ steps, \d+ updates, \d+ episodes", out)
    # Learning itself is tested elsewhere; 5 000 steps only check the API's round trip.
    for when in ("before", "after"):
        match = re.search(rf"{when} training: eval return (\d+\.\d+) ± \d+\.\d+", out)
        assert match and 1 <= float(match.group(1)) <= 500


def check_07_export(out: str) -> None:
    assert "deployed with onnxruntime: one episode, return" in out
    assert re.search(r"identical to agent.predict on all \d+ steps", out)


CHECKS: dict[str, Callable[[str], None]] = {
    "01_policies.py": check_01_policies,
    "02_returns.py": check_02_returns,
    "03_gradient_direction.py": check_03_gradient_direction,
    "04_baseline_update.py": check_04_baseline_update,
    "05_linewalk_comparison.py": check_05_linewalk_comparison,
    "06_cartpole.py": check_06_cartpole,
    "07_export.py": check_07_export,
}


def example_names() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_every_example_is_present_and_documented() -> None:
    names = example_names()
    assert set(CHECKS) <= set(names), f"missing examples: {sorted(set(CHECKS) - set(names))}"
    for name in names:
        docstring = ast.get_docstring(ast.parse((EXAMPLES / name).read_text()))
        assert docstring, f"{name} has no module docstring"
        assert "tutorial" in docstring.lower(), f"{name}'s docstring names no tutorial section"
        assert f"examples/{name}" in docstring, f"{name}'s docstring does not say how to run it"


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in example_names()])
def test_example(name: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *ARGS.get(name, [])],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, (
        f"{name} exited with {proc.returncode}\n--- stdout\n{proc.stdout}\n"
        f"--- stderr\n{proc.stderr}")
    assert not list(tmp_path.iterdir()), f"{name} left files in its working directory"
    check = CHECKS.get(name)
    if check is not None:
        check(proc.stdout)
