"""Training on your own environment, as docs/environments.md describes it.

This module plays the part of ``mypackage.envs``: it defines a Gymnasium
environment and registers it on import. make_env's ``imports`` option imports
it again inside each worker process, so the id exists there too.
"""

import gymnasium
import numpy as np
import pytest

from envs import VectorEnv, env_factories, make_env

ENV_ID = "TinyCustom-v0"


class TinyCustomEnv(gymnasium.Env):
    """A counter to push up or down; the episode ends at +3 (success) or by time limit."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(-10, 10, (2,), np.float32)
        self.action_space = gymnasium.spaces.Discrete(2)
        self.position = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.position = int(self.np_random.integers(-1, 2))
        return self._obs(), {}

    def step(self, action):
        self.position += 1 if action == 1 else -1
        terminated = self.position >= 3
        return self._obs(), float(terminated), terminated, False, {}

    def render(self):
        frame = np.zeros((24, 40, 3), np.uint8)
        frame[:, : 5 * (self.position + 4)] = 255
        return frame

    def _obs(self):
        return np.array([self.position, 1.0], np.float32)


gymnasium.register(id=ENV_ID, entry_point=f"{__name__}:TinyCustomEnv", max_episode_steps=20)

UP = np.array([0.0, 1.0], np.float32)
DOWN = np.array([1.0, 0.0], np.float32)


def test_custom_env_in_process_vector_and_pixels():
    env = make_env("gym", ENV_ID, imports=[__name__])
    assert env.obs_space["vector"].shape == (2,) and env.act_space.discrete
    obs = env.reset()
    assert obs["is_first"]
    while not obs["is_last"]:
        obs = env.step(UP)
    assert obs["is_terminal"] and obs["reward"] == 1

    pixels = make_env("gym", ENV_ID, image=True, size=(16, 16))
    assert pixels.obs_space["image"].shape == (16, 16, 3)
    assert pixels.reset()["image"].shape == (16, 16, 3)


def test_custom_env_time_limit_is_not_terminal():
    env = make_env("gym", ENV_ID)
    env.reset()
    ends = [env.step(UP if step % 2 else DOWN) for step in range(20)]
    assert [bool(obs["is_last"]) for obs in ends] == [False] * 19 + [True]
    assert not ends[-1]["is_terminal"]


def test_custom_env_by_module_path_id():
    env = make_env("gym", f"{__name__}:{ENV_ID}")
    assert env.reset()["vector"].shape == (2,)


def test_custom_env_in_a_parallel_worker():
    factories = env_factories("gym", ENV_ID, num_envs=1, imports=[__name__])
    with VectorEnv(factories, parallel=True) as envs:
        assert envs.act_space.shape == (2,)
        (obs,) = envs.reset()
        assert obs["is_first"]
        for _ in range(6):
            (obs,) = envs.step([UP])
            if obs["is_last"]:
                break
        assert obs["is_terminal"]


def test_unimportable_module_fails_clearly():
    with pytest.raises(ModuleNotFoundError, match="no_such_package"):
        make_env("gym", ENV_ID, imports=["no_such_package.envs"])
