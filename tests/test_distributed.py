"""pgrad.distributed: data-parallel updates equal the single-process update on the union.

Two worker processes on loopback (gloo, a file store in tmp_path), started with the spawn
method and joined with a timeout: nothing here can hang.
"""

from __future__ import annotations

import datetime
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import pgrad
from pgrad import distributed
from pgrad.errors import PgradError
from pgrad.normalization import RunningMeanStd
from pgrad.rollout import Batch

ROOT = Path(__file__).resolve().parent.parent
# A fork server imports torch once, then forks each worker from that clean process: quick
# starts without forking pytest's own (threaded) process.
START_METHOD = os.environ.get("PGRAD_TEST_START_METHOD", "forkserver")
SMALL = {"num_envs": 4, "batch_episodes": 4}
VARIANTS = {"default": {}, "no_baseline": {"baseline": False, "max_grad_norm": None},
            "running_stats": {"normalize_obs": True, "scale_rewards": True},
            "value_steps": {"value_steps": 5}, "float32": {}}
# Float64 weights for the 1e-6 comparison: Adam's first step is lr · g / (|g| + 1e-8), so a
# gradient entry near 0 turns float32 summation-order noise (1e-9) into a 1e-5 step.
DTYPES = {"default": torch.float64, "no_baseline": torch.float64,
          "running_stats": torch.float64, "value_steps": torch.float64,
          "float32": torch.float32}
TOLERANCE = {"default": 1e-6, "no_baseline": 1e-6, "running_stats": 1e-6, "value_steps": 1e-6,
             "float32": 1e-4}


def _updated(batch: Batch, variant: str) -> torch.Tensor:
    """Parameters after one update of a fresh seed-0 agent on ``batch``."""
    dtype = DTYPES[variant]
    agent = pgrad.Reinforce("CartPole-v1", seed=0, **{**SMALL, **VARIANTS[variant]})
    agent.policy.to(dtype)
    features = agent.policy.preprocess  # casts observations to float32: cast on to dtype
    agent.policy.preprocess = lambda obs: features(obs).to(dtype)  # type: ignore[method-assign]
    agent.update(Batch(**{k: v.to(dtype) if v.is_floating_point() else v
                          for k, v in vars(batch).items()}))
    return _flat(agent)


def _join(store: Path, rank: int, size: int, timeout: float) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=size, timeout=datetime.timedelta(seconds=timeout))


def _batch_for(seed: int, **config) -> Batch:
    """A fixed whole-episode batch played by a seeded agent (a copy, not views)."""
    agent = pgrad.Reinforce("CartPole-v1", seed=seed, **{**SMALL, **config})
    batch = agent.make_collector().collect()
    agent.close()
    return Batch(**{k: v.clone() for k, v in vars(batch).items()})


def _concatenate(a: Batch, b: Batch) -> Batch:
    """Both batches side by side (envs of a, then of b), the shorter padded as not valid."""
    length = max(a.rewards.shape[0], b.rewards.shape[0])

    def pad(x: torch.Tensor, rows: int) -> torch.Tensor:
        extra = torch.zeros((rows - x.shape[0], *x.shape[1:]), dtype=x.dtype)
        return torch.cat([x, extra])

    parts = {}
    for name in vars(a):
        rows = length + 1 if name == "obs" else length
        parts[name] = torch.cat([pad(getattr(a, name), rows), pad(getattr(b, name), rows)], 1)
    return Batch(**parts)


def _flat(agent: pgrad.Reinforce) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in agent.policy.parameters()])


def _worker(rank: int, store: Path, out: Path) -> None:
    """One rank: update on its own fixed batch, per variant; then train for real."""
    _join(store, rank, 2, timeout=30)
    world = distributed.world()
    batches = torch.load(out / "batches.pt")
    results = {}
    for name in VARIANTS:
        results[name] = _updated(Batch(**batches[name][rank]), name)
    # Several real updates: each rank its own envs and seed stream, one set of weights.
    agent = pgrad.Reinforce("CartPole-v1", seed=1, **SMALL)
    result = agent.learn(3_000, tensorboard=False).last_result
    results["local_returns"] = torch.tensor(agent.episode_returns[:5])
    agent.close()
    results["trained"] = _flat(agent)
    results["updates"] = torch.tensor(agent.num_updates)
    results["steps"] = torch.tensor(agent.num_timesteps)
    results["return_mean"] = torch.tensor(result.return_mean)
    results["world"] = torch.tensor([world.rank, world.size])
    torch.save(results, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def _run(target, args_for_rank, timeout: float = 60,
         wait_for: tuple[int, ...] = (0, 1)) -> list[int | None]:
    """Start two spawned processes, join those in ``wait_for`` within ``timeout``, kill
    any still running; their exit codes."""
    ctx = mp.get_context(START_METHOD)
    if START_METHOD == "forkserver":
        ctx.set_forkserver_preload(["torch", "torch.distributed", "gymnasium", "pgrad"])
    procs = [ctx.Process(target=target, args=args_for_rank(rank)) for rank in range(2)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for rank in wait_for:
        procs[rank].join(max(deadline - time.monotonic(), 0.1))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    return [p.exitcode for p in procs]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    tmp = tmp_path_factory.mktemp("dist")
    torch.save({name: [vars(_batch_for(10 + rank, **config)) for rank in range(2)]
                for name, config in VARIANTS.items()}, tmp / "batches.pt")
    codes = _run(_worker, lambda rank: (rank, tmp / "store", tmp))
    assert codes == [0, 0]
    return {r: torch.load(tmp / f"rank{r}.pt") for r in range(2)}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_two_ranks_update_like_one_process_on_the_concatenated_batch(
        two_ranks: dict[int, dict], variant: str) -> None:
    config = VARIANTS[variant]
    union = _concatenate(_batch_for(10, **config), _batch_for(11, **config))
    before = _flat(pgrad.Reinforce("CartPole-v1", seed=0, **{**SMALL, **config}))
    expected = _updated(union, variant)
    for rank in range(2):
        got = two_ranks[rank][variant]
        assert (got - before.to(got.dtype)).abs().max() > 1e-3  # the update did something
        torch.testing.assert_close(got, expected, rtol=0, atol=TOLERANCE[variant])
    # ... and not like the update on one rank's batch alone
    alone = _updated(_batch_for(10, **config), variant)
    assert (alone - expected).abs().max() > 1e-3


def test_parameters_stay_identical_across_ranks_while_training(
        two_ranks: dict[int, dict]) -> None:
    r0, r1 = two_ranks[0], two_ranks[1]
    assert r0["world"].tolist() == [0, 2] and r1["world"].tolist() == [1, 2]
    assert int(r0["updates"]) == int(r1["updates"]) >= 2
    assert int(r0["steps"]) == int(r1["steps"]) >= 3_000  # the step count is global
    assert torch.equal(r0["trained"], r1["trained"])
    assert float(r0["return_mean"]) == float(r1["return_mean"])  # stop criterion agrees
    # each rank played its own episodes (its own seed stream)
    assert not torch.equal(r0["local_returns"], r1["local_returns"])


def _verdict_worker(rank: int, store: Path, out: Path) -> None:
    """One rank: three updates where only some ranks see trouble; all must act together."""
    _join(store, rank, 2, timeout=30)
    batches = torch.load(out / "batches.pt")
    results = {}
    # (a) the loss is nan on rank 1 alone (its gradient stays finite): both must skip
    agent = pgrad.Reinforce("CartPole-v1", seed=0, on_nonfinite="skip", **SMALL)
    results["before"] = _flat(agent)  # (weights depend on the thread count: made here)
    loss_fn = pgrad.agent.reinforce_loss

    def nan_loss(*args, **kwargs):
        terms = loss_fn(*args, **kwargs)
        return {**terms, "loss": terms["loss"] + float("nan")}

    if rank == 1:
        pgrad.agent.reinforce_loss = nan_loss
    agent.update(Batch(**batches["nan"][rank]))
    pgrad.agent.reinforce_loss = loss_fn
    results["nan"] = (_flat(agent), agent.num_updates, agent.skipped_updates)
    # (b) rank 0 has no valid transition: both step, on rank 1's samples alone
    for variant in EMPTY_ONE_VARIANTS:
        results[variant] = _updated(Batch(**batches["empty_one"][rank]), variant)
    # (c) no rank has one: both skip, without an error
    agent = pgrad.Reinforce("CartPole-v1", seed=0, **SMALL)
    metrics = agent.update(Batch(**batches["empty_all"][rank]))
    results["empty_all"] = (_flat(agent), agent.num_updates, metrics["train/loss"])
    # (d) running statistics of observations near 1e200 (squares would overflow)
    stats = RunningMeanStd((2,))
    distributed.world().update_running_stats(stats, torch.tensor(
        [[1e200, 0.0], [1e200, 2e154 * rank]], dtype=torch.float64))
    results["huge"] = (stats.mean.clone(), stats.var.clone())
    torch.save(results, out / f"verdict{rank}.pt")
    dist.destroy_process_group()


EMPTY_ONE_VARIANTS = ["value_steps", "running_stats"]


def _without_transitions(batch: Batch) -> Batch:
    return Batch(**{**vars(batch), "valid": torch.zeros_like(batch.valid)})


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    tmp = tmp_path_factory.mktemp("verdict")
    batches = [_batch_for(10 + rank) for rank in range(2)]
    torch.save({"nan": [vars(b) for b in batches],
                "empty_one": [vars(_without_transitions(batches[0])), vars(batches[1])],
                "empty_all": [vars(_without_transitions(b)) for b in batches]},
               tmp / "batches.pt")
    codes = _run(_verdict_worker, lambda rank: (rank, tmp / "store", tmp))
    assert codes == [0, 0]
    return {r: torch.load(tmp / f"verdict{r}.pt") for r in range(2)}


def test_a_nan_loss_on_one_rank_makes_every_rank_skip(verdicts: dict[int, dict]) -> None:
    for rank in range(2):
        params, updates, skipped = verdicts[rank]["nan"]
        assert (updates, skipped) == (0, 1), rank
        assert torch.equal(params, verdicts[rank]["before"])
    assert torch.equal(verdicts[0]["nan"][0], verdicts[1]["nan"][0])


@pytest.mark.parametrize("variant", EMPTY_ONE_VARIANTS)
def test_a_rank_without_transitions_steps_with_the_others(
        verdicts: dict[int, dict], variant: str) -> None:
    expected = _updated(_batch_for(11), variant)  # rank 1's batch alone
    for rank in range(2):
        torch.testing.assert_close(verdicts[rank][variant], expected, rtol=0,
                                   atol=TOLERANCE[variant])
    assert torch.equal(verdicts[0][variant], verdicts[1][variant])


def test_running_statistics_of_huge_observations_over_ranks(
        verdicts: dict[int, dict]) -> None:
    # all ranks' rows: x0 = 1e200 (four times), x1 = 0, 0, 0, 2e154, whose squared
    # deviation from the mean (2.25e308) overflows while the variance (7.5e307) does not
    for rank in range(2):
        mean, var = verdicts[rank]["huge"]
        assert mean.tolist() == pytest.approx([1e200, 0.5e154], rel=1e-12)
        assert var[0].item() == 0.0
        assert var[1].item() == pytest.approx((2e154 * 3 ** 0.5 / 4) ** 2, rel=1e-12)


def test_no_rank_with_transitions_skips_everywhere(verdicts: dict[int, dict]) -> None:
    for rank in range(2):
        params, updates, loss = verdicts[rank]["empty_all"]
        assert torch.equal(params, verdicts[rank]["before"])
        assert updates == 0 and math.isnan(loss)


def _dying_worker(rank: int, store: Path, out: Path, how: str) -> None:
    _join(store, rank, 2, timeout=2)
    world = distributed.world()
    world.sum([1.0])  # both alive
    if rank == 1:
        if how == "dies":
            os._exit(3)
        time.sleep(60)  # stuck: alive but never joins the next collective
    start = time.monotonic()
    try:
        world.sum([1.0])
    except PgradError as e:
        (out / "error.txt").write_text(f"{time.monotonic() - start:.2f}\n{e}")
        os._exit(0)
    os._exit(1)


@pytest.mark.parametrize("how", ["dies", "stuck"])
def test_a_lost_worker_makes_the_other_fail_with_a_clear_error(
        tmp_path: Path, how: str) -> None:
    start = time.monotonic()
    codes = _run(_dying_worker, lambda rank: (rank, tmp_path / "store", tmp_path, how),
                 timeout=30, wait_for=(0,))
    assert codes[0] == 0, codes
    seconds, message = (tmp_path / "error.txt").read_text().split("\n", 1)
    assert "rank 0 of 2: all-reduce failed" in message and "peer worker" in message
    assert float(seconds) < 10
    assert time.monotonic() - start < 30


def test_single_process_world_is_a_no_op() -> None:
    world = distributed.world()
    assert (world.rank, world.size, world.is_main, world.seed_offset) == (0, 1, True, 0)
    x = torch.tensor([1.0, 2.0, 6.0])
    assert torch.equal(world.normalize(x), pgrad.returns.normalize(x))
    stats = world.rollout_stats(7, 3, [1.0, 3.0], [10, 20], False)
    assert (stats.steps, stats.episodes, stats.return_mean, stats.length_mean,
            stats.full_window) == (7, 3, 2.0, 15.0, False)
    assert distributed.init() is world  # not under torchrun: nothing to join


def test_a_resumed_rank_samples_from_its_own_stream() -> None:
    def draws(world: distributed.World, num_updates: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(123)  # as restored from a checkpoint
        world.own_stream(generator, seed=0, num_updates=num_updates)
        return torch.rand(3, generator=generator)

    rank0, rank1 = distributed.World(0, 2), distributed.World(1, 2)
    assert torch.equal(draws(rank0, 5), draws(distributed.World(), 5))  # rank 0: as restored
    assert not torch.equal(draws(rank1, 5), draws(rank0, 5))
    assert torch.equal(draws(rank1, 0), draws(rank0, 0))  # fresh agents: seeded apart already


@pytest.mark.slow
def test_cli_nproc_2_trains_and_rank_0_writes_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pgrad", "train", "--nproc", "2", "--total-timesteps", "2000",
         "--num-envs", "4", "--batch-episodes", "4", "--no-progress", "--no-tensorboard",
         "--dist-timeout", "20", "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[:3000]  # the workers speak first, torchrun last
    assert proc.stdout.count("run directory:") == 1  # rank 0 alone reports
    assert "2 workers, each 4 envs" in proc.stdout
    assert (out / "model.safetensors").exists() and (out / "progress.csv").exists()
    rows = (out / "progress.csv").read_text().splitlines()
    assert len(rows) >= 2
    agent = pgrad.Reinforce.load(out)
    assert agent.num_timesteps >= 2000
