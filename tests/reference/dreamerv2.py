"""Hyperparameter parity of ``algo=dreamerv2`` with danijar/dreamerv2 @07d906e.

The reference's DMC setting is its ``dmc_vision`` config merged over
``defaults`` (``C`` = dreamerv2/configs.yaml, defaults at lines 1-66,
dmc_vision at 118-136); ``A`` agent.py, ``N`` common/nets.py, ``R``
train.py, ``U`` common/tfutils.py, ``S`` common/dists.py, all at 07d906e
("Add DMC scores"). Line numbers are those of ``git show 07d906e:dreamerv2/<file>``.
"""

from __future__ import annotations

from reference.common import Ref, activations, conv_layers, linear_layers

C, A, N, R = "07d906e:configs.yaml", "07d906e:agent.py", "07d906e:common/nets.py", "07d906e:train.py"
U, S = "07d906e:common/tfutils.py", "07d906e:common/dists.py"

OVERRIDES = ["experiment=dmc_vision", "algo=dreamerv2"]
PARTS = ("model", "actor", "critic")
TABLE = [
    # run and schedule (the reference counts agent steps)
    Ref("envs", 1, "env.num_envs", f"{C}:7"),
    Ref("render_size", [64, 64], "env.size", f"{C}:9"),
    Ref("action_repeat", 2, "env.action_repeat", f"{C}:123"),
    Ref("time_limit 0: the suite's 1000 frames", 1000, "env.time_limit", f"{C}:12"),
    Ref("prefill 1000 agent steps, in frames", 2000, "prefill", f"{C}:125; {R}:141-145"),
    Ref("pretrain 100 + the variable-building update", 101, "algo.pretrain", f"{C}:126; {R}:156, :161-162"),
    Ref("dataset.batch", 16, "algo.batch_size", f"{C}:24"),
    Ref("dataset.length", 50, "algo.batch_length", f"{C}:24"),
    Ref("replay.ongoing", False, "algo.sample_ongoing", f"{C}:23"),
    Ref("train_every 5, train_steps 1: 16 * 50 / 5", 160, "algo.train_ratio", f"{C}:20-21"),
    Ref("world model, then actor, then critic", "sequential", "algo.update", f"{A}:58-69, :229-250"),
    Ref("clip_rewards identity", "identity", lambda a: "identity", f"{C}:127 (we never clip rewards)"),
    # RSSM
    Ref("rssm.deter", 200, "model.deter", f"{C}:131"),
    Ref("rssm.hidden", 200, "model.hidden", f"{C}:131"),
    Ref("rssm.stoch", 32, "model.stoch", f"{C}:42"),
    Ref("rssm.discrete", [32, "categorical"], lambda a: [a.cfg.model.classes, a.cfg.algo.world_model.latent], f"{C}:42"),
    Ref("rssm.ensemble", 1, lambda a: 1, f"{C}:42 (we have one prior)"),
    Ref("rssm.act", "elu", "algo.world_model.act", f"{C}:42"),
    Ref("rssm.norm (layers around the GRU)", "none", "algo.world_model.norm", f"{C}:42"),
    Ref("GRUCell(norm=True), update bias -1", [True, -1.0], lambda a: [a.cfg.algo.world_model.gru_norm, a.world_model.rssm.gru.update_bias], f"{N}:27, :317-347"),
    Ref("no uniform mix in the latents", 0.0, "algo.world_model.unimix", f"{N}:78-81"),
    Ref("zero initial state", False, "algo.world_model.learned_initial", f"{N}:30-36"),
    Ref("img_out: one layer before the prior", 1, "algo.world_model.prior_layers", f"{N}:108-127"),
    Ref("actions enter as they are", False, "algo.world_model.action_norm", f"{N}:108-127"),
    # encoder and decoder
    Ref("encoder.cnn_depth", 48, "model.cnn_depth", f"{C}:43"),
    Ref("encoder.cnn_kernels [4, 4, 4, 4], stride 2, valid", [(48, 4, 2, 0), (96, 4, 2, 0), (192, 4, 2, 0), (384, 4, 2, 0)],
        lambda a: conv_layers(a.world_model.encoder.cnn), f"{C}:43; {N}:216-224"),
    Ref("embedding 2 * 2 * 8 * depth", 1536, lambda a: a.world_model.encoder.embed_dim, f"{N}:216-224"),
    Ref("decoder.cnn_kernels [5, 5, 6, 6] from Dense(32 * depth) at 1 x 1", [1536, (192, 5, 2, 0), (96, 5, 2, 0), (48, 6, 2, 0), (3, 6, 2, 0)],
        lambda a: [a.world_model.decoder.cnn.linear.out_features, *conv_layers(a.world_model.decoder.cnn)], f"{C}:44; {N}:263-281"),
    Ref("encoder/decoder act elu, norm none", [["elu"], ["elu"]], lambda a: [activations(a.world_model.encoder.cnn), activations(a.world_model.decoder.cnn)], f"{C}:43-44"),
    Ref("encoder/decoder mlp_keys '$^' (images only)", [True, False], lambda a: [a.cfg.env.image, a.cfg.env.proprio], f"{C}:121-122"),
    Ref("image Normal(mean, 1) summed over pixels", "normal", "algo.world_model.image_dist", f"{N}:263-281"),
    Ref("image / 255 - 0.5", 8, "algo.world_model.image_bits", f"{A}:166-185"),
    Ref("Keras default init (glorot uniform, zero bias)", ["uniform_avg", "uniform_avg"],
        lambda a: [a.cfg.algo.world_model.winit, a.cfg.algo.world_model.outinit], f"{N} (no initialisers given)"),
    # heads
    Ref("reward_head.layers", 4, lambda a: linear_layers(a.world_model.reward_head), f"{C}:45"),
    Ref("reward_head.units", 400, "model.mlp_units", f"{C}:45"),
    Ref("reward_head.dist mse", "normal", "algo.world_model.reward_dist", f"{C}:45"),
    Ref("pred_discount", False, lambda a: a.world_model.cont_head is not None, f"{C}:128"),
    Ref("actor.layers", 4, lambda a: linear_layers(a.behavior.actor.head), f"{C}:52"),
    Ref("actor.units", 400, lambda a: a.behavior.actor.head.trunk.out_dim, f"{C}:52"),
    Ref("actor.dist auto: trunc_normal", "trunc_normal", "algo.behavior.actor_dist", f"{C}:52; {A}:212-218"),
    Ref("actor.min_std, init_std 0: std 2 sigmoid(x / 2) + 0.1", [0.1, 0.0], lambda a: [a.cfg.algo.behavior.min_std, a.cfg.algo.behavior.actor_init_std], f"{C}:52; {N}:360-386"),
    Ref("critic.layers", 4, lambda a: linear_layers(a.behavior.critic.head), f"{C}:53"),
    Ref("critic.units", 400, lambda a: a.behavior.critic.head.trunk.out_dim, f"{C}:53"),
    Ref("critic.dist mse", "normal", "algo.behavior.critic_dist", f"{C}:53"),
    Ref("actor/critic act elu, norm none", ["elu"], lambda a: activations(a.behavior), f"{C}:52-53"),
    # losses
    Ref("loss_scales kl, reward; image", [1.0, 1.0, 1.0], lambda a: [a.world_model.loss_scales["dyn"] + a.world_model.loss_scales["rep"], a.world_model.loss_scales["reward"], a.world_model.loss_scales["image"]], f"{C}:47; {A}:124-125"),
    Ref("kl.balance 0.8 (prior), 0.2 (posterior)", [0.8, 0.2], lambda a: [a.world_model.loss_scales["dyn"], a.world_model.loss_scales["rep"]], f"{C}:48; {N}:162-180"),
    Ref("kl.free 1.0 on the mean (free_avg), per term", [1.0, True], lambda a: [a.cfg.algo.world_model.free_bits, a.cfg.algo.world_model.free_bits_mean], f"{C}:48, :136; {N}:162-180"),
    Ref("kl.forward False: KL(post || prior)", True, lambda a: True, f"{C}:48 (our KL terms are KL(post || prior))"),
    # behaviour
    Ref("imag_horizon", 15, "algo.behavior.horizon", f"{C}:58"),
    Ref("discount", 0.99, "algo.behavior.gamma", f"{C}:56"),
    Ref("discount_lambda", 0.95, "algo.behavior.lam", f"{C}:57"),
    Ref("actor_grad auto: dynamics for continuous actions", 1.0, lambda a: a.behavior.dynamics_weight, f"{C}:59; {A}:215-217"),
    Ref("actor_ent", 1e-4, "algo.behavior.entropy", f"{C}:135"),
    Ref("lambda_return(reward[:-1], ...) with each state's reward", True, "algo.behavior.value_includes_reward", f"{A}:307-325"),
    Ref("critic learns the start state too", True, "algo.behavior.critic_from_start", f"{A}:293-305"),
    Ref("slow_target", True, "algo.behavior.slow_target", f"{C}:62"),
    Ref("slow_target_update", 100, "algo.behavior.slow_critic_every", f"{C}:63"),
    Ref("slow_target_fraction", 1.0, "algo.behavior.slow_critic_rate", f"{C}:64"),
    Ref("no slow regulariser", 0.0, "algo.behavior.slow_reg", f"{A}:293-305"),
    Ref("reward_norm momentum 1.0: none", False, "algo.behavior.return_norm", f"{C}:66"),
    Ref("expl_noise (actions are actor samples)", 0.0, "algo.behavior.expl_noise", f"{C}:35"),
    Ref("eval acts with actor.mode()", False, "algo.behavior.eval_sample", f"{A}:40-46"),
    Ref("eval_noise", 0.0, lambda a: 0.0, f"{C}:36 (eval acts with the mode, no noise)"),
    # optimisers
    Ref("model_opt.lr", 3e-4, "algo.optim.model.lr", f"{C}:132"),
    Ref("actor_opt.lr", 8e-5, "algo.optim.actor.lr", f"{C}:133"),
    Ref("critic_opt.lr", 8e-5, "algo.optim.critic.lr", f"{C}:134"),
    Ref("opt adam, eps 1e-5", [1e-5] * 3, lambda a: [a.optimizers()[p].defaults["eps"] for p in PARTS], f"{C}:49, :54-55"),
    Ref("clip 100", [100.0] * 3, lambda a: [a.cfg.algo.optim[p].clip for p in PARTS], f"{C}:49, :54-55"),
    Ref("wd 1e-6: var *= 1 - wd before each step", [1e-6] * 3, lambda a: [a.optimizers()[p].defaults["weight_decay"] * a.optimizers()[p].defaults["lr"] for p in PARTS], f"{C}:49, :54-55; {U}:132-151", rel=1e-9),
]

DEVIATIONS = [
    ("precision 16", "fp32 on CPU; bf16 autocast on CUDA via fast.bf16=auto, which needs no loss scaling."),
    ("replay (ongoing False, minlen = maxlen = 50)", "The reference samples a random finished episode, then a window "
     "inside it; we sample windows uniformly over the stored steps (an episode is stored when it ends, so also only "
     "finished ones; with equal-length DMC episodes the same distribution), except that a window may run on into "
     "the next episode, where is_first resets the latent state."),
    ("first target copy", "The reference copies the critic into the target after the first update; ours starts as a "
     "copy of the initial critic. Both then copy every 100 updates."),
    ("slow_baseline", "Set in the reference's config but never read by its code."),
    ("actor_grad_mix", "Only used by actor_grad: both; DMC uses dynamics."),
    ("steps 1e8", "experiment=dmc_vision runs 1M frames; the published DreamerV2 DMC curves run to about 2M."),
    ("eval_every 1e4 agent steps", "experiment=dmc_vision evaluates every 10,000 frames (twice as often)."),
]

# The reference's learning-relevant keys of defaults + dmc_vision.
LEARNING_KEYS = [
    "envs", "render_size", "time_limit", "action_repeat", "steps", "eval_every", "prefill", "pretrain",
    "train_every", "train_steps", "replay", "dataset.batch", "dataset.length", "precision", "clip_rewards",
    "expl_noise", "eval_noise", "pred_discount", "rssm.deter", "rssm.hidden", "rssm.stoch", "rssm.discrete",
    "rssm.ensemble", "rssm.act", "rssm.norm", "encoder.cnn_depth", "encoder.cnn_kernels", "decoder.cnn_kernels",
    "mlp_keys", "reward_head.layers", "reward_head.units", "reward_head.dist", "loss_scales", "kl.balance",
    "kl.free", "kl.forward", "model_opt.lr", "actor_opt.lr", "critic_opt.lr", "eps 1e-5", "clip 100", "wd 1e-6",
    "actor.layers", "actor.units", "actor.dist", "actor.min_std", "critic.layers", "critic.dist", "discount",
    "discount_lambda", "imag_horizon", "actor_grad", "actor_grad_mix", "actor_ent", "slow_target",
    "slow_target_update", "slow_target_fraction", "slow_baseline", "reward_norm",
]

PRESETS = {"dreamerv2": (OVERRIDES, TABLE)}
