"""Every run setting checked before anything is built.

A sweep of 60 jobs with one typo should fail in a second with one line that
names the key, the bad value and what is allowed, not after minutes of
rendering or with a traceback from deep inside the loop. ``check(cfg)``
collects every problem of a composed config and raises one
:class:`ConfigError` listing them all.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A setting has a value the run cannot use."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# (key, test, what is allowed); a missing optional key is skipped.
Rule = tuple[str, Callable[[Any], bool], str]
RULES: list[Rule] = [
    ("steps", lambda v: _integer(v) and v > 0, "an integer > 0 (frames)"),
    ("prefill", lambda v: _integer(v) and v >= 0, "an integer >= 0 (frames)"),
    ("replay_capacity", lambda v: _integer(v) and v > 0, "an integer > 0 (steps)"),
    ("replay_chunk", lambda v: _integer(v) and v > 0, "an integer > 0 (steps)"),
    ("eval_every", lambda v: _integer(v) and v >= 0, "an integer >= 0 (frames; 0: never)"),
    ("eval_episodes", lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    ("eval_envs", lambda v: v == "auto" or (_integer(v) and v > 0), "auto or an integer > 0"),
    ("eval_parallel", lambda v: v == "auto" or isinstance(v, bool), "auto, true or false"),
    ("log_every", lambda v: _integer(v) and v > 0, "an integer > 0 (frames)"),
    ("report_every", lambda v: _integer(v) and v >= 0, "an integer >= 0 (frames; 0: never)"),
    ("checkpoint_every", lambda v: _number(v) and v > 0, "a number > 0 (seconds)"),
    ("max_nonfinite_updates", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("seed", _integer, "an integer"),
    ("logger.wandb_mode", lambda v: v in ("online", "offline", "disabled"), "online, offline or disabled"),
    ("objective.metric", lambda v: isinstance(v, str) and v != "", "a scalar name of metrics.jsonl, e.g. eval/score"),
    ("objective.last", lambda v: _integer(v) and v > 0, "an integer > 0 (logged values averaged)"),
    ("env.num_envs", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("env.action_repeat", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("env.time_limit", lambda v: v is None or (_integer(v) and v > 0), "an integer > 0 (frames) or null"),
    ("env.size", lambda v: isinstance(v, list) and len(v) == 2 and all(_integer(s) and s > 0 for s in v),
     "[height, width], two integers > 0"),
    ("algo.batch_size", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("algo.batch_length", lambda v: _integer(v) and v > 1, "an integer > 1"),
    ("algo.train_ratio", lambda v: _number(v) and v > 0, "a number > 0 (replayed steps per agent step)"),
    ("algo.pretrain", lambda v: _integer(v) and v >= 0, "an integer >= 0 (updates)"),
    ("algo.num_envs", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("algo.expl_noise", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("algo.behavior.horizon", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("algo.behavior.gamma", lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    ("algo.behavior.lam", lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    ("algo.behavior.entropy", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("algo.planner.horizon", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("algo.planner.candidates", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("algo.planner.iterations", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("model.deter", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("model.hidden", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("model.stoch", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("model.cnn_depth", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("model.mlp_units", lambda v: _integer(v) and v > 0, "an integer > 0"),
    ("model.mlp_layers", lambda v: _integer(v) and v >= 0, "an integer >= 0"),
]
OPTIMISER_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("lr", lambda v: _number(v) and v > 0, "a number > 0"),
    ("eps", lambda v: _number(v) and v > 0, "a number > 0"),
    ("clip", lambda v: _number(v) and v >= 0, "a number >= 0 (0: no clipping)"),
]


def _select(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def problems(cfg: DictConfig) -> list[str]:
    """One line per bad setting of a composed run config: key, value, what is allowed."""
    found = []
    for key, test, allowed in RULES:
        value = _select(cfg, key)
        if value is not None and not test(value):
            found.append(f"{key}={value!r}: must be {allowed}")
    for part in (OmegaConf.select(cfg, "algo.optim") or {}):
        for name, test, allowed in OPTIMISER_RULES:
            key = f"algo.optim.{part}.{name}"
            value = _select(cfg, key)
            if value is not None and not test(value):
                found.append(f"{key}={value!r}: must be {allowed}")
    if _select(cfg, "logger.wandb") and importlib.util.find_spec("wandb") is None:
        found.append("logger.wandb=true needs the wandb package: pip install -e '.[wandb]' (or pip install wandb)")
    if found:  # the relations below assume each value is of the right kind
        return found
    length = _select(cfg, "algo.batch_length")
    context = _select(cfg, "algo.world_model.replay_context") or 0
    if length is not None and context >= length:
        found.append(f"algo.world_model.replay_context={context} must be < algo.batch_length={length}")
    capacity, repeat = _select(cfg, "replay_capacity"), _select(cfg, "env.action_repeat") or 1
    if capacity is not None and length is not None and capacity < length:
        found.append(f"replay_capacity={capacity} must hold one sequence of algo.batch_length={length} steps")
    prefill, steps = _select(cfg, "prefill"), _select(cfg, "steps")
    # A run that only collects random actions (prefill >= steps) measures the random policy; it trains nothing.
    if capacity is not None and prefill is not None and prefill < steps and prefill // repeat > capacity:
        found.append(
            f"prefill={prefill} frames ({prefill // repeat} agent steps) does not fit replay_capacity={capacity} steps"
        )
    found += _image_size_problems(cfg)
    policy = _select(cfg, "algo.policy")
    if policy not in ("actor", "planner"):
        found.append(f"algo.policy={policy!r}: must be actor or planner")
    elif _select(cfg, f"algo.{'behavior' if policy == 'actor' else 'planner'}") is None:
        found.append(f"algo.policy={policy} needs the algo.{'behavior' if policy == 'actor' else 'planner'} settings")
    return found


def _image_size_problems(cfg: DictConfig) -> list[str]:
    """env.size must be one the image encoder and decoder can take."""
    from world_model.networks import DEFAULT_MULTS, VALID_IMAGE_SIZE, check_image_size

    size = _select(cfg, "env.size")
    if size is None or _select(cfg, "env.image") is False:
        return []
    model = {**(_select(cfg, "model") or {}), **(_select(cfg, "algo.world_model") or {})}
    if model.get("image_resize") == "valid":
        if tuple(size) != VALID_IMAGE_SIZE:
            return [f"env.size={size}: image_resize=valid (this preset's reference layout) takes 64x64 images only"]
        return []
    try:
        check_image_size(*size, len(model.get("cnn_mults") or DEFAULT_MULTS))
    except ValueError as error:
        return [f"env.size={size}: {error}"]
    return []


def check(cfg: DictConfig) -> None:
    """Raise one :class:`ConfigError` naming every bad setting of ``cfg``."""
    found = problems(cfg)
    if found:
        raise ConfigError("invalid settings: " + "; ".join(found))
