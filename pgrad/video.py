"""Videos of a trained agent: ``pgrad eval RUN_DIR --video out.mp4`` (or a directory).

Episodes are played in one env made with ``render_mode="rgb_array"`` and written by
Gymnasium's ``RecordVideo`` wrapper (one MP4 per episode; it needs moviepy, and classic
control envs render with pygame: ``pip install "pgrad[video]"``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pgrad.errors import PgradError

if TYPE_CHECKING:
    from pgrad.agent import Reinforce

__all__ = ["record_video"]

_INSTALL = 'pip install "pgrad[video]"'


def record_video(agent: Reinforce, path: str | Path, episodes: int = 1,
                 env_id: str | None = None, seed: int = 0, deterministic: bool = True,
                 fps: int | None = None) -> list[Path]:
    """Play ``episodes`` episodes of ``agent`` and write them as MP4 files; returns them.

    ``path`` ending in ``.mp4`` names the file (with several episodes: ``NAME-episode-K.mp4``
    beside it); any other path is a directory that gets ``episode-K.mp4``.
    """
    import gymnasium as gym

    try:
        import moviepy  # noqa: F401  (RecordVideo's writer; fail early with the fix)
    except ImportError:
        raise PgradError(f"recording videos needs moviepy: {_INSTALL}") from None
    from pgrad.envs import make_env

    if episodes < 1:
        raise PgradError(f"episodes must be at least 1, got {episodes}")
    env_id = env_id or agent.config.env_id
    if env_id is None:
        raise PgradError("this agent was trained on a callable env: give the env id to film")
    # pygame renders off-screen; without a display SDL would complain on stderr.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    path = Path(path)
    single_file = path.suffix.lower() == ".mp4"
    out_dir = path.parent if single_file else path
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = path.stem if single_file else "episode"
    written = []
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        try:  # the agent's env as evaluation makes it: packages, kwargs, episode cap
            env = make_env(env_id, render_mode="rgb_array", **agent.env_options(
                own_env=env_id == agent.config.env_id))
        except PgradError as e:
            raise PgradError(f"cannot render {env_id}: {e} ({_INSTALL})") from e
        if fps is not None:
            env.metadata = {**env.metadata, "render_fps": fps}
        frames_dir = Path(tmp) / "frames"  # new, so the recorder has nothing to overwrite
        env = gym.wrappers.RecordVideo(env, str(frames_dir), episode_trigger=lambda _: True,
                                       name_prefix="video", disable_logger=True)
        if isinstance(env.observation_space, gym.spaces.Dict | gym.spaces.Tuple):
            env = gym.wrappers.FlattenObservation(env)  # as the policy saw them in training
        generator = torch.Generator(device=agent.policy.device).manual_seed(seed)
        try:
            for episode in range(episodes):
                obs, _ = env.reset(seed=seed + episode)
                done = False
                while not done:
                    with torch.inference_mode():
                        action = agent.policy.sample(np.asarray(obs)[None], deterministic,
                                                     generator)
                    obs, _, terminated, truncated, _ = env.step(agent.policy.to_env(action)[0])
                    done = terminated or truncated
        except gym.error.DependencyNotInstalled as e:
            raise PgradError(f"cannot render {env_id}: {e}") from e
        finally:
            env.close()
        for episode in range(episodes):
            source = frames_dir / f"video-episode-{episode}.mp4"
            if not source.exists():
                raise PgradError(f"the video recorder wrote no file for episode {episode}")
            name = (f"{stem}.mp4" if single_file and episodes == 1
                    else f"{stem}-episode-{episode}.mp4" if single_file
                    else f"{stem}-{episode}.mp4")
            target = out_dir / name
            shutil.move(str(source), target)
            written.append(target)
    return written
