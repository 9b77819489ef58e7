"""Learning curves and summary tables from run directories (``pgrad plot``, ``pgrad compare``).

A *run* is a directory with ``progress.csv`` and ``config.json`` (what ``pgrad train``
writes). Runs are grouped into *configurations* by their settings with the seed left out (the env
id included) and their budget of env steps (``run.json``);
a configuration's label names the settings in which the groups differ
(``baseline=False``). For each configuration:

* the curve is the mean over seeds of a metric (default ``rollout/ep_return_mean``, the
  mean return of the last 100 training episodes) against env steps, each run linearly
  interpolated onto a common grid of steps that every run reached; the band is a 95 %
  percentile-bootstrap confidence interval of that mean (resampling seeds);
* the table gives the final value (mean over seeds with its bootstrap CI, and the
  interquartile mean: the mean of the middle 50 % of seeds, robust to one odd seed, as
  rliable recommends), and the env steps each seed took to first reach a threshold (for
  the training return: once it averages a full 100 episodes).

Matplotlib is needed only to draw, and imported only then (``pip install "pgrad[plot]"``).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pgrad import safeio
from pgrad.errors import PgradError

__all__ = ["Run", "Summary", "bootstrap_ci", "check_plot_support", "group_runs",
           "interquartile_mean", "load_runs", "plot_curves", "summarize", "write_summary"]

RETURN_KEY = "rollout/ep_return_mean"
GRID_POINTS = 200
STATS_WINDOW = 100  # episodes in rollout/ep_return_mean (Collector's stats_window)


@dataclass
class Run:
    """One training run: its settings and its logged metrics."""

    path: Path
    config: dict[str, Any]
    columns: dict[str, np.ndarray]
    total_timesteps: int | None = None
    """The run's budget of env steps (its ``run.json``; None when it has none)."""

    def curve(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of ``metric``, rows where it is NaN left out."""
        if metric not in self.columns:
            raise PgradError(f"{self.path / 'progress.csv'} has no column {metric!r}")
        steps, values = self.columns["step"], self.columns[metric]
        keep = ~np.isnan(values)
        if not keep.any():
            raise PgradError(f"{self.path / 'progress.csv'} has no values of {metric!r}"
                             + (" (diagnostics_every was 0)" if metric.startswith("diag")
                                else ""))
        return steps[keep], values[keep]


def load_runs(paths: list[Path]) -> list[Run]:
    """The runs in ``paths``: run directories, or directories holding runs (searched
    recursively, e.g. the output of ``pgrad compare``)."""
    dirs: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise PgradError(f"{path} is not a directory")
        found = [path] if (path / "progress.csv").exists() else sorted(
            p.parent for p in path.rglob("progress.csv"))
        if not found:
            raise PgradError(f"no progress.csv in {path} or below it")
        dirs += found
    return [_load_run(d) for d in dict.fromkeys(dirs)]


def _load_run(path: Path) -> Run:
    config_file = path / "config.json"
    try:
        config = (safeio.read_json(config_file, 2**20, "run config")
                  if config_file.exists() else {})
        budget = _budget(path / "run.json")
        text = safeio.read_text(path / "progress.csv", safeio.MAX_CSV_BYTES, "progress file")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except (OSError, ValueError, RecursionError, csv.Error) as e:
        raise PgradError(f"cannot read the run in {path}: {e}") from e
    if not isinstance(config, dict):
        raise PgradError(f"{config_file} is not a JSON object of settings")
    if not rows:
        raise PgradError(f"{path / 'progress.csv'} has no rows")
    columns = {key: np.array([_number(r.get(key)) for r in rows]) for key in rows[0]}
    return Run(path=path, config=config, columns=columns, total_timesteps=budget)


def _budget(run_file: Path) -> int | None:
    """``total_timesteps`` of a run's ``run.json`` (None without one, or without a number)."""
    if not run_file.exists():
        return None
    run = safeio.read_json(run_file, 2**20, "run settings")
    total = run.get("total_timesteps") if isinstance(run, dict) else None
    return total if isinstance(total, int) and not isinstance(total, bool) else None


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs grouped by their settings without the seed (``config.json``, which names the
    env) and their budget of env steps, labelled by what differs: only runs of one
    configuration on one env for the same number of steps are seeds of one curve."""
    def key(run: Run) -> str:
        settings = {k: v for k, v in run.config.items() if k != "seed"}
        settings["total_timesteps"] = run.total_timesteps
        return json.dumps(settings, sort_keys=True)

    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    configs = [json.loads(k) for k in groups]
    names = sorted({n for c in configs for n in c})
    differing = [n for n in names if len({json.dumps(c.get(n)) for c in configs}) > 1]
    labels = {}
    for k, config in zip(groups, configs, strict=True):
        label = ", ".join(f"{n}={_show(config.get(n))}" for n in differing)
        labels[k] = label or str(config.get("env_id") or "runs")
    return {labels[k]: group for k, group in groups.items()}


def _show(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def bootstrap_ci(samples: np.ndarray, confidence: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap CI of the mean over axis 0 (seeds) of ``samples [n, ...]``."""
    n = samples.shape[0]
    rng = np.random.default_rng(seed)
    means = samples[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)


def interquartile_mean(values: np.ndarray) -> float:
    """Mean of the middle 50 % (drops the lowest and highest quarter, rliable's IQM)."""
    data = np.sort(np.asarray(values, dtype=float))
    n = data.size
    cut = int(math.floor(n * 0.25))
    middle = data[cut: n - cut] if n - 2 * cut > 0 else data
    return float(middle.mean())


def _aligned(runs: list[Run], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Common step grid and ``[seeds, grid]`` values, each run interpolated onto it."""
    curves = [run.curve(metric) for run in runs]
    start = max(steps[0] for steps, _ in curves)
    stop = min(steps[-1] for steps, _ in curves)
    grid = np.linspace(start, stop, GRID_POINTS) if stop > start else np.array([stop])
    return grid, np.stack([np.interp(grid, steps, values) for steps, values in curves])


@dataclass(frozen=True)
class Summary:
    """One row of the summary table."""

    label: str
    seeds: int
    final_mean: float
    final_low: float
    final_high: float
    final_iqm: float
    threshold: float | None
    reached: int
    steps_to_threshold_median: float


def summarize(groups: dict[str, list[Run]], metric: str = RETURN_KEY,
              threshold: float | None = None) -> list[Summary]:
    """Final value (last logged row of each run) and steps to first reach ``threshold``."""
    rows = []
    for label, runs in groups.items():
        finals = np.array([run.curve(metric)[1][-1] for run in runs])
        low, high = bootstrap_ci(finals)
        first_steps = []
        if threshold is not None:
            for run in runs:
                steps, values = run.curve(metric)
                hit = np.flatnonzero((values >= threshold) & _full_window(run, metric))
                first_steps.append(steps[hit[0]] if hit.size else math.inf)
        reached = int(np.isfinite(first_steps).sum()) if first_steps else 0
        rows.append(Summary(
            label=label, seeds=len(runs), final_mean=float(finals.mean()),
            final_low=float(low), final_high=float(high),
            final_iqm=interquartile_mean(finals), threshold=threshold, reached=reached,
            steps_to_threshold_median=float(np.median(first_steps)) if first_steps
            else math.nan))
    return rows


def _full_window(run: Run, metric: str) -> np.ndarray:
    """For the training return: rows where it averages a full window of episodes (as
    ``--stop-return`` requires): ``rollout/window_full``, or, in runs logged before it
    existed, at least 100 episodes; a mean of the first few episodes is mostly luck."""
    keep = ~np.isnan(run.columns[metric])
    if metric != RETURN_KEY:
        return np.ones(int(keep.sum()), dtype=bool)
    if "rollout/window_full" in run.columns:
        return run.columns["rollout/window_full"][keep] == 1.0
    if "rollout/episodes" in run.columns:
        return run.columns["rollout/episodes"][keep] >= STATS_WINDOW
    return np.ones(int(keep.sum()), dtype=bool)


def write_summary(rows: list[Summary], out: Path, metric: str = RETURN_KEY) -> str:
    """Write the table as ``out`` with suffixes ``.md`` and ``.csv``; returns the markdown."""
    threshold = rows[0].threshold if rows else None
    head = ["configuration", "seeds", f"final {metric} (mean, 95 % CI)", "final IQM"]
    if threshold is not None:
        head += [f"seeds reaching {threshold:g}", "median steps to reach it"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.label, str(r.seeds),
                 f"{r.final_mean:.3g} [{r.final_low:.3g}, {r.final_high:.3g}]",
                 f"{r.final_iqm:.3g}"]
        if threshold is not None:
            median = ("not reached (median)" if math.isinf(r.steps_to_threshold_median)
                      else f"{r.steps_to_threshold_median:,.0f}")
            cells += [f"{r.reached}/{r.seeds}", median]
        lines.append("| " + " | ".join(cells) + " |")
    markdown = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(markdown)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["configuration", "seeds", "final_mean", "final_ci_low",
                         "final_ci_high", "final_iqm", "threshold", "seeds_reaching",
                         "median_steps_to_threshold"])
        for r in rows:
            writer.writerow([r.label, r.seeds, r.final_mean, r.final_low, r.final_high,
                             r.final_iqm, "" if r.threshold is None else r.threshold,
                             r.reached, r.steps_to_threshold_median])
    return markdown


def check_plot_support() -> None:
    """Raise a PgradError with the fix unless matplotlib is installed (checked before any
    run is trained or read; imported only to draw)."""
    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except ValueError:  # in sys.modules as None: known missing
        found = False
    if not found:
        raise PgradError('plotting needs matplotlib: pip install "pgrad[plot]"')


def _pyplot() -> Any:
    check_plot_support()
    try:
        import matplotlib
    except ImportError:
        raise PgradError('plotting needs matplotlib: pip install "pgrad[plot]"') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(groups: dict[str, list[Run]], out: Path, metric: str = RETURN_KEY,
                title: str | None = None, threshold: float | None = None,
                log_y: bool = False) -> Path:
    """Draw each configuration's mean curve with its 95 % bootstrap band; save a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for i, (label, runs) in enumerate(groups.items()):
        grid, values = _aligned(runs, metric)
        low, high = bootstrap_ci(values)
        color = f"C{i}"
        ax.plot(grid, values.mean(axis=0), color=color, lw=2,
                label=f"{label} ({len(runs)} seeds)")
        ax.fill_between(grid, low, high, color=color, alpha=0.25, lw=0)
    if threshold is not None:
        ax.axhline(threshold, color="gray", ls="--", lw=1, label=f"threshold {threshold:g}")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("env steps")
    ax.set_ylabel(_axis_label(metric))
    ax.set_title(title or "mean over seeds, shaded: 95 % bootstrap CI of the mean")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _axis_label(metric: str) -> str:
    return {RETURN_KEY: "training return (mean of last 100 episodes)",
            "diagnostics/grad_snr": "per-episode gradient SNR",
            "diagnostics/grad_variance": "per-episode gradient variance (trace)",
            "diagnostics/kl": "KL(π_old ‖ π_new) per update"}.get(metric, metric)
