"""Sweeps: one `train.py -m` command gives one run directory per task and seed,
`dreamer.compare` draws them, and the launcher presets compose without a cluster."""

import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from hydra.utils import instantiate
from matplotlib.image import imread

from dreamer.compare import compare

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = str(ROOT / "configs")
TASKS = ("reach", "reach_discrete")
# The debug preset cut to a few updates: episodes of 10 frames, 20 random frames, then 5 updates.
TINY = ["experiment=debug", "steps=40", "prefill=20", "env.time_limit=10", "eval_every=0",
        "algo.train_ratio=16", "report_every=0", "logger.tensorboard=false"]


def sweep(sweep_dir: Path, seeds: str, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "train.py", "-m", *TINY, f"env.task={','.join(TASKS)}",
               f"seed={seeds}", f"hydra.sweep.dir={sweep_dir}", *extra]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def check_runs_and_compare(sweep_dir: Path, seeds: list[int], out: Path) -> None:
    for task in TASKS:
        for seed in seeds:
            run = sweep_dir / f"toy_{task}" / "dreamerv3" / f"seed{seed}"
            assert (run / "metrics.jsonl").stat().st_size > 0, f"no metrics in {run}"
            assert (run / "checkpoint.pt").exists(), f"no checkpoint in {run}"
            assert f"task: {task}\n" in (run / ".hydra" / "config.yaml").read_text()
    notes = []
    table = compare([sweep_dir], baselines=["dreamerv3"], out=out, budgets=[40], log=notes.append)
    assert any("no published baselines for toy runs" in n for n in notes), notes
    assert table.tasks == list(TASKS)
    assert [m for m, _ in table.columns] == ["dreamerv3"]  # no published column for toy tasks
    assert (table.values == table.values).all(), table.to_markdown()  # a score for every task
    for name in (*TASKS, "overview"):
        image = imread(out / f"{name}.png")
        assert image.shape[0] > 100 and image.std() > 0, f"{name}.png is blank"
    assert "| reach_discrete |" in (out / "scores.md").read_text()


def test_one_command_sweeps_two_tasks_into_named_run_dirs_that_compare_draws(tmp_path):
    sweep(tmp_path / "sweep", "0")
    check_runs_and_compare(tmp_path / "sweep", [0], tmp_path / "comparison")


@pytest.mark.slow
def test_local_launcher_runs_two_tasks_by_two_seeds(tmp_path):
    result = sweep(tmp_path / "sweep", "0,1", "hydra/launcher=local", "hydra.launcher.gpus_per_node=0")
    assert "Submitit 'local' sweep output dir" in result.stdout + result.stderr
    check_runs_and_compare(tmp_path / "sweep", [0, 1], tmp_path / "comparison")
    assert len(list((tmp_path / "sweep" / ".submitit").glob("*/*_log.out"))) == 4


@pytest.fixture
def hydra_configs():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        yield GlobalHydra.instance()


def test_slurm_preset_composes_and_writes_the_sbatch_options(hydra_configs, tmp_path, monkeypatch):
    import submitit

    cfg = compose("config", overrides=[
        "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=600",
        f"hydra.sweep.dir={tmp_path}"], return_hydra_config=True)
    launcher_cfg = cfg.hydra.launcher
    assert launcher_cfg._target_.endswith("SlurmLauncher")
    assert launcher_cfg.partition == "gpu" and launcher_cfg.timeout_min == 600
    assert launcher_cfg.gpus_per_node == 1 and launcher_cfg.max_num_timeout > 0
    assert launcher_cfg.signal_delay_s >= 60  # time to save a checkpoint before the kill

    # Run the plugin's own launch() up to the submission, then read the sbatch script.
    executors = []

    class NoSubmit(submitit.AutoExecutor):
        def map_array(self, fn, *args):
            executors.append(self)
            return []

    monkeypatch.setattr(submitit, "AutoExecutor", NoSubmit)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # no srun here
    launcher = instantiate(launcher_cfg)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    launcher.launch([["seed=0"], ["seed=1"]], initial_job_idx=0)
    slurm = executors[0]._executor
    script = slurm._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in ("--partition=gpu", "--time=600", "--gpus-per-node=1", "--cpus-per-task=8",
                 "--mem=32GB", "--signal=USR2@300"):
        assert f"#SBATCH {line}\n" in script, script
    assert slurm.max_num_timeout == launcher_cfg.max_num_timeout


def test_local_preset_composes_with_a_submitit_local_launcher(hydra_configs):
    cfg = compose("config", overrides=["hydra/launcher=local"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("LocalLauncher")
    assert cfg.hydra.launcher.timeout_min >= 60
    # submitit_local hides every GPU unless gpus_per_node says how many a job sees.
    assert cfg.hydra.launcher.gpus_per_node == 1


def test_sweep_dir_of_a_requeued_job_is_the_one_fixed_at_submission(hydra_configs):
    loader = hydra_configs.config_loader()
    master = loader.load_configuration("config", overrides=["experiment=debug"],
                                       run_mode=RunMode.MULTIRUN)
    submitted = master.hydra.sweep.dir  # launch() reads it before pickling the job
    time.sleep(1.1)  # the sweep dir is named to the second
    requeued = pickle.loads(pickle.dumps(master))  # submitit pickles the launcher and its config
    job = loader.load_sweep_config(requeued, ["experiment=debug", "env.task=reach_discrete", "seed=1"])
    assert job.hydra.sweep.dir == submitted
    assert job.hydra.sweep.subdir == "toy_reach_discrete/dreamerv3/seed1"
    fresh = loader.load_configuration("config", overrides=[], run_mode=RunMode.MULTIRUN)
    assert fresh.hydra.sweep.dir != submitted  # without the frozen time the dir would move
