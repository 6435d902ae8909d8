"""Throughput benchmark of the agent as training builds it.

``python -m dreamer.bench [KEY=VALUE ...] [--size s] [--batch 16] [--length 64]
[--horizon 15] [--fast-paths compile=true bf16=false ...]`` composes the Hydra
config (``KEY=VALUE`` are train.py's overrides, e.g. ``algo=dreamerv1
model=xs``, and win over the options; ``experiment=quickstart`` measures that
experiment's own env, model and batch), builds
the agent with :func:`dreamer.run.build_agent` (so the fast-path switches and
model sizes are exactly those of training), times each part on a synthetic
batch after a warm-up and prints the medians as JSON on stdout. Progress goes
to stderr.

Keys: ``world_model_updates_per_s``, ``behavior_updates_per_s``,
``imagined_states_per_s``, ``agent_updates_per_s``, ``agent_update_s``,
``policy_step_ms`` (act on one observation), ``env_steps_per_s`` (one
worker), ``env_steps_per_s_workers`` (``--workers`` workers; ``env_error`` instead
where stepping the environments failed), ``peak_rss_mb``,
``peak_cuda_mb`` (None without CUDA), ``frames_per_update`` (environment
frames per update at the composed train ratio and action repeat) and
``train_frames_per_s_update_bound`` (the frames per second of training that
the full update's time allows, acting and environment hidden behind it), ``warmup_s`` (seconds of the
untimed calls of each phase, compilation included), ``trainable_parameters_m`` and
``frozen_parameters_m`` (the slow critic), ``ops_per_update`` (ATen
operators dispatched in one full update, from the profiler), plus the
settings measured. With ``--eval-episodes N``, ``eval_s_one_env`` and
``eval_s_layout`` are the seconds of an evaluation of N episodes one after
another in one environment and side by side as training runs them
(``eval_layout``), each including the start of its environments
(``eval_start_s_*``). With
``--profile N``, ``profile`` lists the N operators with the most self time in
one full update (``torch.profiler``), as ``{op, calls, self_s, share}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

import envs
from behavior.imagine import flatten_states
from dreamer import fast
from dreamer.agent import resolve_device
from dreamer.loop import evaluate_episodes
from dreamer.run import (
    build_agent,
    env_options,
    env_setup,
    env_spaces,
    eval_envs_factory,
    eval_layout,
)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def compose_config(size: str, batch: int, length: int, horizon: int, device: str, env: str, overrides=()):
    """The training config for these settings (``env`` as ``suite:task``);
    ``overrides`` are Hydra overrides and win over the options above. With
    ``experiment=NAME`` among them, that experiment's env, model, batch and
    horizon are used instead of the options (``--device`` still applies)."""
    suite, _, task = env.partition(":")
    if not task:
        raise ValueError(f"--env {env!r} must look like suite:task, e.g. dmc:walker_walk or toy:reach")
    overrides = list(overrides)
    given = {item.lstrip("+~").partition("=")[0] for item in overrides}
    options = {"model": size, "env": suite, "env.task": task, "algo.batch_size": batch,
               "algo.batch_length": length, "device": device}
    if "env" in given:
        options.pop("env.task")  # another suite brings its own default task
    if "experiment" in given:
        # An experiment brings its own env, model and batch; only the device is set here.
        args = [*([] if "device" in given else [f"device={device}"]), *overrides]
    else:
        # Without the default experiment (the quickstart's sizes and budget): the
        # benchmark measures the env group's own settings at the given size.
        args = ["~experiment", *(f"{k}={v}" for k, v in options.items() if k not in given), *overrides]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name="config", overrides=args)
    # A planner preset has no imagination horizon to set.
    if cfg.algo.get("behavior") is not None and not given & {"algo.behavior.horizon", "experiment"}:
        cfg.algo.behavior.horizon = horizon
    return cfg


def synthetic_batch(obs_space: dict, act_space, batch: int, length: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random (B, T, ...) arrays shaped like a replayed batch."""
    rng = np.random.default_rng(seed)
    data = {}
    for key, space in obs_space.items():
        if key in ("reward", "is_first", "is_last", "is_terminal"):
            continue
        shape = (batch, length, *space.shape)
        if space.dtype == np.uint8:
            data[key] = rng.integers(0, 256, shape, dtype=np.uint8)
        else:
            data[key] = rng.normal(size=shape).astype(np.float32)
    action_dim = int(act_space.shape[0])
    if act_space.discrete:
        data["action"] = np.eye(action_dim, dtype=np.float32)[rng.integers(0, action_dim, (batch, length))]
    else:
        data["action"] = rng.uniform(-1, 1, (batch, length, action_dim)).astype(np.float32)
    data["reward"] = rng.normal(size=(batch, length)).astype(np.float32)
    data["is_first"] = np.zeros((batch, length), bool)
    data["is_first"][:, 0] = True
    data["is_last"] = np.zeros((batch, length), bool)
    data["is_terminal"] = np.zeros((batch, length), bool)
    return data


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, warmup: int, device: torch.device, warmup_s: dict | None = None, name: str = "") -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls;
    the warm-up's seconds (compilation included) go to ``warmup_s[name]``."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    _sync(device)
    if warmup_s is not None:
        warmup_s[name] = time.perf_counter() - start
        log(f"  warm-up {warmup_s[name]:.1f} s")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    log(f"  {statistics.median(times):.4f} s median of {repeats}")
    return statistics.median(times)


def env_steps_per_s(env_fns, parallel: bool, steps: int) -> float:
    with envs.VectorEnv(env_fns, parallel=parallel) as vec:
        vec.reset()
        count, act_space = vec.num_envs, vec.act_space
        rng = np.random.default_rng(0)
        actions = [act_space.sample(rng) for _ in range(count)]
        start = time.perf_counter()
        for _ in range(steps):
            vec.step(actions)
        return steps * count / (time.perf_counter() - start)


def profile_update(agent, batch, top: int, device: torch.device) -> tuple[int, list[dict]]:
    """One full update under ``torch.profiler``: the number of ATen operators
    it dispatched (nested calls included; a proxy for launch overhead that a
    CPU can measure) and the ``top`` operators by self time (CUDA time on a GPU)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        agent.update(batch)
        _sync(device)
    averages = prof.key_averages()
    dispatched = sum(e.count for e in averages if e.key.startswith("aten::"))
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in averages if getattr(e, attr) > 0]
    total = sum(getattr(e, attr) for e in events)
    events.sort(key=lambda e: getattr(e, attr), reverse=True)
    return dispatched, [
        {"op": e.key, "calls": e.count, "self_s": getattr(e, attr) / 1e6, "share": getattr(e, attr) / total}
        for e in events[:top]
    ]


def training_frames(cfg, update_s: float) -> dict[str, float]:
    """Environment frames one update pays for at the composed train ratio, and
    the training speed in frames per second that updates of ``update_s``
    seconds allow when acting and environment steps are hidden behind them
    (``fast.overlap_env``): the bound the update sets on a training run."""
    algo = cfg.algo
    trained_steps = int(algo.batch_size) * (int(algo.batch_length) - int(algo.world_model.get("replay_context", 0)))
    frames = trained_steps / float(algo.train_ratio) * int(cfg.env.get("action_repeat", 1))
    return {"frames_per_update": frames, "train_frames_per_s_update_bound": frames / update_s}


def batch_shape(cfg) -> dict[str, int | None]:
    """Sequences, steps and imagination horizon as composed (overrides included)."""
    behavior = cfg.algo.get("behavior")
    return {
        "batch": int(cfg.algo.batch_size),
        "length": int(cfg.algo.batch_length),
        "horizon": int(behavior.horizon) if behavior is not None else None,
    }


def parameter_counts(agent) -> dict[str, float]:
    """Millions of parameters the optimisers train, and of frozen copies (the slow critic)."""
    trainable = sum(p.numel() for p in agent.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in agent.parameters() if not p.requires_grad)
    return {"trainable_parameters_m": round(trainable / 1e6, 3), "frozen_parameters_m": round(frozen / 1e6, 3)}


def build(args, overrides) -> tuple:
    """``(cfg, device, agent, train_fns, obs_space, act_space)`` as training builds them."""
    cfg = compose_config(
        args.size, args.batch, args.length, args.horizon, args.device, args.env, [*args.overrides, *overrides]
    )
    device = resolve_device(str(cfg.device))
    train_fns, eval_fn, _ = env_setup(cfg.env, int(cfg.seed))
    obs_space, act_space = env_spaces(eval_fn)
    torch.manual_seed(0)
    return cfg, device, build_agent(cfg, obs_space, act_space, device), train_fns, obs_space, act_space


def size_label(args) -> str:
    """The model size measured: a ``model=`` override, else the experiment's own, else ``--size``."""
    chosen = {o.partition("=")[0]: o.partition("=")[2] for o in args.overrides}
    if "model" in chosen:
        return chosen["model"]
    return f"{chosen['experiment']}'s" if "experiment" in chosen else args.size


def measure(args) -> dict:
    cfg, device, agent, train_fns, obs_space, act_space = build(args, [f"fast.{item}" for item in args.fast_paths])
    settings = fast.settings_from(cfg, device)
    shape = batch_shape(cfg)
    size = size_label(args)
    log(f"{' '.join(args.overrides) or 'defaults'}, size {size}, batch {shape['batch']}x{shape['length']}, "
        f"horizon {shape['horizon']}, device {device}, {settings}")
    batch = synthetic_batch(obs_space, act_space, shape["batch"], shape["length"])
    wm = agent.world_model
    out = {
        "overrides": list(args.overrides),
        "size": size,
        **shape,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "fast_paths": settings,
        **parameter_counts(agent),
    }
    data = agent._tensors(batch)

    def model_step():
        with agent._autocast():
            loss, post, _, _ = agent._model_loss(data)
        agent._step(agent.model_opt, loss, list(wm.parameters()), agent.model_clip)
        return post

    log("world-model update")
    out["warmup_s"] = warmups = {}
    seconds = timed(model_step, args.repeats, args.warmup, device, warmups, "world_model")
    out["world_model_updates_per_s"] = 1 / seconds

    if agent.behavior is not None:
        with torch.no_grad(), agent._autocast():
            _, post, _, _ = agent._model_loss(data)
        start = flatten_states(post)
        start_cont = torch.ones(len(start["deter"]), device=device)
        replay = agent.replayed(data, post)

        def behavior_step():
            if agent.update_kind == "joint":
                with agent._autocast():
                    losses, _ = agent._behavior_loss(wm, start, start_cont, replay)
            else:
                losses, _ = agent._behavior_losses(start, start_cont)
            agent._behavior_step(losses)
            wm.zero_grad(set_to_none=True)

        log("behaviour update")
        seconds = timed(behavior_step, args.repeats, args.warmup, device, warmups, "behavior")
        out["behavior_updates_per_s"] = 1 / seconds
        out["imagined_states_per_s"] = len(start["deter"]) * shape["horizon"] / seconds

    log("full agent update")
    seconds = timed(lambda: agent.update(batch), args.repeats, args.warmup, device, warmups, "agent")
    out["agent_updates_per_s"] = 1 / seconds
    out["agent_update_s"] = seconds
    out.update(training_frames(cfg, seconds))
    log("profile of one full update")
    out["ops_per_update"], top = profile_update(agent, batch, args.profile, device)
    if args.profile > 0:
        out["profile"] = top

    log("policy step")
    obs = {k: v[:1, 0] for k, v in batch.items() if k not in ("action", "reward")}
    state = [None]

    def policy_step():
        _, state[0] = agent.act(obs, state[0], "train")

    out["policy_step_ms"] = 1000 * timed(policy_step, max(args.repeats, 20), args.warmup + 2, device)

    if args.env_steps > 0:
        log("environment steps")
        try:
            out["env_steps_per_s"] = env_steps_per_s(train_fns[:1], False, args.env_steps)
            if args.workers > 1:
                _, _, options = env_options(cfg.env)
                options.pop("seed", None)
                fns = envs.env_factories(cfg.env.suite, cfg.env.task, args.workers, seed=int(cfg.seed), **options)
                out["env_steps_per_s_workers"] = env_steps_per_s(fns, True, args.env_steps)
        except Exception as error:  # noqa: BLE001 -- a failing renderer must not cost the update timings above
            out["env_error"] = f"{type(error).__name__}: {error}"
            log(f"environment steps failed: {out['env_error']}")
        out["workers"] = args.workers
    if args.eval_episodes > 0:
        log(f"evaluation of {args.eval_episodes} episodes")
        out.update(eval_seconds(agent, cfg, args.eval_episodes))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return out


def eval_seconds(agent, cfg, episodes: int) -> dict:
    """Seconds of one evaluation of ``episodes`` episodes, one after another in
    one environment and in the layout training uses (``eval_envs``,
    ``eval_parallel``), each counted from building its environments."""
    _, eval_fn, _ = env_setup(cfg.env, int(cfg.seed))
    layouts = {"one_env": (1, False), "layout": eval_layout(cfg.env.suite, episodes, cfg.eval_envs, cfg.eval_parallel)}
    out = {"eval_layout": {"envs": layouts["layout"][0], "processes": layouts["layout"][1]}}
    for name, (count, parallel) in layouts.items():
        start = time.perf_counter()
        with eval_envs_factory(eval_fn, count, parallel)() as vector_env:
            built = time.perf_counter()
            evaluate_episodes(agent, vector_env, episodes)
        out[f"eval_s_{name}"] = time.perf_counter() - start
        out[f"eval_start_s_{name}"] = built - start
    return out


MODEL_SWITCHES = (
    "compile", "compile_update", "compile_behavior", "bf16", "channels_last", "fused_optim", "keep_memory",
)


def compared_switches(chosen: str) -> tuple[str, ...]:
    """The switches ``--compare`` times: all model-side ones, or a comma-separated few."""
    if chosen == "all":
        return MODEL_SWITCHES
    names = tuple(name.strip() for name in chosen.split(","))
    unknown = [name for name in names if name not in MODEL_SWITCHES]
    if unknown:
        raise SystemExit(f"--compare: unknown switch {unknown[0]!r}; allowed: all, or any of {', '.join(MODEL_SWITCHES)}")
    return names


def compare(args) -> dict:
    """Seconds per full agent update: every switch off (``plain``), then each
    model-side switch on alone (prefetch and overlap_env act in the loop)."""
    results = {}
    for name in ("plain", *compared_switches(args.compare)):
        switches = [f"fast.{s}={'true' if s == name else 'false'}" for s in fast.SWITCHES]
        cfg, device, agent, _, obs_space, act_space = build(args, switches)
        shape = batch_shape(cfg)
        batch = synthetic_batch(obs_space, act_space, shape["batch"], shape["length"])
        log(f"compare: {name}")
        start = time.perf_counter()
        agent.update(batch)
        first = time.perf_counter() - start
        seconds = timed(lambda: agent.update(batch), args.repeats, max(args.warmup - 1, 0), device)
        results[name] = {"agent_update_s": seconds, "first_update_s": first, "speedup": None}
    for result in results.values():
        result["speedup"] = results["plain"]["agent_update_s"] / result["agent_update_s"]
    return results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dreamer.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="Hydra overrides, as for train.py (algo=dreamerv1 model=xs algo.behavior.actor_grad=dynamics); "
        "they win over the options below",
    )
    parser.add_argument("--size", default="s", help="model size group (model=...): tiny, xs, s, m, l, xl, 12m, ...")
    parser.add_argument("--batch", type=int, default=16, help="sequences per update")
    parser.add_argument("--length", type=int, default=64, help="steps per sequence")
    parser.add_argument("--horizon", type=int, default=15, help="imagined steps")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls; the median is reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (compilation happens here)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--env", default="dmc:walker_walk", help="suite:task whose spaces shape the batch")
    parser.add_argument("--workers", type=int, default=2, help="parallel environment workers for env steps/s")
    parser.add_argument("--env-steps", type=int, default=200, help="steps per env timing (0: skip)")
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=0,
        metavar="N",
        help="also time an evaluation of N episodes in one environment and in the training layout (0: skip)",
    )
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="also list the N costliest operators")
    parser.add_argument(
        "--compare",
        nargs="?",
        const="all",
        metavar="SWITCHES",
        help=f"instead: time the full update with every fast path off, then with each of {', '.join(MODEL_SWITCHES)} "
        "on alone (or only those named, comma-separated: --compare bf16,fused_optim)",
    )
    parser.add_argument(
        "--fast-paths",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help=f"fast-path switches (auto | true | false): {', '.join(fast.SWITCHES)}; or threads=N",
    )
    # Overrides may come before, between or after the options (not straight
    # after --compare or --fast-paths, whose values they would be read as).
    return parser.parse_intermixed_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    for item in args.fast_paths:
        name = item.partition("=")[0]
        if name not in fast.SWITCHES + fast.OPTIONS:
            raise SystemExit(f"unknown fast path {name!r}; allowed: {', '.join(fast.SWITCHES + fast.OPTIONS)}")
    out = compare(args) if args.compare is not None else measure(args)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
