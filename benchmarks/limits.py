"""Throughput ceiling of pgrad's CartPole-v1 training on this machine.

Each piece of a training step is timed alone, in microseconds per sample:

* **env**: one step of Gymnasium's native vector CartPole-v1 (random actions);
* **act**: pgrad's own policy choosing actions, ``policy.to_env(policy.sample(obs))`` under
  ``torch.inference_mode()``, at a batch of ``num_envs`` observations;
* **update**: one update as ``Reinforce.update`` does it on a batch of samples, with
  pgrad's own code: ``Reinforce._loss_backward`` (forward → ``pgrad.reinforce_loss`` →
  backward, in chunks of ``pgrad.agent.update_chunk`` samples as in training) →
  ``Reinforce._gradient_step`` (clipping, the divergence guard, Adam). What the ceiling
  leaves out is the rest of an update: gathering the batch, returns, diagnostics.

The policy is ``pgrad.make_policy(obs_space, act_space, **config.policy_kwargs)``, so the
default network (and the separate value network of the default baseline) is what is timed.
The ceiling is ``1e6 / (env + act + update)`` samples/s: what a trainer with no other cost
could reach. Every timing runs warm-up calls first, then splits the timed calls into
``repeats`` chunks and keeps the median chunk, which damps scheduler noise. Each piece is
timed on two clocks at once: wall time and this process's CPU time (``time.process_time``),
which other processes sharing the cores inflate far less.

:func:`fraction_of_ceiling` times pgrad's own training at ``num_envs`` envs (valid,
learned-from steps per second of ``learn``) right after the ceiling, on both clocks, a few
times over, so that the fraction compares figures taken under the same load. It does so for
two kinds of batch (:func:`batch_configs`): the whole-episode defaults (issue 14's target),
whose finished envs idle until the batch's longest episode ends, so that only a *valid
share* of their env steps is learned from; and fixed-step batches (``n_steps``), where every
env step but Gymnasium's reset steps is. The ceiling charges one env step per sample, so a
valid share s caps the fraction at :func:`share_bound`: (env + act + update) ÷
(env / s + act + update). The fraction of that bound is what pgrad's own machinery
(bookkeeping, the rest of an update, and running the pieces one after another) leaves.

``python benchmarks/limits.py`` prints the ceiling for a few env counts and thread counts;
``python benchmarks/limits.py --fraction`` pgrad's fraction of it at 256 envs, for both
kinds of batch.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import pgrad
from pgrad.agent import _Targets, update_chunk
from pgrad.presets import preset

ENV_ID = "CartPole-v1"


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Temporarily set torch's intra-op thread count; yields the count in effect."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def _time_per_call(step: Callable[[], object], iters: int, warmup: int, repeats: int) -> float:
    """Median wall seconds per ``step()`` over ``repeats`` chunks sharing ``iters`` calls."""
    return _time_per_call_both(step, iters, warmup, repeats)[0]


def _time_per_call_both(step: Callable[[], object], iters: int, warmup: int,
                        repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds per ``step()`` over ``repeats`` chunks of the ``iters``
    timed calls."""
    for _ in range(warmup):
        step()
    chunk = max(1, iters // repeats)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(chunk):
            step()
        cpu.append((time.process_time() - start_cpu) / chunk)
        wall.append((time.perf_counter() - start) / chunk)
    return float(np.median(wall)), float(np.median(cpu))


def _result(per_call_s: tuple[float, float], samples_per_call: int, /,
            **info: Any) -> dict[str, Any]:
    """Common result fields: µs per call and per sample, wall and CPU."""
    wall, cpu = per_call_s
    return {**info, "us_per_call": wall * 1e6, "us_per_sample": wall / samples_per_call * 1e6,
            "cpu_us_per_sample": cpu / samples_per_call * 1e6}


def _spaces() -> tuple[gym.Space, gym.Space]:
    env = gym.make(ENV_ID)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def cartpole_config(**kwargs: Any) -> pgrad.Config:
    """The settings ``pgrad.Reinforce("CartPole-v1", **kwargs)`` trains with: the Config
    defaults, then CartPole's preset, then ``kwargs``."""
    return pgrad.Config(**{**preset(ENV_ID), "env_id": ENV_ID, **kwargs})


def make_default_policy(config: pgrad.Config | None = None, seed: int = 0) -> pgrad.Policy:
    """pgrad's policy for CartPole-v1 with ``config``'s network (default: CartPole's
    settings, :func:`cartpole_config`)."""
    config = config or cartpole_config()
    torch.manual_seed(seed)
    return pgrad.make_policy(*_spaces(), **config.policy_kwargs)


def env_step_cost(num_envs: int, steps: int, warmup: int = 50, repeats: int = 5,
                  seed: int = 0) -> dict[str, Any]:
    """Time random-action steps of the native CartPole-v1 vector env, µs per sample."""
    envs = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point")
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 2, size=(warmup + steps + repeats, num_envs), dtype=np.int64)
    rows = iter(actions)
    envs.reset(seed=seed)
    try:
        per_call = _time_per_call_both(lambda: envs.step(next(rows)), steps, warmup, repeats)
    finally:
        envs.close()
    return _result(per_call, num_envs, num_envs=num_envs, steps=steps)


def policy_act_cost(policy: pgrad.Policy, batch: int, iters: int, warmup: int = 20,
                    repeats: int = 5) -> dict[str, Any]:
    """Time ``policy.to_env(policy.sample(obs))`` on NumPy observations, µs per sample."""
    rng = np.random.default_rng(0)
    obs = (0.05 * rng.standard_normal((batch, policy.obs_dim))).astype(np.float32)
    with torch.inference_mode():
        per_call = _time_per_call_both(lambda: policy.to_env(policy.sample(obs)),
                                  iters, warmup, repeats)
    return _result(per_call, batch, batch=batch, iters=iters, threads=torch.get_num_threads())


def policy_update_cost(agent: pgrad.Reinforce, batch: int, iters: int, warmup: int = 3,
                       repeats: int = 5) -> dict[str, Any]:
    """Time one update's forward, loss, backward, clipping and Adam step of ``agent`` on
    ``batch`` random samples (pgrad's own code, chunked as in training), µs per sample."""
    gen = torch.Generator().manual_seed(0)
    policy = agent.policy
    obs = 0.05 * torch.randn(batch, policy.obs_dim, generator=gen)
    data = SimpleNamespace(obs=obs, actions=torch.randint(0, 2, (batch,), generator=gen),
                           count=batch)
    returns = 50 * torch.rand(batch, generator=gen)
    targets = _Targets(returns=returns, policy_returns=returns, weights=None)

    def step() -> None:
        agent.optimizer.zero_grad(set_to_none=True)
        forward = agent._loss_backward(data, targets)  # type: ignore[arg-type]
        agent._gradient_step(forward.losses["loss"], batch)

    per_call = _time_per_call_both(step, iters, warmup, repeats)
    return _result(per_call, batch, batch=batch, iters=iters, threads=torch.get_num_threads(),
                   chunk=update_chunk(torch.device("cpu")))


def _iters_for(batch: int, samples: int, lo: int, hi: int) -> int:
    """Iterations so that roughly ``samples`` samples are timed, clamped to [lo, hi]."""
    return max(lo, min(hi, samples // batch))


def limit(num_envs: int, update_batch: int, config: pgrad.Config | None = None,
          threads: int | None = 1, scale: float = 1.0) -> dict[str, Any]:
    """Samples/s ceiling = 1e6 / (env_us + act_us + update_us) for ``config``'s network.

    Acting is timed at a batch of ``num_envs``, the update at ``update_batch`` samples;
    ``scale`` shrinks the number of timed calls (for smoke runs).
    """
    config = config or cartpole_config()
    with torch_threads(threads) as used:
        env = env_step_cost(num_envs, _iters_for(num_envs, int(scale * 300_000), 200, 5_000))
        agent = pgrad.Reinforce(ENV_ID, config=config)
        policy = agent.policy
        act = policy_act_cost(policy, num_envs,
                              _iters_for(num_envs, int(scale * 200_000), 50, 2_000))
        update = policy_update_cost(agent, update_batch,
                                    _iters_for(update_batch, int(scale * 500_000), 5, 200))
    total_us = env["us_per_sample"] + act["us_per_sample"] + update["us_per_sample"]
    cpu_us = {f"cpu_{k}_us": r["cpu_us_per_sample"]
              for k, r in (("env", env), ("act", act), ("update", update))}
    cpu_total_us = sum(cpu_us.values())
    return {
        "num_envs": num_envs,
        "update_batch": update_batch,
        "update_chunk": update["chunk"],
        "threads": used,
        "hidden_sizes": list(config.hidden_sizes),
        "value_net": config.value_net if config.baseline else None,
        "parameters": sum(p.numel() for p in policy.parameters()),
        "env_us": env["us_per_sample"],
        "act_us": act["us_per_sample"],
        "update_us": update["us_per_sample"],
        "total_us": total_us,
        "samples_per_s": 1e6 / total_us,
        **cpu_us,
        "cpu_total_us": cpu_total_us,
        "cpu_samples_per_s": 1e6 / cpu_total_us,
    }


def count_env_steps(collector: Any) -> Callable[[], int]:
    """Count every env step ``collector`` takes from now on (learned-from or idle: each row
    of each batch); returns a function giving the count so far."""
    stepped = 0
    collect = collector.collect

    def counting_collect() -> Any:
        nonlocal stepped
        batch = collect()
        stepped += batch.valid.numel()
        return batch

    setattr(collector, "collect", counting_collect)  # noqa: B010  (instance override)
    return lambda: stepped


def batch_configs(num_envs: int, update_batch: int) -> dict[str, dict[str, Any]]:
    """The two kinds of batch the fraction is measured for, as ``Reinforce`` keyword
    arguments: ``whole_episodes``, the defaults with one episode per env per batch (what
    issue 14's target names), and ``fixed_steps``, ``n_steps`` rows of every env making
    batches of ``update_batch`` steps, the ceiling's update size, where every env step
    but Gymnasium's reset steps is learned from."""
    return {"whole_episodes": {"num_envs": num_envs, "batch_episodes": num_envs},
            "fixed_steps": {"num_envs": num_envs, "n_steps": max(1, update_batch // num_envs)}}


def pgrad_rate(num_envs: int, steps: int, seed: int = 0, **kwargs: Any) -> dict[str, Any]:
    """pgrad's training speed: ``Reinforce("CartPole-v1", num_envs=N, batch_episodes=N)
    .learn(steps)`` (vector env built before timing), in valid (learned-from) steps per
    wall second and per CPU second of ``learn``, and the valid share: valid steps ÷ env
    steps taken. ``kwargs`` (other ``Reinforce`` settings) may replace ``batch_episodes``
    by ``n_steps``."""
    if "n_steps" not in kwargs:
        kwargs.setdefault("batch_episodes", num_envs)
    agent = pgrad.Reinforce(ENV_ID, seed=seed, num_envs=num_envs, **kwargs)
    stepped = count_env_steps(agent.make_collector())
    start, start_cpu = time.perf_counter(), time.process_time()
    agent.learn(steps, tensorboard=False)
    cpu = time.process_time() - start_cpu
    wall = time.perf_counter() - start
    agent.close()
    assert agent.last_result is not None
    done = agent.last_result.steps
    return {"steps": done, "env_steps": stepped(), "valid_share": done / stepped(),
            "steps_per_s": done / wall, "cpu_steps_per_s": done / cpu}


def share_bound(env_us: float, act_us: float, update_us: float, valid_share: float) -> float:
    """The highest fraction of the ceiling a trainer can reach when only ``valid_share``
    of its env steps are learned from: it steps every env (env_us each), acts and updates
    at least once per valid step, so a valid step costs at least
    env_us / valid_share + act_us + update_us, against the ceiling's
    env_us + act_us + update_us."""
    return (env_us + act_us + update_us) / (env_us / valid_share + act_us + update_us)


def fraction_of_ceiling(num_envs: int = 256, update_batch: int = 16_384,
                        steps: int = 1_000_000, repeats: int = 3,
                        config: pgrad.Config | None = None, threads: int | None = 1,
                        scale: float = 1.0) -> dict[str, Any]:
    """pgrad's training speed at ``num_envs`` envs ÷ the ceiling, for each kind of batch
    (:func:`batch_configs`). Each repeat times the ceiling, then pgrad with each kind; the
    result holds the medians of the repeats' ceilings and, under ``configs``, each kind's
    median speed, fraction, valid share, :func:`share_bound` and fraction ÷ bound (the
    share of what its valid share allows), on the wall clock and this process's CPU
    clock. Its top-level ``fraction`` and ``cpu_fraction`` are the whole-episode
    defaults' (issue 14's target)."""
    rounds = []
    kinds = batch_configs(num_envs, update_batch)
    with torch_threads(threads):
        for _ in range(repeats):
            lim = limit(num_envs, update_batch, config, threads=threads, scale=scale)
            runs = {}
            for name, kwargs in kinds.items():
                run = pgrad_rate(num_envs, steps,
                                 **{k: v for k, v in kwargs.items() if k != "num_envs"})
                bound = share_bound(lim["env_us"], lim["act_us"], lim["update_us"],
                                    run["valid_share"])
                cpu_bound = share_bound(lim["cpu_env_us"], lim["cpu_act_us"],
                                        lim["cpu_update_us"], run["valid_share"])
                fraction = run["steps_per_s"] / lim["samples_per_s"]
                cpu_fraction = run["cpu_steps_per_s"] / lim["cpu_samples_per_s"]
                runs[name] = {**run, "fraction": fraction, "cpu_fraction": cpu_fraction,
                              "bound": bound, "cpu_bound": cpu_bound,
                              "of_bound": fraction / bound,
                              "cpu_of_bound": cpu_fraction / cpu_bound}
            rounds.append({**lim, "runs": runs, "load_avg": os.getloadavg()})
    median = {key: float(np.median([r[key] for r in rounds])) for key in rounds[0]
              if isinstance(rounds[0][key], float)}
    configs = {name: {"kwargs": kwargs, **{
        key: float(np.median([r["runs"][name][key] for r in rounds]))
        for key in rounds[0]["runs"][name]}} for name, kwargs in kinds.items()}
    whole = configs["whole_episodes"]
    return {**{k: v for k, v in rounds[0].items() if k != "runs"}, **median,
            "configs": configs, "fraction": whole["fraction"],
            "cpu_fraction": whole["cpu_fraction"], "pgrad_steps": int(whole["steps"]),
            "pgrad_steps_per_s": whole["steps_per_s"],
            "pgrad_cpu_steps_per_s": whole["cpu_steps_per_s"],
            "repeats": repeats, "rounds": rounds}


def main(env_counts: Sequence[int] = (1, 16, 256), thread_counts: Sequence[int] = (1, 2),
         update_batch: int = 16_384) -> None:
    """Print the per-piece costs and the ceiling for a few env and thread counts."""
    print(f"{ENV_ID} ceiling with pgrad's default policy, update batch {update_batch}, "
          f"torch {torch.__version__}")
    print(f"{'envs':>5} {'thr':>3} {'env_us':>8} {'act_us':>8} {'upd_us':>8} {'samples/s':>11}")
    for num_envs in env_counts:
        for threads in thread_counts:
            r = limit(num_envs, update_batch, threads=threads)
            print(f"{num_envs:>5} {r['threads']:>3} {r['env_us']:>8.2f} {r['act_us']:>8.2f} "
                  f"{r['update_us']:>8.2f} {r['samples_per_s']:>11.0f}")


def print_fraction(num_envs: int = 256, repeats: int = 3) -> None:
    """Print pgrad's fraction of the ceiling at ``num_envs`` envs for each kind of batch:
    each repeat, the medians, and the bound each kind's valid share sets."""
    res = fraction_of_ceiling(num_envs, repeats=repeats)
    print(f"pgrad at {num_envs} envs vs the ceiling (torch 1 thread); wall | CPU clock")
    for i, r in enumerate(res["rounds"]):
        print(f"  round {i}: ceiling {r['samples_per_s']:,.0f} | {r['cpu_samples_per_s']:,.0f}"
              f" samples/s (load {', '.join(f'{x:.1f}' for x in r['load_avg'])})")
        for name, run in r["runs"].items():
            print(f"    {name:15s} pgrad {run['steps_per_s']:,.0f} | "
                  f"{run['cpu_steps_per_s']:,.0f}  fraction {run['fraction']:.2f} | "
                  f"{run['cpu_fraction']:.2f}  (valid share {run['valid_share']:.3f})")
    print("  medians:")
    for name, c in res["configs"].items():
        settings = ", ".join(f"{k}={v}" for k, v in c["kwargs"].items())
        print(f"    {name:15s} ({settings}): fraction {c['fraction']:.2f} | "
              f"{c['cpu_fraction']:.2f}; valid share {c['valid_share']:.3f} bounds it at "
              f"{c['bound']:.2f} | {c['cpu_bound']:.2f}; fraction of that bound "
              f"{c['of_bound']:.2f} | {c['cpu_of_bound']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fraction", action="store_true",
                        help="pgrad's fraction of the ceiling at 256 envs instead")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.fraction:
        print_fraction(repeats=args.repeats)
    else:
        main()
