"""Multi-layer perceptrons and distribution heads.

A head is an MLP whose last layer is read as the parameters of one of the
distributions in :mod:`world_model.distributions`. The world model (reward,
continue, vector decoder) and the behaviour (actor, critic) all build their
outputs from these, so a preset switches a head's distribution by name.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from world_model import distributions as dists
from world_model.layers import activation, linear_bias, make_norm, mark_output, norm_kind

__all__ = ["MLP", "Head", "HEAD_KINDS", "activation"]


class MLP(nn.Module):
    """``layers`` x (Linear -> norm -> activation) over the last dim.

    DreamerV3 normalises every hidden layer (``norm='layer'`` in 2023,
    ``'rms'`` in 2024, SiLU); DreamerV1 and PlaNet use plain ELU layers
    (``norm='none'``, ``act='elu'``). See :mod:`world_model.layers`.
    """

    def __init__(
        self, in_dim: int, units: int = 512, layers: int = 2, act: str = "silu", norm: bool | str = True
    ):
        super().__init__()
        modules: list[nn.Module] = []
        dim = in_dim
        for _ in range(layers):
            modules.append(nn.Linear(dim, units, bias=linear_bias(norm)))
            if norm_kind(norm) != "none":
                modules.append(make_norm(norm, units))
            modules.append(activation(act))
            dim = units
        self.net = nn.Sequential(*modules)
        self.out_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


HEAD_KINDS = (
    "twohot", "normal", "symlog_mse", "bernoulli", "bounded_normal", "tanh_normal", "trunc_normal", "onehot",
)
# Kinds whose output layer holds a mean and a std per event element.
MEAN_STD_KINDS = ("bounded_normal", "tanh_normal", "trunc_normal")


class Head(nn.Module):
    """MLP trunk + linear output read as a distribution.

    Args:
        in_dim: input features (the RSSM feature size).
        shape: event shape of the predicted quantity: () for a scalar
            (reward, value, continue), (A,) for actions or vectors.
        kind: one of ``HEAD_KINDS``.
        bins: number of two-hot bins (``twohot`` only).
        bin_spacing: ``symlog`` (bins even in symlog space, targets
            interpolated there, the 2023 DreamerV3) or ``symexp`` (the same
            bin values, targets interpolated in raw space, the 2024 one); see
            :class:`~world_model.distributions.TwoHot`.
        outscale: factor on the output layer's initial weights; 0 starts
            the prediction at exactly 0 (two-hot reward and critic in
            DreamerV3), so early returns are not dominated by random values.
        unimix: uniform mixing for ``onehot``.
        min_std, max_std: std range for ``bounded_normal``. ``tanh_normal``
            adds ``min_std`` to its softplus std (DreamerV1 uses 1e-4);
            ``trunc_normal`` keeps its std in (min_std, min_std + 2), the
            range the DreamerV2 formula fixes, and ignores ``max_std``.
        mean_scale: soft bound on the pre-tanh mean of ``tanh_normal``.
        init_std: std at a zero output; None takes the distribution's own
            default (5.0 for ``tanh_normal``; 0.0 for ``trunc_normal``, a std
            of min_std + 1). Used by these two kinds only.
    """

    def __init__(
        self,
        in_dim: int,
        shape: tuple[int, ...] = (),
        kind: str = "twohot",
        units: int = 512,
        layers: int = 2,
        act: str = "silu",
        norm: bool | str = True,
        bins: int = 255,
        bin_spacing: str = "symlog",
        outscale: float = 1.0,
        unimix: float = 0.01,
        min_std: float = 0.1,
        max_std: float = 1.0,
        mean_scale: float = 5.0,
        init_std: float | None = None,
    ):
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"unknown head kind {kind!r}; choose one of {HEAD_KINDS}")
        self.kind, self.shape = kind, tuple(shape)
        self.unimix, self.min_std, self.max_std = unimix, min_std, max_std
        self.mean_scale, self.init_std = mean_scale, init_std
        self.trunk = MLP(in_dim, units, layers, act, norm)
        size = int(torch.tensor(self.shape).prod().item()) if self.shape else 1
        out = bins if kind == "twohot" else 2 * size if kind in MEAN_STD_KINDS else size
        self.out = mark_output(nn.Linear(self.trunk.out_dim, out), outscale)
        if kind == "twohot":
            self.bin_spacing = bin_spacing
            self.register_buffer("bins", dists.twohot_bins(bins, bin_spacing), persistent=False)

    def forward(self, x: Tensor):
        raw = self.out(self.trunk(x))
        batch = raw.shape[:-1]
        if self.kind == "twohot":
            return dists.TwoHot(raw, self.bins, self.bin_spacing)
        if self.kind == "bounded_normal":
            mean, std = raw.chunk(2, -1)
            return dists.BoundedNormal(mean, std, self.min_std, self.max_std)
        if self.kind in ("tanh_normal", "trunc_normal"):
            mean, std = raw.chunk(2, -1)
            # None leaves init_std at the distribution's own default.
            extra = {} if self.init_std is None else {"init_std": self.init_std}
            if self.kind == "tanh_normal":
                return dists.TanhNormal(mean, std, mean_scale=self.mean_scale, min_std=self.min_std, **extra)
            return dists.TruncNormal(mean, std, min_std=self.min_std, **extra)
        raw = raw.reshape(*batch, *self.shape)
        events = len(self.shape)
        if self.kind == "normal":
            return dists.Normal(raw, 1.0, event_dims=events)
        if self.kind == "symlog_mse":
            return dists.MSE(raw, event_dims=events, symlog=True)
        if self.kind == "bernoulli":
            return dists.Bernoulli(raw)
        return dists.OneHotCategorical(raw, self.unimix, event_dims=1)
