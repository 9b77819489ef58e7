"""Reading the files of a run directory without trusting them.

Every file pgrad reads back (``model.safetensors``, ``config.json``, ``run.json``,
``progress.csv``) may be anything: a FIFO that blocks an ordinary ``open`` forever, a
symlink to ``/dev/zero`` that never ends, a directory, a file of many gigabytes, bytes that
are not UTF-8, JSON nested 100 000 deep. The functions here refuse each of those with one
:class:`PgradError` line before reading more than ``max_bytes``:

* :func:`check_file`: ``os.stat`` (which never blocks) must show a regular file of at most
  ``max_bytes``;
* :func:`read_bytes`: opens with ``O_NONBLOCK`` (a FIFO swapped in after the check cannot
  block), checks the open file again with ``fstat`` and reads at most ``max_bytes + 1``;
* :func:`read_text`: strict UTF-8; :func:`read_json` / :func:`parse_json`: nesting depth
  bounded before the parser recurses, numbers bounded by Python's own digit limit.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np

from pgrad.errors import PgradError

__all__ = ["MAX_CSV_BYTES", "MAX_JSON_DEPTH", "check_file", "json_depth", "parse_json",
           "read_bytes", "read_json", "read_text"]

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays / objects accepted in any JSON pgrad reads."""
MAX_CSV_BYTES = 2**30
"""Largest ``progress.csv`` read back (a long run's log is tens of MB)."""
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)
"""A JSON string; an unterminated one runs to the end (so the scan stays linear)."""


def check_file(path: str | Path, max_bytes: int, what: str = "file") -> os.stat_result:
    """``os.stat`` of ``path`` (symlinks followed), or a PgradError unless it is a regular
    file of at most ``max_bytes`` bytes. Never opens the file, so never blocks."""
    try:
        info = os.stat(path)
    except OSError as e:
        raise PgradError(f"cannot read {what} {path}: {e.strerror or e}") from e
    _check_stat(info, path, max_bytes, what)
    return info


def _check_stat(info: os.stat_result, path: str | Path, max_bytes: int, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = ("a directory" if stat.S_ISDIR(info.st_mode)
                else "a FIFO" if stat.S_ISFIFO(info.st_mode)
                else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
        raise PgradError(f"{what} {path} is {kind}, not a regular file; replace it with the "
                         "file pgrad wrote")
    if info.st_size > max_bytes:
        raise PgradError(f"{what} {path} is {info.st_size} bytes, more than the {max_bytes} "
                         "pgrad reads; it is not a file pgrad wrote")


def read_bytes(path: str | Path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path`` (at most ``max_bytes``), never blocking."""
    check_file(path, max_bytes, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise PgradError(f"cannot read {what} {path}: {e.strerror or e}") from e
    try:
        _check_stat(os.fstat(fd), path, max_bytes, what)  # the file opened is the one checked
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise PgradError(f"cannot read {what} {path}: {e.strerror or e}") from e
    finally:
        os.close(fd)
    if size > max_bytes:
        raise PgradError(f"{what} {path} grew past {max_bytes} bytes while being read")
    return b"".join(chunks)


def read_text(path: str | Path, max_bytes: int, what: str = "file") -> str:
    """The text of ``path``: :func:`read_bytes`, decoded as strict UTF-8."""
    data = read_bytes(path, max_bytes, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PgradError(f"{what} {path} is not UTF-8 text (byte {e.start}); it is not a "
                         "file pgrad wrote") from e


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of ``[`` / ``{`` in JSON ``text`` (strings skipped), computed
    without recursion: ``json_depth('[[1], {"a": "[["}]') == 2``."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if b"[" not in data and b"{" not in data:
        return 0
    codes = np.frombuffer(_STRING.sub(b'""', data), dtype=np.uint8)
    steps = ((codes == ord("[")) | (codes == ord("{"))).astype(np.int8)
    steps -= ((codes == ord("]")) | (codes == ord("}"))).astype(np.int8)
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def parse_json(text: str | bytes, what: str = "JSON", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)``, or a PgradError for invalid JSON, nesting deeper than
    ``max_depth`` (refused before parsing) or numbers too long to convert."""
    depth = json_depth(text)
    if depth > max_depth:
        raise PgradError(f"{what} is nested {depth} deep, more than the {max_depth} pgrad "
                         "reads; it is not a file pgrad wrote")
    try:
        return json.loads(text)
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PgradError(f"{what} is not valid JSON ({message[:200]})") from e


def read_json(path: str | Path, max_bytes: int, what: str = "file",
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON document in ``path``: :func:`read_text`, then :func:`parse_json`."""
    return parse_json(read_text(path, max_bytes, what), f"{what} {path}", max_depth)
