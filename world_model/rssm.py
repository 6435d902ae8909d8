"""Recurrent state-space model (RSSM) with Gaussian or categorical latents.

A state is a plain dict of tensors with a shared batch shape (B,) or (B, T):

- ``deter`` (..., deter): the GRU state h.
- ``stoch`` (..., stoch_flat): the sampled latent z, flattened
  (``stoch`` for Gaussian latents, ``stoch * classes`` for categorical ones).
- the latent's parameters: ``logits`` (..., stoch, classes) for
  ``latent='categorical'`` (DreamerV2/V3), or ``mean`` and ``std``
  (..., stoch) for ``latent='gaussian'`` (PlaNet/DreamerV1).

Transitions: h_t = GRU(h_{t-1}, z_{t-1}, a_t); prior p(z_t | h_t);
posterior q(z_t | h_t, e_t) with e_t the observation embedding. ``a_t`` is the
action that led to observation t (zeros where ``is_first``).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_model import distributions as dists
from world_model.layers import BlockLinear, LayerNorm, activation, linear_bias, make_norm, mark_output
from world_model.mlp import MLP

LATENTS = ("gaussian", "categorical")
CELLS = ("gru", "blockgru")
State = dict[str, Tensor]


class NormGRUCell(nn.Module):
    """GRU cell with one fused linear layer, LayerNorm on the gates and a
    negative update-gate bias (DreamerV2/V3), so the state is kept by default.

    ``x`` (B, in_dim), ``h`` (B, hidden) -> (B, hidden).
    """

    def __init__(self, in_dim: int, hidden: int, update_bias: float = -1.0):
        super().__init__()
        self.linear = nn.Linear(in_dim + hidden, 3 * hidden, bias=False)
        self.norm = LayerNorm(3 * hidden, eps=1e-3)
        self.update_bias = update_bias

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        reset, cand, update = self.norm(self.linear(torch.cat([x, h], -1))).chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update + self.update_bias)
        return update * cand + (1 - update) * h


class BlockGRUCell(nn.Module):
    """The 2024 DreamerV3 recurrent cell: a GRU whose weights are block-diagonal.

    The state h is split into ``blocks`` groups. Every group sees the shared
    input ``x`` and its own slice of h, passes them through ``layers`` hidden
    block layers (normalised over the whole state) and computes its own
    reset, candidate and update gates, so group i never reads group j's
    state: a large state at a fraction of a dense GRU's weights.

    ``x`` (B, in_dim), ``h`` (B, hidden) -> (B, hidden).
    """

    def __init__(
        self, in_dim: int, hidden: int, blocks: int = 8, layers: int = 1, act: str = "silu",
        norm: bool | str = "rms", update_bias: float = -1.0,
    ):
        super().__init__()
        if hidden % blocks:
            raise ValueError(f"deter={hidden} must be divisible by blocks={blocks}")
        self.blocks, self.update_bias = blocks, update_bias
        width = hidden + blocks * in_dim
        hidden_layers: list[nn.Module] = []
        for _ in range(layers):
            hidden_layers += [BlockLinear(width, hidden, blocks, bias=linear_bias(norm)), make_norm(norm, hidden), activation(act)]
            width = hidden
        self.hidden = nn.Sequential(*hidden_layers)
        self.gates = BlockLinear(width, 3 * hidden, blocks)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        g = self.blocks
        shared = x.unsqueeze(-2).expand(*x.shape[:-1], g, x.shape[-1])
        x = torch.cat([h.unflatten(-1, (g, -1)), shared], -1).flatten(-2)
        gates = self.gates(self.hidden(x)).unflatten(-1, (g, -1))
        reset, cand, update = (part.flatten(-2) for part in gates.chunk(3, -1))
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update + self.update_bias)
        return update * cand + (1 - update) * h


class RSSM(nn.Module):
    """Recurrent state-space model; see the module docstring for the state.

    Args:
        action_dim: A, size of the (continuous or one-hot) action.
        embed_dim: E, size of the observation embedding.
        latent: ``'categorical'`` (``stoch`` groups of ``classes`` one-hots)
            or ``'gaussian'`` (``stoch`` dims, std >= ``min_std``).
        deter: GRU state size. hidden: width of the layers around the GRU.
        unimix: uniform mix of categorical latents (DreamerV3: 0.01).
        act, norm: activation and norm (``layer``, ``rms``, ``none``, see
            :mod:`world_model.layers`) of the hidden layers.
        cell: ``gru``: z and a are summed into one input layer before a
            dense GRU (DreamerV1-V3 2023). ``blockgru``: h, z and a each get
            an input layer of ``hidden`` units, concatenated, and drive a
            :class:`BlockGRUCell` of ``blocks`` blocks with ``dyn_layers``
            hidden layers (2024 DreamerV3).
        gru_norm: LayerNorm GRU (DreamerV2/V3) instead of ``nn.GRUCell``
            (``cell='gru'`` only).
        prior_layers: hidden layers between h and the prior's statistics.
        learned_initial: start from a learned deterministic state (2023
            DreamerV3) instead of zeros.
        action_norm: divide actions by max(1, |a|) (per element, no gradient
            through the divisor) before the dynamics, so an actor sample
            outside [-1, 1] cannot drive the model where data never went.
    """

    def __init__(
        self,
        action_dim: int,
        embed_dim: int,
        *,
        latent: str = "categorical",
        deter: int = 512,
        hidden: int = 512,
        stoch: int = 32,
        classes: int = 32,
        unimix: float = 0.01,
        min_std: float = 0.1,
        act: str = "silu",
        norm: bool | str = True,
        cell: str = "gru",
        gru_norm: bool = True,
        blocks: int = 8,
        dyn_layers: int = 1,
        prior_layers: int = 1,
        learned_initial: bool = True,
        action_norm: bool = False,
    ):
        super().__init__()
        if latent not in LATENTS:
            raise ValueError(f"unknown latent {latent!r}; choose one of {LATENTS}")
        if cell not in CELLS:
            raise ValueError(f"unknown RSSM cell {cell!r}; choose one of {CELLS}")
        self.cell, self.action_norm = cell, action_norm
        self.latent, self.deter_size, self.stoch, self.classes = latent, deter, stoch, classes
        self.unimix, self.min_std = unimix, min_std
        self.categorical = latent == "categorical"
        self.stoch_size = stoch * classes if self.categorical else stoch
        self.feat_size = self.stoch_size + deter
        stats = stoch * classes if self.categorical else 2 * stoch
        self.stat_keys = ("logits",) if self.categorical else ("mean", "std")

        bias = linear_bias(norm)
        # Layers that see two inputs are split in two linears so the part fed
        # by whole sequences (actions, embeddings) runs once outside the loop.
        if cell == "gru":
            self.img_in_stoch = nn.Linear(self.stoch_size, hidden, bias=bias)
            self.img_in_action = nn.Linear(action_dim, hidden, bias=False)
            self.img_in_norm = make_norm(norm, hidden)
            self.gru = NormGRUCell(hidden, deter) if gru_norm else nn.GRUCell(hidden, deter)
        else:
            self.dyn_in_deter = MLP(deter, hidden, 1, act, norm)
            self.dyn_in_stoch = MLP(self.stoch_size, hidden, 1, act, norm)
            self.dyn_in_action = MLP(action_dim, hidden, 1, act, norm)
            self.gru = BlockGRUCell(3 * hidden, deter, blocks, dyn_layers, act, norm)
        self.img_out = MLP(deter, hidden, prior_layers, act, norm)
        self.prior_stats = mark_output(nn.Linear(hidden, stats), 1.0)
        self.obs_deter = nn.Linear(deter, hidden, bias=bias)
        self.obs_embed = nn.Linear(embed_dim, hidden, bias=False)
        self.obs_norm = make_norm(norm, hidden)
        self.post_stats = mark_output(nn.Linear(hidden, stats), 1.0)
        self.act = activation(act)
        if learned_initial:
            self.initial_deter = nn.Parameter(torch.zeros(deter))
        else:
            self.register_buffer("initial_deter", torch.zeros(deter), persistent=False)
        self.learned_initial = learned_initial

    # ----- latent distribution -------------------------------------------------
    def _stats(self, raw: Tensor) -> tuple[Tensor, ...]:
        if self.categorical:
            return (raw.reshape(*raw.shape[:-1], self.stoch, self.classes),)
        mean, std = raw.chunk(2, -1)
        return mean, F.softplus(std) + self.min_std

    def _dist_from(self, stats: tuple[Tensor, ...]):
        if self.categorical:
            return dists.OneHotCategorical(stats[0], self.unimix, event_dims=2)
        return dists.Normal(stats[0], stats[1], event_dims=1)

    def _draw(self, stats: tuple[Tensor, ...], sample: bool) -> Tensor:
        dist = self._dist_from(stats)
        z = dist.sample() if sample else dist.mode()
        return z.flatten(-2) if self.categorical else z

    def dist(self, state: State):
        """The latent distribution of ``state``: ``OneHotCategorical`` with
        event shape (stoch, classes), or ``Normal`` with event shape (stoch,)."""
        return self._dist_from(tuple(state[k] for k in self.stat_keys))

    def _state(self, deter: Tensor, stoch: Tensor, stats: tuple[Tensor, ...]) -> State:
        state = {"deter": deter, "stoch": stoch}
        state.update(zip(self.stat_keys, stats))
        return state

    # ----- public API -------------------------------------------------------------
    def initial(self, batch_size: int) -> State:
        """The state before the first observation, on the module's device: (B, ...)."""
        device = self.initial_deter.device
        if self.learned_initial:
            deter = torch.tanh(self.initial_deter).expand(batch_size, -1)
            stats = self._stats(self.prior_stats(self.img_out(deter)))
            return self._state(deter, self._draw(stats, sample=False), stats)
        deter = torch.zeros(batch_size, self.deter_size, device=device)
        stoch = torch.zeros(batch_size, self.stoch_size, device=device)
        if self.categorical:
            stats = (torch.zeros(batch_size, self.stoch, self.classes, device=device),)
        else:
            stats = (torch.zeros(batch_size, self.stoch, device=device), torch.ones(batch_size, self.stoch, device=device))
        return self._state(deter, stoch, stats)

    def feat(self, state: State) -> Tensor:
        """concat(stoch, deter): (..., feat_size)."""
        return torch.cat([state["stoch"], state["deter"]], -1)

    def action_in(self, action: Tensor) -> Tensor:
        """The action's input features to the core, (..., A) -> (..., hidden);
        per step, so whole sequences are transformed outside the loop."""
        if self.action_norm:
            action = action / action.abs().clamp(min=1).detach()
        if self.cell == "gru":
            return self.img_in_action(action)
        return self.dyn_in_action(action)

    def _core(self, deter: Tensor, stoch: Tensor, action_in: Tensor) -> Tensor:
        if self.cell == "gru":
            x = self.act(self.img_in_norm(self.img_in_stoch(stoch) + action_in))
        else:
            x = torch.cat([self.dyn_in_deter(deter), self.dyn_in_stoch(stoch), action_in], -1)
        return self.gru(x, deter)

    def _posterior(self, deter: Tensor, embed_in: Tensor, sample: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
        stats = self._stats(self.post_stats(self.act(self.obs_norm(self.obs_deter(deter) + embed_in))))
        return self._draw(stats, sample), stats

    def _prior(self, deter: Tensor, sample: bool) -> State:
        stats = self._stats(self.prior_stats(self.img_out(deter)))
        return self._state(deter, self._draw(stats, sample), stats)

    def img_step(self, state: State, action: Tensor, sample: bool = True) -> State:
        """One imagined step: (B, ...) state and (B, A) action -> prior state (B, ...)."""
        deter = self._core(state["deter"], state["stoch"], self.action_in(action))
        return self._prior(deter, sample)

    def obs_step(
        self, state: State, action: Tensor, embed: Tensor, is_first: Tensor, sample: bool = True
    ) -> tuple[State, State]:
        """One filtering step -> (posterior, prior), both (B, ...).

        ``action`` (B, A) led to the observation embedded in ``embed`` (B, E).
        Where ``is_first`` (B,) is True the previous state and the action are
        replaced by the initial state and zeros before the transition.
        """
        keep = (~is_first.bool()).to(embed.dtype).unsqueeze(-1)
        init = self.initial(embed.shape[0])
        deter = keep * state["deter"] + (1 - keep) * init["deter"]
        stoch = keep * state["stoch"] + (1 - keep) * init["stoch"]
        deter = self._core(deter, stoch, self.action_in(action * keep))
        post_stoch, post_stats = self._posterior(deter, self.obs_embed(embed), sample)
        return self._state(deter, post_stoch, post_stats), self._prior(deter, sample)

    def observe(
        self,
        state: State | None,
        embed: Tensor,
        action: Tensor,
        is_first: Tensor,
        sample: bool = True,
    ) -> tuple[State, State]:
        """Filter a sequence -> (posterior, prior), dicts of (B, T, ...) tensors.

        ``state``: (B, ...) state before the first step, or None for the
        initial state. ``embed`` (B, T, E), ``action`` (B, T, A) (the action
        that led to step t), ``is_first`` (B, T) resets inside the sequence.
        """
        batch, length = embed.shape[:2]
        if action.shape[:2] != (batch, length) or is_first.shape != (batch, length):
            raise ValueError(
                f"observe expects embed (B, T, E), action (B, T, A), is_first (B, T); got "
                f"{tuple(embed.shape)}, {tuple(action.shape)}, {tuple(is_first.shape)}"
            )
        init = self.initial(batch)
        if state is None:
            state = init
        keep = (~is_first.bool()).to(embed.dtype).unsqueeze(-1)
        action_in = self.action_in(action * keep)
        embed_in = self.obs_embed(embed)
        deter, stoch = state["deter"], state["stoch"]
        deters, stochs, stats = [], [], []
        for t in range(length):
            k = keep[:, t]
            deter = k * deter + (1 - k) * init["deter"]
            stoch = k * stoch + (1 - k) * init["stoch"]
            deter = self._core(deter, stoch, action_in[:, t])
            stoch, step_stats = self._posterior(deter, embed_in[:, t], sample)
            deters.append(deter)
            stochs.append(stoch)
            stats.append(step_stats)
        deters = torch.stack(deters, 1)
        post_stats = tuple(torch.stack(s, 1) for s in zip(*stats))
        post = self._state(deters, torch.stack(stochs, 1), post_stats)
        # The prior depends on h_t only, so it is computed for all steps at once.
        return post, self._prior(deters, sample)

    def imagine(
        self,
        state: State,
        policy_or_actions: Callable[[State], Tensor] | Tensor,
        horizon: int,
        sample: bool = True,
        is_first: Tensor | None = None,
    ) -> State | tuple[State, Tensor]:
        """Roll the prior forward ``horizon`` steps from ``state`` (B, ...).

        With an action tensor (B, H, A), returns the H successor states
        (B, H, ...); step h applies ``actions[:, h]``. ``is_first`` (B, H),
        for replayed actions, starts a new episode from the initial state
        where it is True, as ``observe`` does. With a policy, a callable
        ``state -> action`` (B, A) (gradients kept), returns ``(states,
        actions)`` where ``actions[:, h]`` (B, H, A) was chosen in the state
        before ``states[:, h]`` (the start state for h = 0) and led to it.
        """
        if isinstance(policy_or_actions, Tensor):
            actions = policy_or_actions
            if actions.dim() != 3 or actions.shape[1] < horizon:
                raise ValueError(f"imagine needs actions (B, H>={horizon}, A), got {tuple(actions.shape)}")
            keep = None
            if is_first is not None:
                keep = (~is_first[:, :horizon].bool()).to(actions.dtype).unsqueeze(-1)
                actions, init = actions[:, :horizon] * keep, self.initial(actions.shape[0])
            action_in = self.action_in(actions[:, :horizon])
            deter, stoch = state["deter"], state["stoch"]
            deters, stochs, stats = [], [], []
            for h in range(horizon):
                if keep is not None:
                    deter = keep[:, h] * deter + (1 - keep[:, h]) * init["deter"]
                    stoch = keep[:, h] * stoch + (1 - keep[:, h]) * init["stoch"]
                deter = self._core(deter, stoch, action_in[:, h])
                step_stats = self._stats(self.prior_stats(self.img_out(deter)))
                stoch = self._draw(step_stats, sample)
                deters.append(deter)
                stochs.append(stoch)
                stats.append(step_stats)
            prior_stats = tuple(torch.stack(s, 1) for s in zip(*stats))
            return self._state(torch.stack(deters, 1), torch.stack(stochs, 1), prior_stats)
        states, actions = [], []
        for _ in range(horizon):
            action = policy_or_actions(state)
            state = self.img_step(state, action, sample)
            states.append(state)
            actions.append(action)
        return stack_states(states), torch.stack(actions, 1)

    # ----- KL ------------------------------------------------------------------------
    def kl(self, post: State, prior: State) -> Tensor:
        """KL(post || prior) summed over the latent: (...)."""
        if self.categorical:
            p, q = self.dist(post), self.dist(prior)
            return (p.probs * (p.logits - q.logits)).sum((-2, -1))
        mean_p, std_p, mean_q, std_q = post["mean"], post["std"], prior["mean"], prior["std"]
        kl = torch.log(std_q / std_p) + (std_p**2 + (mean_p - mean_q) ** 2) / (2 * std_q**2) - 0.5
        return kl.sum(-1)

    def kl_losses(
        self, post: State, prior: State, free_bits: float = 1.0, free_bits_mean: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        """KL balancing: ``(dyn, rep, kl)``.

        ``dyn`` = max(free, KL(sg(post) || prior)) trains the prior, ``rep`` =
        max(free, KL(post || sg(prior))) trains the posterior; ``kl`` is the
        plain KL value (...). With ``free_bits_mean`` the clip applies to the
        mean over all steps (DreamerV1/V2, returns scalars), else to every
        step (DreamerV3, returns (...)), giving zero gradient where it binds.
        """
        dyn = self.kl(detach(post), prior)
        rep = self.kl(post, detach(prior))
        kl = dyn.detach()
        if free_bits_mean:
            dyn, rep = dyn.mean(), rep.mean()
        return dyn.clamp(min=free_bits), rep.clamp(min=free_bits), kl


def detach(state: State) -> State:
    """The same state without gradients (the stop-gradient sg of the KL terms)."""
    return {k: v.detach() for k, v in state.items()}


def stack_states(states: list[State], dim: int = 1) -> State:
    """List of (B, ...) states -> one state of (B, N, ...) tensors."""
    return {k: torch.stack([s[k] for s in states], dim) for k in states[0]}
