import pytest
import torch

from behavior import CEMPlanner
from behavior.toy import PointMass


pytestmark = pytest.mark.usefixtures("one_thread")


class Cliff:
    """1-D: x' = x + a; reward x' (further right is better), but the episode ends beyond 0.5."""

    def img_step(self, state, action):
        return {"x": state["x"] + action.clamp(-1, 1)}

    def feat(self, state):
        return state["x"]

    def reward(self, feat):
        return feat[..., 0]

    def cont(self, feat):
        return (feat[..., 0] <= 0.5).float()


def test_planner_finds_the_best_first_action_from_several_states_at_once():
    # Goal (2, -1); from each start the best first action is clip(goal - x, -1, 1).
    torch.manual_seed(0)
    model = PointMass((2.0, -1.0))
    starts = torch.tensor([[0.0, 0.0], [2.5, -1.2], [1.5, 0.0], [2.0, -1.0]])
    planner = CEMPlanner(2, horizon=4, candidates=500, top_k=50, iterations=8)
    calls = []
    step = model.img_step
    model.img_step = lambda state, action: calls.append(action.shape) or step(state, action)
    action = planner.plan(model, {"x": starts})
    assert action.shape == (4, 2) and not action.requires_grad
    expected = torch.tensor([[1.0, -1.0], [-0.5, 0.2], [0.5, -1.0], [0.0, 0.0]])
    assert torch.allclose(action, expected, atol=0.1), action
    # One batched model call per imagined step covers all states and candidates.
    assert calls == [(4 * 500, 2)] * (4 * 8)


def test_planner_actions_stay_in_bounds():
    torch.manual_seed(0)
    model = PointMass((50.0, -50.0))
    action = CEMPlanner(2, horizon=3, candidates=100, top_k=10, iterations=3).plan(model, model.initial(2))
    # The goal is far out of reach: push towards it, but never past the bounds.
    assert action.abs().max() <= 1.0
    assert (action * torch.tensor([1.0, -1.0])).min() > 0.8, action


def test_planner_weighs_rewards_by_continuation_when_asked():
    # Jumping past 0.5 pays up to 1.5 once and ends the episode; stopping at
    # 0.5 pays 0.5 on each of the 6 steps. Without continuation, run right.
    torch.manual_seed(0)
    start = {"x": torch.zeros(1, 1)}
    greedy = CEMPlanner(1, horizon=6, candidates=500, top_k=50, iterations=8)
    careful = CEMPlanner(1, horizon=6, candidates=500, top_k=50, iterations=8, use_cont=True)
    assert greedy.plan(Cliff(), start).item() > 0.9
    assert 0.3 < careful.plan(Cliff(), start).item() <= 0.5


def test_planner_rejects_bad_sizes():
    with pytest.raises(ValueError, match="top_k"):
        CEMPlanner(2, candidates=10, top_k=20)
