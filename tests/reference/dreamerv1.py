"""Hyperparameter parity of ``algo=dreamerv1`` with danijar/dreamer @56d4d44.

Sources: ``D`` dreamer.py (``define_config`` and the agent), ``M`` models.py,
``T`` tools.py, ``W`` wrappers.py, all at 56d4d44 ("Add scores in JSON
format"), the commit of the published DMC scores. Line numbers are those of
``git show 56d4d44:<file>``.
"""

from __future__ import annotations

from reference.common import Ref, activations, conv_layers, linear_layers

D, M, T, W = "56d4d44:dreamer.py", "56d4d44:models.py", "56d4d44:tools.py", "56d4d44:wrappers.py"

OVERRIDES = ["experiment=dmc_vision", "algo=dreamerv1"]
TABLE = [
    # run and schedule
    Ref("envs", 1, "env.num_envs", f"{D}:42"),
    Ref("action_repeat", 2, "env.action_repeat", f"{D}:44"),
    Ref("time_limit (frames)", 1000, "env.time_limit", f"{D}:45"),
    Ref("DeepMindControl size", [64, 64], "env.size", f"{W}:14"),
    Ref("prefill (frames: prefill / action_repeat agent steps)", 5000, "prefill", f"{D}:46, :429"),
    Ref("batch_size", 50, "algo.batch_size", f"{D}:63"),
    Ref("batch_length", 50, "algo.batch_length", f"{D}:64"),
    Ref("episodes are saved, then loaded, once finished", False, "algo.sample_ongoing", f"{D}:344-347, :390-395"),
    Ref("train_every 1000 frames x train_steps 100: 100 * 50 * 50 / (1000 / 2)", 500, "algo.train_ratio",
        f"{D}:65-66; the step counts frames, :128"),
    Ref("pretrain 100 + the variable-building update", 101, "algo.pretrain", f"{D}:67, :118, :244"),
    Ref("sequential model, actor, value steps", "sequential", "algo.update", f"{D}:199-201"),
    # RSSM
    Ref("stoch_size (gaussian)", [30, "gaussian"], lambda a: [a.cfg.model.stoch, a.cfg.algo.world_model.latent], f"{D}:51"),
    Ref("deter_size", 200, "model.deter", f"{D}:50"),
    Ref("RSSM hidden = deter_size", 200, "model.hidden", f"{D}:221-222"),
    Ref("std softplus + 0.1", 0.1, "algo.world_model.min_std", f"{M}:64, :78"),
    Ref("GRUCell without norm", False, "algo.world_model.gru_norm", f"{M}:18"),
    Ref("zero initial state", False, "algo.world_model.learned_initial", f"{M}:20-26"),
    Ref("img2: one layer before the prior", 1, "algo.world_model.prior_layers", f"{M}:75-76"),
    Ref("actions enter as they are", False, "algo.world_model.action_norm", f"{M}:71"),
    Ref("dense_act", "elu", "algo.world_model.act", f"{D}:53"),
    Ref("RSSM activations", ["elu"], lambda a: activations(a.world_model.rssm), f"{M}:12"),
    # encoder and decoder
    Ref("cnn_act", ["relu"], lambda a: activations(a.world_model.encoder.cnn), f"{D}:54"),
    Ref("decoder cnn_act", ["relu"], lambda a: activations(a.world_model.decoder.cnn), f"{D}:54"),
    Ref("cnn_depth", 32, "model.cnn_depth", f"{D}:55"),
    Ref("encoder: 4 x Conv2D(k 4, s 2, valid)", [(32, 4, 2, 0), (64, 4, 2, 0), (128, 4, 2, 0), (256, 4, 2, 0)],
        lambda a: conv_layers(a.world_model.encoder.cnn), f"{M}:91-98"),
    Ref("embedding 32 * depth", 1024, lambda a: a.world_model.encoder.embed_dim, f"{M}:97"),
    Ref("decoder: Dense(32 * depth) to 1 x 1, deconvs k 5, 5, 6, 6", [1024, (128, 5, 2, 0), (64, 5, 2, 0), (32, 6, 2, 0), (3, 6, 2, 0)],
        lambda a: [a.world_model.decoder.cnn.linear.out_features, *conv_layers(a.world_model.decoder.cnn)], f"{M}:109-115"),
    Ref("image Normal(mean, 1) summed over pixels", "normal", "algo.world_model.image_dist", f"{M}:117"),
    Ref("image / 255 - 0.5", 8, "algo.world_model.image_bits", f"{D}:333"),
    Ref("no norm anywhere", "none", "algo.world_model.norm", f"{M}"),
    Ref("Keras default init (glorot uniform, zero bias)", ["uniform_avg", "uniform_avg"],
        lambda a: [a.cfg.algo.world_model.winit, a.cfg.algo.world_model.outinit], f"{M} (no initialisers given)"),
    # heads
    Ref("num_units", 400, "model.mlp_units", f"{D}:52"),
    Ref("reward DenseDecoder layers", 2, lambda a: linear_layers(a.world_model.reward_head), f"{D}:224"),
    Ref("reward Normal(x, 1)", "normal", "algo.world_model.reward_dist", f"{M}:136"),
    Ref("pcont", False, lambda a: a.world_model.cont_head is not None, f"{D}:56"),
    Ref("value DenseDecoder layers", 3, lambda a: linear_layers(a.behavior.critic.head), f"{D}:228"),
    Ref("value Normal(x, 1)", "normal", "algo.behavior.critic_dist", f"{M}:136"),
    Ref("ActionDecoder layers", 4, lambda a: linear_layers(a.behavior.actor.head), f"{D}:229-231"),
    Ref("action units", 400, lambda a: a.behavior.actor.head.trunk.out_dim, f"{D}:229-231"),
    Ref("action_dist", "tanh_normal", "algo.behavior.actor_dist", f"{D}:77"),
    Ref("action_init_std", 5.0, "algo.behavior.actor_init_std", f"{D}:78"),
    Ref("ActionDecoder mean_scale", 5.0, "algo.behavior.actor_mean_scale", f"{M}:146"),
    Ref("ActionDecoder min_std", 1e-4, "algo.behavior.min_std", f"{M}:146"),
    Ref("behaviour dense_act", ["elu"], lambda a: activations(a.behavior), f"{D}:53"),
    # losses
    Ref("free_nats on the mean KL", [3.0, True], lambda a: [a.cfg.algo.world_model.free_bits, a.cfg.algo.world_model.free_bits_mean], f"{D}:57, :174-175"),
    Ref("kl_scale (gradient to both sides)", [1.0, 1.0], lambda a: [a.world_model.loss_scales["dyn"], a.world_model.loss_scales["rep"]], f"{D}:58, :176"),
    Ref("image and reward likelihoods, scale 1", [1.0, 1.0], lambda a: [a.world_model.loss_scales["image"], a.world_model.loss_scales["reward"]], f"{D}:176"),
    # behaviour
    Ref("horizon", 15, "algo.behavior.horizon", f"{D}:76"),
    Ref("discount", 0.99, "algo.behavior.gamma", f"{D}:74"),
    Ref("disclam", 0.95, "algo.behavior.lam", f"{D}:75"),
    Ref("actor loss -mean(discount * returns): dynamics", 1.0, lambda a: a.behavior.dynamics_weight, f"{D}:187-193"),
    Ref("no entropy term", 0.0, "algo.behavior.entropy", f"{D}:193"),
    Ref("returns over reward[:-1] of each state", True, "algo.behavior.value_includes_reward", f"{D}:185-189; {T}:316-338"),
    Ref("imagined states exclude the start", False, "algo.behavior.critic_from_start", f"{D}:270-281"),
    Ref("returns bootstrap on the value network itself", False, "algo.behavior.slow_target", f"{D}:186"),
    Ref("no slow regulariser", 0.0, "algo.behavior.slow_reg", f"{D}:194-198"),
    Ref("no return normalisation", False, "algo.behavior.return_norm", f"{D}:185-193"),
    Ref("expl additive_gaussian, expl_amount", 0.3, "algo.behavior.expl_noise", f"{D}:79-80, :259"),
    Ref("eval acts with the actor's mode", False, "algo.behavior.eval_sample", f"{D}:141-144"),
    Ref("expl_decay, expl_min", [0.0, 0.0], lambda a: [0.0, 0.0], f"{D}:81-82 (we have neither)"),
    Ref("eval_noise", 0.0, lambda a: 0.0, f"{D}:47 (eval acts with the mode, no noise)"),
    # optimisers
    Ref("model_lr", 6e-4, "algo.optim.model.lr", f"{D}:68"),
    Ref("value_lr", 8e-5, "algo.optim.critic.lr", f"{D}:69"),
    Ref("actor_lr", 8e-5, "algo.optim.actor.lr", f"{D}:70"),
    Ref("Adam eps (TensorFlow default)", [1e-7, 1e-7, 1e-7], lambda a: [a.optimizers()[p].defaults["eps"] for p in ("model", "actor", "critic")], f"{T}:349"),
    Ref("grad_clip", [100.0, 100.0, 100.0], lambda a: [a.cfg.algo.optim[p].clip for p in ("model", "actor", "critic")], f"{D}:71"),
    Ref("weight_decay", [0.0, 0.0, 0.0], lambda a: [a.cfg.algo.optim[p].weight_decay for p in ("model", "actor", "critic")], f"{D}:60"),
]

# What we deliberately do differently, and why.
DEVIATIONS = [
    ("precision 16", "fp32 on CPU; bf16 autocast on CUDA via fast.bf16=auto, which needs no loss scaling."),
    ("update schedule", "The reference makes 100 updates at once every 1000 frames; we spread the same number over "
     "the frames (train_ratio 500), so the update count matches at every burst and never lags it."),
    ("losses from one forward pass", "The reference computes the model, actor and value losses before any step; we "
     "imagine with the freshly updated model (as DreamerV2 does), one model step later."),
    ("replay windows", "The reference samples a random finished episode, then a window inside it; we sample windows "
     "uniformly over the stored steps (an episode is stored when it ends, so also only finished ones; with "
     "equal-length DMC episodes this is the same distribution), except that a window may run on into the next "
     "episode, where is_first resets the latent state."),
    ("GRU gate formulation", "Keras' GRUCell (reset after the recurrent matmul, TensorFlow 2 default) and "
     "torch.nn.GRUCell compute the same function."),
    ("dataset_balance False", "uniform sampling, as ours."),
]

# The reference's learning-relevant define_config keys; each must be in the table or a deviation.
LEARNING_KEYS = [
    "envs", "action_repeat", "time_limit", "prefill", "eval_noise", "deter_size", "stoch_size", "num_units",
    "dense_act", "cnn_act", "cnn_depth", "pcont", "free_nats", "kl_scale", "weight_decay", "batch_size",
    "batch_length", "train_every", "train_steps", "pretrain", "model_lr", "value_lr", "actor_lr", "grad_clip",
    "dataset_balance", "discount", "disclam", "horizon", "action_dist", "action_init_std", "expl_amount",
    "expl_decay", "precision",
]

PRESETS = {"dreamerv1": (OVERRIDES, TABLE)}
