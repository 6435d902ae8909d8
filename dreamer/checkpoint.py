"""Atomic checkpoints that refuse to load into an incompatible configuration.

A checkpoint holds the agent (modules and optimisers), the loop's counters,
every random number generator the run uses, and the slice of the config that
fixes tensor shapes and algorithm choices. It is written to a temporary file
and renamed, so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit this configuration."""


def save(path: str | Path, payload: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint: {error}") from error


def rng_state(generator: np.random.Generator) -> dict[str, Any]:
    """RNG states as plain containers, loadable with ``weights_only=True``."""
    state = {
        "python": random.getstate(),
        "numpy": generator.bit_generator.state,
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generator: np.random.Generator) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    generator.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, so config differences can be named by key."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def check_compatible(saved: dict[str, Any], current: dict[str, Any], path: str | Path) -> None:
    """Raise with every differing key if the saved config slice differs from the current one."""
    old, new = flatten(saved), flatten(current)
    differences = [
        f"  {key}: checkpoint has {old.get(key, '<missing>')!r}, this run has {new.get(key, '<missing>')!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key, "<missing>") != new.get(key, "<missing>")
    ]
    if differences:
        raise CheckpointError(
            f"checkpoint {path} was written by an incompatible configuration:\n"
            + "\n".join(differences)
            + "\nUse a new run directory (hydra.run.dir=...) or restore these settings."
        )
