"""Convolutional image encoder and decoder.

Stages of convolutions whose channels are ``depth * mults[i]`` halve the
resolution until a small grid (4 x 4 for 64 x 64 images and four stages),
and the decoder mirrors them. Two layouts, chosen by ``resize``:

- ``stride`` (DreamerV1-V3 2023): stride-2 convolutions with ``kernel`` 4 and
  transposed stride-2 convolutions back; ``mults`` (1, 2, 4, 8).
- ``maxpool`` (2024 DreamerV3): a stride-1 convolution with ``kernel`` 5
  followed by 2 x 2 max-pooling; back by nearest-neighbour upsampling and a
  stride-1 convolution; ``mults`` (2, 3, 4, 4).

Every hidden layer is conv -> norm over channels -> activation (``norm`` as in
:mod:`world_model.layers`: ``'layer'`` or ``'rms'`` for DreamerV3, ``'none'``
with ELU for DreamerV1 and PlaNet; their exact kernel sizes and valid padding
differ, here every variant pads so that each stage halves the resolution
exactly, which lets any size divisible by ``2 ** len(mults)`` work).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from world_model.layers import BlockLinear, activation, linear_bias, make_norm, mark_output, norm_kind
from world_model.mlp import MLP

RESIZES = ("stride", "maxpool")
IMAGE_OUTPUTS = ("linear", "sigmoid")
DEFAULT_MULTS = (1, 2, 4, 8)


def check_image_size(height: int, width: int, stages: int = len(DEFAULT_MULTS)) -> None:
    """Raise unless both sides are positive multiples of ``2 ** stages``."""
    step = 2**stages
    if height < step or width < step or height % step or width % step:
        raise ValueError(
            f"image size {height}x{width} is not supported with {stages} stages: height and width "
            f"must be positive multiples of {step} (e.g. {2 * step}x{2 * step}, {4 * step}x{4 * step})"
        )


class ChannelNorm(nn.Module):
    """LayerNorm or RMSNorm over the channel dim of (N, C, H, W) maps, per pixel."""

    def __init__(self, channels: int, norm: bool | str = "layer"):
        super().__init__()
        self.norm = make_norm(norm, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _post(channels: int, act: str, norm: bool | str) -> list[nn.Module]:
    if norm_kind(norm) == "none":
        return [activation(act)]
    return [ChannelNorm(channels, norm), activation(act)]


def _check_resize(resize: str) -> None:
    if resize not in RESIZES:
        raise ValueError(f"unknown image resize {resize!r}; choose one of {RESIZES}")


class ConvEncoder(nn.Module):
    """(N, C, H, W) float images -> (N, out_dim) embeddings.

    ``out_dim = depth * mults[-1] * (H / 2**S) * (W / 2**S)`` with S =
    ``len(mults)`` stages (4096 for 64 x 64, depth 32, mults (1, 2, 4, 8)).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        depth: int = 32,
        act: str = "silu",
        norm: bool | str = True,
        *,
        mults: tuple[int, ...] = DEFAULT_MULTS,
        kernel: int = 4,
        resize: str = "stride",
    ):
        super().__init__()
        _check_resize(resize)
        height, width = image_size
        stages = len(mults)
        check_image_size(height, width, stages)
        bias = linear_bias(norm)
        layers: list[nn.Module] = []
        channels = in_channels
        for mult in mults:
            out = depth * mult
            if resize == "stride":
                layers.append(nn.Conv2d(channels, out, kernel, 2, (kernel - 1) // 2, bias=bias))
            else:
                layers += [nn.Conv2d(channels, out, kernel, 1, "same", bias=bias), nn.MaxPool2d(2)]
            layers += _post(out, act, norm)
            channels = out
        self.net = nn.Sequential(*layers)
        self.out_dim = channels * (height // 2**stages) * (width // 2**stages)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)


class ConvDecoder(nn.Module):
    """(N, in_dim) features -> (N, out_channels, H, W) image predictions.

    The features fill a (depth * mults[-1], H / 2**S, W / 2**S) grid, which
    the stages upsample; the last layer has no norm and no activation.

    Args:
        deter_blocks: 0 fills the grid with one linear layer from the whole
            feature (2023). B > 0 (2024 DreamerV3): the deterministic part
            (the last ``deter_dim`` features) fills it through a block-diagonal
            layer of B blocks, one channel group per block, and the stochastic
            part through a 2-layer MLP of ``2 * units``; the two are summed,
            normalised and activated.
        output: ``linear`` (prediction in [-0.5, 0.5] space as it is) or
            ``sigmoid`` (a [0, 1] image, shifted by -0.5 to the same space, so
            the squared error equals the reference's against ``image / 255``).
    """

    def __init__(
        self,
        in_dim: int,
        out_channels: int,
        image_size: tuple[int, int],
        depth: int = 32,
        act: str = "silu",
        norm: bool | str = True,
        *,
        mults: tuple[int, ...] = DEFAULT_MULTS,
        kernel: int = 4,
        resize: str = "stride",
        output: str = "linear",
        deter_blocks: int = 0,
        deter_dim: int = 0,
        units: int = 512,
        outscale: float = 1.0,
    ):
        super().__init__()
        _check_resize(resize)
        if output not in IMAGE_OUTPUTS:
            raise ValueError(f"unknown image output {output!r}; choose one of {IMAGE_OUTPUTS}")
        height, width = image_size
        stages = len(mults)
        check_image_size(height, width, stages)
        self.output, self.deter_blocks, self.deter_dim = output, deter_blocks, deter_dim
        self.grid = (depth * mults[-1], height // 2**stages, width // 2**stages)
        cells = self.grid[0] * self.grid[1] * self.grid[2]
        if deter_blocks:
            if not 0 < deter_dim < in_dim:
                raise ValueError(f"deter_dim={deter_dim} must lie in (0, {in_dim}) with deter_blocks")
            self.space_deter = BlockLinear(deter_dim, cells, deter_blocks)
            self.space_stoch = nn.Sequential(MLP(in_dim - deter_dim, 2 * units, 1, act, norm), nn.Linear(2 * units, cells))
            self.space_post = nn.Sequential(*_post(self.grid[0], act, norm))
        else:
            self.linear = nn.Linear(in_dim, cells)
        bias = linear_bias(norm)
        layers: list[nn.Module] = []
        channels = self.grid[0]
        for mult in reversed(mults[:-1]):
            out = depth * mult
            layers += [self._up(channels, out, kernel, resize, bias), *_post(out, act, norm)]
            channels = out
        last = self._up(channels, out_channels, kernel, resize, True)
        if resize == "maxpool":
            mark_output(last[1], outscale)
        else:
            mark_output(last, outscale)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    @staticmethod
    def _up(channels: int, out: int, kernel: int, resize: str, bias: bool) -> nn.Module:
        if resize == "stride":
            return nn.ConvTranspose2d(channels, out, kernel, 2, (kernel - 1) // 2, kernel % 2, bias=bias)
        upsample = nn.Upsample(scale_factor=2, mode="nearest")
        return nn.Sequential(upsample, nn.Conv2d(channels, out, kernel, 1, "same", bias=bias))

    def _space(self, x: Tensor) -> Tensor:
        channels, height, width = self.grid
        if not self.deter_blocks:
            return self.linear(x).reshape(-1, *self.grid)
        stoch, deter = x[:, : -self.deter_dim], x[:, -self.deter_dim :]
        # Block g's outputs are ordered (height, width, channels / g): channel group g.
        blocks = self.space_deter(deter).reshape(-1, self.deter_blocks, height, width, channels // self.deter_blocks)
        from_deter = blocks.permute(0, 2, 3, 1, 4).reshape(-1, height, width, channels)
        from_stoch = self.space_stoch(stoch).reshape(-1, height, width, channels)
        return self.space_post((from_deter + from_stoch).permute(0, 3, 1, 2))

    def forward(self, x: Tensor) -> Tensor:
        x = self.net(self._space(x))
        return torch.sigmoid(x) - 0.5 if self.output == "sigmoid" else x

