"""Videos of a trained agent: ``pgrad eval RUN_DIR --video out.mp4`` (or a directory).

Episodes are played in one env made with ``render_mode="rgb_array"`` (as evaluation plays
them, :func:`pgrad.evaluation.play_episodes`) and written by
Gymnasium's ``RecordVideo`` wrapper (one MP4 per episode; it needs moviepy, and classic
control envs render with pygame: ``pip install "pgrad[video]"``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pgrad.errors import PgradError

if TYPE_CHECKING:
    from pgrad.agent import Reinforce

__all__ = ["check_video_support", "record_video"]

_INSTALL = 'pip install "pgrad[video]"'


def check_video_support() -> None:
    """Raise a PgradError with the fix unless moviepy (the recorder's writer) is installed;
    called before any episode is played."""
    if importlib.util.find_spec("moviepy") is None:
        raise PgradError(f"recording videos needs moviepy: {_INSTALL}")


def record_video(agent: Reinforce, path: str | Path, episodes: int = 1,
                 env_id: str | None = None, seed: int = 0, deterministic: bool = True,
                 fps: int | None = None) -> list[Path]:
    """Play ``episodes`` episodes of ``agent`` and write them as MP4 files; returns them.

    ``path`` ending in ``.mp4`` names the file (with several episodes: ``NAME-episode-K.mp4``
    beside it); any other path is a directory that gets ``episode-K.mp4``. The episodes
    are the first ``episodes`` of one env reset with ``seed`` (played as
    :func:`pgrad.evaluation.play_episodes` plays them).
    """
    import gymnasium as gym

    from pgrad.envs import make_env, make_vec_env
    from pgrad.evaluation import play_episodes

    check_video_support()
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
        options = agent.env_options(own_env=env_id == agent.config.env_id)
        frames_dir = Path(tmp) / "frames"  # new, so the recorder has nothing to overwrite

        def filmed_env() -> gym.Env:
            env = make_env(env_id, render_mode="rgb_array", **options)
            if fps is not None:
                env.metadata = {**env.metadata, "render_fps": fps}
            return gym.wrappers.RecordVideo(env, str(frames_dir), name_prefix="video",
                                            episode_trigger=lambda k: k < episodes,
                                            disable_logger=True)

        try:
            envs = make_vec_env(filmed_env, 1, "sync", cap_endless=False)  # capped by make_env
            try:
                play_episodes(agent.policy, envs, episodes, deterministic=deterministic,
                              seed=seed)
            finally:
                envs.close()  # the recorder writes the last episode's file on close
        except (gym.error.DependencyNotInstalled, PgradError) as e:
            raise PgradError(f"cannot render {env_id}: {e} ({_INSTALL})") from e
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
