import pytest
import torch

from behavior.returns import lambda_return, state_reward_lambda_return, trajectory_weights


def test_lambda_return_hand_computed_with_termination_and_time_limit():
    # gamma = lam = 0.5; r_1..r_3 = 1, 2, 3; c_1..c_3 = 1, 0, 1 (s_2 is terminal);
    # v_0..v_3 = 0, 4, 8, 16 and the horizon ends at s_3 (a time limit).
    #   R_3 = v_3 = 16
    #   R_2 = r_3 + 0.5 * 1 * (0.5 * 16 + 0.5 * 16) = 3 + 8 = 11
    #   R_1 = r_2 + 0.5 * 0 * (...)                = 2          (v_2 = 8 is ignored)
    #   R_0 = r_1 + 0.5 * 1 * (0.5 * 4 + 0.5 * 2)   = 1 + 1.5 = 2.5
    # A second column never terminates:
    #   R_2 = 3 + 8 = 11, R_1 = 2 + 0.5 * (0.5 * 8 + 0.5 * 11) = 6.75,
    #   R_0 = 1 + 0.5 * (0.5 * 4 + 0.5 * 6.75) = 3.6875
    reward = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    cont = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    value = torch.tensor([[0.0, 0.0], [4.0, 4.0], [8.0, 8.0], [16.0, 16.0]])
    returns = lambda_return(reward, cont, value, gamma=0.5, lam=0.5)
    expected = torch.tensor([[2.5, 3.6875], [2.0, 6.75], [11.0, 11.0]])
    assert torch.allclose(returns, expected)


def test_lambda_one_is_discounted_sum_and_lambda_zero_is_one_step_td():
    torch.manual_seed(0)
    reward, value = torch.randn(4, 3), torch.randn(5, 3)
    cont = torch.ones(4, 3)
    gamma = 0.9
    monte_carlo = lambda_return(reward, cont, value, gamma, lam=1.0)
    discounts = gamma ** torch.arange(4.0)
    expected0 = (discounts[:, None] * reward).sum(0) + gamma**4 * value[-1]
    assert torch.allclose(monte_carlo[0], expected0, atol=1e-5)
    td = lambda_return(reward, cont, value, gamma, lam=0.0)
    assert torch.allclose(td, reward + gamma * value[1:], atol=1e-6)


def test_trajectory_weights_shrink_after_termination():
    # w_0 = 1, w_1 = 0.5 * c_1 = 0.5, w_2 = w_1 * 0.5 * c_2 = 0 (s_2 is terminal).
    cont = torch.tensor([[1.0], [0.0], [1.0]])
    assert torch.allclose(trajectory_weights(cont, 0.5), torch.tensor([[1.0], [0.5], [0.0]]))
    # A terminal start state carries no weight at all.
    start_cont = torch.tensor([0.0])
    assert torch.equal(trajectory_weights(cont, 0.5, start_cont), torch.zeros(3, 1))


def test_lambda_return_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="value of shape"):
        lambda_return(torch.zeros(3, 2), torch.ones(3, 2), torch.zeros(3, 2), 0.99, 0.95)


def test_state_reward_returns_count_each_states_own_reward():
    # DreamerV1/V2: v(s_t) includes r(s_t). gamma = lam = 0.5, r(s_0..s_2) = 1, 2, 3, c = 1,
    # v_0..v_2 = 0, 4, 8:
    #   R_2 = v_2 = 8 (bootstrap); R_1 = r(s_1) + 0.5 (0.5 v_2 + 0.5 R_2) = 2 + 4 = 6
    #   R_0 = r(s_0) + 0.5 (0.5 v_1 + 0.5 R_1) = 1 + 0.5 * 5 = 3.5
    reward = torch.tensor([[1.0], [2.0], [3.0]])
    value = torch.tensor([[0.0], [4.0], [8.0]])
    returns = state_reward_lambda_return(reward, torch.ones(3, 1), value, gamma=0.5, lam=0.5)
    assert torch.allclose(returns, torch.tensor([[3.5], [6.0]]))
    with pytest.raises(ValueError, match="three"):
        state_reward_lambda_return(reward[:2], torch.ones(3, 1), value, 0.5, 0.5)
