"""The ``pgrad`` command: ``train``, ``eval``, ``export``, ``compare``, ``plot``. Nothing
imports this.

Every field of :class:`pgrad.Config` is an option of ``pgrad train`` (``learning_rate`` is
``--learning-rate``, alias ``--lr``), read by the field's own parser
(:func:`pgrad.config.field_kind`); bad input ends with a one-line error and exit code 2.
Parsing and checking the arguments imports neither torch nor gymnasium: ``--help`` and
every error that needs no model answer at once; the heavy imports happen inside the
commands.
``pgrad train`` saves its run directory every ``--save-every`` steps and at the end;
SIGINT / SIGTERM finish the update under way, save, and exit with 130 / 143;
``pgrad train --resume DIR`` continues a run (see docs/reliability.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pgrad import safeio
from pgrad.config import Config, FieldKind, field_kind
from pgrad.constants import STOP_ON
from pgrad.errors import PgradError
from pgrad.presets import preset

__all__ = ["main"]

DEFAULT_TIMESTEPS = 500_000
DEFAULT_SAVE_EVERY = 100_000
DEFAULT_EVAL_EPISODES = 10
RUN_FILE = "run.json"
"""The run's own settings (step target, stop return, ...), read back by --resume."""
ALIASES = {"learning_rate": ["--lr"], "env_packages": ["--env-package"]}
TRAIN_FIELDS = [f for f in dataclasses.fields(Config) if f.name != "env_id"]
DEFAULT_ENV = "CartPole-v1"
MAX_SEED = 2**31 - 1
MAX_EPISODES = 10_000_000
MAX_EVAL_ENVS = 1024
MIN_UPDATES = 10
"""Fewer updates than this in a run is worth a line at its start."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _FieldAction(argparse.Action):
    """Stores a Config field's value parsed by its :class:`FieldKind`; repeating a
    ``tuple[str, ...]`` or ``dict`` option adds to it (``--env-kwargs a=1 --env-kwargs b=2``)."""

    def __init__(self, *args: Any, kind: FieldKind, **kwargs: Any) -> None:
        self.kind = kind
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        words = values if isinstance(values, list) else [values]
        try:
            value = self.kind.parse_words(words)
        except ValueError as e:
            raise argparse.ArgumentError(self, f"{' '.join(words)!r} is not a "
                                         f"{self.kind.annotation} ({e})") from None
        previous = getattr(namespace, self.dest, None)
        if self.kind.base == "tuple[str, ...]" and isinstance(previous, tuple):
            value = previous + value
        elif self.kind.base == "dict[str, Any]" and isinstance(previous, dict):
            value = {**previous, **value}
        setattr(namespace, self.dest, value)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    defaults = Config()
    for f in TRAIN_FIELDS:
        kind = field_kind(str(f.type))
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        text = f"{f.metadata['help']} (default: {_shown(kind, default)})".replace("%", "%%")
        names = [flag, *ALIASES.get(f.name, [])]
        if kind.base == "bool" and not kind.optional:
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=text)
            continue
        metavar = kind.metavar if kind.is_sequence else f.name.split("_")[-1].upper()
        parser.add_argument(*names, dest=f.name, action=_FieldAction, kind=kind,
                            nargs="+" if kind.is_sequence else None, metavar=metavar,
                            default=argparse.SUPPRESS, help=text)


def _shown(kind: FieldKind, value: Any) -> str:
    """A default as it would be typed on the command line (``64 64``, ``a=1 b=x``)."""
    if value is None or not kind.is_sequence:
        return kind.format(value)
    if isinstance(value, dict):
        return " ".join(f"{k}={json.dumps(v)}" for k, v in value.items()) or "none given"
    return " ".join(map(str, value)) or "none given"


def _path(text: str) -> Path:
    """A path argument: not empty, and text a file name can be written with (UTF-8)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(text).decode("utf-8", "backslashreplace")
        raise argparse.ArgumentTypeError(f"{shown!r} is not valid UTF-8: choose a "
                                         "UTF-8 name") from None
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pgrad`` command."""
    parser = _Parser(prog="pgrad", description="Policy-gradient RL (REINFORCE) in PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser(
        "train", help="train an agent and save its run directory",
        description="Train REINFORCE on a Gymnasium environment. Batches are whole episodes "
        "(Monte-Carlo REINFORCE) unless --n-steps is set; then episodes cut by a batch's "
        "end are bootstrapped from the value baseline (an n-step actor-critic).")
    train.add_argument("env_id", nargs="?", default=None,
                       help=f"Gymnasium environment id (default: {DEFAULT_ENV})")
    train.add_argument("--total-timesteps", type=int, default=None, metavar="N",
                       help=f"env steps to train for (default: {DEFAULT_TIMESTEPS}); with "
                       "--resume, the run's new total (default: the saved one)")
    train.add_argument("--stop-return", type=float, default=None, metavar="X",
                       help="stop once the return reaches X (default: train for all "
                       "steps): the training return over a full window of at least 100 "
                       "episodes, or each evaluation's mean with --stop-on eval")
    train.add_argument("--stop-on", choices=STOP_ON, default=None,
                       help="which return --stop-return watches: train (the training "
                       "episodes, default) or eval (the evaluations of --eval-every)")
    train.add_argument("--eval-every", type=int, default=None, metavar="STEPS",
                       help="every STEPS env steps, evaluate on a separate env (own seed, "
                       "deterministic actions), log eval/return_mean and eval/return_std, "
                       "and keep the best model as best.safetensors (default: never)")
    train.add_argument("--eval-episodes", type=int, default=None, metavar="K",
                       help="episodes per evaluation (default: 10)")
    train.add_argument("--out", type=_path, default=None, metavar="DIR",
                       help="run directory (default: runs/<env>-s<seed>-<date-time>)")
    train.add_argument("--resume", type=_path, default=None, metavar="DIR",
                       help="continue the run saved in DIR with its saved settings, until "
                       "its total steps (an interrupted run prints this command)")
    train.add_argument("--save-every", type=int, default=None, metavar="N",
                       help="save the checkpoint every N env steps, and at the end "
                       f"(default: {DEFAULT_SAVE_EVERY})")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                       help="show a progress bar (default: on)")
    train.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=True,
                       help="write TensorBoard event files to the run directory (default: on)")
    train.add_argument("--nproc", type=int, default=1, metavar="K",
                       help="data-parallel workers on this machine, launched with "
                       "torch.distributed.run (default: 1; see docs/distributed.md)")
    train.add_argument("--dist-timeout", type=float, default=60.0, metavar="S",
                       help="seconds a worker waits for its peers before failing "
                       "(default: 60)")
    _add_config_options(train)
    train.epilog = ("Defaults shown are pgrad.Config's; an env with a tuned preset "
                    "(pgrad/presets.py) starts from it instead, and the first line of the "
                    "run names what it changed. Options given here always win.")

    ev = sub.add_parser("eval", help="evaluate a trained agent",
                        description="Play a trained agent and print its mean ± std return.")
    ev.add_argument("run_dir", type=Path, help="run directory or .safetensors checkpoint")
    ev.add_argument("--episodes", type=int, default=10, metavar="N",
                    help="episodes to play; env k of the vector env plays its first "
                    "N / num-envs of them, so short episodes are not favoured (default: 10)")
    ev.add_argument("--num-envs", type=int, default=16, metavar="N",
                    help="environments stepped together (default: 16)")
    ev.add_argument("--env", default=None, metavar="ENV_ID",
                    help="environment id (default: the one it was trained on)")
    ev.add_argument("--seed", type=int, default=0,
                    help=f"seed of the environments, 0 … {MAX_SEED} (default: 0)")
    ev.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                    help="take the policy's mode instead of sampling (default: on)")
    ev.add_argument("--stochastic", dest="deterministic", action="store_false",
                    help="sample actions from the policy (same as --no-deterministic)")
    ev.add_argument("--threads", type=int, default=1, metavar="N",
                    help="torch CPU threads while playing (default: 1, as in training)")
    ev.add_argument("--render", choices=["human"], default=None,
                    help="show the episodes in a window (one env; needs a display)")
    ev.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    ev.add_argument("--json", action="store_true",
                    help="print one JSON object with mean, std and episodes")
    ev.add_argument("--video", type=_path, default=None, metavar="PATH",
                    help="also film episodes: PATH.mp4, or a directory for episode-K.mp4 "
                    '(needs pip install "pgrad[video]")')
    ev.add_argument("--video-episodes", type=int, default=1, metavar="N",
                    help="episodes to film with --video (default: 1)")
    _add_evidence_commands(sub)
    _add_export_command(sub)
    return parser


def _add_evidence_commands(sub: Any) -> None:
    """``pgrad compare`` and ``pgrad plot`` (pgrad.compare, pgrad.plot)."""
    cmp = sub.add_parser(
        "compare", help="train a grid of configurations x seeds in parallel and plot them",
        description="Train each configuration (one --set each) with each seed, in parallel "
        "processes; write every run's directory, a learning-curve plot (curves.png: mean "
        "over seeds, 95 % bootstrap band) and a summary table (curves.md, curves.csv).",
        epilog="Example: pgrad compare CartPole-v1 --seeds 10 --set baseline=true "
        "--set baseline=false --out runs/baseline")
    cmp.add_argument("env_id", help="Gymnasium environment id")
    cmp.add_argument("--set", dest="configurations", action="append", default=None,
                     metavar="KEY=VALUE[,KEY=VALUE...]",
                     help="one configuration: pgrad.Config fields to override, e.g. "
                     "baseline=false,lr=3e-3 (repeat for each configuration; default: "
                     "the defaults only)")
    cmp.add_argument("--seeds", type=int, default=5, metavar="N",
                     help="seeds 0 … N-1 for every configuration, N at most 1000 "
                     "(default: 5)")
    cmp.add_argument("--total-timesteps", type=int, default=200_000, metavar="N",
                     help="env steps of every run (default: 200000)")
    cmp.add_argument("--out", type=_path, default=None, metavar="DIR",
                     help="output directory (default: runs/compare-<env>-<date-time>)")
    cmp.add_argument("--plot", type=_path, default=None, metavar="FILE.png",
                     help="where to draw the curves; the table goes beside it as FILE.md and "
                     "FILE.csv (default: DIR/curves.png)")
    cmp.add_argument("--jobs", type=int, default=None, metavar="N",
                     help="runs at a time (default: the number of cores)")
    cmp.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=False,
                     help="write TensorBoard files in every run (default: off)")
    _add_plot_options(cmp)

    plot = sub.add_parser(
        "plot", help="learning curves and a summary table of existing runs",
        description="Group runs by their settings (config.json without the seed, env id "
        "included) and their budget of env steps (run.json), and draw each group's "
        "mean curve with a 95 % bootstrap confidence band; write the summary table beside "
        "the PNG (same name, .md and .csv).")
    plot.add_argument("paths", type=Path, nargs="+", metavar="RUN_DIR",
                      help="run directories, or directories holding runs")
    plot.add_argument("--out", type=_path, default=None, metavar="FILE.png",
                      help="the PNG to write (default: curves.png in the one directory "
                      "given, else in the current directory)")
    _add_plot_options(plot)


def _add_plot_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", default="rollout/ep_return_mean", metavar="KEY",
                        help="progress.csv column to plot (default: rollout/ep_return_mean)")
    parser.add_argument("--threshold", type=float, default=None, metavar="X",
                        help="count the steps to first reach X (default: the env's "
                        "reward_threshold, if it has one)")
    parser.add_argument("--title", default=None, help="plot title")
    parser.add_argument("--log-y", action="store_true", help="logarithmic y axis")


def _default_run_dir(env_id: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{env_id.replace('/', '_').replace(':', '_')}-s{seed}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The Config fields given on the command line, checked with every other setting of
    ``pgrad train`` before anything heavy is imported or launched."""
    overrides = {f.name: getattr(args, f.name) for f in TRAIN_FIELDS if hasattr(args, f.name)}
    for flag, value in (("--total-timesteps", args.total_timesteps),
                        ("--save-every", args.save_every), ("--nproc", args.nproc),
                        ("--eval-every", args.eval_every)):
        if value is not None and value < 1:
            raise PgradError(f"{flag} must be at least 1, got {value}")
    if args.eval_episodes is not None:
        _check_range("--eval-episodes", args.eval_episodes, 1, MAX_EPISODES)
    if args.stop_on == "eval" and args.eval_every is None and args.resume is None:
        raise PgradError("--stop-on eval compares --stop-return with evaluations: give "
                         "--eval-every STEPS too")
    if not args.dist_timeout > 0:
        raise PgradError(f"--dist-timeout must be positive, got {args.dist_timeout:g}")
    if args.resume is None:
        env_id = args.env_id or DEFAULT_ENV
        Config(env_id=env_id, **{**preset(env_id), **overrides})  # fails on a bad value
        return overrides
    clashes = [f"--{name.replace('_', '-')}" for name in overrides]
    clashes += [flag for flag, given in (("env_id", args.env_id), ("--out", args.out)) if given]
    if clashes:
        raise PgradError(f"--resume continues a run with its saved settings; drop "
                         f"{', '.join(clashes)}")
    return overrides


def _launch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``pgrad train --nproc K``: the same command under torchrun, K workers, one machine."""
    import subprocess

    rest, skip = [], False
    for arg in argv:  # every option but --nproc goes to the workers
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    if args.out is None and args.resume is None:  # one run directory, named once
        env_id = args.env_id or DEFAULT_ENV
        rest += ["--out", str(_default_run_dir(env_id, getattr(args, "seed", 0)))]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={args.nproc}", "-m", "pgrad", *rest]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default too, without its warning
    if sys.platform == "linux":
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: talk over loopback
    print(f"pgrad: launching {args.nproc} workers: {' '.join(command[1:])}", flush=True)
    return subprocess.call(command, env=env)


def _new_run(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[Any, Path, dict]:
    """A fresh agent, its run directory and its run settings."""
    from pgrad.agent import Reinforce

    env_id = args.env_id or DEFAULT_ENV
    agent = Reinforce(env_id, **overrides)
    run_dir = args.out or _default_run_dir(env_id, agent.config.seed)
    if (run_dir / "model.safetensors").exists():
        raise PgradError(f"{run_dir} already holds a trained model; choose another --out, "
                         f"or continue it with --resume {run_dir}")
    run = {"total_timesteps": args.total_timesteps or DEFAULT_TIMESTEPS,
           "stop_return": args.stop_return,
           "save_every": args.save_every or DEFAULT_SAVE_EVERY,
           "tensorboard": args.tensorboard, "eval_every": args.eval_every,
           "eval_episodes": args.eval_episodes or DEFAULT_EVAL_EPISODES,
           "stop_on": args.stop_on or "train"}
    return agent, run_dir, run


def _resumed_run(args: argparse.Namespace) -> tuple[Any, Path, dict]:
    """The agent saved in ``--resume DIR``, DIR, and the run's settings (given ones win)."""
    from pgrad.agent import Reinforce

    run_dir = args.resume
    if not run_dir.is_dir():
        raise PgradError(f"no checkpoint at {run_dir}: --resume takes the run directory "
                         "(the --out) of an earlier pgrad train")
    run_file = run_dir / RUN_FILE
    try:
        run = safeio.read_json(run_file, 2**20, "run file") if run_file.exists() else {}
        _check_run_settings(run)
    except ValueError as e:
        raise PgradError(f"{run_file} is unreadable ({e}); delete it to resume with "
                         "the defaults") from e
    agent = Reinforce.load(run_dir)
    _check_saved_env(agent)
    if agent.env_source is None:
        raise PgradError(f"{run_dir} was trained on an env built by a callable, not a "
                         "Gymnasium id; resume it from Python with Reinforce.load(..., env=...)")
    for key, value in (("total_timesteps", args.total_timesteps),
                       ("stop_return", args.stop_return), ("save_every", args.save_every),
                       ("eval_every", args.eval_every), ("eval_episodes", args.eval_episodes),
                       ("stop_on", args.stop_on)):
        if value is not None or key not in run:
            run[key] = value if value is not None else {
                "total_timesteps": DEFAULT_TIMESTEPS, "save_every": DEFAULT_SAVE_EVERY,
                "eval_episodes": DEFAULT_EVAL_EPISODES, "stop_on": "train"}.get(key)
    run["tensorboard"] = bool(run.get("tensorboard", True)) and args.tensorboard
    return agent, run_dir, run


def _check_run_settings(run: Any) -> None:
    """Raise a ValueError unless ``run`` (run.json) holds sane settings."""
    if not isinstance(run, dict):
        raise ValueError("not a JSON object")
    for key in ("total_timesteps", "save_every", "eval_every", "eval_episodes"):
        value = run.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 1 <= value <= 2**62):
            raise ValueError(f"{key} must be an integer in [1, 2**62], got {str(value)[:40]}")
    stop = run.get("stop_return")
    if stop is not None and (not isinstance(stop, int | float) or isinstance(stop, bool)
                             or stop - stop != 0):
        raise ValueError(f"stop_return must be a finite number, got {str(stop)[:40]}")
    if run.get("stop_on", "train") not in STOP_ON:
        raise ValueError(f"stop_on must be one of {', '.join(STOP_ON)}, "
                         f"got {str(run.get('stop_on'))[:40]}")


def _train(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from pgrad import distributed

    # Under torchrun: join the other workers (gloo on CPU, NCCL on CUDA) before building
    # the agent, which takes its rank's seed stream from the process group.
    device = overrides.get("device") or _saved_device(args.resume)
    if world_size() > 1:  # check before joining: a bad device must not hang the others
        from pgrad.agent import resolve_device
        resolve_device(device)
    distributed.init(device, timeout=args.dist_timeout)
    try:
        return _train_agent(args, overrides)
    finally:
        distributed.shutdown()


def _saved_device(run_dir: Path | None) -> str:
    """The device a run to resume was trained on (cpu for a new run or an unreadable one)."""
    config_file = None if run_dir is None else run_dir / "config.json"
    if config_file is None or not config_file.exists():
        return "cpu"
    config = safeio.read_json(config_file, 2**20, "run config")
    device = config.get("device", "cpu") if isinstance(config, dict) else "cpu"
    return device if isinstance(device, str) else "cpu"


def world_size() -> int:
    """Workers torchrun started (1 outside torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def preset_line(env_id: str, overrides: dict[str, Any]) -> str | None:
    """One line naming ``env_id``'s preset and the settings it changed (those no option
    overrode and that differ from Config's defaults); None when it has no preset."""
    settings = preset(env_id)
    if not settings:
        return None
    defaults = Config()
    changed = {k: v for k, v in settings.items()
               if k not in overrides and getattr(defaults, k) != v}
    kinds = {f.name: field_kind(str(f.type)) for f in TRAIN_FIELDS}
    if not changed:
        return (f"pgrad: the {env_id} preset (pgrad/presets.py) changes nothing here: "
                "the options given override it")
    shown = ", ".join(f"{k}={kinds[k].format(v)}" for k, v in changed.items())
    return (f"pgrad: applying the {env_id} preset (pgrad/presets.py): {shown} "
            "(options given on the command line win)")


def budget_line(config: Config, steps: int, workers: int,
                max_episode_steps: int | None) -> str | None:
    """One line when ``steps`` env steps are less than one batch or give fewer than
    :data:`MIN_UPDATES` updates; None otherwise. A whole-episode batch's size is known only
    up to the episodes' lengths: its largest (``max_episode_steps`` per episode) is used."""
    if config.n_steps is not None:
        batch = config.n_steps * config.num_envs * workers
        what = f"one batch is {config.n_steps} steps x {config.num_envs * workers} envs = {batch:,}"
        updates = steps // batch
        if updates >= MIN_UPDATES:
            return None
        return (f"pgrad: note: {what} steps, so --total-timesteps {steps:,} gives "
                f"{max(updates, 1)} update(s); raise --total-timesteps or lower --n-steps")
    if max_episode_steps is None:
        return None
    batch = config.batch_episodes * workers * max_episode_steps
    if steps >= MIN_UPDATES * batch:
        return None
    what = (f"one batch is {config.batch_episodes * workers} whole episodes of up to "
            f"{max_episode_steps:,} steps (up to {batch:,} steps)")
    if steps < batch:
        return (f"pgrad: note: {what}, more than --total-timesteps {steps:,}: training may "
                f"make a single update; raise --total-timesteps or lower --batch-episodes")
    return (f"pgrad: note: {what}: --total-timesteps {steps:,} may give fewer than "
            f"{MIN_UPDATES} updates")


def _max_episode_steps(agent: Any) -> int | None:
    """The agent's env's time limit, where its id names one."""
    limit = getattr(agent.config, "max_episode_steps", None)
    if limit is not None or not isinstance(agent.env_source, str):
        return limit
    import gymnasium as gym

    try:
        return gym.spec(agent.env_source).max_episode_steps
    except gym.error.Error:
        return None


def _train_agent(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    import signal

    from pgrad import distributed
    from pgrad.trainer import Interrupted

    world = distributed.world()  # one process unless torchrun started this one
    agent, run_dir, run = _resumed_run(args) if args.resume else _new_run(args, overrides)
    try:
        total = int(run["total_timesteps"])
        save_every = int(run["save_every"])
        stop_return = None if run["stop_return"] is None else float(run["stop_return"])
        evaluation = {"eval_every": run.get("eval_every"),
                      "eval_episodes": int(run.get("eval_episodes") or DEFAULT_EVAL_EPISODES),
                      "stop_on": str(run.get("stop_on") or "train")}
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise PgradError(f"{run_dir / RUN_FILE} is malformed ({e!r})") from e
    remaining = total - agent.num_timesteps
    if remaining < 1:
        print(f"{run_dir} has trained {agent.num_timesteps} of its {total} steps: nothing "
              "to do (give a larger --total-timesteps to train on)")
        return 0
    env_id = agent.config.env_id
    estimator = ("whole episodes (Monte-Carlo REINFORCE)" if agent.config.n_steps is None
                 else f"{agent.config.n_steps}-step segments bootstrapped from V(s)")
    start = f", resuming at step {agent.num_timesteps}" if args.resume else ""
    workers = f"{world.size} workers, each " if world.distributed else ""
    if world.is_main:
        notes = [] if args.resume else [preset_line(env_id, overrides)]
        notes.append(budget_line(agent.config, remaining, world.size,
                                 _max_episode_steps(agent)))
        for line in filter(None, notes):
            print(line, flush=True)
        print(f"pgrad: training on {env_id} ({workers}{agent.config.num_envs} envs, batches "
              f"of {estimator}, baseline {'on' if agent.config.baseline else 'off'}{start})",
              flush=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    resume_hint = f"resume with: pgrad train --resume {run_dir}"
    try:
        agent.learn(remaining, stop_return=stop_return, run_dir=run_dir,
                    progress_bar=args.progress, tensorboard=run["tensorboard"],
                    save_every=save_every, **evaluation)
    except Interrupted as e:
        name = signal.Signals(e.signum).name
        print(f"pgrad train: interrupted by {name} at step {e.step}; checkpoint saved to "
              f"{e.checkpoint}; {resume_hint}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        saved = (run_dir / "model.safetensors").is_file()
        print("pgrad train: interrupted during an update, which was abandoned; " + (
              f"the last checkpoint is intact; {resume_hint}" if saved
              else "no checkpoint was saved yet"), file=sys.stderr)
        return 130
    except PgradError as e:
        saved = (run_dir / "model.safetensors").is_file()
        raise PgradError(f"{e}" + (f"; the last checkpoint in {run_dir} is intact"
                                   if saved else "")) from e
    finally:
        agent.close()
    result = agent.last_result
    assert result is not None
    if not world.is_main:
        return 0
    if stop_return is not None:
        state = "reached" if result.reached_stop_return else "not reached"
        print(f"stop return {stop_return:g} {state}")
    print(f"trained {result.steps} steps in {result.seconds:.1f} s "
          f"({result.steps / max(result.seconds, 1e-9):.0f} steps/s), {result.updates} "
          f"updates; training return (mean over a window of ≥ 100 episodes"
          f"{', all workers' if world.distributed else ''}): {result.return_mean:.1f}")
    if result.updates < MIN_UPDATES and not result.reached_stop_return:
        print(f"note: only {result.updates} update(s): the policy has barely learned; "
              f"give a larger --total-timesteps (or smaller batches)")
    print(f"run directory: {run_dir}")
    print(f"evaluate with: pgrad eval {run_dir} --episodes 100")
    return 0


def _check_saved_env(agent: Any) -> None:
    """Say why a loaded agent's env id cannot be made here (a package not installed)."""
    if agent.env_source is None and agent.config.env_id is not None:
        from pgrad.envs import check_env_id

        check_env_id(agent.config.env_id, agent.config.env_packages)


def _check_range(flag: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise PgradError(f"{flag} must be in [{low}, {high}], got {value}")


def _check_display() -> None:
    """Raise unless a window can be opened (``--render human``)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        raise PgradError("--render human needs a display (DISPLAY is not set); film the "
                         "episodes with --video PATH instead")


def _eval(args: argparse.Namespace) -> int:
    _check_range("--seed", args.seed, 0, MAX_SEED)
    _check_range("--episodes", args.episodes, 1, MAX_EPISODES)
    _check_range("--num-envs", args.num_envs, 1, MAX_EVAL_ENVS)
    _check_range("--threads", args.threads, 1, 1024)
    _check_range("--video-episodes", args.video_episodes, 1, 1000)
    if args.render == "human":
        _check_display()
    if args.video is not None:
        from pgrad.tools.video import check_video_support

        check_video_support()  # before any episode is played
    from pgrad.agent import Reinforce
    from pgrad.evaluation import evaluate

    agent = Reinforce.load(args.run_dir, device=args.device)
    if args.env is None:
        _check_saved_env(agent)
    result = evaluate(agent, args.env, episodes=args.episodes, seed=args.seed,
                      deterministic=args.deterministic, num_envs=args.num_envs,
                      threads=args.threads, render_mode=args.render)
    if args.json:
        print(json.dumps({"mean": result.mean, "std": result.std,
                          "episodes": result.episodes, "returns": result.returns.tolist()}))
    else:
        print(f"mean return {result.mean:.2f} ± {result.std:.2f} over {result.episodes} "
              f"episodes")
    if args.video is not None:
        from pgrad.tools.video import record_video

        files = record_video(agent, args.video, episodes=args.video_episodes,
                             env_id=args.env, seed=args.seed,
                             deterministic=args.deterministic)
        print("video: " + ", ".join(map(str, files)),
              file=sys.stderr if args.json else sys.stdout)
    return 0


def _add_export_command(sub: Any) -> None:
    """``pgrad export RUN_DIR --format onnx|torchscript [--out FILE]`` (pgrad.export)."""
    ex = sub.add_parser(
        "export", help="write the trained policy as a standalone ONNX or TorchScript file",
        description="Export the deterministic policy: raw observations [batch, *obs_shape] -> "
        "env-ready actions, observation normalisation and action bounds included. Runs "
        "without pgrad (onnxruntime or torch.jit.load).")
    ex.add_argument("run_dir", type=Path, help="run directory or .safetensors checkpoint")
    ex.add_argument("--format", choices=["onnx", "torchscript"], default="onnx",
                    help='file format (default: onnx, which needs pip install "pgrad[export]")')
    ex.add_argument("--out", type=Path, default=None, metavar="FILE",
                    help="where to write it (default: RUN_DIR/policy.onnx or policy.pt)")


def _export(args: argparse.Namespace) -> int:
    from pgrad.agent import Reinforce
    from pgrad.export import default_path, require

    require(args.format)
    agent = Reinforce.load(args.run_dir, device="cpu")
    path = agent.export(args.out or default_path(args.run_dir, args.format), format=args.format)
    print(f"exported {args.format}: {path}")
    return 0


def _threshold(args: argparse.Namespace, env_id: str | None) -> float | None:
    if args.threshold is not None or env_id is None or args.metric != "rollout/ep_return_mean":
        return args.threshold  # the env's reward_threshold is a threshold of returns
    import gymnasium as gym

    from pgrad.envs import register_envs, split_env_id

    register_envs()
    try:  # a module:EnvId id is registered by its module, which plotting does not import
        return gym.spec(split_env_id(env_id)[1]).reward_threshold
    except gym.error.Error:
        return None


def _check_plot_file(path: Path) -> None:
    if path.is_dir():
        raise PgradError(f"{path} is a directory: give the PNG file to write, e.g. "
                         f"{path / 'curves.png'}")


def _plot(args: argparse.Namespace) -> int:
    from pgrad.tools import plot

    plot.check_plot_support()
    if args.out is not None:
        _check_plot_file(args.out)
    runs = plot.load_runs(args.paths)
    env_ids = {run.config.get("env_id") for run in runs}
    out = args.out or ((args.paths[0] if len(args.paths) == 1 else Path(".")) / "curves.png")
    _draw(args, runs, out, env_ids.pop() if len(env_ids) == 1 else None)
    return 0


def _draw(args: argparse.Namespace, runs: list[Any], out: Path, env_id: str | None) -> None:
    from pgrad.tools import plot

    groups = plot.group_runs(runs)
    threshold = _threshold(args, env_id)
    rows = plot.summarize(groups, args.metric, threshold)
    print(plot.write_summary(rows, out, args.metric), end="")
    plot.plot_curves(groups, out, args.metric, title=args.title or
                     (f"{env_id}: mean over seeds, 95% bootstrap CI" if env_id else None),
                     threshold=threshold if args.metric == plot.RETURN_KEY else None,
                     log_y=args.log_y)
    print(f"plot: {out}\ntable: {out.with_suffix('.md')}, {out.with_suffix('.csv')}")


def _compare(args: argparse.Namespace) -> int:
    from pgrad.tools import compare, plot

    _check_range("--seeds", args.seeds, 1, compare.MAX_SEEDS)
    if args.jobs is not None:
        _check_range("--jobs", args.jobs, 1, 1024)
    if args.plot is not None:
        _check_plot_file(args.plot)
    plot.check_plot_support()  # before any run is trained
    configurations = args.configurations or [""]
    seeds = list(range(args.seeds))
    plan = compare.plan_grid(args.env_id, configurations, seeds)  # bad settings fail now
    out = args.out or Path("runs") / (f"compare-{args.env_id.replace('/', '_')}-"
                                      f"{time.strftime('%Y%m%d-%H%M%S')}")
    jobs = args.jobs or compare.default_jobs()
    print(f"pgrad: {len(configurations)} configuration(s) x {len(seeds)} seeds on "
          f"{args.env_id}, {args.total_timesteps} steps each, {jobs} at a time -> {out}",
          flush=True)

    def report(r: dict[str, Any]) -> None:
        print(f"  {r['label']} seed {r['seed']}: return {r['return_mean']:.3g} after "
              f"{r['steps']} steps ({r['seconds']:.1f} s)", flush=True)

    start = time.perf_counter()
    compare.run_grid(args.env_id, configurations, seeds, args.total_timesteps, out,
                     jobs=jobs, tensorboard=args.tensorboard, report=report)
    print(f"all runs done in {time.perf_counter() - start:.1f} s")
    # In the order the configurations were given (the legend's and the table's order).
    runs = plot.load_runs([out / compare.directory_name(name) for name, _ in plan])
    _draw(args, runs, args.plot or out / "curves.png", args.env_id)
    return 0


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.command == "train":
        overrides = _train_overrides(args)
        if args.nproc != 1 and not ("WORLD_SIZE" in os.environ and "RANK" in os.environ):
            return _launch(args, argv)  # not yet under torchrun (pgrad.distributed.launched)
        return _train(args, overrides)
    commands = {"eval": _eval, "compare": _compare, "plot": _plot, "export": _export}
    return commands[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pgrad`` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = "pgrad"
    try:
        args = build_parser().parse_args(argv)
        command = f"pgrad {args.command}"
        return _run(args, argv)
    except PgradError as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path that cannot be read or written
        print(f"{command}: error: {e.strerror or e}"
              f"{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while starting (imports) or outside training
        print(f"{command}: interrupted", file=sys.stderr)
        return 130


def run() -> NoReturn:
    """The ``pgrad`` console script and ``python -m pgrad``: :func:`main` in a process of
    its own, which exits with its code.

    By then every file the command wrote is closed, but the interpreter's exit would
    still run a full garbage collection over every object alive, most of them torch's
    from its import: a large share of a short run's wall time (``benchmarks/startup.py``
    measures it). ``gc.freeze()`` first moves them out of the collector's reach, so the
    exit skips that pass; atexit handlers and the flushing of streams run as usual. A
    program that calls :func:`main` itself keeps its collector untouched.
    """
    code = main()
    gc.freeze()
    raise SystemExit(code)
