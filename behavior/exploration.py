"""Action noise and the random policy used to prefill the replay buffer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_actions(batch_size: int, action_dim: int, discrete: bool, device: torch.device | str = "cpu") -> Tensor:
    """(B, A) actions: uniform over [-1, 1], or uniformly random one-hot vectors."""
    if discrete:
        index = torch.randint(action_dim, (batch_size,), device=device)
        return F.one_hot(index, action_dim).float()
    return torch.rand(batch_size, action_dim, device=device) * 2 - 1


def add_exploration(action: Tensor, amount: float, discrete: bool) -> Tensor:
    """Perturb (B, A) actions for exploration.

    Continuous: add Gaussian noise of std ``amount`` and clip to [-1, 1].
    Discrete: replace each action, with probability ``amount``, by a uniformly
    random one-hot (epsilon-greedy).
    """
    if amount < 0:
        raise ValueError(f"exploration amount={amount} must be >= 0")
    if amount == 0:
        return action
    if not discrete:
        return (action + amount * torch.randn_like(action)).clamp(-1, 1)
    random = random_actions(action.shape[0], action.shape[-1], True, action.device).to(action.dtype)
    replace = torch.rand(action.shape[0], 1, device=action.device) < amount
    return torch.where(replace, random, action)


class RandomPolicy:
    """Uniform actions for prefill: ``policy(batch_size) -> (B, A)`` on ``device``."""

    def __init__(self, action_dim: int, discrete: bool, device: torch.device | str = "cpu"):
        self.action_dim, self.discrete, self.device = action_dim, discrete, device

    def __call__(self, batch_size: int) -> Tensor:
        return random_actions(batch_size, self.action_dim, self.discrete, self.device)
