"""Environments: the tutorial's 1-D walk, and vector-env construction for any Gymnasium env.

``pgrad/LineWalk-v0`` is the tutorial's ``SimpleEnv``: a walker starts at x = 0 and moves
±0.1 per step (action 1 right, 0 left); beyond x > 1.0 it gets +1 and the episode ends,
below x < −1.0 it gets −1 and the episode ends, every other step pays 0.01. The observation
is ``[x, 0, 0, 0]``; episodes are capped at 50 steps (truncation), as in the tutorial's loop.
It has a single-env class and a native vectorised one (used by ``make_vec``).

Environment ids are taken as users write them: ``"CartPole-v1"``, Gymnasium's
``"module:EnvId"`` (the module is imported first, as its registration needs), or a plain id
of a package named in ``packages`` (rl-zoo's ``--gym-packages``). Whole episodes of an env
with no time limit of its own are cut at :data:`DEFAULT_MAX_EPISODE_STEPS` steps.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import json
from collections.abc import Callable, Iterable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from pgrad.constants import ENV_WRAPPERS, VECTORIZATIONS
from pgrad.errors import PgradError

__all__ = [
    "DEFAULT_MAX_EPISODE_STEPS",
    "ENV_WRAPPERS",
    "LINEWALK_ID",
    "VECTORIZATIONS",
    "EnvSource",
    "LineWalkEnv",
    "LineWalkVectorEnv",
    "check_env_id",
    "check_spaces",
    "env_available",
    "env_name",
    "has_time_limit",
    "import_env_packages",
    "get_rng_states",
    "make_env",
    "make_vec_env",
    "register_envs",
    "set_rng_states",
    "source_from_instance",
    "split_env_id",
    "wrap_env",
]

LINEWALK_ID = "pgrad/LineWalk-v0"
EnvSource = str | Callable[[], gym.Env]
"""An environment as pgrad makes it: a Gymnasium id (``"module:EnvId"`` too), or a callable
making one. (:class:`pgrad.Reinforce` also takes an env instance: :func:`source_from_instance`.)"""
DEFAULT_MAX_EPISODE_STEPS = 1000
"""The cap on whole episodes of an env with no time limit of its own (Gymnasium's limit for
MuJoCo and LunarLander, twice CartPole's): long enough for the registered tasks' episodes,
short enough that a policy that never reaches a terminal state (CliffWalking's random
walk) fills a whole-episode batch in bounded time and memory."""
KNOWN_PACKAGES: dict[str, tuple[str, str | None]] = {
    "ale_py": ("ale-py", None),
    "minatar": ("minatar", "minatar.gym:register_envs"),
    "minigrid": ("minigrid", None),
    "highway_env": ("highway-env", None),
    "gymnasium_robotics": ("gymnasium-robotics", None),
    "shimmy": ("shimmy", None),
}
"""Env packages pgrad knows: module → (pip package, registration function or None). Most
register their ids when imported; MinAtar only when ``minatar.gym.register_envs()`` runs."""
_HOOKS_RUN: set[str] = set()
_NAMESPACE_PACKAGES = {"ALE": "ale_py", "MinAtar": "minatar", "MiniGrid": "minigrid",
                       "BabyAI": "minigrid"}

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


def split_env_id(env_id: str) -> tuple[str | None, str]:
    """``"module:EnvId"`` → ``("module", "EnvId")``; a plain id → ``(None, id)``."""
    module, sep, name = env_id.rpartition(":")
    return (module, name) if sep else (None, env_id)


def import_env_packages(packages: Iterable[str]) -> None:
    """Import each module (which registers its env ids), then run the registration function
    of a package in :data:`KNOWN_PACKAGES` that needs one; a failure is a one-line
    PgradError naming the module and the pip package."""
    for module in packages:
        top = module.split(".")[0]
        pip_name, register = KNOWN_PACKAGES.get(top, (top.replace("_", "-"), None))
        try:
            importlib.import_module(module)
            if register is not None and top == module and module not in _HOOKS_RUN:
                module_name, _, function = register.partition(":")
                getattr(importlib.import_module(module_name), function)()
                _HOOKS_RUN.add(module)
        except ImportError as e:
            raise PgradError(f"cannot import the env package {module!r} ({e}); install it, "
                             f"e.g. pip install {pip_name}") from e
        except Exception as e:  # a package's own failure while registering its envs
            raise PgradError(f"importing the env package {module!r} failed: "
                             f"{type(e).__name__}: {e}") from e


def check_env_id(env_id: str, packages: Iterable[str] = ()) -> str:
    """The registered id ``env_id`` names, after importing ``packages`` and the module of a
    ``"module:EnvId"``; a PgradError naming close matches (or the package that registers
    the id's namespace) if it is not registered."""
    register_envs()
    module, name = split_env_id(env_id)
    import_env_packages([*packages, *([module] if module else [])])
    if name in gym.registry:
        return name
    namespace = name.partition("/")[0] if "/" in name else None
    package = _NAMESPACE_PACKAGES.get(namespace or "")
    close = difflib.get_close_matches(name, list(gym.registry), n=3, cutoff=0.6)
    if package is not None and not close:
        hint = (f"; {namespace} ids are registered by {package}: write "
                f"{package}:{name} or add --env-package {package}")
    else:
        hint = f"; did you mean {', '.join(close)}?" if close else (
            "; see gymnasium.pprint_registry() for the registered ids, or name the module "
            "that registers it (module:EnvId, --env-package MODULE)")
    raise PgradError(f"unknown environment id {env_id!r}{hint}")


def env_available(env_id: str, packages: Iterable[str] = ()) -> bool:
    """Whether :func:`check_env_id` finds ``env_id`` (False where it would raise)."""
    try:
        check_env_id(env_id, packages)
    except PgradError:
        return False
    return True


def has_time_limit(env: gym.Env) -> bool:
    """Whether ``env`` cuts its episodes: a ``TimeLimit`` among its wrappers, or a spec
    with ``max_episode_steps``."""
    while True:
        if isinstance(env, gym.wrappers.TimeLimit):
            return True
        spec = getattr(env, "spec", None)
        if spec is not None and spec.max_episode_steps is not None:
            return True
        if not isinstance(env, gym.Wrapper):
            return False
        env = env.env


def _registering_package(spec: gym.envs.registration.EnvSpec) -> str | None:
    """The top-level package of a spec's entry point (which registers it when imported, as
    third-party env packages do); None for Gymnasium's own envs, pgrad's and a script's."""
    entry = spec.entry_point
    module = entry.partition(":")[0] if isinstance(entry, str) else getattr(
        entry, "__module__", None)
    top = (module or "").split(".")[0]
    return None if top in ("", "gymnasium", "pgrad", "__main__") else top


def source_from_instance(env: gym.Env) -> tuple[EnvSource, dict[str, Any]]:
    """How to make copies of the env instance ``env``, and the Config fields that say so.

    An env made by ``gymnasium.make`` is cloned through its spec: its id, with the kwargs
    and time limit that differ from the registered ones as ``env_kwargs`` and
    ``max_episode_steps`` (saved in the config, so ``pgrad eval`` rebuilds it). Wrappers
    added after ``make`` are kept by making copies with ``gymnasium.make(env.spec)``
    (the config then has no env id). ``render_mode`` is dropped: training does not render.
    A third-party env's package is added to ``env_packages``.
    """
    spec = env.spec
    if spec is None:
        raise PgradError(
            f"this {type(env).__name__} instance has no spec (it was not made by "
            "gymnasium.make), so pgrad cannot make copies of it: pass its class or a "
            "function that makes one, e.g. Reinforce(lambda: MyEnv())")
    kwargs = {k: v for k, v in spec.kwargs.items() if k != "render_mode"}
    clone = dataclasses.replace(spec, kwargs=kwargs)
    registered = gym.registry.get(spec.id)
    if spec.additional_wrappers or registered is None:
        return functools.partial(gym.make, clone), {}
    env_kwargs = {k: v for k, v in kwargs.items()
                  if k not in registered.kwargs or registered.kwargs[k] != v}
    try:
        json.dumps(env_kwargs)
    except (TypeError, ValueError):  # not savable in a config: copies from the spec
        return functools.partial(gym.make, clone), {}
    fields: dict[str, Any] = {"env_id": spec.id, "env_kwargs": env_kwargs}
    package = _registering_package(registered)
    if package is not None:  # so that pgrad eval, in a new process, finds the id again
        fields["env_packages"] = (package,)
    if spec.max_episode_steps != registered.max_episode_steps:
        fields["max_episode_steps"] = spec.max_episode_steps
    return spec.id, fields


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


def wrap_env(env: gym.Env, wrapper: str | None) -> gym.Env:
    """``env`` in the named wrapper (itself for None).

    ``"atari"``: DQN's Atari preprocessing through Gymnasium, ``AtariPreprocessing`` (up to
    30 no-op actions after a reset; 4 frames per step, the last two max-pooled; 84 × 84
    grayscale uint8) then ``FrameStackObservation`` of the last 4 observations: images
    ``[4, 84, 84]`` uint8. An env that skips frames itself (ALE v5's default
    ``frameskip=4``) is not skipped again (``frame_skip=1``, no max-pooling); make it with
    ``frameskip=1``, as the Atari preset does, to have the wrapper skip and pool.
    """
    if wrapper is None:
        return env
    if wrapper not in ENV_WRAPPERS:
        raise PgradError(f"env_wrapper must be one of {', '.join(ENV_WRAPPERS)}, got {wrapper!r}")
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    if not hasattr(env.unwrapped, "ale"):
        raise PgradError(f"env_wrapper 'atari' needs an Atari env of ale_py (e.g. "
                         f"ALE/Pong-v5), not {name}")
    skip = 4 if getattr(env.unwrapped, "_frameskip", 1) == 1 else 1
    try:
        env = AtariPreprocessing(env, noop_max=30, frame_skip=skip, screen_size=84,
                                 grayscale_obs=True, scale_obs=False)
    except gym.error.DependencyNotInstalled as e:
        raise PgradError("env_wrapper 'atari' needs OpenCV: pip install 'pgrad[atari]'") from e
    except ValueError as e:
        raise PgradError(f"env_wrapper 'atari' cannot wrap {name}: {e}") from e
    return FrameStackObservation(env, 4)


def _wrapped(make: Callable[[], gym.Env], wrapper: str | None,
             cap: int | None) -> Callable[[], gym.Env]:
    """``make`` with its env in ``wrapper``, then cut at ``cap`` steps (``TimeLimit`` outside
    the wrapper, so the cap counts the agent's steps, not the frames a wrapper skips)."""
    if wrapper is None and cap is None:
        return make
    return functools.partial(_make_wrapped, make, wrapper, cap)


def _make_wrapped(make: Callable[[], gym.Env], wrapper: str | None, cap: int | None) -> gym.Env:
    env = wrap_env(make(), wrapper)
    return env if cap is None else gym.wrappers.TimeLimit(env, max_episode_steps=cap)


def _vector_wrappers(wrapper: str, cap: int | None) -> list[Callable[[gym.Env], gym.Env]]:
    """``gymnasium.make_vec``'s ``wrappers``: the named wrapper, then ``TimeLimit(cap)``."""
    limit = [] if cap is None else [functools.partial(gym.wrappers.TimeLimit,
                                                      max_episode_steps=cap)]
    return [functools.partial(wrap_env, wrapper=wrapper), *limit]


def _cap_notice(name: str, cap: int) -> None:
    """Say once per process and env that its episodes are capped (on stdout, with pgrad's
    other notices; stderr is for errors)."""
    if name in _NOTICED:
        return
    _NOTICED.add(name)
    print(f"pgrad: {name} has no time limit of its own: whole episodes are cut at {cap} "
          f"steps (a truncation, bootstrapped from V); change it with --max-episode-steps N "
          f"(max_episode_steps=N), or train on --n-steps batches", flush=True)


_NOTICED: set[str] = set()


def _episode_cap(limited: bool, name: str, max_episode_steps: int | None,
                 cap_endless: bool, announce: bool) -> int | None:
    """The TimeLimit to apply: the one asked for, else the default on an endless env
    (announced once, with ``announce``)."""
    if max_episode_steps is not None:
        return max_episode_steps
    if cap_endless and not limited:
        if announce:
            _cap_notice(name, DEFAULT_MAX_EPISODE_STEPS)
        return DEFAULT_MAX_EPISODE_STEPS
    return None


def _callable_cap(env: Callable[[], gym.Env], max_episode_steps: int | None,
                  cap_endless: bool, announce: bool) -> int | None:
    """:func:`_episode_cap` of a callable's envs (one is made to see if it has a limit)."""
    if max_episode_steps is not None or not cap_endless:
        return max_episode_steps
    probe = env()
    try:
        name = probe.spec.id if probe.spec is not None else type(probe.unwrapped).__name__
        return _episode_cap(has_time_limit(probe), name, None, True, announce)
    finally:
        probe.close()


def make_env(env_id: str, *, packages: Iterable[str] = (), max_episode_steps: int | None = None,
             cap_endless: bool = False, announce: bool = True, wrapper: str | None = None,
             **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` with pgrad's errors: unknown ids and missing extras are PgradErrors.

    ``env_id`` may be ``"module:EnvId"``; ``packages`` are imported first. The env is put
    in the named ``wrapper`` (:func:`wrap_env`). Episodes are cut at ``max_episode_steps``
    if given, else (``cap_endless``) at :data:`DEFAULT_MAX_EPISODE_STEPS` when the env has
    no time limit of its own (said once on stdout, with ``announce``).
    """
    name = check_env_id(env_id, packages)
    cap = _episode_cap(gym.spec(name).max_episode_steps is not None, name, max_episode_steps,
                       cap_endless, announce)
    if cap is not None and wrapper is None:
        kwargs["max_episode_steps"] = cap
    try:
        env = gym.make(name, **kwargs)
    except (gym.error.Error, ImportError, TypeError) as e:
        raise PgradError(f"cannot make {env_id}: {e}") from e
    if wrapper is None:
        return env
    try:
        env = wrap_env(env, wrapper)
    except PgradError:
        env.close()
        raise
    return env if cap is None else gym.wrappers.TimeLimit(env, max_episode_steps=cap)


def make_vec_env(
    env: EnvSource, num_envs: int, vectorization: str = "auto", *,
    packages: Iterable[str] = (), max_episode_steps: int | None = None,
    cap_endless: bool = True, announce: bool = True, wrapper: str | None = None,
    **env_kwargs: Any
) -> VectorEnv:
    """N copies of ``env`` as one Gymnasium vector env with next-step autoreset; Dict and
    Tuple observations are flattened to one Box (``FlattenObservation``).

    ``vectorization``: ``native`` uses the env's own vectorised implementation (Gymnasium's
    ``vector_entry_point``; CartPole and LineWalk have one), ``sync`` steps N single envs in
    this process, ``async`` in N subprocesses (for slow envs), ``envpool`` in EnvPool's C++
    thread pool (:mod:`pgrad.envpool`), and ``auto`` takes native where it exists, EnvPool
    where :func:`pgrad.envpool.auto_supported` says so (printing one line), sync otherwise.

    ``packages`` are imported before an id is looked up (an id may also be
    ``"module:EnvId"``); ``env_kwargs`` go to ``gymnasium.make_vec``. Episodes are cut
    (truncated) at ``max_episode_steps`` if given; else, with ``cap_endless``, an env with
    no time limit of its own gets :data:`DEFAULT_MAX_EPISODE_STEPS` (said once on stdout,
    with ``announce``). Each env is put in the named ``wrapper`` (:func:`wrap_env`; not
    with ``native`` or ``envpool``), inside the time limit.
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
        make = _wrapped(env, wrapper, _callable_cap(env, max_episode_steps, cap_endless,
                                                    announce))
        cls = gym.vector.AsyncVectorEnv if vectorization == "async" else gym.vector.SyncVectorEnv
        vec: VectorEnv = cls([make] * num_envs)
    elif vectorization == "envpool" or (vectorization == "auto" and wrapper is None
                                        and _auto_envpool(env, num_envs)):
        if wrapper is not None:
            raise PgradError(f"env_wrapper {wrapper!r} wraps Gymnasium envs, not EnvPool's; "
                             "use vectorization 'sync' or 'async'")
        from pgrad.envpool import EnvPoolVectorEnv
        check_env_id(env, packages)
        if max_episode_steps is not None:
            env_kwargs["max_episode_steps"] = max_episode_steps
        vec = EnvPoolVectorEnv(env, num_envs, **env_kwargs)
    else:
        name = check_env_id(env, packages)
        spec = gym.spec(name)
        has_native = spec.vector_entry_point is not None and wrapper is None
        if vectorization == "native" and not has_native:
            raise PgradError(f"{env} has no native vectorised implementation"
                             f"{' to wrap' if wrapper else ''}; use vectorization 'sync' or "
                             "'async'")
        mode = {"auto": "vector_entry_point" if has_native else "sync",
                "native": "vector_entry_point"}.get(vectorization, vectorization)
        cap = _episode_cap(spec.max_episode_steps is not None, name, max_episode_steps,
                           cap_endless, announce)
        if wrapper is not None:  # the wrapper, then the TimeLimit (counting agent steps)
            env_kwargs["wrappers"] = _vector_wrappers(wrapper, cap)
        elif cap is not None:  # gymnasium.make's TimeLimit, or the native env's own limit
            env_kwargs["max_episode_steps"] = cap
        try:
            vec = gym.make_vec(name, num_envs=num_envs, vectorization_mode=mode, **env_kwargs)
        except (gym.error.Error, ImportError, TypeError) as e:
            raise PgradError(f"cannot make {env}: {e}") from e
    if isinstance(vec.single_observation_space, gym.spaces.Dict | gym.spaces.Tuple):
        vec = gym.wrappers.vector.FlattenObservation(vec)
    autoreset = vec.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if autoreset != AutoresetMode.NEXT_STEP:
        vec.close()
        raise PgradError(f"pgrad needs vector envs with next-step autoreset, this one uses "
                         f"{autoreset}")
    return vec


def _auto_envpool(env_id: str, num_envs: int) -> bool:
    """Whether ``auto`` serves ``env_id`` with EnvPool (never for one env: nothing to run in
    parallel); says so once per id."""
    from pgrad.envpool import auto_supported
    if (num_envs < 2 or env_id not in gym.registry
            or gym.spec(env_id).vector_entry_point is not None):
        return False
    if not auto_supported(env_id):
        return False
    if env_id not in _ANNOUNCED:
        _ANNOUNCED.add(env_id)
        print(f"pgrad: vectorization auto uses envpool for {env_id}", flush=True)
    return True


_ANNOUNCED: set[str] = set()


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
    if isinstance(base, gym.vector.AsyncVectorEnv) or getattr(base, "external_rng", False):
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
