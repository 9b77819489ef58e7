"""Checkpoints: one ``.safetensors`` file; tensors in safetensors, everything else JSON.

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

Running normalisation statistics are saved as tensors: the observation statistics
(``normalize_obs``) inside the policy's ``state_dict``, the return statistics
(``scale_rewards``) under ``return_rms.``; advantages are normalised per batch and need none.

Loading never unpickles anything: safetensors holds raw tensor bytes, JSON holds data.
Files are written atomically: a temporary file in the same folder, flushed and fsynced,
then renamed over the target (and the folder fsynced), so a crash at any moment leaves
either the complete old file or the complete new one, never a mixture. Loading checks the
digest, so a file changed after it was written (a flipped bit, an edited number) is
refused; the digest is a check of integrity, not a signature: whoever can write the file
can recompute it. Weights that are not finite are refused too, and so are weights whose
shapes differ from those the saved config gives (compared before anything is allocated).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import gymnasium as gym
import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from pgrad.config import Config
from pgrad.envs import env_available
from pgrad.errors import PgradError

if TYPE_CHECKING:
    from pgrad.agent import Reinforce

__all__ = ["FORMAT", "FORMAT_VERSION", "MODEL_FILE", "load", "resolve", "save"]

FORMAT = "pgrad-checkpoint"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 1 files (no digest, no rollout state) still load; they resume less exactly."""
MODEL_FILE = "model.safetensors"
AgentT = TypeVar("AgentT", bound="Reinforce")


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


def space_from_dict(data: dict[str, Any]) -> gym.Space:
    """Inverse of :func:`space_to_dict`."""
    kind = data.get("type")
    if kind == "Box":
        shape = tuple(int(s) for s in data["shape"])
        low = np.array([float(v) for v in data["low"]], dtype=data["dtype"]).reshape(shape)
        high = np.array([float(v) for v in data["high"]], dtype=data["dtype"]).reshape(shape)
        return gym.spaces.Box(low, high, shape=shape, dtype=np.dtype(data["dtype"]))
    if kind == "Discrete":
        return gym.spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(np.array(data["nvec"]), dtype=np.dtype(data["dtype"]),
                                        start=np.array(data["start"]))
    if kind == "MultiBinary":
        n = data["n"]
        return gym.spaces.MultiBinary(int(n) if isinstance(n, int) else [int(k) for k in n])
    if kind == "Dict":
        return gym.spaces.Dict({k: space_from_dict(v) for k, v in data["spaces"].items()})
    if kind == "Tuple":
        return gym.spaces.Tuple([space_from_dict(v) for v in data["spaces"]])
    raise PgradError(f"unknown space type {kind!r} in checkpoint")


# ---------------------------------------------------------------------- save
def save(path: str | Path, agent: Reinforce) -> Path:
    """Write ``agent`` to ``path``: a file (``.safetensors`` is added when the name has no
    suffix, as SB3 adds ``.zip``), or an existing directory, which gets ``model.safetensors``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    elif not path.suffix:
        path = path.with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)

    tensors = {f"policy.{k}": v.detach().cpu().contiguous()
               for k, v in agent.policy.state_dict().items()}
    tensors["agent.generator"] = agent.generator.get_state()
    tensors.update({f"return_rms.{k}": v.detach().cpu()
                    for k, v in agent.return_rms.state_dict().items()})
    optim = agent.optimizer.state_dict()
    optim_state: dict[str, dict[str, Any]] = {}
    for index, state in optim["state"].items():
        plain = {}
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain[key] = value
        optim_state[str(index)] = plain
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": agent.config.to_dict(),
        "observation_space": space_to_dict(agent.observation_space),
        "action_space": space_to_dict(agent.action_space),
        "optimizer": {"param_groups": optim["param_groups"], "state": optim_state},
        "num_timesteps": agent.num_timesteps,
        "num_updates": agent.num_updates,
        "skipped_updates": agent.skipped_updates,
        "generator_device": agent.generator.device.type,
        "torch_version": torch.__version__,
        "rollout": (agent.collector.get_state() if agent.collector is not None
                    else agent.resume_state),
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
    """The checkpoint file for ``path``: itself, or ``path/model.safetensors`` for a run dir."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise PgradError(f"no checkpoint at {path}: give a run directory or a .safetensors file "
                         "written by pgrad")
    return path


def read(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a checkpoint file, validated; never unpickles."""
    path = resolve(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("pgrad")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as e:
        raise PgradError(f"{path} is not a readable pgrad checkpoint ({_first_line(e)})") from e
    if raw is None:
        raise PgradError(f"{path} is a safetensors file but not a pgrad checkpoint "
                         "(no 'pgrad' metadata)")
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as e:  # bad JSON, a 10⁵-digit number, deep nesting
        raise PgradError(f"{path}: checkpoint metadata is not valid JSON "
                         f"({type(e).__name__}: {_first_line(e)[:200]})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PgradError(f"{path} is not a pgrad checkpoint")
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise PgradError(f"{path} has checkpoint format version {version!r}; this pgrad reads "
                         f"versions {', '.join(map(str, READABLE_VERSIONS))}")
    if version >= 2:
        try:
            ok = meta.get("sha256") == digest(meta, tensors)
        except (TypeError, ValueError, RuntimeError):
            ok = False
        if not ok:
            raise PgradError(f"{path} fails its integrity check (SHA-256 digest mismatch): "
                             "the file was changed or damaged after it was written")
    bad = [k for k, v in tensors.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise PgradError(f"{path} holds non-finite values (nan or inf) in {bad[0]}")
    return meta, tensors


def load(cls: type[AgentT], path: str | Path, *, env: Any = None,
         device: str | None = None) -> AgentT:
    """Rebuild an agent of class ``cls`` from a checkpoint (see the module docstring)."""
    meta, tensors = read(path)
    try:
        config = Config.from_dict(meta["config"])
        if device is not None:
            config = Config.from_dict({**config.to_dict(), "device": device})
        spaces = (space_from_dict(meta["observation_space"]),
                  space_from_dict(meta["action_space"]))
        optim_meta = meta["optimizer"]
        counters = int(meta["num_timesteps"]), int(meta["num_updates"])
        rollout = meta.get("rollout")
        if rollout is not None and not isinstance(rollout, dict):
            raise TypeError("rollout state is not an object")
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, PgradError):
            raise
        raise PgradError(f"{path}: checkpoint metadata is incomplete or malformed "
                         f"({type(e).__name__}: {_first_line(e)})") from e
    _check_shapes(path, config, spaces, tensors)
    if env is None and config.env_id is not None and env_available(config.env_id,
                                                                   config.env_packages):
        env = config.env_id
    agent = cls(env, config=config, _spaces=spaces)

    policy_state = {k[len("policy."):]: v for k, v in tensors.items() if k.startswith("policy.")}
    try:
        agent.policy.load_state_dict(policy_state, strict=True)
    except RuntimeError as e:
        raise PgradError(f"{path}: weights do not match the saved config "
                         f"({_first_line(e)})") from e
    return_rms = {k[len("return_rms."):]: v for k, v in tensors.items()
                  if k.startswith("return_rms.")}
    if return_rms:
        try:
            agent.return_rms.load_state_dict(return_rms, strict=True)
        except RuntimeError as e:
            raise PgradError(f"{path}: return statistics are malformed "
                             f"({_first_line(e)})") from e
    try:
        state: dict[int, dict[str, Any]] = {}
        for index, plain in optim_meta["state"].items():
            entry = dict(plain)
            prefix = f"optim.{index}."
            entry.update({k[len(prefix):]: v for k, v in tensors.items()
                          if k.startswith(prefix)})
            state[int(index)] = entry
        agent.optimizer.load_state_dict({"state": state,
                                         "param_groups": optim_meta["param_groups"]})
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError) as e:
        raise PgradError(f"{path}: optimizer state does not match the model "
                         f"({_first_line(e)})") from e
    agent.num_timesteps, agent.num_updates = counters
    skipped = meta.get("skipped_updates", 0)
    agent.skipped_updates = skipped if isinstance(skipped, int) and skipped >= 0 else 0
    agent.resume_state = rollout
    # A generator's state only fits a generator of the same device type; an agent loaded
    # onto another device keeps the generator seeded from config.seed.
    if "agent.generator" in tensors and meta.get("generator_device") == agent.device.type:
        try:
            agent.generator.set_state(tensors["agent.generator"])
        except RuntimeError as e:
            raise PgradError(f"{path}: random generator state is malformed "
                             f"({_first_line(e)})") from e
    return agent


def _check_shapes(path: str | Path, config: Config, spaces: tuple[gym.Space, gym.Space],
                  tensors: dict[str, torch.Tensor]) -> None:
    """Raise unless the saved weights have the shapes the saved config gives, checked on
    torch's meta device (no memory), before a policy of absurd size could be allocated."""
    from pgrad.policies import make_policy

    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        probe = make_policy(*spaces, **config.policy_kwargs)
    expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    saved = {k[len("policy."):]: tuple(v.shape) for k, v in tensors.items()
             if k.startswith("policy.")}
    if expected != saved:
        wrong = sorted(k for k in expected.keys() | saved.keys()
                       if expected.get(k) != saved.get(k))
        raise PgradError(f"{path}: weights do not match the saved config (first difference: "
                         f"{wrong[0]}: saved {saved.get(wrong[0])}, config gives "
                         f"{expected.get(wrong[0])})")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
