"""Settings are checked before anything is built; user mistakes end in one line and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from conftest import REPO, compose_config
from dreamer.cli import one_line
from dreamer.validate import ConfigError, check, problems

PRESETS = ["dreamerv3", "dreamerv3_2023", "dreamerv2", "dreamerv1", "planet"]


@pytest.mark.parametrize("experiment", ["quickstart", "toy", "debug", "dmc_vision", "dmc_proprio", "atari100k"])
@pytest.mark.parametrize("algo", PRESETS)
def test_every_shipped_configuration_is_valid(experiment, algo):
    assert problems(compose_config([f"experiment={experiment}", f"algo={algo}"])) == []


@pytest.mark.parametrize(
    "override, named",
    [
        ("steps=-1", "steps=-1: must be an integer > 0"),
        ("prefill=-5", "prefill=-5: must be an integer >= 0"),
        ("eval_every=-1", "eval_every=-1"),
        ("eval_envs=0", "eval_envs=0: must be auto or an integer > 0"),
        ("eval_parallel=sometimes", "eval_parallel='sometimes': must be auto, true or false"),
        ("checkpoint_every=0", "checkpoint_every=0"),
        ("env.num_envs=0", "env.num_envs=0"),
        ("env.action_repeat=0", "env.action_repeat=0"),
        ("env.size=[0,64]", "env.size=[0, 64]"),
        ("algo.batch_size=0", "algo.batch_size=0"),
        ("algo.batch_length=1", "algo.batch_length=1: must be an integer > 1"),
        ("algo.train_ratio=0", "algo.train_ratio=0"),
        ("algo.behavior.horizon=0", "algo.behavior.horizon=0"),
        ("algo.behavior.gamma=1.5", "algo.behavior.gamma=1.5: must be a number in (0, 1]"),
        ("algo.optim.model.lr=0", "algo.optim.model.lr=0: must be a number > 0"),
        ("algo.optim.actor.eps=-1e-8", "algo.optim.actor.eps=-1e-08"),
        ("replay_capacity=10", "replay_capacity=10 must hold one sequence of algo.batch_length=16 steps"),
        ("replay_capacity=40", "prefill=100 frames (100 agent steps) does not fit replay_capacity=40"),
        ("algo.world_model.replay_context=16", "replay_context=16 must be < algo.batch_length=16"),
        ("model.deter=0", "model.deter=0"),
    ],
)
def test_a_bad_setting_is_named_with_its_value_and_what_is_allowed(override, named):
    cfg = compose_config(["experiment=debug", override])
    with pytest.raises(ConfigError, match="invalid settings") as error:
        check(cfg)
    assert named in str(error.value)


def test_every_bad_setting_is_reported_at_once():
    found = problems(compose_config(["experiment=debug", "steps=0", "algo.batch_size=-2", "algo.optim.critic.lr=0"]))
    assert len(found) == 3


def test_a_random_policy_run_is_allowed():
    # prefill >= steps collects random actions only: the random baseline.
    assert problems(compose_config(["experiment=debug", "steps=200", "prefill=500", "replay_capacity=300"])) == []


def _train(*overrides, full_error=False):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1" if full_error else "0"}
    return subprocess.run(
        [sys.executable, "train.py", "experiment=debug", "hydra.run.dir=/tmp/never_written", *overrides],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=300,
    )


def test_user_mistakes_end_in_one_line_and_exit_status_2():
    bad_value = _train("steps=-1")
    assert bad_value.returncode == 2
    assert bad_value.stderr.strip().splitlines() == ["error: invalid settings: steps=-1: must be an integer > 0 (frames)"]
    unknown_task = _train("env.task=nope")
    assert unknown_task.returncode == 2 and "Traceback" not in unknown_task.stderr
    assert "Unknown toy task 'nope'; valid tasks: reach, reach_discrete" in unknown_task.stderr
    assert len(unknown_task.stderr.strip().splitlines()) == 1
    traced = _train("steps=-1", full_error=True)
    assert traced.returncode != 0 and "Traceback" in traced.stderr


@pytest.mark.parametrize(
    "override, says",
    [
        ("algo=nope", "Could not find 'algo/nope'; Available options in 'algo': dreamerv1, dreamerv2, dreamerv3,"),
        ("model=huge", "Available options in 'model': 100m, 12m"),
        ("stepz=10", "Could not override 'stepz'"),
        ("+x=[1", "cannot parse the override '+x=[1'"),
        ("env.size=[3,3]", "env.size=[3, 3]: image size 3x3 is not supported with 4 stages"),
    ],
)
def test_hydra_and_model_mistakes_end_in_one_line_and_exit_status_2(override, says):
    result = _train(override)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.stderr


def test_full_error_shows_hydras_trace_too():
    result = _train("algo=nope", full_error=True)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_a_mistake_in_a_sweep_names_the_job_after_every_job_ran(tmp_path):
    result = subprocess.run(
        [sys.executable, "train.py", "-m", "experiment=debug", "steps=-1,-2", f"hydra.sweep.dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "HYDRA_FULL_ERROR": "0"}, timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-2:] == [
        "Error executing job with overrides: ['experiment=debug', 'steps=-1']",
        "error: invalid settings: steps=-1: must be an integer > 0 (frames)",
    ]
    assert "#1 : experiment=debug steps=-2" in result.stdout + result.stderr


def test_hydra_messages_become_one_line():
    message = (
        "In 'config': Could not find 'algo/nope'\n\nAvailable options in 'algo':\n\tdreamerv1\n\tplanet\n"
        "Config search path:\n\tprovider=hydra, path=pkg://hydra.conf"
    )
    assert one_line(message) == "In 'config': Could not find 'algo/nope'; Available options in 'algo': dreamerv1, planet"


def test_third_party_start_up_logs_are_quiet():
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    loggers = cfg.hydra.job_logging.loggers
    assert loggers.absl.level == "WARNING" and loggers.OpenGL.level == "WARNING"
