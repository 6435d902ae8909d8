"""A tiny pixel environment for fast tests and quick learning checks.

A green dot moves on a dark background towards a red target. Each step pays
``max(0, 1 - distance / reward_radius)``, so the reward is 1 on the target and
fades to 0 a third of the arena away. Positions are drawn anew each episode.
Two tasks:

- ``reach``: continuous actions in [-1, 1]^2, a velocity of up to ``speed``
  per axis;
- ``reach_discrete``: five one-hot actions (stay, up, down, left, right)
  moving by ``speed``.

``BEST_SCORE`` and ``RANDOM_SCORE`` give the mean episode score of a greedy
policy and of uniform random actions, at the default settings (50 steps per
episode, no action repeat); ``scripted_scores`` measures them for others.
"""

from __future__ import annotations

import numpy as np

from envs.base import Env, Obs, check_action, continuous_space, discrete_space, image_space, make_obs

TASKS = ("reach", "reach_discrete")

# Measured with scripted_scores(task, episodes=1000, seed=0) at the defaults.
BEST_SCORE = {"reach": 48.0, "reach_discrete": 41.2}
RANDOM_SCORE = {"reach": 4.1, "reach_discrete": 4.1}

_MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], np.float32)
_BACKGROUND = np.array([20, 20, 40], np.uint8)
_TARGET_COLOR = np.array([230, 60, 60], np.uint8)
_AGENT_COLOR = np.array([80, 230, 80], np.uint8)


class ToyReach(Env):
    """Move a dot to a target, seen from ``size = (height, width)`` pixels.

    Observations: ``image`` uint8 (height, width, 3). Actions: float32 (2,) in
    [-1, 1] for ``reach``, one-hot float32 (5,) for ``reach_discrete``.
    The environment never ends an episode itself; use a TimeLimit.
    """

    def __init__(
        self,
        task: str = "reach",
        size: int | tuple[int, int] = (64, 64),
        seed: int = 0,
        speed: float = 0.1,
        reward_radius: float = 0.3,
    ):
        if task not in TASKS:
            raise ValueError(f"Unknown toy task {task!r}; valid tasks: {', '.join(TASKS)}")
        self.task = task
        self.size = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
        self.speed = float(speed)
        self.reward_radius = float(reward_radius)
        self.act_space = discrete_space(len(_MOVES)) if task == "reach_discrete" else continuous_space(2)
        self.obs_space = {"image": image_space(*self.size)}
        self._rng = np.random.default_rng(seed)
        self._agent = np.zeros(2, np.float32)
        self._target = np.zeros(2, np.float32)
        self._background = np.broadcast_to(_BACKGROUND, (*self.size, 3)).copy()
        # Dots of at least 5x5 pixels: smaller ones are too little of the image
        # for a small world model's reconstruction loss to notice early on.
        self._dot_radius = max(2, round(min(self.size) / 16))

    def reset(self) -> Obs:
        self._agent = self._rng.uniform(0.1, 0.9, 2).astype(np.float32)
        self._target = self._rng.uniform(0.1, 0.9, 2).astype(np.float32)
        return make_obs({"image": self._render()}, is_first=True)

    def step(self, action: np.ndarray, observe: bool = True) -> Obs:
        checked = check_action(action, self.act_space)
        velocity = _MOVES[int(checked)] if self.act_space.discrete else checked
        self._agent = np.clip(self._agent + self.speed * velocity, 0.0, 1.0)
        values = {"image": self._render()} if observe else {}
        return make_obs(values, reward=self._reward())

    def greedy_action(self) -> np.ndarray:
        """The action of the best policy: head straight for the target."""
        offset = self._target - self._agent
        if not self.act_space.discrete:
            return np.clip(offset / self.speed, -1, 1).astype(np.float32)
        axis = int(np.argmax(np.abs(offset)))
        if abs(offset[axis]) < self.speed / 2:
            choice = 0
        else:
            choice = 1 + 2 * axis + int(offset[axis] > 0)
        return np.eye(len(_MOVES), dtype=np.float32)[choice]

    def _reward(self) -> float:
        distance = float(np.linalg.norm(self._agent - self._target))
        return max(0.0, 1.0 - distance / self.reward_radius)

    def _render(self) -> np.ndarray:
        image = self._background.copy()
        self._draw(image, self._target, self._dot_radius + 1, _TARGET_COLOR)
        self._draw(image, self._agent, self._dot_radius, _AGENT_COLOR)
        return image

    def _draw(self, image: np.ndarray, position: np.ndarray, radius: int, color: np.ndarray) -> None:
        """Paint a filled square of half-width ``radius`` centred on ``position``."""
        row, col = np.round(position * (np.array(self.size) - 1)).astype(int)
        image[max(0, row - radius) : row + radius + 1, max(0, col - radius) : col + radius + 1] = color


def scripted_scores(task: str, episodes: int = 100, length: int = 50, seed: int = 0) -> tuple[float, float]:
    """Mean episode score of the greedy policy and of uniform random actions.

    Returns ``(best, random)`` over ``episodes`` episodes of ``length`` steps.
    """
    scores = []
    for greedy in (True, False):
        env = ToyReach(task, size=16, seed=seed)
        rng = np.random.default_rng(seed)
        total = 0.0
        for _ in range(episodes):
            env.reset()
            for _ in range(length):
                action = env.greedy_action() if greedy else env.act_space.sample(rng)
                total += float(env.step(action, observe=False)["reward"])
        scores.append(total / episodes)
    return scores[0], scores[1]
