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
    argv += " --env toy:reach --workers 2 --env-steps 5 --fast-paths bf16=false --profile 3"
    bench.main(argv.split())
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    for key in RATES:
        assert math.isfinite(out[key]) and out[key] > 0, (key, out[key])
    # Imagination starts from every trained step: 2 x (8 - 1 replay-context step), 3 steps each.
    assert out["imagined_states_per_s"] == pytest.approx(out["behavior_updates_per_s"] * 2 * 7 * 3)
    assert out["agent_update_s"] * out["agent_updates_per_s"] == pytest.approx(1)
    assert out["peak_cuda_mb"] is None and out["fast_paths"]["bf16"] is False
    assert "[bench]" in captured.err
    profile = out["profile"]
    assert len(profile) == 3 and profile[0]["self_s"] >= profile[-1]["self_s"] > 0
    assert all(0 < row["share"] <= 1 and row["calls"] >= 1 for row in profile)


def test_bench_rejects_an_unknown_fast_path():
    with pytest.raises(SystemExit, match="unknown fast path 'jit'"):
        bench.main(["--fast-paths", "jit=true"])


def test_bench_measures_the_environment_settings_not_the_quickstart():
    # The quickstart shrinks images for the toy task; the benchmark must see
    # DMC's own 64 x 64 frames and the paper's settings.
    cfg = bench.compose_config("xs", 16, 64, 15, "cpu", "dmc:walker_walk")
    assert list(cfg.env.size) == [64, 64] and cfg.env.task == "walker_walk"
    assert cfg.algo.train_ratio == 512 and cfg.algo.batch_length == 64
