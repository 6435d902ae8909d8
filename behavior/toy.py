"""A hand-built latent system whose optimal behaviour is known.

A point in the plane moves by the (clipped) action, ``x' = x + clip(a)``, or
for discrete actions by ``step`` along one of five directions (right, left,
up, down, stay). The reward of reaching ``x'`` is ``-|x' - goal|^2``. Moving
straight towards the goal at full speed minimises the distance at every step
at once, so it is the optimal policy for any horizon and discount. Tests and
benchmarks of behaviour learning and planning use it as the world model.

The feature is the position plus a constant 1: bias-free layers followed by
LayerNorm (DreamerV3's MLPs) are blind to the scale of their input, so
without it the positions (0.5, 0) and (1, 0) would look the same.
"""

from __future__ import annotations

import torch
from torch import Tensor

from behavior.imagine import State

DIRECTIONS = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0), (0.0, 0.0))


class PointMass:
    """Implements :class:`behavior.imagine.LatentDynamics`; features are (B, 3): position and 1."""

    feat_dim = 3

    def __init__(self, goal: tuple[float, float], discrete: bool = False, step: float = 0.5, device="cpu"):
        self.goal = torch.tensor(goal, dtype=torch.float32, device=device)
        self.discrete, self.step = discrete, step
        self.directions = step * torch.tensor(DIRECTIONS, device=device)
        self.action_dim = len(DIRECTIONS) if discrete else 2

    def initial(self, batch_size: int) -> State:
        return {"x": torch.zeros(batch_size, 2, device=self.goal.device)}

    def img_step(self, state: State, action: Tensor) -> State:
        move = action @ self.directions if self.discrete else action.clamp(-1, 1)
        return {"x": state["x"] + move}

    def feat(self, state: State) -> Tensor:
        return torch.cat([state["x"], torch.ones_like(state["x"][:, :1])], -1)

    def reward(self, feat: Tensor) -> Tensor:
        return -((feat[..., :2] - self.goal) ** 2).sum(-1)

    def cont(self, feat: Tensor) -> Tensor:
        return torch.ones(feat.shape[:-1], device=feat.device)

    def best_action(self, x: Tensor) -> Tensor:
        """(B, A) optimal actions in positions (B, 2): continuous values or one-hot."""
        if not self.discrete:
            return (self.goal - x).clamp(-1, 1)
        distance = ((x[:, None] + self.directions - self.goal) ** 2).sum(-1)
        return torch.nn.functional.one_hot(distance.argmin(-1), len(DIRECTIONS)).float()
