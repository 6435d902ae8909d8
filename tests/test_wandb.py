"""Weights & Biases as an optional logger: an offline run writes its files
under the run directory with the scalar names of metrics.jsonl, its videos,
and a resumed run continues the same W&B run."""

import subprocess
import sys

import numpy as np
import pytest

from dreamer.logger import WANDB_ID_FILE, Logger, WandbSettings
from dreamer.validate import problems
from test_sweep import ROOT

pytest.importorskip("wandb")


def offline_runs(run_dir):
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def test_offline_run_writes_scalars_and_videos_and_resumes_the_same_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = Logger(tmp_path, tensorboard=False, wandb=WandbSettings(mode="offline"), config={"seed": 3})
    logger.scalar("train/model_loss", 1.5)
    logger.video("report/openloop", np.zeros((6, 16, 16, 3), np.uint8))
    logger.write(100)
    logger.scalar("eval/score", 7.0)
    logger.write(200)
    logger.close()
    run_id = (tmp_path / WANDB_ID_FILE).read_text().strip()
    (first,) = offline_runs(tmp_path)
    assert (first / f"run-{run_id}.wandb").stat().st_size > 0
    videos = list((first / "files" / "media" / "videos" / "report").glob("openloop_*.mp4"))
    assert videos and videos[0].stat().st_size > 0
    logged = (first / f"run-{run_id}.wandb").read_bytes()  # the run's records, names in plain bytes
    assert b"train/model_loss" in logged and b"eval/score" in logged
    assert b"seed" in logged  # the run's config
    # The same run directory again: the same W&B run id.
    Logger(tmp_path, tensorboard=False, wandb=WandbSettings(mode="offline")).close()
    assert len(offline_runs(tmp_path)) == 2
    assert all((r / f"run-{run_id}.wandb").exists() for r in offline_runs(tmp_path))


def test_training_run_with_wandb_offline(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "train.py", "experiment=debug", "steps=40", "prefill=20",
               "env.time_limit=10", "eval_every=20", "report_every=20", "algo.train_ratio=16",
               "logger.wandb=true", "logger.wandb_mode=offline", f"hydra.run.dir={run_dir}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**__import__("os").environ, "WANDB_SILENT": "true"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wandb_run,) = offline_runs(run_dir)
    assert list((wandb_run / "files" / "media" / "videos").rglob("*.mp4"))
    assert (run_dir / "metrics.jsonl").exists()


def test_bad_wandb_mode_is_named():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"logger": {"wandb": True, "wandb_mode": "cloud"}})
    assert any("logger.wandb_mode='cloud'" in p for p in problems(cfg))
    with pytest.raises(ValueError, match="logger.wandb_mode='cloud'"):
        WandbSettings(mode="cloud")
