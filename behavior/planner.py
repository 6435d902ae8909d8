"""Cross-entropy-method planning in latent space (PlaNet)."""

from __future__ import annotations

import torch
from torch import Tensor

from behavior.imagine import LatentDynamics, State


class CEMPlanner:
    """Plans continuous actions in [-1, 1] by the cross-entropy method.

    For each of B states: sample ``candidates`` action sequences of length
    ``horizon`` from a diagonal normal (clipped to [-1, 1]), score them by
    the predicted rewards of an imagined rollout, and refit the normal to the
    ``top_k`` best; after ``iterations`` rounds return the first action of
    the mean. All B x candidates rollouts advance in one ``img_step`` call per
    step. The score of a sequence is ``sum_t w_t r_{t+1}`` with
    ``w_t = prod_{k=1..t} discount c_k`` (``c = 1`` unless ``use_cont``),
    the convention of :mod:`behavior.returns`.
    """

    def __init__(
        self,
        action_dim: int,
        horizon: int = 12,
        candidates: int = 1000,
        top_k: int = 100,
        iterations: int = 10,
        discount: float = 1.0,
        use_cont: bool = False,
        min_std: float = 0.0,
    ):
        if not 0 < top_k <= candidates:
            raise ValueError(f"top_k={top_k} must lie in [1, candidates={candidates}]")
        if horizon < 1 or iterations < 1:
            raise ValueError(f"horizon={horizon} and iterations={iterations} must be >= 1")
        self.action_dim, self.horizon = action_dim, horizon
        self.candidates, self.top_k, self.iterations = candidates, top_k, iterations
        self.discount, self.use_cont, self.min_std = discount, use_cont, min_std

    def _score(self, dynamics: LatentDynamics, start: State, actions: Tensor) -> Tensor:
        """Returns (B * C,) of action sequences (B * C, H, A) from ``start`` (B * C, ...)."""
        state, total, weight = start, 0.0, 1.0
        for t in range(self.horizon):
            state = dynamics.img_step(state, actions[:, t])
            feat = dynamics.feat(state)
            total = total + weight * dynamics.reward(feat).float().reshape(-1)
            weight = weight * self.discount
            if self.use_cont:
                weight = weight * dynamics.cont(feat).float().reshape(-1)
        return total

    @torch.no_grad()
    def plan(self, dynamics: LatentDynamics, state: State) -> Tensor:
        """(B, A) first actions of the refined plans from the B states in ``state``."""
        any_entry = next(iter(state.values()))
        batch, device = any_entry.shape[0], any_entry.device
        count, shape = self.candidates, (self.horizon, self.action_dim)
        start = {key: value.repeat_interleave(count, 0) for key, value in state.items()}
        mean = torch.zeros(batch, 1, *shape, device=device)
        std = torch.ones(batch, 1, *shape, device=device)
        for _ in range(self.iterations):
            noise = torch.randn(batch, count, *shape, device=device)
            actions = (mean + std * noise).clamp(-1, 1)
            returns = self._score(dynamics, start, actions.reshape(batch * count, *shape))
            best = returns.reshape(batch, count).topk(self.top_k, dim=1).indices
            elite = actions.gather(1, best[..., None, None].expand(-1, -1, *shape))
            mean = elite.mean(1, keepdim=True)
            std = elite.std(1, unbiased=False, keepdim=True).clamp_min(self.min_std)
        return mean[:, 0, 0].clamp(-1, 1)
