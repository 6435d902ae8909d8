import pytest
import torch

from world_model import distributions as dists
from world_model.multi import MultiDecoder, MultiEncoder, image_to_float, split_keys
from world_model.networks import ChannelNorm, ConvDecoder, ConvEncoder


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
    targets = decoder.targets(obs)
    assert targets["image"].shape == out["image"].mean.shape == (*lead, 3, 32, 32)
    assert out["depth"].mean.shape == (*lead, 1, 32, 32)
    assert out["vel"].mean.shape == (*lead, 2)
    for key in shapes:
        assert out[key].log_prob(targets[key]).shape == lead


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
