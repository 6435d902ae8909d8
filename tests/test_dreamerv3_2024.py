"""Numerics of the 2024 DreamerV3 parts, against values worked out by hand
or from the reference formulas (danijar/dreamerv3 @e3f0224)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from behavior.imagination import ImaginationBehavior
from behavior.returns import replay_lambda_return
from dreamer.agent import Agent, OptimConfig
from dreamer.optim import LaProp, adaptive_clip
from world_model import distributions as dists
from world_model.layers import BlockLinear, init_layer, make_norm
from world_model.rssm import RSSM, BlockGRUCell
from world_model.world_model import WorldModel


def test_laprop_first_steps_by_hand():
    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = LaProp([p], lr=0.1, betas=(0.9, 0.999), eps=1e-20, agc=0.0, warmup=0)
    grads = [torch.tensor([0.5, -0.1]), torch.tensor([0.2, 0.3])]
    expected = p.detach().clone()
    v = torch.zeros(2)
    m = torch.zeros(2)
    for t, g in enumerate(grads, 1):
        p.grad = g.clone()
        opt.step()
        # RMS scaling first (bias-corrected), then momentum on the scaled step.
        v = 0.999 * v + 0.001 * g**2
        u = g / (torch.sqrt(v / (1 - 0.999**t)) + 1e-20)
        m = 0.9 * m + 0.1 * u
        expected -= 0.1 * m / (1 - 0.9**t)
        assert torch.allclose(p.detach(), expected, atol=1e-7)
    # The first step is lr * sign(g): LaProp's normalised step.
    assert torch.allclose(expected - torch.tensor([1.0, -2.0]), -0.1 * torch.sign(grads[0]) * 1.0, atol=0.1)


def test_laprop_warmup_starts_at_zero_and_ramps_linearly():
    p = nn.Parameter(torch.zeros(1))
    opt = LaProp([p], lr=1.0, eps=1e-20, agc=0.0, warmup=4)
    moves = []
    for _ in range(6):
        before = p.detach().clone()
        p.grad = torch.ones(1)  # constant gradient: the bias-corrected step is exactly 1
        opt.step()
        moves.append(float(before - p.detach()))
    assert moves == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0], abs=1e-6)


def test_agc_clips_each_tensor_relative_to_its_norm():
    big = torch.tensor([3.0, 4.0])  # |p| = 5
    tiny = torch.tensor([0.0, 0.0])  # |p| = 0 -> judged against pmin
    grads = [torch.tensor([30.0, 40.0]), torch.tensor([1.0, 0.0])]
    clipped = adaptive_clip(grads, [big, tiny], ratio=0.3, pmin=1e-3)
    # |g| = 50 > 0.3 * 5 = 1.5: scaled to norm 1.5, direction kept.
    assert torch.allclose(clipped[0], torch.tensor([0.9, 1.2]))
    # |g| = 1 > 0.3 * 1e-3: scaled to 3e-4.
    assert torch.allclose(clipped[1], torch.tensor([3e-4, 0.0]))
    # A gradient inside the limit is untouched.
    small = adaptive_clip([torch.tensor([0.1, 0.0])], [big], 0.3, 1e-3)[0]
    assert torch.equal(small, torch.tensor([0.1, 0.0]))


def test_rmsnorm_formula():
    norm = make_norm("rms", 4)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 1.0, 0.5]))
    x = torch.tensor([[1.0, -2.0, 3.0, 0.0]])
    rms = math.sqrt((1 + 4 + 9 + 0) / 4 + 1e-4)
    assert torch.allclose(norm(x), x / rms * torch.tensor([1.0, 2.0, 1.0, 0.5]), atol=1e-6)
    assert not hasattr(norm, "bias") or norm.bias is None
    # LayerNorm keeps its shift; "none" is the identity.
    assert isinstance(make_norm("layer", 4), nn.LayerNorm) and isinstance(make_norm(False, 4), nn.Identity)


def test_block_linear_is_block_diagonal():
    layer = BlockLinear(8, 12, blocks=4)
    x = torch.randn(3, 8, requires_grad=True)
    y = layer(x)
    # Output block 1 (units 3..5) depends on input block 1 (dims 2..3) only.
    (grad,) = torch.autograd.grad(y[:, 3:6].sum(), x)
    assert grad[:, 2:4].abs().sum() > 0
    assert grad[:, :2].abs().sum() == 0 and grad[:, 4:].abs().sum() == 0


def test_block_gru_gradient_from_one_block_never_reaches_another_blocks_weights():
    torch.manual_seed(0)
    cell = BlockGRUCell(in_dim=6, hidden=16, blocks=4, layers=1, norm="none")
    x, h = torch.randn(5, 6), torch.randn(5, 16)
    out = cell(x, h)
    out[:, 0:4].sum().backward()  # the state units of block 0
    for layer in (cell.hidden[0], cell.gates):
        grad = layer.weight.grad  # (blocks, in / blocks, out / blocks)
        assert grad[0].abs().sum() > 0
        assert grad[1:].abs().sum() == 0
    # And block 0's new state reads block 0's old state only.
    h = h.requires_grad_(True)
    (dh,) = torch.autograd.grad(cell(x, h)[:, 0:4].sum(), h)
    assert dh[:, :4].abs().sum() > 0 and dh[:, 4:].abs().sum() == 0


def test_block_gru_gate_equations():
    cell = BlockGRUCell(in_dim=2, hidden=4, blocks=2, layers=0, norm="none")
    with torch.no_grad():
        cell.gates.weight.zero_()
        cell.gates.bias.zero_()
    h = torch.tensor([[0.5, -1.0, 2.0, 0.0]])
    # Zero gates: reset = 0.5, cand = tanh(0) = 0, update = sigmoid(-1).
    u = 1 / (1 + math.exp(1.0))
    assert torch.allclose(cell(torch.zeros(1, 2), h), (1 - u) * h)


def test_symexp_twohot_bins_round_trip_and_raw_space_interpolation():
    bins = dists.twohot_bins(255, "symexp")
    assert bins.shape == (255,) and bins[127] == 0.0
    assert torch.equal(bins, -bins.flip(0))  # exactly symmetric
    assert torch.allclose(bins.double(), dists.symexp(torch.linspace(-20, 20, 255, dtype=torch.float64)), rtol=1e-5)
    values = torch.tensor([-1234.5, -3.0, 0.0, 0.123, 7.0, 950.0])
    weights = dists.twohot_encode(values, bins)
    assert torch.allclose((weights * bins).sum(-1), values, rtol=1e-5, atol=1e-6)
    logits = torch.log(weights.clamp_min(1e-30))
    assert torch.allclose(dists.TwoHot(logits, bins, "symexp").mean, values, rtol=1e-4, atol=1e-5)
    # A value between bins b_k < x < b_{k+1} is split linearly in raw space.
    lo, hi = bins[130].item(), bins[131].item()
    x = lo + 0.25 * (hi - lo)
    w = dists.twohot_encode(torch.tensor([x]), bins)[0]
    assert w[130].item() == pytest.approx(0.75, abs=1e-5) and w[131].item() == pytest.approx(0.25, abs=1e-5)
    # In symlog space the same value is split differently: the two spacings are distinct.
    w_symlog = dists.twohot_encode(dists.symlog(torch.tensor([x])), dists.twohot_bins(255, "symlog"))[0]
    assert w_symlog[130].item() != pytest.approx(0.75, abs=1e-3)


def test_symexp_twohot_uniform_probabilities_predict_exactly_zero():
    bins = dists.twohot_bins(255, "symexp")
    dist = dists.TwoHot(torch.zeros(7, 255), bins, "symexp")
    assert torch.equal(dist.mean, torch.zeros(7))


def test_replay_lambda_return_by_hand():
    gamma, lam = 0.9, 0.5
    reward = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    boot = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    zeros = torch.zeros(1, 4)
    ret = replay_lambda_return(reward, zeros, zeros, boot, gamma, lam)
    g3 = 40.0
    g2 = 3 + gamma * ((1 - lam) * 40 + lam * g3)
    g1 = 2 + gamma * ((1 - lam) * 30 + lam * g2)
    g0 = 1 + gamma * ((1 - lam) * 20 + lam * g1)
    assert torch.allclose(ret, torch.tensor([[g0, g1, g2]]))
    # A terminal step 2 cuts the return there; an episode end (is_last) at step 2
    # stops the recursion and bootstraps on boot_2 alone.
    term = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    ret_t = replay_lambda_return(reward, term, zeros, boot, gamma, lam)
    assert ret_t[0, 1].item() == pytest.approx(2.0)
    last = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    ret_l = replay_lambda_return(reward, zeros, last, boot, gamma, lam)
    assert ret_l[0, 1].item() == pytest.approx(2 + gamma * 30)


def _tiny_model(**kw):
    args = dict(deter=32, hidden=16, stoch=4, classes=4, cnn_depth=4, mlp_units=16, mlp_layers=1, norm="rms",
                cell="blockgru", blocks=4, prior_layers=2, learned_initial=False, action_norm=True,
                bin_spacing="symexp", cont_discount=1 - 1 / 333, replay_context=1, dyn_scale=1.0)
    args.update(kw)
    return WorldModel({"vec": (3,)}, 2, **args)


def _batch(batch=3, length=6):
    torch.manual_seed(1)
    return {
        "vec": torch.randn(batch, length, 3),
        "action": torch.rand(batch, length, 2) * 2 - 1,
        "reward": torch.rand(batch, length),
        "is_first": torch.zeros(batch, length, dtype=torch.bool),
        "is_last": torch.zeros(batch, length, dtype=torch.bool),
        "is_terminal": torch.zeros(batch, length, dtype=torch.bool),
    }


def test_replay_context_steps_get_no_loss_and_the_continue_target_is_discounted():
    wm = _tiny_model()
    batch = _batch()
    _, post, _, _ = wm.loss(batch)
    assert post["deter"].shape[:2] == (3, 5)  # the context step is not scored
    # contdisc: a non-terminal step's continue target is 1 - 1/333, so the best
    # prediction is that probability, not 1.
    head = wm.cont_head
    feat = wm.feat(post).detach()
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(300):
        loss = -head(feat).log_prob(torch.full(feat.shape[:-1], wm.cont_discount)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert head(feat).mean.mean().item() == pytest.approx(1 - 1 / 333, abs=2e-3)


def test_action_norm_divides_large_actions_inside_the_core():
    rssm = RSSM(2, 5, deter=8, hidden=8, stoch=2, classes=2, cell="blockgru", blocks=2, action_norm=True)
    big = torch.tensor([[3.0, -0.5]])
    assert torch.allclose(rssm.action_in(big), rssm.action_in(torch.tensor([[1.0, -0.5]])))


def test_truncated_normal_fan_in_init_has_variance_one_over_fan_in():
    torch.manual_seed(0)
    layer = nn.Linear(400, 300)
    init_layer(layer, "trunc_normal_in")
    assert layer.weight.std().item() == pytest.approx(math.sqrt(1 / 400), rel=0.03)
    assert layer.weight.abs().max().item() <= 2 * 1.1368 * math.sqrt(1 / 400) + 1e-6
    assert torch.count_nonzero(layer.bias) == 0
    block = BlockLinear(64, 32, blocks=4)
    init_layer(block, "trunc_normal_in")  # fan-in is the full input width, as in the reference
    assert block.weight.std().item() == pytest.approx(math.sqrt(1 / 64), rel=0.1)


def _agent(repval=0.3):
    wm = _tiny_model()
    behavior = ImaginationBehavior(
        wm.feat_size, 2, False, horizon=3, units=16, layers=1, norm="rms", bin_spacing="symexp",
        discount_in_cont=True, repval=repval, slow_target=False, actor_outscale=0.01,
    )
    laprop = OptimConfig(lr=1e-3, eps=1e-20, clip=0.0, kind="laprop", agc=0.3, warmup=0)
    return Agent(wm, 2, False, behavior=behavior, model_optim=laprop, actor_optim=laprop, critic_optim=laprop, update="joint")


def test_repval_trains_the_world_model_through_the_critic():
    agent = _agent()
    # The critic's output starts at zero (outscale 0), which passes no gradient
    # back at all; give it weights as after some training.
    with torch.no_grad():
        agent.behavior.critic.head.out.weight.normal_(0, 0.1)
    batch = _batch()
    data = {k: v for k, v in batch.items()}
    _, post, _, _ = agent.world_model.loss(data)
    replay = {"feat": agent.world_model.feat(post), "reward": data["reward"][:, 1:],
              "is_terminal": data["is_terminal"][:, 1:], "is_last": data["is_last"][:, 1:]}
    from behavior.imagine import flatten_states

    losses, metrics = agent.behavior.loss(agent.world_model, flatten_states(post), None, replay)
    assert "repval_loss" in metrics
    grads = torch.autograd.grad(losses["critic"], list(agent.world_model.encoder.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    # Without repval the critic loss does not reach the world model.
    plain = _agent(repval=0.0)
    with torch.no_grad():
        plain.behavior.critic.head.out.weight.normal_(0, 0.1)
    _, post, _, _ = plain.world_model.loss(data)
    losses, _ = plain.behavior.loss(plain.world_model, flatten_states(post))
    grads = torch.autograd.grad(losses["critic"], list(plain.world_model.encoder.parameters()), allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in grads)


def test_joint_update_lowers_the_world_model_loss():
    torch.manual_seed(0)
    agent = _agent()
    batch = {k: v.numpy() for k, v in _batch().items()}
    first = agent.update(batch)
    for _ in range(40):
        last = agent.update(batch)
    assert first["train/nonfinite"] == 0.0 and "train/repval_loss" in last
    assert last["train/model_loss"] < 0.8 * first["train/model_loss"]


def test_joint_update_refuses_a_dynamics_actor():
    wm = _tiny_model()
    behavior = ImaginationBehavior(wm.feat_size, 2, False, horizon=2, units=8, layers=1, actor_grad="dynamics")
    with pytest.raises(ValueError, match="actor_grad=reinforce"):
        Agent(wm, 2, False, behavior=behavior, update="joint")
    with pytest.raises(ValueError, match="unknown optimiser kind 'sgd'"):
        OptimConfig(kind="sgd")


def test_auto_actor_grad_is_dynamics_for_continuous_and_reinforce_for_discrete():
    continuous = ImaginationBehavior(8, 2, False, units=8, layers=1, actor_grad="auto")
    discrete = ImaginationBehavior(8, 2, True, units=8, layers=1, actor_grad="auto")
    assert continuous.dynamics_weight == 1.0 and discrete.dynamics_weight == 0.0
