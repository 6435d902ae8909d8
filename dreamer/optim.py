"""Optimisers of the presets: Adam with a global-norm clip (DreamerV1-V3 2023)
and LaProp with adaptive gradient clipping (the 2024 DreamerV3).

LaProp (Ziyin et al. 2020) normalises each gradient by its running RMS first
and applies momentum to the normalised step, so the step size stays bounded
even with an epsilon of 1e-20, where Adam's momentum-then-normalise can blow
up on rare large gradients. Adaptive gradient clipping (AGC, Brock et al.
2021) shrinks each tensor's gradient to at most ``agc`` times the tensor's
own norm (never judged against less than ``pmin``), a clip that scales with
the layer instead of one threshold for all parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor

OPTIMIZERS = ("adam", "laprop")


class LaProp(torch.optim.Optimizer):
    """LaProp with per-tensor AGC and a linear learning-rate warm-up.

    One step, per parameter tensor p with gradient g and step count t >= 1:

    - AGC: ``g <- g / max(1, |g| / (agc * max(pmin, |p|)))`` (``agc=0``: off);
    - ``v <- b2 v + (1 - b2) g^2``, ``u = g / (sqrt(v / (1 - b2^t)) + eps)``;
    - ``m <- b1 m + (1 - b1) u``, ``p <- p - lr_t m / (1 - b1^t)``;
    - ``lr_t = lr * min(1, (t - 1) / warmup)``: the reference's schedule
      starts at 0 and reaches ``lr`` after ``warmup`` updates.

    Args:
        params: parameters or parameter groups.
        lr, betas, eps: as above (2024 DreamerV3: 4e-5, (0.9, 0.999), 1e-20).
        agc, pmin: adaptive clipping ratio and floor of the parameter norm
            (0.3 and 1e-3).
        warmup: updates of the linear warm-up (1000; 0: none).
    """

    def __init__(
        self, params, lr: float = 4e-5, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-20,
        agc: float = 0.3, pmin: float = 1e-3, warmup: int = 1000,
    ):
        if lr < 0 or eps < 0 or agc < 0 or pmin < 0 or warmup < 0:
            raise ValueError(f"LaProp needs non-negative lr, eps, agc, pmin, warmup; got {lr}, {eps}, {agc}, {pmin}, {warmup}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"LaProp betas={betas} must lie in [0, 1)")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, agc=agc, pmin=pmin, warmup=warmup))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["rms"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["momentum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            step = self.state[params[0]]["step"] + 1
            for p in params:
                self.state[p]["step"].fill_(step)
            beta1, beta2 = group["betas"]
            if group["agc"] > 0:
                grads = adaptive_clip(grads, params, group["agc"], group["pmin"])
            rms = [self.state[p]["rms"] for p in params]
            momentum = [self.state[p]["momentum"] for p in params]
            t = float(step)
            torch._foreach_mul_(rms, beta2)
            torch._foreach_addcmul_(rms, grads, grads, value=1 - beta2)
            denom = torch._foreach_div(rms, 1 - beta2**t)
            torch._foreach_sqrt_(denom)
            torch._foreach_add_(denom, group["eps"])
            update = torch._foreach_div(grads, denom)
            torch._foreach_lerp_(momentum, update, 1 - beta1)
            warm = min(1.0, (t - 1) / group["warmup"]) if group["warmup"] else 1.0
            scale = group["lr"] * warm / (1 - beta1**t)
            if scale:
                torch._foreach_add_(params, momentum, alpha=-scale)
        return loss


def adaptive_clip(grads: list[Tensor], params: list[Tensor], ratio: float, pmin: float) -> list[Tensor]:
    """AGC per tensor: each gradient scaled to norm <= ratio * max(pmin, |p|); new tensors."""
    grad_norms = torch._foreach_norm(grads)
    param_norms = torch._foreach_norm(params)
    limits = torch._foreach_clamp_min(param_norms, pmin)
    torch._foreach_mul_(limits, ratio)
    # factor = 1 / max(1, |g| / limit) = min(1, limit / |g|); a zero gradient keeps factor 1.
    factors = torch._foreach_div(limits, torch._foreach_clamp_min(grad_norms, 1e-30))
    torch._foreach_clamp_max_(factors, 1.0)
    return torch._foreach_mul(grads, factors)
