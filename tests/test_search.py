"""Hyperparameter search: train.py returns its objective, a 2-trial Optuna
search writes its study to the sweep directory and a second call resumes it."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from dreamer.objective import ObjectiveError, finished_run_objective, run_objective
from test_sweep import CONFIGS, ROOT

# The debug preset cut short, with an evaluation at 20, 40 and 60 frames.
TRIAL = ["experiment=debug", "steps=60", "prefill=20", "env.time_limit=10", "eval_every=20",
         "algo.train_ratio=16", "report_every=0", "logger.tensorboard=false"]


def write_metrics(run_dir: Path, rows) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "metrics.jsonl", "w") as file:
        for row in rows:
            file.write(json.dumps(row) + "\n")


def test_objective_is_the_mean_of_the_last_evaluations(tmp_path):
    write_metrics(tmp_path, [{"step": 0, "eval/score": 1.0}, {"step": 5, "episode/score": 50.0},
                             {"step": 10, "eval/score": 2.0}, {"step": 20, "eval/score": 4.0},
                             {"step": 30, "eval/score": 6.0}])
    assert run_objective(tmp_path, "eval/score", 3) == pytest.approx(4.0)
    assert run_objective(tmp_path, "eval/score", 1) == pytest.approx(6.0)
    assert run_objective(tmp_path, "episode/score", 3) == pytest.approx(50.0)
    with pytest.raises(ObjectiveError, match="logged no train/x"):
        run_objective(tmp_path, "train/x", 3)


def test_an_unfinished_run_has_no_objective_and_fails_a_search_trial(tmp_path):
    write_metrics(tmp_path, [{"step": 10, "eval/score": 2.0}])
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONFIGS, version_base="1.3"):
        cfg = compose("config", ["experiment=debug"])
    assert finished_run_objective(cfg, tmp_path, cfg.steps, in_sweep=False) == pytest.approx(2.0)
    assert finished_run_objective(cfg, tmp_path, cfg.steps - 1, in_sweep=False) is None
    with pytest.raises(ObjectiveError, match="stopped at 399 of steps=400"):
        finished_run_objective(cfg, tmp_path, cfg.steps - 1, in_sweep=True)
    write_metrics(tmp_path / "empty", [{"step": 1, "fps": 1.0}])
    with pytest.raises(ObjectiveError, match="is eval_every > 0"):
        finished_run_objective(cfg, tmp_path / "empty", cfg.steps, in_sweep=True)


def trials(storage: Path) -> list[tuple[int, str, float | None]]:
    with sqlite3.connect(storage) as db:
        return db.execute("SELECT t.number, t.state, v.value FROM trials t "
                          "LEFT JOIN trial_values v ON v.trial_id = t.trial_id ORDER BY t.number").fetchall()


def search(sweep_dir: Path, n_trials: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "train.py", "-m", *TRIAL, "search=rates",
               f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweep.dir={sweep_dir}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_two_trial_search_writes_its_study_and_resumes(tmp_path):
    sweep_dir = tmp_path / "search"
    search(sweep_dir, 2)
    storage = sweep_dir / "optuna.db"
    first = trials(storage)
    assert [(n, state) for n, state, _ in first] == [(0, "COMPLETE"), (1, "COMPLETE")]
    for number, _, value in first:
        run = sweep_dir / f"trial{number}"
        # The study holds what train.py returned: the mean of the last 3 evaluations.
        assert value == pytest.approx(run_objective(run, "eval/score", 3))
        overrides = (run / ".hydra" / "overrides.yaml").read_text()
        assert "algo.optim.model.lr=" in overrides and "algo.optim.actor.lr=" in overrides
    assert "best_value" in (sweep_dir / "optimization_results.yaml").read_text()
    # Asking for 3 trials in all runs the one missing, in a new run directory.
    result = search(sweep_dir, 3)
    assert "2 trials finished, 1 of n_trials=3 to go" in result.stdout + result.stderr
    assert [(n, state) for n, state, _ in trials(storage)] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    assert (sweep_dir / "trial2" / "metrics.jsonl").exists()
    assert [row[2] for row in trials(storage)][:2] == [value for _, _, value in first]


def test_search_presets_compose_with_their_search_spaces():
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONFIGS, version_base="1.3"):
        for preset, key in [("rates", "algo.optim.model.lr"), ("train_ratio", "algo.train_ratio"),
                            ("entropy", "algo.behavior.entropy"), ("horizon", "algo.behavior.horizon"),
                            ("model_size", "model")]:
            cfg = compose("config", [f"search={preset}"], return_hydra_config=True)
            assert key in cfg.hydra.sweeper.params, preset
            assert cfg.hydra.sweeper.direction == "maximize"
            assert cfg.hydra.sweeper.storage == f"sqlite:///{cfg.hydra.sweep.dir}/optuna.db"
            assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"] == "trial${hydra.job.num}"
        both = compose("config", ["search=dreamer"], return_hydra_config=True).hydra.sweeper.params
        assert {"algo.optim.model.lr", "algo.train_ratio", "algo.behavior.entropy",
                "algo.behavior.horizon"} <= set(both)


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_search_composes_with_the_local_and_slurm_launchers(launcher):
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONFIGS, version_base="1.3"):
        cfg = compose("config", ["search=rates", f"hydra/launcher={launcher}", "hydra.sweeper.n_jobs=4"],
                      return_hydra_config=True)
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.dreamer_search.ResumableOptunaSweeper"
    assert cfg.hydra.sweeper.n_jobs == 4
    assert "submitit" in cfg.hydra.launcher._target_
