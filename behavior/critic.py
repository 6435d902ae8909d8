"""The value network and its slowly updated copy."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from world_model.mlp import Head

CRITIC_DISTS = ("twohot", "normal")


class Critic(nn.Module):
    """State value from (..., F) features.

    ``twohot``: a categorical over exponentially spaced bins (DreamerV3), started at
    zero so early returns are not dominated by random values. ``normal``: a
    unit-variance normal, i.e. squared error (DreamerV1).
    """

    def __init__(
        self,
        feat_dim: int,
        *,
        dist: str = "twohot",
        units: int = 512,
        layers: int = 2,
        act: str = "silu",
        norm: bool | str = True,
        bins: int = 255,
        bin_spacing: str = "symlog",
    ):
        super().__init__()
        if dist not in CRITIC_DISTS:
            raise ValueError(f"unknown critic dist {dist!r}; allowed: {CRITIC_DISTS}")
        self.head = Head(
            feat_dim, (), dist, units, layers, act, norm, bins=bins, bin_spacing=bin_spacing,
            outscale=0.0 if dist == "twohot" else 1.0,
        )

    def forward(self, feat: Tensor):
        """The value distribution; its ``mean`` is (...)."""
        return self.head(feat)


class SlowCopy(nn.Module):
    """A frozen copy of a module that follows it by an exponential moving average.

    Every ``every``-th call of :meth:`update` sets
    ``slow <- (1 - rate) slow + rate fast``; ``rate=1, every=100`` is
    DreamerV2's hard target update, ``rate=0.02, every=1`` DreamerV3's.
    """

    def __init__(self, fast: nn.Module, rate: float = 0.02, every: int = 1):
        super().__init__()
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"slow update rate={rate} must lie in (0, 1]")
        if every < 1:
            raise ValueError(f"slow update every={every} must be >= 1")
        self.rate, self.every = rate, every
        self.module = copy.deepcopy(fast).requires_grad_(False)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        # The count as a Python int, read from the buffer once (and again after
        # loading a checkpoint): reading a GPU buffer each update would stall
        # the host once per update.
        self._calls: int | None = None

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._calls = None

    @torch.no_grad()
    def update(self, fast: nn.Module) -> None:
        if self._calls is None:
            self._calls = int(self.calls)
        self._calls += 1
        self.calls.fill_(self._calls)
        if self._calls % self.every:
            return
        slow = list(self.module.parameters()) + list(self.module.buffers())
        source = [value.detach() for value in [*fast.parameters(), *fast.buffers()]]
        if len(slow) != len(source):
            raise ValueError(f"slow copy has {len(slow)} tensors, the fast module {len(source)}")
        floats = [i for i, target in enumerate(slow) if target.dtype.is_floating_point]
        if floats:
            torch._foreach_lerp_([slow[i] for i in floats], [source[i] for i in floats], self.rate)
        for target, value in zip(slow, source, strict=True):
            if not target.dtype.is_floating_point:
                target.copy_(value)
