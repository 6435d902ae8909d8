"""Output distributions shared by the world model and the behaviour.

Every class here follows one small protocol so heads are interchangeable:
``mean`` (property), ``mode()``, ``sample()`` (with gradients where the
distribution allows: reparameterised or straight-through), ``log_prob(x)``
and ``entropy()``. Event dimensions are summed, so ``log_prob`` returns the
batch shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def symlog(x: Tensor) -> Tensor:
    """sign(x) * log(1 + |x|): compresses large magnitudes, identity near 0."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """Inverse of :func:`symlog`."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def symlog_bins(num_bins: int = 255, low: float = -20.0, high: float = 20.0) -> Tensor:
    """Bin positions evenly spaced in symlog space (so exponentially in raw space)."""
    return torch.linspace(low, high, num_bins)


TWOHOT_SPACINGS = ("symlog", "symexp")


def twohot_bins(num_bins: int = 255, spacing: str = "symlog") -> Tensor:
    """The bins :class:`TwoHot` works in.

    ``symlog``: positions in symlog space, ``linspace(-20, 20, K)``.
    ``symexp``: the raw values ``symexp`` of those positions, built from the
    negative half and mirrored so that the bins are exactly symmetric and
    (for odd K) contain an exact 0.
    """
    if spacing not in TWOHOT_SPACINGS:
        raise ValueError(f"unknown two-hot bin spacing {spacing!r}; choose one of {TWOHOT_SPACINGS}")
    if spacing == "symlog":
        return symlog_bins(num_bins)
    half = symexp(torch.linspace(-20.0, 0.0, (num_bins + 1) // 2, dtype=torch.float64))
    upper = -half[:-1].flip(0) if num_bins % 2 else -half.flip(0)
    return torch.cat([half, upper]).float()


def _neighbour_bins(x: Tensor, bins: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Indices of the bins just below and above each ``x`` and the weight of the upper one."""
    x = x.clamp(bins[0], bins[-1])
    above = torch.searchsorted(bins, x.contiguous(), right=True).clamp(1, len(bins) - 1)
    below = above - 1
    lo, hi = bins[below], bins[above]
    return below, above, ((x - lo) / (hi - lo)).clamp(0, 1)


def twohot_encode(x: Tensor, bins: Tensor) -> Tensor:
    """Spread each value of ``x`` (...) over its two nearest ``bins`` (K,).

    Returns (..., K) weights summing to one whose weighted bin average equals
    ``x`` clipped to the bin range (linear interpolation between the bins).
    """
    bins = bins.to(x.device, x.dtype)
    below, above, weight_above = _neighbour_bins(x, bins)
    return (
        F.one_hot(below, len(bins)) * (1 - weight_above)[..., None]
        + F.one_hot(above, len(bins)) * weight_above[..., None]
    )


class TwoHot:
    """Categorical over exponentially spaced bins, trained with two-hot targets.

    ``logits``: (..., K); ``bins`` from :func:`twohot_bins` with the same
    ``spacing``. Both spacings put the bins at the same raw values
    ``symexp(linspace(-20, 20, K))``, so rewards and returns of any scale
    share one parameterisation; they differ in where a target is
    interpolated and the mean is taken:

    - ``symlog`` (2023 DreamerV3): the target is ``symlog(x)`` spread over
      bins in symlog space, the mean is ``symexp(sum p_i b_i)``.
    - ``symexp`` (2024 DreamerV3): the raw target is spread over the raw bin
      values, the mean is ``sum p_i b_i`` in raw space, summed in mirrored
      pairs so that uniform probabilities give exactly 0.
    """

    def __init__(self, logits: Tensor, bins: Tensor, spacing: str = "symlog"):
        if spacing not in TWOHOT_SPACINGS:
            raise ValueError(f"unknown two-hot bin spacing {spacing!r}; choose one of {TWOHOT_SPACINGS}")
        self.logits = logits.float()
        self.bins = bins.to(logits.device, torch.float32)
        self.spacing = spacing
        self.probs = torch.softmax(self.logits, -1)

    @property
    def mean(self) -> Tensor:
        if self.spacing == "symlog":
            return symexp((self.probs * self.bins).sum(-1))
        half = self.bins.shape[0] // 2
        lower = (self.probs[..., :half] * self.bins[:half]).flip(-1)
        start = half + self.bins.shape[0] % 2
        middle = self.probs[..., half] * self.bins[half] if start > half else 0.0
        return (lower + self.probs[..., start:] * self.bins[start:]).sum(-1) + middle

    def mode(self) -> Tensor:
        return self.mean

    def sample(self) -> Tensor:
        return self.mean

    def log_prob(self, x: Tensor) -> Tensor:
        # The two-hot target has two non-zero weights, so read those two logits
        # instead of forming (..., K) targets and a K-wide log-softmax product.
        target = symlog(x.float()) if self.spacing == "symlog" else x.float()
        below, above, weight_above = _neighbour_bins(target, self.bins)
        picked = self.logits.gather(-1, torch.stack([below, above], -1))
        mixed = (1 - weight_above) * picked[..., 0] + weight_above * picked[..., 1]
        return mixed - torch.logsumexp(self.logits, -1)

    def entropy(self) -> Tensor:
        return -(self.probs * torch.log_softmax(self.logits, -1)).sum(-1)


class OneHotCategorical:
    """One-hot categorical with uniform mixing and straight-through samples.

    ``logits``: (..., classes); ``event_dims`` trailing dims are summed in
    ``log_prob`` / ``entropy`` (1 for one categorical, 2 for the RSSM's
    groups x classes). Mixing ``unimix`` of a uniform keeps every class
    reachable, which bounds the KL and keeps REINFORCE gradients finite.
    """

    def __init__(self, logits: Tensor, unimix: float = 0.01, event_dims: int = 1):
        logits = logits.float()
        if unimix > 0:
            # The mixture is normalised already, so its log needs no second log-softmax.
            self.probs = (1 - unimix) * torch.softmax(logits, -1) + unimix / logits.shape[-1]
            self.logits = torch.log(self.probs)
        else:
            self.logits = torch.log_softmax(logits, -1)
            self.probs = self.logits.exp()
        self.event_dims = event_dims

    def _sum_events(self, x: Tensor) -> Tensor:
        return x.sum(tuple(range(-self.event_dims, 0)))

    @property
    def mean(self) -> Tensor:
        return self.probs

    def mode(self) -> Tensor:
        hard = F.one_hot(self.probs.argmax(-1), self.probs.shape[-1]).to(self.probs.dtype)
        return hard + self.probs - self.probs.detach()

    def sample(self) -> Tensor:
        # Inverse CDF: one uniform per categorical instead of the exponential
        # per class that torch.multinomial draws (5 % of an update at size XS).
        probs = self.probs.detach()
        uniform = torch.rand(probs.shape[:-1] + (1,), device=probs.device, dtype=probs.dtype)
        index = (probs.cumsum(-1) < uniform).sum(-1).clamp(max=probs.shape[-1] - 1)
        hard = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
        return hard + self.probs - probs

    def log_prob(self, x: Tensor) -> Tensor:
        return self._sum_events(self.logits * x.detach())

    def entropy(self) -> Tensor:
        return self._sum_events(-(self.probs * self.logits))


class BoundedNormal:
    """Diagonal normal for actions in [-1, 1]: tanh-squashed mean, bounded std.

    Samples are reparameterised and may leave [-1, 1] slightly; the agent clips
    them before they reach the environment. ``mean_raw``/``std_raw``: (..., A).
    """

    def __init__(self, mean_raw: Tensor, std_raw: Tensor, min_std: float = 0.1, max_std: float = 1.0):
        self.loc = torch.tanh(mean_raw.float())
        self.std = (max_std - min_std) * torch.sigmoid(std_raw.float() + 2.0) + min_std

    @property
    def mean(self) -> Tensor:
        return self.loc

    def mode(self) -> Tensor:
        return self.loc

    def sample(self) -> Tensor:
        return self.loc + self.std * torch.randn_like(self.loc)

    def log_prob(self, x: Tensor) -> Tensor:
        z = (x - self.loc) / self.std
        return (-0.5 * z**2 - torch.log(self.std) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> Tensor:
        return (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(self.std)).sum(-1)


# Largest |y| a tanh-squashed action is read at (DreamerV1's TanhBijector):
# atanh of anything closer to +-1 is too large for a finite log-density.
TANH_CLIP = 0.99999997


def _tanh_log_det(x: Tensor) -> Tensor:
    """log |d tanh(x) / dx| = 2 (log 2 - x - softplus(-2x)), finite for any x (no log of 1 - tanh^2)."""
    return 2.0 * (math.log(2.0) - x - F.softplus(-2.0 * x))


class TanhNormal:
    """Diagonal normal squashed by tanh (the DreamerV1 actor, ``tanh_normal``).

    Follows danijar/dreamer's ActionDecoder: the base mean is
    ``mean_scale * tanh(mean_raw / mean_scale)`` (so it saturates softly
    instead of drifting where tanh has no gradient) and the base std is
    ``softplus(std_raw + log(exp(init_std) - 1)) + min_std`` (so a zero
    output starts at std ``init_std``, wide enough to explore). Actions are
    ``tanh`` of a reparameterised base sample and lie in (-1, 1); far tails
    round to +-1 in float32, which ``log_prob`` reads at +-TANH_CLIP.

    The squashed distribution has no closed-form mean, mode or entropy, so,
    like the reference's SampleDist, they are estimated from ``samples``
    draws, taken as one (samples, ..., A) tensor. ``mean`` and ``entropy()``
    keep gradients through those draws; ``mode()`` returns the draw with the
    highest density and carries none. Draws the distribution made itself are
    scored from their pre-tanh values (as TFP's bijector cache does in the
    reference), which avoids the clipped round trip through atanh.
    ``mean_raw``/``std_raw``: (..., A).
    """

    def __init__(
        self,
        mean_raw: Tensor,
        std_raw: Tensor,
        mean_scale: float = 5.0,
        init_std: float = 5.0,
        min_std: float = 1e-4,
        samples: int = 100,
    ):
        if mean_scale <= 0:
            raise ValueError(f"mean_scale={mean_scale} must be > 0")
        if init_std <= 0:
            raise ValueError(f"init_std={init_std} must be > 0 (softplus cannot start at or below 0)")
        if min_std < 0:
            raise ValueError(f"min_std={min_std} must be >= 0")
        if samples < 1:
            raise ValueError(f"samples={samples} must be >= 1")
        raw_init_std = math.log(math.expm1(init_std))
        self.loc = mean_scale * torch.tanh(mean_raw.float() / mean_scale)
        self.std = F.softplus(std_raw.float() + raw_init_std) + min_std
        self.samples = samples

    def _base_sample(self, *shape: int) -> Tensor:
        """Reparameterised pre-tanh draws of shape (*shape, ..., A)."""
        noise = torch.randn(shape + self.loc.shape, device=self.loc.device, dtype=self.loc.dtype)
        return self.loc + self.std * noise

    def _base_log_prob(self, x: Tensor) -> Tensor:
        """Log-density of actions tanh(x), from their pre-tanh values x."""
        z = (x - self.loc) / self.std
        base = -0.5 * z**2 - torch.log(self.std) - 0.5 * math.log(2 * math.pi)
        return (base - _tanh_log_det(x)).sum(-1)

    @property
    def mean(self) -> Tensor:
        return torch.tanh(self._base_sample(self.samples)).mean(0)

    def mode(self) -> Tensor:
        with torch.no_grad():
            x = self._base_sample(self.samples)
            best = self._base_log_prob(x).argmax(0)
            x = x.gather(0, best[None, ..., None].expand(1, *x.shape[1:]))[0]
        return torch.tanh(x)

    def sample(self) -> Tensor:
        return torch.tanh(self._base_sample())

    def log_prob(self, x: Tensor) -> Tensor:
        # float32 cannot hold TANH_CLIP (it rounds to 1 - 6e-8) and loses most
        # digits of 1 - |y| near the bounds, so the inverse runs in float64.
        y = x.double().clamp(-TANH_CLIP, TANH_CLIP)
        pre = torch.atanh(y)
        loc, std = self.loc.double(), self.std.double()
        z = (pre - loc) / std
        base = -0.5 * z**2 - torch.log(std) - 0.5 * math.log(2 * math.pi)
        return (base - _tanh_log_det(pre)).sum(-1).float()

    def entropy(self) -> Tensor:
        return -self._base_log_prob(self._base_sample(self.samples)).mean(0)


def _std_normal_log_pdf(z: Tensor) -> Tensor:
    return -0.5 * z**2 - 0.5 * math.log(2 * math.pi)


class TruncNormal:
    """Diagonal normal truncated to [``low``, ``high``] (the DreamerV2 actor, ``trunc_normal``).

    Follows danijar/dreamerv2's DistLayer: ``loc = tanh(mean_raw)`` and
    ``std = 2 * sigmoid((std_raw + init_std) / 2) + min_std``, so the std
    always lies in (min_std, min_std + 2). Unlike :class:`BoundedNormal` the
    density lives on the action range itself, so samples need no clipping
    by the agent and ``log_prob`` / ``entropy`` describe the actions that
    are actually taken.

    ``sample()`` inverts the CDF of a uniform draw, so gradients reach loc
    and std along the path; then, as the reference's TruncNormalDist, the
    sample is kept ``clip`` inside the bounds with a straight-through
    gradient. CDFs are evaluated in float64: Phi((low - loc) / std) reaches
    Phi(-20) at std 0.1, which float32 rounds to 0; results are float32.
    ``log_prob`` is -inf outside [low, high]. ``mean_raw``/``std_raw``: (..., A).
    """

    def __init__(
        self,
        mean_raw: Tensor,
        std_raw: Tensor,
        init_std: float = 0.0,
        min_std: float = 0.1,
        low: float = -1.0,
        high: float = 1.0,
        clip: float = 1e-6,
    ):
        if not low < high:
            raise ValueError(f"truncation bounds low={low}, high={high} need low < high")
        if min_std < 0:
            raise ValueError(f"min_std={min_std} must be >= 0")
        if not 0 <= clip < (high - low) / 2:
            raise ValueError(f"clip={clip} must lie in [0, (high - low) / 2)")
        self.loc = torch.tanh(mean_raw.float())
        self.std = 2 * torch.sigmoid((std_raw.float() + init_std) / 2) + min_std
        self.low, self.high, self.clip = low, high, clip

    def _standardised(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """float64 loc, std, alpha, beta and the normaliser Z = Phi(beta) - Phi(alpha)."""
        loc, std = self.loc.double(), self.std.double()
        alpha, beta = (self.low - loc) / std, (self.high - loc) / std
        return loc, std, alpha, beta, torch.special.ndtr(beta) - torch.special.ndtr(alpha)

    @property
    def mean(self) -> Tensor:
        loc, std, alpha, beta, norm = self._standardised()
        shift = (_std_normal_log_pdf(alpha).exp() - _std_normal_log_pdf(beta).exp()) / norm
        return (loc + std * shift).float()

    def mode(self) -> Tensor:
        return self.loc.clamp(self.low, self.high)

    def sample(self) -> Tensor:
        loc, std, alpha, beta, norm = self._standardised()
        uniform = torch.rand(loc.shape, device=loc.device, dtype=loc.dtype)
        # Invert from whichever tail is nearer: ndtri(p) for p close to 1
        # rounds to inf, while the mirrored 1 - p keeps its digits.
        lower = torch.special.ndtr(alpha) + uniform * norm
        upper = torch.special.ndtr(-beta) + (1 - uniform) * norm
        z = torch.where(
            lower < 0.5, torch.special.ndtri(lower.clamp(max=0.5)), -torch.special.ndtri(upper.clamp(max=0.5))
        )
        event = (loc + std * z.clamp(alpha, beta)).float()
        if not self.clip:
            return event
        clipped = event.detach().clamp(self.low + self.clip, self.high - self.clip)
        return event - event.detach() + clipped

    def log_prob(self, x: Tensor) -> Tensor:
        loc, std, _, _, norm = self._standardised()
        x = x.double()
        density = _std_normal_log_pdf((x - loc) / std) - torch.log(std) - torch.log(norm)
        inside = (x >= self.low) & (x <= self.high)
        return torch.where(inside, density, -math.inf).sum(-1).float()

    def entropy(self) -> Tensor:
        _, std, alpha, beta, norm = self._standardised()
        tails = alpha * _std_normal_log_pdf(alpha).exp() - beta * _std_normal_log_pdf(beta).exp()
        entropy = 0.5 * math.log(2 * math.pi * math.e) + torch.log(std * norm) + tails / (2 * norm)
        return entropy.sum(-1).float()


class Normal:
    """Diagonal normal over the last ``event_dims`` dims (PlaNet/DreamerV1 heads)."""

    def __init__(self, loc: Tensor, std: Tensor | float = 1.0, event_dims: int = 0):
        self.loc = loc.float()
        self.std = torch.as_tensor(std, dtype=torch.float32, device=loc.device).expand_as(self.loc)
        self.event_dims = event_dims

    def _sum_events(self, x: Tensor) -> Tensor:
        return x.sum(tuple(range(-self.event_dims, 0))) if self.event_dims else x

    @property
    def mean(self) -> Tensor:
        return self.loc

    def mode(self) -> Tensor:
        return self.loc

    def sample(self) -> Tensor:
        return self.loc + self.std * torch.randn_like(self.loc)

    def log_prob(self, x: Tensor) -> Tensor:
        z = (x.float() - self.loc) / self.std
        return self._sum_events(-0.5 * z**2 - torch.log(self.std) - 0.5 * math.log(2 * math.pi))

    def entropy(self) -> Tensor:
        return self._sum_events(0.5 + 0.5 * math.log(2 * math.pi) + torch.log(self.std))


class MSE:
    """Deterministic prediction read as a distribution; log_prob is minus the squared error.

    With ``symlog`` the prediction lives in symlog space and targets are
    symlog-transformed first (DreamerV3 vectors, so targets of very different
    scales share one loss); without it the error is taken as is (DreamerV3
    images in [-0.5, 0.5]). Unlike :class:`Normal` with std 1 there is no
    factor 1/2 and no constant.
    """

    def __init__(self, pred: Tensor, event_dims: int = 1, symlog: bool = False):
        self.pred = pred.float()
        self.event_dims = event_dims
        self.symlog = symlog

    @property
    def mean(self) -> Tensor:
        return symexp(self.pred) if self.symlog else self.pred

    def mode(self) -> Tensor:
        return self.mean

    def sample(self) -> Tensor:
        return self.mean

    def log_prob(self, x: Tensor) -> Tensor:
        target = symlog(x.float()) if self.symlog else x.float()
        return -((self.pred - target) ** 2).sum(tuple(range(-self.event_dims, 0)))

    def entropy(self) -> Tensor:
        return torch.zeros(self.pred.shape[: -self.event_dims], device=self.pred.device)


class Bernoulli:
    """Bernoulli over one binary value (the continuation flag); ``logits``: (...)."""

    def __init__(self, logits: Tensor):
        self.logits = logits.float()

    @property
    def mean(self) -> Tensor:
        return torch.sigmoid(self.logits)

    def mode(self) -> Tensor:
        return (self.logits > 0).float()

    def sample(self) -> Tensor:
        return torch.bernoulli(self.mean)

    def log_prob(self, x: Tensor) -> Tensor:
        return -F.binary_cross_entropy_with_logits(self.logits, x.float(), reduction="none")

    def entropy(self) -> Tensor:
        p = self.mean
        return F.binary_cross_entropy_with_logits(self.logits, p, reduction="none")
