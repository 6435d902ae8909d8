"""Train a world-model agent. Examples:

    python train.py                                   # quickstart: learns on a laptop CPU
    python train.py env=dmc env.task=walker_walk      # base settings (the quickstart is for env=toy only)
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


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
@report_user_errors
def main(cfg: DictConfig) -> float | None:
    counters = run(cfg)
    return finished_run_objective(cfg, HydraConfig.get().runtime.output_dir, counters.frames, in_sweep())


if __name__ == "__main__":
    main()
