"""Hydra plugin: the resumable Optuna sweeper of dreamer/search.py.

Hydra loads sweepers only from the ``hydra_plugins`` namespace package; the
logic lives in :mod:`dreamer.search`.
"""

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

from dreamer.search import prepare_resume


class ResumableOptunaSweeper(OptunaSweeper):
    def sweep(self, arguments: list[str]) -> None:
        if prepare_resume(self.sweeper):
            return super().sweep(arguments)
        return None
