"""Observations as a user hands them to ``predict`` → the batch a policy takes.

One observation or a batch of them, in the observation space's own form: an array, a
Discrete index, or for Dict / Tuple spaces a dict / tuple (one observation, or batched
arrays as a vector env returns them) or a list of dicts / tuples. Dict and Tuple
observations are flattened by ``gymnasium.spaces.flatten``, as the training envs'
``FlattenObservation`` wrapper flattens them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from pgrad.errors import PgradError

__all__ = ["observation_batch"]


def observation_batch(space: gym.Space, observation: Any) -> tuple[np.ndarray, bool]:
    """``(observations [B, *flat_obs_shape], whether one observation was given)``."""
    if not isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        obs = np.asarray(observation)
        single = obs.shape == space.shape
        return (obs[None] if single else obs), single
    if isinstance(observation, dict | tuple):
        leaf_space, leaf = _first_leaf(space, observation)
        if np.shape(leaf) == leaf_space.shape:
            return gym.spaces.flatten(space, observation)[None], True
        batched = gym.vector.utils.batch_space(space, len(leaf))
        items = list(gym.vector.utils.iterate(batched, observation))
    else:
        items = list(observation)
    if not items:
        raise PgradError("predict got an empty batch of observations")
    return np.stack([gym.spaces.flatten(space, item) for item in items]), False


def _first_leaf(space: gym.Space, observation: Any) -> tuple[gym.Space, Any]:
    """The first sub-space of ``space`` that is not a Dict or Tuple, and its part of
    ``observation``."""
    while isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        key = next(iter(space.keys())) if isinstance(space, gym.spaces.Dict) else 0
        try:
            space, observation = space[key], observation[key]
        except (KeyError, IndexError, TypeError) as e:
            raise PgradError(f"the observation does not match the observation space "
                             f"{space}: it has no entry {key!r}") from e
    return space, observation
