"""Building blocks shared by every network: activations, norms, block-diagonal
linear layers and the weight initialisations of the reference implementations.

Norm kinds (``norm=``): ``'layer'`` (LayerNorm with scale and shift, eps 1e-3;
DreamerV2 and the 2023 DreamerV3), ``'rms'`` (RMSNorm with a learned scale
and no shift, eps 1e-4; the 2024 DreamerV3) and ``'none'``. ``True`` and
``False`` stand for ``'layer'`` and ``'none'``.

Initialisations (``winit=``) are applied after a network is built by
:func:`initialize`, so the layers themselves stay plain ``nn`` modules:

- ``'torch'``: PyTorch's default (kaiming-uniform); presets that do not name
  an initialisation keep it.
- ``'trunc_normal_in'`` / ``'trunc_normal_avg'``: a normal truncated to two
  standard deviations with variance 1 / fan (fan-in, or the mean of fan-in
  and fan-out); 1.1368 corrects for the truncation. Biases start at zero.
- ``'uniform_avg'``: uniform in +-sqrt(3 / fan_avg), variance 1 / fan_avg
  (the 2023 DreamerV3's output layers; Keras' glorot-uniform default of
  DreamerV1, DreamerV2 and PlaNet). Biases start at zero.

A plain ``nn.GRUCell`` (DreamerV1, PlaNet) gets Keras' GRU defaults for any
kind other than ``'torch'``: the input weights by that kind, orthogonal
recurrent weights and zero biases.

Output layers carry an ``outscale`` that multiplies their initial weights
(0 gives an exact zero prediction at the start).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

ACTIVATIONS = {"silu": nn.SiLU, "elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}
NORMS = ("layer", "rms", "none")
INITS = ("torch", "trunc_normal_in", "trunc_normal_avg", "uniform_avg")


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def norm_kind(norm: bool | str) -> str:
    """``True``/``False`` or a name from ``NORMS`` -> the name."""
    if isinstance(norm, bool):
        return "layer" if norm else "none"
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS} (or true/false)")
    return norm


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and returned in the input's dtype, as the
    references normalise under reduced precision."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).to(x.dtype)


class RMSNorm(nn.RMSNorm):
    """RMSNorm computed in float32 (torch's fused kernel needs the input in
    its weight's dtype) and returned in the input's dtype."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).to(x.dtype)


def make_norm(norm: bool | str, size: int) -> nn.Module:
    """The normalisation layer over the last dim of width ``size``."""
    kind = norm_kind(norm)
    if kind == "layer":
        return LayerNorm(size, eps=1e-3)
    if kind == "rms":
        return RMSNorm(size, eps=1e-4)
    return nn.Identity()


def linear_bias(norm: bool | str) -> bool:
    """Whether a layer followed by ``norm`` has a bias: LayerNorm's shift
    makes one redundant; RMSNorm does not subtract the mean, so it keeps it."""
    return norm_kind(norm) != "layer"


class BlockLinear(nn.Module):
    """Block-diagonal linear layer: the input and output are split into
    ``blocks`` equal groups and group i of the output sees group i of the
    input only (the 2024 DreamerV3's GRU, so a large state costs ``blocks``
    times fewer weights). ``(..., in_dim) -> (..., out_dim)``."""

    def __init__(self, in_dim: int, out_dim: int, blocks: int, bias: bool = True):
        super().__init__()
        if in_dim % blocks or out_dim % blocks:
            raise ValueError(f"BlockLinear sizes {in_dim} -> {out_dim} must be divisible by blocks={blocks}")
        self.blocks = blocks
        self.weight = nn.Parameter(torch.empty(blocks, in_dim // blocks, out_dim // blocks))
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None
        # Same scale as nn.Linear's default, for presets that keep torch initialisation.
        nn.init.uniform_(self.weight, -1 / math.sqrt(in_dim), 1 / math.sqrt(in_dim))

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.blocks, self.weight.shape[1]).transpose(0, 1)
        y = torch.bmm(x, self.weight).transpose(0, 1).reshape(*lead, -1)
        return y + self.bias if self.bias is not None else y


def mark_output(layer: nn.Module, outscale: float) -> nn.Module:
    """Tag ``layer`` as an output layer whose initial weights are scaled by ``outscale``."""
    layer.outscale = float(outscale)
    with torch.no_grad():  # applied to the torch initialisation now; initialize() redraws for other kinds
        layer.weight.mul_(outscale)
        if getattr(layer, "bias", None) is not None:
            layer.bias.mul_(outscale)
    return layer


def _fans(layer: nn.Module) -> tuple[int, int]:
    weight = layer.weight
    if isinstance(layer, BlockLinear):
        blocks, fan_in, fan_out = weight.shape
        return blocks * fan_in, blocks * fan_out
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    if isinstance(layer, nn.ConvTranspose2d):
        return weight.shape[0] * receptive, weight.shape[1] * receptive
    return weight.shape[1] * receptive, weight.shape[0] * receptive


@torch.no_grad()
def init_layer(layer: nn.Module, kind: str, scale: float = 1.0) -> None:
    """Initialise one Linear / Conv / BlockLinear layer in place."""
    if kind not in INITS:
        raise ValueError(f"unknown initialisation {kind!r}; choose one of {INITS}")
    if kind == "torch":  # kept as built (output layers already carry their outscale)
        return
    fan_in, fan_out = _fans(layer)
    fan = fan_in if kind.endswith("_in") else (fan_in + fan_out) / 2
    weight = layer.weight
    if kind.startswith("trunc_normal"):
        nn.init.trunc_normal_(weight, 0.0, 1.0, -2.0, 2.0).mul_(1.1368 * math.sqrt(1 / fan))
    else:
        limit = math.sqrt(3 / fan)
        nn.init.uniform_(weight, -limit, limit)
    weight.mul_(scale)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


WEIGHT_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, BlockLinear)


@torch.no_grad()
def init_gru_cell(cell: nn.GRUCell, kind: str) -> None:
    """Keras' GRU initialisation: input weights by ``kind`` (fans of the
    whole (3 * hidden, in) kernel), orthogonal recurrent weights, zero biases."""
    if kind == "torch":
        return
    if kind not in INITS:
        raise ValueError(f"unknown initialisation {kind!r}; choose one of {INITS}")
    proxy = nn.Linear(cell.input_size, 3 * cell.hidden_size, bias=False)
    init_layer(proxy, kind)
    cell.weight_ih.copy_(proxy.weight)
    nn.init.orthogonal_(cell.weight_hh)
    nn.init.zeros_(cell.bias_ih)
    nn.init.zeros_(cell.bias_hh)


def initialize(module: nn.Module, winit: str = "torch", outinit: str | None = None) -> None:
    """Initialise every weight layer of ``module``: hidden layers by ``winit``,
    layers tagged by :func:`mark_output` by ``outinit`` (default ``winit``)
    times their ``outscale``; plain GRU cells as in :func:`init_gru_cell`."""
    outinit = outinit or winit
    for layer in module.modules():
        if isinstance(layer, nn.GRUCell):
            init_gru_cell(layer, winit)
            continue
        if not isinstance(layer, WEIGHT_LAYERS):
            continue
        scale = getattr(layer, "outscale", None)
        if scale is None:
            init_layer(layer, winit)
        else:
            init_layer(layer, outinit, scale)
