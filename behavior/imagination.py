"""Actor-critic learning in imagination (DreamerV1, V2 and V3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from behavior.actor import Actor
from behavior.critic import Critic, SlowCopy
from behavior.imagine import LatentDynamics, State, imagine
from behavior.return_norm import ReturnNorm
from behavior.returns import lambda_return, replay_lambda_return, state_reward_lambda_return, trajectory_weights
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
        units, layers, act, norm: sizes of the actor and critic MLPs;
            actor_layers, critic_layers: their depths where they differ
            (DreamerV1: 4 and 3).
        actor_dist: continuous action distribution, ``bounded_normal`` (V3),
            ``tanh_normal`` (V1) or ``trunc_normal`` (V2), see
            :class:`~behavior.actor.Actor`; actor_mean_scale,
            actor_init_std: its parameters (None: the distribution's own).
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
        value_includes_reward: the DreamerV1/V2 value convention (see
            :mod:`behavior.returns`): ``v(s_t)`` counts ``r(s_t)``, and the
            action taken in ``s_t`` is judged by the return of ``s_{t+1}``.
        critic_from_start: the critic also learns the start state's value
            (DreamerV1 does not: its imagined trajectory begins at the first
            imagined state); with ``value_includes_reward`` only.
        slow_critic_rate, slow_critic_every: EMA of the slow critic, applied
            on every ``slow_critic_every``-th :meth:`update_slow_critic`. No
            slow critic is kept unless ``slow_target`` or ``slow_reg`` reads it.
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
        eval_sample: :meth:`act` ``eval`` samples the policy rather than
            taking its mode (the DreamerV3 references).
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
        actor_layers: int | None = None,
        critic_layers: int | None = None,
        act: str = "silu",
        norm: bool | str = True,
        actor_dist: str = "bounded_normal",
        actor_mean_scale: float = 5.0,
        actor_init_std: float | None = None,
        winit: str = "torch",
        outinit: str | None = None,
        actor_outscale: float = 1.0,
        critic_dist: str = "twohot",
        critic_bins: int = 255,
        bin_spacing: str = "symlog",
        discount_in_cont: bool = False,
        repval: float = 0.0,
        value_includes_reward: bool = False,
        critic_from_start: bool = True,
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
        eval_sample: bool = False,
    ):
        super().__init__()
        if horizon < 1:
            raise ValueError(f"horizon={horizon} must be >= 1")
        if repval < 0:
            raise ValueError(f"repval={repval} must be >= 0")
        if repval and value_includes_reward:
            raise ValueError("repval (2024 DreamerV3) assumes values without the state's own reward; "
                             "set value_includes_reward: false or repval: 0")
        if not critic_from_start and not value_includes_reward:
            raise ValueError("critic_from_start: false is the DreamerV1 convention; it needs value_includes_reward: true")
        if horizon < 2 and value_includes_reward:
            raise ValueError(f"horizon={horizon}: value_includes_reward needs horizon >= 2")
        self.value_includes_reward, self.critic_from_start = value_includes_reward, critic_from_start
        self.horizon, self.gamma, self.lam = horizon, gamma, lam
        self.dynamics_weight = _dynamics_weight(actor_grad, discrete)
        self.entropy, self.slow_target, self.slow_reg = entropy, slow_target, slow_reg
        self.discount_in_cont, self.repval = discount_in_cont, repval
        self.expl_noise, self.eval_sample = expl_noise, eval_sample
        net = dict(units=units, act=act, norm=norm)
        self.actor = Actor(
            feat_dim, action_dim, discrete, unimix=unimix, min_std=min_std, max_std=max_std,
            outscale=actor_outscale, dist=actor_dist, mean_scale=actor_mean_scale, init_std=actor_init_std,
            layers=layers if actor_layers is None else actor_layers, **net,
        )
        self.critic = Critic(
            feat_dim, dist=critic_dist, bins=critic_bins, bin_spacing=bin_spacing,
            layers=layers if critic_layers is None else critic_layers, **net,
        )
        initialize(self.actor, winit, outinit)
        initialize(self.critic, winit, outinit)
        # DreamerV1 reads no slow critic: it bootstraps on the critic and has no regulariser.
        used = slow_target or slow_reg > 0
        self.slow_critic = SlowCopy(self.critic, slow_critic_rate, slow_critic_every) if used else None
        self.return_norm = ReturnNorm(return_norm_decay) if return_norm else None

    def act(self, feat: Tensor, mode: str = "train") -> Tensor:
        """(B, A) actions for (B, F) features; see :meth:`Actor.act`.

        With ``eval_sample`` the ``eval`` mode samples the policy (without
        exploration noise) instead of taking its mode: the DreamerV3
        references act that way in every mode, so their published scores
        are those of the sampling policy.
        """
        if mode == "eval" and self.eval_sample:
            return self.actor.act(feat, "train", 0.0)
        return self.actor.act(feat, mode, self.expl_noise)

    def update_slow_critic(self) -> None:
        """Call once after each critic optimiser step."""
        if self.slow_critic is not None:
            self.slow_critic.update(self.critic)

    def _policy(self, feat: Tensor) -> Tensor:
        return self.actor(feat).sample()

    def loss(
        self, dynamics: LatentDynamics, start: State, start_cont: Tensor | None = None,
        replay: dict[str, Tensor] | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Actor and critic losses from N detached start states.

        Neither loss reaches the other's parameters: the critic learns from
        detached features and targets, and the returns bootstrap on the
        critic's values without a path to its weights. So one backward pass
        of both, into the actor's and the critic's parameters
        (``backward(inputs=...)``), gives each its own loss's gradient. With
        ``actor_grad`` other than ``reinforce`` the actor loss also reaches
        the model, which this loss must not train. With pure ``reinforce``
        the rollout runs without a graph.

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
            value = self._bootstrap(feats)
            gamma = 1.0 if self.discount_in_cont else self.gamma
            if self.value_includes_reward:
                t = self._state_reward_targets(dynamics, feats, actions, value, gamma, start_cont)
            else:
                t = self._next_reward_targets(dynamics, feats, actions, value, gamma, start_cont)
        scale = (
            self.return_norm(t["actor_return"]) if self.return_norm is not None
            else torch.ones((), device=value.device)
        )
        advantage = (t["actor_return"] - t["baseline"]) / scale

        policy = self.actor(t["actor_feat"].detach())
        logp = policy.log_prob(t["actor_action"].detach())
        # Without a bonus the entropy is a metric only; DreamerV1's sample estimate is costly to differentiate.
        with torch.set_grad_enabled(bool(self.entropy) and torch.is_grad_enabled()):
            entropy = policy.entropy()
        objective = -logp * advantage.detach()
        if backprop:
            objective = self.dynamics_weight * -advantage + (1 - self.dynamics_weight) * objective
        actor_loss = (t["actor_weight"] * (objective - self.entropy * entropy)).mean()

        target = t["critic_target"].detach()
        dist = self.critic(t["critic_feat"].detach())
        critic_loss = -dist.log_prob(target)
        if self.slow_reg:
            slow_value = (
                t["critic_value"].detach() if self.slow_target else self.slow_critic(t["critic_feat"].detach()).mean
            )
            critic_loss = critic_loss - self.slow_reg * dist.log_prob(slow_value.detach())
        critic_loss = (t["critic_weight"] * critic_loss).mean()
        reward, cont = t["reward"], t["cont"]
        returns = t["critic_target"]
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

    def _bootstrap(self, feats: Tensor) -> Tensor:
        """The values the returns bootstrap on, (H + 1, N). From the trained
        critic they carry the dynamics gradient back to the features but none
        to the critic's weights, which only the critic loss trains."""
        if self.slow_target:
            return self.slow_critic(feats).mean
        if not torch.is_grad_enabled():  # a rollout without a graph (REINFORCE) has no path to cut
            return self.critic(feats).mean
        weights = {name: weight.detach() for name, weight in self.critic.named_parameters()}
        return torch.func.functional_call(self.critic, weights, (feats,)).mean

    def _next_reward_targets(self, dynamics, feats, actions, value, gamma, start_cont) -> dict[str, Tensor]:
        """DreamerV3: ``R_t`` of :func:`lambda_return` for ``s_0 .. s_{H-1}``
        judges both the action taken in ``s_t`` and the critic's ``v(s_t)``."""
        flat = feats[1:].reshape(-1, feats.shape[-1])
        reward = dynamics.reward(flat).reshape(self.horizon, -1).float()
        cont = dynamics.cont(flat).reshape(reward.shape).float()
        returns = lambda_return(reward, cont, value, gamma, self.lam)
        weight = trajectory_weights(cont, gamma, start_cont)
        return dict(
            reward=reward, cont=cont, actor_feat=feats[:-1], actor_action=actions, actor_return=returns,
            baseline=value[:-1].detach(), actor_weight=weight, critic_feat=feats[:-1], critic_target=returns,
            critic_value=value[:-1], critic_weight=weight,
        )

    def _state_reward_targets(self, dynamics, feats, actions, value, gamma, start_cont) -> dict[str, Tensor]:
        """DreamerV1/V2: values include the state's own reward. The action
        taken in ``s_t`` (t < H - 1) is judged by ``R_{t+1}``; the critic
        learns ``R_t`` for ``s_0 .. s_{H-1}`` (from ``s_1`` without
        ``critic_from_start``). Weights ``w_t = prod_{k<t} gamma c(s_k)``."""
        flat = feats.reshape(-1, feats.shape[-1])
        reward = dynamics.reward(flat).reshape(self.horizon + 1, -1).float()
        cont = dynamics.cont(flat).reshape(reward.shape).float()
        if start_cont is not None:
            cont = torch.cat([start_cont.detach().float().reshape(1, -1), cont[1:]], 0)
        returns = state_reward_lambda_return(reward, cont, value, gamma, self.lam)
        weight = trajectory_weights(cont[:-1], gamma)
        first = 0 if self.critic_from_start else 1
        return dict(
            reward=reward[1:], cont=cont[1:], actor_feat=feats[:-2], actor_action=actions[:-1],
            actor_return=returns[1:], baseline=value[:-2].detach(), actor_weight=weight[:-1],
            critic_feat=feats[first:-1], critic_target=returns[first:], critic_value=value[first:-1],
            critic_weight=trajectory_weights(cont[first:-1], gamma),
        )

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
