"""Actor-critic learning in imagination (DreamerV1, V2 and V3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from behavior.actor import Actor
from behavior.critic import Critic, SlowCopy
from behavior.imagine import LatentDynamics, State, imagine
from behavior.return_norm import ReturnNorm
from behavior.returns import lambda_return, replay_lambda_return, trajectory_weights
from world_model.layers import initialize

ACTOR_GRADS = ("reinforce", "dynamics", "auto")


def _dynamics_weight(actor_grad: str | float, discrete: bool) -> float:
    """Share of the actor gradient taken by backpropagation through the model."""
    if isinstance(actor_grad, str):
        if actor_grad not in ACTOR_GRADS:
            raise ValueError(f"unknown actor_grad {actor_grad!r}; allowed: {ACTOR_GRADS} or a float in [0, 1]")
        if actor_grad == "auto":  # the 2023 DreamerV3: dynamics for continuous, REINFORCE for discrete actions
            return float(not discrete)
        return float(actor_grad == "dynamics")
    if not 0.0 <= float(actor_grad) <= 1.0:
        raise ValueError(f"actor_grad={actor_grad} as a mix weight must lie in [0, 1]")
    return float(actor_grad)


class ImaginationBehavior(nn.Module):
    """Actor and critic trained on trajectories imagined by a world model.

    From N start states the actor imagines ``horizon`` steps; lambda-returns
    (see :mod:`behavior.returns` for the indexing) train the critic, and the
    advantages ``(R_t - v(s_t)) / scale`` train the actor.

    Args:
        feat_dim, action_dim: sizes of the model features and of the actions.
        discrete: one-hot actions instead of continuous ones in [-1, 1].
        horizon: imagined steps per start state.
        gamma, lam: discount and TD(lambda) parameter.
        actor_grad: ``reinforce`` (score function with the critic as baseline;
            no gradient through the model), ``dynamics`` (backpropagate the
            returns through the model), ``auto`` (dynamics for continuous,
            reinforce for discrete actions) or a float in [0, 1], the weight
            of ``dynamics`` in a mix of both.
        entropy: weight of the actor's entropy bonus.
        units, layers, act, norm: sizes of the actor and critic MLPs.
        winit, outinit: their initialisation (see :mod:`world_model.layers`);
            actor_outscale: the actor output layer's initial scale (2024: 0.01).
        critic_dist: ``twohot`` (V3) or ``normal`` (V1); critic_bins,
            bin_spacing: see :class:`~world_model.distributions.TwoHot`.
        discount_in_cont: the world model's continue head already includes
            the discount (its ``cont_discount``), so imagined returns and
            weights discount by the predicted continue alone; ``gamma``
            then only discounts the replayed returns of ``repval``.
        repval: scale of the replayed-value loss (2024 DreamerV3: 0.3; 0:
            off): the critic also regresses lambda-returns computed along the
            replayed posterior sequence, bootstrapped at every step on the
            imagined return from there; its gradient reaches the world model.
        slow_critic_rate, slow_critic_every: EMA of the slow critic, applied
            on every ``slow_critic_every``-th :meth:`update_slow_critic`.
        slow_target: bootstrap the returns (and the baseline) on the slow
            critic instead of the trained one.
        slow_reg: weight of the critic's regulariser towards the slow
            critic's predictions.
        return_norm: divide advantages by the running 5-95 percentile range
            of returns (floored at 1); off, advantages are used as they are.
        return_norm_decay: EMA decay of that range.
        unimix, min_std, max_std: actor distribution settings.
        expl_noise: exploration in :meth:`act` train mode (Gaussian std, or
            epsilon for discrete actions).
    """

    def __init__(
        self,
        feat_dim: int,
        action_dim: int,
        discrete: bool,
        *,
        horizon: int = 15,
        gamma: float = 0.997,
        lam: float = 0.95,
        actor_grad: str | float = "reinforce",
        entropy: float = 3e-4,
        units: int = 512,
        layers: int = 2,
        act: str = "silu",
        norm: bool | str = True,
        winit: str = "torch",
        outinit: str | None = None,
        actor_outscale: float = 1.0,
        critic_dist: str = "twohot",
        critic_bins: int = 255,
        bin_spacing: str = "symlog",
        discount_in_cont: bool = False,
        repval: float = 0.0,
        slow_critic_rate: float = 0.02,
        slow_critic_every: int = 1,
        slow_target: bool = True,
        slow_reg: float = 1.0,
        return_norm: bool = True,
        return_norm_decay: float = 0.99,
        unimix: float = 0.01,
        min_std: float = 0.1,
        max_std: float = 1.0,
        expl_noise: float = 0.0,
    ):
        super().__init__()
        if horizon < 1:
            raise ValueError(f"horizon={horizon} must be >= 1")
        if repval < 0:
            raise ValueError(f"repval={repval} must be >= 0")
        self.horizon, self.gamma, self.lam = horizon, gamma, lam
        self.dynamics_weight = _dynamics_weight(actor_grad, discrete)
        self.entropy, self.slow_target, self.slow_reg = entropy, slow_target, slow_reg
        self.discount_in_cont, self.repval = discount_in_cont, repval
        self.expl_noise = expl_noise
        net = dict(units=units, layers=layers, act=act, norm=norm)
        self.actor = Actor(
            feat_dim, action_dim, discrete, unimix=unimix, min_std=min_std, max_std=max_std,
            outscale=actor_outscale, **net,
        )
        self.critic = Critic(feat_dim, dist=critic_dist, bins=critic_bins, bin_spacing=bin_spacing, **net)
        initialize(self.actor, winit, outinit)
        initialize(self.critic, winit, outinit)
        self.slow_critic = SlowCopy(self.critic, slow_critic_rate, slow_critic_every)
        self.return_norm = ReturnNorm(return_norm_decay) if return_norm else None

    def act(self, feat: Tensor, mode: str = "train") -> Tensor:
        """(B, A) actions for (B, F) features; see :meth:`Actor.act`."""
        return self.actor.act(feat, mode, self.expl_noise)

    def update_slow_critic(self) -> None:
        """Call once after each critic optimiser step."""
        self.slow_critic.update(self.critic)

    def _policy(self, feat: Tensor) -> Tensor:
        return self.actor(feat).sample()

    def loss(
        self, dynamics: LatentDynamics, start: State, start_cont: Tensor | None = None,
        replay: dict[str, Tensor] | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Actor and critic losses from N detached start states.

        ``losses['actor']`` must be backpropagated into the actor's parameters
        only and ``losses['critic']`` into the critic's (``backward(inputs=...)``):
        with ``actor_grad`` other than ``reinforce`` the actor loss reaches the
        model and the critic, which this loss must not train. With pure
        ``reinforce`` the rollout runs without a graph.

        Updates the return-normalisation statistics when in training mode.

        Args:
            dynamics: the world model, see :class:`LatentDynamics`.
            start: state dict with (N, ...) entries, e.g. from
                :func:`behavior.imagine.flatten_states`.
            start_cont: (N,) optional ``1 - is_terminal`` of the start states;
                imagination from a terminal state then carries no weight.
            replay: for ``repval``, the replayed sequence the N = B * T start
                states came from (in row-major (B, T) order): ``feat`` (B, T,
                F) posterior features with their graph, ``reward``,
                ``is_terminal``, ``is_last`` (B, T). Its loss is added to
                ``losses['critic']`` (scaled by ``repval``) and reaches the
                world model through ``feat``.

        Returns:
            ``({'actor', 'critic'}: scalar losses, metrics: detached scalars)``.
        """
        if self.repval and replay is None:
            raise ValueError("repval > 0 needs the replayed sequence (replay=...)")
        backprop = self.dynamics_weight > 0
        with torch.set_grad_enabled(backprop and torch.is_grad_enabled()):
            feats, actions = imagine(dynamics, self._policy, start, self.horizon)
            flat = feats[1:].reshape(-1, feats.shape[-1])
            reward = dynamics.reward(flat).reshape(self.horizon, -1).float()
            cont = dynamics.cont(flat).reshape(reward.shape).float()
            bootstrap = self.slow_critic if self.slow_target else self.critic
            value = bootstrap(feats).mean
            gamma = 1.0 if self.discount_in_cont else self.gamma
            returns = lambda_return(reward, cont, value, gamma, self.lam)
        weight = trajectory_weights(cont, gamma, start_cont)
        baseline = value[:-1].detach()
        scale = self.return_norm(returns) if self.return_norm is not None else torch.ones((), device=returns.device)
        advantage = (returns - baseline) / scale

        policy = self.actor(feats[:-1].detach())
        logp = policy.log_prob(actions.detach())
        entropy = policy.entropy()
        objective = -logp * advantage.detach()
        if backprop:
            objective = self.dynamics_weight * -advantage + (1 - self.dynamics_weight) * objective
        actor_loss = (weight * (objective - self.entropy * entropy)).mean()

        target = returns.detach()
        dist = self.critic(feats[:-1].detach())
        critic_loss = -dist.log_prob(target)
        if self.slow_reg:
            slow_value = value[:-1].detach() if self.slow_target else self.slow_critic(feats[:-1].detach()).mean
            critic_loss = critic_loss - self.slow_reg * dist.log_prob(slow_value.detach())
        critic_loss = (weight * critic_loss).mean()
        extra = {}
        if self.repval:
            repval_loss = self._repval_loss(replay, returns[0].detach())
            critic_loss = critic_loss + self.repval * repval_loss
            extra["repval_loss"] = repval_loss

        metrics = {
            "imag_reward": reward.mean(),
            "imag_return": target.mean(),
            "imag_value": dist.mean.mean(),
            "imag_cont": cont.mean(),
            "return_scale": scale,
            "advantage_mag": advantage.detach().abs().mean(),
            "actor_entropy": entropy.mean(),
            "actor_loss": actor_loss,
            "critic_loss": critic_loss,
            **extra,
        }
        metrics = {key: value.detach().float() for key, value in metrics.items()}
        return {"actor": actor_loss, "critic": critic_loss}, metrics

    def _repval_loss(self, replay: dict[str, Tensor], imagined_return: Tensor) -> Tensor:
        """Critic loss on the replayed sequence: two-hot regression of the
        replayed lambda-returns, bootstrapped on the imagined return of every
        step, plus the slow-critic regulariser; masked after episode ends."""
        feat = replay["feat"]
        batch, length = feat.shape[:2]
        boot = imagined_return.reshape(batch, length)
        last = replay["is_last"].float()
        target = replay_lambda_return(
            replay["reward"].float(), replay["is_terminal"].float(), last, boot, self.gamma, self.lam
        )
        dist = self.critic(feat[:, :-1])
        loss = -dist.log_prob(target.detach())
        if self.slow_reg:
            slow_value = self.slow_critic(feat[:, :-1].detach()).mean
            loss = loss - self.slow_reg * dist.log_prob(slow_value.detach())
        return ((1 - last[:, :-1]) * loss).mean()
