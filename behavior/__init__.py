"""Behaviour: acting well inside a learned latent model.

Pure tensor code over the :class:`LatentDynamics` interface: lambda-returns,
actor and critic, actor-critic learning in imagination (DreamerV1-V3), the
CEM planner (PlaNet) and the random prefill policy.
"""

from behavior.actor import Actor
from behavior.critic import Critic, SlowCopy
from behavior.exploration import RandomPolicy, add_exploration, random_actions
from behavior.imagination import ImaginationBehavior
from behavior.imagine import LatentDynamics, flatten_states, imagine
from behavior.planner import CEMPlanner
from behavior.return_norm import ReturnNorm
from behavior.returns import lambda_return, trajectory_weights

__all__ = [
    "Actor",
    "CEMPlanner",
    "Critic",
    "ImaginationBehavior",
    "LatentDynamics",
    "RandomPolicy",
    "ReturnNorm",
    "SlowCopy",
    "add_exploration",
    "flatten_states",
    "imagine",
    "lambda_return",
    "random_actions",
    "trajectory_weights",
]
