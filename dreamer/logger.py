"""Metrics to metrics.jsonl and TensorBoard; the only module that knows TensorBoard.

Scalars and videos are collected with :meth:`Logger.scalar` / :meth:`Logger.video`
and written together by :meth:`Logger.write` at one step (environment frames).
"""

from __future__ import annotations

import json
import os
import math
from collections import defaultdict
from pathlib import Path

import numpy as np


class Logger:
    def __init__(self, run_dir: str | Path, tensorboard: bool = True, video_fps: int = 16):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.video_fps = video_fps
        self._scalars: dict[str, list[float]] = defaultdict(list)
        self._videos: dict[str, np.ndarray] = {}
        self._writer = None
        if tensorboard:
            # add_video goes through moviepy, which loads pygame; without a sound
            # card pygame's audio probe floods stderr with ALSA errors.
            os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir), flush_secs=30)

    def scalar(self, name: str, value) -> None:
        """Queue a scalar; several values of one name before a write are averaged."""
        self._scalars[name].append(float(value))

    def scalars(self, metrics: dict, prefix: str = "") -> None:
        for name, value in metrics.items():
            self.scalar(prefix + name, value)

    def video(self, name: str, frames: np.ndarray) -> None:
        """Queue a video: uint8 (T, H, W, C)."""
        if frames.dtype != np.uint8 or frames.ndim != 4:
            raise ValueError(f"video {name!r} must be uint8 (T, H, W, C), got {frames.dtype} {frames.shape}")
        self._videos[name] = frames

    def write(self, step: int) -> dict[str, float]:
        """Write everything queued at ``step`` and return the scalars written."""
        values = {name: float(np.mean(v)) for name, v in self._scalars.items()}
        if values:
            record = {"step": int(step)}
            record.update({k: (v if math.isfinite(v) else None) for k, v in values.items()})
            with self.jsonl.open("a") as f:
                f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(name, value, step)
            for name, frames in self._videos.items():
                # TensorBoard wants (N, T, C, H, W).
                self._writer.add_video(name, frames.transpose(0, 3, 1, 2)[None], step, fps=self.video_fps)
            self._writer.flush()
        self._scalars.clear()
        self._videos.clear()
        return values

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
