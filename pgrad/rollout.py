"""Rollout: play the policy in a vector env and store what happened, with no autograd graph.

Gymnasium ≥ 1.0 vector envs reset a finished sub-env on the *next* ``step()`` (next-step
autoreset): the step after an episode ends takes no action and returns the reset
observation with reward 0. Such a *reset step* is not a transition; it is stored with
``valid = False`` and never learned from. In exchange, the observation returned by the
step that ends an episode is the true final observation, which the update uses to
bootstrap episodes cut by a time limit.

Two kinds of batch:

* whole episodes (``episodes=M``): every env is reset, and envs play episodes until M have
  been *started*; an env whose episode ends then goes idle (its steps are not valid) until
  every started episode is finished. Each of the M episodes is a complete, independent
  draw from the current policy (keeping only the episodes that happen to finish in a fixed
  number of steps would favour short episodes).
* fixed steps (``n_steps=T``): T steps of every env; episodes run on across batches and the
  last step of an unfinished episode is a cut, bootstrapped from V by the update.

Episode statistics (``episode_returns``, ``episode_lengths``: what ``rollout/ep_return_mean``
averages) count episodes in the order they *started*, never in the order they finished: the
episodes that finish last are the long ones, so a window filled in finishing order holds
too many long episodes. With whole-episode batches the window is a whole number of batches
(the fewest that hold ``stats_window`` episodes): every episode a batch started, none
carried over. With fixed-step batches an episode enters the window only once every episode
started before it has finished. docs/learning-options.md has the measured bias of the old
rule and what remains of the new.

Every observation and reward is checked: an env that raises, returns observations of
another shape, or non-finite observations or rewards stops the rollout with a
:class:`PgradError` naming the env and the step.

Storage is time-major: ``obs[t, i]`` is the observation on which env ``i`` acted at step
``t``, and ``obs[t + 1, i]`` the observation that followed (so ``obs`` has T + 1 rows).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from pgrad.envs import env_name, get_rng_states, set_rng_states
from pgrad.errors import PgradError
from pgrad.policies import Policy

__all__ = ["Batch", "Collector", "EpisodeTracker"]

MAX_SAVED_EPISODES = 100_000
"""Most episodes of the statistics window kept in a saved state (a checkpoint's limit)."""


@dataclass
class Batch:
    """One batch of experience, time-major. ``T`` steps of ``N`` envs.

    Attributes:
        obs: ``[T + 1, N, *obs_shape]``; row ``t + 1`` follows the action at row ``t``.
        actions: ``[T, N, *action_shape]`` as sampled (unclipped).
        rewards: ``[T, N]`` float32.
        terminated: ``[T, N]`` bool, episode reached a terminal state after step t.
        truncated: ``[T, N]`` bool, episode was cut by a time limit after step t.
        valid: ``[T, N]`` bool, the step is a transition of this batch to learn from.
        episode_steps: ``[T, N]`` int64, the step's index t within its episode (0 at the
            first action after a reset; counts on across batches of ``n_steps``).
    """

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    valid: Tensor
    episode_steps: Tensor | None = None

    @property
    def num_steps(self) -> int:
        """Number of valid transitions."""
        return int(self.valid.sum())


class _Buffers:
    """Preallocated CPU tensors with NumPy views for writing; grown by doubling."""

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...],
                 obs_dtype: torch.dtype, action_shape: tuple[int, ...],
                 action_dtype: torch.dtype) -> None:
        self.num_envs = num_envs
        self.specs = {
            "obs": (obs_shape, obs_dtype, 1),
            "actions": (action_shape, action_dtype, 0),
            "rewards": ((), torch.float32, 0),
            "terminated": ((), torch.bool, 0),
            "truncated": ((), torch.bool, 0),
            "valid": ((), torch.bool, 0),
            "episode_steps": ((), torch.int64, 0),
        }
        self.tensors: dict[str, Tensor] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.capacity = 0
        self.resize(capacity)

    def resize(self, capacity: int) -> None:
        for name, (shape, dtype, extra) in self.specs.items():
            new = torch.zeros((capacity + extra, self.num_envs, *shape), dtype=dtype)
            old = self.tensors.get(name)
            if old is not None:
                new[: old.shape[0]] = old
            self.tensors[name] = new
            self.arrays[name] = new.numpy()
        self.capacity = capacity

    def batch(self, length: int) -> Batch:
        t = self.tensors
        return Batch(obs=t["obs"][: length + 1], actions=t["actions"][:length],
                     rewards=t["rewards"][:length], terminated=t["terminated"][:length],
                     truncated=t["truncated"][:length], valid=t["valid"][:length],
                     episode_steps=t["episode_steps"][:length])


class EpisodeTracker:
    """Episode bookkeeping of N envs under Gymnasium's next-step autoreset, in one place for
    training (:class:`Collector`), evaluation and videos.

    After a step that ends env ``i``'s episode, its next step is a *reset step*: it takes
    no action and returns the reset observation with reward 0, so it is no transition and
    belongs to no episode. :meth:`step` adds each counted step's reward to its episode's
    return and length and reports the episodes that ended.

    Attributes:
        returns: ``[N]`` float64, return so far of each env's current episode.
        lengths: ``[N]`` int64, counted steps so far of each env's current episode (the
            index, within its episode, of the next step).
        after_end: ``[N]`` bool, the env's episode ended at the last step, so its next
            step is a reset step.
    """

    def __init__(self, num_envs: int) -> None:
        self.returns = np.zeros(num_envs)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.after_end = np.zeros(num_envs, dtype=bool)

    def reset(self) -> None:
        """Every env was just reset: no episode under way."""
        self.returns[:] = 0.0
        self.lengths[:] = 0
        self.after_end[:] = False

    def step(self, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
             counted: np.ndarray | None = None) -> tuple[np.ndarray, Finished | None]:
        """Account one step of every env; returns ``(done [N], finished)``.

        ``counted`` ``[N]`` bool marks the steps that belong to a counted episode (default:
        every step but reset steps). ``finished`` holds the counted episodes that ended at
        this step (None when none did); their counters restart at 0.
        """
        done = terminated | truncated
        if counted is None:
            counted = ~self.after_end
        np.add(self.returns, rewards, out=self.returns, where=counted)
        self.lengths += counted
        self.after_end = done
        ended = (done & counted).nonzero()[0]
        if not ended.size:
            return done, None
        finished = Finished(ended, self.returns[ended], self.lengths[ended])
        self.returns[ended] = 0.0
        self.lengths[ended] = 0
        return done, finished


@dataclass(frozen=True)
class Finished:
    """Episodes that ended at one step: their envs, returns and lengths (each ``[K]``)."""

    envs: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray


class Collector:
    """Plays a policy in a vector env and fills :class:`Batch` es.

    Actions are drawn with ``generator`` (default: torch's global stream). Keeps the
    episode statistics of finished valid episodes, in the order they started:
    ``episode_returns`` and ``episode_lengths`` hold the window (whole-episode batches:
    the last ⌈stats_window / episodes⌉ batches' episodes; fixed-step batches: the last
    ``stats_window`` episodes whose predecessors have all finished), ``window_full`` says
    whether it is full, ``episodes`` counts every finished episode.
    """

    def __init__(self, envs: VectorEnv, policy: Policy, *, episodes: int | None = None,
                 n_steps: int | None = None, seed: int | None = None,
                 generator: torch.Generator | None = None, stats_window: int = 100) -> None:
        if (episodes is None) == (n_steps is None):
            raise ValueError("give exactly one of episodes and n_steps")
        self.envs = envs
        self.policy = policy
        self.episodes_per_batch = episodes
        self.n_steps = n_steps
        self.num_envs = envs.num_envs
        obs_space = envs.single_observation_space
        self._buffers = _Buffers(
            n_steps or 64, self.num_envs, tuple(obs_space.shape),
            _torch_dtype(obs_space.dtype), policy.action_shape, policy.action_dtype)
        self._seed = seed
        self._obs_shape = (self.num_envs, *obs_space.shape)
        self._float_obs = np.issubdtype(obs_space.dtype, np.floating)
        self.generator = generator
        self._obs: np.ndarray | None = None
        self._episodes = EpisodeTracker(self.num_envs)
        window = stats_window if episodes is None else (
            -(-stats_window // episodes) * episodes)  # whole batches, ≥ stats_window episodes
        self.episode_returns: deque[float] = deque(maxlen=window)
        self.episode_lengths: deque[int] = deque(maxlen=window)
        # Finished episodes not yet in the window: (start row, env, return, length), the
        # start row counted over all rows collected since the last reset.
        self._pending: list[tuple[int, int, float, int]] = []
        self._rows = 0
        self.episodes = 0
        self.steps = 0

    def _reset(self) -> None:
        try:
            self._obs, _ = self.envs.reset(seed=self._seed)
        except Exception as e:  # an env's own failure, reported as bad input
            raise self._env_error(f"raised {type(e).__name__} ({e})") from e
        self._check(self._obs, None, "reset")
        self._seed = None
        self._episodes.reset()
        self._admit(None)  # no episode runs on: every finished one may enter the window
        self._rows = 0

    def collect(self) -> Batch:
        """Play until the batch is full and return it (views into reused storage: the
        batch is valid until the next ``collect``)."""
        if self.n_steps is None or self._obs is None:
            self._reset()
        if self.n_steps is None:
            # Idle envs replay whatever action their row holds: zeros, so that a batch
            # depends on nothing but the policy, the generator and the envs' state.
            self._buffers.arrays["actions"].fill(0)
        with torch.inference_mode():
            if self.n_steps is not None:
                length = self._collect_steps(self.n_steps)
            else:
                assert self.episodes_per_batch is not None
                length = self._collect_episodes(self.episodes_per_batch)
        batch = self._buffers.batch(length)
        self.steps += batch.num_steps
        self._rows += length
        self._admit(None if self.n_steps is None else self._running_starts())
        return batch

    @property
    def window_full(self) -> bool:
        """Whether the statistics window holds all the episodes it can."""
        return len(self.episode_returns) == self.episode_returns.maxlen

    def _running_starts(self) -> list[tuple[int, int]]:
        """``(start row, env)`` of every episode under way (or about to start) now."""
        lengths, after_end = self._episodes.lengths, self._episodes.after_end
        return [(self._rows - int(lengths[i]), i) for i in range(self.num_envs)
                if not after_end[i]]

    def _admit(self, running: list[tuple[int, int]] | None) -> None:
        """Move the finished episodes that started before every episode still running
        (all of them when ``running`` is None) into the window, in the order they started."""
        if not self._pending:
            return
        self._pending.sort()
        first_running = min(running) if running else None
        keep = len(self._pending)
        if first_running is not None:
            keep = next((k for k, e in enumerate(self._pending) if e[:2] > first_running),
                        keep)
        for _, _, ret, length in self._pending[:keep]:
            self.episode_returns.append(ret)
            self.episode_lengths.append(length)
        del self._pending[:keep]

    def _step(self, t: int, active: np.ndarray, acting: np.ndarray | None = None) -> np.ndarray:
        """Step every env at row ``t``; ``active`` marks whose step is learned from.

        The policy acts for every env, or only for the envs indexed by ``acting`` (the
        others keep whatever action their row held: their steps are not learned from).
        Returns whether each env's episode ended at this step.
        """
        bufs = self._buffers.arrays
        obs = self._obs
        assert obs is not None
        policy = self.policy
        bufs["obs"][t] = obs
        if acting is None:  # one device-to-host copy: the buffer row is what the env gets
            bufs["actions"][t] = policy.sample(obs, generator=self.generator).cpu().numpy()
        elif acting.size:
            actions = policy.sample(obs[acting], generator=self.generator)
            bufs["actions"][t][acting] = actions.cpu().numpy()
        try:
            obs, rewards, terminated, truncated, _ = self.envs.step(
                policy.to_env(self._buffers.tensors["actions"][t]))
        except Exception as e:  # an env's own failure, reported as bad input
            raise self._env_error(f"raised {type(e).__name__} ({e})", t) from e
        self._check(obs, rewards, t)
        self._obs = obs
        bufs["rewards"][t] = rewards
        bufs["terminated"][t] = terminated
        bufs["truncated"][t] = truncated
        bufs["valid"][t] = active
        bufs["episode_steps"][t] = self._episodes.lengths
        done, finished = self._episodes.step(rewards, terminated, truncated, active)
        if finished is not None:  # enters the window in start order (see _admit)
            row = self._rows + t + 1
            self._pending.extend(
                (row - n, e, r, n) for e, r, n in zip(finished.envs.tolist(),
                                                      finished.returns.tolist(),
                                                      finished.lengths.tolist(), strict=True))
            self.episodes += finished.envs.size
        return done

    # ------------------------------------------------------------------ checks
    def _check(self, obs: Any, rewards: Any, t: int | str) -> None:
        """Raise unless ``obs`` has the batch's shape and ``obs``, ``rewards`` are finite."""
        shape = getattr(obs, "shape", None)
        if shape != self._obs_shape:
            raise self._env_error(f"returned observations of shape {shape}, expected "
                                  f"{self._obs_shape}", t)
        if self._float_obs and not np.isfinite(obs).all():
            raise self._env_error("returned a non-finite observation (nan or inf)", t)
        if rewards is not None and not np.isfinite(rewards).all():
            raise self._env_error("returned a non-finite reward (nan or inf)", t)

    def _env_error(self, what: str, t: int | str = "reset") -> PgradError:
        where = "at reset" if t == "reset" else (
            f"at step {self.steps + int(self._buffers.arrays['valid'][:t].sum()) + 1}")
        line = " ".join(f"environment {env_name(self.envs)} {what} {where}".split())
        return PgradError(line)

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        """The collector's state as JSON-able data: episode statistics, counters, the
        envs' random states and whether the next reset seeds the envs (see
        :meth:`set_state`). Finished episodes still waiting for the window (fixed-step
        batches) are saved in it: a resumed run restarts the episodes under way."""
        pending = sorted(self._pending)
        returns = [*self.episode_returns, *(e[2] for e in pending)]
        lengths = [*self.episode_lengths, *(e[3] for e in pending)]
        keep = min(len(returns), self.episode_returns.maxlen or 0, MAX_SAVED_EPISODES)
        return {
            "episodes": self.episodes,
            "steps": self.steps,
            "episode_returns": [float(r) for r in returns[len(returns) - keep:]],
            "episode_lengths": [int(n) for n in lengths[len(lengths) - keep:]],
            "reset_seed": self._seed,
            "env_rng": get_rng_states(self.envs),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`get_state`'s data.

        Whole-episode batches then continue exactly: every batch starts with a reset, so
        the envs' random states are all that carries over. Fixed-step batches restart
        their episodes with a reset drawn from the restored random state (an env's
        in-episode state cannot be saved in general).
        """
        try:
            self.episodes = int(state["episodes"])
            self.steps = int(state["steps"])
            self.episode_returns.clear()
            self.episode_returns.extend(float(r) for r in state["episode_returns"])
            self.episode_lengths.clear()
            self.episode_lengths.extend(int(n) for n in state["episode_lengths"])
            self._pending.clear()
            seed = state["reset_seed"]
            self._seed = None if seed is None else int(seed)
            env_rng = state.get("env_rng")
        except (KeyError, TypeError, ValueError) as e:
            raise PgradError(f"the saved rollout state is malformed ({e!r})") from e
        if self._seed is None:  # the saved run's envs were seeded: continue their streams
            set_rng_states(self.envs, env_rng)

    def _collect_steps(self, n_steps: int) -> int:
        for t in range(n_steps):
            self._step(t, ~self._episodes.after_end)
        self._buffers.arrays["obs"][n_steps] = self._obs
        return n_steps

    def _collect_episodes(self, episodes: int) -> int:
        num_envs = self.num_envs
        active = np.arange(num_envs) < episodes  # envs playing a counted episode
        rejoining = np.zeros(num_envs, dtype=bool)  # in their reset step, then active
        started = n_active = np.count_nonzero(active)
        n_rejoining = 0
        # Once many envs idle, act only for those that count (idle steps are not learned
        # from, and a smaller forward pass is cheaper).
        act_all = 0.75 * num_envs
        t = 0
        while n_active or n_rejoining:
            if t == self._buffers.capacity:
                self._buffers.resize(2 * t)
            done = self._step(t, active, None if n_active > act_all else active.nonzero()[0])
            ended = (active & done).nonzero()[0]
            next_active = (active & ~done) | rejoining
            if n_rejoining:
                rejoining[:] = False
            restart = ended[: max(episodes - started, 0)]
            n_rejoining = restart.size
            if n_rejoining:
                rejoining[restart] = True
                started += n_rejoining
            active = next_active
            n_active = np.count_nonzero(active)
            t += 1
        self._buffers.arrays["obs"][t] = self._obs
        return t


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
