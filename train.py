"""Train a world-model agent. Examples:

    python train.py                                   # quickstart: DMC finger_spin from pixels on a laptop CPU
    python train.py env.task=reacher_easy             # the quickstart on another DMC task
    python train.py experiment=toy                    # the built-in toy task, in minutes
    python train.py experiment=none env=gym env.task=CartPole-v1  # base settings
    python train.py experiment=dmc_vision env.task=walker_walk seed=3
    python train.py -m env.task=walker_walk,cheetah_run seed=0,1,2 hydra/launcher=submitit_local

Re-running a command with the same ``hydra.run.dir`` resumes that run. A
finished run returns its objective (config.yaml's ``objective``: by default
the mean of the last 3 evaluation scores), which a search maximises:

    python train.py -m experiment=debug search=rates hydra.sweeper.n_trials=4

A
mistake in what was asked for (a bad override or setting, an unknown task, a
damaged checkpoint) ends in one ``error:`` line and exit status 2;
``HYDRA_FULL_ERROR=1`` shows the traceback.
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dreamer.cli import in_sweep, report_user_errors
from dreamer.objective import finished_run_objective
from dreamer.run import run
from dreamer.validate import ConfigError


def check_experiment_fits_env() -> None:
    """The default experiment (quickstart) is a DMC preset: naming another env
    without naming an experiment would train that env on DMC's task."""
    choices = HydraConfig.get().runtime.choices
    experiment, env = choices.get("experiment"), choices.get("env")
    if experiment == "quickstart" and env != "dmc":
        raise ConfigError(
            f"env={env} with experiment=quickstart (the default), which trains DMC finger_spin; "
            f"name an experiment for env={env}: experiment=none (the base settings)"
            + (", experiment=toy" if env == "toy" else ", experiment=atari100k" if env == "atari" else "")
        )


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
@report_user_errors
def main(cfg: DictConfig) -> float | None:
    check_experiment_fits_env()
    counters = run(cfg)
    return finished_run_objective(cfg, HydraConfig.get().runtime.output_dir, counters.frames, in_sweep())


if __name__ == "__main__":
    main()
