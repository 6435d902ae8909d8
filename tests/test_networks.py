import pytest
import torch
from torch import nn

from world_model import distributions as dists
from world_model.multi import MultiDecoder, MultiEncoder, image_to_float, split_keys
from world_model.networks import ChannelNorm, ConvDecoder, ConvEncoder, UpsampleConv


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (48, 80)])
@pytest.mark.parametrize("norm,act", [(True, "silu"), (False, "elu")])
def test_conv_encoder_decoder_shapes(size, norm, act):
    height, width = size
    encoder = ConvEncoder(3, size, depth=4, act=act, norm=norm)
    assert encoder.out_dim == 32 * (height // 16) * (width // 16)
    x = torch.randn(5, 3, height, width)
    embed = encoder(x)
    assert embed.shape == (5, encoder.out_dim)
    decoder = ConvDecoder(7, 2, size, depth=4, act=act, norm=norm)
    assert decoder(torch.randn(5, 7)).shape == (5, 2, height, width)


def test_conv_channels_follow_the_depth_multiplier():
    encoder = ConvEncoder(3, (64, 64), depth=6)
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [6, 12, 24, 48]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)


@pytest.mark.parametrize("size", [(30, 30), (64, 40), (8, 8)])
def test_image_sizes_not_divisible_by_16_are_rejected(size):
    with pytest.raises(ValueError, match="multiples of 16"):
        ConvEncoder(3, size)
    with pytest.raises(ValueError, match="multiples of 16"):
        split_keys({"image": (*size, 3)})


def test_channel_norm_normalises_each_pixel_over_channels():
    x = torch.randn(2, 8, 4, 4) * 5 + 3
    y = ChannelNorm(8)(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 4, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(2, 4, 4), atol=1e-3, rtol=0)


def test_split_keys_sorts_images_from_vectors_and_skips_flags():
    shapes = {"image": (64, 64, 3), "depth": (64, 64, 1), "pos": (3,), "reward": (), "is_first": ()}
    assert split_keys(shapes) == (["image", "depth"], ["pos"])
    with pytest.raises(ValueError, match="supported are images"):
        split_keys({"grid": (4, 4)})
    with pytest.raises(ValueError, match="share one height"):
        split_keys({"a": (32, 32, 3), "b": (64, 64, 3)})


def test_image_to_float_range_and_layout():
    x = torch.tensor([0, 255], dtype=torch.uint8).reshape(1, 1, 2, 1).expand(1, 1, 2, 3)
    y = image_to_float(x)
    assert y.shape == (1, 3, 1, 2)
    assert y.min() == -0.5 and y.max() == 0.5


@pytest.mark.parametrize("lead", [(4,), (2, 3)])
def test_multi_encoder_and_decoder_with_images_and_vectors(lead):
    shapes = {"image": (32, 32, 3), "depth": (32, 32, 1), "pos": (3,), "vel": (2,)}
    encoder = MultiEncoder(shapes, depth=4, units=16, layers=1)
    assert encoder.embed_dim == 32 * 2 * 2 + 16
    obs = {
        "image": torch.randint(0, 256, (*lead, 32, 32, 3), dtype=torch.uint8),
        "depth": torch.randint(0, 256, (*lead, 32, 32, 1), dtype=torch.uint8),
        "pos": torch.randn(*lead, 3),
        "vel": torch.randn(*lead, 2),
    }
    assert encoder(obs).shape == (*lead, encoder.embed_dim)
    decoder = MultiDecoder(10, shapes, depth=4, units=16, layers=1)
    out = decoder(torch.randn(*lead, 10))
    targets = encoder.prepare(obs)
    assert targets["image"].shape == out["image"].mean.shape == (*lead, 3, 32, 32)
    assert out["depth"].mean.shape == (*lead, 1, 32, 32)
    assert out["vel"].mean.shape == (*lead, 2)
    for key in shapes:
        assert out[key].log_prob(targets[key]).shape == lead


def test_five_bit_images_are_quantised_with_dequantisation_noise():
    # PlaNet: floor(x / 8) / 32 + U(0, 1/32) - 0.5, the same noisy image for encoder and decoder.
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16, 1).expand(2, 16, 16, 3)
    clean = image_to_float(x, bits=5)
    assert torch.allclose(clean, (torch.div(x.int(), 8, rounding_mode="floor").float() / 32 - 0.5).movedim(-1, -3))
    assert clean.unique().numel() == 32
    noisy = image_to_float(x, bits=5, noise=True)
    step = noisy - clean
    assert step.min() >= 0 and step.max() < 1 / 32 and step.std() > 0.005
    encoder = MultiEncoder({"image": (16, 16, 3)}, depth=4, image_bits=5, cnn=dict(mults=(1, 2)))
    first, second = encoder.prepare({"image": x}), encoder.prepare({"image": x})
    assert not torch.equal(first["image"], second["image"])  # fresh noise on every call
    with pytest.raises(ValueError, match="image_bits=9"):
        MultiEncoder({"image": (16, 16, 3)}, image_bits=9)


def test_encoder_reports_a_wrong_observation_shape():
    encoder = MultiEncoder({"image": (32, 32, 3)}, depth=4)
    with pytest.raises(ValueError, match=r"expected trailing shape \(32, 32, 3\)"):
        encoder({"image": torch.zeros(2, 3, 32, 32, dtype=torch.uint8)})


def test_decoder_distributions():
    pred, target = torch.randn(2, 3, 4, 4), torch.rand(2, 3, 4, 4) - 0.5
    mse = dists.MSE(pred, event_dims=3)
    torch.testing.assert_close(mse.log_prob(target), -((pred - target) ** 2).sum((1, 2, 3)))
    decoder = MultiDecoder(5, {"image": (16, 16, 3), "pos": (2,)}, depth=2, image_dist="normal", vector_dist="mse")
    out = decoder(torch.randn(5))
    assert isinstance(out["image"], dists.Normal) and isinstance(out["pos"], dists.MSE)
    with pytest.raises(ValueError, match="symlog_mse"):
        MultiDecoder(5, {"pos": (2,)}, vector_dist="laplace")


def test_symlog_inputs_are_applied_only_when_asked():
    torch.manual_seed(0)
    x = torch.tensor([[1e4, -3.0]])
    for symlog_inputs in (True, False):
        encoder = MultiEncoder({"pos": (2,)}, units=8, layers=1, symlog_inputs=symlog_inputs)
        expected = encoder.mlp(dists.symlog(x) if symlog_inputs else x)
        torch.testing.assert_close(encoder({"pos": x}), expected)


def _spatial_sizes(net: torch.nn.Sequential, x: torch.Tensor) -> list[int]:
    sizes = []
    for layer in net:
        x = layer(x)
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            assert x.shape[-1] == x.shape[-2]
            sizes.append(x.shape[-1])
    return sizes


@pytest.mark.parametrize("depth", [32, 48])
def test_valid_layout_matches_the_dreamerv1_v2_and_planet_shapes(depth):
    encoder = ConvEncoder(3, (64, 64), depth=depth, act="elu", norm=False, resize="valid")
    assert encoder.out_dim == 32 * depth
    x = torch.randn(2, 3, 64, 64)
    assert encoder(x).shape == (2, 32 * depth)
    assert _spatial_sizes(encoder.net, x) == [31, 14, 6, 2]
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (0, 0) for c in convs)

    decoder = ConvDecoder(230, 3, (64, 64), depth=depth, act="elu", norm=False, resize="valid")
    assert decoder.grid == (32 * depth, 1, 1)
    assert decoder(torch.randn(2, 230)).shape == (2, 3, 64, 64)
    grid = decoder.linear(torch.randn(2, 230)).reshape(-1, *decoder.grid)
    assert _spatial_sizes(decoder.net, grid) == [5, 13, 30, 64]
    deconvs = [m for m in decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in deconvs] == [4 * depth, 2 * depth, depth, 3]
    assert [c.kernel_size[0] for c in deconvs] == [5, 5, 6, 6]
    assert isinstance(decoder.net[-1], torch.nn.ConvTranspose2d)  # no activation after the output


def test_valid_layout_has_the_reference_parameter_counts():
    depth, features = 32, 230  # DreamerV1: 200 deterministic + 30 stochastic features

    def conv(k, cin, cout):
        return k * k * cin * cout + cout

    encoder = ConvEncoder(3, (64, 64), depth=depth, act="relu", norm=False, resize="valid")
    expected = conv(4, 3, 32) + conv(4, 32, 64) + conv(4, 64, 128) + conv(4, 128, 256)
    assert sum(p.numel() for p in encoder.parameters()) == expected == 690_144
    decoder = ConvDecoder(features, 3, (64, 64), depth=depth, act="relu", norm=False, resize="valid")
    dense = features * 1024 + 1024
    expected = dense + conv(5, 1024, 128) + conv(5, 128, 64) + conv(6, 64, 32) + conv(6, 32, 3)
    assert sum(p.numel() for p in decoder.parameters()) == expected


@pytest.mark.parametrize("size,mults", [((32, 32), (1, 2, 4, 8)), ((64, 64), (1, 2, 4)), ((64, 128), (1, 2, 4, 8))])
def test_valid_layout_rejects_other_sizes_and_stage_counts(size, mults):
    with pytest.raises(ValueError, match="resize='valid' needs 64x64 images and 4 stages"):
        ConvEncoder(3, size, mults=mults, resize="valid")
    with pytest.raises(ValueError, match="resize='valid' needs 64x64 images and 4 stages"):
        ConvDecoder(8, 3, size, mults=mults, resize="valid")


def test_valid_layout_rejects_deter_blocks_and_oversized_kernels():
    with pytest.raises(ValueError, match="deter_blocks=4 is not supported with resize='valid'"):
        ConvDecoder(40, 3, (64, 64), resize="valid", deter_blocks=4, deter_dim=32)
    with pytest.raises(ValueError, match="kernel 6 is too large for resize='valid'"):
        ConvEncoder(3, (64, 64), kernel=6, resize="valid")
    with pytest.raises(ValueError, match="choose one of"):
        ConvEncoder(3, (64, 64), resize="same")


def _squares(count: int, generator: torch.Generator) -> torch.Tensor:
    """Coloured squares on a dark background, in [-0.5, 0.5]."""
    images = torch.full((count, 3, 64, 64), -0.4)
    for image in images:
        side = int(torch.randint(12, 28, (1,), generator=generator))
        top, left = torch.randint(0, 64 - side, (2,), generator=generator).tolist()
        image[:, top : top + side, left : left + side] = torch.rand(3, 1, 1, generator=generator) - 0.5
    return images


def _autoencoder_errors(seed: int, steps: int = 100) -> tuple[float, float]:
    """Reconstruction MSE of a depth-8 valid-layout autoencoder before and after training."""
    torch.manual_seed(seed)
    images = _squares(8, torch.Generator().manual_seed(seed))
    encoder = ConvEncoder(3, (64, 64), depth=8, act="elu", norm=False, resize="valid")
    decoder = ConvDecoder(encoder.out_dim, 3, (64, 64), depth=8, act="elu", norm=False, resize="valid")
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    with torch.no_grad():
        initial = ((decoder(encoder(images)) - images) ** 2).mean().item()
    for _ in range(steps):
        loss = ((decoder(encoder(images)) - images) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = ((decoder(encoder(images)) - images) ** 2).mean().item()
    return initial, final


def test_valid_layout_learns_to_autoencode_images():
    # Layers this small run fastest on one thread, and intra-op threads slow
    # them down many times over on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        initial, final = _autoencoder_errors(seed=0)
    finally:
        torch.set_num_threads(threads)
    assert final < 0.5 * initial, (initial, final)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # the plain pair, kernel 4
@pytest.mark.parametrize("kernel", [3, 4, 5, 7])
def test_upsample_conv_computes_the_upsampled_convolution_and_its_gradients(kernel):
    torch.manual_seed(0)
    fast = UpsampleConv(6, 5, kernel).double()
    plain = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(6, 5, kernel, 1, "same")).double()
    assert fast.state_dict().keys() == plain.state_dict().keys()  # checkpoints load either way
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(3, 6, 5, 7, dtype=torch.float64)
    grad_out = torch.randn(3, 5, 10, 14, dtype=torch.float64)
    outputs, grads = [], []
    for net in (fast, plain):
        xi = x.clone().requires_grad_(True)
        out = net(xi)
        out.backward(grad_out)
        outputs.append(out)
        grads.append([xi.grad, net[1].weight.grad, net[1].bias.grad])
    assert outputs[0].shape == (3, 5, 10, 14)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-10, atol=1e-10)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
