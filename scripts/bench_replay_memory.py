"""Resident memory of a full episode buffer relative to its raw frame bytes.

Fills a Replay with 64x64x3 uint8 frames plus action, reward and flags, then prints JSON with the
increase in resident memory (VmRSS) and its ratio to steps * 64 * 64 * 3 bytes. The goal is at most 1.1.

    python scripts/bench_replay_memory.py --steps 100000
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dreamer.replay import Replay  # noqa: E402


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000, help="steps added, also the capacity")
    parser.add_argument("--episode-length", type=int, default=500, help="steps per episode")
    parser.add_argument("--workers", type=int, default=4, help="env workers whose episodes interleave")
    parser.add_argument("--chunk-length", type=int, default=1024, help="Replay chunk_length")
    parser.add_argument("--action-size", type=int, default=6, help="length of the float32 action vector")
    parser.add_argument("--directory", default=None, help="also write chunk files here (default: memory only)")
    args = parser.parse_args()

    frame_shape = (64, 64, 3)
    rng = np.random.default_rng(0)
    # A pool of distinct frames, created before the baseline so it is not counted as buffer memory.
    frames = rng.integers(0, 256, (256, *frame_shape), dtype=np.uint8)
    gc.collect()
    before = resident_bytes()

    replay = Replay(capacity=args.steps, directory=args.directory, chunk_length=args.chunk_length)
    start = time.perf_counter()
    for t in range(args.steps):
        worker = t % args.workers
        index = t // args.workers % args.episode_length
        replay.add(
            {
                "image": frames[t % len(frames)],
                "action": np.full(args.action_size, index > 0, np.float32),
                "reward": np.float32(1.0),
                "is_first": np.bool_(index == 0),
                "is_last": np.bool_(index == args.episode_length - 1),
                "is_terminal": np.bool_(False),
            },
            worker,
        )
    add_seconds = time.perf_counter() - start
    gc.collect()
    after = resident_bytes()

    start = time.perf_counter()
    for _ in range(20):
        replay.sample(16, 64)
    sample_ms = (time.perf_counter() - start) / 20 * 1000

    raw = args.steps * int(np.prod(frame_shape))
    stats = replay.stats()
    print(
        json.dumps(
            {
                "steps": len(replay),
                "raw_frame_bytes": raw,
                "rss_increase_bytes": after - before,
                "ratio_to_raw_frames": round((after - before) / raw, 4),
                "buffer_memory_bytes": stats["memory_bytes"],
                "add_steps_per_second": round(args.steps / add_seconds),
                "sample_16x64_ms": round(sample_ms, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
