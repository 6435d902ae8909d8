"""Lambda-returns and trajectory weights over imagined trajectories.

Indexing convention (time-major, used throughout ``behavior/``):

* states ``s_0 .. s_H``: ``s_0`` is the start state, ``s_{t+1} = img_step(s_t, a_t)``;
* ``reward[t] = r_{t+1}`` and ``cont[t] = c_{t+1}`` are predicted from the
  features of ``s_{t+1}``: the reward earned by the transition into
  ``s_{t+1}`` and the probability that the episode goes on after it;
* ``value[t] = v(s_t)`` for ``t = 0 .. H``.

So ``reward`` and ``cont`` hold H entries and ``value`` holds H + 1. A state
with ``c = 0`` is terminal: its reward still counts, nothing after it does.
The horizon is a time limit, not a termination, so the return bootstraps on
``v(s_H)`` there.

DreamerV1 and DreamerV2 define the value of a state differently: ``v(s_t)``
counts the reward predicted for ``s_t`` itself (the reward of arriving
there), ``v(s_t) = r(s_t) + gamma c(s_t) v(s_{t+1})``, and an action taken
in ``s_t`` is judged by the return of the state it leads to.
:func:`state_reward_lambda_return` computes those returns with the same
recursion.
"""

from __future__ import annotations

import torch
from torch import Tensor


def lambda_return(reward: Tensor, cont: Tensor, value: Tensor, gamma: float, lam: float) -> Tensor:
    """TD(lambda) returns ``R_0 .. R_{H-1}`` of shape (H, ...).

    ``R_t = r_{t+1} + gamma c_{t+1} ((1 - lam) v_{t+1} + lam R_{t+1})`` with
    ``R_H = v_H``.

    Args:
        reward: (H, ...) rewards ``r_1 .. r_H``.
        cont: (H, ...) continuation probabilities ``c_1 .. c_H`` in [0, 1].
        value: (H + 1, ...) values ``v_0 .. v_H``; ``v_0`` is not used.
    """
    if reward.shape != cont.shape or value.shape != (reward.shape[0] + 1, *reward.shape[1:]):
        raise ValueError(
            f"lambda_return expects reward and cont of shape (H, ...) and value of shape (H + 1, ...); "
            f"got reward {tuple(reward.shape)}, cont {tuple(cont.shape)}, value {tuple(value.shape)}"
        )
    reward, cont, value = reward.float(), cont.float(), value.float()
    discount = gamma * cont
    # Everything that does not depend on later returns, computed in one op.
    interim = reward + discount * (1 - lam) * value[1:]
    returns = []
    last = value[-1]
    for t in reversed(range(reward.shape[0])):
        last = interim[t] + discount[t] * lam * last
        returns.append(last)
    return torch.stack(returns[::-1])


def state_reward_lambda_return(
    state_reward: Tensor, state_cont: Tensor, value: Tensor, gamma: float, lam: float
) -> Tensor:
    """TD(lambda) returns ``R_0 .. R_{H-1}`` when a state's value includes its
    own reward (DreamerV1/V2), shape (H, ...).

    ``R_t = r(s_t) + gamma c(s_t) ((1 - lam) v_{t+1} + lam R_{t+1})`` with
    ``R_H = v_H``: :func:`lambda_return` with the rewards and continue flags
    of the states themselves in place of their successors'.

    Args:
        state_reward: (H + 1, ...) rewards predicted for ``s_0 .. s_H``.
        state_cont: (H + 1, ...) continue probabilities of ``s_0 .. s_H``.
        value: (H + 1, ...) values ``v_0 .. v_H`` (in this convention).
    """
    if state_reward.shape != value.shape or state_cont.shape != value.shape:
        raise ValueError(
            f"state_reward_lambda_return expects three (H + 1, ...) tensors; got state_reward "
            f"{tuple(state_reward.shape)}, state_cont {tuple(state_cont.shape)}, value {tuple(value.shape)}"
        )
    return lambda_return(state_reward[:-1], state_cont[:-1], value, gamma, lam)


def trajectory_weights(cont: Tensor, gamma: float, start_cont: Tensor | None = None) -> Tensor:
    """Loss weights of the states ``s_0 .. s_{H-1}``, shape (H, ...).

    ``w_0 = c_0`` (1 when ``start_cont`` is None) and
    ``w_t = w_{t-1} gamma c_t``: the discounted probability that the episode
    is still running in ``s_t``, so states after a predicted termination
    barely count. Detached: the weights scale losses, they are not optimised.

    Args:
        cont: (H, ...) continuation probabilities ``c_1 .. c_H``.
        start_cont: (...) ``c_0``, e.g. ``1 - is_terminal`` of the start states.
    """
    cont = cont.detach().float()
    first = torch.ones_like(cont[0]) if start_cont is None else start_cont.detach().float().expand_as(cont[0])
    factors = torch.cat([first[None], gamma * cont[:-1]], 0)
    return torch.cumprod(factors, 0)


def replay_lambda_return(
    reward: Tensor, terminal: Tensor, last: Tensor, boot: Tensor, gamma: float, lam: float
) -> Tensor:
    """Lambda-returns along a replayed sequence, batch-major (B, T) -> (B, T - 1).

    Used by the 2024 DreamerV3's replayed-value loss. ``boot[:, t]`` is the
    value estimate of replayed step t (the imagined return from there);
    ``reward[:, t]``, ``terminal[:, t]`` and ``last[:, t]`` describe step t
    (the reward that led to it, whether it ends the episode). With
    ``c = 1 - last_{t+1}``:

    ``G_t = r_{t+1} + gamma (1 - term_{t+1}) ((1 - lam c) boot_{t+1} + lam c G_{t+1})``

    and ``G_{T-1} = boot_{T-1}``; at an episode boundary (``last``) the
    return stops recursing and bootstraps on ``boot`` alone.
    """
    if not reward.shape == terminal.shape == last.shape == boot.shape or reward.dim() != 2:
        raise ValueError(
            f"replay_lambda_return expects four (B, T) tensors; got reward {tuple(reward.shape)}, "
            f"terminal {tuple(terminal.shape)}, last {tuple(last.shape)}, boot {tuple(boot.shape)}"
        )
    live = gamma * (1 - terminal[:, 1:])
    lam_next = lam * (1 - last[:, 1:])
    interim = reward[:, 1:] + live * (1 - lam_next) * boot[:, 1:]
    returns = []
    running = boot[:, -1]
    for t in reversed(range(reward.shape[1] - 1)):
        running = interim[:, t] + live[:, t] * lam_next[:, t] * running
        returns.append(running)
    return torch.stack(returns[::-1], 1)
