"""Environments behind one contract: DeepMind Control, Gymnasium, Atari and a toy task.

``make_env(suite, task, **options)`` builds one environment with its standard
wrappers; ``VectorEnv`` steps several, in worker processes if asked;
``env_factories`` gives picklable, distinctly seeded factories for it.
See ``envs.base`` for the observation and action contract.
"""

from envs.base import ActionError, Env, Obs, Space, Wrapper, check_action
from envs.registry import SUITES, env_factories, eval_factories, make_env
from envs.vector import VectorEnv

__all__ = [
    "ActionError",
    "Env",
    "Obs",
    "SUITES",
    "Space",
    "VectorEnv",
    "Wrapper",
    "check_action",
    "env_factories",
    "eval_factories",
    "make_env",
]
