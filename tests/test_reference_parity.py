"""Each preset is its published agent: every entry of the parity tables in
tests/reference/ (one module per reference repository), composed through
Hydra and built."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dreamer.reference import dreamerv3_2024_params
from dreamer.run import build_agent
from envs.base import Space

from reference import dreamerv1, dreamerv2, planet
from reference import dreamerv3 as reference

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")
# preset -> (overrides, table, deviations, the reference keys the table must cover or None)
PRESETS = {
    **{name: (*entry, reference.DEVIATIONS[name], None) for name, entry in reference.PRESETS.items()},
    **{
        name: (*entry, module.DEVIATIONS, module.LEARNING_KEYS)
        for module in (dreamerv1, dreamerv2, planet)
        for name, entry in module.PRESETS.items()
    },
}

# walker_walk from pixels: one 64 x 64 RGB image, six continuous actions.
OBS = {"image": Space((64, 64, 3), np.uint8, 0, 255)}
ACT = Space((6,), np.float32, -1, 1)


def _compose(overrides):
    with initialize_config_dir(config_dir=CONFIGS, version_base=None):
        return compose("config", overrides=[*overrides, "device=cpu"])


@pytest.fixture(scope="module", params=sorted(PRESETS))
def built(request):
    overrides, table, _, _ = PRESETS[request.param]
    cfg = _compose(overrides)
    torch.manual_seed(0)
    agent = build_agent(cfg, OBS, ACT, torch.device("cpu"))
    view = SimpleNamespace(
        cfg=cfg, world_model=agent.world_model, behavior=agent.behavior, optimizers=agent.optimizers, agent=agent
    )
    return request.param, cfg, view, table


def _ours(cfg, view, ref):
    if callable(ref.ours):
        return ref.ours(view)
    value = OmegaConf.select(cfg, ref.ours, throw_on_missing=True)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def _same(ours, expected, rel):
    if isinstance(expected, (list, tuple)):
        return isinstance(ours, (list, tuple)) and len(ours) == len(expected) and all(
            _same(o, e, rel) for o, e in zip(ours, expected)
        )
    if isinstance(expected, bool) or isinstance(expected, str):
        return ours == expected
    return ours is not None and math.isclose(float(ours), float(expected), rel_tol=rel or 1e-9, abs_tol=0.0)


def test_every_setting_matches_the_reference(built):
    name, cfg, view, table = built
    mismatches = [
        f"{ref.key}: ours {_ours(cfg, view, ref)!r}, reference {ref.value!r} ({ref.source})"
        for ref in table
        if not _same(_ours(cfg, view, ref), ref.value, ref.rel)
    ]
    assert not mismatches, f"{name} departs from its reference:\n" + "\n".join(mismatches)


def test_the_table_names_its_reference_commit(built):
    name, cfg, _, table = built
    commit = cfg.algo.reference.split("@")[1]
    assert len(commit) == 40
    assert all(ref.source for ref in table)
    assert PRESETS[name][2], "deliberate differences are listed with their reasons"


@pytest.mark.parametrize("name", [name for name, entry in sorted(PRESETS.items()) if entry[3]])
def test_the_table_covers_the_reference_config(name):
    _, table, deviations, keys = PRESETS[name]
    named = [ref.key for ref in table] + [key for key, _ in deviations]
    missing = [key for key in keys if not any(key in entry for entry in named)]
    assert not missing, f"{name}: reference keys without a parity entry or a listed deviation: {missing}"


@pytest.mark.parametrize("task", sorted(planet.ACTION_REPEATS))
def test_planet_takes_its_action_repeat_per_task_and_trains_one_episode_per_100_updates(task):
    cfg = _compose(["experiment=dmc_vision", "algo=planet", f"env.task={task}"])
    repeat = planet.ACTION_REPEATS[task]
    assert cfg.env.action_repeat == repeat
    # 100 updates of 50 x 50 per 1000-frame episode of 1000 / repeat agent steps.
    assert cfg.algo.train_ratio == 100 * 50 * 50 / (1000 / repeat)


def test_an_explicit_action_repeat_wins_over_the_planet_table():
    cfg = _compose(["experiment=dmc_vision", "algo=planet", "env.task=cartpole_swingup", "env.action_repeat=4"])
    assert cfg.env.action_repeat == 4 and cfg.algo.train_ratio == 1000
    other = _compose(["experiment=dmc_vision", "algo=dreamerv3", "env.task=cartpole_swingup"])
    assert other.env.action_repeat == 2, "the table is PlaNet's, not every preset's"


# The reference DMC config's learning-relevant keys (2411f7d configs.yaml
# defaults + size12m + dmc_vision); each must be in the table or a deviation.
LEARNING_KEYS_2024 = [
    "batch_size", "batch_length", "replay_context", "run.train_ratio", "run.num_envs", "run.train_fill",
    "replay.fracs", "replay.size", "env.dmc.size", "env.dmc.repeat", "jax.compute_dtype", "run.steps",
    "dyn.rssm.deter", "dyn.rssm.hidden", "dyn.rssm.stoch", "dyn.rssm.classes", "dyn.rssm.act", "dyn.rssm.norm",
    "dyn.rssm.unimix", "dyn.rssm.outscale", "dyn.rssm.winit", "dyn.rssm.imglayers", "dyn.rssm.obslayers",
    "dyn.rssm.dynlayers", "dyn.rssm.absolute", "dyn.rssm.cell", "dyn.rssm.blocks", "rssm_loss.free",
    "enc.simple.depth", "enc.simple.mults", "enc.simple.layers", "enc.simple.units", "enc.simple.symlog",
    "enc.simple.kernel", "enc.simple.strided", "dec.simple.bspace", "dec.simple.vecdist", "dec.simple.outscale",
    "rewhead.layers", "rewhead.dist", "rewhead.outscale", "rewhead.bins", "conhead.layers", "conhead.outscale",
    "contdisc", "actor.layers", "actor.units", "actor.outscale", "actor.minstd", "actor.maxstd", "critic.layers",
    "critic.dist", "critic.outscale", "critic.bins", "loss_scales.dec_cnn", "loss_scales.reward",
    "loss_scales.cont", "loss_scales.dyn", "loss_scales.rep", "loss_scales.replay_critic", "opt.lr", "opt.eps",
    "opt.agc", "opt.warmup", "opt.globclip", "opt.wd", "opt.beta1", "opt.pmin", "opt.scaler", "imag_length",
    "horizon", "return_lambda", "return_lambda_replay", "slow_critic_update", "slow_critic_fraction",
    "slowtar", "slowreg", "actent", "retnorm.impl", "retnorm.rate", "retnorm.limit", "retnorm.perclo",
    "retnorm.debias", "valnorm", "ac_grads",
]


def test_the_2024_table_covers_the_reference_config():
    named = [ref.key for ref in reference.DREAMERV3] + [key for key, _ in reference.DEVIATIONS["dreamerv3"]]
    missing = [key for key in LEARNING_KEYS_2024 if not any(key in entry for entry in named)]
    assert not missing, f"reference keys without a parity entry or a listed deviation: {missing}"


def test_2024_agent_has_the_reference_parameter_count():
    cfg = _compose(reference.DREAMERV3_OVERRIDES)
    agent = build_agent(cfg, OBS, ACT, torch.device("cpu"))
    trainable = sum(p.numel() for p in agent.parameters() if p.requires_grad)
    shapes = {k: tuple(s.shape) for k, s in OBS.items()}
    assert trainable == dreamerv3_2024_params(shapes, ACT.shape[0], **OmegaConf.to_container(cfg.model))
    # The slow critic is a frozen copy of the critic.
    frozen = sum(p.numel() for p in agent.parameters() if not p.requires_grad)
    assert frozen == sum(p.numel() for p in agent.behavior.critic.parameters())


def test_2024_parameter_count_with_vectors_matches_too():
    cfg = _compose(["experiment=dmc_proprio", "algo=dreamerv3"])
    obs = {"position": Space((14,), np.float32, -np.inf, np.inf), "velocity": Space((10,), np.float32, -np.inf, np.inf)}
    agent = build_agent(cfg, obs, ACT, torch.device("cpu"))
    trainable = sum(p.numel() for p in agent.parameters() if p.requires_grad)
    shapes = {k: tuple(s.shape) for k, s in obs.items()}
    assert trainable == dreamerv3_2024_params(shapes, ACT.shape[0], **OmegaConf.to_container(cfg.model))


# The same for the 2023 release (423291a configs.yaml defaults + small + dmc_vision).
LEARNING_KEYS_2023 = [
    "batch_size", "batch_length", "run.train_ratio", "envs.amount", "train_fill", "env.dmc.size", "env.dmc.repeat",
    "jax.precision", "rssm.deter", "rssm.units", "rssm.stoch", "rssm.classes", "rssm.act", "rssm.norm",
    "rssm.initial", "rssm.unimix", "rssm.action_clip", "rssm.winit", "output layers", "GRU", "img_out",
    "encoder.cnn_depth", "encoder kernel", "encoder.symlog_inputs", "encoder/decoder mlp", "decoder.image_dist",
    "decoder.vector_dist", "decoder.cnn_sigmoid", "reward_head.layers", "reward_head.units", "reward_head.dist",
    "reward_head.outscale", "reward_head.bins", "cont_head.layers", "cont target", "loss_scales.image",
    "loss_scales.reward", "loss_scales.cont", "loss_scales.dyn", "loss_scales.rep", "free 1.0", "model_opt",
    "actor_opt", "critic_opt", "actor.layers", "actor.minstd", "actor.outscale", "actor.unimix", "actor_grad_cont",
    "critic.layers", "critic.dist", "critic.outscale", "imag_horizon", "horizon", "return_lambda",
    "slow_critic_update", "slow_critic_fraction", "returns bootstrap", "slowreg", "actent", "retnorm perc_ema",
    "retnorm max", "retnorm perclo", "replay windows",
]


def test_the_2023_table_covers_the_reference_config():
    named = [ref.key for ref in reference.DREAMERV3_2023] + [key for key, _ in reference.DEVIATIONS["dreamerv3_2023"]]
    missing = [key for key in LEARNING_KEYS_2023 if not any(key in entry for entry in named)]
    assert not missing, f"reference keys without a parity entry or a listed deviation: {missing}"


def _reference_dreamerv1_action_std(features: np.ndarray, action_dim: int, rng: np.random.Generator) -> float:
    """The reference's ActionDecoder at initialisation, in numpy (56d4d44 models.py:143-169):
    4 Keras Dense(400, elu) layers and Dense(2 A), glorot-uniform kernels and zero biases;
    tanh(Normal(5 tanh(m / 5), softplus(s + softplus^-1(5)) + 1e-4))."""

    def glorot(fan_in, fan_out):
        limit = np.sqrt(6 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out))

    x = features
    for _ in range(4):
        x = x @ glorot(x.shape[1], 400)
        x = np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    out = x @ glorot(400, 2 * action_dim)
    mean, raw_std = out[:, :action_dim], out[:, action_dim:]
    mean = 5 * np.tanh(mean / 5)
    std = np.logaddexp(0, raw_std + np.log(np.expm1(5.0))) + 1e-4
    action = np.tanh(mean + std * rng.standard_normal(mean.shape))
    return float(action.std(0).mean())


def test_dreamerv1_actor_explores_like_the_reference_at_initialisation():
    # A tanh-squashed normal of std 5 puts most actions near the bounds: the
    # reference's agents start by exploring the whole action range.
    cfg = _compose(PRESETS["dreamerv1"][0])
    torch.manual_seed(0)
    actor = build_agent(cfg, OBS, ACT, torch.device("cpu")).behavior.actor
    features = torch.randn(8192, actor.head.trunk.net[0].in_features)
    with torch.no_grad():
        ours = float(actor(features).sample().std(0).mean())
    rng = np.random.default_rng(0)
    reference_std = np.mean([_reference_dreamerv1_action_std(features.numpy().astype(np.float64), ACT.shape[0], rng) for _ in range(3)])
    assert abs(ours - reference_std) < 0.03 * reference_std, (ours, reference_std)
    assert reference_std > 0.8  # far wider than a unit normal clipped to [-1, 1] would start
