"""The README's set-up commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

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
