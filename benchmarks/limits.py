"""Throughput ceiling of CartPole-v1 policy-gradient training on this machine.

Each piece of a training step is timed separately and reported in microseconds
per sample: stepping the vectorised environment, acting with the policy (forward
plus sampling) and updating it (forward, loss, backward, Adam). ``limit`` sums
them into a samples-per-second ceiling, measured for each torch thread count.

Every timing runs warm-up calls first, then splits the timed calls into
``repeats`` chunks and reports the median chunk, which damps scheduler noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import gymnasium as gym
import numpy as np
import torch
from torch import nn

OBS_DIM = 4
N_ACTIONS = 2
THREAD_COUNTS: tuple[int, ...] = (1, 2)


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
    """Median seconds per ``step()`` over ``repeats`` chunks sharing ``iters`` timed calls."""
    for _ in range(warmup):
        step()
    chunk = max(1, iters // repeats)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(chunk):
            step()
        times.append((time.perf_counter() - start) / chunk)
    return float(np.median(times))


def _result(per_call_s: float, samples_per_call: int, /, **info: object) -> dict:
    """Common result fields: µs per call and per sample."""
    return {
        **info,
        "us_per_call": per_call_s * 1e6,
        "us_per_sample": per_call_s / samples_per_call * 1e6,
    }


def _mlp(hidden: Sequence[int]) -> nn.Sequential:
    """Tanh MLP from the observation to the last hidden layer."""
    layers: list[nn.Module] = []
    width = OBS_DIM
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Tanh()]
        width = h
    return nn.Sequential(*layers)


def env_step_cost(
    num_envs: int,
    steps: int,
    warmup: int = 50,
    repeats: int = 5,
    seed: int = 0,
) -> dict:
    """Time random-action steps of the native CartPole-v1 vector env, in µs per sample."""
    envs = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="vector_entry_point")
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, N_ACTIONS, size=(warmup + steps + repeats, num_envs), dtype=np.int64)
    rows = iter(actions)
    envs.reset(seed=seed)
    per_call = _time_per_call(lambda: envs.step(next(rows)), steps, warmup, repeats)
    envs.close()
    return _result(per_call, num_envs, num_envs=num_envs, steps=steps)


def policy_act_cost(
    batch: int,
    hidden: tuple[int, ...],
    iters: int,
    threads: int | None = None,
    warmup: int = 20,
    repeats: int = 5,
) -> dict:
    """Time numpy obs -> MLP logits -> sampled numpy actions under inference_mode, µs/sample."""
    with torch_threads(threads) as used:
        torch.manual_seed(0)
        body = _mlp(hidden)
        head = nn.Linear(hidden[-1], N_ACTIONS)
        obs = np.random.default_rng(0).standard_normal((batch, OBS_DIM)).astype(np.float32)

        def step() -> np.ndarray:
            logits = head(body(torch.from_numpy(obs)))
            probs = torch.softmax(logits, dim=-1)
            return torch.multinomial(probs, 1).squeeze(-1).numpy()

        with torch.inference_mode():
            per_call = _time_per_call(step, iters, warmup, repeats)
    return _result(per_call, batch, batch=batch, hidden=tuple(hidden), threads=used, iters=iters)


def policy_update_cost(
    batch: int,
    hidden: tuple[int, ...],
    iters: int,
    threads: int | None = None,
    warmup: int = 3,
    repeats: int = 5,
) -> dict:
    """Time one actor-critic REINFORCE update (forward, loss, backward, Adam), µs/sample."""
    with torch_threads(threads) as used:
        torch.manual_seed(0)
        body = _mlp(hidden)
        policy_head = nn.Linear(hidden[-1], N_ACTIONS)
        value_head = nn.Linear(hidden[-1], 1)
        params = [*body.parameters(), *policy_head.parameters(), *value_head.parameters()]
        optimizer = torch.optim.Adam(params, lr=3e-4)
        obs = torch.randn(batch, OBS_DIM)
        actions = torch.randint(0, N_ACTIONS, (batch,))
        returns = torch.randn(batch)

        def step() -> None:
            features = body(obs)
            log_probs = torch.log_softmax(policy_head(features), dim=-1)
            log_prob = log_probs.gather(1, actions.unsqueeze(1)).squeeze(1)
            values = value_head(features).squeeze(1)
            adv = returns - values.detach()
            loss = -(log_prob * adv).mean() + 0.5 * nn.functional.mse_loss(values, returns)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        per_call = _time_per_call(step, iters, warmup, repeats)
    return _result(per_call, batch, batch=batch, hidden=tuple(hidden), threads=used, iters=iters)


def _iters_for(batch: int, samples: int, lo: int, hi: int) -> int:
    """Iterations so that roughly ``samples`` samples are timed, clamped to [lo, hi]."""
    return max(lo, min(hi, samples // batch))


def limit(
    num_envs: int,
    update_batch: int,
    hidden: tuple[int, ...],
    thread_counts: Sequence[int] = THREAD_COUNTS,
) -> dict:
    """Samples/s ceiling = 1e6 / (env_us + act_us + update_us), for each torch thread count.

    The acting batch is ``num_envs``. Top-level keys describe the fastest thread
    count; ``by_threads`` holds the measurement for every count tried.
    """
    env = env_step_cost(num_envs, _iters_for(num_envs, 200_000, 500, 5_000))
    act_iters = _iters_for(num_envs, 200_000, 50, 2_000)
    update_iters = _iters_for(update_batch, 500_000, 10, 200)
    by_threads: dict[int, dict] = {}
    for threads in thread_counts:
        act = policy_act_cost(num_envs, hidden, act_iters, threads)
        update = policy_update_cost(update_batch, hidden, update_iters, threads)
        total_us = env["us_per_sample"] + act["us_per_sample"] + update["us_per_sample"]
        by_threads[act["threads"]] = {
            "threads": act["threads"],
            "act_us": act["us_per_sample"],
            "update_us": update["us_per_sample"],
            "total_us": total_us,
            "samples_per_s": 1e6 / total_us,
        }
    best = max(by_threads.values(), key=lambda r: r["samples_per_s"])
    return {
        "num_envs": num_envs,
        "update_batch": update_batch,
        "hidden": tuple(hidden),
        "env_us": env["us_per_sample"],
        **best,
        "by_threads": by_threads,
    }


def main() -> None:
    """Print the per-piece costs and the ceiling for a few env counts and widths."""
    update_batch = 16_384
    print(f"CartPole-v1 ceiling, update batch {update_batch}, torch {torch.__version__}")
    print(
        f"{'envs':>5} {'hidden':>10} {'thr':>3} {'env_us':>8} "
        f"{'act_us':>8} {'upd_us':>8} {'samples/s':>11}"
    )
    for hidden in ((64, 64), (128, 128)):
        for num_envs in (1, 16, 256):
            result = limit(num_envs, update_batch, hidden)
            for threads, row in result["by_threads"].items():
                mark = "*" if threads == result["threads"] else " "
                print(
                    f"{num_envs:>5} {str(hidden):>10} {threads:>3} {result['env_us']:>8.2f} "
                    f"{row['act_us']:>8.2f} {row['update_us']:>8.2f} "
                    f"{row['samples_per_s']:>10.0f}{mark}"
                )
    print("* = faster thread count for that row")


if __name__ == "__main__":
    main()
