"""What every parity table is made of, and readers of values our code fixes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn


@dataclass(frozen=True)
class Ref:
    key: str  # the reference's name for the setting
    value: Any  # the reference's value
    ours: str | Callable  # config path, or agent -> value
    source: str  # commit:file key/line
    rel: float = 0.0  # relative tolerance for floats


def out_scale(layer):
    return getattr(layer, "outscale", None)


def linear_layers(head) -> int:
    """Hidden layers of a head's MLP trunk."""
    return sum(isinstance(m, nn.Linear) for m in head.trunk.net)


def activations(module) -> list[str]:
    """The activation kinds used inside ``module``, in order of first use."""
    names = {nn.ELU: "elu", nn.ReLU: "relu", nn.SiLU: "silu", nn.Tanh: "tanh"}
    seen = []
    for m in module.modules():
        name = names.get(type(m))
        if name and name not in seen:
            seen.append(name)
    return seen


def conv_layers(net) -> list[tuple[int, int, int, int]]:
    """(out channels, kernel, stride, padding) of every (transposed) convolution."""
    return [
        (m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0] if isinstance(m.padding, tuple) else m.padding)
        for m in net.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
