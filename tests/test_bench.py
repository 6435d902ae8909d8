"""The benchmark runs end to end at a tiny size and reports sane numbers."""

from __future__ import annotations

import json
import math

import pytest

from dreamer import bench

RATES = (
    "world_model_updates_per_s",
    "behavior_updates_per_s",
    "imagined_states_per_s",
    "agent_updates_per_s",
    "agent_update_s",
    "policy_step_ms",
    "env_steps_per_s",
    "env_steps_per_s_workers",
    "peak_rss_mb",
)


def test_bench_prints_json_with_positive_numbers(capsys):
    argv = "--size tiny --batch 2 --length 8 --horizon 3 --repeats 1 --warmup 0 --device cpu"
    argv += " --env toy:reach --workers 2 --env-steps 5 --fast-paths bf16=false"
    bench.main(argv.split())
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    for key in RATES:
        assert math.isfinite(out[key]) and out[key] > 0, (key, out[key])
    assert out["imagined_states_per_s"] == pytest.approx(out["behavior_updates_per_s"] * 2 * 8 * 3)
    assert out["agent_update_s"] * out["agent_updates_per_s"] == pytest.approx(1)
    assert out["peak_cuda_mb"] is None and out["fast_paths"]["bf16"] is False
    assert "[bench]" in captured.err


def test_bench_rejects_an_unknown_fast_path():
    with pytest.raises(SystemExit, match="unknown fast path 'jit'"):
        bench.main(["--fast-paths", "jit=true"])
