"""Environments: the tutorial's 1-D walk, and vector-env construction for any Gymnasium env.

``pgrad/LineWalk-v0`` is the tutorial's ``SimpleEnv``: a walker starts at x = 0 and moves
±0.1 per step (action 1 right, 0 left); beyond x > 1.0 it gets +1 and the episode ends,
below x < −1.0 it gets −1 and the episode ends, every other step pays 0.01. The observation
is ``[x, 0, 0, 0]``; episodes are capped at 50 steps (truncation), as in the tutorial's loop.
It has a single-env class and a native vectorised one (used by ``make_vec``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from pgrad.constants import VECTORIZATIONS
from pgrad.errors import PgradError

__all__ = [
    "LINEWALK_ID",
    "VECTORIZATIONS",
    "EnvSource",
    "LineWalkEnv",
    "LineWalkVectorEnv",
    "check_env_id",
    "check_spaces",
    "env_name",
    "get_rng_states",
    "make_env",
    "make_vec_env",
    "register_envs",
    "set_rng_states",
]

LINEWALK_ID = "pgrad/LineWalk-v0"
EnvSource = str | Callable[[], gym.Env]
"""An environment as users give it: a registered Gymnasium id, or a callable making one."""

_STEP = 0.1
_BOUND = 1.0
_LINEWALK_OBS = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)


def _linewalk_reward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reward, terminated) for positions ``x`` after a move."""
    reward = np.where(x > _BOUND, 1.0, np.where(x < -_BOUND, -1.0, 0.01))
    return reward, np.abs(x) > _BOUND


class LineWalkEnv(gym.Env[np.ndarray, np.int64]):
    """The tutorial's 1-D walk (see the module docstring)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = _LINEWALK_OBS
        self.action_space = gym.spaces.Discrete(2)
        self.x = 0.0

    def _obs(self) -> np.ndarray:
        return np.array([self.x, 0.0, 0.0, 0.0], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.x = 0.0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.x += _STEP if int(action) == 1 else -_STEP
        reward, terminated = _linewalk_reward(np.array(self.x))
        return self._obs(), float(reward), bool(terminated), False, {}


class LineWalkVectorEnv(VectorEnv):
    """N LineWalks stepped together in NumPy; Gymnasium's next-step autoreset."""

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int = 50) -> None:
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = _LINEWALK_OBS
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.x = np.zeros(num_envs)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.prev_done = np.zeros(num_envs, dtype=bool)

    def _obs(self) -> np.ndarray:
        obs = np.zeros((self.num_envs, 4), dtype=np.float32)
        obs[:, 0] = self.x
        return obs

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.x[:] = 0.0
        self.steps[:] = 0
        self.prev_done[:] = False
        return self._obs(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.x += np.where(np.asarray(actions) == 1, _STEP, -_STEP)
        self.steps += 1
        reward, terminated = _linewalk_reward(self.x)
        truncated = self.steps >= self.max_episode_steps
        # Next-step autoreset: a sub-env that ended last step is reset now, without a move.
        reset = self.prev_done
        self.x[reset] = 0.0
        self.steps[reset] = 0
        reward[reset] = 0.0
        terminated[reset] = False
        truncated[reset] = False
        self.prev_done = terminated | truncated
        return self._obs(), reward, terminated, truncated, {}


def register_envs() -> None:
    """Register ``pgrad/LineWalk-v0`` with Gymnasium (idempotent)."""
    if LINEWALK_ID in gym.registry:
        return
    gym.register(
        id=LINEWALK_ID,
        entry_point="pgrad.envs:LineWalkEnv",
        vector_entry_point="pgrad.envs:LineWalkVectorEnv",
        max_episode_steps=50,
    )


register_envs()  # the tutorial's id exists once pgrad's env code is loaded (pgrad is lazy)


def check_env_id(env_id: str) -> None:
    """Raise a :class:`PgradError` naming close matches if ``env_id`` is not registered."""
    register_envs()
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else (
        "; see gymnasium.pprint_registry() for the registered ids"
    )
    raise PgradError(f"unknown environment id {env_id!r}{hint}")


def check_spaces(envs: VectorEnv, observation_space: gym.Space, action_space: gym.Space) -> None:
    """Close ``envs`` and raise a PgradError unless its spaces are the ones given (a Dict or
    Tuple observation space as :func:`make_vec_env` flattens it)."""
    if isinstance(observation_space, gym.spaces.Dict | gym.spaces.Tuple):
        observation_space = gym.spaces.flatten_space(observation_space)
    if (envs.single_observation_space != observation_space
            or envs.single_action_space != action_space):
        envs.close()
        raise PgradError(
            f"the environment's spaces ({envs.single_observation_space}, "
            f"{envs.single_action_space}) differ from the agent's ({observation_space}, "
            f"{action_space})")


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` with pgrad's errors: unknown ids and missing extras are PgradErrors."""
    check_env_id(env_id)
    try:
        return gym.make(env_id, **kwargs)
    except (gym.error.Error, ImportError) as e:
        raise PgradError(f"cannot make {env_id}: {e}") from e


def make_vec_env(
    env: EnvSource, num_envs: int, vectorization: str = "auto", **env_kwargs: Any
) -> VectorEnv:
    """N copies of ``env`` as one Gymnasium vector env with next-step autoreset; Dict and
    Tuple observations are flattened to one Box (``FlattenObservation``).

    ``vectorization``: ``native`` uses the env's own vectorised implementation (Gymnasium's
    ``vector_entry_point``; CartPole and LineWalk have one), ``sync`` steps N single envs in
    this process, ``async`` in N subprocesses (for slow envs), and ``auto`` takes native where
    it exists, sync otherwise.
    """
    if vectorization not in VECTORIZATIONS:
        raise PgradError(
            f"vectorization must be one of {', '.join(VECTORIZATIONS)}, got {vectorization!r}"
        )
    if num_envs < 1:
        raise PgradError(f"num_envs must be at least 1, got {num_envs}")
    if callable(env):
        if vectorization == "native":
            raise PgradError("vectorization 'native' needs a registered env id, not a callable")
        cls = gym.vector.AsyncVectorEnv if vectorization == "async" else gym.vector.SyncVectorEnv
        vec: VectorEnv = cls([env] * num_envs)
    else:
        check_env_id(env)
        has_native = gym.spec(env).vector_entry_point is not None
        if vectorization == "native" and not has_native:
            raise PgradError(f"{env} has no native vectorised implementation; "
                             f"use vectorization 'sync' or 'async'")
        mode = {"auto": "vector_entry_point" if has_native else "sync",
                "native": "vector_entry_point"}.get(vectorization, vectorization)
        try:
            vec = gym.make_vec(env, num_envs=num_envs, vectorization_mode=mode, **env_kwargs)
        except (gym.error.Error, ImportError) as e:
            raise PgradError(f"cannot make {env}: {e}") from e
    if isinstance(vec.single_observation_space, gym.spaces.Dict | gym.spaces.Tuple):
        vec = gym.wrappers.vector.FlattenObservation(vec)
    autoreset = vec.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if autoreset != AutoresetMode.NEXT_STEP:
        vec.close()
        raise PgradError(f"pgrad needs vector envs with next-step autoreset, this one uses "
                         f"{autoreset}")
    return vec


# ---------------------------------------------------------------------- RNG states
def env_name(envs: VectorEnv) -> str:
    """A vector env's id for messages (its spec's id, else its single env's class name)."""
    spec = getattr(envs, "spec", None)
    if spec is not None:
        return spec.id
    base = envs.unwrapped
    sub = base.envs if isinstance(base, gym.vector.SyncVectorEnv) else None
    if sub:
        return sub[0].spec.id if sub[0].spec is not None else type(sub[0].unwrapped).__name__
    return type(base).__name__


def _env_generators(envs: VectorEnv) -> list[np.random.Generator] | None:
    """The NumPy generators behind a vector env (through its wrappers); None for async."""
    base = envs.unwrapped
    if isinstance(base, gym.vector.AsyncVectorEnv):
        return None
    if isinstance(base, gym.vector.SyncVectorEnv):
        return [e.unwrapped.np_random for e in base.envs]
    return [base.np_random]


def get_rng_states(envs: VectorEnv) -> list[dict[str, Any]] | None:
    """The NumPy bit-generator states of a vector env's randomness, as JSON-able dicts.

    A native vector env has one generator (``envs.unwrapped.np_random``); a sync vector env
    one per sub-env (``sub.unwrapped.np_random``). An async vector env's generators live in
    its subprocesses: None (not captured). Randomness an env keeps elsewhere (its own
    ``random.Random``, a wrapper's generator) is not captured either.
    """
    generators = _env_generators(envs)
    return None if generators is None else [g.bit_generator.state for g in generators]


def set_rng_states(envs: VectorEnv, states: list[dict[str, Any]] | None) -> bool:
    """Restore :func:`get_rng_states`' states; False (nothing changed) where they do not fit."""
    generators = _env_generators(envs)
    if states is None or generators is None:
        return False
    if len(generators) != len(states) or any(
            not isinstance(s, dict) or s.get("bit_generator") != type(g.bit_generator).__name__
            for g, s in zip(generators, states, strict=True)):
        return False
    try:
        for generator, state in zip(generators, states, strict=True):
            generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as e:
        raise PgradError(f"the saved environment random state is malformed ({e})") from e
    return True
