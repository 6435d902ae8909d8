"""The policy network over latent features."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from behavior.exploration import add_exploration
from world_model.mlp import Head

ACT_MODES = ("train", "eval")
CONTINUOUS_DISTS = ("bounded_normal", "tanh_normal", "trunc_normal")


class Actor(nn.Module):
    """Action distribution from (..., F) features.

    Continuous actions, chosen by ``dist`` (reparameterised samples):

    - ``bounded_normal`` (DreamerV3): a normal with tanh-squashed mean and
      std in [``min_std``, ``max_std``]; samples may leave [-1, 1].
    - ``tanh_normal`` (DreamerV1): a normal with mean soft-bounded by
      ``mean_scale`` and softplus std starting at ``init_std``, squashed by
      tanh; mode, mean and entropy are sample estimates.
    - ``trunc_normal`` (DreamerV2): a normal with tanh mean and std in
      (``min_std``, ``min_std`` + 2) truncated to [-1, 1]; ``max_std`` is unused.

    See :class:`~world_model.mlp.Head` for ``mean_scale`` and ``init_std``
    (None: the distribution's own default). Discrete actions always use a
    one-hot categorical mixed with ``unimix`` of a uniform (straight-through
    samples), so every action keeps some probability. ``outscale`` scales
    the output layer's initial weights (0.01 in the 2024 DreamerV3: a near
    uniform start, mean 0 and the std at its initial sigmoid(2) point).
    """

    def __init__(
        self,
        feat_dim: int,
        action_dim: int,
        discrete: bool,
        *,
        units: int = 512,
        layers: int = 2,
        act: str = "silu",
        norm: bool | str = True,
        unimix: float = 0.01,
        min_std: float = 0.1,
        max_std: float = 1.0,
        outscale: float = 1.0,
        dist: str = "bounded_normal",
        mean_scale: float = 5.0,
        init_std: float | None = None,
    ):
        super().__init__()
        if dist not in CONTINUOUS_DISTS:
            raise ValueError(f"unknown actor dist {dist!r}; choose one of {CONTINUOUS_DISTS}")
        self.action_dim, self.discrete = action_dim, discrete
        kind = "onehot" if discrete else dist
        self.head = Head(
            feat_dim, (action_dim,), kind, units, layers, act, norm, unimix=unimix, min_std=min_std,
            max_std=max_std, outscale=outscale, mean_scale=mean_scale, init_std=init_std,
        )

    def forward(self, feat: Tensor):
        """The action distribution over (..., A)."""
        return self.head(feat)

    def act(self, feat: Tensor, mode: str = "train", expl_noise: float = 0.0) -> Tensor:
        """(B, A) actions for (B, F) features, detached.

        ``train`` samples and adds ``expl_noise`` (Gaussian std, or epsilon for
        discrete actions); ``eval`` takes the mode (for ``tanh_normal`` the
        most likely of its sampled candidates). Continuous actions are
        clipped to [-1, 1].
        """
        if mode not in ACT_MODES:
            raise ValueError(f"unknown act mode {mode!r}; allowed: {ACT_MODES}")
        dist = self(feat.detach())
        action = (dist.sample() if mode == "train" else dist.mode()).detach()
        if self.discrete:
            # Exact one-hot vectors: straight-through samples carry rounding error.
            action = F.one_hot(action.argmax(-1), self.action_dim).to(action.dtype)
        if mode == "train":
            action = add_exploration(action, expl_noise, self.discrete)
        return action if self.discrete else action.clamp(-1, 1)
