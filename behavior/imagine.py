"""The latent-dynamics interface the behaviour programs against, and rollouts in it."""

from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch import Tensor

State = dict[str, Tensor]


class LatentDynamics(Protocol):
    """What behaviour learning and planning need from a world model.

    A state is a dict of tensors, each with a leading batch dim B.
    """

    def initial(self, batch_size: int) -> State:
        """The zero state for ``batch_size`` sequences."""
        ...

    def img_step(self, state: State, action: Tensor) -> State:
        """One prior step with (B, A) actions; differentiable w.r.t. both."""
        ...

    def feat(self, state: State) -> Tensor:
        """(B, F) features read by the heads, the actor and the critic."""
        ...

    def reward(self, feat: Tensor) -> Tensor:
        """(...) predicted reward for features (..., F)."""
        ...

    def cont(self, feat: Tensor) -> Tensor:
        """(...) probability in [0, 1] that the episode continues after the state."""
        ...


def flatten_states(states: State) -> State:
    """Detached start states: every (B, T, ...) entry becomes (B * T, ...).

    Imagination starts from every posterior state of a replayed batch; the
    world model's graph must not be reached from the behaviour losses.
    """
    if not states:
        raise ValueError("flatten_states got an empty state dict")
    leading = {key: tuple(value.shape[:2]) for key, value in states.items()}
    if len(set(leading.values())) != 1 or any(value.dim() < 2 for value in states.values()):
        raise ValueError(f"every state entry needs the same leading (B, T) dims; got {leading}")
    return {key: value.detach().reshape(-1, *value.shape[2:]) for key, value in states.items()}


def imagine(
    dynamics: LatentDynamics, policy: Callable[[Tensor], Tensor], start: State, horizon: int
) -> tuple[Tensor, Tensor]:
    """Roll ``policy`` forward ``horizon`` steps from ``start`` (N states).

    The policy sees detached features, so gradients from the returns reach
    the actor only through its actions (and then through the dynamics).

    Returns:
        feats: (H + 1, N, F) features of ``s_0 .. s_H``.
        actions: (H, N, A); ``actions[t]`` is taken in ``s_t``.
    """
    state = start
    feats = [dynamics.feat(state)]
    actions = []
    for _ in range(horizon):
        action = policy(feats[-1].detach())
        state = dynamics.img_step(state, action)
        actions.append(action)
        feats.append(dynamics.feat(state))
    return torch.stack(feats), torch.stack(actions)
