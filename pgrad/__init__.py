"""pgrad: policy-gradient reinforcement learning (REINFORCE) in PyTorch.

The parts, in the order data flows through them::

    envs → rollout → returns → losses → agent (update) → trainer (loop)

Each can be used alone: :func:`pgrad.returns.discounted_returns` and
:func:`pgrad.losses.reinforce_loss` are pure tensor functions, :func:`make_policy` builds a
policy from Gymnasium spaces, and :class:`Reinforce` wires everything together.
"""

from pgrad.agent import Reinforce
from pgrad.callbacks import Callback, CheckpointCallback, EvalCallback
from pgrad.config import Config
from pgrad.envs import LINEWALK_ID, LineWalkEnv, LineWalkVectorEnv, make_vec_env, register_envs
from pgrad.errors import PgradError
from pgrad.evaluation import EvalResult, evaluate
from pgrad.losses import advantages, reinforce_loss
from pgrad.policies import CategoricalPolicy, GaussianPolicy, Policy, make_policy
from pgrad.returns import discounted_returns, normalize
from pgrad.trainer import TrainResult, train

__version__ = "0.1.0"

register_envs()

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
