"""Export a trained policy as a standalone inference module: ONNX or TorchScript.

The exported module maps a batch of raw observations to the actions the env takes:

    obs [B, *flat_obs_shape] (the observation space's dtype)
        → encode (one-hot for Discrete / MultiDiscrete) → normalise (running statistics)
        → MLP → mode (argmax / Gaussian mean) → tanh-squash or clip to the bounds,
          Discrete start offsets → actions [B, *action_shape] (the action space's dtype)

``B`` is dynamic. Observations come as training saw them: Dict and Tuple observations
flattened by ``gymnasium.spaces.flatten``, Discrete observations as integer indices. The
file needs neither pgrad nor its classes: ``onnxruntime.InferenceSession`` or
``torch.jit.load`` runs it. Its metadata names pgrad's version, the env id and the spaces
(ONNX: ``metadata_props``; TorchScript: the extra file ``pgrad.json``), each space as the
JSON that checkpoints use.

ONNX goes through ``torch.onnx.export(..., dynamo=True)`` at a pinned opset and needs the
``export`` extra (``onnx``, ``onnxscript``; ``onnxruntime`` to run the result).
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from pgrad.checkpoint import space_to_dict
from pgrad.errors import PgradError
from pgrad.policies import (
    Policy,
    flat_observation_space,
)

Reinforce = Any
"""A :class:`pgrad.Reinforce` (typed loosely: the agent imports this module)."""

__all__ = ["FORMATS", "ONNX_OPSET", "DeterministicPolicy", "default_path", "export",
           "metadata", "require"]

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
"""Export formats and their file suffixes."""
ONNX_OPSET = 18
ONNX_PACKAGES = ("onnx", "onnxscript")
EXAMPLE_BATCH = 3
"""Batch size of the example input (not 0 or 1, which torch.export would fix as constants)."""


def require(format: str) -> None:
    """Raise a one-line PgradError for an unknown format, or for ONNX when the packages of
    the ``export`` extra are missing; called before anything is built."""
    if format not in FORMATS:
        raise PgradError(f"unknown export format {format!r}; choose one of "
                         f"{', '.join(FORMATS)}")
    if format == "onnx":
        missing = []
        for name in ONNX_PACKAGES:
            try:
                importlib.import_module(name)
            except ImportError:
                missing.append(name)
        if missing:
            raise PgradError(f"ONNX export needs {' and '.join(missing)}: "
                             'pip install "pgrad[export]"')


class DeterministicPolicy(nn.Module):
    """``forward(obs [B, *flat_obs_shape]) → actions [B, *action_shape]``: the policy's
    deterministic action, normalisation, bounds and dtype casts included."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: Tensor) -> Tensor:
        return self.policy.deterministic_action(obs)


def metadata(agent: Reinforce) -> dict[str, str]:
    """What the exported file records about itself, as strings (ONNX metadata_props)."""
    from pgrad import __version__

    flat = flat_observation_space(agent.observation_space)
    return {
        "pgrad_version": __version__,
        "env_id": agent.config.env_id or "",
        "observation_space": json.dumps(space_to_dict(agent.observation_space)),
        "action_space": json.dumps(space_to_dict(agent.action_space)),
        "input": f"obs {_signature(flat)}",
        "output": f"action {_signature(agent.action_space)}",
    }


def default_path(run_dir: str | Path, format: str) -> Path:
    """``RUN_DIR/policy.onnx`` (``.pt`` for TorchScript), or the checkpoint file's name
    with that suffix."""
    path = Path(run_dir)
    suffix = FORMATS[format]
    return path / f"policy{suffix}" if path.is_dir() else path.with_suffix(suffix)


def export(agent: Reinforce, path: str | Path, format: str = "onnx") -> Path:
    """Write ``agent``'s deterministic policy to ``path`` as ``format`` (see the module
    docstring); returns the path. The agent itself is left untouched (a CPU copy is
    exported)."""
    require(format)
    path = Path(path)
    module = DeterministicPolicy(copy.deepcopy(agent.policy).cpu()).eval()
    module.requires_grad_(False)
    example = _example_obs(agent.observation_space)
    meta = metadata(agent)
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "onnx":
        _export_onnx(module, example, path, meta)
    else:
        # torch 2.13 marks TorchScript deprecated (in favour of torch.export); it is still
        # what torch.jit.load runs, which is the point of this format.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(module, (example,))
            torch.jit.save(traced, str(path), _extra_files={"pgrad.json": json.dumps(meta)})
    return path


def _export_onnx(module: nn.Module, example: Tensor, path: Path,
                 meta: dict[str, str]) -> None:
    batch = torch.export.Dim("batch")
    # The exporter reports its steps on stdout and its logger; neither is pgrad's output.
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "torch.export")]
    levels = [log.level for log in quiet]
    for log in quiet:
        log.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module, (example,), dynamo=True, opset_version=ONNX_OPSET, verbose=False,
                input_names=["obs"], output_names=["action"],
                dynamic_shapes={"obs": {0: batch}})
    finally:
        for log, level in zip(quiet, levels, strict=True):
            log.setLevel(level)
    if program is None:
        raise PgradError("torch.onnx.export returned no program")
    program.model.metadata_props.update(meta)
    program.save(str(path))


def _signature(space: gym.Space) -> str:
    """``[batch, *shape] dtype`` of a batch of the space's elements."""
    return f"[{', '.join(['batch', *map(str, space.shape)])}] {np.dtype(space.dtype)}"


def _example_obs(space: gym.Space) -> Tensor:
    flat = copy.deepcopy(flat_observation_space(space))  # seeding must not touch the agent's
    flat.seed(0)
    batch = np.stack([flat.sample() for _ in range(EXAMPLE_BATCH)])
    return torch.as_tensor(batch.astype(flat.dtype))


def _torch_dtype(dtype: Any) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=np.dtype(dtype))).dtype
