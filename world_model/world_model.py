"""The world model: encoder + RSSM + decoders + reward and continue heads.

Batches are batch-major dicts: ``image`` uint8 (B, T, H, W, C), vector
observations float (B, T, D), ``action`` (B, T, A) (the action that led to
step t, zeros where ``is_first``), ``reward`` (B, T), ``is_first`` and
``is_terminal`` bool (B, T). The reward and continue flag of step t are
predicted from the posterior state of step t; the continue target is
``1 - is_terminal``.

How each paper maps onto the loss arguments (KL terms ``dyn`` = KL(sg(q) || p),
``rep`` = KL(q || sg(p)), each clipped below at ``free_bits``):

- DreamerV3: ``free_bits=1.0`` per step, ``dyn_scale=0.5``, ``rep_scale=0.1``.
- DreamerV2: balance alpha and KL scale beta give ``dyn_scale = beta * alpha``,
  ``rep_scale = beta * (1 - alpha)`` (alpha 0.8; beta 0.1 Atari, 1.0 DMC),
  ``free_bits_mean=True`` with ``free_bits`` 0.0 (Atari) or 1.0 (DMC).
- DreamerV1 / PlaNet: ``beta * max(free, KL)`` with free nats 3 clipped on
  the batch mean: ``free_bits=3.0``, ``free_bits_mean=True``,
  ``dyn_scale = rep_scale = beta`` (beta 1). Prior and posterior then get
  exactly the paper's gradients; the logged KL terms sum to twice the
  paper's value. ``dyn_scale = rep_scale = beta / 2`` reproduces the value
  but halves the KL gradient relative to reconstruction.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from world_model.layers import initialize
from world_model.mlp import Head
from world_model.multi import MultiDecoder, MultiEncoder
from world_model.rssm import RSSM, State

REWARD_DISTS = ("twohot", "normal")
KL_TERMS = ("dyn", "rep")


class WorldModel(nn.Module):
    """Learns p(o, r, c | s) and the latent dynamics from replayed sequences.

    Args:
        obs_shapes: observation key -> shape; (H, W, C) images (H, W
            multiples of 16) and (D,) vectors. Reward and flag keys are ignored.
        action_dim: A. latent, deter, hidden, stoch, classes, unimix, min_std,
            cell, gru_norm, blocks, dyn_layers, prior_layers, learned_initial,
            action_norm: see :class:`~world_model.rssm.RSSM`.
        cnn_depth, cnn_mults, cnn_kernel, image_resize: channels
            ``cnn_depth * cnn_mults[i]`` per stage, kernel size and the
            down/upsampling of the image encoder and decoder, see
            :mod:`world_model.networks`.
        image_output: ``linear`` or ``sigmoid`` decoder output.
        cnn_act: activation of the image encoder and decoder where it
            differs from ``act`` (DreamerV1: ReLU); None: ``act``.
        image_bits: bits per image channel the model sees, with uniform
            dequantisation noise below 8 (PlaNet: 5); the noisy image is both
            the encoder's input and the decoder's target.
        decoder_deter_blocks: 0, or the blocks through which the deterministic
            state fills the image decoder's first grid (2024: 8).
        mlp_units, mlp_layers: width and depth of the vector encoder and
            decoder, and of the reward and continue heads unless
            ``head_layers`` is given.
        act, norm: activation and norm (``layer``, ``rms``, ``none``) of hidden layers.
        winit, outinit: initialisation of hidden and output layers, see
            :mod:`world_model.layers`.
        symlog_inputs: symlog vector observations before encoding (V3).
        image_dist, vector_dist: ``'mse'`` (V3 images), ``'symlog_mse'``
            (V3 vectors) or ``'normal'`` (std 1, V1/V2).
        reward_dist: ``'twohot'`` (V3) or ``'normal'`` (std 1).
        reward_bins, bin_spacing: two-hot bins and their spacing, see
            :class:`~world_model.distributions.TwoHot`.
        cont: learn a continue head (V2/V3); without it ``cont()`` is 1.
        cont_discount: the continue target is ``(1 - is_terminal) *
            cont_discount``; the 2024 DreamerV3 folds its discount 1 - 1/333
            into the head this way (``contdisc``), so the behaviour discounts
            with the predicted continue alone.
        replay_context: the first steps of every sequence only set the
            latent state; they get no loss and no imagination starts there.
        free_bits, free_bits_mean, dyn_scale, rep_scale: the KL loss, see
            the module docstring.
        loss_scales: scales of the other terms, by name: observation keys,
            ``'reward'``, ``'cont'``; unnamed terms get 1.0.
    """

    def __init__(
        self,
        obs_shapes: dict[str, tuple[int, ...]],
        action_dim: int,
        *,
        latent: str = "categorical",
        deter: int = 512,
        hidden: int = 512,
        stoch: int = 32,
        classes: int = 32,
        unimix: float = 0.01,
        min_std: float = 0.1,
        cell: str = "gru",
        gru_norm: bool = True,
        blocks: int = 8,
        dyn_layers: int = 1,
        prior_layers: int = 1,
        learned_initial: bool = True,
        action_norm: bool = False,
        cnn_depth: int = 32,
        cnn_mults: tuple[int, ...] = (1, 2, 4, 8),
        cnn_kernel: int = 4,
        image_resize: str = "stride",
        image_output: str = "linear",
        cnn_act: str | None = None,
        image_bits: int = 8,
        decoder_deter_blocks: int = 0,
        mlp_units: int = 512,
        mlp_layers: int = 2,
        head_layers: int | None = None,
        act: str = "silu",
        norm: bool | str = True,
        winit: str = "torch",
        outinit: str | None = None,
        symlog_inputs: bool = True,
        image_dist: str = "mse",
        vector_dist: str = "symlog_mse",
        reward_dist: str = "twohot",
        reward_bins: int = 255,
        bin_spacing: str = "symlog",
        cont: bool = True,
        cont_discount: float = 1.0,
        replay_context: int = 0,
        free_bits: float = 1.0,
        free_bits_mean: bool = False,
        dyn_scale: float = 0.5,
        rep_scale: float = 0.1,
        loss_scales: dict[str, float] | None = None,
    ):
        super().__init__()
        if reward_dist not in REWARD_DISTS:
            raise ValueError(f"unknown reward_dist {reward_dist!r}; choose one of {REWARD_DISTS}")
        if replay_context < 0:
            raise ValueError(f"replay_context={replay_context} must be >= 0")
        if not 0.0 < cont_discount <= 1.0:
            raise ValueError(f"cont_discount={cont_discount} must lie in (0, 1]")
        cnn = dict(mults=tuple(cnn_mults), kernel=cnn_kernel, resize=image_resize)
        self.encoder = MultiEncoder(
            obs_shapes, cnn_depth, mlp_units, mlp_layers, act, norm, symlog_inputs, cnn=cnn, cnn_act=cnn_act,
            image_bits=image_bits,
        )
        self.rssm = RSSM(
            action_dim,
            self.encoder.embed_dim,
            latent=latent,
            deter=deter,
            hidden=hidden,
            stoch=stoch,
            classes=classes,
            unimix=unimix,
            min_std=min_std,
            act=act,
            norm=norm,
            cell=cell,
            gru_norm=gru_norm,
            blocks=blocks,
            dyn_layers=dyn_layers,
            prior_layers=prior_layers,
            learned_initial=learned_initial,
            action_norm=action_norm,
        )
        feat = self.rssm.feat_size
        image_decoder = dict(cnn, output=image_output, deter_blocks=decoder_deter_blocks, deter_dim=deter, units=mlp_units)
        self.decoder = MultiDecoder(
            feat, obs_shapes, cnn_depth, mlp_units, mlp_layers, act, norm, image_dist, vector_dist, cnn=image_decoder,
            cnn_act=cnn_act,
        )
        layers = mlp_layers if head_layers is None else head_layers
        head = dict(units=mlp_units, layers=layers, act=act, norm=norm)
        self.reward_head = Head(
            feat, (), reward_dist, bins=reward_bins, bin_spacing=bin_spacing,
            outscale=0.0 if reward_dist == "twohot" else 1.0, **head,
        )
        self.cont_head = Head(feat, (), "bernoulli", **head) if cont else None
        initialize(self, winit, outinit)
        self.cont_discount, self.replay_context = cont_discount, replay_context
        self.free_bits, self.free_bits_mean = free_bits, free_bits_mean
        self.obs_keys = self.encoder.image_keys + self.encoder.vector_keys
        self.loss_scales = self._scales(loss_scales or {}, dyn_scale, rep_scale)

    def _scales(self, given: dict[str, float], dyn: float, rep: float) -> dict[str, float]:
        terms = [*self.obs_keys, "reward"] + (["cont"] if self.cont_head is not None else [])
        clash = set(terms[: len(self.obs_keys)]) & {"reward", "cont", *KL_TERMS}
        if clash:
            raise ValueError(f"observation keys {sorted(clash)} clash with loss term names reward/cont/dyn/rep")
        if set(given) & set(KL_TERMS):
            raise ValueError("set the KL scales with dyn_scale / rep_scale, not in loss_scales")
        unknown = set(given) - set(terms)
        if unknown:
            raise ValueError(
                f"loss_scales has keys {sorted(unknown)} that are not loss terms; "
                f"given {sorted(given)}, terms {sorted(terms)}"
            )
        scales = {k: float(given.get(k, 1.0)) for k in terms}
        scales.update(dyn=float(dyn), rep=float(rep))
        return scales

    @property
    def feat_size(self) -> int:
        """Size F of ``feat(state)``: stoch_flat + deter."""
        return self.rssm.feat_size

    @property
    def device(self) -> torch.device:
        return self.rssm.initial_deter.device

    # ----- interface for the behaviour and the planner ------------------------------
    def encode(self, obs: dict[str, Tensor]) -> Tensor:
        """Observations with leading dims (B,) or (B, T) -> embeddings (..., E)."""
        return self.encoder(obs)

    def initial(self, batch_size: int) -> State:
        return self.rssm.initial(batch_size)

    def feat(self, state: State) -> Tensor:
        return self.rssm.feat(state)

    def img_step(self, state: State, action: Tensor, sample: bool = True) -> State:
        return self.rssm.img_step(state, action, sample)

    def obs_step(
        self, state: State, action: Tensor, embed: Tensor, is_first: Tensor, sample: bool = True
    ) -> tuple[State, State]:
        return self.rssm.obs_step(state, action, embed, is_first, sample)

    def imagine(self, state: State, policy_or_actions, horizon: int, sample: bool = True):
        return self.rssm.imagine(state, policy_or_actions, horizon, sample)

    def reward(self, feat: Tensor) -> Tensor:
        """Predicted reward mean: (..., F) -> (...)."""
        return self.reward_head(feat).mean

    def cont(self, feat: Tensor) -> Tensor:
        """Predicted continue probability: (..., F) -> (...); ones without a head."""
        if self.cont_head is None:
            return torch.ones(feat.shape[:-1], device=feat.device)
        return self.cont_head(feat).mean

    # ----- learning ----------------------------------------------------------------
    def loss(
        self, batch: dict[str, Tensor], state: State | None = None
    ) -> tuple[Tensor, State, State, dict[str, Tensor]]:
        """World-model loss on a batch of (B, T) sequences.

        Returns ``(total, post, last_state, metrics)``: the scalar loss, the
        posterior states (B, T - replay_context, ...) with gradients, the detached final state
        (B, ...) to continue from, and detached scalar metrics: ``<term>_loss``
        for every term, ``model_loss``, ``kl``, ``post_ent``, ``prior_ent``.
        """
        obs = self.encoder.prepare({k: batch[k] for k in self.obs_keys})
        embed = self.encoder.embed(obs)
        post, prior = self.rssm.observe(state, embed, batch["action"], batch["is_first"])
        if self.replay_context:
            if batch["action"].shape[1] <= self.replay_context:
                raise ValueError(
                    f"sequences of length {batch['action'].shape[1]} leave no step after "
                    f"replay_context={self.replay_context}"
                )
            scored = slice(self.replay_context, None)
            post = {k: v[:, scored] for k, v in post.items()}
            prior = {k: v[:, scored] for k, v in prior.items()}
            obs = {k: v[:, scored] for k, v in obs.items()}
            batch = {k: v[:, scored] for k, v in batch.items()}
        feat = self.rssm.feat(post)
        losses: dict[str, Tensor] = {}
        for key, dist in self.decoder(feat).items():
            losses[key] = -dist.log_prob(obs[key]).mean()
        losses["reward"] = -self.reward_head(feat).log_prob(batch["reward"]).mean()
        if self.cont_head is not None:
            cont_target = (1.0 - batch["is_terminal"].float()) * self.cont_discount
            losses["cont"] = -self.cont_head(feat).log_prob(cont_target).mean()
        dyn, rep, kl = self.rssm.kl_losses(post, prior, self.free_bits, self.free_bits_mean)
        losses["dyn"], losses["rep"] = dyn.mean(), rep.mean()
        if losses.keys() != self.loss_scales.keys():
            raise KeyError(f"loss terms {sorted(losses)} do not match loss scales {sorted(self.loss_scales)}")
        total = sum(self.loss_scales[k] * v for k, v in losses.items())
        with torch.no_grad():
            metrics = {f"{k}_loss": v.detach() for k, v in losses.items()}
            metrics.update(
                model_loss=total.detach(),
                kl=kl.mean(),
                post_ent=self.rssm.dist(post).entropy().mean(),
                prior_ent=self.rssm.dist(prior).entropy().mean(),
            )
        last_state = {k: v[:, -1].detach() for k, v in post.items()}
        return total, post, last_state, metrics

    # ----- open-loop report -----------------------------------------------------------
    @torch.no_grad()
    def report(self, batch: dict[str, Tensor], context: int = 5, num: int = 4) -> dict[str, np.ndarray]:
        """Open-loop predictions for the first ``num`` sequences of ``batch``.

        The first ``context`` steps are filtered (posterior), the rest are
        imagined from the recorded actions; where a new episode starts among
        them, its imagination starts from the initial state. Returns ``openloop``, a uint8
        video (T, 3H, N*W, 3) with rows truth / model / error and sequences
        side by side, model frames framed green (observed) or red (imagined),
        for the first image key; and 0-dim float arrays
        ``openloop_<key>_mse`` (imagined steps, model vs truth) and
        ``openloop_<key>_mse_repeat_last`` (repeating the last context frame)
        for every observation key.
        """
        length = batch["action"].shape[1]
        if not 0 < context < length:
            raise ValueError(f"context must be in [1, {length - 1}] for sequences of length {length}, got {context}")
        n = min(num, batch["action"].shape[0])
        truths = self.encoder.prepare({k: batch[k][:n] for k in self.obs_keys})
        embed = self.encoder.embed({k: v[:, :context] for k, v in truths.items()})
        post, _ = self.rssm.observe(None, embed, batch["action"][:n, :context], batch["is_first"][:n, :context])
        last = {k: v[:, -1] for k, v in post.items()}
        # A sequence that crosses into the next episode is imagined from the initial state on.
        prior = self.rssm.imagine(
            last, batch["action"][:n, context:], length - context, is_first=batch["is_first"][:n, context:]
        )
        feat = torch.cat([self.rssm.feat(post), self.rssm.feat(prior)], 1)
        preds = {k: d.mean for k, d in self.decoder(feat).items()}
        out: dict[str, np.ndarray] = {}
        for key in self.obs_keys:
            truth, pred = truths[key][:, context:], preds[key][:, context:]
            repeat = truths[key][:, context - 1 : context].expand_as(truth)
            out[f"openloop_{key}_mse"] = np.asarray(((pred - truth) ** 2).mean().item(), np.float32)
            out[f"openloop_{key}_mse_repeat_last"] = np.asarray(((repeat - truth) ** 2).mean().item(), np.float32)
        if self.decoder.image_keys:
            key = self.decoder.image_keys[0]
            out["openloop"] = openloop_video(truths[key], preds[key], context)
        return out


def _rgb(x: Tensor) -> Tensor:
    """(..., C, H, W) in [0, 1] -> (..., H, W, 3); grey images are repeated."""
    x = x.movedim(-3, -1)
    return x.repeat_interleave(3, -1) if x.shape[-1] < 3 else x[..., :3]


def openloop_video(truth: Tensor, pred: Tensor, context: int) -> np.ndarray:
    """Truth / model / error rows as uint8 (T, 3H, N*W, 3).

    ``truth``, ``pred``: (N, T, C, H, W) in [-0.5, 0.5]. Model frames get a
    green border while observed (t < context) and a red one once imagined.
    """
    truth = _rgb((truth + 0.5).clamp(0, 1))
    pred = _rgb((pred + 0.5).clamp(0, 1))
    error = (pred - truth + 1) / 2
    pred = pred.clone()
    width = max(1, truth.shape[-2] // 32)
    colours = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], device=pred.device)
    for imagined, span in ((0, slice(0, context)), (1, slice(context, None))):
        frame = pred[:, span]
        colour = colours[imagined]
        frame[..., :width, :, :] = colour
        frame[..., -width:, :, :] = colour
        frame[..., :, :width, :] = colour
        frame[..., :, -width:, :] = colour
    video = torch.cat([truth, pred, error], -3)  # (N, T, 3H, W, 3)
    video = video.permute(1, 2, 0, 3, 4).flatten(2, 3)  # (T, 3H, N*W, 3)
    return (video * 255).round().to(torch.uint8).cpu().numpy()
