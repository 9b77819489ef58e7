"""pgrad.safeio: files of a run directory are read without trusting them."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from pgrad import safeio
from pgrad.errors import PgradError


def test_regular_files_are_read(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"total_timesteps": 300, "name": "é"}))
    assert safeio.read_json(path, 1000) == {"total_timesteps": 300, "name": "é"}
    assert safeio.read_text(path, 1000).startswith("{")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "missing"])
def test_non_regular_files_are_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "config.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            safeio.read_json(path, 2**20, "run config")
        except PgradError as e:
            outcome.append(e)

    reader = threading.Thread(target=read, daemon=True)  # a blocked read would stay blocked
    start = time.monotonic()
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive() and time.monotonic() - start < 5
    assert len(outcome) == 1 and str(path) in str(outcome[0])
    expected = {"fifo": "a FIFO", "dev-zero": "a device", "directory": "a directory",
                "missing": "cannot read"}[kind]
    assert expected in str(outcome[0])


def test_oversize_and_non_utf8_files_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2001)
    with pytest.raises(PgradError, match="2001 bytes, more than the 2000"):
        safeio.read_bytes(big, 2000)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"step,x\n1,\xff\n")
    with pytest.raises(PgradError, match="not UTF-8 text"):
        safeio.read_text(latin, 2000)


@pytest.mark.parametrize(("text", "depth"), [
    ("1", 0), ("[]", 1), ('[[1], {"a": "[["}]', 2), (r'"\"[[["', 0), (r'["\\", [[1]]]', 3),
    ('"' + '\\"' * 100_000, 0), ("[" * 100_000, 100_000),
])
def test_json_depth_skips_strings_and_is_linear(text: str, depth: int) -> None:
    start = time.monotonic()
    assert safeio.json_depth(text) == depth
    assert time.monotonic() - start < 1


def test_deep_or_invalid_json_is_one_error() -> None:
    with pytest.raises(PgradError, match="nested 100000 deep"):
        safeio.parse_json("[" * 100_000 + "]" * 100_000, "x")
    with pytest.raises(PgradError, match="not valid JSON"):
        safeio.parse_json('{"a": ' + "9" * 100_000 + "}", "x")
    with pytest.raises(PgradError, match="not valid JSON"):
        safeio.parse_json("{not json", "x")
    assert safeio.parse_json("[" * 64 + "]" * 64, "x") is not None
