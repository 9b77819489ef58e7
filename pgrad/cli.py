"""The ``pgrad`` command: ``train``, ``eval``, ``export``, ``compare``, ``plot``. Nothing
imports this.

Every field of :class:`pgrad.Config` is an option of ``pgrad train`` (``learning_rate`` is
``--learning-rate``, alias ``--lr``); bad input ends with a one-line error and exit code 2.
``pgrad train`` saves its run directory every ``--save-every`` steps and at the end;
SIGINT / SIGTERM finish the update under way, save, and exit with 130 / 143;
``pgrad train --resume DIR`` continues a run (see docs/reliability.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pgrad import safeio
from pgrad.config import Config
from pgrad.errors import PgradError

__all__ = ["main"]

DEFAULT_TIMESTEPS = 500_000
DEFAULT_SAVE_EVERY = 100_000
RUN_FILE = "run.json"
"""The run's own settings (step target, stop return, ...), read back by --resume."""
ALIASES = {"learning_rate": ["--lr"], "env_packages": ["--env-package"]}
TRAIN_FIELDS = [f for f in dataclasses.fields(Config) if f.name != "env_id"]


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _optional(parse: Any) -> Any:
    def convert(text: str) -> Any:
        return None if text.lower() == "none" else parse(text)
    convert.__name__ = parse.__name__
    return convert


def _key_value(text: str) -> tuple[str, Any]:
    """``key=value`` → (key, value), the value parsed as JSON where it is JSON, else a string
    (``render=false`` → False, ``size=[3, 4]`` → [3, 4], ``map_name=8x8`` → "8x8")."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    defaults = Config()
    for f in TRAIN_FIELDS:
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        text = f"{f.metadata['help']} (default: {default})"
        kind = str(f.type)
        names = [flag, *ALIASES.get(f.name, [])]
        if kind == "bool":
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=text)
        elif kind == "tuple[str, ...]":  # repeatable: --env-package a --env-package b
            parser.add_argument(*names, dest=f.name, action="append", metavar="MODULE",
                                default=argparse.SUPPRESS, help=text)
        elif kind == "dict[str, Any]":
            parser.add_argument(*names, dest=f.name, type=_key_value, nargs="+",
                                action="extend", metavar="KEY=VALUE",
                                default=argparse.SUPPRESS, help=text)
        elif kind == "tuple[int, ...]":
            parser.add_argument(*names, dest=f.name, type=int, nargs="+", metavar="N",
                                default=argparse.SUPPRESS, help=text)
        else:
            base = {"int": int, "float": float, "str": str}[kind.split(" | ")[0]]
            parse = _optional(base) if kind.endswith("| None") else base
            parser.add_argument(*names, dest=f.name, type=parse, default=argparse.SUPPRESS,
                                metavar=f.name.split("_")[-1].upper(), help=text)


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
                       help="Gymnasium environment id (default: CartPole-v1)")
    train.add_argument("--total-timesteps", type=int, default=None, metavar="N",
                       help=f"env steps to train for (default: {DEFAULT_TIMESTEPS}); with "
                       "--resume, the run's new total (default: the saved one)")
    train.add_argument("--stop-return", type=float, default=None, metavar="X",
                       help="stop once the mean return of the last 100 training episodes "
                       "reaches X (default: train for all steps)")
    train.add_argument("--out", type=Path, default=None, metavar="DIR",
                       help="run directory (default: runs/<env>-s<seed>-<date-time>)")
    train.add_argument("--resume", type=Path, default=None, metavar="DIR",
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
                    "(pgrad/presets.py) starts from it instead. Options given here always win.")

    ev = sub.add_parser("eval", help="evaluate a trained agent",
                        description="Play a trained agent and print its mean ± std return.")
    ev.add_argument("run_dir", type=Path, help="run directory or .safetensors checkpoint")
    ev.add_argument("--episodes", type=int, default=10, metavar="N",
                    help="episodes to play (default: 10)")
    ev.add_argument("--env", default=None, metavar="ENV_ID",
                    help="environment id (default: the one it was trained on)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the environments (default: 0)")
    ev.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                    help="take the policy's mode instead of sampling (default: on)")
    ev.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    ev.add_argument("--json", action="store_true",
                    help="print one JSON object with mean, std and episodes")
    ev.add_argument("--video", type=Path, default=None, metavar="PATH",
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
                     help="seeds 0 … N-1 for every configuration (default: 5)")
    cmp.add_argument("--total-timesteps", type=int, default=200_000, metavar="N",
                     help="env steps of every run (default: 200000)")
    cmp.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="output directory (default: runs/compare-<env>-<date-time>)")
    cmp.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                     help="where to draw the curves; the table goes beside it as FILE.md and "
                     "FILE.csv (default: DIR/curves.png)")
    cmp.add_argument("--jobs", type=int, default=None, metavar="N",
                     help="runs at a time (default: the number of cores)")
    cmp.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=False,
                     help="write TensorBoard files in every run (default: off)")
    _add_plot_options(cmp)

    plot = sub.add_parser(
        "plot", help="learning curves and a summary table of existing runs",
        description="Group runs by their settings (seed left out) and draw each group's "
        "mean curve with a 95 % bootstrap confidence band; write the summary table beside "
        "the PNG (same name, .md and .csv).")
    plot.add_argument("paths", type=Path, nargs="+", metavar="RUN_DIR",
                      help="run directories, or directories holding runs")
    plot.add_argument("--out", type=Path, default=None, metavar="FILE.png",
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


def _launch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``pgrad train --nproc K``: the same command under torchrun, K workers, one machine."""
    import os
    import subprocess

    if args.nproc < 1:
        raise PgradError(f"--nproc must be at least 1, got {args.nproc}")
    rest, skip = [], False
    for arg in argv:  # every option but --nproc goes to the workers
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    if args.out is None and args.resume is None:  # one run directory, named once
        env_id = args.env_id or "CartPole-v1"
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

    env_id = args.env_id or "CartPole-v1"
    agent = Reinforce(env_id, **overrides)
    run_dir = args.out or _default_run_dir(env_id, agent.config.seed)
    if (run_dir / "model.safetensors").exists():
        raise PgradError(f"{run_dir} already holds a trained model; choose another --out, "
                         f"or continue it with --resume {run_dir}")
    run = {"total_timesteps": args.total_timesteps or DEFAULT_TIMESTEPS,
           "stop_return": args.stop_return,
           "save_every": args.save_every or DEFAULT_SAVE_EVERY,
           "tensorboard": args.tensorboard}
    return agent, run_dir, run


def _resumed_run(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[Any, Path, dict]:
    """The agent saved in ``--resume DIR``, DIR, and the run's settings (given ones win)."""
    from pgrad.agent import Reinforce

    run_dir = args.resume
    if not run_dir.is_dir():
        raise PgradError(f"no checkpoint at {run_dir}: --resume takes the run directory "
                         "(the --out) of an earlier pgrad train")
    clashes = [f"--{name.replace('_', '-')}" for name in overrides]
    clashes += [flag for flag, given in (("env_id", args.env_id), ("--out", args.out)) if given]
    if clashes:
        raise PgradError(f"--resume continues a run with its saved settings; drop "
                         f"{', '.join(clashes)}")
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
                       ("stop_return", args.stop_return), ("save_every", args.save_every)):
        if value is not None or key not in run:
            run[key] = value if value is not None else {
                "total_timesteps": DEFAULT_TIMESTEPS, "save_every": DEFAULT_SAVE_EVERY}.get(key)
    run["tensorboard"] = bool(run.get("tensorboard", True)) and args.tensorboard
    return agent, run_dir, run


def _check_run_settings(run: Any) -> None:
    """Raise a ValueError unless ``run`` (run.json) holds sane settings."""
    if not isinstance(run, dict):
        raise ValueError("not a JSON object")
    for key in ("total_timesteps", "save_every"):
        value = run.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 1 <= value <= 2**62):
            raise ValueError(f"{key} must be an integer in [1, 2**62], got {str(value)[:40]}")
    stop = run.get("stop_return")
    if stop is not None and (not isinstance(stop, int | float) or isinstance(stop, bool)
                             or stop - stop != 0):
        raise ValueError(f"stop_return must be a finite number, got {str(stop)[:40]}")


def _train(args: argparse.Namespace) -> int:
    from pgrad import distributed

    overrides = {f.name: getattr(args, f.name) for f in TRAIN_FIELDS if hasattr(args, f.name)}
    if "hidden_sizes" in overrides:
        overrides["hidden_sizes"] = tuple(overrides["hidden_sizes"])
    if "env_packages" in overrides:
        overrides["env_packages"] = tuple(overrides["env_packages"])
    if "env_kwargs" in overrides:
        overrides["env_kwargs"] = dict(overrides["env_kwargs"])
    for flag, value in (("--total-timesteps", args.total_timesteps),
                        ("--save-every", args.save_every)):
        if value is not None and value < 1:
            raise PgradError(f"{flag} must be at least 1, got {value}")
    if args.dist_timeout <= 0:
        raise PgradError(f"--dist-timeout must be positive, got {args.dist_timeout:g}")
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
    import os

    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def _train_agent(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from pgrad import distributed
    from pgrad.trainer import Interrupted

    world = distributed.world()  # one process unless torchrun started this one
    agent, run_dir, run = (_resumed_run if args.resume else _new_run)(args, overrides)
    try:
        total = int(run["total_timesteps"])
        save_every = int(run["save_every"])
        stop_return = None if run["stop_return"] is None else float(run["stop_return"])
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
        print(f"pgrad: training on {env_id} ({workers}{agent.config.num_envs} envs, batches "
              f"of {estimator}, baseline {'on' if agent.config.baseline else 'off'}{start})",
              flush=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    resume_hint = f"resume with: pgrad train --resume {run_dir}"
    try:
        agent.learn(remaining, stop_return=stop_return, run_dir=run_dir,
                    progress_bar=args.progress, tensorboard=run["tensorboard"],
                    save_every=save_every)
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
          f"updates; mean return of the last 100 training episodes"
          f"{' of each worker' if world.distributed else ''}: {result.return_mean:.1f}")
    print(f"run directory: {run_dir}")
    print(f"evaluate with: pgrad eval {run_dir} --episodes 100")
    return 0


def _check_saved_env(agent: Any) -> None:
    """Say why a loaded agent's env id cannot be made here (a package not installed)."""
    if agent.env_source is None and agent.config.env_id is not None:
        from pgrad.envs import check_env_id

        check_env_id(agent.config.env_id, agent.config.env_packages)


def _eval(args: argparse.Namespace) -> int:
    from pgrad.agent import Reinforce
    from pgrad.evaluation import evaluate

    agent = Reinforce.load(args.run_dir, device=args.device)
    if args.env is None:
        _check_saved_env(agent)
    result = evaluate(agent, args.env, episodes=args.episodes, seed=args.seed,
                      deterministic=args.deterministic)
    if args.json:
        print(json.dumps({"mean": result.mean, "std": result.std,
                          "episodes": result.episodes, "returns": result.returns.tolist()}))
    else:
        print(f"mean return {result.mean:.2f} ± {result.std:.2f} over {result.episodes} "
              f"episodes")
    if args.video is not None:
        from pgrad.video import record_video

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

    from pgrad.envs import register_envs

    register_envs()
    try:
        return gym.spec(env_id).reward_threshold
    except gym.error.Error:
        return None


def _plot(args: argparse.Namespace) -> int:
    from pgrad import plot

    runs = plot.load_runs(args.paths)
    env_ids = {run.config.get("env_id") for run in runs}
    out = args.out or ((args.paths[0] if len(args.paths) == 1 else Path(".")) / "curves.png")
    _draw(args, runs, out, env_ids.pop() if len(env_ids) == 1 else None)
    return 0


def _draw(args: argparse.Namespace, runs: list[Any], out: Path, env_id: str | None) -> None:
    from pgrad import plot

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
    from pgrad import compare, plot

    if args.seeds < 1:
        raise PgradError(f"--seeds must be at least 1, got {args.seeds}")
    out = args.out or Path("runs") / (f"compare-{args.env_id.replace('/', '_')}-"
                                      f"{time.strftime('%Y%m%d-%H%M%S')}")
    configurations = args.configurations or [""]
    seeds = list(range(args.seeds))
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
    runs = plot.load_runs([out / compare.directory_name(c.strip() or "defaults")
                           for c in configurations])
    _draw(args, runs, args.plot or out / "curves.png", args.env_id)
    return 0


def _under_torchrun() -> bool:
    from pgrad.distributed import launched

    return launched()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pgrad`` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train" and args.nproc != 1 and not _under_torchrun():
            return _launch(args, argv)
        commands = {"train": _train, "eval": _eval, "compare": _compare, "plot": _plot,
                    "export": _export}
        return commands[args.command](args)
    except PgradError as e:
        print(f"pgrad {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path that cannot be read or written
        print(f"pgrad {args.command}: error: {e.strerror or e}"
              f"{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pgrad {args.command}: interrupted", file=sys.stderr)
        return 130
