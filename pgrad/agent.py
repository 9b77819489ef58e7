"""The REINFORCE agent: a policy, its optimiser, and one update from one batch.

    batch → valid steps gathered once
          → targets: returns G_t (scaled; bootstrapped at cuts when there is a baseline)
          → log π(a|s), V(s) → loss (pgrad.losses) → backward, over the valid steps in
            chunks of UPDATE_CHUNK on the CPU (the gradients add up to the whole batch's)
          → all-reduce → clip ‖∇‖ (jointly, or policy and value apart)
          → the guard's verdict → Adam step (learning rates from the schedule)
          → value fit, normaliser update → metrics

The API follows Stable-Baselines3::

    agent = pgrad.Reinforce("CartPole-v1", baseline=True, seed=0)
    agent.learn(total_timesteps=200_000)
    agent.save("cartpole.safetensors")
    agent = pgrad.Reinforce.load("cartpole.safetensors")
    action, _ = agent.predict(obs, deterministic=True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
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
from pgrad.envs import (
    EnvSource,
    check_env_id,
    check_spaces,
    env_available,
    make_env,
    make_vec_env,
    source_from_instance,
    split_env_id,
    wrap_env,
)
from pgrad.errors import PgradError
from pgrad.losses import LOSS_TERMS, advantages, reinforce_loss
from pgrad.normalization import RunningMeanStd
from pgrad.observations import observation_batch
from pgrad.optim import Adam
from pgrad.policies import Policy, make_policy
from pgrad.presets import preset
from pgrad.returns import discounted_returns, lambda_returns
from pgrad.rollout import Batch, Collector
from pgrad.threads import torch_threads
from pgrad.trainer import TrainResult, train

if TYPE_CHECKING:
    from pgrad.callbacks import CallbackLike

__all__ = ["EVAL_SEED_OFFSET", "Reinforce"]

EVAL_SEED_OFFSET = 1_000_000_007
"""The evaluation env's seed is ``(seed + EVAL_SEED_OFFSET) mod 2³¹`` (int32, as EnvPool
needs): apart from every training stream (seed + 1000 · rank)."""


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
        env: a Gymnasium id (``"CartPole-v1"``, or ``"module:EnvId"`` to import the module
            that registers it), a callable returning a ``gymnasium.Env``, or an env
            instance (used to read the spaces; copies are made from its spec); None only
            when loading a checkpoint for prediction.
        config: a :class:`Config`; or give its fields as keyword arguments, which then
            override the env's tuned preset (:mod:`pgrad.presets`) and the defaults.
    """

    def __init__(self, env: EnvSource | gym.Env | None = "CartPole-v1",
                 config: Config | None = None, *,
                 _spaces: tuple[gym.Space, gym.Space] | None = None,
                 **kwargs: Any) -> None:
        if isinstance(env, gym.Env):  # read its spaces; train on copies made from its spec
            if _spaces is None:
                _spaces = env.observation_space, env.action_space
            env, from_instance = source_from_instance(env)
            kwargs = {**from_instance, **kwargs}
        if config is None:
            if callable(env) and kwargs.get("env_kwargs"):
                raise PgradError("env_kwargs go to gymnasium.make with an env id; a callable "
                                 "makes its env itself: give them to the callable")
            env_id = env if isinstance(env, str) else None
            kwargs.setdefault("env_id", env_id)
            config = Config(**{**preset(split_env_id(env_id)[1] if env_id else None),
                               **kwargs})
        elif kwargs:
            config = Config.from_dict({**config.to_dict(), **kwargs})
        if isinstance(env, str) and config.env_id != env:  # the config names the env it runs
            config = dataclasses.replace(config, env_id=env)
        self.config = config
        self.env_source: EnvSource | None = env
        if isinstance(env, str):
            check_env_id(env, config.env_packages)
        self.device = resolve_device(config.device)
        if _spaces is None:
            if env is None:
                raise PgradError("give an environment id or a callable that makes one")
            _spaces = _probe_spaces(env, config)
        self.observation_space, self.action_space = _spaces
        # The agent's randomness is its own: weights drawn from the seed without touching
        # torch's global stream, actions from a generator of its own; under the config's
        # thread count, which the orthogonal initialisation's last bits depend on.
        with torch_threads(config.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.policy: Policy = make_policy(
                self.observation_space, self.action_space, **config.policy_kwargs
            ).to(self.device)
        # Data-parallel workers share the weights (same seed) but each rank plays its own
        # envs and samples its own actions, from seed + 1000 · rank (pgrad.distributed).
        self.world = distributed.world()
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed + self.world.seed_offset)
        self._optimizer: Adam | None = None
        self._optimizer_state: dict[str, Any] | None = None
        """A checkpoint's Adam state, loaded when the optimizer is built."""
        self._lr_horizon: int | None = None
        """The step at which a linear schedule reaches 0: the current learn call's target."""
        self._vf_grad_norm = float("nan")
        """The value-only parameters' gradient norm at the last step (separate clipping)."""
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
    @property
    def optimizer(self) -> Adam:
        """Adam over the policy's parameter groups (:func:`_param_groups`;
        :class:`pgrad.optim.Adam`, torch's Adam without importing ``torch._dynamo``), built
        on first use with a loaded checkpoint's state: prediction never builds it."""
        if self._optimizer is None:
            optimizer = Adam(_param_groups(self.policy, self.config))
            if self._optimizer_state is not None:
                optimizer.load_state_dict(self._optimizer_state)
            self._optimizer, self._optimizer_state = optimizer, None
        return self._optimizer

    def make_collector(self) -> Collector:
        """The vector env and rollout collector, built on first use and then kept."""
        if self.collector is None:
            if self.env_source is None:
                raise PgradError("this agent has no environment; pass env= to load() to train")
            cfg = self.config
            envs = make_vec_env(self.env_source, cfg.num_envs, cfg.vectorization,
                                **self.env_options(whole_episodes=cfg.n_steps is None,
                                                   announce=True))
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

    def env_options(self, own_env: bool = True, whole_episodes: bool = True,
                    announce: bool = False) -> dict[str, Any]:
        """The keyword arguments of :func:`pgrad.envs.make_vec_env` that make the agent's
        env as configured: packages, episode cap, wrapper and, for its own env
        (``own_env``), its kwargs. ``whole_episodes``: an env without a time limit gets
        the default cap (said on stdout with ``announce``, as training does)."""
        cfg = self.config
        return {"packages": cfg.env_packages, "max_episode_steps": cfg.max_episode_steps,
                "cap_endless": whole_episodes, "announce": announce, "wrapper": cfg.env_wrapper,
                **(cfg.env_kwargs if own_env else {})}

    def update(self, batch: Batch) -> dict[str, float]:
        """One gradient step of REINFORCE on one batch; returns the named metrics.

        A batch without a single valid transition on any rank (``n_steps=1`` right after
        an episode ended holds only a reset step) is skipped: no step, metrics nan.
        """
        cfg = self.config
        data = _gather(batch, self.device, cfg.bootstrap_truncated)  # valid steps, once
        if self.world.sum([data.count])[0] == 0:  # no transition on any rank: skip
            return self._optimizer_metrics(_empty_batch_metrics(self.policy.has_baseline),
                                           float("nan"), float("nan"))
        self._apply_lr_schedule()
        # targets: G_t of the scaled rewards, cuts bootstrapped from V (λ-returns for the
        # advantage when gae_lambda < 1); γ^t weights
        reward_scale = self._update_reward_scale(data)
        targets = _targets(self.policy, data, cfg.gamma, reward_scale,
                           cfg.discount_policy_gradient, cfg.gae_lambda, cfg.value_target)
        # loss and its gradient: forward → loss → backward over the valid steps, chunk by
        # chunk on the CPU (the gradient is the whole batch's)
        self.optimizer.zero_grad(set_to_none=True)
        forward = self._loss_backward(data, targets)
        due = cfg.diagnostics_every > 0 and self.num_updates % cfg.diagnostics_every == 0
        diagnostics = _gradient_diagnostics(self.policy, data, targets, forward.values,
                                            cfg.normalize_advantages, due)
        # gradient step: all-reduce → clip → the guard's verdict → Adam
        grad_norm, stepped = self._gradient_step(forward.losses["loss"], data.count)
        # after the step: value fit, KL (before the normaliser moves), normaliser
        if stepped and forward.values is not None:
            self._fit_value(data.obs, targets.returns, cfg.value_steps - 1)
        kl = self._kl_since(forward.log_probs, data) if due else float("nan")
        self._update_obs_rms(data)
        return self._optimizer_metrics(
            _metrics(forward.losses, grad_norm, reward_scale,
                     _explained_variance(forward.values, targets.returns), kl, diagnostics),
            self._vf_grad_norm, float(self.optimizer.param_groups[0]["lr"]))

    def _optimizer_metrics(self, metrics: dict[str, float], vf_grad_norm: float,
                           learning_rate: float) -> dict[str, float]:
        """``metrics`` with the policy's learning rate of the step and, with separate
        clipping, the value gradient's norm (before clipping)."""
        if self._separate_clip:
            metrics["train/vf_grad_norm"] = vf_grad_norm
        metrics["train/learning_rate"] = learning_rate
        return metrics

    def _apply_lr_schedule(self) -> None:
        """``lr_schedule='linear'``: every group's rate is its configured rate times
        1 − num_timesteps / (the learn call's target step), derived from the step count
        alone, so nothing needs saving for an exact resume. Outside :meth:`learn` (no
        target) the rates stay as they are."""
        if self.config.lr_schedule == "constant" or self._lr_horizon is None:
            return
        factor = max(0.0, 1.0 - self.num_timesteps / self._lr_horizon)
        groups = self.optimizer.param_groups
        for group, rate in zip(groups, _base_rates(self.config)[:len(groups)], strict=True):
            group["lr"] = rate * factor

    @property
    def _separate_clip(self) -> bool:
        return self.config.grad_clip == "separate" and len(self.optimizer.param_groups) == 2

    def _update_reward_scale(self, data: _Transitions) -> float:
        """``scale_rewards``: merge this batch's returns (unscaled, not bootstrapped; all
        ranks') into the running statistics; their std is the scale. 1.0 when off."""
        cfg = self.config
        if not cfg.scale_rewards:
            return 1.0
        returns = discounted_returns(data.rewards, cfg.gamma, terminated=data.terminated,
                                     truncated=data.truncated)
        self.world.update_running_stats(self.return_rms, data.take(returns))
        return float(self.return_rms.std)

    def _loss_backward(self, data: _Transitions, targets: _Targets) -> _Forward:
        """The loss of the ``B`` valid steps and its gradient (accumulated in ``.grad``),
        in chunks of at most ``update_chunk(device)`` steps (:func:`_chunks`).

        Every loss term is a mean over the batch, so with ``n_c`` steps in chunk c,
        L = Σ_c (n_c / B) · L_c, L_c the terms' mean over chunk c: the accumulated gradient
        is the one-pass gradient, up to float rounding. One chunk is the one-pass update.

        Normalised advantages need the whole batch's V(s) first, and their mean and std
        (all ranks'). A separate value network gets them from its own pass, the value loss's
        forward and backward, so that nothing is computed twice; a shared one from a pass
        without gradient. Each chunk's loss then takes its slice of the advantages.
        """
        policy, cfg = self.policy, self.config
        chunks = _chunks(data.count, update_chunk(self.device))
        normalized = fitted = None  # fitted: V(s) [B] of a value pass that took its gradient
        if len(chunks) > 1 and cfg.normalize_advantages:
            if policy.value_backbone is not None:
                values = fitted = self._value_backward(data.obs, targets.returns, chunks)
            else:
                values = _values(policy, data.obs) if policy.has_baseline else None
            normalized = self.world.normalize(advantages(targets.policy_returns, values))
        parts, log_probs, values_parts = [], [], []
        for chunk in chunks:
            if fitted is not None:  # π alone; V(s) is the value pass's, detached
                dist = policy.distribution(data.obs[chunk])
                log_probs_c, entropy_c = dist.log_prob(data.actions[chunk]), dist.entropy()
                values_c = fitted[chunk]
            else:
                log_probs_c, entropy_c, values_c = policy.evaluate_actions(
                    data.obs[chunk], data.actions[chunk])
            if cfg.ent_coef == 0:  # the entropy is then a metric: no backward through it
                entropy_c = entropy_c.detach()
            losses = self._loss(log_probs_c, entropy_c, values_c, targets.chunk(chunk),
                                None if normalized is None else normalized[chunk])
            share = 1.0 if len(chunks) == 1 else (chunk.stop - chunk.start) / data.count
            (losses["loss"] * share).backward()
            parts.append({k: v.detach() * share for k, v in losses.items()})
            log_probs.append(log_probs_c.detach())
            if values_c is not None:
                values_parts.append(values_c.detach())
        return _Forward(
            losses={k: sum((part[k] for part in parts[1:]), parts[0][k]) for k in parts[0]},
            log_probs=torch.cat(log_probs),
            values=torch.cat(values_parts) if values_parts else None)

    def _value_backward(self, obs: torch.Tensor, returns: torch.Tensor,
                        chunks: list[slice]) -> torch.Tensor:
        """Forward and backward of vf_coef · L_V, L_V = mean[(V(s) − Ĝ)²] over the valid
        steps (``obs``: ``[B, *obs_shape]``, ``returns`` Ĝ: ``[B]``), chunk by chunk as in
        :meth:`_loss_backward`; the gradient accumulates in ``.grad``. Returns V(s) ``[B]``,
        detached."""
        values = []
        for chunk in chunks:
            share = 1.0 if len(chunks) == 1 else (chunk.stop - chunk.start) / returns.numel()
            values_c = self.policy.value(obs[chunk])
            loss = self.config.vf_coef * (values_c - returns[chunk]).pow(2).mean()
            (loss * share).backward()
            values.append(values_c.detach())
        return torch.cat(values)

    def _loss(self, log_probs: torch.Tensor, entropy: torch.Tensor,
              values: torch.Tensor | None, targets: _Targets,
              normalized: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The REINFORCE loss terms (pgrad.losses) of ``[B]`` valid steps; advantages
        normalised over all ranks' steps, or given already normalised (``normalized``:
        ``[B]``, a chunk's slice of the whole batch's)."""
        cfg = self.config
        normalizer = (self.world.normalize if normalized is None
                      else lambda _advantages: normalized)
        return reinforce_loss(
            log_probs, targets.policy_returns, values, entropy, value_targets=targets.returns,
            vf_coef=cfg.vf_coef,
            ent_coef=cfg.ent_coef, normalize_advantages=cfg.normalize_advantages,
            policy_weights=targets.weights, normalizer=normalizer)

    def _gradient_step(self, loss: torch.Tensor, num_samples: int) -> tuple[float, bool]:
        """The loss's gradient (in ``.grad``) → average over ranks → clip ‖∇‖ → the guard's
        verdict (the same on every rank) → Adam step. Returns the gradient norm (before
        clipping; the policy's alone with ``grad_clip='separate'``, the value's then in
        ``_vf_grad_norm``) and whether the step was taken; raises
        :class:`pgrad.guard.Diverged` on a ``stop`` verdict."""
        cfg = self.config
        params = list(self.policy.parameters())
        # Data-parallel: the sample-weighted mean of all workers' gradients (no-op alone).
        self.world.average_gradients(params, num_samples=num_samples)
        if self._separate_clip:  # each group on its own: the value cannot scale the policy
            policy_group, value_group = self.optimizer.param_groups
            grad_norm = _clip_gradients(policy_group["params"], cfg.max_grad_norm)
            vf_norm = _clip_gradients(value_group["params"], cfg.vf_max_grad_norm)
            self._vf_grad_norm = float(vf_norm)
            total_norm = torch.stack([grad_norm, vf_norm]).norm()
        else:
            grad_norm = total_norm = _clip_gradients(params, cfg.max_grad_norm)
        # A rank without samples has a mean over nothing as its loss: only its gradient counts.
        flags = guard.nonfinite_flags(loss if num_samples else None, total_norm)
        verdict = guard.judge_update(self.world.sum(flags), self.config.on_nonfinite)
        if verdict == guard.STEP:
            self.optimizer.step()
            verdict = guard.judge_parameters(params)  # identical on every rank
        return float(grad_norm), self._act_on(verdict, num_samples)

    def _act_on(self, verdict: guard.Verdict, num_samples: int) -> bool:
        """Count a taken or skipped update, or raise Diverged; whether it was taken."""
        if verdict.action == "step":
            self.num_updates += 1
            return True
        self.optimizer.zero_grad(set_to_none=True)
        if verdict.action == "skip":
            self.skipped_updates += 1
            return False
        raise guard.Diverged(verdict.what, self.num_updates + 1,
                             self.num_timesteps + num_samples)

    def _fit_value(self, obs: torch.Tensor, returns: torch.Tensor, steps: int) -> None:
        """``steps`` more Adam steps on the value loss alone (Spinning Up's VPG does 80):
        one step per batch leaves V far behind returns that grow as the policy improves,
        and a baseline that explains nothing reduces no variance. The policy's own
        parameters get no gradient from it (a shared backbone does).

        ``obs``: ``[B, *obs_shape]``, ``returns``: ``[B]``, the valid steps' targets."""
        policy, cfg = self.policy, self.config
        chunks = _chunks(returns.numel(), update_chunk(self.device))
        for _ in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            self._value_backward(obs, returns, chunks)
            self.world.average_gradients(policy.parameters(), num_samples=returns.numel())
            # All ranks hold the same averaged gradient, so they stop (or step) together.
            if self._separate_clip:
                policy_group, value_group = self.optimizer.param_groups
                grad_norm = torch.stack([
                    _clip_gradients(policy_group["params"], cfg.max_grad_norm),
                    _clip_gradients(value_group["params"], cfg.vf_max_grad_norm)]).norm()
            else:
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    policy.parameters(), cfg.max_grad_norm or float("inf"))
            if not bool(torch.isfinite(grad_norm)):
                self.optimizer.zero_grad(set_to_none=True)
                return
            self.optimizer.step()

    def _kl_since(self, old_log_probs: torch.Tensor, data: _Transitions) -> float:
        """KL(π_old ‖ π_new) on the batch's valid steps: how far this update moved the
        policy. Measured before the observation statistics take in the batch."""
        with torch.no_grad():
            new_log_probs = torch.cat([
                self.policy.distribution(data.obs[chunk]).log_prob(data.actions[chunk])
                for chunk in _chunks(data.count, update_chunk(self.device))])
        return approx_kl(old_log_probs.detach(), new_log_probs)

    def _update_obs_rms(self, data: _Transitions) -> None:
        """``normalize_obs``: the next rollout normalises with this batch seen too."""
        if self.policy.obs_rms is not None:
            self.world.update_running_stats(self.policy.obs_rms,
                                            self.policy.encoder(data.obs))

    def learn(self, total_timesteps: int, *, stop_return: float | None = None,
              run_dir: str | Path | None = None, progress_bar: bool = False,
              tensorboard: bool = True, save_every: int | None = None,
              callback: CallbackLike | None = None, eval_every: int | None = None,
              eval_episodes: int = 10, eval_deterministic: bool = True,
              stop_on: str = "train") -> Reinforce:
        """Train for ``total_timesteps`` more env steps (see :func:`pgrad.trainer.train`).

        ``callback`` runs after every update (:mod:`pgrad.callbacks`; False stops).
        ``eval_every``: every this many env steps, play ``eval_episodes`` episodes
        (deterministic actions unless ``eval_deterministic`` is False) in a separate
        vector env with a seed of its own (``EVAL_SEED_OFFSET``), log ``eval/return_mean`` and
        ``eval/return_std``, and save the best evaluated model to
        ``run_dir/best.safetensors`` (:class:`pgrad.callbacks.EvalCallback`).
        ``stop_on``: ``"train"`` compares ``stop_return`` with the training return (a full
        window), ``"eval"`` with each evaluation's mean (needs ``eval_every``).
        A linear ``lr_schedule`` reaches 0 at this call's target step.
        After :meth:`load` this continues the saved run: counters, optimiser, random
        states and episode statistics carry on, and a ``run_dir`` holding the run's logs
        is continued. Returns the agent; what the call did is in ``agent.last_result``.
        """
        if stop_on == "eval" and eval_every is None:
            raise PgradError("stop_on='eval' compares stop_return with evaluations: give "
                             "eval_every too (--eval-every STEPS)")
        if eval_every is not None:
            from pgrad.callbacks import EvalCallback

            evaluation = EvalCallback(eval_every, eval_episodes, run_dir=run_dir,
                                      deterministic=eval_deterministic,
                                      seed=(self.config.seed + EVAL_SEED_OFFSET) % 2**31)
            callback = [evaluation, *_callbacks(callback)]
        self._lr_horizon = self.num_timesteps + total_timesteps
        _ = self.optimizer  # built now, not on the training clock
        try:
            self.last_result = train(self, total_timesteps, stop_return=stop_return,
                                     run_dir=run_dir, progress_bar=progress_bar,
                                     tensorboard=tensorboard, save_every=save_every,
                                     callback=callback, stop_on=stop_on)
        finally:
            self._lr_horizon = None
        return self

    @property
    def episode_returns(self) -> list[float]:
        """Returns of the training episodes in the statistics window (at least 100 once
        full, whole batches; see :class:`pgrad.rollout.Collector`), in the order they
        started."""
        return [] if self.collector is None else list(self.collector.episode_returns)

    # ------------------------------------------------------------------ inference
    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """``(actions, state)`` for one observation or a batch, as Stable-Baselines3's
        ``predict``: actions ready for ``env.step``, ``[*action_shape]`` for one observation
        and ``[B, *action_shape]`` for a batch ``[B, *obs_shape]``.

        Dict / Tuple observations come as one dict / tuple, a dict / tuple of batched
        arrays (what a vector env returns), or a list of dicts / tuples. ``state`` is
        returned unchanged and ``episode_start`` is ignored: these policies keep no
        recurrent state (SB3's feed-forward policies do the same).
        """
        batch, single = observation_batch(self.observation_space, observation)
        with torch.inference_mode():
            actions = self.policy.to_env(self.policy.sample(batch, deterministic))
        return (actions[0] if single else actions), state

    def export(self, path: str | Path, format: str = "onnx") -> Path:
        """Write the deterministic policy as a standalone inference module (``onnx`` or
        ``torchscript``; see :mod:`pgrad.export`): raw observations ``[B, *obs_shape]``
        → env-ready actions ``[B, *action_shape]``. Returns the file's path."""
        from pgrad.export import export

        return export(self, path, format=format)

    # ------------------------------------------------------------------ persistence
    def state(self) -> AgentState:
        """What a checkpoint holds (:class:`pgrad.checkpoint.AgentState`); its tensors are
        on the CPU and may share memory with the agent's."""
        optim = _renumbered(self.optimizer.state_dict(), self.optimizer, self.policy)
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
        if (len(state.optimizer["param_groups"]) == 1 and config.grad_clip == "separate"
                and config.vf_lr is None):
            # Saved with one parameter group: by a pgrad whose only clipping was the joint
            # one (its config lacks grad_clip) or by a policy without a value network (the
            # two are then the same). The run continues as it was trained.
            config = dataclasses.replace(config, grad_clip="joint")
        if env is None and config.env_id is not None and env_available(config.env_id,
                                                                       config.env_packages):
            env = config.env_id
        agent = cls(env, config=config, _spaces=(state.observation_space, state.action_space))
        agent.policy.load_state_dict(state.policy, strict=True)
        if state.return_rms:
            agent.return_rms.load_state_dict(state.return_rms, strict=True)
        _check_optimizer_groups(state.optimizer, _param_groups(agent.policy, config))
        agent._optimizer_state = state.optimizer  # loaded when training needs the optimizer
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


def _callbacks(callback: CallbackLike | None) -> list[Any]:
    """``callback`` as a list (see :func:`pgrad.callbacks.as_callback`)."""
    if callback is None:
        return []
    return list(callback) if isinstance(callback, Sequence) else [callback]


def _probe_spaces(env: EnvSource, config: Config) -> tuple[gym.Space, gym.Space]:
    if isinstance(env, str):
        probe = make_env(env, packages=config.env_packages, wrapper=config.env_wrapper,
                         **config.env_kwargs)
    else:
        probe = env()
        if not isinstance(probe, gym.Env):
            raise PgradError(f"the env callable returned {type(probe).__name__}, "
                             "not a gymnasium.Env")
        probe = wrap_env(probe, config.env_wrapper)
    try:
        return probe.observation_space, probe.action_space
    finally:
        probe.close()


@dataclass(frozen=True)
class _Transitions:
    """One batch on the agent's device, its ``B`` valid steps gathered once.

    ``[T, N]`` tensors keep the batch's layout (returns run along time); ``[B]`` tensors
    are the valid steps in time-major order (the order of ``x[valid]``, which
    :meth:`take` gives without searching the mask again).
    """

    all_obs: torch.Tensor
    """``[T + 1, N, *obs_shape]``: row t + 1 follows step t (bootstrapping reads it)."""
    valid: torch.Tensor
    """``[T, N]`` bool."""
    rewards: torch.Tensor
    """``[T, N]``."""
    terminated: torch.Tensor
    """``[T, N]`` bool; time limits included when they are part of the task."""
    truncated: torch.Tensor
    """``[T, N]`` bool."""
    episode_steps: torch.Tensor | None
    """``[T, N]`` index of the step within its episode."""
    obs: torch.Tensor
    """``[B, *obs_shape]``, the valid steps' observations."""
    actions: torch.Tensor
    """``[B, *action_shape]``."""
    count: int
    """B, this rank's number of valid steps."""
    index: torch.Tensor
    """``[B]`` the valid steps' positions in ``valid.reshape(-1)``."""

    def take(self, x: torch.Tensor) -> torch.Tensor:
        """``x[valid]`` of a ``[T, N, ...]`` tensor: its valid steps, ``[B, ...]``."""
        return _take(x, self.index)


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The rows ``index`` of ``x`` ``[T, N, ...]`` with its first two axes flattened."""
    return x.reshape(-1, *x.shape[2:])[index]


def _gather(batch: Batch, device: torch.device, bootstrap_truncated: bool) -> _Transitions:
    """Move ``batch`` to ``device`` and gather its valid observations and actions. With
    ``bootstrap_truncated`` off, a time limit ends the task: truncation is termination."""
    valid = batch.valid.to(device)
    all_obs = batch.obs.to(device)
    terminated = batch.terminated.to(device)
    truncated = batch.truncated.to(device)
    if not bootstrap_truncated:
        terminated = terminated | truncated
    steps = None if batch.episode_steps is None else batch.episode_steps.to(device)
    index = valid.reshape(-1).nonzero().squeeze(1)  # the mask searched once
    return _Transitions(
        all_obs=all_obs, valid=valid, rewards=batch.rewards.to(device),
        terminated=terminated, truncated=truncated, episode_steps=steps,
        obs=_take(all_obs[:-1], index), actions=_take(batch.actions.to(device), index),
        count=index.numel(), index=index)


@dataclass(frozen=True)
class _Targets:
    """What the loss fits, for the ``B`` valid steps."""

    returns: torch.Tensor
    """``[B]`` the value targets: G_t (``value_target='mc'``) or G^λ_t, in units of the
    scaled rewards."""
    policy_returns: torch.Tensor
    """``[B]`` the returns of the policy's advantage G − V: G_t, or G^λ_t when
    ``gae_lambda`` < 1 (the same tensor as ``returns`` when both are G_t)."""
    weights: torch.Tensor | None
    """``[B]`` γ^t on each step's policy term (``discount_policy_gradient``), or None."""

    def chunk(self, chunk: slice) -> _Targets:
        """The targets of the valid steps ``chunk`` (a slice of ``[B]``)."""
        return _Targets(self.returns[chunk], self.policy_returns[chunk],
                        None if self.weights is None else self.weights[chunk])


@dataclass(frozen=True)
class _Forward:
    """What the update's forward and backward pass over the ``B`` valid steps gives the
    rest of the update."""

    losses: dict[str, torch.Tensor]
    """The loss terms (pgrad.losses.LOSS_TERMS), means over the ``B`` steps, detached."""
    log_probs: torch.Tensor
    """``[B]`` log π(a|s) before the step, detached."""
    values: torch.Tensor | None
    """``[B]`` V(s) before the step, detached; None without a baseline."""


UPDATE_CHUNK = 4096
"""Valid steps per forward and backward pass of an update on the CPU. A larger batch is
processed in chunks of this many and their gradients accumulated (the same gradient:
:meth:`Reinforce._loss_backward`), because a pass whose activations stay in the CPU's caches
costs less per step than one pass over the whole batch (docs/performance.md). On other
devices, one pass: a GPU is fastest on large batches."""


def update_chunk(device: torch.device) -> int | None:
    """The most valid steps one forward and backward pass of an update takes on
    ``device``: :data:`UPDATE_CHUNK` on the CPU, None (no limit) elsewhere."""
    return UPDATE_CHUNK if device.type == "cpu" else None


def _chunks(count: int, size: int | None) -> list[slice]:
    """``[0, count)`` cut into consecutive slices of at most ``size`` (None: one slice);
    an empty batch is one empty slice, so every rank computes (and all-reduces) its loss."""
    if size is None or count <= size:
        return [slice(0, count)]
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def _values(policy: Policy, obs: torch.Tensor) -> torch.Tensor:
    """``[B]``: V(s) of the observations ``[B, *obs_shape]``, without gradient, in chunks
    of at most ``update_chunk`` steps."""
    with torch.no_grad():
        return torch.cat([policy.value(obs[chunk])
                          for chunk in _chunks(obs.shape[0], update_chunk(obs.device))])


def _targets(policy: Policy, data: _Transitions, gamma: float, reward_scale: float,
             discount_policy_gradient: bool, gae_lambda: float = 1.0,
             value_target: str = "mc") -> _Targets:
    """G_t of the rewards divided by ``reward_scale`` (cuts bootstrapped from V when the
    policy has a baseline), the λ-returns G^λ_t when ``gae_lambda`` < 1, and the γ^t
    weights. Reads the policy, changes nothing."""
    next_values = _next_values(policy, data) if policy.has_baseline else None
    rewards = data.rewards / reward_scale
    returns = data.take(discounted_returns(rewards, gamma, terminated=data.terminated,
                                           truncated=data.truncated, next_values=next_values))
    policy_returns = returns
    if next_values is not None and (gae_lambda < 1.0 or value_target == "gae"):
        policy_returns = data.take(lambda_returns(
            rewards, _all_next_values(policy, data, next_values), gamma, gae_lambda,
            terminated=data.terminated, truncated=data.truncated))
        if value_target == "gae":
            returns = policy_returns
    weights = None
    if discount_policy_gradient:  # γ^t, t the step's index within its episode
        weights = gamma ** data.take(_episode_steps(data).to(torch.float32))
    return _Targets(returns, policy_returns, weights)


def _all_next_values(policy: Policy, data: _Transitions,
                     cut_values: torch.Tensor) -> torch.Tensor:
    """``[T, N]``: V(s_{t+1}) after every valid step, without gradient. Where the episode
    goes on, s_{t+1} is the observation of the next row's valid step; at cuts it is
    ``cut_values`` (:func:`_next_values`)."""
    values = torch.zeros_like(data.rewards)
    values.view(-1)[data.index] = _values(policy, data.obs)
    following = torch.zeros_like(values)
    following[:-1] = values[1:]
    cut = (data.truncated | _last_row(data.valid)) & ~data.terminated & data.valid
    return torch.where(cut, cut_values, following)


def _renumbered(optim: dict[str, Any], optimizer: Adam,
                policy: Policy) -> dict[str, Any]:
    """Adam's ``state_dict`` with each parameter numbered by its place in
    ``policy.parameters()`` (torch numbers them group by group), as a checkpoint expects.
    ``load_state_dict`` pairs the parameters group by group, so it reads it back."""
    position = {id(p): i for i, p in enumerate(policy.parameters())}
    order = [position[id(p)] for group in optimizer.param_groups for p in group["params"]]
    return {"state": {order[k]: entry for k, entry in optim["state"].items()},
            "param_groups": [{**group, "params": [order[k] for k in group["params"]]}
                             for group in optim["param_groups"]]}


def _check_optimizer_groups(optim: dict[str, Any], groups: list[dict[str, Any]]) -> None:
    """Raise ValueError unless the saved optimizer state ``optim`` has as many parameter
    groups as ``groups``, of the same sizes: what ``Optimizer.load_state_dict`` checks,
    checked when the checkpoint is loaded rather than when the optimizer is built."""
    saved = [len(group["params"]) for group in optim["param_groups"]]
    wanted = [len(group["params"]) for group in groups]
    if saved != wanted:
        raise ValueError(f"the saved optimizer has parameter groups of {saved} parameters, "
                         f"this agent's of {wanted}")


def _param_groups(policy: Policy, config: Config) -> list[dict[str, Any]]:
    """Adam's parameter groups: one group of every parameter (one rate, the clip over
    both), or, with ``grad_clip='separate'`` or a ``vf_lr``, the policy's parameters (a
    shared backbone included) and the value-only ones (its backbone and head)."""
    params = list(policy.parameters())
    value_only = [m for m in (policy.value_backbone, policy.value_head) if m is not None]
    value_ids = {id(p) for m in value_only for p in m.parameters()}
    split = config.grad_clip == "separate" or config.vf_lr is not None
    if not split or not value_ids:
        return [{"params": params, "lr": config.learning_rate}]
    policy_rate, value_rate = _base_rates(config)
    return [{"params": [p for p in params if id(p) not in value_ids], "lr": policy_rate},
            {"params": [p for p in params if id(p) in value_ids], "lr": value_rate}]


def _base_rates(config: Config) -> tuple[float, ...]:
    """The configured learning rate of each parameter group (policy, then value); the
    schedule scales them."""
    value_rate = config.vf_lr if config.vf_lr is not None else config.learning_rate
    return (config.learning_rate, value_rate)


def _next_values(policy: Policy, data: _Transitions) -> torch.Tensor:
    """``[T, N]``: V(s_{t+1}) where the episode is cut after step t (a time limit, or the
    batch's end mid-episode), 0 elsewhere; its future is then γ V(s_{t+1})."""
    cut = (data.truncated | _last_row(data.valid)) & ~data.terminated & data.valid
    next_values = torch.zeros_like(data.rewards)
    if cut.any():
        with torch.no_grad():
            next_values[cut] = policy.value(data.all_obs[1:][cut])
    return next_values


def _clip_gradients(params: list[torch.nn.Parameter], max_norm: float | None) -> torch.Tensor:
    """The gradients' total norm, after scaling them to at most ``max_norm`` (if given)."""
    if max_norm is not None:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    return torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])


def _episode_steps(data: _Transitions) -> torch.Tensor:
    if data.episode_steps is None:
        raise PgradError("discount_policy_gradient needs the batch's episode_steps")
    return data.episode_steps


_DIAGNOSTICS = ("diagnostics/grad_variance", "diagnostics/grad_snr",
                "diagnostics/grad_variance_without_baseline",
                "diagnostics/grad_snr_without_baseline")


def _gradient_diagnostics(policy: Policy, data: _Transitions, targets: _Targets,
                          values: torch.Tensor | None, normalize_advantages: bool,
                          due: bool) -> dict[str, float]:
    """Variance and SNR of the per-episode policy gradients (pgrad.diagnostics); NaN
    when not ``due`` (the keys are always there, so the CSV has their columns)."""
    out = dict.fromkeys(_DIAGNOSTICS, float("nan"))
    if not due or data.episode_steps is None:
        return out
    segment, position, count = episode_segments(data.valid, data.episode_steps)
    if count < 2:  # no spread to measure
        return out
    # With a baseline, also the same batch's gradients without it (A = G): the variance
    # the baseline removed, measured on identical episodes (both from one pass).
    cases = [("", values)] + ([("_without_baseline", None)] if values is not None else [])
    weightings = []
    for _, baseline in cases:
        returns = targets.returns if baseline is None else targets.policy_returns
        adv = advantages(returns, baseline, normalize_advantages=normalize_advantages)
        weightings.append(adv if targets.weights is None else adv * targets.weights)
    grads = per_episode_gradients(policy, data.obs, data.actions, torch.stack(weightings),
                                  segment, position, count)
    for (suffix, _), case_grads in zip(cases, grads, strict=True):
        variance, snr = gradient_statistics(case_grads)
        out[f"diagnostics/grad_variance{suffix}"] = variance
        out[f"diagnostics/grad_snr{suffix}"] = snr
    return out


def _metrics(losses: dict[str, torch.Tensor], grad_norm: float,
             reward_scale: float, explained_variance: float | None, kl: float,
             diagnostics: dict[str, float]) -> dict[str, float]:
    """The update's metrics as floats, under ``train/`` and ``diagnostics/``."""
    metrics = {f"train/{k}": float(v.detach()) for k, v in losses.items()}
    metrics["train/grad_norm"] = grad_norm
    metrics["train/reward_scale"] = reward_scale
    if explained_variance is not None:
        metrics["train/explained_variance"] = explained_variance
    metrics["diagnostics/kl"] = kl
    metrics.update(diagnostics)
    return metrics


def _empty_batch_metrics(has_baseline: bool) -> dict[str, float]:
    """The keys of an update's metrics, all nan: what a skipped empty batch logs."""
    nan = float("nan")
    losses = {k: torch.tensor(nan) for k in LOSS_TERMS}
    return _metrics(losses, nan, nan, nan if has_baseline else None, nan,
                    dict.fromkeys(_DIAGNOSTICS, nan))


def _last_row(valid: torch.Tensor) -> torch.Tensor:
    last = torch.zeros_like(valid)
    last[-1] = True
    return last


def _explained_variance(values: torch.Tensor | None, returns: torch.Tensor) -> float | None:
    """1 − Var[G − V] / Var[G] over ``[B]``: 1 is a perfect baseline, 0 no better than a
    constant; nan when B < 2 or the returns are constant; None without a baseline."""
    if values is None:
        return None
    if returns.numel() < 2:
        return float("nan")
    var = returns.var()
    if var == 0:
        return float("nan")
    return float(1 - (returns - values.detach()).var() / var)
