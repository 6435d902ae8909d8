"""Metrics to metrics.jsonl, TensorBoard and (optionally) Weights & Biases.

The only module that knows TensorBoard or W&B. Scalars and videos are
collected with :meth:`Logger.scalar` / :meth:`Logger.video` and written
together by :meth:`Logger.write` at one step (environment frames), under the
same names everywhere.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
from collections import defaultdict
from pathlib import Path

import numpy as np

WANDB_MODES = ("online", "offline", "disabled")
WANDB_ID_FILE = "wandb_run_id"  # in the run dir: a resumed run continues the same W&B run


@dataclasses.dataclass
class WandbSettings:
    """Where a run goes in Weights & Biases (config.yaml's `logger.wandb_*`)."""

    project: str = "dreamer"
    entity: str | None = None
    mode: str = "online"  # offline: files under <run dir>/wandb, uploaded later with `wandb sync`
    group: str | None = None
    name: str | None = None

    def __post_init__(self):
        if self.mode not in WANDB_MODES:
            raise ValueError(f"logger.wandb_mode={self.mode!r}: must be one of {', '.join(WANDB_MODES)}")


class Logger:
    def __init__(self, run_dir: str | Path, tensorboard: bool = True, video_fps: int = 16,
                 wandb: WandbSettings | None = None, config: dict | None = None):
        """wandb: log to W&B as well (None: not); config: the run's settings, shown there."""
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.video_fps = video_fps
        self._scalars: dict[str, list[float]] = defaultdict(list)
        self._videos: dict[str, tuple[np.ndarray, int | None]] = {}
        self._writer = None
        if tensorboard:
            # add_video goes through moviepy, which loads pygame; without a sound
            # card pygame's audio probe floods stderr with ALSA errors.
            os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir), flush_secs=30)
        self._wandb = _start_wandb(self.run_dir, wandb, config) if wandb is not None else None

    def scalar(self, name: str, value) -> None:
        """Queue a scalar; several values of one name before a write are averaged."""
        self._scalars[name].append(float(value))

    def scalars(self, metrics: dict, prefix: str = "") -> None:
        for name, value in metrics.items():
            self.scalar(prefix + name, value)

    def video(self, name: str, frames: np.ndarray, step: int | None = None) -> None:
        """Queue a video: uint8 (T, H, W, C). step: the frame count it shows the
        agent at, for TensorBoard (None: the step of the next write); a report
        made between log writes would otherwise carry the later step."""
        if frames.dtype != np.uint8 or frames.ndim != 4:
            raise ValueError(f"video {name!r} must be uint8 (T, H, W, C), got {frames.dtype} {frames.shape}")
        self._videos[name] = (frames, step)

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
            for name, (frames, video_step) in self._videos.items():
                # TensorBoard wants (N, T, C, H, W).
                at = step if video_step is None else video_step
                self._writer.add_video(name, frames.transpose(0, 3, 1, 2)[None], at, fps=self.video_fps)
            self._writer.flush()
        if self._wandb is not None:
            import wandb

            record = dict(values)
            # W&B steps only go forward, so its videos keep the write's step.
            for name, (frames, _) in self._videos.items():
                # W&B wants (T, C, H, W).
                record[name] = wandb.Video(frames.transpose(0, 3, 1, 2), fps=self.video_fps, format="mp4")
            if record:
                self._wandb.log(record, step=int(step))
        self._scalars.clear()
        self._videos.clear()
        return values

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def _start_wandb(run_dir: Path, settings: WandbSettings, config: dict | None):
    try:
        import wandb
    except ImportError:
        raise ValueError("logger.wandb=true needs the wandb package: "
                         "pip install -e '.[wandb]' (or pip install wandb)") from None
    id_file = run_dir / WANDB_ID_FILE
    if id_file.exists():
        run_id = id_file.read_text().strip()
    else:
        run_id = secrets.token_hex(4)
        id_file.write_text(run_id + "\n")
    return wandb.init(
        project=settings.project, entity=settings.entity, group=settings.group,
        name=settings.name or run_dir.name, mode=settings.mode, dir=str(run_dir),
        id=run_id, resume="allow", config=config)
