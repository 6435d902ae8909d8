"""Several processes, one run: data-parallel updates with DistributedDataParallel.

A run becomes distributed when a launcher starts it as several ranks:
``torchrun`` (which sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``) or ``srun`` with one task per GPU (``SLURM_PROCID``,
``SLURM_LOCALID``, ``SLURM_STEP_NUM_TASKS``; the master is the first host of
the job's node list). Without either, :func:`detect_launch` returns None and
a run is an ordinary single process with no process group.

Every rank steps its own environments and fills its own replay, samples its
own ``batch_size`` sequences, and takes the same optimiser steps on gradients
averaged over ranks: the effective batch is ``world_size * batch_size``.
Acting uses the plain modules, so stepping environments never waits on
another rank; the only collectives are inside :meth:`Agent.update` and the
small control flags of :meth:`Distributed.any`.
"""

from __future__ import annotations

import datetime
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

BACKENDS = ("auto", "nccl", "gloo")


@dataclass(frozen=True)
class Launch:
    """Where this process sits among the ranks its launcher started."""

    rank: int
    local_rank: int
    world_size: int
    master_addr: str
    master_port: int


def detect_launch(environ: Mapping[str, str] = os.environ) -> Launch | None:
    """The launch from torchrun's or srun's environment variables; None for a single process."""
    if "WORLD_SIZE" in environ:
        world_size = int(environ["WORLD_SIZE"])
        if world_size <= 1:
            return None
        return Launch(
            rank=int(environ["RANK"]),
            local_rank=int(environ.get("LOCAL_RANK", 0)),
            world_size=world_size,
            master_addr=environ.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(environ.get("MASTER_PORT", 29500)),
        )
    # SLURM_STEP_NUM_TASKS is set inside an srun step only, so a batch script
    # that runs python directly in a many-task allocation stays single-process.
    tasks = int(environ.get("SLURM_STEP_NUM_TASKS", 1))
    if tasks <= 1 or "SLURM_PROCID" not in environ:
        return None
    job_id = environ.get("SLURM_JOB_ID", "0")
    return Launch(
        rank=int(environ["SLURM_PROCID"]),
        local_rank=int(environ.get("SLURM_LOCALID", 0)),
        world_size=tasks,
        master_addr=first_host(environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST", "")),
        # Every task derives the same port from the job id; MASTER_PORT overrides it.
        master_port=int(environ.get("MASTER_PORT", random.Random(job_id).randint(20_000, 60_000))),
    )


def first_host(node_list: str) -> str:
    """The first host of a Slurm node list: ``gpu[07-09,12],cpu1`` -> ``gpu07``."""
    if not node_list:
        return "127.0.0.1"
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", node_list)
    prefix, ranges = match.group(1), match.group(2)
    if ranges is None:
        return prefix
    return prefix + re.split(r"[,-]", ranges)[0]


class NullLogger:
    """The logger of ranks other than 0: accepts everything, writes nothing."""

    def scalar(self, name, value) -> None:
        pass

    def scalars(self, metrics, prefix: str = "") -> None:
        pass

    def video(self, name, frames) -> None:
        pass

    def write(self, step: int) -> dict:
        return {}

    def close(self) -> None:
        pass


class _Dispatch(nn.Module):
    """Holds a module's parameters for DDP; its forward calls any loss function.

    The agent trains through ``world_model.loss`` and ``behavior.loss``, not
    through ``forward``; calling them inside a DDP forward is what arms DDP's
    gradient hooks for the backward pass that follows.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, fn: Callable, *args, **kwargs):
        return fn(*args, **kwargs)


class GradientSync:
    """Routes an agent's losses through DDP and makes its skip decisions collective.

    One DDP wrapper per optimiser (world model, actor, critic), so each
    averages exactly the gradients its optimiser steps on, whether the
    backward pass that makes them serves one optimiser or several. The agent's current loss callables are wrapped, not
    replaced, so compiled losses keep working.
    """

    def __init__(self, agent: nn.Module, any_rank: Callable[..., tuple[bool, ...]], bucket_cap_mb: float = 25.0):
        def wrap(module):
            # device_ids=None: inputs are already on the module's device; the buffers are
            # constants or rank-local statistics, so they are not broadcast on every forward.
            return DistributedDataParallel(_Dispatch(module), bucket_cap_mb=bucket_cap_mb, forward_sync_buffers=False)

        self._any = any_rank
        self._local_finite = agent._all_finite
        self.world_model = wrap(agent.world_model)
        model_loss = agent._model_loss
        agent._model_loss = lambda data: self.world_model(model_loss, data)
        if agent.behavior is not None:
            self.actor, self.critic = wrap(agent.behavior.actor), wrap(agent.behavior.critic)
            behavior_loss = agent._behavior_loss
            agent._behavior_loss = lambda *args: self.actor(self.critic, behavior_loss, *args)
        agent._all_finite = self.all_finite

    def all_finite(self, tensors) -> bool:
        """True only if every rank's tensors are finite, so all ranks skip or step together."""
        return not self._any(not self._local_finite(tensors))[0]


class Distributed:
    """This rank's process group, device and control-plane agreement.

    Args:
        launch: from :func:`detect_launch`.
        device: the run's ``device`` setting; ``auto`` or ``cuda`` become
            ``cuda:LOCAL_RANK`` when CUDA is available.
        backend: ``auto`` (nccl on CUDA, gloo on CPU), ``nccl`` or ``gloo``.
        timeout: seconds a collective may wait for the other ranks before
            the run fails instead of hanging.
    """

    def __init__(self, launch: Launch, device: str = "auto", backend: str = "auto", timeout: float = 600.0):
        if backend not in BACKENDS:
            raise ValueError(f"distributed.backend={backend!r}; allowed: {', '.join(BACKENDS)}")
        self.launch = launch
        self.rank, self.world_size = launch.rank, launch.world_size
        self.device = self._device(device, launch.local_rank)
        if backend == "auto":
            backend = "nccl" if self.device.type == "cuda" else "gloo"
        self.backend = backend
        self.timeout = datetime.timedelta(seconds=timeout)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_process_group(
            backend,
            init_method=f"tcp://{launch.master_addr}:{launch.master_port}",
            rank=launch.rank,
            world_size=launch.world_size,
            timeout=self.timeout,
        )
        # Control flags travel on CPU so that agreeing on them never waits for the GPU.
        self._control = dist.new_group(backend="gloo", timeout=self.timeout) if backend != "gloo" else None

    @staticmethod
    def _device(name: str, local_rank: int) -> torch.device:
        if name in ("auto", "cuda") and torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if name == "cuda":
            raise ValueError("device=cuda was requested but CUDA is not available; use device=auto or device=cpu")
        if name in ("auto", "cpu"):
            return torch.device("cpu")
        raise ValueError(
            f"device={name!r} with several ranks; allowed: auto, cpu, cuda (rank k uses cuda:LOCAL_RANK)"
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """For each flag, whether it is set on any rank (one small all-reduce)."""
        values = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32)
        dist.all_reduce(values, op=dist.ReduceOp.MAX, group=self._control)
        return tuple(bool(v) for v in values.tolist())

    def from_main(self, value):
        """Rank 0's ``value`` (any picklable object) on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self._control)
        return box[0]

    def setup_agent(self, agent: nn.Module) -> None:
        """Copy rank 0's agent to every rank and route the agent's updates through DDP."""
        for tensor in agent.state_dict().values():
            dist.broadcast(tensor, src=0)
        GradientSync(agent, self.any)

    def barrier(self) -> None:
        """Wait for every rank, failing after ``timeout`` rather than hanging."""
        dist.monitored_barrier(group=self._control, timeout=self.timeout)

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def replay_dir(run_dir: str | Path, rank: int) -> Path:
    """``replay/`` for rank 0 (so single-process runs and resumes agree), ``replay/rank<k>`` for the others."""
    base = Path(run_dir) / "replay"
    return base / f"rank{rank}" if rank else base


def run_trainer(trainer, ranks: Distributed | None):
    """``trainer.run()``; with several ranks, wait for all of them and leave the process group."""
    if ranks is None:
        return trainer.run()
    try:
        counters = trainer.run()
        # Rank 0 may still be writing the checkpoint; nobody leaves before it is done.
        ranks.barrier()
        return counters
    finally:
        ranks.close()
