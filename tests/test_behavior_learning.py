"""The actor learns the known optimal policy of a hand-built latent system.

The point mass (see behavior/toy.py) starts at the origin; the goal
(1.5, -0.4) is best reached by moving (1, -0.4), then (0.5, 0), then staying,
for a 3-step return of -0.25 (a policy that stands still earns about -7.2).
"""

import pytest
import torch

from behavior import ImaginationBehavior
from behavior.toy import PointMass

PRESETS = {
    # DreamerV3: two-hot critic, slow target, return normalisation.
    "reinforce": dict(actor_grad="reinforce"),
    "mix": dict(actor_grad=0.5),
    # DreamerV1: backpropagation through the model, squared-error critic.
    "dynamics": dict(
        actor_grad="dynamics", critic_dist="normal", slow_target=False, slow_reg=0.0, return_norm=False, entropy=0.0
    ),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def train(model: PointMass, behavior: ImaginationBehavior, updates: int, lr: float = 3e-3, starts=None):
    start = model.initial(64) if starts is None else {"x": starts}
    actor_opt = torch.optim.Adam(behavior.actor.parameters(), lr=lr)
    critic_opt = torch.optim.Adam(behavior.critic.parameters(), lr=lr)
    for _ in range(updates):
        losses, metrics = behavior.loss(model, start)
        actor_opt.zero_grad()
        critic_opt.zero_grad()
        losses["actor"].backward(inputs=list(behavior.actor.parameters()))
        losses["critic"].backward(inputs=list(behavior.critic.parameters()))
        actor_opt.step()
        critic_opt.step()
        behavior.update_slow_critic()
    return metrics


def greedy_rollout(model: PointMass, behavior: ImaginationBehavior, steps: int = 3):
    state, actions, best, total = model.initial(1), [], [], 0.0
    for _ in range(steps):
        action = behavior.act(model.feat(state), "eval")
        actions.append(action)
        best.append(model.best_action(state["x"]))
        state = model.img_step(state, action)
        total += model.reward(model.feat(state)).item()
    return torch.cat(actions), torch.cat(best), total


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_continuous_actor_learns_the_optimal_policy(preset):
    torch.manual_seed(0)
    model = PointMass((1.5, -0.4))
    behavior = ImaginationBehavior(model.feat_dim, 2, False, horizon=3, gamma=0.9, units=64, layers=2, **PRESETS[preset])
    _, _, untrained = greedy_rollout(model, behavior)
    train(model, behavior, updates=150)
    actions, best, total = greedy_rollout(model, behavior)
    assert (actions[0] - best[0]).abs().max() < 0.1, (actions, best)
    assert total > -0.3 > untrained, (total, untrained)


def test_discrete_actor_learns_the_optimal_policy_with_reinforce():
    # Steps of 0.5 from the four neighbours of the goal (1, 0) and from the goal
    # itself: the best first actions are right, left, up, down and stay, so no
    # single action is right everywhere.
    torch.manual_seed(0)
    model = PointMass((1.0, 0.0), discrete=True)
    starts = model.goal + torch.tensor([[-0.5, 0.0], [0.5, 0.0], [0.0, -0.5], [0.0, 0.5], [0.0, 0.0]])
    behavior = ImaginationBehavior(model.feat_dim, model.action_dim, True, horizon=3, gamma=0.9, units=64, layers=2)
    train(model, behavior, updates=300, starts=starts.repeat(13, 1))
    actions = behavior.act(model.feat({"x": starts}), "eval")
    assert torch.equal(actions, model.best_action(starts)), actions
    assert torch.equal(model.best_action(starts).argmax(-1), torch.arange(5))
