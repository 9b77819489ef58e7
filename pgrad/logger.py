"""Metrics to a CSV file and TensorBoard. Knows nothing about RL: it writes named numbers."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from pgrad import safeio

__all__ = ["Logger"]


class Logger:
    """One row per call to :meth:`log`, keyed by the step count.

    ``progress.csv`` gets a header from the first row's keys (plus ``step``); later rows
    must use the same keys (a missing one is written empty). TensorBoard event files go
    to the same directory when ``tensorboard`` is true.

    ``resume_step``: continue an earlier run's logs instead of starting new ones: rows of
    ``progress.csv`` after that step (logged after the checkpoint being resumed) are
    dropped and new rows appended under the existing header; TensorBoard hides the old
    events after that step (``purge_step``).
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True,
                 resume_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / "progress.csv"
        self._writer: csv.DictWriter[str] | None = None
        exists = self.csv_path.exists()
        if exists:  # a FIFO or a device here would block the open below
            safeio.check_file(self.csv_path, safeio.MAX_CSV_BYTES, "progress file")
        fieldnames = (_truncate_csv(self.csv_path, resume_step)
                      if resume_step is not None and exists else None)
        # closed in close()
        self._file = open(self.csv_path, "a" if fieldnames else "w", newline="")  # noqa: SIM115
        if fieldnames:
            self._writer = csv.DictWriter(self._file, fieldnames=fieldnames,
                                          extrasaction="ignore", restval="")
        self._tb: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Write ``metrics`` at ``step``; NaN values are written (CSV 'nan', TB skipped)."""
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["step", *metrics],
                                          extrasaction="ignore", restval="")
            self._writer.writeheader()
        self._writer.writerow({"step": step, **metrics})
        self._file.flush()
        if self._tb is not None:
            for key, value in metrics.items():
                if not math.isnan(value):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        """Flush and close the files."""
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _truncate_csv(path: Path, last_step: int) -> list[str] | None:
    """Keep the rows of ``path`` up to ``last_step`` (rewritten atomically); its header."""
    text = safeio.read_text(path, safeio.MAX_CSV_BYTES, "progress file")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        fieldnames = list(reader.fieldnames or [])
        rows = [row for row in reader if int(row["step"]) <= last_step]
    except (KeyError, TypeError, ValueError, csv.Error):
        return None  # not a progress file of ours: start a new one
    if "step" not in fieldnames:
        return None
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return fieldnames
