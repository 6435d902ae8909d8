"""The DreamerV1 (tanh_normal) and DreamerV2 (trunc_normal) action distributions."""

import math

import pytest
import torch

from behavior.actor import CONTINUOUS_DISTS, Actor
from world_model import distributions as dists
from world_model.mlp import Head

try:
    from scipy import stats
except ImportError:  # the analytic formulas below stand in for scipy
    stats = None


# ---------------------------------------------------------------- TanhNormal


def _tanh_normal(batch=(6, 3), std_raw=-5.0, **kwargs):
    """Means within about +-3 and a base std near 0.7: samples stay clear of float32's +-1."""
    generator = torch.Generator().manual_seed(0)
    mean_raw = torch.randn(batch, generator=generator)
    return dists.TanhNormal(mean_raw, torch.full(batch, std_raw), **kwargs)


def test_tanh_normal_samples_lie_inside_the_bounds():
    torch.manual_seed(0)
    dist = _tanh_normal()
    samples = torch.stack([dist.sample() for _ in range(2000)])
    assert samples.dtype == torch.float32 and samples.shape == (2000, 6, 3)
    assert (samples.abs() < 1).all()
    # At the default init_std of 5 float32 tanh may round to +-1, never beyond.
    wide = dists.TanhNormal(torch.zeros(1000, 3), torch.zeros(1000, 3))
    assert (wide.sample().abs() <= 1).all()


def test_tanh_normal_log_prob_matches_torch_transformed_distribution():
    dist = _tanh_normal(std_raw=-3.0)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(dist.loc.double(), dist.std.double()),
        torch.distributions.transforms.TanhTransform(),
    )
    y = torch.rand(50, 6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1.98 - 0.99
    expected = reference.log_prob(y).sum(-1)
    assert dist.log_prob(y.float()).dtype == torch.float32
    assert torch.allclose(dist.log_prob(y.float()).double(), expected, rtol=1e-5, atol=1e-4)


def test_tanh_normal_density_integrates_to_one():
    dist = dists.TanhNormal(torch.tensor([[0.0], [1.5], [-2.0]]), torch.tensor([[-5.0], [-6.0], [-4.0]]))
    y = torch.linspace(-1, 1, 200_001, dtype=torch.float64)[1:-1]
    density = dist.log_prob(y[:, None, None].float()).double().exp()
    assert torch.allclose(torch.trapezoid(density, y, dim=0), torch.ones(3, dtype=torch.float64), atol=2e-3)


def test_tanh_normal_log_prob_is_finite_at_the_bounds():
    dist = dists.TanhNormal(torch.zeros(4, 2), torch.zeros(4, 2))
    edge = torch.tensor([[1.0, -1.0], [1.0, 1.0], [-1.0, -1.0], [0.0, 1.0]])
    logp = dist.log_prob(edge)
    assert torch.isfinite(logp).all()
    # The clip reads +-1 as +-0.99999997, so the edges all score the same density.
    assert torch.allclose(logp[:3], logp[0].expand(3))


def test_tanh_normal_sample_is_reparameterised():
    mean_raw = torch.randn(8, 3, requires_grad=True)
    std_raw = torch.full((8, 3), -2.0, requires_grad=True)
    dists.TanhNormal(mean_raw, std_raw).sample().sum().backward()
    for grad in (mean_raw.grad, std_raw.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_tanh_normal_zero_output_starts_at_init_std():
    dist = dists.TanhNormal(torch.zeros(2, 3), torch.zeros(2, 3))
    assert torch.allclose(dist.loc, torch.zeros(2, 3))
    assert torch.allclose(dist.std - 1e-4, torch.full((2, 3), 5.0), atol=1e-4)
    custom = dists.TanhNormal(torch.zeros(3), torch.zeros(3), init_std=0.3, min_std=0.0)
    assert torch.allclose(custom.std, torch.full((3,), 0.3), atol=1e-6)
    # The mean is soft-bounded by mean_scale.
    assert dists.TanhNormal(torch.full((1,), 1e4), torch.zeros(1), mean_scale=2.0).loc.item() == pytest.approx(2.0)


def test_tanh_normal_mode_beats_the_average_sample():
    torch.manual_seed(0)
    dist = _tanh_normal(std_raw=-3.0)
    mode = dist.mode()
    assert mode.shape == (6, 3) and not mode.requires_grad
    samples = torch.stack([dist.sample() for _ in range(1000)])
    assert (dist.log_prob(mode) > dist.log_prob(samples).mean(0)).all()


def test_tanh_normal_sample_estimates():
    torch.manual_seed(0)
    mean_raw = torch.tensor([[0.0, 0.4, -1.0]], requires_grad=True)
    dist = dists.TanhNormal(mean_raw, torch.full((1, 3), -4.0), samples=20_000)
    assert dist.mean.shape == (1, 3) and dist.entropy().shape == (1,)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(dist.loc.detach().double(), dist.std.double()),
        torch.distributions.transforms.TanhTransform(),
    )
    many = reference.sample((200_000,))
    assert torch.allclose(dist.mean.double(), many.mean(0), atol=0.01)
    expected_entropy = -reference.log_prob(many).sum(-1).mean(0)
    assert torch.allclose(dist.entropy().double(), expected_entropy, atol=0.05)
    # Like the reference's SampleDist, the estimates keep gradients.
    dist.entropy().sum().backward()
    assert mean_raw.grad is not None and torch.isfinite(mean_raw.grad).all()


def test_tanh_normal_rejects_bad_settings():
    with pytest.raises(ValueError, match="init_std=0"):
        dists.TanhNormal(torch.zeros(1), torch.zeros(1), init_std=0.0)
    with pytest.raises(ValueError, match="samples=0"):
        dists.TanhNormal(torch.zeros(1), torch.zeros(1), samples=0)


# --------------------------------------------------------------- TruncNormal

# (loc, std) pairs: wide, narrow, near a bound, the widest std, the extremes.
TRUNC_CASES = [(0.0, 1.0), (0.3, 0.3), (0.9, 0.5), (-0.5, 2.0), (0.999, 0.1), (-0.999, 0.1)]


def _trunc_normal(cases=TRUNC_CASES, batch=()):
    """A TruncNormal whose last dim holds the (loc, std) cases, built from the raw outputs that give them."""
    loc = torch.tensor([c[0] for c in cases], dtype=torch.float64)
    std = torch.tensor([c[1] for c in cases], dtype=torch.float64)
    mean_raw, std_raw = torch.atanh(loc).float(), _raw_std(std)
    shape = (*batch, len(cases))
    return dists.TruncNormal(mean_raw.expand(shape), std_raw.expand(shape))


def _analytic_moments(loc: torch.Tensor, std: torch.Tensor, low=-1.0, high=1.0):
    """Mean and variance of a normal truncated to [low, high], float64."""
    loc, std = loc.double(), std.double()
    if stats is not None:
        a, b = ((low - loc) / std).numpy(), ((high - loc) / std).numpy()
        mean, var = stats.truncnorm.stats(a, b, loc=loc.numpy(), scale=std.numpy(), moments="mv")
        return torch.as_tensor(mean), torch.as_tensor(var)
    alpha, beta = (low - loc) / std, (high - loc) / std
    normal = torch.distributions.Normal(0.0, 1.0)
    pa, pb = normal.log_prob(alpha).exp(), normal.log_prob(beta).exp()
    z = normal.cdf(beta) - normal.cdf(alpha)
    shift = (pa - pb) / z
    return loc + std * shift, std**2 * (1 + (alpha * pa - beta * pb) / z - shift**2)


def test_trunc_normal_parameters_follow_dreamerv2():
    dist = dists.TruncNormal(torch.zeros(3), torch.zeros(3))
    assert torch.allclose(dist.std, torch.full((3,), 1.1))
    extreme = dists.TruncNormal(torch.tensor([50.0, -50.0]), torch.tensor([-100.0, 100.0]))
    assert torch.allclose(extreme.loc, torch.tensor([1.0, -1.0]))
    assert torch.allclose(extreme.std, torch.tensor([0.1, 2.1]))


def test_trunc_normal_samples_lie_inside_the_clipped_bounds():
    torch.manual_seed(0)
    samples = _trunc_normal(batch=(50_000,)).sample()
    assert samples.dtype == torch.float32
    assert (samples >= -1 + 1e-6).all() and (samples <= 1 - 1e-6).all()


def test_trunc_normal_sample_moments_match_the_analytic_ones():
    torch.manual_seed(0)
    dist = _trunc_normal(batch=(200_000,))
    samples = dist.sample().double()
    mean, var = _analytic_moments(dist.loc[0], dist.std[0])
    assert torch.allclose(samples.mean(0), mean, atol=6e-3)
    assert torch.allclose(samples.std(0), var.sqrt(), atol=6e-3)
    # The distribution's own analytic mean agrees, and its mode is loc.
    assert torch.allclose(dist.mean[0].double(), mean, atol=1e-5)
    assert torch.equal(dist.mode(), dist.loc)


def _raw_std(std: torch.Tensor) -> torch.Tensor:
    """The std_raw that gives ``std`` at the default init_std and min_std."""
    return 2 * torch.logit((std.double() - 0.1) / 2).float()


def _one_case_per_row(dist):
    """(cases, 1) TruncNormal with the cases of ``dist``'s first row: log_prob sums over A, so each gets a row."""
    return dists.TruncNormal(dist.loc.reshape(-1, dist.loc.shape[-1])[0].atanh()[:, None],
                             _raw_std(dist.std.reshape(-1, dist.std.shape[-1])[0])[:, None])


def test_trunc_normal_density_integrates_to_one():
    dist = _one_case_per_row(_trunc_normal())
    x = torch.linspace(-1, 1, 40_001, dtype=torch.float64)
    density = dist.log_prob(x[:, None, None].float()).double().exp()
    total = torch.trapezoid(density, x, dim=0)
    assert torch.allclose(total, torch.ones(len(TRUNC_CASES), dtype=torch.float64), atol=1e-4)
    assert torch.isinf(dist.log_prob(torch.full((len(TRUNC_CASES), 1), 1.01))).all()


def test_trunc_normal_entropy_matches_monte_carlo():
    torch.manual_seed(0)
    # Cases whose entropy is well away from 0, so 1 % is a meaningful bound.
    cases = [(0.0, 1.0), (0.9, 0.5), (-0.5, 2.0), (0.999, 0.1), (0.3, 0.1)]
    dist = _trunc_normal(cases, batch=(200_000,))
    per_case = _one_case_per_row(dist)
    samples = dist.sample()
    estimate = -per_case.log_prob(samples[..., None]).double().mean(0)
    analytic = per_case.entropy().double()
    assert analytic.shape == (len(cases),)
    assert torch.allclose(analytic, estimate, rtol=0.01)
    # Summed over the action dims for the joint distribution.
    assert dist.entropy()[0].item() == pytest.approx(analytic.sum().item(), rel=1e-5)


def test_trunc_normal_pathwise_gradient_matches_analytic_mean():
    torch.manual_seed(0)
    cases = [(0.0, 1.0), (0.6, 0.3), (0.9, 2.0), (-0.8, 0.5)]
    loc = torch.tensor([c[0] for c in cases], dtype=torch.float64)
    std = torch.tensor([c[1] for c in cases], dtype=torch.float64)
    mean_raw = torch.atanh(loc).float().requires_grad_()
    std_raw = _raw_std(std).requires_grad_()
    n = 200_000
    dist = dists.TruncNormal(mean_raw.expand(n, -1), std_raw.expand(n, -1))
    dist.sample().mean(0).sum().backward()
    mean_raw_grad, std_raw_grad = mean_raw.grad, std_raw.grad

    def analytic_mean(mean_raw, std_raw):
        return dists.TruncNormal(mean_raw, std_raw).mean.double()

    h = 1e-2
    mean_raw, std_raw = mean_raw.detach(), std_raw.detach()
    step = torch.full_like(mean_raw, h)
    by_loc = (analytic_mean(mean_raw + step, std_raw) - analytic_mean(mean_raw - step, std_raw)) / (2 * h)
    by_std = (analytic_mean(mean_raw, std_raw + step) - analytic_mean(mean_raw, std_raw - step)) / (2 * h)
    assert torch.allclose(mean_raw_grad.double(), by_loc, atol=0.01)
    assert torch.allclose(std_raw_grad.double(), by_std, atol=0.01)


def test_trunc_normal_is_finite_at_extreme_locs():
    mean_raw = torch.tensor([math.atanh(0.999), math.atanh(-0.999), 20.0, -20.0]).repeat(1000, 1).requires_grad_()
    std_raw = torch.full((1000, 4), -30.0, requires_grad=True)
    dist = dists.TruncNormal(mean_raw, std_raw)
    assert torch.allclose(dist.std, torch.full((1000, 4), 0.1))
    sample = dist.sample()
    values = (sample, dist.log_prob(sample), dist.log_prob(dist.mode()), dist.entropy(), dist.mean)
    assert all(torch.isfinite(v).all() for v in values)
    (sample.sum() + dist.log_prob(sample.detach()).sum() + dist.entropy().sum()).backward()
    assert torch.isfinite(mean_raw.grad).all() and torch.isfinite(std_raw.grad).all()


def test_trunc_normal_rejects_bad_bounds():
    with pytest.raises(ValueError, match="low=1.*high=-1"):
        dists.TruncNormal(torch.zeros(1), torch.zeros(1), low=1.0, high=-1.0)


# -------------------------------------------------------------- Head / Actor


@pytest.mark.parametrize("kind, std", [("tanh_normal", 5.0 + 1e-4), ("trunc_normal", 1.1)])
def test_head_default_init_std(kind, std):
    head = Head(8, (3,), kind, units=16, layers=1, outscale=0.0, min_std=1e-4 if kind == "tanh_normal" else 0.1)
    dist = head(torch.randn(4, 8))
    assert torch.allclose(dist.std, torch.full((4, 3), std), atol=1e-5)
    custom = Head(8, (3,), kind, units=16, layers=1, outscale=0.0, init_std=2.0, min_std=0.0)(torch.randn(4, 8))
    expected = 2.0 if kind == "tanh_normal" else 2 * torch.sigmoid(torch.tensor(1.0)).item()
    assert torch.allclose(custom.std, torch.full((4, 3), expected), atol=1e-5)


@pytest.mark.parametrize("dist", CONTINUOUS_DISTS)
def test_actor_dists_act_in_bounds(dist):
    torch.manual_seed(0)
    actor = Actor(8, 3, discrete=False, dist=dist, units=16, layers=1, min_std=1e-4 if dist == "tanh_normal" else 0.1)
    feat = torch.randn(5, 8)
    for mode in ("train", "eval"):
        action = actor.act(feat, mode, expl_noise=0.3 if mode == "train" else 0.0)
        assert action.shape == (5, 3) and not action.requires_grad
        assert (action.abs() <= 1).all()
    policy = actor(feat)
    assert policy.log_prob(policy.sample().detach()).shape == (5,) and policy.entropy().shape == (5,)


def test_actor_passes_distribution_settings_through():
    actor = Actor(8, 2, discrete=False, dist="tanh_normal", units=16, layers=1, outscale=0.0,
                  mean_scale=2.0, init_std=0.5, min_std=0.0)
    dist = actor(torch.randn(3, 8))
    assert isinstance(dist, dists.TanhNormal)
    assert torch.allclose(dist.std, torch.full((3, 2), 0.5), atol=1e-6)
    assert isinstance(Actor(8, 2, False, dist="trunc_normal", units=16, layers=1)(torch.randn(3, 8)), dists.TruncNormal)
    # Discrete actions stay one-hot whatever the continuous choice.
    discrete = Actor(8, 4, discrete=True, dist="trunc_normal", units=16, layers=1)
    assert isinstance(discrete(torch.randn(3, 8)), dists.OneHotCategorical)


def test_actor_rejects_unknown_dist():
    with pytest.raises(ValueError, match="unknown actor dist 'gauss'.*tanh_normal"):
        Actor(8, 2, discrete=False, dist="gauss")
