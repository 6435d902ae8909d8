"""Convolutional image encoder and decoder.

Both follow DreamerV3's layout: stages of kernel-4, stride-2 convolutions whose
channels grow as ``depth * [1, 2, 4, 8]``, so a 64 x 64 image becomes a
4 x 4 x 8*depth grid (and back). ``norm=True, act='silu'`` gives DreamerV3's
channel LayerNorm + SiLU after every hidden layer; ``norm=False, act='elu'``
gives the plain activations of DreamerV1 and PlaNet (their exact kernel sizes
and valid padding differ; here every variant pads so that each stage halves
the resolution exactly, which lets any size divisible by 16 work).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from world_model.mlp import activation

STAGES = 4


def check_image_size(height: int, width: int) -> None:
    """Raise unless both sides are positive multiples of ``2 ** STAGES``."""
    step = 2**STAGES
    if height < step or width < step or height % step or width % step:
        raise ValueError(
            f"image size {height}x{width} is not supported: height and width must be "
            f"positive multiples of {step} (e.g. 32x32, 64x64, 96x96)"
        )


class ChannelNorm(nn.Module):
    """LayerNorm over the channel dim of (N, C, H, W) maps, per pixel."""

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.norm.normalized_shape, self.norm.weight, self.norm.bias, self.norm.eps)
        return x.permute(0, 3, 1, 2)


def _block(conv: nn.Module, channels: int, act: str, norm: bool) -> list[nn.Module]:
    if norm:
        return [conv, ChannelNorm(channels), activation(act)]
    return [conv, activation(act)]


class ConvEncoder(nn.Module):
    """(N, C, H, W) float images -> (N, out_dim) embeddings.

    ``out_dim = 8 * depth * (H / 16) * (W / 16)`` (4096 for 64 x 64, depth 32).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        depth: int = 32,
        act: str = "silu",
        norm: bool = True,
    ):
        super().__init__()
        height, width = image_size
        check_image_size(height, width)
        layers: list[nn.Module] = []
        channels = in_channels
        for stage in range(STAGES):
            out = depth * 2**stage
            layers += _block(nn.Conv2d(channels, out, 4, 2, 1, bias=not norm), out, act, norm)
            channels = out
        self.net = nn.Sequential(*layers)
        self.out_dim = channels * (height // 2**STAGES) * (width // 2**STAGES)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)


class ConvDecoder(nn.Module):
    """(N, in_dim) features -> (N, out_channels, H, W) image predictions.

    A linear layer fills a (8 * depth, H / 16, W / 16) grid that transposed
    convolutions upsample; the last layer is linear (no norm, no activation).
    """

    def __init__(
        self,
        in_dim: int,
        out_channels: int,
        image_size: tuple[int, int],
        depth: int = 32,
        act: str = "silu",
        norm: bool = True,
    ):
        super().__init__()
        height, width = image_size
        check_image_size(height, width)
        self.grid = (depth * 2 ** (STAGES - 1), height // 2**STAGES, width // 2**STAGES)
        self.linear = nn.Linear(in_dim, self.grid[0] * self.grid[1] * self.grid[2])
        layers: list[nn.Module] = []
        channels = self.grid[0]
        for stage in reversed(range(STAGES - 1)):
            out = depth * 2**stage
            layers += _block(nn.ConvTranspose2d(channels, out, 4, 2, 1, bias=not norm), out, act, norm)
            channels = out
        layers.append(nn.ConvTranspose2d(channels, out_channels, 4, 2, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.linear(x).reshape(-1, *self.grid))
