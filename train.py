"""Train a world-model agent. Examples:

    python train.py                                   # quickstart: learns on a laptop CPU
    python train.py env=dmc env.task=walker_walk      # base settings (the quickstart is for env=toy only)
    python train.py experiment=dmc_vision env.task=walker_walk seed=3
    python train.py -m env.task=walker_walk,cheetah_run seed=0,1,2 hydra/launcher=submitit_local

Re-running a command with the same ``hydra.run.dir`` resumes that run.
"""

import os
import sys

import hydra
from omegaconf import DictConfig

from dreamer.checkpoint import CheckpointError
from dreamer.run import run
from dreamer.validate import ConfigError

# Mistakes in what was asked for: one line and exit status 2, no traceback
# (HYDRA_FULL_ERROR=1 shows it).
USER_ERRORS = (ConfigError, CheckpointError)


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except USER_ERRORS as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
