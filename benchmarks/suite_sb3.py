"""Stable-Baselines3 A2C and PPO rows of the suite, with rl-baselines3-zoo's hyper-parameters.

The tables below are hand-translated from rl-baselines3-zoo (github.com/DLR-RM/rl-baselines3-zoo),
``hyperparams/a2c.yml`` (commit c6c209e7) and ``hyperparams/ppo.yml`` (commit 208b6fdf), one
entry per suite environment. The zoo's ``policy_kwargs`` are strings of Python; they are
written here as dicts (the zoo's text is quoted beside each), never evaluated. The zoo's
``n_timesteps`` is dropped: every row of the suite runs the suite's budget. Where the zoo file
names an older version of an environment (``LunarLander-v2``, ``Hopper-v4``,
``InvertedPendulum-v2``), that entry is used for the suite's version; the dynamics and rewards
of these versions match for the purpose of hyper-parameters. Zoo defaults when a key is
absent: ``n_envs: 1``, ``normalize: false``, the algorithm's own defaults otherwise.

SB3 is a benchmark-only dependency (``pip install pgrad[bench]``), imported only here.
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any

import numpy as np

__all__ = ["ZOO", "run_sb3", "zoo_hyperparams"]

_RELU_256 = {"log_std_init": -2, "ortho_init": False, "activation_fn": "relu",
             "net_arch": {"pi": [256, 256], "vf": [256, 256]}}
"""ppo.yml: "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU,
net_arch=dict(pi=[256, 256], vf=[256, 256]))"."""

_A2C_SDE_KWARGS = {"log_std_init": -2, "ortho_init": False}
"""a2c.yml: "dict(log_std_init=-2, ortho_init=False)"."""

_A2C_MUJOCO = {"normalize": True}
"""a2c.yml ``&mujoco-defaults`` (HalfCheetah-v4, Hopper-v4, Walker2d-v4): normalize only."""

ZOO: dict[str, dict[str, dict[str, Any]]] = {
    "a2c": {
        "CartPole-v1": {"n_envs": 8, "ent_coef": 0.0},
        "Acrobot-v1": {"normalize": True, "n_envs": 16, "ent_coef": 0.0},
        # a2c.yml "LunarLander-v2".
        "LunarLander-v3": {"n_envs": 8, "gamma": 0.995, "n_steps": 5,
                           "learning_rate": "lin_0.00083", "ent_coef": 0.00001},
        "Pendulum-v1": {"normalize": True, "n_envs": 8, "ent_coef": 0.0, "max_grad_norm": 0.5,
                        "n_steps": 8, "gae_lambda": 0.9, "vf_coef": 0.4, "gamma": 0.9,
                        "use_rms_prop": True, "normalize_advantage": False,
                        "learning_rate": "lin_7e-4", "use_sde": True,
                        "policy_kwargs": _A2C_SDE_KWARGS},
        # a2c.yml has no InvertedPendulum entry: its MuJoCo defaults.
        "InvertedPendulum-v5": _A2C_MUJOCO,
        "HalfCheetah-v5": _A2C_MUJOCO,
        "Hopper-v5": _A2C_MUJOCO,
        "Walker2d-v5": _A2C_MUJOCO,
    },
    "ppo": {
        "CartPole-v1": {"n_envs": 8, "n_steps": 32, "batch_size": 256, "gae_lambda": 0.8,
                        "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0,
                        "learning_rate": "lin_0.001", "clip_range": "lin_0.2"},
        "Acrobot-v1": {"normalize": True, "n_envs": 16, "n_steps": 256, "gae_lambda": 0.94,
                       "gamma": 0.99, "n_epochs": 4, "ent_coef": 0.0},
        # ppo.yml "LunarLander-v2".
        "LunarLander-v3": {"n_envs": 16, "n_steps": 1024, "batch_size": 64,
                           "gae_lambda": 0.98, "gamma": 0.999, "n_epochs": 4,
                           "ent_coef": 0.01},
        "Pendulum-v1": {"n_envs": 4, "n_steps": 1024, "gae_lambda": 0.95, "gamma": 0.9,
                        "n_epochs": 10, "ent_coef": 0.0, "learning_rate": 1e-3,
                        "clip_range": 0.2, "use_sde": True, "sde_sample_freq": 4},
        # ppo.yml "InvertedPendulum-v2".
        "InvertedPendulum-v5": {"normalize": True, "n_envs": 1, "batch_size": 64,
                                "n_steps": 32, "gamma": 0.999, "learning_rate": 0.000222425,
                                "ent_coef": 1.37976e-07, "clip_range": 0.4, "n_epochs": 5,
                                "gae_lambda": 0.9, "max_grad_norm": 0.3, "vf_coef": 0.19816},
        # ppo.yml "HalfCheetah-v4".
        "HalfCheetah-v5": {"normalize": True, "n_envs": 1, "batch_size": 64, "n_steps": 512,
                           "gamma": 0.98, "learning_rate": 2.0633e-05,
                           "ent_coef": 0.000401762, "clip_range": 0.1, "n_epochs": 20,
                           "gae_lambda": 0.92, "max_grad_norm": 0.8, "vf_coef": 0.58096,
                           "policy_kwargs": _RELU_256},
        # ppo.yml "Hopper-v4".
        "Hopper-v5": {"normalize": True, "n_envs": 1, "batch_size": 32, "n_steps": 512,
                      "gamma": 0.999, "learning_rate": 9.80828e-05, "ent_coef": 0.00229519,
                      "clip_range": 0.2, "n_epochs": 5, "gae_lambda": 0.99,
                      "max_grad_norm": 0.7, "vf_coef": 0.835671, "policy_kwargs": _RELU_256},
        # ppo.yml "Walker2d-v4" (no policy_kwargs there).
        "Walker2d-v5": {"normalize": True, "n_envs": 1, "batch_size": 32, "n_steps": 512,
                        "gamma": 0.99, "learning_rate": 5.05041e-05,
                        "ent_coef": 0.000585045, "clip_range": 0.1, "n_epochs": 20,
                        "gae_lambda": 0.95, "max_grad_norm": 1, "vf_coef": 0.871923},
    },
}


def zoo_hyperparams(algo: str, env_id: str) -> dict[str, Any]:
    """The zoo entry of ``algo`` ("a2c" or "ppo") for ``env_id`` (a copy)."""
    try:
        return copy.deepcopy(ZOO[algo][env_id])
    except KeyError:
        raise ValueError(f"no rl-baselines3-zoo entry for {algo} on {env_id}; "
                         f"known: {', '.join(ZOO.get(algo, {}))}") from None


def _schedule(value: Any) -> Any:
    """'lin_0.001' → SB3's linear schedule from 0.001 to 0 over training; numbers unchanged."""
    if isinstance(value, str) and value.startswith("lin_"):
        from stable_baselines3.common.utils import LinearSchedule

        return LinearSchedule(float(value[4:]), 0.0, 1.0)
    return value


def _policy_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    import torch.nn as nn

    activations = {"relu": nn.ReLU, "tanh": nn.Tanh}
    out = dict(spec)
    if "activation_fn" in out:
        out["activation_fn"] = activations[out["activation_fn"]]
    return out


def build_model(algo: str, env_id: str, seed: int) -> tuple[Any, Any, dict[str, Any]]:
    """``(model, training VecEnv, hyperparams)`` as the zoo builds them (DummyVecEnv)."""
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    hp = zoo_hyperparams(algo, env_id)
    n_envs = hp.pop("n_envs", 1)
    normalize = hp.pop("normalize", False)
    venv = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize:  # the zoo passes the algorithm's gamma to VecNormalize
        venv = VecNormalize(venv, gamma=hp.get("gamma", 0.99))
    kwargs = {k: _schedule(v) for k, v in hp.items()}
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = _policy_kwargs(kwargs["policy_kwargs"])
    cls = {"a2c": A2C, "ppo": PPO}[algo]
    model = cls("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **kwargs)
    return model, venv, {"n_envs": n_envs, "normalize": normalize, **hp}


def run_sb3(algo: str, env_id: str, seed: int, budget: int, eval_every: int,
            eval_episodes: int, final_episodes: int, eval_seed: int,
            eval_envs: int, load_samples: list[float]) -> dict[str, Any]:
    """Train one seed for ``budget`` env steps with periodic deterministic evaluation.

    Evaluation: SB3's ``evaluate_policy`` (the first k episodes of each sub-env, so every
    started episode is counted) on a separate DummyVecEnv seeded with ``eval_seed`` before
    every evaluation, sharing the training VecNormalize statistics in eval mode (no update,
    raw rewards). Training time excludes evaluation time. The 1-min load average is
    appended to ``load_samples`` at every evaluation.
    """
    import stable_baselines3
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    model, venv, hp = build_model(algo, env_id, seed)
    eval_env: Any = make_vec_env(env_id, n_envs=min(eval_envs, eval_episodes,
                                                    final_episodes), seed=eval_seed)
    if hp["normalize"]:
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False,
                                gamma=hp.get("gamma", 0.99))

    def evaluate(episodes: int) -> np.ndarray:
        if hp["normalize"]:
            eval_env.obs_rms = copy.deepcopy(venv.obs_rms)
        eval_env.seed(eval_seed)
        returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=episodes,
                                     deterministic=True, return_episode_rewards=True)
        return np.asarray(returns, dtype=float)

    curve: list[dict[str, float]] = []
    eval_seconds = 0.0

    def record(step: int, mark: int) -> None:
        nonlocal eval_seconds
        t0 = time.perf_counter()
        r = evaluate(eval_episodes)
        eval_seconds += time.perf_counter() - t0
        curve.append({"mark": mark, "step": step, "mean": float(r.mean()),
                      "std": float(r.std())})
        load_samples.append(os.getloadavg()[0])

    class PeriodicEval(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_mark = eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_mark:
                last = self.num_timesteps // eval_every * eval_every  # the last mark passed
                record(self.num_timesteps, min(last, budget))
                self.next_mark = last + eval_every
            return True

    record(0, 0)
    eval_before = eval_seconds
    start = time.perf_counter()
    model.learn(budget, callback=PeriodicEval())
    seconds = time.perf_counter() - start - (eval_seconds - eval_before)
    steps = int(model.num_timesteps)
    final = evaluate(final_episodes)
    venv.close()
    eval_env.close()
    return {"steps": steps, "train_seconds": seconds, "eval_seconds": eval_seconds,
            "curve": curve, "final_returns": final.tolist(), "settings": hp,
            "versions": {"stable_baselines3": stable_baselines3.__version__}}
