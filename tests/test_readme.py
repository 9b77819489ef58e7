"""The README's set-up commands are the ones CI runs, and its Python blocks run as pasted."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_the_two_setup_commands() -> None:
    train, test = setup_commands()
    assert train.endswith("pgrad train")
    assert "torch==2.13.0" in train and "torch==2.13.0" in test


def test_ci_runs_the_readme_test_command() -> None:
    _, test = setup_commands()
    install_and_test = test.split(" && ", 2)[2]  # after creating and activating the venv
    assert install_and_test in (ROOT / ".ci" / "run").read_text()


def test_the_test_command_runs_in_parallel_with_what_the_test_extra_installs() -> None:
    _, test = setup_commands()
    assert re.search(r"python -m pytest .*-n (auto|\d+)", test)  # pytest-xdist workers
    pyproject = (ROOT / "pyproject.toml").read_text()
    extra = re.search(r"^test = \[(.+?)\]$", pyproject, re.M | re.S)
    assert extra and '"pytest-xdist' in extra.group(1)


# ---------------------------------------------------------------------- Python snippets
# Runs the README's Python blocks in one fresh interpreter, in order, each in a namespace
# of its own (as if pasted into a new session), all in one folder, so that a later block
# may read a file an earlier one wrote (the checkpoint).
SNIPPET_RUNNER = """
import json, sys, traceback
for index, code in enumerate(json.load(open(sys.argv[1]))):
    print(f"--- block {index}", flush=True)
    try:
        exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__main__"})
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
"""


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)


def imported_modules(code: str) -> set[str]:
    """Top-level names of the modules a block imports."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_readme_has_python_blocks_that_parse() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 3
    for code in blocks:
        ast.parse(code)


@pytest.mark.slow
def test_readme_python_blocks_run_as_pasted(tmp_path: Path) -> None:
    blocks = python_blocks()
    missing = sorted({name for code in blocks for name in imported_modules(code)
                      if importlib.util.find_spec(name) is None})
    if missing:  # an optional extra is absent: the blocks need it, and so does the user
        pytest.skip(f"the README's Python blocks import {', '.join(missing)}, not installed "
                    '(pip install -e ".[test]")')
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    # One intra-op thread: on a loaded CI machine torch's default (one per core) makes
    # these small forward passes tens of times slower; the blocks compute the same.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-c", SNIPPET_RUNNER, "blocks.json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.count("--- block ") == len(blocks)
    assert (tmp_path / "cartpole.onnx").is_file()
