"""The ``pgrad`` command: ``pgrad train`` and ``pgrad eval``. Nothing imports this module.

Every field of :class:`pgrad.Config` is an option of ``pgrad train`` (``learning_rate`` is
``--learning-rate``, alias ``--lr``); bad input ends with a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pgrad.config import Config
from pgrad.errors import PgradError

__all__ = ["main"]

DEFAULT_TIMESTEPS = 500_000
ALIASES = {"learning_rate": ["--lr"]}
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
    train.add_argument("env_id", nargs="?", default="CartPole-v1",
                       help="Gymnasium environment id (default: CartPole-v1)")
    train.add_argument("--total-timesteps", type=int, default=DEFAULT_TIMESTEPS, metavar="N",
                       help=f"env steps to train for (default: {DEFAULT_TIMESTEPS})")
    train.add_argument("--stop-return", type=float, default=None, metavar="X",
                       help="stop once the mean return of the last 100 training episodes "
                       "reaches X (default: train for all steps)")
    train.add_argument("--out", type=Path, default=None, metavar="DIR",
                       help="run directory (default: runs/<env>-s<seed>-<date-time>)")
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
    return parser


def _default_run_dir(env_id: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{env_id.replace('/', '_')}-s{seed}-{stamp}"
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
    if args.out is None:  # one run directory, named once, for rank 0 to write
        rest += ["--out", str(_default_run_dir(args.env_id, getattr(args, "seed", 0)))]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={args.nproc}", "-m", "pgrad", *rest]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default too, without its warning
    if sys.platform == "linux":
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: talk over loopback
    print(f"pgrad: launching {args.nproc} workers: {' '.join(command[1:])}", flush=True)
    return subprocess.call(command, env=env)


def _train(args: argparse.Namespace) -> int:
    from pgrad import distributed

    overrides = {f.name: getattr(args, f.name) for f in TRAIN_FIELDS if hasattr(args, f.name)}
    if "hidden_sizes" in overrides:
        overrides["hidden_sizes"] = tuple(overrides["hidden_sizes"])
    if args.total_timesteps < 1:
        raise PgradError(f"--total-timesteps must be at least 1, got {args.total_timesteps}")
    if args.dist_timeout <= 0:
        raise PgradError(f"--dist-timeout must be positive, got {args.dist_timeout:g}")
    # Under torchrun: join the other workers (gloo on CPU, NCCL on CUDA) before building
    # the agent, which takes its rank's seed stream from the process group.
    distributed.init(overrides.get("device", "cpu"), timeout=args.dist_timeout)
    try:
        return _train_agent(args, overrides)
    finally:
        distributed.shutdown()


def _train_agent(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from pgrad import distributed
    from pgrad.agent import Reinforce

    world = distributed.world()  # one process unless torchrun started this one
    agent = Reinforce(args.env_id, **overrides)
    run_dir = args.out or _default_run_dir(args.env_id, agent.config.seed)
    if world.is_main and (run_dir / "model.safetensors").exists():
        raise PgradError(f"{run_dir} already holds a trained model; choose another --out")
    estimator = ("whole episodes (Monte-Carlo REINFORCE)" if agent.config.n_steps is None
                 else f"{agent.config.n_steps}-step segments bootstrapped from V(s)")
    workers = f"{world.size} workers, each " if world.distributed else ""
    if world.is_main:
        print(f"pgrad: training on {args.env_id} ({workers}{agent.config.num_envs} envs, "
              f"batches of {estimator}, baseline {'on' if agent.config.baseline else 'off'})",
              flush=True)
    try:
        agent.learn(args.total_timesteps, stop_return=args.stop_return, run_dir=run_dir,
                    progress_bar=args.progress, tensorboard=args.tensorboard)
    finally:
        agent.close()
    result = agent.last_result
    assert result is not None
    if not world.is_main:
        return 0
    if args.stop_return is not None:
        state = "reached" if result.reached_stop_return else "not reached"
        print(f"stop return {args.stop_return:g} {state}")
    print(f"trained {result.steps} steps in {result.seconds:.1f} s "
          f"({result.steps / max(result.seconds, 1e-9):.0f} steps/s), {result.updates} "
          f"updates; mean return of the last 100 training episodes"
          f"{' of each worker' if world.distributed else ''}: {result.return_mean:.1f}")
    print(f"run directory: {run_dir}")
    print(f"evaluate with: pgrad eval {run_dir} --episodes 100")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pgrad.agent import Reinforce
    from pgrad.evaluation import evaluate

    agent = Reinforce.load(args.run_dir, device=args.device)
    result = evaluate(agent, args.env, episodes=args.episodes, seed=args.seed,
                      deterministic=args.deterministic)
    if args.json:
        print(json.dumps({"mean": result.mean, "std": result.std,
                          "episodes": result.episodes, "returns": result.returns.tolist()}))
    else:
        print(f"mean return {result.mean:.2f} ± {result.std:.2f} over {result.episodes} "
              f"episodes")
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
        return {"train": _train, "eval": _eval}[args.command](args)
    except PgradError as e:
        print(f"pgrad {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pgrad {args.command}: interrupted", file=sys.stderr)
        return 130
