"""Hyperparameter parity of ``algo=planet`` with google-research/planet @c04226b.

The reference's published configuration is ``default`` (``C`` =
planet/scripts/configs.py; the camera-ready values since 0c6f7d3); ``K``
scripts/tasks.py, ``R`` models/rssm.py, ``H`` networks/conv_ha.py, ``B``
networks/basic.py, ``P`` control/planning.py, ``G`` control/mpc_agent.py,
``X`` tools/preprocess.py, ``Y`` scripts/train.py / training/utility.py, all
at c04226b. Line numbers are those of ``git show c04226b:planet/<file>``.
The table is composed on cheetah_run (action repeat 4), so the per-task
action repeat and the train ratio that follows from it are checked too.
"""

from __future__ import annotations

from reference.common import Ref, activations, conv_layers, linear_layers

C, K, R, H = "c04226b:scripts/configs.py", "c04226b:scripts/tasks.py", "c04226b:models/rssm.py", "c04226b:networks/conv_ha.py"
B, P, G, X = "c04226b:networks/basic.py", "c04226b:control/planning.py", "c04226b:control/mpc_agent.py", "c04226b:tools/preprocess.py"
Y = "c04226b:training/utility.py"

OVERRIDES = ["experiment=dmc_vision", "algo=planet", "env.task=cheetah_run"]
TABLE = [
    # tasks, data and schedule
    Ref("cheetah_run action_repeat", 4, "env.action_repeat", f"{K}:70"),
    Ref("max_length: 1000 // action_repeat agent steps", 1000, "env.time_limit", f"{K}:67-75"),
    Ref("64 x 64 camera 0", [64, 64], "env.size", f"{K}:138-139"),
    Ref("batch_shape (50, 50)", [50, 50], lambda a: [a.cfg.algo.batch_size, a.cfg.algo.batch_length], f"{C}:81"),
    Ref("episodes are read from disk once finished", False, "algo.sample_ongoing",
        "c04226b:tools/numpy_episodes.py:33-75"),
    Ref("collect_every 5000 of train_steps (50 per update): one episode per 100 updates of 50 x 50, at repeat 4", 1000, "algo.train_ratio",
        f"{C}:203, :252-253 (250,000 replayed steps per 250 agent steps)"),
    Ref("num_seed_episodes 5 (frames)", 5000, "prefill", f"{C}:232"),
    Ref("100 updates on the seed episodes before the first collect", 100, "algo.pretrain", f"{C}:252 (after=5000 steps of 50)"),
    Ref("one environment (batch_size 1)", 1, "env.num_envs", f"{C}:249"),
    # model
    Ref("state_size", [30, "gaussian"], lambda a: [a.cfg.model.stoch, a.cfg.algo.world_model.latent], f"{C}:122"),
    Ref("model_size: belief", 200, "model.deter", f"{C}:121, :132"),
    Ref("model_size: hidden layers", 200, "model.hidden", f"{C}:121, :132"),
    Ref("min_stddev", 0.1, "algo.world_model.min_std", f"{C}:135; {R}"),
    Ref("activation relu", "relu", "algo.world_model.act", f"{C}:109"),
    Ref("all activations relu", [["relu"], ["relu"], ["relu"], ["relu"]],
        lambda a: [activations(m) for m in (a.world_model.rssm, a.world_model.encoder.cnn, a.world_model.decoder.cnn, a.world_model.reward_head)], f"{C}:109, :136; {H}:26-54"),
    Ref("GRUBlockCell, no norm", False, "algo.world_model.gru_norm", f"{R}"),
    Ref("zero initial state", False, "algo.world_model.learned_initial", f"{R}"),
    Ref("one hidden layer before the prior", 1, "algo.world_model.prior_layers", f"{R}"),
    Ref("encoder 4 x conv(k 4, s 2, valid), depths 32..256", [(32, 4, 2, 0), (64, 4, 2, 0), (128, 4, 2, 0), (256, 4, 2, 0)],
        lambda a: conv_layers(a.world_model.encoder.cnn), f"{H}:26-38"),
    Ref("embedding 1024", 1024, lambda a: a.world_model.encoder.embed_dim, f"{H}:26-38"),
    Ref("decoder Dense(1024) at 1 x 1, deconvs k 5, 5, 6, 6", [1024, (128, 5, 2, 0), (64, 5, 2, 0), (32, 6, 2, 0), (3, 6, 2, 0)],
        lambda a: [a.world_model.decoder.cnn.linear.out_features, *conv_layers(a.world_model.decoder.cnn)], f"{H}:41-54"),
    Ref("image Normal(mean, 1), summed over pixels", "normal", "algo.world_model.image_dist", f"{H}:52-53"),
    Ref("image_bits 5 with dequantisation noise", 5, "algo.world_model.image_bits", f"{C}:83-85; {X}:22-30"),
    Ref("reward num_layers", 3, lambda a: linear_layers(a.world_model.reward_head), f"{C}:110"),
    Ref("reward num_units", 300, "model.mlp_units", f"{C}:111"),
    Ref("reward Normal(mean, 1)", "normal", "algo.world_model.reward_dist", f"{B}:30, :45-46"),
    Ref("no discount / terminal head", False, lambda a: a.world_model.cont_head is not None, f"{C} heads: image, reward"),
    Ref("TensorFlow default init (glorot uniform, zero bias)", ["uniform_avg", "uniform_avg"],
        lambda a: [a.cfg.algo.world_model.winit, a.cfg.algo.world_model.outinit], f"{R}; {H} (no initialisers given)"),
    # losses
    Ref("free_nats 3, max(0, KL - 3) per step before the mean", [3.0, False], lambda a: [a.cfg.algo.world_model.free_bits, a.cfg.algo.world_model.free_bits_mean], f"{C}:189; {Y}:209-211, :233"),
    Ref("divergence_scale (gradient to both sides)", [1.0, 1.0], lambda a: [a.world_model.loss_scales["dyn"], a.world_model.loss_scales["rep"]], f"{C}:182"),
    Ref("reward loss scale", 10.0, lambda a: a.world_model.loss_scales["reward"], f"{C}:185-188"),
    Ref("image loss scale", 1.0, lambda a: a.world_model.loss_scales["image"], f"{C}:185-188"),
    Ref("overshooting_distance, overshooting_scale, global_div_scale", [0, 0.0, 0.0], lambda a: [0, 0.0, 0.0], f"{C}:183-184, :190 (we have none)"),
    # optimiser
    Ref("Adam epsilon", 1e-4, lambda a: a.optimizers()["model"].defaults["eps"], f"{C}:195"),
    Ref("main_learning_rate", 1e-3, "algo.optim.model.lr", f"{C}:197"),
    Ref("main_gradient_clipping", 1000.0, "algo.optim.model.clip", f"{C}:198"),
    Ref("no learning-rate schedule", [0, 0.0], lambda a: [a.cfg.algo.optim.model.get("warmup", 0), a.cfg.algo.optim.model.weight_decay], f"{C}:196 (commented out)"),
    # planner
    Ref("planner_horizon", 12, "algo.planner.horizon", f"{C}:250"),
    Ref("planner_amount", 1000, "algo.planner.candidates", f"{C}:293"),
    Ref("planner_topk", 100, "algo.planner.top_k", f"{C}:295"),
    Ref("planner_iterations", 10, "algo.planner.iterations", f"{C}:294"),
    Ref("objective: undiscounted sum of predicted rewards", 1.0, "algo.planner.discount", "c04226b:scripts/objectives.py:22-25"),
    Ref("candidates clipped to [-1, 1], mean 0 / std 1 at every step", True, lambda a: True, f"{P}:38-40, :56-57 (behavior/planner.py)"),
    Ref("train_action_noise", 0.3, "algo.expl_noise", f"{C}:220; {G}:72-77"),
]

DEVIATIONS = [
    ("refit std sqrt(var + 1e-6)", "We refit the plain standard deviation of the top 100; the 1e-6 only matters once "
     "the elite sequences coincide."),
    ("GRUBlockCell", "TensorFlow's block GRU applies the reset gate before the recurrent matmul and starts its gate "
     "biases at 1; we use torch.nn.GRUCell (reset after the matmul) with Keras' zero biases."),
    ("loader recent", "The reference draws episodes uniformly, with a mild recency bias past 500 episodes, then a "
     "random window inside; we sample windows uniformly over the stored (finished) episodes' steps, and a window may "
     "run on into the next episode, where is_first resets the latent state."),
    ("test episodes", "The reference collects 5 random and then one noise-free episode per 1000 updates into a "
     "separate test set it never trains on; we evaluate every eval_every frames and do not store evaluation episodes."),
    ("max_steps 5e7", "experiment=dmc_vision runs 1M frames, the budget of the PlaNet scores we compare with "
     "(planet_1e6 of danijar/dreamer scores/baselines.json, baselines/dmc_vision/planet.json.gz)."),
]

# The reference's learning-relevant `default` parameters and task facts.
LEARNING_KEYS = [
    "action_repeat", "max_length", "batch_shape", "train_steps", "collect_every", "num_seed_episodes", "state_size",
    "model_size", "min_stddev", "activation", "num_layers", "num_units", "image_bits", "free_nats",
    "divergence_scale", "reward loss scale", "image loss scale", "overshooting_distance", "global_div_scale",
    "epsilon", "main_learning_rate", "main_gradient_clipping", "planner_horizon", "planner_amount", "planner_topk",
    "planner_iterations", "train_action_noise", "loader", "max_steps",
]

# PlaNet's per-task action repeat (scripts/tasks.py) and the train ratio it implies.
ACTION_REPEATS = {
    "cartpole_balance": 8, "cartpole_swingup": 8, "finger_spin": 2, "cheetah_run": 4, "ball_in_cup_catch": 4,
    "walker_walk": 2, "reacher_easy": 4,
}

PRESETS = {"planet": (OVERRIDES, TABLE)}
