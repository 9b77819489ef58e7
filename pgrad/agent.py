"""The REINFORCE agent: a policy, its optimiser, and one update from one batch.

    batch → returns G_t (bootstrapped at cuts when there is a baseline)
          → log π(a|s), V(s) in one forward pass over the valid steps
          → loss (pgrad.losses) → backward → clip ‖∇‖ → Adam step

The API follows Stable-Baselines3::

    agent = pgrad.Reinforce("CartPole-v1", baseline=True, seed=0)
    agent.learn(total_timesteps=200_000)
    agent.save("cartpole.safetensors")
    agent = pgrad.Reinforce.load("cartpole.safetensors")
    action = agent.predict(obs, deterministic=True)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from pgrad import checkpoint, distributed, guard
from pgrad.checkpoint import AgentState
from pgrad.config import Config
from pgrad.diagnostics import (
    approx_kl,
    episode_segments,
    gradient_statistics,
    per_episode_gradients,
)
from pgrad.envs import EnvSource, check_env_id, check_spaces, make_env, make_vec_env
from pgrad.errors import PgradError
from pgrad.losses import advantages, reinforce_loss
from pgrad.normalization import RunningMeanStd
from pgrad.policies import Policy, make_policy
from pgrad.presets import preset
from pgrad.returns import discounted_returns
from pgrad.rollout import Batch, Collector

if TYPE_CHECKING:
    from pgrad.trainer import TrainResult

__all__ = ["Reinforce"]


def resolve_device(device: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; an unavailable cuda is a PgradError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PgradError(f"device {device!r} was asked for but CUDA is not available here; "
                         "use --device cpu")
    return torch.device(device)


class Reinforce:
    """REINFORCE, with or without a learned value baseline.

    Args:
        env: a registered Gymnasium id (``"CartPole-v1"``) or a callable returning a
            ``gymnasium.Env``; None only when loading a checkpoint for prediction.
        config: a :class:`Config`; or give its fields as keyword arguments, which then
            override the env's tuned preset (:mod:`pgrad.presets`) and the defaults.
    """

    def __init__(self, env: EnvSource | None = "CartPole-v1", config: Config | None = None,
                 *, _spaces: tuple[gym.Space, gym.Space] | None = None,
                 **kwargs: Any) -> None:
        if config is None:
            env_id = env if isinstance(env, str) else None
            config = Config(env_id=env_id, **{**preset(env_id), **kwargs})
        elif kwargs:
            config = Config.from_dict({**config.to_dict(), **kwargs})
        if isinstance(env, str) and config.env_id != env:  # the config names the env it runs
            config = dataclasses.replace(config, env_id=env)
        self.config = config
        self.env_source: EnvSource | None = env
        if isinstance(env, str):
            check_env_id(env)
        self.device = resolve_device(config.device)
        if _spaces is None:
            if env is None:
                raise PgradError("give an environment id or a callable that makes one")
            _spaces = _probe_spaces(env)
        self.observation_space, self.action_space = _spaces
        # The agent's randomness is its own: weights drawn from the seed without touching
        # torch's global stream, actions from a generator of its own.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.policy: Policy = make_policy(
                self.observation_space, self.action_space, **config.policy_kwargs
            ).to(self.device)
        # Data-parallel workers share the weights (same seed) but each rank plays its own
        # envs and samples its own actions, from seed + 1000 · rank (pgrad.distributed).
        self.world = distributed.world()
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed + self.world.seed_offset)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.learning_rate)
        # Running std of the (unscaled) returns, by which rewards are divided (scale_rewards).
        self.return_rms = RunningMeanStd().to(self.device)
        self.num_timesteps = 0
        self.num_updates = 0
        self.skipped_updates = 0
        """Updates dropped by the divergence guard (``on_nonfinite='skip'``)."""
        self.resume_state: dict[str, Any] | None = None
        """Rollout state read from a checkpoint, applied when the collector is built."""
        self.collector: Collector | None = None
        self.last_result: TrainResult | None = None

    # ------------------------------------------------------------------ training
    def make_collector(self) -> Collector:
        """The vector env and rollout collector, built on first use and then kept."""
        if self.collector is None:
            if self.env_source is None:
                raise PgradError("this agent has no environment; pass env= to load() to train")
            cfg = self.config
            envs = make_vec_env(self.env_source, cfg.num_envs, cfg.vectorization)
            check_spaces(envs, self.observation_space, self.action_space)
            seed = cfg.seed + self.world.seed_offset
            resume, self.resume_state = self.resume_state, None
            if resume is not None and not self.world.is_main:
                # A checkpoint holds rank 0's rollout state; other ranks start new streams.
                seed, resume = seed + self.num_updates, None
            try:
                envs.action_space.seed(seed)
            except (gym.error.Error, ValueError, OverflowError) as e:
                envs.close()
                raise PgradError(f"cannot seed the environment with {seed}: {e}") from e
            self.collector = Collector(
                envs, self.policy, seed=seed, generator=self.generator,
                episodes=None if cfg.n_steps else cfg.batch_episodes, n_steps=cfg.n_steps)
            if resume is not None:  # continue a loaded run's rollout
                self.collector.set_state(resume)
        return self.collector

    def update(self, batch: Batch) -> dict[str, float]:
        """One gradient step of REINFORCE on one batch; returns the named loss terms."""
        cfg = self.config
        policy = self.policy
        valid = batch.valid.to(self.device)
        obs = batch.obs.to(self.device)
        rewards = batch.rewards.to(self.device)
        terminated = batch.terminated.to(self.device)
        truncated = batch.truncated.to(self.device)
        if not cfg.bootstrap_truncated:  # the time limit is part of the task: an end
            terminated = terminated | truncated
        reward_scale = 1.0
        if cfg.scale_rewards:  # by the running std of the returns, this batch's included
            self.world.update_running_stats(self.return_rms, discounted_returns(
                rewards, cfg.gamma, terminated=terminated, truncated=truncated)[valid])
            reward_scale = float(self.return_rms.std)
            rewards = rewards / reward_scale

        next_values = None
        if policy.has_baseline:
            # Cuts: a time limit, or the batch's end mid-episode. Their future is γ V(s_{t+1}).
            cut = (truncated | _last_row(valid)) & ~terminated & valid
            next_values = torch.zeros_like(rewards)
            if cut.any():
                with torch.no_grad():
                    next_values[cut] = policy.value(obs[1:][cut])
        returns = discounted_returns(rewards, cfg.gamma, terminated=terminated,
                                     truncated=truncated, next_values=next_values)

        weights = None
        if cfg.discount_policy_gradient:  # γ^t, t the step's index within its episode
            weights = cfg.gamma ** _episode_steps(batch).to(self.device, torch.float32)[valid]
        log_probs, entropy, values = policy.evaluate_actions(
            obs[:-1][valid], batch.actions.to(self.device)[valid])
        losses = reinforce_loss(
            log_probs, returns[valid], values, entropy, vf_coef=cfg.vf_coef,
            ent_coef=cfg.ent_coef, normalize_advantages=cfg.normalize_advantages,
            policy_weights=weights, normalizer=self.world.normalize)
        due = cfg.diagnostics_every > 0 and self.num_updates % cfg.diagnostics_every == 0
        diagnostics = _gradient_diagnostics(self, batch, returns, values, weights, due)

        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        # Data-parallel: the sample-weighted mean of all workers' gradients (no-op alone).
        self.world.average_gradients(policy.parameters(), num_samples=log_probs.numel())
        if cfg.max_grad_norm is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
        else:
            grad_norm = torch.nn.utils.get_total_norm(
                [p.grad for p in policy.parameters() if p.grad is not None])
        if guard.check_update(self, losses["loss"], grad_norm, batch):  # nan/inf guard
            self.optimizer.step()
            guard.check_parameters(self, batch)
            self.num_updates += 1
            if values is not None and cfg.value_steps > 1:
                self._fit_value(obs[:-1][valid], returns[valid], cfg.value_steps - 1)
        if policy.obs_rms is not None:  # the next rollout normalises with this batch seen too
            self.world.update_running_stats(policy.obs_rms, policy.encoder(obs[:-1][valid]))

        metrics = {f"train/{k}": float(v.detach()) for k, v in losses.items()}
        metrics["train/grad_norm"] = float(grad_norm)
        metrics["train/reward_scale"] = reward_scale
        if values is not None:
            metrics["train/explained_variance"] = _explained_variance(values, returns[valid])
        metrics["diagnostics/kl"] = float("nan")
        if due:  # how far the step moved the policy on this batch's states
            with torch.no_grad():
                new_log_probs = policy.distribution(obs[:-1][valid]).log_prob(
                    batch.actions.to(self.device)[valid])
            metrics["diagnostics/kl"] = approx_kl(log_probs.detach(), new_log_probs)
        metrics.update(diagnostics)
        return metrics

    def _fit_value(self, obs: torch.Tensor, returns: torch.Tensor, steps: int) -> None:
        """``steps`` more Adam steps on the value loss alone (Spinning Up's VPG does 80):
        one step per batch leaves V far behind returns that grow as the policy improves,
        and a baseline that explains nothing reduces no variance. The policy's own
        parameters get no gradient from it (a shared backbone does)."""
        policy, cfg = self.policy, self.config
        for _ in range(steps):
            loss = cfg.vf_coef * (policy.value(obs) - returns).pow(2).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.world.average_gradients(policy.parameters(), num_samples=returns.numel())
            # All ranks hold the same averaged gradient, so they stop (or step) together.
            grad_norm = torch.nn.utils.clip_grad_norm_(
                policy.parameters(), cfg.max_grad_norm or float("inf"))
            if not bool(torch.isfinite(grad_norm)):
                self.optimizer.zero_grad(set_to_none=True)
                return
            self.optimizer.step()

    def learn(self, total_timesteps: int, *, stop_return: float | None = None,
              run_dir: str | Path | None = None, progress_bar: bool = False,
              tensorboard: bool = True, save_every: int | None = None) -> Reinforce:
        """Train for ``total_timesteps`` more env steps (see :func:`pgrad.trainer.train`).

        After :meth:`load` this continues the saved run: counters, optimiser, random
        states and episode statistics carry on, and a ``run_dir`` holding the run's logs
        is continued. Returns the agent; what the call did is in ``agent.last_result``.
        """
        from pgrad.trainer import train

        self.last_result = train(self, total_timesteps, stop_return=stop_return,
                                 run_dir=run_dir, progress_bar=progress_bar,
                                 tensorboard=tensorboard, save_every=save_every)
        return self

    @property
    def episode_returns(self) -> list[float]:
        """Returns of the last (up to 100) finished training episodes, oldest first."""
        return [] if self.collector is None else list(self.collector.episode_returns)

    # ------------------------------------------------------------------ inference
    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Action(s) for one observation (shape of the observation space; a dict or tuple
        for Dict / Tuple spaces) or a batch of them."""
        space = self.observation_space
        if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
            single = isinstance(obs, dict | tuple)
            items = [obs] if single else list(obs)
            batch = np.stack([gym.spaces.flatten(space, o) for o in items])
        else:
            obs_arr = np.asarray(obs)
            single = obs_arr.shape == space.shape
            batch = obs_arr[None] if single else obs_arr
        with torch.inference_mode():
            actions = self.policy.to_env(self.policy.sample(batch, deterministic))
        return actions[0] if single else actions

    # ------------------------------------------------------------------ persistence
    def state(self) -> AgentState:
        """What a checkpoint holds (:class:`pgrad.checkpoint.AgentState`); its tensors are
        on the CPU and may share memory with the agent's."""
        optim = self.optimizer.state_dict()
        return AgentState(
            config=self.config, observation_space=self.observation_space,
            action_space=self.action_space,
            policy={k: v.detach().cpu() for k, v in self.policy.state_dict().items()},
            optimizer={"param_groups": optim["param_groups"], "state": {
                index: {k: v.detach().cpu() if torch.is_tensor(v) else v
                        for k, v in entry.items()}
                for index, entry in optim["state"].items()}},
            return_rms={k: v.detach().cpu() for k, v in self.return_rms.state_dict().items()},
            generator=self.generator.get_state(), generator_device=self.generator.device.type,
            num_timesteps=self.num_timesteps, num_updates=self.num_updates,
            skipped_updates=self.skipped_updates,
            rollout=(self.collector.get_state() if self.collector is not None
                     else self.resume_state))

    @classmethod
    def from_state(cls, state: AgentState, env: EnvSource | None = None,
                   device: str | None = None) -> Reinforce:
        """The agent ``state`` describes, on ``device`` (default: the saved one); ``env``
        (default: the saved env id, if registered) is only needed to train on."""
        config = state.config
        if device is not None:
            config = dataclasses.replace(config, device=device)
        if env is None and config.env_id is not None and config.env_id in gym.registry:
            env = config.env_id
        agent = cls(env, config=config, _spaces=(state.observation_space, state.action_space))
        agent.policy.load_state_dict(state.policy, strict=True)
        if state.return_rms:
            agent.return_rms.load_state_dict(state.return_rms, strict=True)
        agent.optimizer.load_state_dict(state.optimizer)
        agent.num_timesteps, agent.num_updates = state.num_timesteps, state.num_updates
        agent.skipped_updates = state.skipped_updates
        agent.resume_state = state.rollout
        # A generator's state only fits a generator of the same device type; an agent loaded
        # onto another device keeps the generator seeded from config.seed.
        if state.generator is not None and state.generator_device == agent.device.type:
            agent.generator.set_state(state.generator)
        return agent

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (safetensors + JSON metadata, no pickle); returns its path."""
        return checkpoint.save(path, self.state())

    @classmethod
    def load(cls, path: str | Path, env: EnvSource | None = None,
             device: str | None = None) -> Reinforce:
        """Rebuild an agent from :meth:`save`'s file (or a run directory holding one).

        ``env`` (default: the saved env id) is only needed to continue training. Anything
        wrong with the file is one :class:`PgradError`.
        """
        state = checkpoint.load(path)
        try:
            return cls.from_state(state, env=env, device=device)
        except PgradError:
            raise
        except Exception as e:  # a file that passed every check but still does not fit
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise PgradError(f"{path}: the checkpoint does not fit this pgrad "
                             f"({type(e).__name__}: {first})") from e

    def close(self) -> None:
        """Close the vector env, if one was made; a later :meth:`learn` or :meth:`save`
        keeps its rollout state (episode statistics, the envs' random states)."""
        if self.collector is not None:
            self.resume_state = self.collector.get_state()
            self.collector.envs.close()
            self.collector = None


def _probe_spaces(env: EnvSource) -> tuple[gym.Space, gym.Space]:
    if isinstance(env, str):
        probe = make_env(env)
    else:
        probe = env()
        if not isinstance(probe, gym.Env):
            raise PgradError(f"the env callable returned {type(probe).__name__}, "
                             "not a gymnasium.Env")
    try:
        return probe.observation_space, probe.action_space
    finally:
        probe.close()


def _episode_steps(batch: Batch) -> torch.Tensor:
    if batch.episode_steps is None:
        raise PgradError("discount_policy_gradient needs the batch's episode_steps")
    return batch.episode_steps


def _gradient_diagnostics(agent: Reinforce, batch: Batch, returns: torch.Tensor,
                          values: torch.Tensor | None, weights: torch.Tensor | None,
                          due: bool) -> dict[str, float]:
    """Variance and SNR of the per-episode policy gradients (pgrad.diagnostics); NaN
    when not ``due`` (the keys are always there, so the CSV has their columns)."""
    nan = float("nan")
    out = dict.fromkeys(["diagnostics/grad_variance", "diagnostics/grad_snr",
                         "diagnostics/grad_variance_without_baseline",
                         "diagnostics/grad_snr_without_baseline"], nan)
    if not due or batch.episode_steps is None:
        return out
    cfg, device = agent.config, agent.device
    valid = batch.valid.to(device)
    segment, position, count = episode_segments(valid, batch.episode_steps.to(device))
    obs, actions = batch.obs[:-1].to(device)[valid], batch.actions.to(device)[valid]
    # With a baseline, also the same batch's gradients without it (A = G): the variance
    # the baseline removed, measured on identical episodes.
    for suffix, baseline in [("", values), ("_without_baseline", None)]:
        if suffix and values is None:
            break
        adv = advantages(returns[valid], baseline,
                         normalize_advantages=cfg.normalize_advantages)
        if weights is not None:
            adv = adv * weights
        grads = per_episode_gradients(agent.policy, obs, actions, adv, segment, position,
                                      count)
        variance, snr = gradient_statistics(grads)
        out[f"diagnostics/grad_variance{suffix}"] = variance
        out[f"diagnostics/grad_snr{suffix}"] = snr
    return out


def _last_row(valid: torch.Tensor) -> torch.Tensor:
    last = torch.zeros_like(valid)
    last[-1] = True
    return last


def _explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 − Var[G − V] / Var[G]: 1 is a perfect baseline, 0 no better than a constant."""
    var = returns.var()
    if returns.numel() < 2 or var == 0:
        return float("nan")
    return float(1 - (returns - values.detach()).var() / var)
