"""docs/reliability.md names a test for every fault it lists: each named test exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_named_in_the_reliability_table_exists() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    named = re.findall(r"`(test_\w+\.py)(?:::(\w+))?(?:\[[^\]]*\])?`", "\n".join(table))
    assert len(named) > 30
    missing = []
    for file, name in named:
        source = ROOT / "tests" / file
        if not source.is_file() or (name and f"def {name}(" not in source.read_text()):
            missing.append(f"{file}::{name}")
    assert missing == []
    rows = [line for line in table[2:] if not line.startswith("| **")]
    assert all("test_" in row for row in rows)
