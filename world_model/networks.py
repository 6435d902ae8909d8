"""Convolutional image encoder and decoder.

Stages of convolutions whose channels are ``depth * mults[i]`` shrink the
resolution to a small grid, and the decoder mirrors them. Three layouts,
chosen by ``resize``:

- ``stride`` (DreamerV3 2023): stride-2 convolutions with ``kernel`` 4,
  padded so that each stage halves the resolution exactly (a 4 x 4 grid for
  64 x 64 images and four stages; any size divisible by ``2 ** len(mults)``
  works), and transposed stride-2 convolutions back; ``mults`` (1, 2, 4, 8).
- ``maxpool`` (2024 DreamerV3): a stride-1 convolution with ``kernel`` 5
  followed by 2 x 2 max-pooling; back by nearest-neighbour upsampling and a
  stride-1 convolution; ``mults`` (2, 3, 4, 4).
- ``valid`` (DreamerV1, DreamerV2 and PlaNet): the stride-2 convolutions with
  ``kernel`` 4 but no padding, 64 -> 31 -> 14 -> 6 -> 2, so the embedding has
  ``32 * depth`` features for ``mults`` (1, 2, 4, 8). The decoder maps the
  features with one linear layer to a 1 x 1 grid of as many channels and
  grows it with unpadded stride-2 transposed convolutions of kernels 5, 5, 6
  and 6, 1 -> 5 -> 13 -> 30 -> 64. That arithmetic only closes for 64 x 64
  images and four stages, so nothing else is accepted.

Every hidden layer is conv -> norm over channels -> activation (``norm`` as in
:mod:`world_model.layers`: ``'layer'`` or ``'rms'`` for DreamerV3, ``'none'``
for DreamerV1, DreamerV2 and PlaNet, whose convolutions use ReLU (DreamerV1,
PlaNet) or ELU (DreamerV2)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_model.layers import BlockLinear, activation, linear_bias, make_norm, mark_output, norm_kind
from world_model.mlp import MLP

RESIZES = ("stride", "maxpool", "valid")
IMAGE_OUTPUTS = ("linear", "sigmoid")
DEFAULT_MULTS = (1, 2, 4, 8)
# resize="valid": the references' decoder kernels; with stride 2 and no padding
# they take a 1 x 1 grid to 64 x 64 in four stages and to no other size.
VALID_KERNELS = (5, 5, 6, 6)
VALID_IMAGE_SIZE = (64, 64)


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


def _check_valid_size(height: int, width: int, stages: int) -> None:
    """Raise unless the unpadded ``valid`` layout fits: its decoder only ends
    at 64 x 64 after four stages (stricter than :func:`check_image_size`)."""
    if (height, width) != VALID_IMAGE_SIZE or stages != len(VALID_KERNELS):
        raise ValueError(
            f"image size {height}x{width} with {stages} stages is not supported: resize='valid' needs "
            f"{VALID_IMAGE_SIZE[0]}x{VALID_IMAGE_SIZE[1]} images and {len(VALID_KERNELS)} stages "
            f"(its unpadded decoder kernels {VALID_KERNELS} grow a 1x1 grid to exactly that size)"
        )


class ConvEncoder(nn.Module):
    """(N, C, H, W) float images -> (N, out_dim) embeddings.

    ``out_dim = depth * mults[-1] * (H / 2**S) * (W / 2**S)`` with S =
    ``len(mults)`` stages (4096 for 64 x 64, depth 32, mults (1, 2, 4, 8)).
    With ``resize="valid"`` each unpadded stage maps a side n to
    ``(n - kernel) // 2 + 1`` instead, so ``out_dim = depth * mults[-1] * 2 * 2``
    for 64 x 64 and ``kernel`` 4 (``32 * depth``: 1024 at depth 32, as in
    DreamerV1/V2 and PlaNet).
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
        if resize == "valid":
            _check_valid_size(height, width, stages)
        check_image_size(height, width, stages)
        bias = linear_bias(norm)
        layers: list[nn.Module] = []
        channels = in_channels
        grid = (height // 2**stages, width // 2**stages)
        if resize == "valid":
            grid = (height, width)
        for stage, mult in enumerate(mults):
            out = depth * mult
            if resize == "stride":
                layers.append(nn.Conv2d(channels, out, kernel, 2, (kernel - 1) // 2, bias=bias))
            elif resize == "valid":
                if min(grid) < kernel:
                    raise ValueError(
                        f"kernel {kernel} is too large for resize='valid': stage {stage + 1} would get a "
                        f"{grid[0]}x{grid[1]} map, smaller than the kernel (the references use 4)"
                    )
                layers.append(nn.Conv2d(channels, out, kernel, 2, 0, bias=bias))
                grid = ((grid[0] - kernel) // 2 + 1, (grid[1] - kernel) // 2 + 1)
            else:
                layers += [nn.Conv2d(channels, out, kernel, 1, "same", bias=bias), nn.MaxPool2d(2)]
            layers += _post(out, act, norm)
            channels = out
        self.net = nn.Sequential(*layers)
        self.out_dim = channels * grid[0] * grid[1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)


class UpsampleConv(nn.Sequential):
    """2x nearest-neighbour upsampling, then a stride-1 ``'same'`` convolution,
    computed at the input's resolution.

    Each of the four output phases (row and column parity) of
    ``conv(upsample(x))`` reads a fixed 3 x 3 window of ``x`` (for kernel 5)
    whose taps are sums of the kernel's taps. So the pair is one convolution
    of the small map with four times the output channels, then a pixel
    shuffle: for kernel 5, 36 of every 100 multiply-adds, and no upsampled
    map is stored for the backward pass. The result is the same up to float
    summation order. The children stay ``(Upsample, Conv2d)``, so parameter
    names and checkpoints are those of the plain pair, which even kernels run.
    """

    def __init__(self, channels: int, out: int, kernel: int, bias: bool = True):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, out, kernel, 1, "same", bias=bias))
        self.phased = kernel % 2 == 1
        if not self.phased:
            return
        pad = (kernel - 1) // 2
        # The low-resolution offset that kernel tap i reads, for output phase 0 and 1.
        offsets = [[(phase + i - pad) // 2 for i in range(kernel)] for phase in (0, 1)]
        low, high = min(map(min, offsets)), max(map(max, offsets))
        self.window = high - low + 1
        taps = torch.zeros(2, self.window, kernel)
        for phase, row in enumerate(offsets):
            for i, offset in enumerate(row):
                taps[phase, offset - low, i] = 1.0
        self.register_buffer("taps", taps, persistent=False)
        self.pad = (-low, high, -low, high)

    def forward(self, x: Tensor) -> Tensor:
        if not self.phased:
            return super().forward(x)
        conv = self[1]
        taps = self.taps.to(conv.weight.dtype)
        # weight[o, py, px, c, a, b] = sum_ij taps[py, a, i] * W[o, c, i, j] * taps[px, b, j]
        weight = torch.einsum("yai,ocij,xbj->oyxcab", taps, conv.weight, taps)
        weight = weight.reshape(-1, conv.in_channels, self.window, self.window)
        bias = conv.bias.repeat_interleave(4) if conv.bias is not None else None
        return F.pixel_shuffle(F.conv2d(F.pad(x, self.pad), weight, bias), 2)


class ConvDecoder(nn.Module):
    """(N, in_dim) features -> (N, out_channels, H, W) image predictions.

    The features fill a (depth * mults[-1], H / 2**S, W / 2**S) grid, which
    the stages upsample; the last layer has no norm and no activation. With
    ``resize="valid"`` (64 x 64 and four stages only) a linear layer without
    activation fills a (depth * mults[-1] * 4, 1, 1) grid instead, as many
    units as the encoder's 2 x 2 output (``32 * depth``, the references'
    Dense + reshape), and the stages are unpadded stride-2 transposed
    convolutions of kernels 5, 5, 6, 6: 1 -> 5 -> 13 -> 30 -> 64.

    Args:
        kernel: the kernel of every stage for ``stride`` and ``maxpool``.
            Ignored by ``valid``, whose kernels (5, 5, 6, 6) are fixed by the
            layout: no others end at 64 x 64.
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
        if resize == "valid":
            _check_valid_size(height, width, stages)
            if deter_blocks:
                raise ValueError(
                    f"deter_blocks={deter_blocks} is not supported with resize='valid': the 2024 DreamerV3 "
                    "decoder input fills a padded layout's grid; use deter_blocks=0 or another resize"
                )
        check_image_size(height, width, stages)
        self.output, self.deter_blocks, self.deter_dim = output, deter_blocks, deter_dim
        if resize == "valid":
            # The encoder's 2 x 2 output size as channels of a 1 x 1 grid: 32 * depth for mults (1, 2, 4, 8).
            self.grid = (depth * mults[-1] * 2 * 2, 1, 1)
        else:
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
        kernels = VALID_KERNELS if resize == "valid" else (kernel,) * stages
        for mult, stage_kernel in zip(reversed(mults[:-1]), kernels):
            out = depth * mult
            layers += [self._up(channels, out, stage_kernel, resize, bias), *_post(out, act, norm)]
            channels = out
        last = self._up(channels, out_channels, kernels[-1], resize, True)
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
        if resize == "valid":
            return nn.ConvTranspose2d(channels, out, kernel, 2, bias=bias)
        return UpsampleConv(channels, out, kernel, bias)

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

