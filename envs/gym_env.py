"""Gymnasium adapter: any registered id, from its vector observation or from pixels."""

from __future__ import annotations

import numpy as np

from envs.base import RESERVED_KEYS, Env, Obs, Space, check_action, continuous_space, discrete_space, make_obs, vector_space


def task_names() -> list[str]:
    """All ids registered with Gymnasium (after importing its default modules)."""
    import gymnasium

    return sorted(gymnasium.registry)


class GymEnv(Env):
    """One Gymnasium environment.

    Observations: with ``image=True``, ``image`` uint8 (H, W, 3) from
    ``render_mode="rgb_array"`` at the environment's native size (make_env adds
    the resize); otherwise the observation as float32 vector keys: a Box gives
    ``vector`` (flattened; a uint8 Box of shape (H, W, C) gives ``image``), a
    Discrete gives a one-hot ``vector``, a Dict gives one key per entry. Actions: a Box becomes float32 (A,) in [-1, 1] rescaled
    to finite native bounds; a Discrete(n) becomes one-hot float32 (n,).

    ``terminated`` sets ``is_terminal``; ``truncated`` sets ``is_last`` only.
    Gymnasium's own time limit stays in force when the registration has one.
    """

    def __init__(self, task: str, seed: int = 0, image: bool = False):
        import gymnasium

        valid = task_names()
        if task not in valid and ":" not in task:
            raise ValueError(f"Unknown Gymnasium id {task!r}; registered ids: {', '.join(valid)}")
        self._env = gymnasium.make(task, render_mode="rgb_array" if image else None)
        self.image = image
        self._seed = seed
        self._action = _action_adapter(self._env.action_space, task)
        self.act_space = self._action.space
        if image:
            self._env.reset(seed=seed)
            self._seed = None
            frame = np.asarray(self._env.render())
            self.obs_space = {"image": Space(frame.shape, np.uint8, 0, 255)}
        else:
            self._keys = _observation_adapter(self._env.observation_space, task)
            self.obs_space = {key: out_space for key, (out_space, _) in self._keys.items()}

    def reset(self) -> Obs:
        if self._seed is not None:
            observation, _ = self._env.reset(seed=self._seed)
            self._seed = None
        else:
            observation, _ = self._env.reset()
        return make_obs(self._values(observation, observe=True), is_first=True)

    def step(self, action: np.ndarray, observe: bool = True) -> Obs:
        native = self._action.to_native(check_action(action, self.act_space))
        observation, reward, terminated, truncated, _ = self._env.step(native)
        return make_obs(
            self._values(observation, observe or terminated or truncated),
            reward=float(reward),
            is_last=bool(truncated),
            is_terminal=bool(terminated),
        )

    def close(self) -> None:
        self._env.close()

    def _values(self, observation, observe: bool) -> dict[str, np.ndarray]:
        if self.image:
            return {"image": np.asarray(self._env.render(), np.uint8)} if observe else {}
        return {key: convert(observation) for key, (_, convert) in self._keys.items()}


class _ActionAdapter:
    def __init__(self, space: Space, to_native):
        self.space = space
        self.to_native = to_native


def _action_adapter(space, task: str) -> _ActionAdapter:
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return _ActionAdapter(discrete_space(int(space.n)), lambda index: int(space.start + index))
    if isinstance(space, spaces.Box):
        low = space.low.astype(np.float32)
        high = space.high.astype(np.float32)
        bounded = np.isfinite(low) & np.isfinite(high)

        def to_native(action):
            scaled = low + (action.reshape(low.shape) + 1) / 2 * (high - low)
            return np.where(bounded, scaled, action.reshape(low.shape)).astype(space.dtype)

        return _ActionAdapter(continuous_space(int(np.prod(space.shape))), to_native)
    raise ValueError(f"{task}: unsupported action space {space}; supported: Box, Discrete")


def _observation_adapter(space, task: str) -> dict:
    """Map a Gymnasium observation space to ``{key: (Space, convert)}``."""
    from gymnasium import spaces

    if not isinstance(space, spaces.Dict):
        return {"image" if _is_image(space) else "vector": _entry(space, task)}
    adapters = {}
    for name, subspace in space.spaces.items():
        if name in RESERVED_KEYS or (name == "image" and not _is_image(subspace)):
            raise ValueError(f"{task}: observation key {name!r} collides with a reserved key")
        out_space, convert = _entry(subspace, task)
        adapters[name] = (out_space, lambda obs, name=name, convert=convert: convert(obs[name]))
    return adapters


def _is_image(space) -> bool:
    from gymnasium import spaces

    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def _entry(space, task: str):
    """(Space, convert) for one Box or Discrete observation."""
    from gymnasium import spaces

    if _is_image(space):
        return Space(space.shape, np.uint8, 0, 255), lambda obs: np.asarray(obs, np.uint8)
    if isinstance(space, spaces.Box):
        size = int(np.prod(space.shape))
        return vector_space(size), lambda obs: np.asarray(obs, np.float32).reshape(-1)
    if isinstance(space, spaces.Discrete):
        eye = np.eye(int(space.n), dtype=np.float32)
        return vector_space(int(space.n), 0, 1), lambda obs: eye[int(obs) - int(space.start)]
    raise ValueError(f"{task}: unsupported observation space {space}; supported: Box, Discrete, Dict of those")
