"""``make_env``: one entry point that builds any suite with its standard wrappers."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Sequence

from envs.base import Env
from envs.wrappers import ActionRepeat, ResizeImage, TimeLimit


def make_dmc(
    task: str,
    size: Sequence[int] = (64, 64),
    action_repeat: int = 2,
    time_limit: int | None = 1000,
    seed: int = 0,
    camera: int | None = None,
    image: bool = True,
    proprio: bool = False,
    shadow_size: int = 512,
) -> Env:
    """DeepMind Control: 1000 frames (500 agent steps) per episode by default."""
    from envs.dmc import DMC

    env = DMC(task, tuple(size), camera, seed, image, proprio, shadow_size)
    return _standard_wrappers(env, action_repeat, time_limit, None)


def make_gym(
    task: str,
    size: Sequence[int] = (64, 64),
    action_repeat: int = 1,
    time_limit: int | None = None,
    seed: int = 0,
    image: bool = False,
) -> Env:
    """Gymnasium: vector observations by default, pixels with ``image=True``."""
    from envs.gym_env import GymEnv

    env = GymEnv(task, seed, image)
    return _standard_wrappers(env, action_repeat, time_limit, size)


def make_atari(
    task: str,
    size: Sequence[int] = (64, 64),
    action_repeat: int = 4,
    time_limit: int | None = 108_000,
    seed: int = 0,
    sticky: float = 0.25,
    grayscale: bool = False,
    full_action_space: bool = False,
    noops: int = 0,
    terminal_on_life_loss: bool = False,
) -> Env:
    """Atari: sticky actions, frame skip 4 with max-pooling, 108,000 frames."""
    from envs.atari import Atari

    env = Atari(task, seed, sticky, grayscale, full_action_space, noops, terminal_on_life_loss)
    return _standard_wrappers(env, action_repeat, time_limit, size, max_pool=True)


def make_toy(
    task: str,
    size: int | Sequence[int] = (64, 64),
    action_repeat: int = 1,
    time_limit: int | None = 50,
    seed: int = 0,
) -> Env:
    """The built-in toy task: 50 steps per episode by default."""
    from envs.toy import ToyReach

    env = ToyReach(task, size if isinstance(size, int) else tuple(size), seed)
    return _standard_wrappers(env, action_repeat, time_limit, None)


SUITES: dict[str, Callable[..., Env]] = {
    "dmc": make_dmc,
    "gym": make_gym,
    "atari": make_atari,
    "toy": make_toy,
}


def make_env(suite: str, task: str, imports: Sequence[str] = (), **options) -> Env:
    """Build ``task`` of ``suite`` with the suite's standard wrappers.

    ``imports`` names modules to import first, for example the module that
    registers a custom Gymnasium id. The remaining ``options`` are the keyword
    arguments of the suite's builder (``make_dmc``, ``make_gym``,
    ``make_atari``, ``make_toy``); an unknown suite, task or option raises a
    ValueError that lists the valid ones.
    """
    if suite not in SUITES:
        raise ValueError(f"Unknown suite {suite!r}; valid suites: {', '.join(SUITES)}")
    builder = SUITES[suite]
    allowed = [name for name in inspect.signature(builder).parameters if name != "task"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown option(s) {unknown} for suite {suite!r}; valid options: {', '.join(allowed)}")
    for module in [imports] if isinstance(imports, str) else imports:
        importlib.import_module(module)
    return builder(task, **options)


def env_factories(
    suite: str, task: str, num_envs: int, seed: int = 0, rank: int = 0, **options
) -> list[Callable[[], Env]]:
    """Picklable factories for ``num_envs`` workers of process ``rank``.

    Worker ``i`` gets seed ``seed + rank * num_envs + i``, so workers and
    processes are distinct and runs are reproducible.
    """
    return [
        functools.partial(make_env, suite, task, seed=seed + rank * num_envs + index, **options)
        for index in range(num_envs)
    ]


# Evaluation environment i gets the evaluation seed plus this times i: apart
# from the training workers' seeds and from each other's.
EVAL_SEED_STRIDE = 1000


def eval_factories(env_fn: Callable[[], Env], count: int) -> list[Callable[[], Env]]:
    """``count`` factories of ``env_fn``'s environment for episodes run side by
    side: the first keeps ``env_fn``'s seed, so its first episode is the one a
    single evaluation environment would run, and factory ``i`` adds
    ``i * EVAL_SEED_STRIDE``. A factory without a ``seed`` keyword is repeated."""
    if count < 1:
        raise ValueError(f"eval_factories needs count >= 1, got {count}")
    if not (isinstance(env_fn, functools.partial) and "seed" in env_fn.keywords):
        return [env_fn] * count
    seed = env_fn.keywords["seed"]
    return [functools.partial(env_fn, seed=seed + i * EVAL_SEED_STRIDE) for i in range(count)]


def _standard_wrappers(
    env: Env,
    action_repeat: int,
    time_limit: int | None,
    size: Sequence[int] | None,
    max_pool: bool = False,
) -> Env:
    if time_limit:
        env = TimeLimit(env, time_limit)
    if action_repeat != 1 or max_pool:
        env = ActionRepeat(env, action_repeat, max_pool)
    if size is not None and "image" in env.obs_space:
        env = ResizeImage(env, tuple(size))
    return env
