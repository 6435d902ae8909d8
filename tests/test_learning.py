"""Learning runs: the agent's score rises well above a random policy's.

Slow (about 14 minutes on a 2-core CPU), so outside the default run:
``python -m pytest -m slow tests/test_learning.py``.
"""

from __future__ import annotations

import json

import pytest

from conftest import train_in_process
from envs.toy import RANDOM_SCORE


@pytest.mark.slow
def test_quickstart_learns_the_toy_task_well_above_random(tmp_path):
    train_in_process(tmp_path, ["experiment=quickstart", "report_every=0"])
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r["eval/score"] for r in records if "eval/score" in r]
    # Mean of the last two evaluations (5 episodes each): at least 3x random.
    assert sum(evals[-2:]) / 2 > 3 * RANDOM_SCORE["reach"], evals
