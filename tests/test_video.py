"""pgrad eval --video: a playable MP4 of the trained policy."""

from __future__ import annotations

import contextlib
import io

import pytest

import pgrad
from pgrad.tools.cli import main

pytest.importorskip("moviepy")
pytest.importorskip("pygame")
imageio = pytest.importorskip("imageio")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "agent.safetensors"
    agent = pgrad.Reinforce("CartPole-v1", seed=0, hidden_sizes=(8,))
    agent.save(path)
    return path


def frames(path) -> int:
    reader = imageio.get_reader(path)
    try:
        return sum(1 for _ in reader)
    finally:
        reader.close()


def test_eval_video_writes_a_playable_mp4(checkpoint, tmp_path) -> None:
    out = tmp_path / "out.mp4"
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        assert main(["eval", str(checkpoint), "--episodes", "1", "--video", str(out)]) == 0
    assert out.stat().st_size > 1000 and str(out) in stdout.getvalue()
    assert out.read_bytes()[4:8] == b"ftyp"  # an MP4 container
    assert frames(out) >= 8  # an untrained CartPole episode lasts about 10 steps or more


def test_eval_video_to_a_directory_writes_one_file_per_episode(checkpoint, tmp_path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["eval", str(checkpoint), "--episodes", "1", "--video",
                     str(tmp_path / "videos"), "--video-episodes", "2"]) == 0
    files = sorted((tmp_path / "videos").iterdir())
    assert [f.name for f in files] == ["episode-0.mp4", "episode-1.mp4"]
    assert all(frames(f) > 0 for f in files)
