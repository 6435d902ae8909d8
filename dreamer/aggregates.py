"""Scores aggregated across tasks, as Agarwal et al. (NeurIPS 2021) recommend.

Interquartile mean, mean, median and optimality gap with stratified
bootstrap confidence intervals, performance profiles and the probability of
improvement between two methods, all computed by ``rliable``. Inputs are
score matrices (runs, tasks) of normalised scores: DMC returns divided by
their maximum, 1000, so 1 is a perfect score on every task.

rliable's bootstrap draws from NumPy's global random state; every function
here seeds it and puts the caller's state back, so the same scores always
give the same intervals and nothing else's randomness is touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from dreamer.scores import Curve, seed_scores

DMC_MAX_SCORE = 1000.0
METRICS = ("IQM", "mean", "median", "optimality gap")


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval."""

    point: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.point:.3f} [{self.low:.3f}, {self.high:.3f}]"


@contextlib.contextmanager
def _seeded(seed: int):
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _metric_functions():
    from rliable import metrics

    return {
        "IQM": metrics.aggregate_iqm,
        "mean": metrics.aggregate_mean,
        "median": metrics.aggregate_median,
        "optimality gap": metrics.aggregate_optimality_gap,
    }


def score_matrix(curves_by_task: Mapping[str, Sequence[Curve]], tasks: Sequence[str], budget: float,
                 window: float = 0.05, scale: float = DMC_MAX_SCORE) -> np.ndarray | None:
    """Normalised final-window scores at ``budget``: (runs, tasks), or None.

    Each seed is one run. The stratified bootstrap needs the same number of
    runs on every task, so a method with more seeds on some tasks keeps its
    lowest-numbered seeds up to the smallest count (say 8 of 10). None when a
    task has no seed with data at the budget.
    """
    columns = []
    for task in tasks:
        curves = sorted(curves_by_task.get(task, []), key=lambda c: (c.seed is None, c.seed or 0))
        values = seed_scores(curves, budget, window)
        if len(values) == 0:
            return None
        columns.append(values)
    runs = min(len(column) for column in columns)
    return np.stack([column[:runs] for column in columns], axis=1) / scale


def aggregate_intervals(matrices: Mapping[str, np.ndarray], reps: int = 2000, confidence: float = 0.95,
                        seed: int = 0) -> dict[str, dict[str, Interval]]:
    """Every metric of ``METRICS`` for every method: {method: {metric: Interval}}."""
    from rliable import library

    functions = _metric_functions()

    def all_metrics(scores):
        return np.array([function(scores) for function in functions.values()])

    with _seeded(seed):
        points, intervals = library.get_interval_estimates(
            dict(matrices), all_metrics, reps=reps, confidence_interval_size=confidence)
    return {method: {name: Interval(float(points[method][i]), float(intervals[method][0, i]),
                                    float(intervals[method][1, i]))
                     for i, name in enumerate(functions)}
            for method in matrices}


def performance_profiles(matrices: Mapping[str, np.ndarray], taus: np.ndarray, reps: int = 2000,
                         confidence: float = 0.95, seed: int = 0
                         ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Fraction of runs (over all tasks) scoring above each tau: {method: (profile, low, high)}."""
    from rliable import library

    with _seeded(seed):
        profiles, intervals = library.create_performance_profile(
            dict(matrices), taus, reps=reps, confidence_interval_size=confidence)
    return {m: (profiles[m], intervals[m][0], intervals[m][1]) for m in matrices}


def improvement_probabilities(matrices: Mapping[str, np.ndarray], pairs: Iterable[tuple[str, str]],
                              reps: int = 2000, confidence: float = 0.95, seed: int = 0
                              ) -> dict[tuple[str, str], Interval]:
    """P(X > Y) for each pair (X, Y): the chance that a run of X beats a run of Y
    on a task, averaged over tasks, with a stratified independent bootstrap."""
    from rliable import library, metrics

    pairs = list(pairs)
    data = {f"{x}\t{y}": (matrices[x], matrices[y]) for x, y in pairs}
    with _seeded(seed):
        points, intervals = library.get_interval_estimates(
            data, metrics.probability_of_improvement, reps=reps, confidence_interval_size=confidence)
    result = {}
    for x, y in pairs:
        point, (low, high) = np.ravel(points[f"{x}\t{y}"]), np.ravel(intervals[f"{x}\t{y}"])[:2]
        result[(x, y)] = Interval(float(point[0]), float(low), float(high))
    return result


def common_tasks(groups: Mapping[str, Mapping[str, Sequence[Curve]]], tasks: Sequence[str], budget: float,
                 window: float = 0.05) -> list[str]:
    """The tasks on which every method in ``groups`` has a score at ``budget``."""
    return [task for task in tasks
            if all(len(seed_scores(by_task.get(task, []), budget, window)) for by_task in groups.values())]


def is_finite(interval: Interval) -> bool:
    return all(math.isfinite(v) for v in (interval.point, interval.low, interval.high))


# ------------------------------------------------------------------- report

@dataclasses.dataclass
class BudgetAggregates:
    """Everything aggregated at one budget."""

    budget: int
    tasks: list[str]
    runs: dict[str, int]                            # method -> runs per task used
    intervals: dict[str, dict[str, Interval]]      # method -> metric -> interval
    improvements: dict[tuple[str, str], Interval]  # (X, Y) -> P(X > Y)
    matrices: dict[str, np.ndarray]                 # method -> (runs, tasks), normalised
    left_out: dict[str, list[str]]                  # method -> tasks it lacks at this budget


def comparison_pairs(ours: Sequence[str], published: Sequence[str]) -> list[tuple[str, str]]:
    """Ours against each published method, and each two of ours; with no runs
    of ours, each two published methods."""
    ours, published = list(ours), list(published)
    if not ours:
        return [(x, y) for i, x in enumerate(published) for y in published[i + 1:]]
    return [(x, y) for x in ours for y in published] + \
        [(x, y) for i, x in enumerate(ours) for y in ours[i + 1:]]


def aggregate_at(groups: Mapping[str, Mapping[str, Sequence[Curve]]], ours: Sequence[str],
                 tasks: Sequence[str], budget: int, window: float = 0.05, reps: int = 2000,
                 seed: int = 0) -> BudgetAggregates | None:
    """Aggregates of the methods that have a score on every one of ``tasks``
    at ``budget``; the others are listed in ``left_out``. None if no method has."""
    matrices, left_out = {}, {}
    for method, by_task in groups.items():
        missing = [t for t in tasks if not len(seed_scores(by_task.get(t, []), budget, window))]
        if missing:
            left_out[method] = missing
            continue
        matrices[method] = score_matrix(by_task, tasks, budget, window)
    if not matrices:
        return None
    intervals = aggregate_intervals(matrices, reps, seed=seed)
    present_ours = [m for m in ours if m in matrices]
    published = [m for m in matrices if m not in ours]
    pairs = comparison_pairs(present_ours, published)
    improvements = improvement_probabilities(matrices, pairs, reps, seed=seed) if pairs else {}
    return BudgetAggregates(int(budget), list(tasks), {m: len(x) for m, x in matrices.items()},
                            intervals, improvements, matrices, left_out)


def aggregates_markdown(result: BudgetAggregates, format_budget: Callable[[float], str], reps: int) -> str:
    """The aggregate rows of scores.md for one budget."""
    at = format_budget(result.budget)
    lines = [f"Aggregates at {at} frames over {len(result.tasks)} task(s) "
             f"({', '.join(result.tasks)}); scores normalised by DMC's maximum (return / 1000); "
             f"95% stratified bootstrap intervals ({reps} resamples).", "",
             "| method @" + at + " | runs per task | " + " | ".join(METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for method, by_metric in result.intervals.items():
        lines.append(f"| {method} | {result.runs[method]} | "
                     + " | ".join(str(by_metric[name]) for name in METRICS) + " |")
    if result.improvements:
        lines += ["", f"| probability of improvement @{at} | P(X > Y) |", "|---|---|"]
        lines += [f"| {x} > {y} | {interval} |" for (x, y), interval in result.improvements.items()]
    for method, missing in result.left_out.items():
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        lines.append(f"\n{method}: not aggregated at {at} (no score on {shown})")
    return "\n".join(lines)
