import math

import pytest
import torch

from world_model import distributions as dists
from world_model.mlp import HEAD_KINDS, Head


def test_symlog_round_trip_and_shape():
    x = torch.tensor([-1e6, -100.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 100.0, 1e6], dtype=torch.float64)
    assert torch.allclose(dists.symexp(dists.symlog(x)), x, rtol=1e-9)
    assert dists.symlog(torch.tensor(math.e - 1)).item() == pytest.approx(1.0)
    # Near zero symlog is the identity, far out it grows like log.
    assert dists.symlog(torch.tensor(1e-4)).item() == pytest.approx(1e-4, rel=1e-3)
    assert dists.symlog(torch.tensor(1e6)).item() == pytest.approx(math.log(1e6 + 1))


def test_symlog_bins_are_evenly_spaced_in_symlog_space():
    bins = dists.symlog_bins(255, -20, 20)
    assert bins.shape == (255,)
    assert bins[0] == -20 and bins[-1] == 20 and abs(bins[127]) < 1e-6
    assert torch.allclose(bins.diff(), torch.full((254,), 40 / 254), atol=1e-5)


def test_twohot_round_trip():
    bins = dists.symlog_bins(255)
    values = torch.tensor([-1234.5, -3.0, 0.0, 0.123, 7.0, 950.0])
    weights = dists.twohot_encode(dists.symlog(values), bins)
    assert torch.allclose(weights.sum(-1), torch.ones(6))
    assert ((weights > 0).sum(-1) <= 2).all()
    decoded = dists.symexp((weights * bins).sum(-1))
    assert torch.allclose(decoded, values, rtol=1e-4, atol=1e-5)
    # The distribution built from (log of) the two-hot target decodes to it too.
    logits = torch.log(weights.clamp_min(1e-30))
    assert torch.allclose(dists.TwoHot(logits, bins).mean, values, rtol=1e-3, atol=1e-4)


def test_twohot_loss_is_minimised_at_target():
    bins = dists.symlog_bins(41, -5, 5)
    logits = torch.zeros(41, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(400):
        loss = -dists.TwoHot(logits, bins).log_prob(torch.tensor(12.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert dists.TwoHot(logits, bins).mean.item() == pytest.approx(12.0, rel=0.02)


def test_onehot_straight_through_and_unimix():
    logits = torch.tensor([[10.0, -10.0, -10.0, -10.0]], requires_grad=True)
    dist = dists.OneHotCategorical(logits, unimix=0.01)
    assert dist.probs.min().item() == pytest.approx(0.01 / 4, rel=1e-3)
    sample = dist.sample()
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    assert sample.sum().item() == pytest.approx(1.0)
    (sample * torch.arange(4.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_onehot_event_dims_for_grouped_latents():
    logits = torch.randn(5, 32, 16)
    dist = dists.OneHotCategorical(logits, unimix=0.0, event_dims=2)
    assert dist.sample().shape == (5, 32, 16)
    assert dist.log_prob(dist.mode()).shape == (5,)
    assert torch.allclose(dist.entropy(), torch.distributions.Categorical(logits=logits).entropy().sum(-1), atol=1e-5)


def test_bounded_normal_range_and_log_prob():
    dist = dists.BoundedNormal(torch.full((3, 2), 100.0), torch.full((3, 2), -100.0), 0.1, 1.0)
    assert torch.allclose(dist.mode(), torch.ones(3, 2))
    assert torch.allclose(dist.std, torch.full((3, 2), 0.1))
    x = torch.randn(3, 2)
    reference = torch.distributions.Normal(dist.loc, dist.std).log_prob(x).sum(-1)
    assert torch.allclose(dist.log_prob(x), reference, atol=1e-5)
    reference_entropy = torch.distributions.Normal(dist.loc, dist.std).entropy().sum(-1)
    assert torch.allclose(dist.entropy(), reference_entropy, atol=1e-5)


def test_bernoulli_matches_torch():
    logits = torch.randn(7)
    x = torch.randint(0, 2, (7,)).float()
    reference = torch.distributions.Bernoulli(logits=logits)
    assert torch.allclose(dists.Bernoulli(logits).log_prob(x), reference.log_prob(x), atol=1e-6)
    assert torch.allclose(dists.Bernoulli(logits).entropy(), reference.entropy(), atol=1e-6)


@pytest.mark.parametrize("kind", HEAD_KINDS)
def test_head_shapes(kind):
    shape = () if kind in ("twohot", "bernoulli") else (3,)
    head = Head(8, shape, kind, units=16, layers=1, bins=21)
    dist = head(torch.randn(4, 5, 8))
    assert dist.mode().shape == (4, 5, *shape)
    assert dist.log_prob(dist.sample().detach()).shape == (4, 5)


def test_head_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown head kind 'gauss'.*twohot"):
        Head(8, (), "gauss")


def test_zero_init_head_predicts_zero():
    head = Head(8, (), "twohot", units=16, layers=1, outscale=0.0)
    assert torch.allclose(head(torch.randn(10, 8)).mean, torch.zeros(10), atol=1e-6)
