"""pgrad: policy-gradient reinforcement learning (REINFORCE) in PyTorch.

The parts, in the order data flows through them::

    envs → rollout → returns → losses → agent (update) → trainer (loop)

Each can be used alone: :func:`pgrad.returns.discounted_returns` and
:func:`pgrad.losses.reinforce_loss` are pure tensor functions, :func:`make_policy` builds a
policy from Gymnasium spaces, and :class:`Reinforce` wires everything together.

``import pgrad`` is cheap: each name is imported on first use, so the ``pgrad`` command
answers ``--help`` without loading torch or gymnasium. The tutorial's ``pgrad/LineWalk-v0``
is registered with Gymnasium as soon as both are imported, in either order (a one-shot
import hook waits for gymnasium), so ``gymnasium.make("pgrad/LineWalk-v0")`` works after
``import pgrad`` as it always did.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgrad.agent import Reinforce
    from pgrad.callbacks import Callback, CheckpointCallback, EvalCallback
    from pgrad.config import Config
    from pgrad.envs import (
        LINEWALK_ID,
        LineWalkEnv,
        LineWalkVectorEnv,
        make_vec_env,
        register_envs,
    )
    from pgrad.errors import PgradError
    from pgrad.evaluation import EvalResult, evaluate
    from pgrad.losses import advantages, reinforce_loss
    from pgrad.policies import CategoricalPolicy, GaussianPolicy, Policy, make_policy
    from pgrad.returns import discounted_returns, normalize
    from pgrad.trainer import TrainResult, train

__version__ = "0.1.0"

# The public names and their modules, imported on first use (PEP 562), so that
# ``import pgrad`` (and ``pgrad --help``) costs no torch or gymnasium import.
_EXPORTS = {
    "Reinforce": "pgrad.agent",
    "Callback": "pgrad.callbacks",
    "CheckpointCallback": "pgrad.callbacks",
    "EvalCallback": "pgrad.callbacks",
    "Config": "pgrad.config",
    "LINEWALK_ID": "pgrad.envs",
    "LineWalkEnv": "pgrad.envs",
    "LineWalkVectorEnv": "pgrad.envs",
    "make_vec_env": "pgrad.envs",
    "register_envs": "pgrad.envs",
    "PgradError": "pgrad.errors",
    "EvalResult": "pgrad.evaluation",
    "evaluate": "pgrad.evaluation",
    "advantages": "pgrad.losses",
    "reinforce_loss": "pgrad.losses",
    "CategoricalPolicy": "pgrad.policies",
    "GaussianPolicy": "pgrad.policies",
    "Policy": "pgrad.policies",
    "make_policy": "pgrad.policies",
    "discounted_returns": "pgrad.returns",
    "normalize": "pgrad.returns",
    "TrainResult": "pgrad.trainer",
    "train": "pgrad.trainer",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pgrad' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _RegisterWhenGymnasiumLoads(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A one-shot import hook: the first ``import gymnasium`` runs as usual, then registers
    pgrad's envs (so ``import pgrad`` itself stays free of gymnasium's import cost)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)  # found by the real finders
        if spec is not None and spec.loader is not None:
            self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__spec__.loader = module.__loader__ = self.loader  # gymnasium's own again
        self.loader.exec_module(module)
        importlib.import_module("pgrad.envs")  # registers the envs as it loads


if "gymnasium" in sys.modules:  # cheap now: make pgrad/LineWalk-v0 known to gym.make at once
    __getattr__("register_envs")()
elif not any(isinstance(f, _RegisterWhenGymnasiumLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenGymnasiumLoads())


__all__ = [
    "LINEWALK_ID",
    "Callback",
    "CategoricalPolicy",
    "CheckpointCallback",
    "Config",
    "EvalCallback",
    "EvalResult",
    "GaussianPolicy",
    "LineWalkEnv",
    "LineWalkVectorEnv",
    "PgradError",
    "Policy",
    "Reinforce",
    "TrainResult",
    "__version__",
    "advantages",
    "discounted_returns",
    "evaluate",
    "make_policy",
    "make_vec_env",
    "normalize",
    "reinforce_loss",
    "register_envs",
    "train",
]
