"""EnvPool as a vectorisation backend: N envs stepped by EnvPool's C++ thread pool, served
with the Gymnasium 1.x vector-env semantics that :mod:`pgrad.rollout` expects.

What EnvPool does (``env_type="gymnasium"``, checked on envpool 1.2.5 against Gymnasium
1.4, see ``tests/test_envpool.py``), and what this module adds:

* next-step autoreset, as Gymnasium's: the step that ends an episode returns the true final
  observation with ``terminated`` / ``truncated`` set; the next step ignores the action and
  returns the reset observation with reward 0 and both flags False. Served unchanged.
* time limits: ``truncated`` is set at ``max_episode_steps`` (the Gymnasium spec's value),
  ``terminated`` only at a terminal state. One difference: EnvPool reports
  ``terminated = done & ~truncated``, so a terminal state reached exactly at the time limit
  is reported as truncated only (Gymnasium sets both), and is bootstrapped from V. It needs
  the terminal state and the last allowed step to coincide, so it is rare.
* seeding: sub-env ``i`` is seeded with ``seed + i`` (Gymnasium's convention), but only when
  the pool is built. ``reset(seed=s)`` therefore rebuilds the pool with seed ``s``;
  ``reset()`` resets every sub-env from its own continuing stream. EnvPool's random streams
  differ from Gymnasium's: the same seed gives other initial states (statistically the same).
* spaces: the single observation and action spaces are Gymnasium's for the same id
  (EnvPool reports ``[tiny, huge]`` bounds for Box2D observations and float64 MuJoCo
  actions); actions are cast to the dtype EnvPool wants.
* Atari: Gymnasium's ``ALE/<Game>-v5`` is served by EnvPool's ``<Game>-v5`` configured like
  it (210×160 RGB frames, channels last, frame skip 4, sticky actions 0.25, full episodes,
  unclipped rewards; one no-op at reset, EnvPool's minimum). EnvPool max-pools the last two
  frames of each skip, which Gymnasium's v5 envs do not: observations differ, so ``auto``
  never picks EnvPool for Atari. Other id mappings can be added with :func:`register_id`
  (the throughput benchmark maps a preprocessed Pong this way).

``auto`` (see :func:`auto_supported`) picks EnvPool only for the families in
:data:`AUTO_FAMILIES` whose semantics the tests verify, only where the env has no native
vectorised implementation, and only for 2 or more envs (with one, EnvPool's hand-off to its
worker thread cost more CPU per step than Gymnasium's in-process step). Classic-control envs
are left to native / sync: their steps cost microseconds, so EnvPool gains little, and their
seeded results then stay the same whether or not EnvPool is installed.

EnvPool keeps its random state in C++: a checkpoint cannot capture it (``external_rng``), so
a resumed fixed-step run restarts its episodes from a fresh pool seed.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from pgrad.errors import PgradError

__all__ = [
    "AUTO_FAMILIES",
    "EnvPoolVectorEnv",
    "auto_supported",
    "envpool_id",
    "is_installed",
    "register_id",
]

AUTO_FAMILIES: dict[str, tuple[str, ...]] = {
    "mujoco": ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"),
    "box2d": ("LunarLander-v3",),
}
"""Gymnasium ids for which ``auto`` picks EnvPool (when installed): families whose autoreset,
termination, truncation, seeding and spaces the tests check against Gymnasium. Other
MuJoCo and Box2D ids are served by ``vectorization="envpool"`` but not picked by ``auto``
until a test checks them."""

_SAME_IDS = frozenset({
    "CartPole-v0", "CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCar-v0",
    "MountainCarContinuous-v0", "LunarLander-v3", "LunarLanderContinuous-v3",
    "BipedalWalker-v3", "BipedalWalkerHardcore-v3", "HalfCheetah-v5", "Hopper-v5",
    "Walker2d-v5", "Ant-v5", "Humanoid-v5", "HumanoidStandup-v5", "InvertedPendulum-v5",
    "InvertedDoublePendulum-v5", "Swimmer-v5", "Reacher-v5", "Pusher-v5",
})

_ALE_V5 = {"img_height": 210, "img_width": 160, "gray_scale": False, "stack_num": 1,
           "frame_skip": 4, "noop_max": 1, "use_fire_reset": False,
           "repeat_action_probability": 0.25, "episodic_life": False, "reward_clip": False,
           "max_episode_steps": 27000}

_EXTRA_IDS: dict[str, tuple[str, dict[str, Any], bool]] = {}


def is_installed() -> bool:
    """Whether the ``envpool`` package can be imported (without importing it)."""
    return importlib.util.find_spec("envpool") is not None


def register_id(gym_id: str, pool_id: str, *, channels_last: bool = False,
                **pool_kwargs: Any) -> None:
    """Serve Gymnasium's ``gym_id`` with EnvPool's ``pool_id`` built with ``pool_kwargs``.

    ``channels_last``: EnvPool's image observations ``[C, H, W]`` are transposed to
    ``[H, W, C]``. The Gymnasium env's spaces must then match EnvPool's in shape and dtype.
    """
    _EXTRA_IDS[gym_id] = (pool_id, dict(pool_kwargs), channels_last)


def envpool_id(gym_id: str) -> tuple[str, dict[str, Any], bool] | None:
    """EnvPool's id, its ``make`` options and whether images are made channels-last, for a
    Gymnasium id; None where pgrad has no mapping."""
    if gym_id in _EXTRA_IDS:
        pool_id, kwargs, channels_last = _EXTRA_IDS[gym_id]
        return pool_id, dict(kwargs), channels_last
    if gym_id in _SAME_IDS:
        return gym_id, {}, False
    if gym_id.startswith("ALE/") and gym_id.endswith("-v5"):
        return gym_id[len("ALE/"):], dict(_ALE_V5), True
    return None


def auto_supported(gym_id: str) -> bool:
    """Whether ``auto`` vectorisation should use EnvPool for ``gym_id``: installed, and the id
    in a verified family (:data:`AUTO_FAMILIES`)."""
    return any(gym_id in ids for ids in AUTO_FAMILIES.values()) and is_installed()


def _import_envpool() -> Any:
    try:
        import envpool
    except ImportError as e:
        raise PgradError("vectorization 'envpool' needs the envpool package: "
                         "pip install 'pgrad[envpool]'") from e
    return envpool


class EnvPoolVectorEnv(VectorEnv):
    """``num_envs`` copies of Gymnasium's ``env_id`` stepped by EnvPool (module docstring)."""

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}
    external_rng = True
    """The envs' random state lives in EnvPool's C++ and is not checkpointed."""

    def __init__(self, env_id: str, num_envs: int, seed: int | None = None,
                 num_threads: int = 0, **pool_kwargs: Any) -> None:
        mapping = envpool_id(env_id)
        if mapping is None:
            raise PgradError(f"vectorization 'envpool' does not serve {env_id}; use 'sync', "
                             f"'async' or 'auto'")
        self._envpool = _import_envpool()
        self._pool_id, kwargs, self._channels_last = mapping
        if self._pool_id not in self._envpool.list_all_envs():
            raise PgradError(f"this envpool has no {self._pool_id} (for {env_id}); use "
                             f"'sync', 'async' or 'auto'")
        self._pool_kwargs = {**kwargs, **pool_kwargs, "num_threads": num_threads}
        self.num_envs = num_envs
        self.spec = gym.spec(env_id)
        try:
            reference = gym.make(env_id)
        except (gym.error.Error, ImportError) as e:
            raise PgradError(f"cannot make {env_id} for its spaces: {e}") from e
        self.single_observation_space = reference.observation_space
        self.single_action_space = reference.action_space
        reference.close()
        self._pool = self._make_pool(seed)
        self._action_dtype = self._check_spaces(env_id)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def _make_pool(self, seed: int | None) -> Any:
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31 - self.num_envs))
        if not 0 <= int(seed) < 2**31:
            raise PgradError(f"vectorization 'envpool' takes seeds in [0, 2**31), got {seed}: "
                             "give a smaller seed")
        try:
            with warnings.catch_warnings():  # EnvPool's float64 Box bounds (spaces cached)
                warnings.simplefilter("ignore", UserWarning)
                pool = self._envpool.make(self._pool_id, env_type="gymnasium",
                                          num_envs=self.num_envs, seed=int(seed),
                                          **self._pool_kwargs)
                _ = pool.observation_space, pool.action_space
                return pool
        except (ValueError, TypeError, RuntimeError) as e:
            raise PgradError(f"envpool cannot make {self._pool_id}: {e}") from e

    def _check_spaces(self, env_id: str) -> np.dtype:
        """Raise unless EnvPool's spaces fit Gymnasium's in shape and dtype; returns the
        action dtype EnvPool wants."""
        obs, act = self._pool.observation_space, self._pool.action_space
        obs_shape = obs.shape[1:] + obs.shape[:1] if self._channels_last else obs.shape
        want_obs, want_act = self.single_observation_space, self.single_action_space
        if (obs_shape != want_obs.shape or obs.dtype != want_obs.dtype
                or type(act) is not type(want_act) or act.shape != want_act.shape
                or getattr(act, "n", None) != getattr(want_act, "n", None)):
            self._pool.close()
            raise PgradError(f"EnvPool's {self._pool_id} spaces ({obs}, {act}) do not match "
                             f"Gymnasium's {env_id} ({want_obs}, {want_act})")
        return act.dtype

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(obs, 1, -1)) if self._channels_last else obs

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env; ``seed`` (an int: sub-env i gets ``seed + i``) rebuilds the
        pool."""
        if isinstance(seed, list):
            if not seed or seed != list(range(seed[0], seed[0] + self.num_envs)):
                raise PgradError("vectorization 'envpool' seeds sub-env i with seed + i; "
                                 "give one int seed")
            seed = seed[0]
        if seed is not None:
            self._pool.close()
            self._pool = self._make_pool(seed)
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        obs, info = self._pool.reset()
        return self._obs(obs), info

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, Any]]:
        """One step of every sub-env (next-step autoreset; see the module docstring)."""
        actions = np.asarray(actions, dtype=self._action_dtype)
        obs, rewards, terminated, truncated, info = self._pool.step(actions)
        return self._obs(obs), rewards, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        self._pool.close()
