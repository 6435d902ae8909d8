"""The arithmetic floor of one world-model update on this machine.

Runs one world-model loss forward and backward as training builds it, records
every call of a layer with weights (convolutions, transposed convolutions,
linear layers) and its input shape, then times each distinct layer and shape
alone, forward and backward, under the update's own precision. The sum over
all calls is the time the update's arithmetic needs at the rate this CPU
reaches on those shapes; the rest of a measured update is element-wise work,
copies and overhead. Prints one JSON object.

    python scripts/bench_floor.py                       # size s, fast paths auto
    python scripts/bench_floor.py --size xs fast.bf16=false
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamer import bench

LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def layer_seconds(layer: nn.Module, shape: tuple, dtype: torch.dtype, autocast, repeats: int) -> float:
    """Median seconds of one forward and backward of ``layer`` on a random input."""
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        with autocast():
            out = layer(x)
        out.float().sum().backward()
        times.append(time.perf_counter() - start)
        layer.zero_grad(set_to_none=True)
    return sorted(times[1:])[len(times[1:]) // 2]


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.machine()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="train.py overrides, e.g. fast.bf16=false")
    args = parser.parse_args(argv)
    bench_args = bench.parse_args(["--size", args.size, "--env-steps", "0", *args.overrides])
    cfg, _, agent, _, obs_space, act_space = bench.build(bench_args, ["fast.compile_behavior=false"])
    shape = bench.batch_shape(cfg)
    data = agent._tensors(bench.synthetic_batch(obs_space, act_space, shape["batch"], shape["length"]))

    calls: collections.Counter = collections.Counter()
    dtypes: dict = {}

    def record(layer, inputs):
        calls[(layer, tuple(inputs[0].shape))] += 1
        dtypes[(layer, tuple(inputs[0].shape))] = inputs[0].dtype

    hooks = [m.register_forward_pre_hook(record) for m in agent.world_model.modules() if isinstance(m, LAYERS)]
    counter = FlopCounterMode(display=False)
    with counter:
        with agent._autocast():
            loss = agent._model_loss(data)[0]
        loss.backward()
    for hook in hooks:
        hook.remove()
    agent.zero_grad(set_to_none=True)

    by_kind: dict[str, float] = collections.defaultdict(float)
    for (layer, in_shape), count in calls.items():
        seconds = layer_seconds(layer, in_shape, dtypes[(layer, in_shape)], agent._autocast, args.repeats)
        by_kind[type(layer).__name__] += count * seconds
    flops = counter.get_total_flops()
    floor_s = sum(by_kind.values())
    out = {
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "size": args.size,
        "overrides": args.overrides,
        "bf16": agent.bf16,
        "world_model_tflop": flops / 1e12,
        "layer_calls": sum(calls.values()),
        "floor_s": floor_s,
        "floor_s_by_layer": dict(by_kind),
        "floor_tflop_per_s": flops / 1e12 / floor_s,
    }
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
