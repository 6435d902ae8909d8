"""Hyperparameter parity of the DreamerV3 presets with their reference code.

Each ``Ref`` names a setting of the reference (its config key, or the code
that fixes it), the reference's value, where it comes from (commit, file,
key or line), and how to read our value: a dotted path into the composed
Hydra config, or a function of the built agent for values our code fixes.
``tests/test_reference_parity.py`` composes each preset and checks every
entry. ``DEVIATIONS`` lists what we deliberately do differently, and why.

Commits (danijar/dreamerv3):
- 2023: 423291a9875bb9af43b6db7150aaa972ba889266 (the release, its scores).
- 2024 networks and losses: e3f02248693a79dc8b0ebd62c93683888ddaccfe (HEAD),
  with the DMC settings of 2411f7d136832378c0291c587cdbf2fca6506873, the
  commit whose DMC score files we ship (unchanged since).
"""

from __future__ import annotations

from reference.common import Ref
from reference.common import out_scale as _out_scale

C23 = "423291a:dreamerv3/configs.yaml"
C24 = "2411f7d:dreamerv3/configs.yaml"
H = "e3f0224:"


def _rssm(agent):
    return agent.world_model.rssm


# --------------------------------------------------------------------------- 2024
DREAMERV3_OVERRIDES = ["experiment=dmc_vision", "algo=dreamerv3"]
DREAMERV3 = [
    # run, replay and environment
    Ref("batch_size", 16, "algo.batch_size", f"{C24}:91"),
    Ref("batch_length", 65, "algo.batch_length", f"{C24}:92 (HEAD: 64 + replay_context)"),
    Ref("replay_context", 1, "algo.world_model.replay_context", f"{C24}:94"),
    Ref("run.train_ratio", 512, "algo.train_ratio", f"{C24}:244 dmc_vision; per B*(T-context) = 1024 steps, embodied/run/train.py:26-28"),
    Ref("run.num_envs", 16, "env.num_envs", f"{C24}:44"),
    Ref("run.train_fill (no random prefill)", 0, "prefill", f"{C24}:53; random_agent False :95"),
    Ref("replay.fracs.uniform", 1.0, lambda a: 1.0, f"{C24}:11-18 (our replay samples uniformly)"),
    Ref("a worker's steps are sampleable once it has stored batch_length", True, "algo.sample_ongoing",
        "2411f7d:embodied/replay/replay.py:130-138"),
    Ref("env.dmc.size", [64, 64], "env.size", f"{C24}:84"),
    Ref("env.dmc.repeat", 2, "env.action_repeat", f"{C24}:84"),
    Ref("dmc_vision enc/dec spaces 'image'", [True, False], lambda a: [a.cfg.env.image, a.cfg.env.proprio], f"{C24}:240-246"),
    # RSSM
    Ref("dyn.rssm.deter", 2048, "model.deter", f"{C24}:149 size12m"),
    Ref("dyn.rssm.hidden", 256, "model.hidden", f"{C24}:149 size12m"),
    Ref("dyn.rssm.stoch", 32, "model.stoch", f"{C24}:111"),
    Ref("dyn.rssm.classes", 16, "model.classes", f"{C24}:149 size12m"),
    Ref("dyn.rssm.act", "silu", "algo.world_model.act", f"{C24}:111"),
    Ref("dyn.rssm.norm", "rms", "algo.world_model.norm", f"{C24}:111"),
    Ref("dyn.rssm.unimix", 0.01, "algo.world_model.unimix", f"{C24}:111"),
    Ref("dyn.rssm.outscale", 1.0, lambda a: _out_scale(_rssm(a).prior_stats), f"{C24}:111"),
    Ref("dyn.rssm.winit", "trunc_normal_in", "algo.world_model.winit", f"{H}dreamerv3/configs.yaml:91 (2411f7d 'normal' = the same truncated normal, nets.py:842-847)"),
    Ref("dyn.rssm.imglayers", 2, "algo.world_model.prior_layers", f"{C24}:111"),
    Ref("dyn.rssm.obslayers", 1, lambda a: 1, f"{C24}:111 (our posterior has one hidden layer)"),
    Ref("dyn.rssm.dynlayers", 1, "algo.world_model.dyn_layers", f"{C24}:111"),
    Ref("dyn.rssm.cell", "blockgru", "algo.world_model.cell", f"{C24}:111"),
    Ref("dyn.rssm.blocks", 8, "algo.world_model.blocks", f"{C24}:111"),
    Ref("dyn.rssm.absolute", False, lambda a: False, f"{C24}:111 (the posterior sees h and the embedding)"),
    Ref("initial state zeros", False, "algo.world_model.learned_initial", f"{H}dreamerv3/rssm.py:45-49"),
    Ref("action / max(1, |a|)", True, "algo.world_model.action_norm", f"{H}dreamerv3/rssm.py:137"),
    Ref("rssm_loss.free (per step)", [1.0, False], lambda a: [a.cfg.algo.world_model.free_bits, a.cfg.algo.world_model.free_bits_mean], f"{C24}:125"),
    # encoder and decoder
    Ref("enc.simple.depth", 16, "model.cnn_depth", f"{C24}:149 size12m"),
    Ref("enc.simple.mults", [2, 3, 4, 4], "algo.world_model.cnn_mults", f"{H}dreamerv3/configs.yaml:94"),
    Ref("enc.simple.kernel", 5, "algo.world_model.cnn_kernel", f"{C24}:114"),
    Ref("enc.simple.strided", False, lambda a: a.cfg.algo.world_model.image_resize == "stride", f"{H}dreamerv3/configs.yaml:94"),
    Ref("enc.simple.layers", 3, "model.mlp_layers", f"{C24}:114"),
    Ref("enc.simple.units", 256, "model.mlp_units", f"{C24}:149 size12m"),
    Ref("enc.simple.symlog", True, "algo.world_model.symlog_inputs", f"{C24}:114"),
    Ref("dec.simple.bspace", 8, "algo.world_model.decoder_deter_blocks", f"{H}dreamerv3/configs.yaml:97"),
    Ref("dec image output sigmoid", "sigmoid", "algo.world_model.image_output", f"{H}dreamerv3/rssm.py:349"),
    Ref("dec image loss (mse, summed)", "mse", "algo.world_model.image_dist", f"{H}dreamerv3/rssm.py:354-355"),
    Ref("dec.simple.vecdist", "symlog_mse", "algo.world_model.vector_dist", f"{C24}:118"),
    Ref("dec.simple.outscale", 1.0, lambda a: _out_scale(a.world_model.decoder.cnn.net[-1][1]), f"{C24}:118"),
    # heads
    Ref("rewhead.layers", 1, "algo.world_model.head_layers", f"{C24}:122"),
    Ref("rewhead.dist", ["twohot", "symexp"], lambda a: [a.cfg.algo.world_model.reward_dist, a.cfg.algo.world_model.bin_spacing], f"{C24}:122 symexp_twohot"),
    Ref("rewhead.outscale", 0.0, lambda a: _out_scale(a.world_model.reward_head.out), f"{C24}:122"),
    Ref("rewhead.bins", 255, lambda a: a.world_model.reward_head.bins.numel(), f"{C24}:122"),
    Ref("conhead.layers", 1, lambda a: len(a.world_model.cont_head.trunk.net) // 3, f"{C24}:123"),
    Ref("conhead.outscale", 1.0, lambda a: _out_scale(a.world_model.cont_head.out), f"{C24}:123"),
    Ref("contdisc", 1 - 1 / 333, "algo.world_model.cont_discount", f"{C24}:124", rel=1e-12),
    Ref("actor.layers", 3, lambda a: len(a.behavior.actor.head.trunk.net) // 3, f"{C24}:128"),
    Ref("actor.units", 256, "model.mlp_units", f"{C24}:149 size12m"),
    Ref("actor.outscale", 0.01, "algo.behavior.actor_outscale", f"{C24}:128"),
    Ref("actor.minstd", 0.1, "algo.behavior.min_std", f"{C24}:128"),
    Ref("actor.maxstd", 1.0, "algo.behavior.max_std", f"{C24}:128"),
    Ref("policy_dist_disc categorical (no unimix)", 0.0, "algo.behavior.unimix", f"{H}dreamerv3/configs.yaml:102; embodied/jax/heads.py:101-110"),
    Ref("critic.layers", 3, lambda a: len(a.behavior.critic.head.trunk.net) // 3, f"{C24}:129"),
    Ref("critic.dist", ["twohot", "symexp"], lambda a: [a.cfg.algo.behavior.critic_dist, a.cfg.algo.behavior.bin_spacing], f"{C24}:129"),
    Ref("critic.outscale", 0.0, lambda a: _out_scale(a.behavior.critic.head.out), f"{C24}:129"),
    Ref("critic.bins", 255, lambda a: a.behavior.critic.head.bins.numel(), f"{C24}:129"),
    # loss scales
    Ref("loss_scales.dec_cnn", 1.0, lambda a: a.world_model.loss_scales["image"], f"{C24}:96"),
    Ref("loss_scales.reward", 1.0, lambda a: a.world_model.loss_scales["reward"], f"{C24}:96"),
    Ref("loss_scales.cont", 1.0, lambda a: a.world_model.loss_scales["cont"], f"{C24}:96"),
    Ref("loss_scales.dyn", 1.0, lambda a: a.world_model.loss_scales["dyn"], f"{C24}:96"),
    Ref("loss_scales.rep", 0.1, lambda a: a.world_model.loss_scales["rep"], f"{C24}:96"),
    Ref("loss_scales.replay_critic", 0.3, "algo.behavior.repval", f"{C24}:96"),
    # optimiser: one LaProp over everything
    *[
        ref
        for part in ("model", "actor", "critic")
        for ref in (
            Ref(f"opt.lr ({part})", 4e-5, f"algo.optim.{part}.lr", f"{C24}:97"),
            Ref(f"opt.eps ({part})", 1e-20, f"algo.optim.{part}.eps", f"{C24}:97"),
            Ref(f"opt.agc ({part})", 0.3, f"algo.optim.{part}.agc", f"{C24}:97"),
            Ref(f"opt.warmup ({part})", 1000, f"algo.optim.{part}.warmup", f"{C24}:97"),
            Ref(f"opt.globclip ({part})", 0.0, f"algo.optim.{part}.clip", f"{C24}:97"),
            Ref(f"opt.scaler rms + momentum ({part})", "laprop", f"algo.optim.{part}.kind", f"{C24}:97"),
            Ref(f"opt.wd ({part})", 0.0, lambda a: 0.0 if "weight_decay" not in a.cfg.algo.optim[part] else a.cfg.algo.optim[part].weight_decay, f"{C24}:97"),
            Ref(f"opt.beta1, beta2 ({part})", [0.9, 0.999], lambda a, p=part: list(a.optimizers()[p].defaults["betas"]), f"{C24}:97"),
            Ref(f"opt.pmin ({part})", 1e-3, lambda a, p=part: a.optimizers()[p].defaults["pmin"], f"{C24}:97"),
        )
    ],
    Ref("one loss, one backward", "joint", "algo.update", f"{H}dreamerv3/agent.py:237-240"),
    # actor-critic
    Ref("imag_length", 15, "algo.behavior.horizon", f"{C24}:134"),
    Ref("horizon", 1 - 1 / 333, "algo.behavior.gamma", f"{C24}:136", rel=1e-12),
    Ref("return_lambda", 0.95, "algo.behavior.lam", f"{C24}:137"),
    Ref("return_lambda_replay", 0.95, "algo.behavior.lam", f"{C24}:138"),
    Ref("contdisc: imagined discount from the head", True, "algo.behavior.discount_in_cont", f"{H}dreamerv3/agent.py:401"),
    Ref("ac_grads (none: REINFORCE for all actions)", "reinforce", "algo.behavior.actor_grad", f"{C24}:102"),
    Ref("slow_critic_update", 1, "algo.behavior.slow_critic_every", f"{C24}:139"),
    Ref("slow_critic_fraction", 0.02, "algo.behavior.slow_critic_rate", f"{C24}:140"),
    Ref("slowtar", False, "algo.behavior.slow_target", f"{C24}:146"),
    Ref("slowreg", 1.0, "algo.behavior.slow_reg", f"{C24}:145"),
    Ref("actent", 3e-4, "algo.behavior.entropy", f"{C24}:144"),
    Ref("policy samples in every mode (eval too)", True, "algo.behavior.eval_sample", f"{H}dreamerv3/agent.py:126"),
    Ref("retnorm.impl perc", True, "algo.behavior.return_norm", f"{C24}:141"),
    Ref("retnorm.rate", 0.01, lambda a: 1 - a.behavior.return_norm.decay, f"{C24}:141", rel=1e-9),
    Ref("retnorm.limit", 1.0, lambda a: a.behavior.return_norm.floor, f"{C24}:141"),
    Ref("retnorm.perclo, perchi", [0.05, 0.95], lambda a: [round(float(q), 6) for q in a.behavior.return_norm.quantiles], f"{C24}:141"),
    Ref("retnorm.debias", False, lambda a: a.behavior.return_norm.debias, f"{H}dreamerv3/configs.yaml:111"),
    Ref("valnorm / advnorm impl", "off", lambda a: "off", f"{C24}:142-143 (we have neither)"),
]

# --------------------------------------------------------------------------- 2023
DREAMERV3_2023_OVERRIDES = ["experiment=dmc_vision", "algo=dreamerv3_2023"]
DREAMERV3_2023 = [
    Ref("batch_size", 16, "algo.batch_size", f"{C23} batch_size"),
    Ref("batch_length", 64, "algo.batch_length", f"{C23} batch_length"),
    Ref("a worker's steps are sampleable once it has stored batch_length", True, "algo.sample_ongoing",
        "423291a:dreamerv3/embodied/replay/generic.py:75-83"),
    Ref("replay_context (none)", 0, lambda a: a.world_model.replay_context, f"{C23} (no such key)"),
    Ref("run.train_ratio", 512, "algo.train_ratio", f"{C23} dmc_vision"),
    Ref("envs.amount", 4, "env.num_envs", f"{C23} envs.amount"),
    Ref("train_fill: random until 1024 agent steps", 2048, "prefill", "423291a:embodied/run/train.py:62-65 (frames at repeat 2)"),
    Ref("env.dmc.size", [64, 64], "env.size", f"{C23} env.dmc"),
    Ref("env.dmc.repeat", 2, "env.action_repeat", f"{C23} env.dmc"),
    Ref("rssm.deter", 512, "model.deter", f"{C23} small"),
    Ref("rssm.units", 512, "model.hidden", f"{C23} small"),
    Ref("rssm.stoch", 32, "model.stoch", f"{C23} rssm"),
    Ref("rssm.classes", 32, "model.classes", f"{C23} rssm"),
    Ref("rssm.act", "silu", "algo.world_model.act", f"{C23} rssm"),
    Ref("rssm.norm", "layer", "algo.world_model.norm", f"{C23} rssm"),
    Ref("rssm.initial learned", True, "algo.world_model.learned_initial", f"{C23} rssm"),
    Ref("rssm.unimix", 0.01, "algo.world_model.unimix", f"{C23} rssm"),
    Ref("rssm.action_clip 1.0", True, "algo.world_model.action_norm", f"{C23} rssm; 423291a:dreamerv3/nets.py:86-88"),
    Ref("rssm.winit normal, fan avg", "trunc_normal_avg", "algo.world_model.winit", f"{C23} rssm; nets.py:640-675"),
    Ref("output layers: uniform, fan avg", "uniform_avg", "algo.world_model.outinit", "423291a:dreamerv3/nets.py:472-475"),
    Ref("GRU: dense, LayerNorm, update bias -1", ["gru", True], lambda a: [a.cfg.algo.world_model.cell, a.cfg.algo.world_model.gru_norm], "423291a:dreamerv3/nets.py:131-140"),
    Ref("img_out layers", 1, lambda a: a.cfg.algo.world_model.get("prior_layers", 1), "423291a:dreamerv3/nets.py:103-123"),
    Ref("encoder.cnn_depth", 32, "model.cnn_depth", f"{C23} small"),
    Ref("encoder kernel 4, stride 2, depths d*2^i", [4, "stride", [1, 2, 4, 8]], lambda a: [a.world_model.encoder.cnn.net[0].kernel_size[0], a.cfg.algo.world_model.get("image_resize", "stride"), [m.out_channels // a.cfg.model.cnn_depth for m in a.world_model.encoder.cnn.net if hasattr(m, "out_channels")]], "423291a:dreamerv3/nets.py:312-347"),
    Ref("encoder.symlog_inputs", True, "algo.world_model.symlog_inputs", f"{C23} encoder"),
    Ref("decoder.image_dist", "mse", "algo.world_model.image_dist", f"{C23} decoder"),
    Ref("decoder.vector_dist", "symlog_mse", "algo.world_model.vector_dist", f"{C23} decoder"),
    Ref("decoder.cnn_sigmoid", False, lambda a: a.cfg.algo.world_model.get("image_output", "linear") == "sigmoid", f"{C23} decoder"),
    Ref("reward_head.layers", 2, lambda a: len(a.world_model.reward_head.trunk.net) // 3, f"{C23} small"),
    Ref("reward_head.units", 512, "model.mlp_units", f"{C23} small"),
    Ref("reward_head.dist symlog_disc", ["twohot", "symlog"], lambda a: [a.cfg.algo.world_model.reward_dist, a.cfg.algo.world_model.bin_spacing], f"{C23} reward_head"),
    Ref("reward_head.outscale", 0.0, lambda a: _out_scale(a.world_model.reward_head.out), f"{C23} reward_head"),
    Ref("reward_head.bins", 255, lambda a: a.world_model.reward_head.bins.numel(), f"{C23} reward_head"),
    Ref("cont_head.layers", 2, lambda a: len(a.world_model.cont_head.trunk.net) // 3, f"{C23} small"),
    Ref("cont target 1 - terminal (no contdisc)", 1.0, lambda a: a.world_model.cont_discount, "423291a:dreamerv3/agent.py:114"),
    Ref("loss_scales.image", 1.0, lambda a: a.world_model.loss_scales["image"], f"{C23} loss_scales"),
    Ref("loss_scales.reward", 1.0, lambda a: a.world_model.loss_scales["reward"], f"{C23} loss_scales"),
    Ref("loss_scales.cont", 1.0, lambda a: a.world_model.loss_scales["cont"], f"{C23} loss_scales"),
    Ref("loss_scales.dyn", 0.5, lambda a: a.world_model.loss_scales["dyn"], f"{C23} loss_scales"),
    Ref("loss_scales.rep", 0.1, lambda a: a.world_model.loss_scales["rep"], f"{C23} loss_scales"),
    Ref("dyn_loss/rep_loss free 1.0 per step", [1.0, False], lambda a: [a.cfg.algo.world_model.free_bits, a.cfg.algo.world_model.free_bits_mean], "423291a:dreamerv3/nets.py:162-187"),
    Ref("model_opt", ["adam", 1e-4, 1e-8, 1000.0], lambda a: [a.cfg.algo.optim.model[k] for k in ("kind", "lr", "eps", "clip")], f"{C23} model_opt"),
    Ref("actor_opt", ["adam", 3e-5, 1e-5, 100.0], lambda a: [a.cfg.algo.optim.actor[k] for k in ("kind", "lr", "eps", "clip")], f"{C23} actor_opt"),
    Ref("critic_opt", ["adam", 3e-5, 1e-5, 100.0], lambda a: [a.cfg.algo.optim.critic[k] for k in ("kind", "lr", "eps", "clip")], f"{C23} critic_opt"),
    Ref("three optimisers, model first", "sequential", "algo.update", "423291a:dreamerv3/agent.py:train"),
    Ref("actor.layers", 2, lambda a: len(a.behavior.actor.head.trunk.net) // 3, f"{C23} small"),
    Ref("actor.minstd, maxstd", [0.1, 1.0], lambda a: [a.cfg.algo.behavior.min_std, a.cfg.algo.behavior.max_std], f"{C23} actor"),
    Ref("actor.outscale", 1.0, "algo.behavior.actor_outscale", f"{C23} actor"),
    Ref("actor.unimix", 0.01, "algo.behavior.unimix", f"{C23} actor"),
    Ref("actor_grad_cont backprop, actor_grad_disc reinforce", "auto", "algo.behavior.actor_grad", f"{C23} actor_grad_*"),
    Ref("critic.layers", 2, lambda a: len(a.behavior.critic.head.trunk.net) // 3, f"{C23} small"),
    Ref("critic.dist symlog_disc", ["twohot", "symlog"], lambda a: [a.cfg.algo.behavior.critic_dist, a.cfg.algo.behavior.bin_spacing], f"{C23} critic"),
    Ref("critic.outscale", 0.0, lambda a: _out_scale(a.behavior.critic.head.out), f"{C23} critic"),
    Ref("imag_horizon", 15, "algo.behavior.horizon", f"{C23} imag_horizon"),
    Ref("horizon", 1 - 1 / 333, "algo.behavior.gamma", f"{C23} horizon", rel=1e-12),
    Ref("return_lambda", 0.95, "algo.behavior.lam", f"{C23} return_lambda"),
    Ref("slow_critic_update", 1, "algo.behavior.slow_critic_every", f"{C23} slow_critic_update"),
    Ref("slow_critic_fraction", 0.02, "algo.behavior.slow_critic_rate", f"{C23} slow_critic_fraction"),
    Ref("returns bootstrap on the trained critic", False, "algo.behavior.slow_target", "423291a:dreamerv3/agent.py:365"),
    Ref("slowreg", 1.0, "algo.behavior.slow_reg", f"{C23} slowreg"),
    Ref("actent", 3e-4, "algo.behavior.entropy", f"{C23} actent"),
    Ref("eval mode samples the actor", True, "algo.behavior.eval_sample", "423291a:dreamerv3/agent.py:61-63"),
    Ref("retnorm perc_ema decay", 0.99, "algo.behavior.return_norm_decay", f"{C23} retnorm"),
    Ref("retnorm max", 1.0, lambda a: a.behavior.return_norm.floor, f"{C23} retnorm"),
    Ref("retnorm perclo, perchi", [0.05, 0.95], lambda a: [round(float(q), 6) for q in a.behavior.return_norm.quantiles], f"{C23} retnorm"),
    Ref("no replayed-value loss", 0.0, lambda a: a.behavior.repval, f"{C23} (no such loss)"),
]

# What we deliberately do differently, and why.
DEVIATIONS = {
    "dreamerv3": [
        ("replay_context", "The reference seeds the context step's latent from the state its policy stored in replay; our "
         "replay stores no latents, so the context step is filtered from the zero state. Losses and imagination use "
         "the 64 steps after it, as in the reference."),
        ("imagination weight of the start state", "HEAD weights the start state by the predicted continue; 2411f7d (the "
         "scored commit) by the data's 1 - is_terminal, which we follow."),
        ("enc/dec mults and layout", "HEAD's networks (max-pool, mults 2,3,4,4) rather than 2411f7d's strided ones "
         "(mults 1,2,3,4,4 with a stride-1 first layer): the preset follows the current code's networks."),
        ("discrete actor unimix", "0 as HEAD's categorical policy; 2411f7d's one-hot policy mixed 1%."),
        ("jax.compute_dtype bfloat16", "fp32 on CPU; bf16 autocast on CUDA via fast.bf16=auto (docs/performance.md)."),
        ("replay.online", "The reference samples each worker's newest 64-step window once ahead of its uniform draws "
         "(at train ratio 512 about 0.2% of the sampled sequences); ours draws every sequence uniformly."),
        ("replay.size 5e6", "Our replay_capacity is 1e6 steps; both exceed the 5e5 agent steps of a 1M-frame run, so "
         "neither evicts."),
        ("run.steps 6e5 (1.2M frames)", "experiment=dmc_vision runs 1M frames, the extent of the published curves."),
    ],
    "dreamerv3_2023": [
        ("encoder/decoder mlp 5 x 1024", "The reference's size presets do not reach the vector encoder and decoder "
         "(they stay 5 x 1024 at every size); ours follow the size group (2 x 512 at s). Only proprio runs see it."),
        ("jax.precision float16", "fp32 on CPU; bf16 autocast on CUDA via fast.bf16=auto, which needs no loss scaling."),
        ("replay windows", "The reference stores overlapping windows of batch_length; we sample sequences from stored "
         "episodes uniformly, forcing is_first at the start of each sample as the reference does."),
    ],
}

PRESETS = {
    "dreamerv3": (DREAMERV3_OVERRIDES, DREAMERV3),
    "dreamerv3_2023": (DREAMERV3_2023_OVERRIDES, DREAMERV3_2023),
}
