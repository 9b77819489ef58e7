"""Metrics to a CSV file and TensorBoard. Knows nothing about RL: it writes named numbers."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

__all__ = ["Logger"]


class Logger:
    """One row per call to :meth:`log`, keyed by the step count.

    ``progress.csv`` gets a header from the first row's keys (plus ``step``); later rows
    must use the same keys (a missing one is written empty). TensorBoard event files go
    to the same directory when ``tensorboard`` is true.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / "progress.csv"
        self._file = open(self.csv_path, "w", newline="")  # noqa: SIM115 (closed in close())
        self._writer: csv.DictWriter[str] | None = None
        self._tb: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir))

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
