"""pgrad.agent's chunked update: a batch larger than the chunk is processed in chunks whose
gradients add up to the one-pass gradient; a batch within one chunk is the one-pass update,
bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

import pgrad
import pgrad.agent as agent_module
from pgrad.agent import _chunks, _gather, _targets, update_chunk
from pgrad.losses import reinforce_loss

SMALL_CHUNK = 64
"""Far below the batches of these tests (8 CartPole episodes: over 100 valid steps), and
not a divisor of them: the last chunk is a short one."""

VARIANTS = {
    "defaults": {},
    "shared-value-net": {"value_net": "shared"},
    "no-baseline": {"baseline": False},
    "not-normalized": {"normalize_advantages": False},
    "gamma-t-gae-entropy": {"discount_policy_gradient": True, "gae_lambda": 0.9,
                            "ent_coef": 0.01},
    "value-steps-separate-clip": {"value_steps": 3, "grad_clip": "separate"},
}


def _agent(**kwargs) -> pgrad.Reinforce:
    return pgrad.Reinforce("CartPole-v1", seed=0, num_envs=8, batch_episodes=8,
                           device="cpu", **kwargs)


def _batch(agent: pgrad.Reinforce) -> pgrad.rollout.Batch:
    batch = agent.make_collector().collect()
    assert batch.num_steps > 2 * SMALL_CHUNK
    return batch


def _grads(policy: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in policy.parameters() if p.grad is not None]


def test_chunks_cover_the_batch_in_order() -> None:
    assert _chunks(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert _chunks(8, 4) == [slice(0, 4), slice(4, 8)]
    assert _chunks(4, 4) == [slice(0, 4)]
    assert _chunks(5, None) == [slice(0, 5)]
    assert _chunks(0, 4) == [slice(0, 0)]  # an empty batch still computes (all-reduces) its loss


def test_the_cpu_update_is_chunked_and_other_devices_are_not() -> None:
    assert update_chunk(torch.device("cpu")) == agent_module.UPDATE_CHUNK
    assert update_chunk(torch.device("meta")) is None


@pytest.mark.parametrize("variant", VARIANTS)
def test_chunked_gradient_equals_the_one_pass_gradient(variant: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    agent = _agent(**VARIANTS[variant])
    batch = _batch(agent)
    data = _gather(batch, agent.device, agent.config.bootstrap_truncated)
    targets = _targets(agent.policy, data, agent.config.gamma, 1.0,
                       agent.config.discount_policy_gradient, agent.config.gae_lambda,
                       agent.config.value_target)
    results = {}
    for chunk in (None, SMALL_CHUNK):
        monkeypatch.setattr(agent_module, "UPDATE_CHUNK", chunk or 10**9)
        agent.optimizer.zero_grad(set_to_none=True)
        forward = agent._loss_backward(data, targets)
        results[chunk] = forward, _grads(agent.policy)
    (one, one_grads), (chunked, chunked_grads) = results[None], results[SMALL_CHUNK]
    assert len(one_grads) == len(chunked_grads) == len(list(agent.policy.parameters()))
    for a, b in zip(one_grads, chunked_grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    assert one.losses.keys() == chunked.losses.keys()
    for key in one.losses:
        torch.testing.assert_close(chunked.losses[key], one.losses[key], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(chunked.log_probs, one.log_probs)
    if one.values is None:
        assert chunked.values is None
    else:
        torch.testing.assert_close(chunked.values, one.values)


@pytest.mark.parametrize("variant", VARIANTS)
def test_chunked_update_equals_the_one_pass_update(variant: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole updates (targets, value fit, clipping, Adam, KL, diagnostics) from two agents
    of one seed on one batch: the parameters and every metric agree."""
    agents = {chunk: _agent(**VARIANTS[variant]) for chunk in (None, SMALL_CHUNK)}
    batch = _batch(agents[None])
    metrics = {}
    for chunk, agent in agents.items():
        monkeypatch.setattr(agent_module, "UPDATE_CHUNK", chunk or 10**9)
        metrics[chunk] = agent.update(batch)
    one, chunked = metrics[None], metrics[SMALL_CHUNK]
    assert not math.isnan(one["diagnostics/kl"])  # the first update measures everything
    assert one.keys() == chunked.keys()
    for key in one:
        assert chunked[key] == pytest.approx(one[key], rel=1e-3, abs=1e-6, nan_ok=True), key
    for a, b in zip(agents[None].policy.parameters(), agents[SMALL_CHUNK].policy.parameters(),
                    strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("variant", ["defaults", "shared-value-net", "no-baseline"])
def test_a_batch_within_one_chunk_is_the_one_pass_update_bit_for_bit(variant: str) -> None:
    """The gradient of a batch no larger than the chunk is that of one evaluate_actions →
    reinforce_loss → backward, exactly."""
    agent = _agent(**VARIANTS[variant])
    batch = _batch(agent)
    data = _gather(batch, agent.device, agent.config.bootstrap_truncated)
    assert data.count <= agent_module.UPDATE_CHUNK
    cfg = agent.config
    targets = _targets(agent.policy, data, cfg.gamma, 1.0, cfg.discount_policy_gradient)
    agent.optimizer.zero_grad(set_to_none=True)
    log_probs, entropy, values = agent.policy.evaluate_actions(data.obs, data.actions)
    reference = reinforce_loss(log_probs, targets.policy_returns, values, entropy,
                               value_targets=targets.returns, vf_coef=cfg.vf_coef,
                               ent_coef=cfg.ent_coef,
                               normalize_advantages=cfg.normalize_advantages)
    reference["loss"].backward()
    expected = _grads(agent.policy)
    agent.optimizer.zero_grad(set_to_none=True)
    forward = agent._loss_backward(data, targets)
    for a, b in zip(expected, _grads(agent.policy), strict=True):
        assert torch.equal(a, b)
    for key, value in reference.items():
        assert torch.equal(forward.losses[key], value.detach()), key
