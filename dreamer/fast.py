"""Fast-path switches: what each does, how ``auto`` resolves per device, and applying them.

Every switch takes ``auto | true | false``; ``auto`` picks the value that
measured faster on that device type (see docs/performance.md):

- ``compile``: torch.compile (``dynamic=False``) of the RSSM's per-step
  functions, which the observe and imagine loops call dozens of times per
  update. Each distinct batch shape (acting, filtering, imagining) gets its
  own compiled graph; compiled artefacts are cached on disk.
- ``compile_update``: torch.compile (``fullgraph=True``) of the whole
  world-model loss and the whole behaviour loss (observe loop, imagination
  rollout, actor and critic losses), with their backward passes, as one
  graph each: no graph breaks and no host synchronisation inside.
- ``compile_behavior``: the same for the behaviour loss alone (on whenever
  ``compile_update`` is); on CPU the behaviour half gains from compiling
  while the convolution-bound world-model half does not.
- ``bf16``: bfloat16 autocast for the forward passes; losses stay float32.
- ``channels_last``: NHWC memory layout for the convolution weights.
- ``fused_optim``: fused single-kernel Adam instead of the foreach one (Adam presets; LaProp always runs foreach).
- ``prefetch``: sample the next replay batches in a background thread
  (pinned memory and non-blocking copies on CUDA).
- ``cuda_graphs``: capture the compiled functions as CUDA graphs
  (torch.compile ``mode='reduce-overhead'``); CUDA only, needs ``compile``,
  ``compile_update`` or ``compile_behavior``.
- ``overlap_env``: let the environment workers step while the agent trains.
- ``keep_memory``: glibc's allocator keeps freed memory for the next
  allocation instead of handing large blocks back to the system (see
  :func:`keep_freed_memory`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import shutil
import sys
from pathlib import Path

import torch
from torch.utils._pytree import tree_map_only

SWITCHES = (
    "compile", "compile_update", "compile_behavior", "bf16", "channels_last", "fused_optim", "prefetch", "cuda_graphs",
    "overlap_env", "keep_memory",
)
COMPILE_SWITCHES = ("compile", "compile_update", "compile_behavior")  # the switches torch.compile serves
OPTIONS = ("threads", "compile_cache")  # the other keys of the config's fast block
VALUES = ("auto", True, False)


def cpu_has_bfloat16_units() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16)."""
    try:
        capabilities = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):
        return False
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def has_cpp_compiler() -> bool:
    """Whether torch.compile can build CPU kernels here (it needs a C++ compiler)."""
    return any(shutil.which(name) for name in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if name)


# What ``auto`` means: (on CPU, on CUDA), a bool or a function of the machine.
# The CPU column follows dreamer.bench on 2-core CPUs (docs/performance.md):
# compile and channels_last gained under 15 % at XS and nothing at S (compile
# also costs a first-run compilation), fused Adam 5-15 %. The CUDA column is
# the usual GPU choice, not yet measured here.
AUTO: dict[str, tuple] = {
    "compile": (False, True),
    # On an AVX2 EPYC the quickstart's world-model update took 2.01 s compiled
    # against 2.06 s eager (its convolutions dominate), after compiling for
    # about 9 minutes. On CUDA it is the launch-overhead fix, but it has not
    # been measured on a GPU, so auto keeps it off there too.
    "compile_update": (False, False),
    # The behaviour loss (GRU steps, MLP heads, element-wise returns) is bound
    # by operator overhead, not arithmetic: compiled, it took 0.17-0.18 s
    # against 0.31-0.36 s eager at the quickstart's size and 0.91-0.98 s
    # against 1.37-1.68 s at size s on the AMX Xeon (docs/performance.md),
    # for one to three minutes of first-run compilation (seconds once cached).
    # On the Zen 4 it gained for the 2024 agent and, once the sequential update
    # took one backward pass with the model frozen, matched or beat eager for
    # the 2023 agent and DreamerV1, which backpropagate through the model.
    "compile_behavior": (has_cpp_compiler, False),
    # With bfloat16 units (AMD Zen 4, here) bf16 took the 2024 agent's update at
    # size s from 13.9 s to 6.6 s and gained at every size down to tiny; without
    # them (the Intel Xeon in docs/performance.md) every op is emulated: 0.4x.
    "bf16": (cpu_has_bfloat16_units, True),
    "channels_last": (False, True),
    "fused_optim": (True, True),
    "prefetch": (False, True),
    "cuda_graphs": (False, False),
    "overlap_env": (True, True),
    # 22 s -> 11 s per world-model update at size s on 2 cores (docs/performance.md);
    # on CUDA the host allocates little, and it has not been measured there.
    "keep_memory": (True, False),
}
CUDA_ONLY = ("cuda_graphs",)


def auto_value(name: str, device: torch.device) -> bool:
    """What ``auto`` resolves to for switch ``name`` on ``device`` (on this machine)."""
    value = AUTO[name][device.type == "cuda"]
    return bool(value()) if callable(value) else value


def resolve(name: str, value, device: torch.device) -> bool:
    """The boolean a switch takes on ``device``; ``value`` is auto, true or false."""
    if name not in SWITCHES:
        raise ValueError(f"unknown fast path {name!r}; allowed: {', '.join(SWITCHES)}")
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if value not in VALUES:
        raise ValueError(f"fast.{name}={value!r}; allowed: auto, true, false")
    on = auto_value(name, device) if value == "auto" else bool(value)
    if on and name in CUDA_ONLY and device.type != "cuda":
        print(f"[dreamer] fast.{name} needs CUDA; it is off on {device}", file=sys.stderr)
        return False
    return on


def settings_from(cfg, device: torch.device) -> dict[str, bool]:
    """Resolved switches from the config's ``fast`` block (missing keys: auto)."""
    block = cfg.get("fast") or {}
    unknown = set(block) - set(SWITCHES) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} in fast; allowed: {', '.join(SWITCHES + OPTIONS)}")
    settings = {name: resolve(name, block.get(name, "auto"), device) for name in SWITCHES}
    if settings["cuda_graphs"] and not any(settings[name] for name in COMPILE_SWITCHES):
        raise ValueError(
            "fast.cuda_graphs=true needs fast.compile, fast.compile_update or fast.compile_behavior on"
            " (the graphs are captured by torch.compile)"
        )
    return settings


def set_threads(threads: int) -> None:
    """Intra-op threads for this process (0 keeps torch's default: one per core)."""
    if threads < 0:
        raise ValueError(f"fast.threads={threads} must be >= 0")
    if threads:
        torch.set_num_threads(threads)


# glibc mallopt parameters and their defaults (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_kept = False


def keep_freed_memory(on: bool) -> bool:
    """Make glibc keep freed memory in the process for reuse (``on``), or
    restore its defaults. Returns whether the setting took effect.

    By default glibc serves every block over 128 KiB-32 MiB with a fresh
    ``mmap`` and unmaps it on free, so each of an update's activation tensors
    (up to a gigabyte at 64 x 64 pixels) arrives as new pages the kernel must
    fault in and zero, and half of the update's time went to the kernel.
    With ``mmap`` off for allocations and trimming off, freed blocks go back
    to the heap and the next update reuses them. The process keeps its peak
    memory instead of returning it between updates. A no-op (False) where
    the C library is not glibc.
    """
    global _kept
    if not on and not _kept:
        return False  # never changed in this process: leave glibc's own dynamic defaults
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if on:
        done = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    else:
        done = mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX) == 1 and mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD) == 1
    _kept = on and done
    return done


def enable_compile_cache(directory: str | Path | None) -> None:
    """Keep compiled kernels and FX graphs on disk so later runs skip most compilation.

    ``None`` keeps torch's default location. Called when a run is built, never at import.
    """
    if directory is not None:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(directory).expanduser()))
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True


def owned_outputs(fn):
    """``fn`` with copies of its tensor outputs, for functions captured as CUDA graphs.

    A CUDA-graph function's outputs live in the graphs' memory pool, and the
    next call that starts a new generation (any call with gradients off, or
    one after a backward pass) reuses that memory while the caller may still
    hold them: the policy state ``act`` feeds back, a step's output that the
    next step reads, the posterior the behaviour loss starts from. The copies
    are the caller's own; ``clone`` passes gradients through.
    """

    @functools.wraps(fn)
    def owned(*args, **kwargs):
        return tree_map_only(torch.Tensor, torch.Tensor.clone, fn(*args, **kwargs))

    owned.owns_outputs = True
    return owned


def _compiled(fn, cuda_graphs: bool, **options):
    if not cuda_graphs:
        return torch.compile(fn, dynamic=False, **options)
    return owned_outputs(torch.compile(fn, dynamic=False, mode="reduce-overhead", **options))


def compile_rssm_steps(rssm: torch.nn.Module, cuda_graphs: bool = False) -> None:
    """Replace the RSSM's per-step functions with compiled ones, in place.

    The instance attributes shadow the methods, so the parameters and the
    state dict are untouched and the eager code stays the reference.
    """
    for name in ("_core", "_posterior", "_prior"):
        eager = getattr(type(rssm), name).__get__(rssm)
        setattr(rssm, name, _compiled(eager, cuda_graphs))


def compile_update(agent, cuda_graphs: bool = False, world_model: bool = True) -> None:
    """Replace the agent's world-model (if ``world_model``) and behaviour loss
    callables with whole-graph compiled ones, in place (see
    :class:`dreamer.agent.Agent`).

    ``fullgraph=True`` makes a graph break an error instead of a silent
    fallback, so the update stays one graph per loss, forward and backward.
    """
    if world_model:
        agent._model_loss = _compiled(agent.world_model.loss, cuda_graphs, fullgraph=True)
    if agent.behavior is not None:
        agent._behavior_loss = _compiled(agent.behavior.loss, cuda_graphs, fullgraph=True)


def apply(agent, settings: dict[str, bool], compile_cache: str | Path | None = None) -> None:
    """Apply the model-side switches to a built agent (bf16 and the optimiser
    kernels are constructor arguments of the agent; prefetch and overlap_env
    belong to the loop)."""
    if settings["channels_last"]:
        agent.world_model.to(memory_format=torch.channels_last)
    compiled = [name for name in COMPILE_SWITCHES if settings[name]]
    if agent.behavior is None and "compile_behavior" in compiled:
        compiled.remove("compile_behavior")  # a planner agent has no behaviour loss to compile
    if compiled:
        enable_compile_cache(compile_cache)
        # The first update then pauses for minutes on a few CPU cores; say why.
        names = ", ".join(f"fast.{name}" for name in compiled)
        print(f"[dreamer] {names}: the first update compiles (minutes on a few CPU cores, cached on disk)",
              file=sys.stderr)
    if settings["compile"]:
        compile_rssm_steps(agent.world_model.rssm, settings["cuda_graphs"])
    if settings["compile_update"] or settings["compile_behavior"]:
        compile_update(agent, settings["cuda_graphs"], world_model=settings["compile_update"])


def loop_settings(cfg, device: torch.device) -> dict[str, bool]:
    """The loop-side switches as :class:`dreamer.loop.LoopSettings` arguments."""
    settings = settings_from(cfg, device)
    return {
        "prefetch": settings["prefetch"],
        "pin_memory": settings["prefetch"] and device.type == "cuda",
        "overlap_env": settings["overlap_env"],
    }
