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

ACTIVATIONS = {"silu": nn.SiLU, "elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """``layers`` x (Linear -> [LayerNorm] -> activation) over the last dim.

    DreamerV3 normalises every hidden layer (``norm=True``, SiLU); DreamerV1
    and PlaNet use plain ELU layers (``norm=False``, ``act='elu'``).
    """

    def __init__(self, in_dim: int, units: int = 512, layers: int = 2, act: str = "silu", norm: bool = True):
        super().__init__()
        modules: list[nn.Module] = []
        dim = in_dim
        for _ in range(layers):
            modules.append(nn.Linear(dim, units, bias=not norm))
            if norm:
                modules.append(nn.LayerNorm(units, eps=1e-3))
            modules.append(activation(act))
            dim = units
        self.net = nn.Sequential(*modules)
        self.out_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


HEAD_KINDS = ("twohot", "normal", "symlog_mse", "bernoulli", "bounded_normal", "onehot")


class Head(nn.Module):
    """MLP trunk + linear output read as a distribution.

    Args:
        in_dim: input features (the RSSM feature size).
        shape: event shape of the predicted quantity: () for a scalar
            (reward, value, continue), (A,) for actions or vectors.
        kind: one of ``HEAD_KINDS``.
        bins: number of two-hot bins (``twohot`` only).
        zero_init: start the output layer at zero, so the initial prediction
            is 0 (two-hot reward and critic in DreamerV3) and early returns
            are not dominated by random large values.
        unimix: uniform mixing for ``onehot``.
        min_std, max_std: std range for ``bounded_normal``.
    """

    def __init__(
        self,
        in_dim: int,
        shape: tuple[int, ...] = (),
        kind: str = "twohot",
        units: int = 512,
        layers: int = 2,
        act: str = "silu",
        norm: bool = True,
        bins: int = 255,
        zero_init: bool = False,
        unimix: float = 0.01,
        min_std: float = 0.1,
        max_std: float = 1.0,
    ):
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"unknown head kind {kind!r}; choose one of {HEAD_KINDS}")
        self.kind, self.shape = kind, tuple(shape)
        self.unimix, self.min_std, self.max_std = unimix, min_std, max_std
        self.trunk = MLP(in_dim, units, layers, act, norm)
        size = int(torch.tensor(self.shape).prod().item()) if self.shape else 1
        out = {"twohot": bins, "bounded_normal": 2 * size}.get(kind, size)
        self.out = nn.Linear(self.trunk.out_dim, out)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
        if kind == "twohot":
            self.register_buffer("bins", dists.symlog_bins(bins), persistent=False)

    def forward(self, x: Tensor):
        raw = self.out(self.trunk(x))
        batch = raw.shape[:-1]
        if self.kind == "twohot":
            return dists.TwoHotSymlog(raw, self.bins)
        if self.kind == "bounded_normal":
            mean, std = raw.chunk(2, -1)
            return dists.BoundedNormal(mean, std, self.min_std, self.max_std)
        raw = raw.reshape(*batch, *self.shape)
        events = len(self.shape)
        if self.kind == "normal":
            return dists.Normal(raw, 1.0, event_dims=events)
        if self.kind == "symlog_mse":
            return dists.MSE(raw, event_dims=events, symlog=True)
        if self.kind == "bernoulli":
            return dists.Bernoulli(raw)
        return dists.OneHotCategorical(raw, self.unimix, event_dims=1)
