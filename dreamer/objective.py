"""The number a finished run hands back to Hydra: what a search maximises.

By default the mean of the last 3 evaluation scores (config.yaml's
`objective`), read from the run's metrics.jsonl, so a resumed run and a run
made by hand give the same value as the search saw.
"""

from __future__ import annotations

from pathlib import Path

from dreamer.compare import read_scores


class ObjectiveError(ValueError):
    """The run logged nothing the objective can be computed from."""


def run_objective(run_dir: str | Path, metric: str = "eval/score", last: int = 3) -> float:
    """Mean of the last ``last`` values of ``metric`` in ``run_dir``/metrics.jsonl."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise ObjectiveError(f"objective.metric={metric}: {path} does not exist")
    _, _, values = read_scores(path, metric)
    if len(values) == 0:
        hint = " (is eval_every > 0?)" if metric.startswith("eval/") else ""
        raise ObjectiveError(f"objective.metric={metric}: the run logged no {metric}{hint}; "
                             f"choose another with objective.metric=..., e.g. episode/score")
    return float(values[-last:].mean())


def finished_run_objective(cfg, run_dir: str | Path, frames: int, in_sweep: bool) -> float | None:
    """The objective of a run that has trained its ``cfg.steps`` frames.

    A run stopped early (a signal) or one that logged no ``objective.metric``
    has none: a single run then returns None quietly, a sweep's job raises
    :class:`ObjectiveError`, so that a search records the trial as failed
    with the reason instead of a partial score.
    """
    try:
        if frames < int(cfg.steps):
            raise ObjectiveError(f"the run stopped at {frames} of steps={cfg.steps} frames; "
                                 "resume it to get its objective")
        return run_objective(run_dir, str(cfg.objective.metric), int(cfg.objective.last))
    except ObjectiveError:
        if in_sweep:
            raise
        return None
