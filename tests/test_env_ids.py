"""Environment ids as users write them: ``module:EnvId``, env packages, env kwargs and env
instances, through the API, ``pgrad train``, ``pgrad eval`` and ``--resume``."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from pgrad import Reinforce, evaluate
from pgrad.config import Config, field_kind
from pgrad.envs import KNOWN_PACKAGES, LineWalkEnv, check_env_id, env_available, make_vec_env
from pgrad.errors import PgradError
from pgrad.tools.cli import main

ENVMODS = Path(__file__).parent / "envmods"
MODULE = "pgrad_test_envs"
KWARGS_ID = "PgradTest/Kwargs-v0"
ENDLESS_ID = "PgradTest/Endless-v0"
SMALL = {"num_envs": 2, "batch_episodes": 2, "hidden_sizes": (8,), "diagnostics_every": 0}


def forget_module() -> None:
    """As in a new process: the test module not imported, its ids not registered."""
    sys.modules.pop(MODULE, None)
    for env_id in (KWARGS_ID, ENDLESS_ID):
        gym.registry.pop(env_id, None)


@pytest.fixture
def envmods(monkeypatch: pytest.MonkeyPatch):
    """The test env module importable, and not yet imported."""
    monkeypatch.syspath_prepend(str(ENVMODS))
    forget_module()
    yield
    forget_module()


def quiet_main(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


# ---------------------------------------------------------------- module:EnvId, packages
def test_module_prefix_imports_the_module_that_registers_the_id(envmods) -> None:
    assert KWARGS_ID not in gym.registry
    assert check_env_id(f"{MODULE}:{KWARGS_ID}") == KWARGS_ID
    assert MODULE in sys.modules and KWARGS_ID in gym.registry


def test_env_package_is_imported_before_the_id_is_looked_up(envmods) -> None:
    assert not env_available(KWARGS_ID)
    agent = Reinforce(KWARGS_ID, env_packages=(MODULE,), **SMALL)
    assert agent.config.env_packages == (MODULE,)
    assert agent.observation_space.shape == (1,)


def test_a_missing_module_is_one_line_naming_it_and_the_pip_package(monkeypatch) -> None:
    with pytest.raises(PgradError, match=r"'no_such_envs_xyz'.*pip install no-such-envs-xyz"):
        check_env_id("no_such_envs_xyz:Foo-v0")
    monkeypatch.setitem(KNOWN_PACKAGES, "no_such_envs_xyz", ("known-envs", None))
    with pytest.raises(PgradError, match=r"'no_such_envs_xyz'.*pip install known-envs") as info:
        check_env_id("Foo-v0", packages=["no_such_envs_xyz"])
    assert "\n" not in str(info.value)


def test_an_unregistered_namespace_names_the_package_that_registers_it() -> None:
    if "MinAtar/Breakout-v1" in gym.registry:
        pytest.skip("MinAtar ids are registered in this process already")
    with pytest.raises(PgradError, match="minatar:MinAtar/Breakout-v1"):
        check_env_id("MinAtar/Breakout-v1")


def test_minatar_registers_through_its_known_hook() -> None:
    pytest.importorskip("minatar")
    assert check_env_id("minatar:MinAtar/Breakout-v1") == "MinAtar/Breakout-v1"
    envs = make_vec_env("MinAtar/Breakout-v1", 2, packages=["minatar"])
    try:
        assert envs.single_observation_space.shape == (10, 10, 4)
        assert envs.single_action_space == gym.spaces.Discrete(3)
    finally:
        envs.close()


# ---------------------------------------------------------------- env kwargs
def test_env_kwargs_reach_the_env_in_training_and_evaluation(envmods) -> None:
    agent = Reinforce(f"{MODULE}:{KWARGS_ID}", env_kwargs={"reward": 2.0, "length": 3},
                      **SMALL)
    agent.learn(12)
    assert agent.episode_returns == [6.0] * len(agent.episode_returns) != []
    result = evaluate(agent, episodes=3)
    np.testing.assert_array_equal(result.returns, [6.0, 6.0, 6.0])
    np.testing.assert_array_equal(result.lengths, [3, 3, 3])


def test_env_kwargs_that_the_env_does_not_take_are_one_line(envmods) -> None:
    with pytest.raises(PgradError, match="unexpected keyword"):
        Reinforce(f"{MODULE}:{KWARGS_ID}", env_kwargs={"colour": "red"}, **SMALL)


def test_env_kwargs_with_a_callable_are_refused() -> None:
    with pytest.raises(PgradError, match="give them to the callable"):
        Reinforce(LineWalkEnv, env_kwargs={"x": 1})


@pytest.mark.parametrize(("text", "pair"), [
    ("reward=2.5", ("reward", 2.5)), ("length=3", ("length", 3)),
    ("slippery=false", ("slippery", False)), ("map_name=8x8", ("map_name", "8x8")),
    ("size=[3, 4]", ("size", [3, 4])), ("name=", ("name", "")),
])
def test_key_value_parses_json_where_it_can(text: str, pair: tuple) -> None:
    assert field_kind("dict[str, Any]").parse_words([text]) == dict([pair])


@pytest.mark.parametrize(("fields", "match"), [
    ({"env_kwargs": {"f": object()}}, "JSON"),
    ({"env_kwargs": {"max_episode_steps": 5}}, "--max-episode-steps"),
    ({"env_packages": ("not a module",)}, "module names"),
    ({"max_episode_steps": 0}, "max_episode_steps"),
])
def test_config_refuses_bad_env_settings(fields: dict, match: str) -> None:
    with pytest.raises(PgradError, match=match):
        Config(**fields)


def test_config_round_trips_env_settings() -> None:
    config = Config(env_packages=("a.b", "c"), env_kwargs={"x": [1, 2], "y": "z"},
                    max_episode_steps=9)
    data = json.loads(json.dumps(config.to_dict()))
    assert Config.from_dict(data) == config


# ---------------------------------------------------------------- CLI: train, eval, resume
def test_cli_module_id_and_env_kwargs_survive_eval_and_resume(envmods, tmp_path) -> None:
    run = tmp_path / "run"
    code, _ = quiet_main("train", f"{MODULE}:{KWARGS_ID}", "--env-kwargs", "reward=2",
                         "length=4", "--total-timesteps", "16", "--out", str(run),
                         "--no-progress", "--no-tensorboard", "--num-envs", "2",
                         "--batch-episodes", "2", "--hidden-sizes", "8")
    assert code == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["env_id"] == f"{MODULE}:{KWARGS_ID}"
    assert saved["env_kwargs"] == {"reward": 2, "length": 4}
    forget_module()  # pgrad eval in a new process: nothing imported, nothing registered
    code, out = quiet_main("eval", str(run), "--episodes", "3", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["returns"] == [8.0, 8.0, 8.0]
    forget_module()
    code, out = quiet_main("train", "--resume", str(run), "--total-timesteps", "40",
                           "--no-progress")
    assert code == 0 and "trained 24 steps" in out


def test_cli_eval_says_which_env_package_is_missing(envmods, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert quiet_main("train", f"{MODULE}:{KWARGS_ID}", "--total-timesteps", "10", "--out",
                      str(run), "--no-progress", "--no-tensorboard", "--num-envs", "2",
                      "--batch-episodes", "2", "--hidden-sizes", "8")[0] == 0
    capsys.readouterr()
    sys.path.remove(str(ENVMODS))  # evaluated where the package is not installed
    forget_module()
    code = main(["eval", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"'{MODULE}'" in err[0] and "pip install" in err[0]


def test_cli_env_package_is_repeatable_and_saved(envmods, tmp_path) -> None:
    run = tmp_path / "run"
    code, _ = quiet_main("train", KWARGS_ID, "--env-package", MODULE, "--env-package",
                         "json", "--total-timesteps", "10", "--out", str(run),
                         "--no-progress", "--no-tensorboard", "--num-envs", "2",
                         "--batch-episodes", "2", "--hidden-sizes", "8")
    assert code == 0
    assert json.loads((run / "config.json").read_text())["env_packages"] == [MODULE, "json"]


def test_cli_bad_env_kwargs_and_missing_package_are_one_line_errors(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--env-kwargs", "no-equals-sign"])
    assert info.value.code == 2
    assert "expected key=value" in capsys.readouterr().err
    code = main(["train", "Foo-v0", "--env-package", "no_such_envs_xyz", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install no-such-envs-xyz" in err[0]


# ---------------------------------------------------------------- env instances
def test_an_env_instance_is_accepted_and_cloned_through_its_spec() -> None:
    env = gym.make("CartPole-v1")
    agent = Reinforce(env, **SMALL)
    assert agent.config.env_id == "CartPole-v1" and agent.env_source == "CartPole-v1"
    assert agent.observation_space == env.observation_space
    agent.learn(50)
    assert agent.num_timesteps >= 50
    env.reset(seed=0)  # the user's instance is left open and usable
    env.close()


def test_an_instance_keeps_its_kwargs_and_time_limit(envmods) -> None:
    import pgrad_test_envs  # noqa: F401  (registers the ids)

    agent = Reinforce(gym.make(KWARGS_ID, reward=3.0, length=50, max_episode_steps=4),
                      **SMALL)
    assert agent.config.env_kwargs == {"reward": 3.0, "length": 50}
    assert agent.config.max_episode_steps == 4
    assert agent.config.env_packages == (MODULE,)  # the package that registers the id
    result = evaluate(agent, episodes=2)
    np.testing.assert_array_equal(result.returns, [12.0, 12.0])  # 4 steps of 3, truncated


def test_an_instance_with_wrappers_is_copied_with_them(envmods) -> None:
    import pgrad_test_envs  # noqa: F401

    env = gym.wrappers.ClipReward(gym.make(KWARGS_ID, reward=3.0, length=2), -1.0, 1.0)
    agent = Reinforce(env, **SMALL)
    assert agent.config.env_id is None  # a callable source: the wrappers are not in a config
    np.testing.assert_array_equal(evaluate(agent, episodes=2).returns, [2.0, 2.0])


def test_an_instance_without_a_spec_is_refused_with_what_to_do() -> None:
    with pytest.raises(PgradError, match=r"no spec.*lambda"):
        Reinforce(LineWalkEnv())


def test_video_plays_with_the_agents_env_settings(tmp_path) -> None:
    pytest.importorskip("moviepy")
    pytest.importorskip("pygame")
    imageio = pytest.importorskip("imageio")
    from pgrad.tools.video import record_video

    # CliffWalking has no time limit; an untrained walk does not reach the goal in 12 steps.
    agent = Reinforce("CliffWalking-v1", max_episode_steps=12, **SMALL)
    [path] = record_video(agent, tmp_path / "walk.mp4")
    reader = imageio.get_reader(path)
    try:
        assert sum(1 for _ in reader) == 13  # the reset frame and 12 steps
    finally:
        reader.close()
