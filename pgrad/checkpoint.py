"""Checkpoints: an :class:`AgentState` in one ``.safetensors`` file; tensors in
safetensors, everything else JSON.

:class:`AgentState` is what a checkpoint holds; the agent produces one
(``Reinforce.state()``) and is rebuilt from one (``Reinforce.from_state``). This module only
turns an ``AgentState`` into a file and back: it never reads or writes an agent.

Layout of the file:

* tensors ``policy.<name>``: the policy's ``state_dict``;
* tensors ``optim.<param index>.<key>``: Adam's per-parameter state;
* tensors ``return_rms.*``: the running return statistics (``scale_rewards``); running
  observation statistics (``normalize_obs``) are buffers of the policy, under ``policy.``;
* tensor ``agent.generator``: the state of the agent's action-sampling generator (restored
  when the agent is loaded onto the same device type);
* metadata ``pgrad``: a JSON document with the format version, the :class:`Config`, the
  observation and action spaces (as plain data), Adam's hyper-parameters, the counters,
  the rollout state (episode statistics, the envs' random states: see
  :meth:`pgrad.rollout.Collector.get_state`) and a SHA-256 digest of everything else.

Loading never unpickles anything: safetensors holds raw tensor bytes, JSON holds data.
Files are written atomically: a temporary file in the same folder, flushed and fsynced,
then renamed over the target (and the folder fsynced), so a crash at any moment leaves
either the complete old file or the complete new one, never a mixture.

Loading trusts nothing in the file. In order: the path must be a regular file (not a FIFO,
a device, a directory: checked with ``stat``, which never blocks); the JSON must be at most
32 MiB and nested at most 64 deep; every field is checked for type, finiteness, range and
size (spaces of at most 2²² elements and 8 levels of Dict / Tuple, counters below 2⁶²,
Adam's hyper-parameters in sane ranges, the envs' random states accepted by a NumPy bit
generator); the shapes and dtypes of every tensor are compared with those of a policy built
from the saved config on torch's meta device (no memory) and with Adam's state for those
parameters: all before a single tensor is read. Then the digest is checked (integrity, not a
signature: whoever can write the file can recompute it) and every float tensor must be
finite. Any failure, expected or not, is one :class:`PgradError` line.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pgrad import safeio
from pgrad.config import Config
from pgrad.errors import PgradError
from pgrad.policies import make_policy

__all__ = ["FORMAT", "FORMAT_VERSION", "MODEL_FILE", "AgentState", "load", "resolve", "save"]

FORMAT = "pgrad-checkpoint"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 1 files (no digest, no rollout state) still load; they resume less exactly."""
MODEL_FILE = "model.safetensors"

MAX_FILE_BYTES = 2**32
MAX_METADATA_CHARS = 2**25
MAX_SPACE_ELEMENTS = 2**22
"""Most elements of a space: a Box's size, a Discrete's n, a MultiDiscrete's n · max(nvec)."""
MAX_SPACE_DEPTH = 8
MAX_SUBSPACES = 1024
MAX_PARAMETERS = 2**28
"""Most numbers in a policy's state (1 GiB in float32)."""
MAX_TENSORS = 10_000
MAX_GENERATOR_BYTES = 2**16
MAX_EPISODE_STATS = 100_000
MAX_INT = 2**62
_OPTIM_TENSORS = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_BOX_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
               "uint16", "uint32", "uint64", "bool")
_INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_REAL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class AgentState:
    """Everything a checkpoint holds: enough to rebuild an agent and continue its run.

    Tensors live on the CPU and may share memory with the agent that produced them.
    """

    config: Config
    observation_space: gym.Space
    action_space: gym.Space
    policy: dict[str, torch.Tensor]
    """The policy's ``state_dict`` (weights, observation statistics)."""
    optimizer: dict[str, Any]
    """Adam's ``state_dict``: ``{"state": {param index: {key: tensor}}, "param_groups"}``."""
    return_rms: dict[str, torch.Tensor]
    """The running return statistics' ``state_dict`` (empty in old files)."""
    generator: torch.Tensor | None
    """State of the action-sampling generator (``torch.Generator.get_state``): uint8 [S]."""
    generator_device: str | None
    """Device type of that generator; its state only fits a generator of the same type."""
    num_timesteps: int
    num_updates: int
    skipped_updates: int = 0
    rollout: dict[str, Any] | None = None
    """The collector's state (:meth:`pgrad.rollout.Collector.get_state`), if any."""


# ---------------------------------------------------------------------- spaces as data
def _number(x: float) -> float | str:
    """JSON has no infinities: ±inf and nan become strings."""
    return float(x) if np.isfinite(x) else str(float(x))


def space_to_dict(space: gym.Space) -> dict[str, Any]:
    """A Gymnasium space as plain JSON-able data (the spaces pgrad's policies support)."""
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": [_number(v) for v in space.low.ravel()],
                "high": [_number(v) for v in space.high.ravel()]}
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(),
                "start": space.start.tolist(), "dtype": str(space.dtype)}
    if isinstance(space, gym.spaces.MultiBinary):
        n = space.n
        return {"type": "MultiBinary", "n": int(n) if np.isscalar(n) else np.asarray(n).tolist()}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_dict(v) for k, v in space.items()}}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_dict(v) for v in space]}
    raise PgradError(f"cannot save a space of type {type(space).__name__}")


class _Budget:
    """What a space read from a file may still use: elements and subspaces."""

    def __init__(self) -> None:
        self.elements = MAX_SPACE_ELEMENTS
        self.spaces = MAX_SUBSPACES

    def take(self, elements: int, what: str) -> None:
        self.spaces -= 1
        self.elements -= elements
        if self.spaces < 0 or self.elements < 0:
            raise PgradError(f"{what} is too large (more than {MAX_SPACE_ELEMENTS} elements or "
                             f"{MAX_SUBSPACES} subspaces)")


def space_from_dict(data: Any, _depth: int = 0, _budget: _Budget | None = None) -> gym.Space:
    """Inverse of :func:`space_to_dict`, for untrusted data: every size is checked (see
    ``MAX_SPACE_*``) before an array is made."""
    budget = _Budget() if _budget is None else _budget
    if _depth > MAX_SPACE_DEPTH:
        raise PgradError(f"space nested more than {MAX_SPACE_DEPTH} deep")
    if not isinstance(data, dict):
        raise PgradError(f"a space must be an object, got {type(data).__name__}")
    kind = data.get("type")
    if kind in ("Dict", "Tuple"):
        children = data.get("spaces")
        budget.take(0, f"{kind} space")
        if kind == "Dict":
            if not isinstance(children, dict) or not all(
                    isinstance(k, str) and len(k) <= 256 for k in children):
                raise PgradError("a Dict space needs an object of named spaces")
            return gym.spaces.Dict({k: space_from_dict(v, _depth + 1, budget)
                                    for k, v in children.items()})
        if not isinstance(children, list):
            raise PgradError("a Tuple space needs a list of spaces")
        return gym.spaces.Tuple([space_from_dict(v, _depth + 1, budget) for v in children])
    if kind == "Box":
        shape = _int_list(data.get("shape"), "Box shape", 1, MAX_SPACE_ELEMENTS, max_len=8)
        size = math.prod(shape)
        budget.take(size, "Box space")
        dtype = _choice(data.get("dtype"), _BOX_DTYPES, "Box dtype")
        bounds = [_bounds(data.get(key), size, f"Box {key}") for key in ("low", "high")]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            low, high = (np.array(b, dtype=np.float64).astype(dtype).reshape(shape)
                         for b in bounds)
            return gym.spaces.Box(low, high, shape=tuple(shape), dtype=np.dtype(dtype))
    if kind == "Discrete":
        n = _int(data.get("n"), "Discrete n", 1, MAX_SPACE_ELEMENTS)
        budget.take(n, "Discrete space")
        return gym.spaces.Discrete(n, start=_int(data.get("start", 0), "Discrete start",
                                                 -MAX_INT, MAX_INT))
    if kind == "MultiDiscrete":
        nvec, shape = _nested_ints(data.get("nvec"), "MultiDiscrete nvec", 1, MAX_SPACE_ELEMENTS)
        start, start_shape = _nested_ints(data.get("start"), "MultiDiscrete start",
                                          -MAX_INT, MAX_INT)
        if start_shape != shape or not nvec:
            raise PgradError("MultiDiscrete start and nvec must be non-empty and of one shape")
        budget.take(max(len(nvec) * max(nvec), sum(nvec)), "MultiDiscrete space")
        dtype = _choice(data.get("dtype"), _INT_DTYPES, "MultiDiscrete dtype")
        return gym.spaces.MultiDiscrete(np.array(nvec).reshape(shape), dtype=np.dtype(dtype),
                                        start=np.array(start).reshape(shape))
    if kind == "MultiBinary":
        n = data.get("n")
        shape = ([_int(n, "MultiBinary n", 1, MAX_SPACE_ELEMENTS)] if not isinstance(n, list)
                 else _int_list(n, "MultiBinary n", 1, MAX_SPACE_ELEMENTS, max_len=8))
        budget.take(math.prod(shape), "MultiBinary space")
        return gym.spaces.MultiBinary(shape[0] if not isinstance(n, list) else shape)
    raise PgradError(f"unknown space type {str(kind)[:40]!r} in checkpoint")


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise PgradError(f"{what} must be an integer in [{lo}, {hi}], got {_short(value)}")
    return value


def _int_list(value: Any, what: str, lo: int, hi: int, max_len: int) -> list[int]:
    if not isinstance(value, list) or not 1 <= len(value) <= max_len:
        raise PgradError(f"{what} must be a list of 1 to {max_len} integers, got "
                         f"{_short(value)}")
    out = [_int(v, what, lo, hi) for v in value]
    if math.prod(out) > hi:
        raise PgradError(f"{what} {_short(out)} has more than {hi} elements")
    return out


def _nested_ints(value: Any, what: str, lo: int, hi: int) -> tuple[list[int], list[int]]:
    """A rectangular nested list of ints (at most 8 levels, ``MAX_SPACE_ELEMENTS`` of them)
    → (flat values, shape)."""
    shape: list[int] = []
    level = value
    while isinstance(level, list):
        if not level or len(shape) >= 8:
            raise PgradError(f"{what} must be a non-empty array of at most 8 dimensions")
        shape.append(len(level))
        level = level[0]
    if math.prod(shape) > MAX_SPACE_ELEMENTS:
        raise PgradError(f"{what} has more than {MAX_SPACE_ELEMENTS} elements")
    flat: list[Any] = [value]
    for size in shape:
        if not all(isinstance(v, list) and len(v) == size for v in flat):
            raise PgradError(f"{what} is not a rectangular array of integers")
        flat = [x for v in flat for x in v]
    return [_int(v, what, lo, hi) for v in flat], shape


def _bounds(value: Any, size: int, what: str) -> list[float]:
    if not isinstance(value, list) or len(value) != size:
        raise PgradError(f"{what} must be a list of {size} numbers")
    out = []
    for v in value:
        if isinstance(v, str) and v in ("inf", "-inf", "nan"):
            v = float(v)
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise PgradError(f"{what} holds {_short(v)}, not a number")
        out.append(float(v))
    return out


def _choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise PgradError(f"{what} must be one of {', '.join(allowed)}, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------- save
def save(path: str | Path, state: AgentState) -> Path:
    """Write ``state`` to ``path``: a file (``.safetensors`` is added when the name has no
    suffix, as SB3 adds ``.zip``), or an existing directory, which gets ``model.safetensors``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    elif not path.suffix:
        path = path.with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)

    tensors = {f"policy.{k}": v.detach().cpu().contiguous() for k, v in state.policy.items()}
    if state.generator is not None:
        tensors["agent.generator"] = state.generator
    tensors.update({f"return_rms.{k}": v.detach().cpu() for k, v in state.return_rms.items()})
    optim_state: dict[str, dict[str, Any]] = {}
    for index, entry in state.optimizer["state"].items():
        plain = {}
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain[key] = value
        optim_state[str(index)] = plain
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": state.config.to_dict(),
        "observation_space": space_to_dict(state.observation_space),
        "action_space": space_to_dict(state.action_space),
        "optimizer": {"param_groups": state.optimizer["param_groups"], "state": optim_state},
        "num_timesteps": state.num_timesteps,
        "num_updates": state.num_updates,
        "skipped_updates": state.skipped_updates,
        "generator_device": state.generator_device,
        "torch_version": torch.__version__,
        "rollout": state.rollout,
    }
    meta["sha256"] = digest(meta, tensors)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"pgrad": json.dumps(meta)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def digest(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the metadata (without its ``sha256`` entry) and every tensor's bytes."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in meta.items() if k != "sha256"},
                        sort_keys=True).encode())
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- load
def resolve(path: str | Path) -> Path:
    """The checkpoint file for ``path``: itself, or ``path/model.safetensors`` for a run dir;
    a PgradError unless it is a regular file (a FIFO or a device is refused unopened)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        raise PgradError(f"no checkpoint at {path}: give a run directory or a .safetensors file "
                         "written by pgrad")
    safeio.check_file(path, MAX_FILE_BYTES, "checkpoint")
    return path


def load(path: str | Path) -> AgentState:
    """The :class:`AgentState` in the checkpoint at ``path`` (a file or a run directory),
    validated as the module docstring says; any failure is one PgradError."""
    try:
        return _load(path)
    except PgradError:
        raise
    except Exception as e:  # anything unforeseen in a hostile file is still one line
        raise PgradError(f"{path} is not a readable pgrad checkpoint "
                         f"({type(e).__name__}: {_first_line(e)})") from e


def _load(path: str | Path) -> AgentState:
    path = resolve(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("pgrad")
            layout = {k: f.get_slice(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
            layout = {k: (tuple(s.get_shape()), s.get_dtype()) for k, s in layout.items()}
    except Exception as e:  # safetensors raises its own errors, OSError, ValueError, ...
        raise PgradError(f"{path} is not a readable pgrad checkpoint ({_first_line(e)})") from e
    if raw is None:
        raise PgradError(f"{path} is a safetensors file but not a pgrad checkpoint "
                         "(no 'pgrad' metadata)")
    if len(raw) > MAX_METADATA_CHARS:
        raise PgradError(f"{path}: checkpoint metadata is larger than {MAX_METADATA_CHARS} "
                         "characters")
    meta = safeio.parse_json(raw, f"{path}: checkpoint metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PgradError(f"{path} is not a pgrad checkpoint")
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise PgradError(f"{path} has checkpoint format version {_short(version)}; this pgrad "
                         f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    try:
        fields = _read_fields(meta)
        params = _check_layout(fields, layout)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, PgradError):
            raise PgradError(f"{path}: {e}") from e
        raise PgradError(f"{path}: checkpoint metadata is incomplete or malformed "
                         f"({type(e).__name__}: {_first_line(e)})") from e

    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in layout}
    if version >= 2 and meta.get("sha256") != digest(meta, tensors):
        raise PgradError(f"{path} fails its integrity check (SHA-256 digest mismatch): "
                         "the file was changed or damaged after it was written")
    bad = [k for k, v in tensors.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise PgradError(f"{path} holds non-finite values (nan or inf) in {bad[0]}")
    try:
        optimizer = _optimizer_state(fields["optimizer"], tensors, params)
        generator = tensors.get("agent.generator")
        if generator is not None and fields["generator_device"] == "cpu":
            try:
                torch.Generator().set_state(generator)  # raises unless it is a CPU state
            except RuntimeError as e:
                raise PgradError(f"random generator state is malformed ({_first_line(e)})"
                                 ) from e
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        if isinstance(e, PgradError):
            raise PgradError(f"{path}: {e}") from e
        raise PgradError(f"{path}: optimizer state is malformed "
                         f"({type(e).__name__}: {_first_line(e)})") from e
    return AgentState(
        config=fields["config"], observation_space=fields["observation_space"],
        action_space=fields["action_space"],
        policy={k[len("policy."):]: v for k, v in tensors.items() if k.startswith("policy.")},
        optimizer=optimizer,
        return_rms={k[len("return_rms."):]: v for k, v in tensors.items()
                    if k.startswith("return_rms.")},
        generator=generator, generator_device=fields["generator_device"],
        num_timesteps=fields["num_timesteps"], num_updates=fields["num_updates"],
        skipped_updates=fields["skipped_updates"], rollout=fields["rollout"])


def _read_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """Every field of the metadata, type- and range-checked; nothing large is allocated."""
    fields: dict[str, Any] = {"config": Config.from_dict(meta["config"])}
    for name in ("observation_space", "action_space"):
        try:
            fields[name] = space_from_dict(meta[name])
        except PgradError as e:
            raise PgradError(f"{name}: {e}") from e
    for name in ("num_timesteps", "num_updates"):
        fields[name] = _int(meta[name], name, 0, MAX_INT)
    fields["skipped_updates"] = _int(meta.get("skipped_updates", 0), "skipped_updates",
                                     0, MAX_INT)
    device = meta.get("generator_device")
    if device is not None and (not isinstance(device, str) or len(device) > 16):
        raise PgradError(f"generator_device must be a device type, got {_short(device)}")
    fields["generator_device"] = device
    fields["optimizer"] = meta["optimizer"]
    if not isinstance(fields["optimizer"], dict):
        raise PgradError("optimizer must be an object")
    fields["rollout"] = _check_rollout(meta.get("rollout"))
    return fields


def _check_rollout(rollout: Any) -> dict[str, Any] | None:
    """The saved rollout state, checked field by field (see Collector.get_state)."""
    if rollout is None:
        return None
    if not isinstance(rollout, dict):
        raise PgradError("rollout state must be an object")
    _int(rollout["episodes"], "rollout episodes", 0, MAX_INT)
    _int(rollout["steps"], "rollout steps", 0, MAX_INT)
    for key, kind in (("episode_returns", float), ("episode_lengths", int)):
        values = rollout[key]
        if not isinstance(values, list) or len(values) > MAX_EPISODE_STATS:
            raise PgradError(f"rollout {key} must be a list of at most {MAX_EPISODE_STATS}")
        for v in values:
            if kind is int:
                _int(v, f"rollout {key}", 0, MAX_INT)
            elif not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                raise PgradError(f"rollout {key} must hold finite numbers, got {_short(v)}")
    if rollout["reset_seed"] is not None:
        _int(rollout["reset_seed"], "rollout reset_seed", 0, 2**63 - 1)
    env_rng = rollout.get("env_rng")
    if env_rng is not None:
        if not isinstance(env_rng, list) or len(env_rng) > 2**16:
            raise PgradError(f"rollout env_rng must be a list of random states, got "
                             f"{_short(env_rng)}")
        for state in env_rng:
            _check_bit_generator_state(state)
    return rollout


def _check_bit_generator_state(state: Any) -> None:
    """Raise unless ``state`` is a state NumPy's bit generator of its name accepts."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise PgradError(f"rollout env_rng holds {_short(state)}, not a NumPy random state")
    generator = getattr(np.random, name)()
    try:
        generator.state = state
        generator.random_raw()
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise PgradError(f"rollout env_rng holds a malformed {name} state "
                         f"({type(e).__name__}: {_first_line(e)[:80]})") from e


def _check_layout(fields: dict[str, Any], layout: dict[str, tuple[tuple[int, ...], str]]
                  ) -> list[tuple[tuple[int, ...], torch.dtype]]:
    """Raise unless the file's tensors (name → (shape, safetensors dtype)) are exactly those
    of the saved config's policy, Adam's state for its parameters, the return statistics
    and the generator; shapes are compared on torch's meta device (no memory) before any
    tensor is read. Returns the parameters' (shape, dtype) in the optimizer's order."""
    config = fields["config"]
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        probe = make_policy(fields["observation_space"], fields["action_space"],
                            **config.policy_kwargs)
    expected = {f"policy.{k}": (tuple(v.shape), v.dtype) for k, v in probe.state_dict().items()}
    numel = sum(math.prod(shape) for shape, _ in expected.values())
    if numel > MAX_PARAMETERS:
        raise PgradError(f"the saved config makes a policy of {numel} numbers, more than the "
                         f"{MAX_PARAMETERS} pgrad loads")
    params = [(tuple(p.shape), p.dtype) for p in probe.parameters()]
    if len(layout) > MAX_TENSORS:
        raise PgradError(f"the file holds {len(layout)} tensors, more than a checkpoint has")
    for key in sorted(layout, key=lambda k: (not k.startswith("policy."), k)):  # weights first
        shape, dtype = layout[key][0], _dtype(layout[key][1])
        if key in expected:
            want = expected[key]
        elif key.startswith("return_rms."):
            want = ((), torch.float64) if key[11:] in ("mean", "var", "count") else None
        elif key == "agent.generator":
            want = None if len(shape) != 1 or shape[0] > MAX_GENERATOR_BYTES else (
                shape, torch.uint8)
        else:
            want = _optim_layout(key, params)
        if want is None:
            raise PgradError(f"unexpected tensor {key[:80]!r}: weights do not match the "
                             "saved config")
        if (shape, dtype) != want:
            what = ("weights do not match the saved config" if key.startswith("policy.")
                    else f"tensor {key} is malformed")
            raise PgradError(f"{what} ({key}: saved {list(shape)} {dtype}, expected "
                             f"{list(want[0])} {want[1]})")
    missing = sorted(set(expected) - set(layout))
    if missing:
        raise PgradError(f"weights do not match the saved config ({missing[0]} is missing)")
    return params


def _optim_layout(key: str, params: list[tuple[tuple[int, ...], torch.dtype]]
                  ) -> tuple[tuple[int, ...], torch.dtype] | None:
    """The (shape, dtype) Adam's tensor ``optim.<index>.<name>`` must have; None if none."""
    prefix, _, rest = key.partition(".")
    index, _, name = rest.partition(".")
    if prefix != "optim" or not index.isdigit() or int(index) >= len(params):
        return None
    if name == "step":
        return (), torch.float32
    return params[int(index)] if name in _OPTIM_TENSORS else None


def _dtype(name: str) -> torch.dtype | str:
    """A torch dtype for safetensors' dtype name (the name itself if torch has none)."""
    return {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32,
            "F64": torch.float64, "U8": torch.uint8, "I64": torch.int64, "I32": torch.int32,
            "BOOL": torch.bool}.get(name, name)


def _optimizer_state(optim: dict[str, Any], tensors: dict[str, torch.Tensor],
                     params: list[tuple[tuple[int, ...], torch.dtype]]) -> dict[str, Any]:
    """Adam's ``state_dict`` from the metadata and the ``optim.*`` tensors, checked against
    the parameters and sane ranges (a negative learning rate would climb the loss)."""
    groups = optim["param_groups"]
    if not isinstance(groups, list) or not 1 <= len(groups) <= 16:
        raise PgradError("optimizer param_groups must be a list of 1 to 16 groups")
    covered: list[int] = []
    for group in groups:
        covered += _check_param_group(group)
    if sorted(covered) != list(range(len(params))):
        raise PgradError(f"optimizer param_groups name parameters {_short(covered)}, the "
                         f"model has {len(params)}")
    plain_state = optim["state"]
    if not isinstance(plain_state, dict):
        raise PgradError("optimizer state must be an object")
    state: dict[int, dict[str, Any]] = {}
    for index, plain in plain_state.items():
        if not (isinstance(index, str) and index.isdigit() and int(index) < len(params)
                and isinstance(plain, dict)):
            raise PgradError(f"optimizer state names parameter {_short(index)}, the model has "
                             f"{len(params)}")
        entry: dict[str, Any] = {}
        for key, value in plain.items():  # torch < 2 kept the step count as a number
            if key != "step" or not isinstance(value, int | float) or isinstance(value, bool) \
                    or not 0 <= value <= MAX_INT:
                raise PgradError(f"optimizer state {index}.{_short(key)} is not a step count")
            entry[key] = value
        prefix = f"optim.{index}."
        entry.update({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        state[int(index)] = entry
    for index, entry in state.items():
        if "exp_avg_sq" in entry and bool((entry["exp_avg_sq"] < 0).any()):
            raise PgradError(f"optimizer state {index}.exp_avg_sq is negative")
        step = entry.get("step")
        if torch.is_tensor(step) and not 0 <= float(step) <= MAX_INT:
            raise PgradError(f"optimizer state {index}.step is not a step count")
    orphans = {int(k.split(".")[1]) for k in tensors if k.startswith("optim.")} - set(state)
    if orphans:
        raise PgradError(f"optimizer tensors of parameter {min(orphans)} have no state entry")
    return {"state": state, "param_groups": groups}


def _check_param_group(group: Any) -> list[int]:
    """Raise unless ``group`` is an Adam parameter group with sane values; its params."""
    if not isinstance(group, dict):
        raise PgradError("an optimizer param group must be an object")
    for key in ("lr", "betas", "eps", "params"):
        if key not in group:
            raise PgradError(f"an optimizer param group lacks {key!r}")

    def number(key: str, lo: float, hi: float, lo_open: bool, hi_open: bool) -> None:
        v = group[key]
        ok = (isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
              and (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi))
        if not ok:
            raise PgradError(f"optimizer {key} must be in {'(' if lo_open else '['}{lo:g}, "
                             f"{hi:g}{')' if hi_open else ']'}, got {_short(v)}")

    for key, value in group.items():
        if key == "lr":
            number("lr", 0.0, 1e3, True, False)
        elif key == "eps":
            number("eps", 0.0, 1.0, True, False)
        elif key == "weight_decay":
            number("weight_decay", 0.0, 1e3, False, False)
        elif key == "betas":
            if not isinstance(value, list) or len(value) != 2:
                raise PgradError(f"optimizer betas must be two numbers, got {_short(value)}")
            for beta in value:
                if not (isinstance(beta, int | float) and not isinstance(beta, bool)
                        and 0 <= beta < 1):
                    raise PgradError(f"optimizer betas must be in [0, 1), got {_short(value)}")
        elif key in ("amsgrad", "decoupled_weight_decay"):
            if not isinstance(value, bool):
                raise PgradError(f"optimizer {key} must be true or false, got {_short(value)}")
        elif key in ("maximize", "capturable", "differentiable", "fused", "foreach"):
            allowed = (None, False, True) if key == "foreach" else (None, False)
            if value not in allowed or (value is not None and not isinstance(value, bool)):
                raise PgradError(f"optimizer {key} must be {' or '.join(map(str, allowed))}, "
                                 f"got {_short(value)}")
        elif key != "params":
            raise PgradError(f"unknown optimizer setting {key[:40]!r}")
    params = group["params"]
    if not isinstance(params, list) or len(params) > MAX_TENSORS or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in params):
        raise PgradError("optimizer params must be a list of parameter indices")
    return params


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__
