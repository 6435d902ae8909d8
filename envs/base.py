"""The environment contract shared by every adapter and wrapper.

An environment returns dict observations of numpy arrays:

- ``image``: uint8 ``(H, W, C)`` and/or vector keys: float32 ``(D,)``,
- ``reward``: float32 ``()``,
- ``is_first``, ``is_last``, ``is_terminal``: bool ``()``.

``reset()`` gives reward 0 and ``is_first`` True. ``is_last`` without
``is_terminal`` marks a time limit (the value of the next state still counts);
``is_terminal`` marks a true end of the episode.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

Obs = dict[str, np.ndarray]

RESERVED_KEYS = ("reward", "is_first", "is_last", "is_terminal")

# Agents compute actions in float32; an action a rounding error past the bound
# is still meant to be the bound.
_BOUND_TOLERANCE = 1e-4


class ActionError(ValueError):
    """A malformed action: wrong shape, not finite, out of bounds or not one-hot.

    Parallel workers re-raise it in the caller instead of treating it as a crash.
    """


@dataclasses.dataclass(frozen=True)
class Space:
    """Shape, dtype and bounds of one observation key or of the action.

    ``low`` and ``high`` are shared by all entries. A discrete action space of
    ``n`` choices has ``shape == (n,)``, dtype float32 and ``discrete=True``:
    actions are one-hot vectors.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    low: float
    high: float
    discrete: bool = False

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        if self.discrete and len(self.shape) != 1:
            raise ValueError(f"A discrete space needs shape (n,), got {self.shape}")

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random element (a one-hot vector for a discrete space).

        Unbounded entries are drawn from a standard normal instead.
        """
        if self.discrete:
            action = np.zeros(self.shape, self.dtype)
            action[rng.integers(self.shape[0])] = 1
            return action
        if np.issubdtype(self.dtype, np.integer):
            return rng.integers(int(self.low), int(self.high), self.shape, endpoint=True).astype(self.dtype)
        if not (np.isfinite(self.low) and np.isfinite(self.high)):
            return rng.standard_normal(self.shape).clip(self.low, self.high).astype(self.dtype)
        return rng.uniform(self.low, self.high, self.shape).astype(self.dtype)


def continuous_space(size: int) -> Space:
    """The action space of a continuous control task: ``size`` values in [-1, 1]."""
    return Space((size,), np.float32, -1.0, 1.0)


def discrete_space(n: int) -> Space:
    """The action space of ``n`` discrete choices, given as one-hot vectors."""
    return Space((n,), np.float32, 0.0, 1.0, discrete=True)


def image_space(height: int, width: int, channels: int = 3) -> Space:
    return Space((height, width, channels), np.uint8, 0, 255)


def vector_space(size: int, low: float = -np.inf, high: float = np.inf) -> Space:
    return Space((size,), np.float32, low, high)


def check_action(action: Any, space: Space) -> np.ndarray:
    """Validate an action against ``space``.

    Returns a float32 array for a continuous space (clipped to [-1, 1]) or the
    chosen index (an ``int``, as a 0-d array) for a discrete space. Raises
    ActionError for the wrong shape, non-finite values, values out of bounds,
    or a discrete action that is not one-hot.
    """
    array = np.asarray(action, dtype=np.float32)
    if array.shape != space.shape:
        raise ActionError(f"Expected an action of shape {space.shape}, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ActionError(f"The action holds non-finite values: {array}")
    if space.discrete:
        index = int(np.argmax(array))
        one_hot = np.zeros_like(array)
        one_hot[index] = 1
        if np.abs(array - one_hot).max() > _BOUND_TOLERANCE:
            raise ActionError(f"A discrete action must be one-hot of length {space.shape[0]}, got {array}")
        return np.asarray(index)
    if np.any(array < space.low - _BOUND_TOLERANCE) or np.any(array > space.high + _BOUND_TOLERANCE):
        raise ActionError(f"Continuous actions must lie in [{space.low}, {space.high}], got {array}")
    return np.clip(array, space.low, space.high)


def make_obs(
    values: dict[str, np.ndarray],
    reward: float = 0.0,
    is_first: bool = False,
    is_last: bool = False,
    is_terminal: bool = False,
) -> Obs:
    """Join observation values with the reward and the three episode flags."""
    obs = dict(values)
    obs["reward"] = np.asarray(reward, np.float32)
    obs["is_first"] = np.asarray(is_first, bool)
    obs["is_last"] = np.asarray(is_last or is_terminal, bool)
    obs["is_terminal"] = np.asarray(is_terminal, bool)
    return obs


class Env:
    """Base class of adapters and wrappers.

    ``step`` takes an ``observe`` flag: with ``observe=False`` the caller will
    not look at the image of this frame, so an adapter may skip rendering it
    and leave the ``image`` key out. An adapter always renders the frame that
    ends an episode. Callers outside this package use ``step(action)``.
    """

    obs_space: dict[str, Space]
    act_space: Space

    def reset(self) -> Obs:
        raise NotImplementedError

    def step(self, action: np.ndarray, observe: bool = True) -> Obs:
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def unwrapped(self) -> Env:
        """The adapter below all wrappers."""
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class Wrapper(Env):
    """Forwards everything to the wrapped environment unless overridden."""

    def __init__(self, env: Env):
        self.env = env

    @property
    def obs_space(self) -> dict[str, Space]:
        return self.env.obs_space

    @property
    def act_space(self) -> Space:
        return self.env.act_space

    def reset(self) -> Obs:
        return self.env.reset()

    def step(self, action: np.ndarray, observe: bool = True) -> Obs:
        return self.env.step(action, observe)

    def close(self) -> None:
        self.env.close()

    @property
    def unwrapped(self) -> Env:
        return self.env.unwrapped

    def __getattr__(self, name: str):
        if name.startswith("_") or name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)
