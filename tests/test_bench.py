"""The benchmark runs end to end at a tiny size and reports sane numbers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

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
    "eval_s_one_env",
    "eval_s_layout",
)


def test_bench_prints_json_with_positive_numbers(capsys):
    argv = "--size tiny --batch 2 --length 8 --horizon 3 --repeats 1 --warmup 0 --device cpu"
    argv += " --env toy:reach --workers 2 --env-steps 5 --profile 3 --eval-episodes 3"
    argv += " --fast-paths bf16=false compile_behavior=false"
    bench.main(argv.split())
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    for key in RATES:
        assert math.isfinite(out[key]) and out[key] > 0, (key, out[key])
    # Imagination starts from every trained step: 2 x (8 - 1 replay-context step), 3 steps each.
    assert out["imagined_states_per_s"] == pytest.approx(out["behavior_updates_per_s"] * 2 * 7 * 3)
    assert out["agent_update_s"] * out["agent_updates_per_s"] == pytest.approx(1)
    # The toy task repeats no action; its train ratio pays 2 x 7 replayed steps with 14 / ratio frames.
    cfg = bench.compose_config("tiny", 2, 8, 3, "cpu", "toy:reach")
    assert out["frames_per_update"] == pytest.approx(14 / cfg.algo.train_ratio * cfg.env.action_repeat)
    assert out["train_frames_per_s_update_bound"] == pytest.approx(out["frames_per_update"] / out["agent_update_s"])
    assert out["peak_cuda_mb"] is None and out["fast_paths"]["bf16"] is False
    assert "[bench]" in captured.err
    profile = out["profile"]
    assert len(profile) == 3 and profile[0]["self_s"] >= profile[-1]["self_s"] > 0
    assert all(0 < row["share"] <= 1 and row["calls"] >= 1 for row in profile)
    assert out["eval_layout"] == {"envs": 3, "processes": False}  # the toy task's auto layout
    assert out["eval_start_s_layout"] < out["eval_s_layout"]


def test_a_failing_environment_keeps_the_update_timings(monkeypatch, capsys):
    def broken_renderer(*args):
        raise RuntimeError("no EGL display")

    monkeypatch.setattr(bench, "env_steps_per_s", broken_renderer)
    argv = "model=tiny --batch 2 --length 6 --horizon 3 --repeats 1 --warmup 0 --device cpu --env toy:reach --env-steps 3"
    out = bench.main(argv.split())
    assert out["env_error"] == "RuntimeError: no EGL display" and "env_steps_per_s" not in out
    assert out["agent_update_s"] > 0 and "environment steps failed" in capsys.readouterr().err


def test_bench_rejects_an_unknown_fast_path():
    with pytest.raises(SystemExit, match="unknown fast path 'jit'"):
        bench.main(["--fast-paths", "jit=true"])


def test_bench_measures_the_environment_settings_not_the_quickstart():
    # The quickstart shrinks the model, the batch and the train ratio; the
    # benchmark must see the paper's settings.
    cfg = bench.compose_config("xs", 16, 64, 15, "cpu", "dmc:walker_walk")
    assert list(cfg.env.size) == [64, 64] and cfg.env.task == "walker_walk"
    assert cfg.algo.train_ratio == 512 and cfg.algo.batch_length == 64


def test_bench_takes_train_overrides_and_reports_what_it_measured(capsys):
    argv = "algo=dreamerv1 model=tiny algo.batch_size=2 algo.batch_length=6 algo.behavior.actor_grad=dynamics"
    argv += " --horizon 4 --repeats 1 --warmup 0 --device cpu --env toy:reach --env-steps 0"
    out = bench.main(argv.split())
    assert out["overrides"][:2] == ["algo=dreamerv1", "model=tiny"] and out["size"] == "tiny"
    assert (out["batch"], out["length"], out["horizon"]) == (2, 6, 4)
    # DreamerV1 keeps no slow critic; the 2024 DreamerV3 does, and it is not trained.
    assert out["trainable_parameters_m"] > 0 and out["frozen_parameters_m"] == 0
    v3 = bench.main("model=tiny --batch 2 --length 6 --horizon 3 --repeats 1 --warmup 0 --device cpu --env toy:reach --env-steps 0".split())
    assert v3["frozen_parameters_m"] > 0
    assert set(v3["warmup_s"]) == {"world_model", "behavior", "agent"}  # none with --warmup 0, so about 0 s
    assert all(0 <= seconds < 1 for seconds in v3["warmup_s"].values())
    assert isinstance(v3["ops_per_update"], int) and v3["ops_per_update"] > 100
    # More imagined steps dispatch more operators.
    longer = bench.main("model=tiny --batch 2 --length 6 --horizon 6 --repeats 1 --warmup 0 --device cpu --env toy:reach --env-steps 0".split())
    assert longer["ops_per_update"] > v3["ops_per_update"]
    capsys.readouterr()


def test_bench_frames_per_update_follow_the_dmc_vision_settings():
    # Train ratio 512 over 16 x 64 trained steps at action repeat 2: one update per 2 agent steps, 4 frames.
    cfg = bench.compose_config("s", 16, 65, 15, "cpu", "dmc:walker_walk")
    assert bench.training_frames(cfg, 0.025) == {"frames_per_update": 4.0, "train_frames_per_s_update_bound": 160.0}


def test_bench_overrides_may_come_between_the_options():
    args = bench.parse_args("experiment=quickstart --repeats 3 fast.bf16=false --env-steps 0 model=xs".split())
    assert args.overrides == ["experiment=quickstart", "fast.bf16=false", "model=xs"]
    assert (args.repeats, args.env_steps) == (3, 0)


def test_bench_compares_the_named_switches_against_all_off(capsys):
    argv = "model=tiny --batch 2 --length 6 --horizon 3 --repeats 1 --warmup 0 --device cpu --env toy:reach"
    out = bench.main([*argv.split(), "--compare", "fused_optim,keep_memory"])
    capsys.readouterr()
    assert list(out) == ["plain", "fused_optim", "keep_memory"]
    assert out["plain"]["speedup"] == 1 and all(row["agent_update_s"] > 0 for row in out.values())
    assert all(row["speedup"] == out["plain"]["agent_update_s"] / row["agent_update_s"] for row in out.values())
    assert bench.parse_args(["--compare"]).compare == "all" and bench.parse_args([]).compare is None
    with pytest.raises(SystemExit, match="unknown switch 'jit'; allowed: all, or any of compile, "):
        bench.main([*argv.split(), "--compare", "bf16,jit"])


def test_bench_overrides_win_over_the_options():
    cfg = bench.compose_config("xs", 16, 64, 15, "cpu", "dmc:walker_walk", ["model=tiny", "algo.batch_size=3", "algo=planet"])
    assert cfg.model.deter == bench.compose_config("tiny", 16, 64, 15, "cpu", "dmc:walker_walk").model.deter
    assert cfg.algo.batch_size == 3 and cfg.algo.get("behavior") is None


def test_an_experiment_override_benchmarks_that_experiment_as_trained():
    cfg = bench.compose_config("s", 16, 64, 15, "cpu", "dmc:walker_walk", ["experiment=quickstart"])
    with initialize_config_dir(config_dir=str(bench.CONFIG_DIR), version_base=None):
        trained = compose(config_name="config", overrides=["experiment=quickstart", "device=cpu"])
    assert cfg.env.task == trained.env.task == "finger_spin"
    assert cfg.model == trained.model and cfg.algo == trained.algo


GPU_SCRIPT = bench.CONFIG_DIR.parent / "scripts" / "bench_gpu.sh"


def test_the_gpu_script_rejects_an_unknown_stage_before_running_any(tmp_path):
    run = subprocess.run(["bash", str(GPU_SCRIPT), "auto", "warp"], capture_output=True, text=True, check=False,
                         env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path)})
    assert run.returncode == 2 and "unknown stage 'warp'; allowed: check auto train" in run.stderr
    assert not (tmp_path / "summary.txt").exists()
    env = {"PATH": os.environ["PATH"], "OUT": str(tmp_path), "DEVICE": "cpu", "PYTHON": sys.executable,
           "BENCH_ARGS": "--no-such-option"}
    run = subprocess.run(["bash", str(GPU_SCRIPT), "auto"], capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 1 and "auto_s: failed (exit 2" in (tmp_path / "summary.txt").read_text()


def test_the_gpu_script_writes_a_json_and_a_summary_per_benchmark(tmp_path):
    # The same script on a CPU at the tiny size: what a GPU run writes, in seconds.
    env = dict(os.environ, OUT=str(tmp_path), DEVICE="cpu", SIZE="tiny", LARGE="tiny", PYTHON=sys.executable,
               BENCH_ARGS="--batch 2 --length 6 --horizon 3 --repeats 1 --warmup 0 --env-steps 2 --workers 2 "
               "--env toy:reach fast.compile_behavior=false")
    run = subprocess.run(["bash", str(GPU_SCRIPT), "auto"], capture_output=True, text=True, env=env, timeout=600,
                         check=False)
    assert run.returncode == 0, run.stderr
    lines = (tmp_path / "summary.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["auto_s", "auto_12m"], lines
    assert all("size tiny, full update" in line and "frames/s bound" in line for line in lines)
    result = json.loads((tmp_path / "auto_s.json").read_text())
    assert result["device"] == "cpu" and result["batch"] == 2 and result["env_steps_per_s_workers"] > 0
