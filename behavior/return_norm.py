"""Return normalisation by a running percentile range (DreamerV3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ReturnNorm(nn.Module):
    """Tracks the ``low``-``high`` percentile range of returns with an EMA.

    Advantages are divided by ``max(floor, range)``: large returns are scaled
    down to a common size, while small returns (sparse or near-zero rewards)
    are not blown up, which would amplify noise. The statistics are buffers,
    so they live in ``state_dict`` and resume with the run.

    Args:
        decay: EMA decay of the percentile estimates per update.
        low, high: percentiles as fractions (0.05 and 0.95 in DreamerV3).
        floor: the smallest divisor.
        debias: divide by ``1 - decay**updates`` so early estimates are not
            pulled towards the initial zeros (DreamerV3 does not).
    """

    def __init__(
        self, decay: float = 0.99, low: float = 0.05, high: float = 0.95, floor: float = 1.0, debias: bool = False
    ):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay} must lie in [0, 1)")
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"percentiles low={low}, high={high} must satisfy 0 <= low < high <= 1")
        self.decay, self.floor, self.debias = decay, floor, debias
        self.register_buffer("quantiles", torch.tensor([low, high]), persistent=False)
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, returns: Tensor) -> None:
        """Move the running percentiles towards those of ``returns`` (any shape)."""
        low, high = torch.quantile(returns.detach().float().flatten(), self.quantiles)
        self.low.lerp_(low, 1 - self.decay)
        self.high.lerp_(high, 1 - self.decay)
        self.updates += 1

    def scale(self) -> Tensor:
        """The current divisor ``max(floor, high - low)``, a scalar tensor."""
        spread = self.high - self.low
        if self.debias and self.updates > 0:
            spread = spread / (1 - self.decay ** self.updates.item())
        return torch.clamp(spread, min=self.floor)

    def forward(self, returns: Tensor) -> Tensor:
        """Update the statistics (in training mode only) and return the divisor."""
        if self.training:
            self.update(returns)
        return self.scale()
