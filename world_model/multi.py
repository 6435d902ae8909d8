"""Encoders and decoders for dict observations (images and vectors together).

Observation keys are split by shape: (H, W, C) entries are images (uint8,
channels last, as environments return them) and (D,) entries are vectors.
All image keys are stacked along channels into one convolutional network
and all vector keys are concatenated into one MLP, as in DreamerV3; the
embedding is the concatenation of both parts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from world_model import distributions as dists
from world_model.layers import mark_output
from world_model.mlp import MLP
from world_model.networks import DEFAULT_MULTS, ConvDecoder, ConvEncoder, check_image_size

NON_OBSERVATION_KEYS = ("reward", "is_first", "is_last", "is_terminal", "action")
DECODER_DISTS = ("mse", "symlog_mse", "normal")


def make_dist(kind: str, pred: Tensor, event_dims: int):
    """Read decoder outputs ``pred`` as the distribution named ``kind``."""
    if kind == "mse":
        return dists.MSE(pred, event_dims)
    if kind == "symlog_mse":
        return dists.MSE(pred, event_dims, symlog=True)
    if kind == "normal":
        return dists.Normal(pred, 1.0, event_dims)
    raise ValueError(f"unknown decoder distribution {kind!r}; choose one of {DECODER_DISTS}")


def split_keys(
    obs_shapes: dict[str, tuple[int, ...]], stages: int = len(DEFAULT_MULTS)
) -> tuple[list[str], list[str]]:
    """Image keys (3-dim shapes) and vector keys (1-dim shapes), in given order.

    Keys that are not observations (reward, flags, action) are skipped.
    """
    images, vectors = [], []
    for key, shape in obs_shapes.items():
        if key in NON_OBSERVATION_KEYS:
            continue
        if len(shape) == 3:
            images.append(key)
        elif len(shape) == 1:
            vectors.append(key)
        else:
            raise ValueError(
                f"observation {key!r} has shape {tuple(shape)}; supported are images (H, W, C) "
                "and vectors (D,)"
            )
    if not images and not vectors:
        raise ValueError(f"no observation keys in {sorted(obs_shapes)}")
    if images:
        sizes = {tuple(obs_shapes[k][:2]) for k in images}
        if len(sizes) > 1:
            raise ValueError(f"image keys {images} must share one height x width, got {sorted(sizes)}")
        check_image_size(*sizes.pop(), stages)
    return images, vectors


def image_to_float(x: Tensor, bits: int = 8, noise: bool = False) -> Tensor:
    """(..., H, W, C) images in [0, 255] -> (..., C, H, W) float in [-0.5, 0.5].

    With ``bits`` < 8 the image is first reduced to that many bits per
    channel, ``floor(x / 2**(8 - bits)) / 2**bits`` (PlaNet: 5), and
    ``noise`` adds uniform dequantisation noise of one quantisation step, so
    the model sees a continuous density rather than a few discrete levels.
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"image bits={bits} must lie in [1, 8]")
    if bits == 8:
        return (x.float() / 255.0 - 0.5).movedim(-1, -3)
    levels = 2**bits
    y = torch.div(x.to(torch.int32), 2 ** (8 - bits), rounding_mode="floor").float() / levels
    if noise:
        y = y + torch.rand_like(y) / levels
    return (y - 0.5).movedim(-1, -3)


def _check_shape(key: str, x: Tensor, shape: tuple[int, ...]) -> None:
    if tuple(x.shape[x.dim() - len(shape) :]) != tuple(shape):
        raise ValueError(f"observation {key!r}: expected trailing shape {tuple(shape)}, got {tuple(x.shape)}")


class MultiEncoder(nn.Module):
    """dict of (..., H, W, C) images and (..., D) vectors -> (..., embed_dim).

    ``cnn``: further :class:`~world_model.networks.ConvEncoder` arguments
    (``mults``, ``kernel``, ``resize``); ``cnn_act``: the CNN's activation
    where it differs from ``act`` (DreamerV1: ReLU convolutions, ELU dense
    layers). ``image_bits``: see :func:`image_to_float`; the noisy input of
    :meth:`prepare` is also what the decoder reconstructs.
    """

    def __init__(
        self,
        obs_shapes: dict[str, tuple[int, ...]],
        depth: int = 32,
        units: int = 512,
        layers: int = 2,
        act: str = "silu",
        norm: bool | str = True,
        symlog_inputs: bool = True,
        cnn: dict | None = None,
        cnn_act: str | None = None,
        image_bits: int = 8,
    ):
        super().__init__()
        cnn = cnn or {}
        if not 1 <= image_bits <= 8:
            raise ValueError(f"image_bits={image_bits} must lie in [1, 8]")
        self.shapes = {k: tuple(v) for k, v in obs_shapes.items()}
        self.image_keys, self.vector_keys = split_keys(self.shapes, len(cnn.get("mults", DEFAULT_MULTS)))
        self.symlog_inputs, self.image_bits = symlog_inputs, image_bits
        self.embed_dim = 0
        if self.image_keys:
            height, width, _ = self.shapes[self.image_keys[0]]
            channels = sum(self.shapes[k][-1] for k in self.image_keys)
            self.cnn = ConvEncoder(channels, (height, width), depth, cnn_act or act, norm, **cnn)
            self.embed_dim += self.cnn.out_dim
        if self.vector_keys:
            size = sum(self.shapes[k][0] for k in self.vector_keys)
            self.mlp = MLP(size, units, layers, act, norm)
            self.embed_dim += self.mlp.out_dim

    def prepare(self, obs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The float inputs: images (..., C, H, W) in [-0.5, 0.5] (reduced to
        ``image_bits``, with dequantisation noise below 8), vectors (..., D)."""
        inputs = {}
        for key in self.image_keys:
            _check_shape(key, obs[key], self.shapes[key])
            inputs[key] = image_to_float(obs[key], self.image_bits, noise=True)
        for key in self.vector_keys:
            _check_shape(key, obs[key], self.shapes[key])
            inputs[key] = obs[key].float()
        return inputs

    def embed(self, inputs: dict[str, Tensor]) -> Tensor:
        """Prepared inputs (see :meth:`prepare`) -> (..., embed_dim)."""
        outputs = []
        if self.image_keys:
            x = torch.cat([inputs[k] for k in self.image_keys], -3) if len(self.image_keys) > 1 else inputs[self.image_keys[0]]
            lead = x.shape[:-3]
            outputs.append(self.cnn(x.reshape(-1, *x.shape[-3:])).reshape(*lead, -1))
        if self.vector_keys:
            x = torch.cat([inputs[k] for k in self.vector_keys], -1)
            outputs.append(self.mlp(dists.symlog(x) if self.symlog_inputs else x))
        return torch.cat(outputs, -1) if len(outputs) > 1 else outputs[0]

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        return self.embed(self.prepare(obs))


class MultiDecoder(nn.Module):
    """(..., feat_dim) features -> {key: distribution over that observation}.

    Image distributions have event shape (C, H, W) and vector distributions
    (D,), over the float inputs of :meth:`MultiEncoder.prepare` (the model
    reconstructs what it was given). ``cnn``: further
    :class:`~world_model.networks.ConvDecoder` arguments; ``cnn_act`` as for
    :class:`MultiEncoder`.
    """

    def __init__(
        self,
        feat_dim: int,
        obs_shapes: dict[str, tuple[int, ...]],
        depth: int = 32,
        units: int = 512,
        layers: int = 2,
        act: str = "silu",
        norm: bool | str = True,
        image_dist: str = "mse",
        vector_dist: str = "symlog_mse",
        cnn: dict | None = None,
        cnn_act: str | None = None,
    ):
        super().__init__()
        for name, kind in (("image_dist", image_dist), ("vector_dist", vector_dist)):
            if kind not in DECODER_DISTS:
                raise ValueError(f"unknown {name} {kind!r}; choose one of {DECODER_DISTS}")
        cnn = cnn or {}
        self.shapes = {k: tuple(v) for k, v in obs_shapes.items()}
        self.image_keys, self.vector_keys = split_keys(self.shapes, len(cnn.get("mults", DEFAULT_MULTS)))
        self.image_dist, self.vector_dist = image_dist, vector_dist
        if self.image_keys:
            height, width, _ = self.shapes[self.image_keys[0]]
            self.channels = [self.shapes[k][-1] for k in self.image_keys]
            self.cnn = ConvDecoder(feat_dim, sum(self.channels), (height, width), depth, cnn_act or act, norm, **cnn)
        if self.vector_keys:
            self.sizes = [self.shapes[k][0] for k in self.vector_keys]
            self.mlp = MLP(feat_dim, units, layers, act, norm)
            self.out = mark_output(nn.Linear(self.mlp.out_dim, sum(self.sizes)), 1.0)

    @property
    def keys(self) -> list[str]:
        return self.image_keys + self.vector_keys

    def forward(self, feat: Tensor) -> dict:
        lead = feat.shape[:-1]
        result = {}
        if self.image_keys:
            x = self.cnn(feat.reshape(-1, feat.shape[-1]))
            x = x.reshape(*lead, *x.shape[1:])
            for key, part in zip(self.image_keys, x.split(self.channels, -3)):
                result[key] = make_dist(self.image_dist, part, 3)
        if self.vector_keys:
            x = self.out(self.mlp(feat))
            for key, part in zip(self.vector_keys, x.split(self.sizes, -1)):
                result[key] = make_dist(self.vector_dist, part, 1)
        return result
