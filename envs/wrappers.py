"""Wrappers that every suite composes: action repeat, time limit, image resizing.

Order used by ``make_env``: adapter -> TimeLimit (counts frames) ->
ActionRepeat -> ResizeImage. The time limit sits inside the action repeat so
that it counts environment frames exactly.
"""

from __future__ import annotations

import numpy as np

from envs.base import Env, Obs, Space, Wrapper, image_space


class ActionRepeat(Wrapper):
    """Repeat each action for ``repeat`` frames and sum the rewards.

    Only the last frame is rendered. With ``max_pool=True`` (the Atari
    protocol) the image is the pixel-wise maximum of the last two frames, which
    removes the flicker of sprites drawn on alternate frames. Stops early when
    the episode ends.
    """

    def __init__(self, env: Env, repeat: int, max_pool: bool = False):
        super().__init__(env)
        if repeat < 1:
            raise ValueError(f"action_repeat must be at least 1, got {repeat}")
        self.repeat = int(repeat)
        self.max_pool = max_pool

    def step(self, action: np.ndarray, observe: bool = True) -> Obs:
        observed_frames = 2 if self.max_pool else 1
        reward = np.float32(0.0)
        previous_image = None
        for frame in range(self.repeat):
            frame_observed = observe and frame >= self.repeat - observed_frames
            obs = self.env.step(action, frame_observed)
            reward += obs["reward"]
            if obs["is_last"]:
                break
            if frame < self.repeat - 1:
                previous_image = obs.get("image") if frame_observed else None
        if self.max_pool and previous_image is not None and "image" in obs:
            obs = dict(obs, image=np.maximum(previous_image, obs["image"]))
        return dict(obs, reward=np.asarray(reward, np.float32))


class TimeLimit(Wrapper):
    """End the episode after ``limit`` steps of the wrapped environment.

    The cut sets ``is_last`` but not ``is_terminal``: a time limit is not a
    terminal state. Stepping past the end without ``reset()`` is an error.
    """

    def __init__(self, env: Env, limit: int):
        super().__init__(env)
        if limit < 1:
            raise ValueError(f"time_limit must be at least 1 frame, got {limit}")
        self.limit = int(limit)
        self._steps = None

    def reset(self) -> Obs:
        self._steps = 0
        return self.env.reset()

    def step(self, action: np.ndarray, observe: bool = True) -> Obs:
        if self._steps is None:
            raise RuntimeError("The episode has ended (or never started); call reset() before step()")
        self._steps += 1
        truncate = self._steps >= self.limit
        obs = self.env.step(action, observe or truncate)
        if truncate and not obs["is_last"]:
            obs = dict(obs, is_last=np.asarray(True))
        if obs["is_last"]:
            self._steps = None
        return obs


class ResizeImage(Wrapper):
    """Resize the ``image`` key to ``(height, width)`` by area averaging.

    Area averaging (each output pixel is the mean of the input pixels it
    covers) keeps thin objects such as the Pong ball visible when shrinking.
    """

    def __init__(self, env: Env, size: tuple[int, int]):
        super().__init__(env)
        if "image" not in env.obs_space:
            raise ValueError(f"ResizeImage needs an 'image' key; the observation has {sorted(env.obs_space)}")
        self.size = (int(size[0]), int(size[1]))
        if min(self.size) < 1:
            raise ValueError(f"size must be positive (height, width), got {size}")

    @property
    def obs_space(self) -> dict[str, Space]:
        spaces = dict(self.env.obs_space)
        spaces["image"] = image_space(*self.size, spaces["image"].shape[-1])
        return spaces

    def reset(self) -> Obs:
        return self._resize(self.env.reset())

    def step(self, action: np.ndarray, observe: bool = True) -> Obs:
        return self._resize(self.env.step(action, observe))

    def _resize(self, obs: Obs) -> Obs:
        if "image" in obs:
            obs = dict(obs, image=resize_area(obs["image"], self.size))
        return obs


def resize_area(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-resize a uint8 ``(H, W, C)`` image to ``(size[0], size[1], C)``, C in {1, 3}."""
    from PIL import Image

    if image.shape[:2] == tuple(size):
        return image
    if image.shape[-1] not in (1, 3):
        raise ValueError(f"Can resize images with 1 or 3 channels, got shape {image.shape}")
    # Pillow's box filter is exact area averaging, single-threaded C; BLAS-based
    # resizing stalls when its threads compete with training for the cores.
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    resized = np.asarray(picture.resize((size[1], size[0]), Image.Resampling.BOX))
    return resized.reshape(size[0], size[1], image.shape[-1])
