"""The agent: acting with a filtered latent state, and one update step.

Protocol (all arrays numpy, N environments, B x T replayed sequences):
- ``act(obs, state, mode, track=True) -> (action (N, A) float32, state)``:
  ``obs`` holds the adapters' keys with a leading N axis; ``state`` is None at
  the start or what the previous call returned; ``mode`` is ``train``
  (exploration), ``eval`` (no exploration) or ``random`` (uniform actions for
  prefill). In ``random`` mode the state still follows the observations, so
  the policy takes over mid-episode from the filtered state; ``track=False``
  skips that for runs that never use the policy.
- ``update(batch) -> metrics``: one world-model step and one behaviour step
  on a replayed batch of (B, T, ...) arrays. Non-finite losses skip the step.
- ``report(batch) -> (videos, metrics)``: the world model's open-loop video.
The agent owns the optimisers, gradient clipping and mixed precision; its
``state_dict``/``load_state_dict`` cover modules and optimisers.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from behavior.exploration import random_actions
from behavior.imagine import flatten_states
from dreamer.optim import OPTIMIZERS, LaProp

UPDATES = ("sequential", "joint")


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Turn off ``requires_grad`` of ``module``'s trainable parameters for the
    block, so graphs built inside carry gradients through the module's
    computations but not into its weights."""
    weights = [p for p in module.parameters() if p.requires_grad]
    for weight in weights:
        weight.requires_grad_(False)
    try:
        yield
    finally:
        for weight in weights:
            weight.requires_grad_(True)


@dataclass
class OptimConfig:
    lr: float = 1e-4
    eps: float = 1e-8
    clip: float = 1000.0  # gradient-norm clip (0: none)
    weight_decay: float = 0.0  # p <- (1 - weight_decay) p before every step, not scaled by lr (DreamerV2: 1e-6)
    kind: str = "adam"  # adam | laprop (see dreamer.optim)
    beta1: float = 0.9
    beta2: float = 0.999
    agc: float = 0.0  # adaptive per-tensor clip ratio (laprop only; 0: none)
    pmin: float = 1e-3  # floor of the parameter norm in AGC
    warmup: int = 0  # updates of linear learning-rate warm-up (laprop only)

    def __post_init__(self):
        if not 0.0 <= self.weight_decay < 1.0:
            raise ValueError(f"weight_decay={self.weight_decay} must lie in [0, 1)")
        if self.kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimiser kind {self.kind!r}; choose one of {OPTIMIZERS}")
        if self.kind == "adam" and (self.agc or self.warmup):
            raise ValueError("agc and warmup belong to the laprop optimiser; set kind: laprop or remove them")


def make_optimizer(
    params, cfg: OptimConfig, device: torch.device, fused: bool = False
) -> torch.optim.Optimizer:
    """Adam with foreach kernels (batched per-parameter updates), or the fused
    single-kernel Adam when ``fused`` (see :mod:`dreamer.fast`); or LaProp.

    Weight decay is DreamerV2's: every parameter shrinks by ``1 - weight_decay``
    before each step, independently of the gradient and the learning rate;
    AdamW's decoupled decay ``lr * wd`` gives it with ``wd = weight_decay / lr``.
    """
    if cfg.kind == "laprop":
        if cfg.weight_decay:
            raise ValueError("the laprop optimiser has no weight decay; set weight_decay: 0")
        return LaProp(params, cfg.lr, (cfg.beta1, cfg.beta2), cfg.eps, cfg.agc, cfg.pmin, cfg.warmup)
    kernels = dict(fused=True) if fused else dict(foreach=True)
    if cfg.weight_decay:
        return torch.optim.AdamW(
            params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay / cfg.lr,
            **kernels,
        )
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, **kernels)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; allowed: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was requested but CUDA is not available; use device=auto or device=cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; allowed: auto, cpu, cuda, cuda:N")
    return device


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every element of ``tensors`` is finite, in one device-to-host transfer."""
    return bool(torch.isfinite(torch.cat([t.detach().float().reshape(-1) for t in tensors])).all())


NON_MODEL_KEYS = ("reward", "is_first", "is_last", "is_terminal", "action")


def clip_gradients(params: list[torch.Tensor], clip: float) -> torch.Tensor:
    """Clip the gradients' global norm to ``clip`` (0: no clipping); returns the
    norm before clipping, on the device."""
    return torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"), foreach=True)


def to_host(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    """Scalar tensors as floats in one device-to-host transfer (one sync per
    update, not one per metric)."""
    tensors = {k: v for k, v in metrics.items() if isinstance(v, torch.Tensor)}
    values = torch.stack([v.detach().float().reshape(()) for v in tensors.values()]).tolist() if tensors else []
    return {k: float(v) for k, v in metrics.items()} | dict(zip(tensors, values))


class Agent(nn.Module):
    def __init__(
        self,
        world_model: nn.Module,
        action_dim: int,
        discrete: bool,
        *,
        behavior: nn.Module | None = None,
        planner=None,
        model_optim: OptimConfig = OptimConfig(),
        actor_optim: OptimConfig = OptimConfig(3e-5, 1e-5, 100.0),
        critic_optim: OptimConfig = OptimConfig(3e-5, 1e-5, 100.0),
        expl_noise: float = 0.0,
        update: str = "sequential",
        bf16: bool = False,
        fused_optim: bool = False,
        device: torch.device | str = "cpu",
    ):
        super().__init__()
        if (behavior is None) == (planner is None):
            raise ValueError("give exactly one of behavior (actor-critic) or planner (CEM)")
        if update not in UPDATES:
            raise ValueError(f"unknown update {update!r}; choose one of {UPDATES}")
        if update == "joint" and (behavior is None or behavior.dynamics_weight > 0):
            raise ValueError(
                "update=joint sums all losses into one backward pass, which needs an actor-critic with "
                "actor_grad=reinforce (a dynamics gradient would train the model on the actor's loss)"
            )
        if behavior is not None and getattr(behavior, "repval", 0) and update != "joint":
            raise ValueError("repval trains the world model through the critic loss; it needs update=joint")
        self.update_kind = update
        self.device = torch.device(device)
        self.world_model = world_model
        self.behavior = behavior
        self.planner = planner
        self.action_dim, self.discrete = action_dim, discrete
        self.expl_noise = expl_noise
        self.bf16 = bf16
        self.to(self.device)
        self.model_clip = model_optim.clip
        # The loss callables are attributes so dreamer.fast can swap in compiled ones.
        self._model_loss = world_model.loss
        self._behavior_loss = behavior.loss if behavior is not None else None
        # dreamer.distributed swaps in a check that all ranks agree on, so they skip together.
        self._all_finite = all_finite
        self.model_opt = make_optimizer(world_model.parameters(), model_optim, self.device, fused_optim)
        if behavior is not None:
            self.actor_params = list(behavior.actor.parameters())
            self.critic_params = list(behavior.critic.parameters())
            self.actor_clip, self.critic_clip = actor_optim.clip, critic_optim.clip
            self.actor_opt = make_optimizer(self.actor_params, actor_optim, self.device, fused_optim)
            self.critic_opt = make_optimizer(self.critic_params, critic_optim, self.device, fused_optim)

    # ----------------------------------------------------------------- helpers
    def _autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _tensors(self, data: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        # Prefetched batches arrive as (pinned) tensors; numpy ones are converted here.
        return {
            k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor)
            else torch.as_tensor(np.asarray(v), device=self.device)
            for k, v in data.items()
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"model": self.model_opt}
        if self.behavior is not None:
            opts.update(actor=self.actor_opt, critic=self.critic_opt)
        return opts

    # -------------------------------------------------------------------- act
    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], state=None, mode: str = "train", track: bool = True):
        if mode not in ("train", "eval", "random"):
            raise ValueError(f"unknown act mode {mode!r}; allowed: train, eval, random")
        count = len(obs["is_first"])
        if mode == "random" and not track:
            return random_actions(count, self.action_dim, self.discrete).numpy(), None
        wm = self.world_model
        if state is None:
            state = (wm.initial(count), torch.zeros(count, self.action_dim, device=self.device))
        with self._autocast():
            post = self._observe(obs, *state)
            if mode == "random":
                action = random_actions(count, self.action_dim, self.discrete).to(self.device).float()
            else:
                action = self._policy(post, mode)
        return action.cpu().numpy(), (post, action)

    @torch.no_grad()
    def policy(self, latent, mode: str = "eval") -> torch.Tensor:
        """(B, A) actions of the actor (or the planner) at model states ``latent``."""
        if mode not in ("train", "eval"):
            raise ValueError(f"unknown policy mode {mode!r}; allowed: train, eval")
        with self._autocast():
            return self._policy(latent, mode)

    def _policy(self, latent, mode: str) -> torch.Tensor:
        if self.planner is not None:
            action = self.planner.plan(self.world_model, latent)
            if mode == "train" and self.expl_noise > 0:
                action = action + self.expl_noise * torch.randn_like(action)
        else:
            action = self.behavior.act(self.world_model.feat(latent), mode)
        action = action.float()
        return action if self.discrete else action.clamp(-1, 1)

    @torch.no_grad()
    def observe(self, obs: dict[str, np.ndarray], latent, action: torch.Tensor):
        """The posterior after seeing ``obs`` (B,) from ``latent`` (``None``: the initial
        state) when ``action`` (B, A) led to it; ``obs['is_first']`` resets."""
        if latent is None:
            latent = self.world_model.initial(len(obs["is_first"]))
        with self._autocast():
            return self._observe(obs, latent, action.to(self.device))

    def _observe(self, obs, latent, action):
        data = self._tensors({k: v for k, v in obs.items() if k not in NON_MODEL_KEYS or k == "is_first"})
        embed = self.world_model.encode({k: v for k, v in data.items() if k != "is_first"})
        post, _ = self.world_model.obs_step(latent, action, embed, data["is_first"])
        return post

    # ----------------------------------------------------------------- update
    def _step(self, opt, loss, params, clip, inputs=None, retain=False) -> torch.Tensor:
        """Backward, clip and step; returns the gradient norm before clipping, on the device."""
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=inputs, retain_graph=retain)
        norm = clip_gradients(params, clip)
        opt.step()
        return norm

    def _behavior_losses(self, start, start_cont) -> tuple[dict, dict]:
        """The sequential update's actor and critic losses from detached start
        states, with the world model's weights frozen: no behaviour loss trains
        them, and a compiled loss (one graph, forward and backward) would
        otherwise compute their gradients in every backward pass."""
        with frozen(self.world_model), self._autocast():
            return self._behavior_loss(self.world_model, start, start_cont)

    def _behavior_backward(self, losses: dict[str, torch.Tensor]) -> None:
        """The actor's and the critic's gradients, in their ``.grad``."""
        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        # One backward pass for both: neither loss reaches the other's
        # parameters (ImaginationBehavior.loss), so each gets its own loss's
        # gradient. A compiled loss is one autograd node whose whole backward
        # runs at every call, so a pass per loss would run it twice.
        torch.autograd.backward([losses["actor"], losses["critic"]], inputs=[*self.actor_params, *self.critic_params])

    def _behavior_step(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Actor and critic steps from their losses (the sequential update);
        returns their gradient norms before clipping, on the device."""
        self._behavior_backward(losses)
        norms = {}
        for name, opt, params, clip in (
            ("actor", self.actor_opt, self.actor_params, self.actor_clip),
            ("critic", self.critic_opt, self.critic_params, self.critic_clip),
        ):
            norms[f"train/{name}_grad_norm"] = clip_gradients(params, clip)
            opt.step()
        return norms

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One world-model and one behaviour update; returns ``train/...`` metrics.

        ``sequential`` (DreamerV1-V3 2023): the world model steps first, then
        the actor and critic learn in imagination from its posterior states.
        ``joint`` (2024 DreamerV3): all losses are computed with the same
        parameters and summed into one backward pass, so the replayed-value
        loss can train the world model.

        If any loss is NaN or infinite, no parameter changes and the returned
        metrics hold ``train/nonfinite = 1``; the caller decides when to stop.
        """
        data = self._tensors(batch)
        if self.update_kind == "joint":
            return self._joint_update(data)
        wm = self.world_model
        with self._autocast():
            model_loss, post, _, wm_metrics = self._model_loss(data)
        if not self._all_finite([model_loss]):
            return {"train/nonfinite": 1.0}
        metrics = {f"train/{k}": v for k, v in wm_metrics.items()}
        metrics["train/model_grad_norm"] = self._step(
            self.model_opt, model_loss, list(wm.parameters()), self.model_clip
        )
        if self.behavior is not None:
            start = flatten_states(post)
            start_cont = self._start_cont(data)
            losses, behavior_metrics = self._behavior_losses(start, start_cont)
            if not self._all_finite(list(losses.values())):
                return {**to_host(metrics), "train/nonfinite": 1.0}
            metrics.update(self._behavior_step(losses))
            self.behavior.update_slow_critic()
            metrics.update({f"train/{k}": v for k, v in behavior_metrics.items()})
        return {**to_host(metrics), "train/nonfinite": 0.0}

    def _scored(self, data: dict[str, torch.Tensor], key: str) -> torch.Tensor:
        """``data[key]`` without the replay-context steps, which get no loss."""
        return data[key][:, getattr(self.world_model, "replay_context", 0):]

    def _start_cont(self, data: dict[str, torch.Tensor]) -> torch.Tensor:
        # Imagining onward from a terminal state must not count.
        return 1.0 - self._scored(data, "is_terminal").float().reshape(-1)

    def replayed(self, data: dict[str, torch.Tensor], post) -> dict[str, torch.Tensor]:
        """The replayed sequence the behaviour's replayed-value loss reads
        (``replay=`` of :meth:`ImaginationBehavior.loss`)."""
        return {
            "feat": self.world_model.feat(post),
            "reward": self._scored(data, "reward"),
            "is_terminal": self._scored(data, "is_terminal"),
            "is_last": self._scored(data, "is_last"),
        }

    def _joint_update(self, data: dict[str, torch.Tensor]) -> dict[str, float]:
        wm = self.world_model
        with self._autocast():
            model_loss, post, _, wm_metrics = self._model_loss(data)
            losses, behavior_metrics = self._behavior_loss(
                wm, flatten_states(post), self._start_cont(data), self.replayed(data, post)
            )
        total = model_loss + losses["actor"] + losses["critic"]
        opts = self.optimizers()
        for opt in opts.values():
            opt.zero_grad(set_to_none=True)
        # A non-finite loss only spoils gradients, and no parameter moves before
        # opt.step(), so the finiteness check waits for the update's one
        # device-to-host transfer (the metrics) instead of adding a second.
        total.backward()
        groups = {"model": list(wm.parameters()), "actor": self.actor_params, "critic": self.critic_params}
        clips = {"model": self.model_clip, "actor": self.actor_clip, "critic": self.critic_clip}
        metrics = {f"train/{k}": v for k, v in wm_metrics.items()}
        for name, params in groups.items():
            metrics[f"train/{name}_grad_norm"] = clip_gradients(params, clips[name])
        metrics.update({f"train/{k}": v for k, v in behavior_metrics.items()})
        metrics = to_host(metrics)
        if not self._all_finite([model_loss, total]):
            return {"train/nonfinite": 1.0}
        for opt in opts.values():
            opt.step()
        self.behavior.update_slow_critic()
        return {**metrics, "train/nonfinite": 0.0}

    @torch.no_grad()
    def report(self, batch: dict[str, np.ndarray]):
        """Open-loop video and its metrics from the world model."""
        with self._autocast():
            out = self.world_model.report(self._tensors(batch))
        videos = {k: v for k, v in out.items() if isinstance(v, np.ndarray) and v.ndim == 4}
        scalars = {f"report/{k}": float(v) for k, v in out.items() if k not in videos}
        return videos, scalars

    # ------------------------------------------------------------- checkpoint
    def checkpoint_state(self) -> dict:
        return {
            "modules": self.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers().items()},
        }

    def load_checkpoint_state(self, state: dict) -> None:
        self.load_state_dict(state["modules"])
        for name, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
