"""Hyperparameter search: Hydra's Optuna sweeper, made resumable.

The search presets (configs/search/) select
``hydra_plugins.dreamer_search.ResumableOptunaSweeper`` (Hydra finds sweepers
only in the ``hydra_plugins`` package), the plugin's ``OptunaSweeper`` with
three changes a long search needs, made here:

- the sweep directory is created before the study, so the SQLite storage
  (``<sweep dir>/optuna.db``) can be opened;
- ``n_trials`` is the study's total: run the same command again with the same
  ``hydra.sweep.dir`` and only the trials still missing are run. Trials that a
  stopped search left running are marked failed (their run directories stay);
- job numbers continue from the study's trial count, so a resumed search
  never reuses an earlier trial's run directory (``trial<N>``), which would
  resume that trial's checkpoint instead of starting fresh.

One search per storage at a time: a second search running against the same
study would see the first one's running trials as stale.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def prepare_resume(impl) -> bool:
    """Set up the plugin's sweeper ``impl`` to continue its stored study.

    Creates the sweep directory, lowers ``impl.n_trials`` to the trials still
    missing and moves ``impl.job_idx`` past the trials run before. Returns
    False when nothing is left to run.
    """
    Path(str(impl.sweep_dir)).mkdir(parents=True, exist_ok=True)
    if impl.storage:
        done, started = resume_study(str(impl.storage), impl.study_name)
        if started:
            remaining = max(int(impl.n_trials) - done, 0)
            log.info(f"Resuming study {impl.study_name!r}: {done} trials finished, "
                     f"{remaining} of n_trials={impl.n_trials} to go")
            impl.n_trials = remaining
            impl.job_idx = started
    if impl.n_trials == 0:
        log.info("Nothing left to run: the study already has n_trials finished trials")
        return False
    return True


def resume_study(storage: str, study_name: str | None) -> tuple[int, int]:
    """(finished trials, all trials) of a stored study, (0, 0) if there is none.

    Trials still marked running belong to a search that was stopped; they are
    marked failed so that the sampler does not wait on them.
    """
    import optuna
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no study of that name yet
        return 0, 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        log.warning(f"Trial {trial.number} was left running by a stopped search; marking it failed")
        study.tell(trial.number, state=TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state == TrialState.COMPLETE for t in trials)
    return done, len(trials)
