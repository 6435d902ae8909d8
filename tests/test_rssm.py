import pytest
import torch

from world_model.rssm import RSSM

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def make_rssm(latent="categorical", **kwargs):
    torch.manual_seed(0)
    args = dict(latent=latent, deter=32, hidden=24, stoch=4, classes=5)
    args.update(kwargs)
    return RSSM(3, 10, **args)


def sequence(batch=2, length=8, embed=10, action=3, device="cpu"):
    g = torch.Generator().manual_seed(1)
    embed = torch.randn(batch, length, embed, generator=g).to(device)
    action = torch.randn(batch, length, action, generator=g).to(device)
    is_first = torch.zeros(batch, length, dtype=torch.bool, device=device)
    is_first[:, 0] = True
    return embed, action, is_first


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("latent", ["categorical", "gaussian"])
@pytest.mark.parametrize("batch,length", [(1, 1), (3, 5)])
def test_shapes(latent, batch, length, device):
    rssm = make_rssm(latent).to(device)
    stoch_flat = 20 if latent == "categorical" else 4
    assert rssm.feat_size == stoch_flat + 32
    embed, action, is_first = sequence(batch, length, device=device)
    post, prior = rssm.observe(None, embed, action, is_first)
    stats = {"logits": (4, 5)} if latent == "categorical" else {"mean": (4,), "std": (4,)}
    for state in (post, prior):
        assert set(state) == {"deter", "stoch", *stats}
        assert state["deter"].shape == (batch, length, 32)
        assert state["stoch"].shape == (batch, length, stoch_flat)
        for key, shape in stats.items():
            assert state[key].shape == (batch, length, *shape)
        assert all(v.device.type == device for v in state.values())
    assert rssm.feat(post).shape == (batch, length, rssm.feat_size)
    assert rssm.kl(post, prior).shape == (batch, length)
    start = {k: v[:, -1] for k, v in post.items()}
    states = rssm.imagine(start, torch.zeros(batch, 6, 3, device=device), 6)
    assert states["deter"].shape == (batch, 6, 32)
    states, actions = rssm.imagine(start, lambda s: torch.tanh(s["deter"][:, :3]), 4)
    assert states["stoch"].shape == (batch, 4, stoch_flat) and actions.shape == (batch, 4, 3)


def test_rejects_unknown_latent():
    with pytest.raises(ValueError, match="gaussian"):
        RSSM(3, 10, latent="discrete")


@pytest.mark.parametrize("latent", ["categorical", "gaussian"])
def test_is_first_resets_state_inside_observe(latent):
    rssm = make_rssm(latent)
    embed, action, is_first = sequence(length=8)
    is_first[:, 4] = True
    # A non-initial carried state must be ignored where the first step is_first.
    carried = {k: v + 1.0 for k, v in rssm.initial(2).items()}
    post, _ = rssm.observe(carried, embed, action, is_first, sample=False)
    fresh, _ = rssm.observe(None, embed[:, 4:], action[:, 4:], is_first[:, 4:], sample=False)
    start, _ = rssm.observe(None, embed[:, :4], action[:, :4], is_first[:, :4], sample=False)
    for key in post:
        torch.testing.assert_close(post[key][:, 4:], fresh[key])
        torch.testing.assert_close(post[key][:, :4], start[key])
    # Without the reset the second half depends on the first.
    is_first[:, 4] = False
    joined, _ = rssm.observe(None, embed, action, is_first, sample=False)
    assert not torch.allclose(joined["deter"][:, 4:], fresh["deter"])


def test_is_first_zeroes_the_action():
    rssm = make_rssm()
    embed, action, is_first = sequence(length=3)
    a, _ = rssm.observe(None, embed, action, is_first, sample=False)
    b, _ = rssm.observe(None, embed, action.index_fill(1, torch.tensor([0]), 5.0), is_first, sample=False)
    torch.testing.assert_close(a["deter"], b["deter"])


def test_observe_matches_obs_step_and_imagine_matches_img_step():
    rssm = make_rssm()
    embed, action, is_first = sequence(length=5)
    post, prior = rssm.observe(None, embed, action, is_first, sample=False)
    state = rssm.initial(2)
    for t in range(5):
        state, step_prior = rssm.obs_step(state, action[:, t], embed[:, t], is_first[:, t], sample=False)
        for key in state:
            torch.testing.assert_close(state[key], post[key][:, t])
            torch.testing.assert_close(step_prior[key], prior[key][:, t])
    imagined = rssm.imagine(state, action, 5, sample=False)
    for t in range(5):
        state = rssm.img_step(state, action[:, t], sample=False)
        for key in state:
            torch.testing.assert_close(state[key], imagined[key][:, t])


def test_policy_imagination_passes_gradients_to_the_policy():
    rssm = make_rssm()
    weight = torch.zeros(rssm.feat_size, 3, requires_grad=True)
    states, actions = rssm.imagine(rssm.initial(2), lambda s: torch.tanh(rssm.feat(s) @ weight), 3)
    rssm.feat(states)[:, -1].sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_gaussian_std_is_bounded_below():
    rssm = make_rssm("gaussian", min_std=0.1)
    embed, action, is_first = sequence()
    post, prior = rssm.observe(None, embed * 100, action, is_first)
    assert post["std"].min() >= 0.1 and prior["std"].min() >= 0.1


def categorical_pair(scale):
    g = torch.Generator().manual_seed(0)
    post = (scale * torch.randn(6, 4, 5, generator=g)).requires_grad_()
    prior = (scale * torch.randn(6, 4, 5, generator=g)).requires_grad_()
    return post, prior


def reference_kl(post_logits, prior_logits, unimix=0.01):
    def mixed(logits):
        probs = (1 - unimix) * logits.softmax(-1) + unimix / logits.shape[-1]
        return torch.distributions.Categorical(probs=probs)

    return torch.distributions.kl_divergence(mixed(post_logits), mixed(prior_logits)).sum(-1)


def test_kl_matches_torch_for_both_latents():
    rssm = make_rssm()
    post, prior = categorical_pair(2.0)
    value = rssm.kl({"logits": post}, {"logits": prior})
    torch.testing.assert_close(value, reference_kl(post, prior))
    gauss = make_rssm("gaussian")
    p = {"mean": torch.randn(6, 4), "std": torch.rand(6, 4) + 0.1}
    q = {"mean": torch.randn(6, 4), "std": torch.rand(6, 4) + 0.1}
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(p["mean"], p["std"]), torch.distributions.Normal(q["mean"], q["std"])
    ).sum(-1)
    torch.testing.assert_close(gauss.kl(p, q), expected)


def test_kl_balancing_sends_the_stated_weights_to_prior_and_posterior():
    rssm = make_rssm()
    post, prior = categorical_pair(3.0)
    dyn, rep, _ = rssm.kl_losses({"logits": post}, {"logits": prior}, free_bits=0.0)
    (0.5 * dyn.sum() + 0.1 * rep.sum()).backward()
    post_ref, prior_ref = [x.detach().clone().requires_grad_() for x in (post, prior)]
    reference_kl(post_ref, prior_ref).sum().backward()
    torch.testing.assert_close(prior.grad, 0.5 * prior_ref.grad)
    torch.testing.assert_close(post.grad, 0.1 * post_ref.grad)


@pytest.mark.parametrize("free_bits_mean", [False, True])
def test_free_bits_give_zero_gradient_below_the_threshold(free_bits_mean):
    rssm = make_rssm()
    post, prior = categorical_pair(0.1)  # nearly uniform: KL far below 1 nat
    dyn, rep, kl = rssm.kl_losses({"logits": post}, {"logits": prior}, 1.0, free_bits_mean)
    assert kl.max() < 1.0
    assert torch.allclose(dyn, torch.ones_like(dyn)) and torch.allclose(rep, torch.ones_like(rep))
    (dyn.sum() + rep.sum()).backward()
    assert post.grad.abs().max() == 0 and prior.grad.abs().max() == 0
    # Above the threshold the gradient flows again.
    post, prior = categorical_pair(5.0)
    dyn, rep, kl = rssm.kl_losses({"logits": post}, {"logits": prior}, 1.0, free_bits_mean)
    assert kl.min() > 1.0
    (dyn.sum() + rep.sum()).backward()
    assert post.grad.abs().max() > 0 and prior.grad.abs().max() > 0


def test_learned_initial_state_receives_gradients():
    rssm = make_rssm(learned_initial=True)
    embed, action, is_first = sequence()
    post, _ = rssm.observe(None, embed, action, is_first)
    post["deter"].sum().backward()
    assert rssm.initial_deter.grad.abs().sum() > 0
    fixed = make_rssm(learned_initial=False, gru_norm=False, norm=False, act="elu")
    assert "initial_deter" not in dict(fixed.named_parameters())
    assert fixed.initial(3)["deter"].abs().sum() == 0
