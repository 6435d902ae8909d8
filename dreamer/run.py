"""The one place that reads the Hydra config and builds a run from it.

Everything below this module receives plain constructor arguments: the
environments get ``cfg.env``, the world model ``cfg.model`` + ``cfg.algo.world_model``,
the behaviour ``cfg.algo.behavior``, the loop a :class:`LoopSettings`.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import envs
from behavior.imagination import ImaginationBehavior
from behavior.planner import CEMPlanner
from dreamer import checkpoint as ckpt
from dreamer import fast, validate
from dreamer.agent import Agent, OptimConfig, resolve_device
from dreamer.distributed import Distributed, NullLogger, detect_launch, replay_dir, run_trainer
from dreamer.logger import Logger, WandbSettings
from dreamer.reference import dreamerv3_2024_params, format_count
from dreamer.loop import LoopSettings, Trainer
from dreamer.replay import Replay
from world_model.world_model import WorldModel

ENV_LOOP_KEYS = ("num_envs", "parallel")


def env_options(env_cfg: DictConfig) -> tuple[str, str, dict]:
    options = OmegaConf.to_container(env_cfg, resolve=True)
    suite, task = options.pop("suite"), options.pop("task")
    for key in ENV_LOOP_KEYS:
        options.pop(key, None)
    return suite, task, options


def env_setup(env_cfg: DictConfig, seed: int, rank: int = 0):
    """Picklable training-worker factories, the eval-env factory, and whether workers are processes."""
    suite, task, options = env_options(env_cfg)
    options.pop("seed", None)
    num = int(env_cfg.get("num_envs", 1))
    train_fns = envs.env_factories(suite, task, num, seed=seed, rank=rank, **options)
    eval_fn = functools.partial(envs.make_env, suite, task, seed=seed + 10_000 + rank, **options)
    return train_fns, eval_fn, bool(env_cfg.get("parallel", True))


# Past this many side-by-side evaluation environments the batch gains little
# and each process holds its own simulator and renderer.
MAX_EVAL_ENVS = 8


def eval_layout(env_suite: str, episodes: int, count="auto", parallel="auto") -> tuple[int, bool]:
    """How many evaluation environments run side by side, and whether each has
    its own process. ``auto``: one per episode up to ``MAX_EVAL_ENVS`` (five
    cartpole_swingup episodes took 24 s in five processes against 45 s one
    after another on 2 cores, docs/performance.md), in processes except for
    the toy task, whose steps cost less than a pipe round trip."""
    count = max(1, min(int(episodes), MAX_EVAL_ENVS)) if count == "auto" else int(count)
    parallel = (env_suite != "toy" and count > 1) if parallel == "auto" else bool(parallel)
    return count, parallel


def eval_envs_factory(eval_fn, count: int, parallel: bool):
    """A factory of the :class:`envs.VectorEnv` of ``count`` evaluation environments."""
    return lambda: envs.VectorEnv(envs.eval_factories(eval_fn, count), parallel=parallel)


def env_spaces(make_env) -> tuple[dict, "envs.Space"]:
    """Observation and action spaces of the environment ``make_env`` builds."""
    env = make_env()
    try:
        return env.obs_space, env.act_space
    finally:
        env.close()


def build_agent(cfg: DictConfig, obs_space: dict, act_space, device: torch.device) -> Agent:
    algo = cfg.algo
    obs_shapes = {k: tuple(space.shape) for k, space in obs_space.items()}
    action_dim = int(act_space.shape[0])
    # The algo preset's world-model settings win over the size group's.
    world_model = WorldModel(obs_shapes, action_dim, **{**_container(cfg.model), **_container(algo.world_model)})
    behavior, planner = None, None
    if algo.policy == "actor":
        behavior = ImaginationBehavior(
            world_model.feat_size,
            action_dim,
            act_space.discrete,
            units=cfg.model.mlp_units,
            layers=cfg.model.mlp_layers,
            **_container(algo.behavior),
        )
    elif algo.policy == "planner":
        planner = CEMPlanner(action_dim, **_container(algo.planner))
    else:
        raise ValueError(f"algo.policy={algo.policy!r}; allowed: actor, planner")
    optim = {name: OptimConfig(**_container(algo.optim[name])) for name in algo.optim}
    speed = fast.settings_from(cfg, device)
    fast.set_threads(int(cfg.get("fast", {}).get("threads", 0)))
    fast.keep_freed_memory(speed["keep_memory"])
    agent = Agent(
        world_model,
        action_dim,
        act_space.discrete,
        behavior=behavior,
        planner=planner,
        model_optim=optim["model"],
        actor_optim=optim.get("actor", OptimConfig()),
        critic_optim=optim.get("critic", OptimConfig()),
        expl_noise=algo.expl_noise,
        update=str(algo.get("update", "sequential")),
        bf16=speed["bf16"],
        fused_optim=speed["fused_optim"],
        device=device,
    )
    fast.apply(agent, speed, cfg.get("fast", {}).get("compile_cache"))
    return agent


def parameter_banner(cfg: DictConfig, agent: Agent, obs_space: dict, act_space) -> str:
    """Trainable parameters (the frozen slow critic apart), and for the 2024
    DreamerV3 the count of the reference's networks at the same size."""
    trainable = sum(p.numel() for p in agent.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in agent.parameters() if not p.requires_grad)
    text = f"{format_count(trainable)} trainable parameters"
    if frozen:
        text += f" (+{format_count(frozen)} slow critic)"
    if cfg.algo.name == "dreamerv3":
        shapes = {k: tuple(space.shape) for k, space in obs_space.items()}
        reference = dreamerv3_2024_params(shapes, int(act_space.shape[0]), **_container(cfg.model))
        text += f", reference {format_count(reference)} ({cfg.algo.reference})"
    return text


def load_trained(run_dir: str | Path, device: str = "auto"):
    """A finished or running run's agent from its checkpoint (read-only).

    Returns ``(cfg, agent, make_eval_env, obs_space, frames)``; the agent is in
    eval mode. A missing config or checkpoint, or one that does not match the
    config, raises ``CheckpointError`` naming the file.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / ".hydra" / "config.yaml"
    if not config_path.exists():
        raise ckpt.CheckpointError(f"{run_dir} is not a run directory: {config_path} is missing")
    cfg = OmegaConf.load(config_path)
    state, used = ckpt.load_latest(run_dir / "checkpoint.pt")  # checkpoint.prev.pt if checkpoint.pt is damaged
    ckpt.check_compatible(state["config"], compatibility_slice(cfg), used)
    seed_everything(int(cfg.seed))
    _, eval_fn, _ = env_setup(cfg.env, int(cfg.seed))
    obs_space, act_space = env_spaces(eval_fn)
    agent = build_agent(cfg, obs_space, act_space, resolve_device(device))
    agent.load_checkpoint_state(state["agent"])
    agent.eval()
    return cfg, agent, eval_fn, obs_space, int(state["counters"]["frames"])


def _container(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def compatibility_slice(cfg: DictConfig) -> dict:
    """Settings that a checkpoint must share with the run that loads it."""
    return {
        "env": {"suite": cfg.env.suite, "task": cfg.env.task},
        "model": _container(cfg.model),
        "algo": _container(cfg.algo),
    }


def start_distributed(cfg: DictConfig) -> Distributed | None:
    """Join the process group when a launcher started several ranks; None for a single process."""
    launch = detect_launch()
    if launch is None:
        return None
    options = cfg.get("distributed") or {}
    return Distributed(
        launch, str(cfg.device), str(options.get("backend", "auto")), float(options.get("timeout", 600))
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_logger(cfg: DictConfig, run_dir: Path) -> Logger:
    settings = cfg.logger
    wandb = None
    if settings.wandb:
        wandb = WandbSettings(project=str(settings.wandb_project), entity=settings.wandb_entity,
                              mode=str(settings.wandb_mode), group=settings.wandb_group)
    return Logger(run_dir, tensorboard=bool(settings.tensorboard), wandb=wandb,
                  config=OmegaConf.to_container(cfg, resolve=True) if wandb else None)


def run(cfg: DictConfig, run_dir: str | Path | None = None):
    """Build everything from ``cfg`` and train; returns the final counters."""
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = HydraConfig.get().runtime.output_dir
    run_dir = Path(run_dir)
    validate.check(cfg)
    ranks = start_distributed(cfg)
    rank, is_main = (ranks.rank, ranks.is_main) if ranks else (0, True)
    if ranks:
        # Each rank's Hydra names the directory by its own clock; rank 0's name wins.
        run_dir = Path(ranks.from_main(str(run_dir)))
    seed_everything(int(cfg.seed) + rank)
    device = ranks.device if ranks else resolve_device(str(cfg.device))
    try:
        train_fns, eval_fn, parallel = env_setup(cfg.env, int(cfg.seed), rank)
        obs_space, act_space = env_spaces(eval_fn)
    except ValueError as error:  # an unknown suite, task or option: the message lists the valid ones
        raise validate.ConfigError(f"env.suite={cfg.env.suite} env.task={cfg.env.task}: {error}") from error
    agent = build_agent(cfg, obs_space, act_space, device)
    if ranks:
        ranks.setup_agent(agent)
    algo = cfg.algo
    settings = LoopSettings(
        steps=int(cfg.steps),
        prefill=int(cfg.prefill),
        pretrain=int(algo.get("pretrain", 0)),
        train_ratio=float(algo.train_ratio),
        batch_size=int(algo.batch_size),
        batch_length=int(algo.batch_length),
        replay_context=int(algo.world_model.get("replay_context", 0)),
        action_repeat=int(cfg.env.get("action_repeat", 1)),
        eval_every=int(cfg.eval_every),
        eval_episodes=int(cfg.eval_episodes) if is_main else 0,
        log_every=int(cfg.log_every),
        report_every=int(cfg.report_every) if is_main else 0,
        checkpoint_every=float(cfg.checkpoint_every),
        max_nonfinite_updates=int(cfg.max_nonfinite_updates),
        progress=bool(cfg.progress) and is_main,
        **fast.loop_settings(cfg, device),
    )
    replay = Replay(
        int(cfg.replay_capacity),
        replay_dir(run_dir, rank),
        int(cfg.replay_chunk),
        seed=int(cfg.seed) + rank,
        sample_ongoing=bool(cfg.algo.sample_ongoing),
    )
    print(
        f"[dreamer] {algo.name} on {cfg.env.suite}:{cfg.env.task} | device {device} | "
        + (f"rank {rank} of {ranks.world_size} | " if ranks else "")
        + f"{parameter_banner(cfg, agent, obs_space, act_space)} | run dir {run_dir}"
    )
    trainer = Trainer(
        settings,
        run_dir,
        make_envs=lambda: envs.VectorEnv(train_fns, parallel=parallel),
        make_eval_envs=eval_envs_factory(
            eval_fn, *eval_layout(cfg.env.suite, int(cfg.eval_episodes), cfg.get("eval_envs", "auto"), cfg.get("eval_parallel", "auto"))
        ),
        agent=agent,
        replay=replay,
        logger=make_logger(cfg, run_dir) if is_main else NullLogger(),
        config_slice=compatibility_slice(cfg),
        seed=int(cfg.seed) + rank,
        ranks=ranks,
    )
    return run_trainer(trainer, ranks)
