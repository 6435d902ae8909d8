"""Parameter counts per model size and the time of one world-model update.

Prints one JSON object: ``params`` (size -> parameter count, for 64x64x3
images and a 6-dim action, DMC-like) and ``updates`` (one entry per timed
size and variant: seconds per update of forward + backward + Adam step on a
batch of ``--batch`` x ``--length`` random sequences).

    python scripts/bench_world_model.py --sizes xs s --variants plain bf16 channels_last
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamer.agent import resolve_device  # noqa: E402
from world_model.world_model import WorldModel  # noqa: E402

SIZES = ("xs", "s", "m", "l", "xl")
VARIANTS = ("plain", "bf16", "channels_last", "bf16+channels_last")
OBS = {"image": (64, 64, 3)}
ACTION_DIM = 6


def size_config(name: str) -> dict:
    return yaml.safe_load((ROOT / "configs" / "model" / f"{name}.yaml").read_text())


def count_params(name: str) -> int:
    with torch.device("meta"):
        model = WorldModel(OBS, ACTION_DIM, **size_config(name))
    return sum(p.numel() for p in model.parameters())


def random_batch(batch: int, length: int, device: torch.device) -> dict[str, torch.Tensor]:
    is_first = torch.zeros(batch, length, dtype=torch.bool)
    is_first[:, 0] = True
    data = {
        "image": torch.randint(0, 256, (batch, length, *OBS["image"]), dtype=torch.uint8),
        "action": torch.rand(batch, length, ACTION_DIM) * 2 - 1,
        "reward": torch.randn(batch, length),
        "is_first": is_first,
        "is_terminal": torch.zeros(batch, length, dtype=torch.bool),
    }
    return {k: v.to(device) for k, v in data.items()}


def time_updates(name: str, variant: str, batch: int, length: int, repeats: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = WorldModel(OBS, ACTION_DIM, **size_config(name)).to(device)
    if "channels_last" in variant:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-8)
    data = random_batch(batch, length, device)

    def autocast():
        if "bf16" in variant:
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def update():
        with autocast():
            total, *_ = model.loss(data)
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1000.0)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    update()  # warm-up: allocator, kernel selection
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        update()
        seconds.append(time.perf_counter() - start)
    return {
        "size": name,
        "variant": variant,
        "batch": batch,
        "length": length,
        "seconds_per_update": round(statistics.median(seconds), 3),
        "min_seconds": round(min(seconds), 3),
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=["xs", "s"], choices=SIZES, help="sizes to time")
    parser.add_argument("--variants", nargs="*", default=["plain"], choices=VARIANTS)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    result = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "params": {name: count_params(name) for name in SIZES},
        "updates": [
            time_updates(name, variant, args.batch, args.length, args.repeats, device)
            for name in args.sizes
            for variant in args.variants
        ],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
