import pytest
import torch
from torch import nn

from behavior import (
    ImaginationBehavior,
    RandomPolicy,
    ReturnNorm,
    SlowCopy,
    add_exploration,
    flatten_states,
)


pytestmark = pytest.mark.usefixtures("one_thread")


class LinearModel(nn.Module):
    """A learnable stand-in world model: x' = A x + B a, reward and cont heads."""

    def __init__(self, dim: int = 3, action_dim: int = 2):
        super().__init__()
        self.transition = nn.Linear(dim + action_dim, dim)
        self.reward_head = nn.Linear(dim, 1)
        self.dim = dim

    def initial(self, batch_size):
        return {"x": torch.zeros(batch_size, self.dim)}

    def img_step(self, state, action):
        return {"x": torch.tanh(self.transition(torch.cat([state["x"], action], -1)))}

    def feat(self, state):
        return state["x"]

    def reward(self, feat):
        return self.reward_head(feat).squeeze(-1)

    def cont(self, feat):
        return torch.full(feat.shape[:-1], 0.9)


class ConstantModel:
    """Every transition earns ``reward`` and terminates: R_0 = reward, later states weigh 0."""

    def __init__(self, reward: float):
        self.value = reward

    def initial(self, batch_size):
        return {"x": torch.zeros(batch_size, 2)}

    def img_step(self, state, action):
        return {"x": state["x"] + 0 * action[..., :1]}

    def feat(self, state):
        return state["x"]

    def reward(self, feat):
        return torch.full(feat.shape[:-1], self.value)

    def cont(self, feat):
        return torch.zeros(feat.shape[:-1])


def small(**kwargs):
    return {"units": 16, "layers": 1, "horizon": 4, **kwargs}


# ------------------------------------------------------------- start states
def test_flatten_states_merges_batch_and_time_and_detaches():
    deter = torch.randn(4, 5, 8, requires_grad=True)
    stoch = torch.randn(4, 5, 3, 6)
    flat = flatten_states({"deter": deter, "stoch": stoch})
    assert flat["deter"].shape == (20, 8) and flat["stoch"].shape == (20, 3, 6)
    assert not flat["deter"].requires_grad
    assert torch.equal(flat["deter"][5 * 2 + 3], deter[2, 3])
    with pytest.raises(ValueError, match="leading"):
        flatten_states({"deter": deter, "stoch": torch.randn(4, 6, 3)})


# -------------------------------------------------------- gradient routing
def test_reinforce_builds_no_graph_through_the_model():
    model = LinearModel()
    behavior = ImaginationBehavior(3, 2, False, actor_grad="reinforce", **small())
    losses, _ = behavior.loss(model, model.initial(8))
    # Even an unrestricted backward cannot reach the model: there is no graph to it.
    losses["actor"].backward()
    losses["critic"].backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in behavior.actor.parameters())
    assert all(p.grad is not None for p in behavior.critic.parameters())


@pytest.mark.parametrize("actor_grad", ["dynamics", 0.5])
def test_dynamics_gradients_reach_the_actor_through_the_model_only(actor_grad):
    model = LinearModel()
    behavior = ImaginationBehavior(3, 2, False, actor_grad=actor_grad, entropy=0.0, **small())
    losses, _ = behavior.loss(model, {"x": torch.randn(8, 3)})
    actor, critic = list(behavior.actor.parameters()), list(behavior.critic.parameters())
    # The actor loss depends on the model, and the critic loss does not depend
    # on the actor, so the two backward passes below are independent.
    model_grads = torch.autograd.grad(losses["actor"], list(model.parameters()), retain_graph=True)
    assert all(g.abs().sum() > 0 for g in model_grads)
    assert all(g is None for g in torch.autograd.grad(losses["critic"], actor, retain_graph=True, allow_unused=True))
    losses["actor"].backward(inputs=actor)
    losses["critic"].backward(inputs=critic)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is None for p in behavior.slow_critic.parameters())
    assert sum(p.grad.abs().sum() for p in actor) > 0


@pytest.mark.parametrize("slow_target", [False, True])
def test_one_backward_pass_of_both_losses_trains_each_network_on_its_own_loss(slow_target):
    # Bootstrapping on the trained critic (DreamerV1, the 2023 DreamerV3), the
    # dynamics gradient flows through the critic's values into the features,
    # but not into the critic's weights, which only the critic loss trains.
    model = LinearModel()
    behavior = ImaginationBehavior(3, 2, False, actor_grad="dynamics", slow_target=slow_target, **small())
    losses, _ = behavior.loss(model, {"x": torch.randn(8, 3)})
    actor, critic = list(behavior.actor.parameters()), list(behavior.critic.parameters())
    assert all(g is None for g in torch.autograd.grad(losses["actor"], critic, retain_graph=True, allow_unused=True))
    own = torch.autograd.grad(losses["actor"], actor, retain_graph=True)
    own += torch.autograd.grad(losses["critic"], critic, retain_graph=True)
    torch.autograd.backward([losses["actor"], losses["critic"]], inputs=actor + critic)
    for one, both in zip(own, [p.grad for p in actor + critic]):
        torch.testing.assert_close(both, one, rtol=0, atol=0)
    assert sum(g.abs().sum() for g in own[: len(actor)]) > 0 and sum(g.abs().sum() for g in own[len(actor):]) > 0


def test_pure_dynamics_gradient_vanishes_when_the_model_ignores_actions():
    # With actor_grad='dynamics' the only path from actions to returns is
    # img_step; cut it and the actor gets no gradient.
    class Blind(LinearModel):
        def img_step(self, state, action):
            return super().img_step(state, action.detach())

    model = Blind()
    behavior = ImaginationBehavior(3, 2, False, actor_grad="dynamics", entropy=0.0, **small())
    loss = behavior.loss(model, {"x": torch.randn(8, 3)})[0]["actor"]
    grads = torch.autograd.grad(loss, list(behavior.actor.parameters()), allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in grads)


def test_terminal_start_states_carry_no_loss():
    model = LinearModel()
    behavior = ImaginationBehavior(3, 2, False, **small())
    losses, metrics = behavior.loss(model, model.initial(6), start_cont=torch.zeros(6))
    assert losses["actor"].item() == 0 and losses["critic"].item() == 0
    assert set(losses) == {"actor", "critic"}
    assert all(v.dim() == 0 and not v.requires_grad for v in metrics.values())


def test_bad_actor_grad_is_rejected():
    with pytest.raises(ValueError, match="reinforce"):
        ImaginationBehavior(3, 2, False, actor_grad="backprop")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ImaginationBehavior(3, 2, False, actor_grad=1.5)


# ------------------------------------------------------ return normalisation
def test_return_norm_is_scale_invariant_once_converged():
    returns = torch.linspace(-3.0, 7.0, 101)
    baseline = returns + torch.linspace(-1.0, 1.0, 101)
    small_norm, large_norm = ReturnNorm(decay=0.99), ReturnNorm(decay=0.99)
    for _ in range(1200):
        small_scale = small_norm(returns)
        large_scale = large_norm(1000 * returns)
    assert small_scale.item() == pytest.approx(9.0, rel=1e-3)  # 95th - 5th percentile
    small_adv = (returns - baseline) / small_scale
    large_adv = (1000 * returns - 1000 * baseline) / large_scale
    assert torch.allclose(small_adv, large_adv, rtol=1e-3)


def test_return_norm_does_not_scale_up_small_returns():
    norm = ReturnNorm(decay=0.5)
    returns = torch.linspace(0.0, 0.1, 50)
    for _ in range(50):
        scale = norm(returns)
    assert norm.high - norm.low == pytest.approx(0.09, rel=1e-2)
    assert scale.item() == 1.0


def test_return_norm_state_is_saved_and_frozen_in_eval_mode():
    norm = ReturnNorm(decay=0.0)
    norm(torch.arange(101.0))
    assert norm.low.item() == pytest.approx(5.0) and norm.high.item() == pytest.approx(95.0)
    restored = ReturnNorm()
    restored.load_state_dict(norm.state_dict())
    assert restored.scale().item() == pytest.approx(90.0)
    restored.eval()
    assert restored(torch.zeros(10)).item() == pytest.approx(90.0)


# ------------------------------------------------------------- slow critic
def test_slow_copy_follows_by_ema_on_every_nth_call():
    fast = nn.Linear(2, 1)
    slow = SlowCopy(fast, rate=0.02, every=2)
    before = slow.module.weight.detach().clone()
    assert not slow.module.weight.requires_grad
    with torch.no_grad():
        fast.weight.add_(1.0)
    slow.update(fast)
    assert torch.equal(slow.module.weight, before)
    slow.update(fast)
    assert torch.allclose(slow.module.weight, 0.98 * before + 0.02 * fast.weight)


def test_a_restored_slow_copy_keeps_counting_towards_its_next_update():
    fast = nn.Linear(2, 1)
    slow = SlowCopy(fast, rate=1.0, every=3)
    slow.update(fast)
    slow.update(fast)
    restored = SlowCopy(nn.Linear(2, 1), rate=1.0, every=3)
    restored.update(restored.module)  # counted before the checkpoint is loaded, then replaced by it
    restored.load_state_dict(slow.state_dict())
    assert int(restored.calls) == 2
    with torch.no_grad():
        fast.weight.add_(1.0)
    restored.update(fast)  # the third call copies
    assert torch.equal(restored.module.weight, fast.weight) and int(restored.calls) == 3


def test_slow_critic_is_saved_but_not_trained():
    behavior = ImaginationBehavior(3, 2, False, **small())
    trained = {id(p) for p in behavior.critic.parameters()}
    assert not trained & {id(p) for p in behavior.slow_critic.parameters()}
    assert any(key.startswith("slow_critic.") for key in behavior.state_dict())
    assert any(key.startswith("return_norm.") for key in behavior.state_dict())


@pytest.mark.parametrize("dist", ["normal", "twohot"])
@pytest.mark.parametrize("slow_reg", [0.0, 1.0])
def test_critic_is_pulled_towards_the_slow_critic(dist, slow_reg):
    # Returns are 2; the slow critic predicts 6. Without regularisation the
    # critic learns 2; with weight 1 it learns the point between the two
    # targets: the mean for squared error, the mean in symlog space for two-hot.
    torch.manual_seed(0)
    behavior = ImaginationBehavior(
        2, 2, False, critic_dist=dist, slow_target=False, slow_reg=slow_reg, **small(horizon=1)
    )
    if slow_reg == 0:
        assert behavior.slow_critic is None  # nothing reads it
    else:
        out = behavior.slow_critic.module.head.out
        with torch.no_grad():
            out.weight.zero_()
            if dist == "normal":
                out.bias.fill_(6.0)
            else:
                out.bias.copy_(torch.log(torch_twohot(6.0, behavior.critic.head.bins).clamp_min(1e-30)))
    model = ConstantModel(2.0)
    opt = torch.optim.Adam(behavior.critic.parameters(), lr=0.1)
    for _ in range(120):
        loss = behavior.loss(model, model.initial(2))[0]["critic"]
        opt.zero_grad()
        loss.backward(inputs=list(behavior.critic.parameters()))
        opt.step()
    value = behavior.critic(torch.zeros(1, 2)).mean.item()
    if slow_reg == 0:
        expected = 2.0
    elif dist == "normal":
        expected = 4.0
    else:
        from world_model.distributions import symexp, symlog

        expected = symexp((symlog(torch.tensor(2.0)) + symlog(torch.tensor(6.0))) / 2).item()
    assert value == pytest.approx(expected, rel=0.05)


def torch_twohot(value: float, bins: torch.Tensor) -> torch.Tensor:
    from world_model.distributions import symlog, twohot_encode

    return twohot_encode(symlog(torch.tensor(value)), bins)


# ------------------------------------------------------------------ acting
def test_act_modes_and_exploration():
    torch.manual_seed(0)
    feat = torch.randn(64, 3)
    behavior = ImaginationBehavior(3, 2, False, expl_noise=0.3, **small())
    eval_action = behavior.act(feat, "eval")
    assert torch.equal(eval_action, behavior.act(feat, "eval"))
    train_action = behavior.act(feat, "train")
    assert train_action.shape == (64, 2) and train_action.abs().max() <= 1
    assert not torch.equal(train_action, eval_action)
    with pytest.raises(ValueError, match="train"):
        behavior.act(feat, "greedy")
    discrete = ImaginationBehavior(3, 4, True, **small())
    action = discrete.act(feat, "train")
    assert torch.equal(action.sum(-1), torch.ones(64)) and set(action.unique().tolist()) <= {0.0, 1.0}


def test_eval_sample_draws_from_the_policy_without_exploration_noise():
    """The DreamerV3 references evaluate the sampling policy, not its mode."""
    torch.manual_seed(0)
    feat = torch.randn(1, 3).expand(4000, 3)
    behavior = ImaginationBehavior(3, 2, False, expl_noise=1.0, eval_sample=True, **small())
    eval_action = behavior.act(feat, "eval")
    assert not torch.equal(eval_action, behavior.act(feat, "eval"))
    policy_std = behavior.actor(feat).sample().clamp(-1, 1).std(0)
    torch.testing.assert_close(eval_action.std(0), policy_std, rtol=0.1, atol=0.0)
    assert (behavior.act(feat, "train").std(0) > policy_std + 0.05).all()


def test_discrete_exploration_replaces_a_fraction_of_actions():
    torch.manual_seed(0)
    action = torch.nn.functional.one_hot(torch.zeros(4000, dtype=torch.long), 4).float()
    noisy = add_exploration(action, 0.4, discrete=True)
    changed = (noisy.argmax(-1) != 0).float().mean().item()
    assert changed == pytest.approx(0.4 * 3 / 4, abs=0.03)
    assert torch.equal(add_exploration(action, 0.0, discrete=True), action)


def test_random_policy_covers_the_action_space():
    torch.manual_seed(0)
    continuous = RandomPolicy(3, discrete=False)(5000)
    assert continuous.shape == (5000, 3) and continuous.min() >= -1 and continuous.max() <= 1
    assert continuous.mean().abs() < 0.05 and continuous.min() < -0.99 and continuous.max() > 0.99
    onehot = RandomPolicy(4, discrete=True)(5000)
    assert torch.equal(onehot.sum(-1), torch.ones(5000))
    assert (onehot.mean(0) - 0.25).abs().max() < 0.03


# ------------------------------------------------- DreamerV1 / V2 value convention
def _reference_lambda_return(reward, value, pcont, bootstrap, lam):
    """danijar/dreamer tools.py:316-338 (and dreamerv2 common/other.py), transliterated:
    inputs = r + pcont * next_value * (1 - lam), scanned backwards from the bootstrap."""
    next_values = torch.cat([value[1:], bootstrap[None]], 0)
    inputs = reward + pcont * next_values * (1 - lam)
    returns, last = [], bootstrap
    for t in reversed(range(len(reward))):
        last = inputs[t] + pcont[t] * lam * last
        returns.append(last)
    return torch.stack(returns[::-1])


class StateRewardModel:
    """The reward of a state is its first feature; the episode never ends."""

    def reward(self, feat):
        return feat[..., 0]

    def cont(self, feat):
        return torch.ones(feat.shape[:-1])


@pytest.mark.parametrize("critic_from_start", [False, True], ids=["dreamerv1", "dreamerv2"])
def test_value_including_the_state_reward_matches_the_reference_indexing(critic_from_start):
    torch.manual_seed(0)
    horizon, n, gamma, lam = 5, 3, 0.9, 0.8
    behavior = ImaginationBehavior(
        4, 2, False, **small(horizon=horizon), gamma=gamma, lam=lam, value_includes_reward=True,
        critic_from_start=critic_from_start, return_norm=False,
    )
    feats, actions, value = torch.randn(horizon + 1, n, 4), torch.randn(horizon, n, 2), torch.randn(horizon + 1, n)
    t = behavior._state_reward_targets(StateRewardModel(), feats, actions, value, gamma, None)
    pcont = torch.full((horizon + 1, n), gamma)
    if critic_from_start:
        # dreamerv2 agent.py:307-325: seq = s_0..s_H; critic on seq[:-1], actor on target[1:] with weight[:-2].
        returns = _reference_lambda_return(feats[:-1, :, 0], value[:-1], pcont[:-1], value[-1], lam)
        weight = torch.cumprod(torch.cat([torch.ones(1, n), pcont[:-1]]), 0)[:-1]
        assert torch.allclose(t["critic_target"], returns, atol=1e-6)
        assert torch.allclose(t["critic_weight"], weight)
        assert torch.allclose(t["actor_return"], returns[1:], atol=1e-6)
        assert torch.allclose(t["actor_weight"], weight[:-1])
    else:
        # dreamer.py:185-198: imag_feat = s_1..s_H (the start is not part of it); critic and actor on s_1..s_{H-1}.
        imag_value = value[1:]
        returns = _reference_lambda_return(feats[1:-1, :, 0], imag_value[:-1], pcont[1:-1], imag_value[-1], lam)
        discount = torch.cumprod(torch.cat([torch.ones(1, n), pcont[1:-2]]), 0)
        assert torch.allclose(t["critic_target"], returns, atol=1e-6)
        assert torch.allclose(t["critic_weight"], discount)
        assert torch.allclose(t["actor_return"], returns, atol=1e-6)
        assert torch.allclose(t["actor_weight"], discount)
        assert torch.equal(t["critic_feat"], feats[1:-1])
    # The action taken in s_t is judged by the return of the state it leads to.
    assert torch.equal(t["actor_feat"], feats[:-2]) and torch.equal(t["actor_action"], actions[:-1])


def test_value_convention_options_are_checked():
    with pytest.raises(ValueError, match="critic_from_start"):
        ImaginationBehavior(4, 2, False, **small(), critic_from_start=False)
    with pytest.raises(ValueError, match="repval"):
        ImaginationBehavior(4, 2, False, **small(), value_includes_reward=True, repval=0.3)


def test_dreamerv1_style_actor_learns_to_reach_higher_reward_through_the_model():
    # Dynamics backprop with the V1 value convention moves the actor towards the rewarding action.
    torch.manual_seed(0)
    model = LinearModel()
    with torch.no_grad():
        model.transition.weight.zero_()
        model.transition.weight[0, 3] = 1.0  # x'_0 = tanh(a_0)
        model.transition.bias.zero_()
        model.reward_head.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        model.reward_head.bias.zero_()
    model.requires_grad_(False)
    behavior = ImaginationBehavior(
        3, 2, False, **small(), actor_grad="dynamics", entropy=0.0, value_includes_reward=True,
        critic_from_start=False, return_norm=False, slow_target=False, slow_reg=0.0, actor_dist="tanh_normal",
        act="elu", norm="none", min_std=1e-4, critic_dist="normal",
    )
    opt = torch.optim.Adam(behavior.actor.parameters(), lr=1e-2)
    start = {"x": torch.zeros(64, 3)}
    for _ in range(60):
        losses, _ = behavior.loss(model, start)
        opt.zero_grad()
        losses["actor"].backward(inputs=list(behavior.actor.parameters()))
        opt.step()
    with torch.no_grad():
        assert float(behavior.actor(torch.zeros(256, 3)).sample()[:, 0].mean()) > 0.8
