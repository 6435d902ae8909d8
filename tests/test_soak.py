"""A run killed with SIGKILL at random moments, again and again, loses nothing.

Slow (about 3 minutes): ``python -m pytest -m slow tests/test_soak.py``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from conftest import REPO
from dreamer import checkpoint as ckpt
from dreamer.replay import Replay

KILLS = 10
COUNTERS = ("frames", "agent_steps", "updates", "episodes")


def _finished_episodes(replay_dir) -> set[str]:
    """Names of the chunks that end an episode (their last step is_last)."""
    finished = set()
    for path in replay_dir.glob("*.npz"):
        with np.load(path) as chunk:
            if bool(chunk["is_last"][-1]):
                finished.add(path.name)
    return finished


def _counters(run_dir) -> dict[str, int] | None:
    if not (run_dir / "checkpoint.pt").exists() and not ckpt.previous_path(run_dir / "checkpoint.pt").exists():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ckpt.CheckpointWarning)
        state, _ = ckpt.load_latest(run_dir / "checkpoint.pt")
    return {key: state["counters"][key] for key in COUNTERS}


@pytest.mark.slow
def test_random_sigkills_lose_no_episode_and_counters_only_go_forward(tmp_path):
    run_dir = tmp_path / "run"
    command = [
        sys.executable, str(REPO / "train.py"), "experiment=debug", "steps=1000000", "checkpoint_every=0.5",
        "eval_every=0", "report_every=0", "env.num_envs=2", f"hydra.run.dir={run_dir}",
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    moments = random.Random(0)
    seen_files: set[str] = set()
    last = {key: 0 for key in COUNTERS}
    for kill in range(KILLS):
        # From 2 s (still starting: imports, building the env) to 14 s (training).
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        time.sleep(moments.uniform(2, 14))
        os.killpg(process.pid, signal.SIGKILL)  # the run and its environment workers, as a preemption would
        _, stderr = process.communicate()
        assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
        files = {p.name for p in (run_dir / "replay").glob("*.npz")} if (run_dir / "replay").exists() else set()
        assert seen_files <= files, f"kill {kill}: replay files lost: {sorted(seen_files - files)}"
        seen_files = files
        counters = _counters(run_dir)
        if counters is None:
            assert kill == 0 or last["frames"] == 0, f"kill {kill}: the checkpoint disappeared"
            continue
        assert all(counters[k] >= last[k] for k in COUNTERS), f"kill {kill}: counters went back: {last} -> {counters}"
        # Every episode a checkpoint counted is in replay/ (and so are those finished after it).
        assert len(_finished_episodes(run_dir / "replay")) >= counters["episodes"], f"kill {kill}"
        last = counters
    assert last["updates"] > 0, "no kill came after training had started; the test did not test resuming training"

    resumed = subprocess.run(
        command[:3] + [f"steps={last['frames'] + 120}"] + command[4:],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout
    final = ckpt.load(run_dir / "checkpoint.pt")  # the newest checkpoint itself, no fallback
    assert all(final["counters"][k] >= last[k] for k in COUNTERS)
    assert final["counters"]["frames"] >= last["frames"] + 120
    files = {p.name for p in (run_dir / "replay").glob("*.npz")}
    assert seen_files <= files and not list((run_dir / "replay").glob("*.tmp"))
    stored = sum(int(name.rsplit("-", 1)[1].removesuffix(".npz")) for name in files)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a damaged or unreadable chunk would warn
        assert Replay(stored, run_dir / "replay").load() == stored
