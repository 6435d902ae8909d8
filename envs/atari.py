"""Atari 2600 adapter (Arcade Learning Environment), one emulator frame per step.

The standard protocol is assembled by make_env: sticky actions here, then a
frame skip of 4 with max-pooling over the last two frames (ActionRepeat),
a 108,000-frame time limit and a resize to 64x64.
"""

from __future__ import annotations

import re

import numpy as np

from envs.base import Env, Obs, Space, check_action, discrete_space, make_obs


def game_names() -> list[str]:
    """All ALE game names, in snake case (``pong``, ``ms_pacman``, ...)."""
    import ale_py

    return sorted(ale_py.roms.get_all_rom_ids())


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


class Atari(Env):
    """One Atari game; ``task`` is a game name (``pong``; ``Pong`` also works).

    Observations: ``image`` uint8 (210, 160, 3), or (210, 160, 1) with
    ``grayscale``. Actions: one-hot float32 (n,) over the game's minimal action
    set (or all 18 with ``full_action_space``).

    ``sticky`` is the probability that the emulator repeats the previous
    action instead of the new one. ``noops`` > 0 starts each episode with a
    random number (0 to noops) of no-op frames. With ``terminal_on_life_loss``
    a lost life ends the episode (``is_terminal``); the next reset() continues
    the same game until it is over.
    """

    def __init__(
        self,
        task: str,
        seed: int = 0,
        sticky: float = 0.25,
        grayscale: bool = False,
        full_action_space: bool = False,
        noops: int = 0,
        terminal_on_life_loss: bool = False,
    ):
        import ale_py

        game = _snake_case(task)
        valid = game_names()
        if game not in valid:
            raise ValueError(f"Unknown Atari game {task!r}; valid games: {', '.join(valid)}")
        self._env = ale_py.env.AtariEnv(
            game=game,
            obs_type="grayscale" if grayscale else "rgb",
            frameskip=1,
            repeat_action_probability=sticky,
            full_action_space=full_action_space,
            max_num_frames_per_episode=None,
        )
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self.noops = int(noops)
        self.terminal_on_life_loss = terminal_on_life_loss
        self._lives = 0
        self._resume = False
        height, width = self._env.observation_space.shape[:2]
        self.obs_space = {"image": Space((height, width, 1 if grayscale else 3), np.uint8, 0, 255)}
        self.act_space = discrete_space(int(self._env.action_space.n))

    def reset(self) -> Obs:
        if self._resume:
            # After a life loss the game goes on; one no-op frame gives the observation.
            frame, _, terminated, truncated, info = self._env.step(0)
            if terminated or truncated:
                frame, info = self._env.reset()
        else:
            frame, info = self._env.reset(seed=self._seed)
            self._seed = None
            for _ in range(self._rng.integers(self.noops, endpoint=True) if self.noops else 0):
                frame, _, terminated, truncated, info = self._env.step(0)
                if terminated or truncated:
                    frame, info = self._env.reset()
        self._lives = info["lives"]
        self._resume = False
        return make_obs({"image": self._image(frame)}, is_first=True)

    def step(self, action: np.ndarray, observe: bool = True) -> Obs:
        index = int(check_action(action, self.act_space))
        frame, reward, terminated, truncated, info = self._env.step(index)
        life_lost = info["lives"] < self._lives
        self._lives = info["lives"]
        lost_episode = self.terminal_on_life_loss and life_lost and not (terminated or truncated)
        self._resume = lost_episode
        terminal = terminated or lost_episode
        return make_obs({"image": self._image(frame)}, reward=reward, is_last=truncated, is_terminal=terminal)

    def close(self) -> None:
        self._env.close()

    @staticmethod
    def _image(frame: np.ndarray) -> np.ndarray:
        return frame[..., None] if frame.ndim == 2 else frame
