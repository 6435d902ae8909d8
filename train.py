"""Train a world-model agent. Examples:

    python train.py                                   # quickstart: learns on a laptop CPU
    python train.py env=dmc env.task=walker_walk      # base settings (the quickstart is for env=toy only)
    python train.py experiment=dmc_vision env.task=walker_walk seed=3
    python train.py -m env.task=walker_walk,cheetah_run seed=0,1,2 hydra/launcher=submitit_local

Re-running a command with the same ``hydra.run.dir`` resumes that run. A
mistake in what was asked for (a bad override or setting, an unknown task, a
damaged checkpoint) ends in one ``error:`` line and exit status 2;
``HYDRA_FULL_ERROR=1`` shows the traceback.
"""

import hydra
from omegaconf import DictConfig

from dreamer.cli import report_user_errors
from dreamer.run import run


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
@report_user_errors
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
