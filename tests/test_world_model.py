import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from world_model.world_model import WorldModel

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TINY = dict(deter=32, hidden=32, stoch=4, classes=4, cnn_depth=4, mlp_units=16, mlp_layers=1)
OBS = {
    "image": {"image": (32, 32, 3)},
    "vector": {"pos": (3,), "vel": (2,)},
    "image+vector": {"image": (32, 32, 3), "pos": (3,)},
}
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"


def make_batch(obs_shapes, batch, length, action_dim=2, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    data = {}
    for key, shape in obs_shapes.items():
        if len(shape) == 3:
            data[key] = torch.randint(0, 256, (batch, length, *shape), generator=g, dtype=torch.uint8)
        else:
            data[key] = torch.randn(batch, length, *shape, generator=g)
    data["action"] = torch.rand(batch, length, action_dim, generator=g) * 2 - 1
    data["action"][:, 0] = 0
    data["reward"] = torch.randn(batch, length, generator=g)
    data["is_first"] = torch.zeros(batch, length, dtype=torch.bool)
    data["is_first"][:, 0] = True
    data["is_last"] = torch.zeros(batch, length, dtype=torch.bool)
    data["is_terminal"] = torch.rand(batch, length, generator=g) < 0.1
    return {k: v.to(device) for k, v in data.items()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("latent", ["categorical", "gaussian"])
@pytest.mark.parametrize("keys", list(OBS))
@pytest.mark.parametrize("batch,length", [(1, 1), (3, 4)])
def test_loss_shapes_and_gradients(device, latent, keys, batch, length):
    torch.manual_seed(0)
    shapes = OBS[keys]
    model = WorldModel(shapes, 2, latent=latent, **TINY).to(device)
    data = make_batch(shapes, batch, length, device=device)
    total, post, last, metrics = model.loss(data)
    assert total.shape == () and torch.isfinite(total)
    assert post["deter"].shape == (batch, length, 32)
    assert post["stoch"].shape == (batch, length, 16 if latent == "categorical" else 4)
    assert all(v.shape[0] == batch and not v.requires_grad for v in last.values())
    terms = [*shapes, "reward", "cont", "dyn", "rep"]
    assert set(metrics) == {f"{k}_loss" for k in terms} | {"model_loss", "kl", "post_ent", "prior_ent"}
    assert all(v.shape == () and v.device.type == device for v in metrics.values())
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    # Continuing from the returned state works and the heads read any feature batch.
    model.loss(data, last)
    feat = model.feat(post)
    assert feat.shape == (batch, length, model.feat_size)
    assert model.reward(feat).shape == model.cont(feat).shape == (batch, length)
    state = model.initial(batch)
    embed = model.encode({k: data[k][:, 0] for k in shapes})
    post1, _ = model.obs_step(state, data["action"][:, 0], embed, data["is_first"][:, 0])
    assert model.img_step(post1, data["action"][:, 0])["deter"].shape == (batch, 32)


def test_encode_accepts_one_or_two_leading_dims():
    shapes = OBS["image+vector"]
    model = WorldModel(shapes, 2, **TINY)
    data = make_batch(shapes, 3, 4)
    obs = {k: data[k] for k in shapes}
    seq = model.encode(obs)
    assert seq.shape == (3, 4, model.encoder.embed_dim)
    torch.testing.assert_close(model.encode({k: v[:, 2] for k, v in obs.items()}), seq[:, 2])


def test_loss_scale_keys_are_checked():
    shapes = OBS["image+vector"]
    model = WorldModel(shapes, 2, loss_scales={"image": 2.0, "cont": 5.0}, **TINY)
    assert model.loss_scales == {"image": 2.0, "pos": 1.0, "reward": 1.0, "cont": 5.0, "dyn": 0.5, "rep": 0.1}
    with pytest.raises(ValueError, match=r"\['imgae'\].*terms \['cont', 'image', 'pos', 'reward'\]"):
        WorldModel(shapes, 2, loss_scales={"imgae": 1.0}, **TINY)
    with pytest.raises(ValueError, match="not loss terms"):
        WorldModel(shapes, 2, cont=False, loss_scales={"cont": 1.0}, **TINY)
    with pytest.raises(ValueError, match="dyn_scale"):
        WorldModel(shapes, 2, loss_scales={"dyn": 1.0}, **TINY)
    # The loss itself refuses to combine terms and scales that disagree.
    del model.loss_scales["pos"]
    with pytest.raises(KeyError, match=r"terms \[.*'pos'.*\] do not match loss scales"):
        model.loss(make_batch(shapes, 2, 3))


def test_loss_is_the_weighted_sum_of_its_terms():
    shapes = OBS["image+vector"]
    model = WorldModel(shapes, 2, dyn_scale=0.3, rep_scale=0.2, loss_scales={"pos": 3.0}, **TINY)
    total, _, _, metrics = model.loss(make_batch(shapes, 2, 3))
    expected = sum(model.loss_scales[k] * metrics[f"{k}_loss"] for k in model.loss_scales)
    torch.testing.assert_close(total.detach(), expected)


@pytest.mark.parametrize("latent", ["categorical", "gaussian"])
def test_kl_terms_train_prior_and_posterior_separately(latent):
    shapes = OBS["vector"]
    data = make_batch(shapes, 4, 1)  # one step: no recurrence links posterior and prior
    zero = {"pos": 0.0, "vel": 0.0, "reward": 0.0, "cont": 0.0}

    def grads(dyn, rep):
        torch.manual_seed(0)
        model = WorldModel(shapes, 2, latent=latent, free_bits=0.0, dyn_scale=dyn, rep_scale=rep, loss_scales=zero, **TINY)
        model.loss(data)[0].backward()
        return model.rssm.prior_stats.weight.grad, model.rssm.post_stats.weight.grad

    prior, post = grads(1.0, 0.0)
    assert prior.abs().sum() > 0 and post.abs().sum() == 0
    prior, post = grads(0.0, 1.0)
    assert prior.abs().sum() == 0 and post.abs().sum() > 0
    prior_half, _ = grads(0.5, 0.0)
    torch.testing.assert_close(prior_half, 0.5 * grads(1.0, 0.0)[0])


def test_without_continue_head():
    shapes = OBS["vector"]
    model = WorldModel(shapes, 2, cont=False, reward_dist="normal", **TINY)
    _, post, _, metrics = model.loss(make_batch(shapes, 2, 3))
    assert "cont_loss" not in metrics
    assert torch.equal(model.cont(model.feat(post)), torch.ones(2, 3))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="twohot"):
        WorldModel(OBS["vector"], 2, reward_dist="laplace", **TINY)
    with pytest.raises(ValueError, match="multiples of 16"):
        WorldModel({"image": (50, 50, 3)}, 2, **TINY)


def test_report_video_layout_and_marks():
    shapes = OBS["image+vector"]
    model = WorldModel(shapes, 2, **TINY)
    data = make_batch(shapes, 6, 8)
    out = model.report(data, context=3)
    video = out["openloop"]
    assert video.dtype == np.uint8 and video.shape == (8, 3 * 32, 4 * 32, 3)
    # Top row is the ground truth of the first four sequences, side by side.
    np.testing.assert_array_equal(video[:, :32, 32:64], data["image"][1].numpy())
    green, red = np.array([0, 255, 0]), np.array([255, 0, 0])
    model_row = video[:, 32:64]
    assert (model_row[:3, 0, 0] == green).all() and (model_row[3:, 0, 0] == red).all()
    assert (model_row[:, 31, 100] == model_row[:, 0, 0]).all()  # every sequence is framed
    for key in shapes:
        assert out[f"openloop_{key}_mse"].shape == () and out[f"openloop_{key}_mse_repeat_last"] >= 0
    vector_only = WorldModel(OBS["vector"], 2, **TINY).report(make_batch(OBS["vector"], 2, 8))
    assert "openloop" not in vector_only and "openloop_pos_mse" in vector_only
    with pytest.raises(ValueError, match="context"):
        model.report(data, context=8)


def test_report_imagines_a_new_episode_from_the_initial_state():
    # A replayed sequence that crosses into the next episode: the imagined frames
    # after the boundary must not continue the previous episode's state.
    shapes = OBS["image"]
    model = WorldModel(shapes, 2, **TINY)
    data = make_batch(shapes, 2, 8)
    data["is_first"][:, 5] = True
    data["action"][:, 5] = 0
    other = {k: v.clone() for k, v in data.items()}
    other["image"][:, :5] = 255 - other["image"][:, :5]
    other["action"][:, 1:5] = -other["action"][:, 1:5]
    videos = []
    for batch in (data, other):
        torch.manual_seed(1)
        videos.append(model.report(batch, context=3)["openloop"])
    assert not np.array_equal(videos[0][3:5], videos[1][3:5])  # before the boundary the context matters
    np.testing.assert_array_equal(videos[0][5:], videos[1][5:])


def test_model_size_configs_are_constructor_arguments():
    params = inspect.signature(WorldModel).parameters
    sizes = {}
    for name in ("xs", "s", "m", "l", "xl", "tiny"):
        config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        assert set(config) <= set(params), set(config) - set(params)
        sizes[name] = config
    # DreamerV3 (arXiv 2301.04104v1, Table B): widths grow with the size.
    order = ["xs", "s", "m", "l", "xl"]
    for key in ("deter", "hidden", "cnn_depth", "mlp_units", "mlp_layers"):
        values = [sizes[n][key] for n in order]
        assert values == sorted(values) and values[0] < values[-1]
    assert [sizes[n]["deter"] for n in order] == [256, 512, 1024, 2048, 4096]
    model = WorldModel({"image": (64, 64, 3)}, 6, **sizes["tiny"])
    total, *_ = model.loss(make_batch({"image": (64, 64, 3)}, 2, 3, action_dim=6))
    assert torch.isfinite(total)


# ----- learning ---------------------------------------------------------------------
def moving_dot(batch, length, generator, size=32, dot=8, speed=4.0):
    """A white square moved by 2-D actions; reward is its horizontal position in [0, 1]."""
    pos = torch.rand(batch, 2, generator=generator) * (size - dot)
    action = torch.rand(batch, length, 2, generator=generator) * 2 - 1
    action[:, 0] = 0
    image = torch.zeros(batch, length, size, size, 3, dtype=torch.uint8)
    reward = torch.zeros(batch, length)
    grid = torch.arange(size)
    for t in range(length):
        pos = (pos + speed * action[:, t]).clamp(0, size - dot)
        corner = pos.round().long()
        rows = (grid >= corner[:, :1]) & (grid < corner[:, :1] + dot)
        cols = (grid >= corner[:, 1:]) & (grid < corner[:, 1:] + dot)
        image[:, t] = (rows[:, :, None] & cols[:, None, :])[..., None].to(torch.uint8) * 255
        reward[:, t] = pos[:, 1] / (size - dot)
    is_first = torch.zeros(batch, length, dtype=torch.bool)
    is_first[:, 0] = True
    flags = torch.zeros(batch, length, dtype=torch.bool)
    return dict(image=image, action=action, reward=reward, is_first=is_first, is_last=flags, is_terminal=flags)


@pytest.fixture
def one_thread():
    # On a small shared CPU, intra-op threads contend; one thread is several times faster here.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_on_moving_dot(model, updates, lr, seed=0):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-6)
    history = []
    for _ in range(updates):
        total, _, _, metrics = model.loss(moving_dot(16, 12, g))
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        opt.step()
        history.append({k: metrics[k].item() for k in ("image_loss", "reward_loss")})
    first = history[0]
    last = {k: np.mean([h[k] for h in history[-10:]]) for k in first}
    report = model.report(moving_dot(8, 20, torch.Generator().manual_seed(123)), context=5, num=8)
    return first, last, report


def test_world_model_learns_moving_dot(one_thread):
    # Tiny DreamerV3 model, 250 updates of 16 x 12 frames at 32 x 32 (about 45 s on 2 CPU cores).
    torch.manual_seed(0)
    model = WorldModel({"image": (32, 32, 3)}, 2, deter=64, hidden=64, stoch=8, classes=8,
                       cnn_depth=8, mlp_units=64, mlp_layers=1)
    first, last, report = train_on_moving_dot(model, 250, 3e-3)
    # Predicting a blank frame plateaus near 5x below the start; the dot itself must be learned.
    assert last["image_loss"] < first["image_loss"] / 10, (first, last)
    assert last["reward_loss"] < first["reward_loss"] / 4, (first, last)
    assert report["openloop_image_mse"] < 0.6 * report["openloop_image_mse_repeat_last"], report


@pytest.mark.slow
def test_dreamerv1_setting_learns_moving_dot(one_thread):
    torch.manual_seed(0)
    model = WorldModel(
        {"image": (32, 32, 3)}, 2, latent="gaussian", deter=64, hidden=64, stoch=8, cnn_depth=8,
        mlp_units=64, mlp_layers=1, act="elu", norm=False, gru_norm=False, learned_initial=False,
        image_dist="normal", reward_dist="normal", cont=False, free_bits=3.0, free_bits_mean=True,
        dyn_scale=1.0, rep_scale=1.0,
    )
    first, last, report = train_on_moving_dot(model, 300, 1e-3)
    # The Gaussian NLL carries a constant of 0.5 log(2 pi) per pixel; compare squared errors.
    constant = 0.5 * np.log(2 * np.pi) * 32 * 32 * 3
    assert last["image_loss"] - constant < (first["image_loss"] - constant) / 10, (first, last)
    assert report["openloop_image_mse"] < 0.6 * report["openloop_image_mse_repeat_last"], report
