"""Compare training runs with each other and with published baselines.

    python -m dreamer.compare [[LABEL=]RUN_DIR ...] [--baseline dreamerv3 [tdmpc2_pixels ...] | none]
        [--suite dmc_vision|dmc_proprio] [--out DIR] [--budgets 100k 500k 1M]
        [--metric auto|eval/score|episode/score] [--reps 2000] [--aggregate-budget 1M]

Writes one PNG per task, an overview grid PNG and a markdown table of scores
at the budgets (also printed), with aggregates across tasks (IQM, mean,
median, optimality gap, probability of improvement; dreamer/aggregates.py)
and their plots (aggregates.png, performance_profile.png, improvement.png). Without --baseline, each run is drawn with the
published curves named like its algo (a `dreamerv3_2023` run with
`dreamerv3_2023`). See docs/compare.md for the conventions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dreamer.aggregates import (
    METRICS, BudgetAggregates, aggregate_at, aggregates_markdown, performance_profiles)
from dreamer.scores import (
    BASELINE_SUITES, Curve, aggregate, available_baselines, baseline_origin, budget_score,
    format_budget, load_baseline, normalise_task, parse_budget)

SCORE_KEYS = ("eval/score", "episode/score")
PUBLISHED = " (published)"
NO_BASELINE = "none"  # `--baseline none`: overlay nothing
_VISION_WORDS = {"image", "images", "pixels", "pixel", "rgb", "vision"}
_PROPRIO_WORDS = {"state", "states", "proprio", "proprioceptive", "vector"}


class CompareError(Exception):
    """A problem with the user's input, reported without a traceback."""


@dataclasses.dataclass
class Run:
    """One run directory: its identity and its score curve."""

    path: Path
    task: str
    method: str
    seed: int | None
    suite: str | None  # dmc_vision / dmc_proprio when the config tells, else None
    curve: Curve
    env_suite: str | None = None  # env.suite of the config: dmc, toy, gym, atari, ...


# ----------------------------------------------------------------- reading runs

def read_scores(path: Path, metric: str = "auto") -> tuple[str | None, np.ndarray, np.ndarray]:
    """Read (metric used, frames (N,), scores (N,)) from a metrics.jsonl file.

    metric: a key such as `eval/score`, or `auto` for `eval/score` when the
    file has it and `episode/score` otherwise.
    """
    rows = []
    with open(path) as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise CompareError(f"{path}, line {number}: not valid JSON ({error.msg}): "
                                   f"{line.strip()[:80]!r}") from None
            if not isinstance(row, dict) or "step" not in row:
                raise CompareError(f"{path}, line {number}: expected a JSON object "
                                   f"with a 'step' key, got {line.strip()[:80]!r}")
            rows.append(row)
    if metric == "auto":
        metric = next((k for k in SCORE_KEYS if any(k in row for row in rows)), None)
        if metric is None:
            return None, np.zeros(0), np.zeros(0)
    points = [(float(row["step"]), float(row[metric])) for row in rows
              if row.get(metric) is not None]
    frames, scores = (np.array(v) for v in zip(*points)) if points else (np.zeros(0), np.zeros(0))
    return metric, frames, scores


def _select(cfg, key: str, source: Path):
    try:
        return OmegaConf.select(cfg, key, default=None)
    except OmegaConfBaseException as error:
        raise CompareError(f"{source}: cannot read {key!r}: {error}") from None


def _load_yaml(path: Path):
    return OmegaConf.load(path) if path.exists() else OmegaConf.create()


def _algo_fallback(run_dir: Path) -> str | None:
    hydra = _load_yaml(run_dir / ".hydra" / "hydra.yaml")
    choice = _select(hydra, "hydra.runtime.choices.algo", run_dir / ".hydra" / "hydra.yaml")
    if choice:
        return str(choice)
    overrides = _load_yaml(run_dir / ".hydra" / "overrides.yaml")
    for item in (overrides if OmegaConf.is_list(overrides) else []):
        key, _, value = str(item).lstrip("+~").partition("=")
        if key == "algo" and value:
            return value
    return None


def _infer_suite(cfg, run_dir: Path) -> str | None:
    suite = _select(cfg, "env.suite", run_dir)
    if suite in BASELINE_SUITES:
        return suite
    hydra = _load_yaml(run_dir / ".hydra" / "hydra.yaml")
    experiment = _select(hydra, "hydra.runtime.choices.experiment", run_dir)
    if experiment in BASELINE_SUITES:
        return experiment
    if suite not in (None, "dmc"):
        return None
    for key in ("env.obs", "env.obs_type", "env.observation", "env.obs_keys"):
        value = _select(cfg, key, run_dir)
        words = {str(v).lower() for v in (value if OmegaConf.is_list(value) else [value])}
        if words & _VISION_WORDS:
            return "dmc_vision"
        if words & _PROPRIO_WORDS:
            return "dmc_proprio"
    for key in ("env.image", "env.pixels", "env.from_pixels"):
        value = _select(cfg, key, run_dir)
        if isinstance(value, bool):
            return "dmc_vision" if value else "dmc_proprio"
    return None


def read_run(run_dir: Path, metric: str = "auto",
             log: Callable[[str], None] = print) -> Run | None:
    """Read one run directory; None (with a note) when it has no scores yet."""
    config_path = run_dir / ".hydra" / "config.yaml"
    try:
        cfg = OmegaConf.load(config_path)
    except Exception as error:  # a YAML parse error names no file by itself
        raise CompareError(f"{config_path}: cannot parse the config ({error})") from None
    task = _select(cfg, "env.task", config_path)
    if task is None:
        raise CompareError(f"{config_path}: no env.task in the config")
    method = _select(cfg, "algo.name", config_path)
    if method is None:
        method = _algo_fallback(run_dir) or "unknown"
        log(f"note: {config_path} has no algo.name; using {method!r} from the Hydra "
            "algo choice (.hydra/hydra.yaml or overrides.yaml)")
    seed = _select(cfg, "seed", config_path)
    _, frames, scores = read_scores(run_dir / "metrics.jsonl", metric)
    if len(frames) == 0:
        wanted = metric if metric != "auto" else " or ".join(SCORE_KEYS)
        log(f"note: skipping {run_dir}: no {wanted} in metrics.jsonl yet")
        return None
    task = normalise_task(str(task))
    curve = Curve(task, str(method), None if seed is None else int(seed), frames, scores)
    env_suite = _select(cfg, "env.suite", config_path)
    return Run(run_dir, task, str(method), curve.seed, _infer_suite(cfg, run_dir), curve,
               None if env_suite is None else str(env_suite))


def split_label(argument: str | Path) -> tuple[str | None, Path]:
    """`LABEL=PATH` -> (LABEL, PATH); a plain path -> (None, path)."""
    text = str(argument)
    label, sep, path = text.partition("=")
    if sep and label and "/" not in label and path:
        return label, Path(path)
    return None, Path(text)


def find_runs(paths: Sequence[Path | str], metric: str = "auto",
              log: Callable[[str], None] = print) -> list[Run]:
    """All run directories (metrics.jsonl + .hydra/config.yaml) under `paths`.

    A path given as `LABEL=PATH` names the method of every run under it
    LABEL instead of its algo, so two settings of one preset can be compared.
    """
    runs = []
    for argument in paths:
        label, root = split_label(argument)
        if not root.exists():
            raise CompareError(f"{root} does not exist")
        found = 0
        for metrics in sorted(root.rglob("metrics.jsonl")):
            if not (metrics.parent / ".hydra" / "config.yaml").exists():
                log(f"note: skipping {metrics.parent}: no .hydra/config.yaml next to metrics.jsonl")
                continue
            found += 1
            run = read_run(metrics.parent, metric, log)
            if run is not None:
                if label is not None:
                    run = dataclasses.replace(run, method=label,
                                              curve=dataclasses.replace(run.curve, method=label))
                runs.append(run)
        if found == 0:
            raise CompareError(f"No runs found under {root}: a run directory holds "
                               "metrics.jsonl and .hydra/config.yaml")
    if not runs:
        raise CompareError("None of the runs found has any score yet")
    return runs


def resolve_suite(runs: Sequence[Run], suite: str | None, log: Callable[[str], None] = print) -> str:
    """The baseline suite: the one asked for, else the one the runs' configs name."""
    if suite is not None:
        if suite not in BASELINE_SUITES:
            raise CompareError(f"Unknown suite {suite!r}; valid suites: {', '.join(BASELINE_SUITES)}")
        return suite
    seen = {run.suite for run in runs} - {None}
    if len(seen) > 1:
        raise CompareError(f"The runs come from several suites ({', '.join(sorted(seen))}); "
                           "choose one with --suite")
    if seen:
        return seen.pop()
    log(f"note: the configs do not say vision or proprio; comparing with "
        f"{BASELINE_SUITES[0]} (choose with --suite)")
    return BASELINE_SUITES[0]


def default_baselines(runs: Sequence[Run], suite: str | None,
                      log: Callable[[str], None] = print) -> tuple[str | None, list[str]]:
    """(suite, names) of the shipped baselines named like the runs' algos.

    A run of algo `dreamerv3_2023` gets the published `dreamerv3_2023` curves,
    the same agent version. Only DMC runs count; runs of several suites get
    nothing without --suite. Logs one line naming what is overlaid and why.
    """
    dmc = [r for r in runs if r.env_suite in (None, "dmc", *BASELINE_SUITES)]
    methods = {r.method for r in dmc}
    suites = [suite] if suite else sorted({r.suite for r in dmc} - {None}) or [BASELINE_SUITES[0]]
    matches = {s: sorted(methods & set(available_baselines(s))) for s in suites}
    if not any(matches.values()):
        return None, []
    if len(suites) > 1:
        log(f"note: not overlaying the published curves of {', '.join(sorted(methods))}: "
            f"the runs come from several suites ({', '.join(suites)}); choose one with --suite")
        return None, []
    suite = resolve_suite(dmc, suite, log)
    names = matches[suite]
    described = " and ".join(
        f"{name} ({baseline_origin(suite, name)}, baselines/{suite}/{name}.json.gz) "
        f"for runs of algo {name}" for name in names)
    log(f"overlaying published {described}: the same agent version as the run "
        f"(--baseline NAME... to choose, --baseline {NO_BASELINE} for none)")
    return suite, names


# ------------------------------------------------------------ grouping, table

Groups = dict[str, dict[str, list[Curve]]]  # method label -> task -> curves (one per seed)


def group_runs(runs: Sequence[Run]) -> Groups:
    """Group runs by method and task."""
    groups: Groups = defaultdict(lambda: defaultdict(list))
    for run in runs:
        groups[run.method][run.task].append(run.curve)
    return {m: dict(t) for m, t in sorted(groups.items())}


def group_baselines(suite: str, names: Sequence[str], tasks: Sequence[str]) -> Groups:
    """Published curves of the named baselines for `tasks`, labelled `<name> (published)`."""
    valid = available_baselines(suite)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise CompareError(f"Unknown baseline {unknown[0]!r} for suite {suite!r}; "
                           f"valid names: {', '.join(valid)}")
    groups: Groups = {}
    for name in names:
        by_task = defaultdict(list)
        for curve in load_baseline(suite, name):
            if curve.task in tasks:
                by_task[curve.task].append(curve)
        groups[name + PUBLISHED] = dict(by_task)
    return groups


@dataclasses.dataclass
class ScoreTable:
    """Scores per task (rows) and (method, budget) (columns); NaN = no data."""

    tasks: list[str]
    columns: list[tuple[str, int]]
    values: np.ndarray  # (tasks, columns)

    def task_mean(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean over tasks with data (C,) and how many tasks had data (C,)."""
        present = ~np.isnan(self.values)
        counts = present.sum(axis=0)
        sums = np.where(present, self.values, 0).sum(axis=0)
        return np.where(counts > 0, sums / np.maximum(counts, 1), math.nan), counts

    def to_markdown(self) -> str:
        header = ["task"] + [f"{m} @{format_budget(b)}" for m, b in self.columns]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for task, row in zip(self.tasks, self.values):
            lines.append("| " + " | ".join([task] + [_cell(v) for v in row]) + " |")
        means, counts = self.task_mean()
        cells = [_cell(v) + ("" if c in (0, len(self.tasks)) else f" ({c}/{len(self.tasks)})")
                 for v, c in zip(means, counts)]
        lines.append("| " + " | ".join(["**mean**"] + cells) + " |")
        return "\n".join(lines)


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def build_table(groups: Groups, tasks: Sequence[str], budgets: Sequence[int],
                window: float = 0.05) -> ScoreTable:
    """Seed-mean final-window score of every method on every task at every budget."""
    columns = [(method, int(b)) for method in groups for b in budgets]
    values = np.full((len(tasks), len(columns)), math.nan)
    for i, task in enumerate(tasks):
        for j, (method, budget) in enumerate(columns):
            curves = groups[method].get(task, [])
            if curves:
                values[i, j] = budget_score(curves, budget, window)
    return ScoreTable(list(tasks), columns, values)


# ------------------------------------------------------------------- plotting

def _draw(ax, task: str, groups: Groups, colors: dict[str, str], xmax: float,
          points: int, cache: dict, seeds_in_label: bool = True) -> None:
    grid = np.linspace(0, xmax, points + 1)[1:]
    for method, by_task in groups.items():
        curves = by_task.get(task)
        if not curves:
            continue
        style = "--" if method.endswith(PUBLISHED) else "-"
        finals = [c for c in curves if c.final]
        if finals:
            value = float(np.mean([c.scores[-1] for c in finals]))
            ax.axhline(value, color=colors[method], linestyle=":", linewidth=1.2,
                       label=f"{method} at {format_budget(finals[0].frames[-1])}")
            continue
        key = (method, task, xmax)
        if key not in cache:
            cache[key] = aggregate(curves, grid)
        mean, low, high = cache[key]
        label = f"{method}, {len(curves)} seeds" if seeds_in_label else method
        ax.plot(grid, mean, style, color=colors[method], label=label)
        ax.fill_between(grid, low, high, color=colors[method], alpha=0.2, linewidth=0)
    ax.set_title(task)
    ax.set_xlim(0, xmax)
    ax.set_xlabel("environment frames")
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)


def _colors(methods: Sequence[str]) -> dict[str, str]:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors + colormaps["Dark2"].colors
    return {m: palette[i % len(palette)] for i, m in enumerate(methods)}


def plot(groups: Groups, tasks: Sequence[str], out: Path, xmax: dict[str, float],
         points: int = 100, log: Callable[[str], None] = print) -> list[Path]:
    """One PNG per task and an overview grid; returns the paths written."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    colors, cache, written = _colors(list(groups)), {}, []
    for task in tasks:
        fig = Figure(figsize=(6, 4), dpi=100)
        ax = fig.subplots()
        _draw(ax, task, groups, colors, xmax[task], points, cache)
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(out / f"{task}.png")
        fig.savefig(written[-1])
        log(f"wrote {written[-1]}")
    cols = min(4, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig = Figure(figsize=(4 * cols, 3.2 * rows + 0.8), dpi=80, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, task in zip(axes, tasks):
        _draw(ax, task, groups, colors, xmax[task], points, cache, seeds_in_label=False)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    handles = {}
    for ax in axes[:len(tasks)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center",
               ncol=min(4, len(handles)), fontsize=8)
    written.append(out / "overview.png")
    fig.savefig(written[-1])
    log(f"wrote {written[-1]}")
    return written


def plot_aggregates(result: BudgetAggregates, out: Path, colors: dict[str, str], reps: int = 2000,
                    log: Callable[[str], None] = print) -> list[Path]:
    """aggregates.png (the four metrics), performance_profile.png and, with
    two methods or more, improvement.png (probability of improvement)."""
    from matplotlib.figure import Figure

    at = format_budget(result.budget)
    methods = list(result.intervals)
    written = []
    fig = Figure(figsize=(3.2 * len(METRICS), 0.45 * len(methods) + 1.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(METRICS), sharey=True)
    for ax, name in zip(axes, METRICS):
        for row, method in enumerate(methods):
            interval = result.intervals[method][name]
            ax.barh(row, interval.high - interval.low, left=interval.low, height=0.6,
                    color=colors[method], alpha=0.75)
            ax.vlines(interval.point, row - 0.3, row + 0.3, color="black", linewidth=1.5)
        ax.set_title(name)
        ax.set_xlabel("normalised score")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(methods)), methods)
    axes[0].invert_yaxis()
    fig.suptitle(f"{len(result.tasks)} tasks at {at} frames; 95% stratified bootstrap intervals")
    written.append(out / "aggregates.png")
    fig.savefig(written[-1])

    taus = np.linspace(0.0, 1.0, 81)
    profiles = performance_profiles(result.matrices, taus, reps)
    fig = Figure(figsize=(6, 4), dpi=100, layout="constrained")
    ax = fig.subplots()
    for method, (profile, low, high) in profiles.items():
        ax.plot(taus, profile, color=colors[method], label=method)
        ax.fill_between(taus, low, high, color=colors[method], alpha=0.2, linewidth=0)
    ax.set_xlabel("normalised score tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_title(f"Performance profile, {len(result.tasks)} tasks at {at} frames")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    written.append(out / "performance_profile.png")
    fig.savefig(written[-1])

    if result.improvements:
        pairs = list(result.improvements)
        fig = Figure(figsize=(6, 0.45 * len(pairs) + 1.4), dpi=100, layout="constrained")
        ax = fig.subplots()
        for row, pair in enumerate(pairs):
            interval = result.improvements[pair]
            ax.barh(row, interval.high - interval.low, left=interval.low, height=0.6,
                    color=colors[pair[0]], alpha=0.75)
            ax.vlines(interval.point, row - 0.3, row + 0.3, color="black", linewidth=1.5)
        ax.axvline(0.5, color="gray", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(pairs)), [f"P({x} > {y})" for x, y in pairs])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability of improvement")
        ax.set_title(f"{len(result.tasks)} tasks at {at} frames")
        ax.grid(axis="x", alpha=0.3)
        written.append(out / "improvement.png")
        fig.savefig(written[-1])
    for path in written:
        log(f"wrote {path}")
    return written


# ------------------------------------------------------------------------ main

def compare(paths: Sequence[Path | str], baselines: Sequence[str] | None = None,
            suite: str | None = None, out: Path = Path("comparison"),
            budgets: Sequence[int] = (100_000, 500_000, 1_000_000),
            metric: str = "auto", window: float = 0.05, reps: int = 2000,
            aggregate_budget: int | None = None,
            log: Callable[[str], None] = print) -> ScoreTable:
    """Find runs, overlay baselines, write the PNGs and `scores.md`; return the table.

    baselines: published methods to overlay; None for those named like the
    runs' algos (`default_baselines`); () or ["none"] for none. With no
    `paths`, the named baselines alone are compared on the tasks they share.
    reps: bootstrap resamples of the aggregates; aggregate_budget: the budget
    of the aggregate plots (None: the largest budget at which a method of
    ours, else any method, can be aggregated).
    """
    if baselines is not None and NO_BASELINE in baselines:
        if len(baselines) > 1:
            raise CompareError(f"--baseline {NO_BASELINE} cannot be combined with other names")
        baselines = ()
    if paths:
        runs = find_runs(paths, metric, log)
        groups = group_runs(runs)
        tasks = sorted({run.task for run in runs})
        log(f"found {len(runs)} runs: {len(tasks)} tasks, methods {', '.join(groups)}")
    else:
        if not baselines:
            raise CompareError("nothing to compare: give run directories, or published "
                               "baselines with --baseline NAME ...")
        runs, groups, tasks = [], {}, []
    ours = list(groups)
    if baselines is None:
        suite, baselines = default_baselines(runs, suite, log)
    other = sorted({r.env_suite for r in runs} - {None, "dmc", *BASELINE_SUITES})
    if baselines and runs and len(other) == len({r.env_suite for r in runs}):
        log(f"note: no published baselines for {', '.join(other)} runs (baselines cover "
            f"{', '.join(BASELINE_SUITES)}); plotting the runs alone")
        baselines = ()
    if baselines:
        suite = resolve_suite(runs, suite, log)
        if not runs:
            tasks = shared_baseline_tasks(suite, baselines)
            log(f"comparing published {', '.join(baselines)} on the {len(tasks)} {suite} tasks they share")
        groups.update(group_baselines(suite, baselines, tasks))
        missing = [name for name in baselines if not groups[name + PUBLISHED]]
        if missing:
            log(f"note: no {suite} data on these tasks for {', '.join(missing)}")
    if runs:
        xmax = {task: max(float(run.curve.frames.max()) for run in runs if run.task == task)
                for task in tasks}
    else:
        xmax = {task: float(max(budgets)) for task in tasks}
    out.mkdir(parents=True, exist_ok=True)
    table = build_table(groups, tasks, budgets, window)
    longest = max(xmax.values())
    if longest < min(budgets) * (1 - window):
        log(f"note: the runs end at {format_budget(longest)} frames, before the smallest "
            f"budget; choose budgets with --budgets, e.g. --budgets {format_budget(longest)}")
    plot(groups, tasks, out, xmax, log=log)
    text = table.to_markdown()
    curve_groups = {m: by_task for m, by_task in groups.items()
                    if not any(c.final for curves in by_task.values() for c in curves)}
    results = {}
    for budget in sorted(set(budgets) | ({aggregate_budget} if aggregate_budget else set())):
        result = aggregate_at(curve_groups, ours, tasks, budget, window, reps)
        if result is not None:
            results[budget] = result
    sections = [aggregates_markdown(results[b], format_budget, reps) for b in budgets if b in results]
    chosen = aggregate_budget or next(
        (b for b in sorted(results, reverse=True) if set(ours) & set(results[b].intervals)),
        max(results, default=None))
    if chosen is not None and chosen in results:
        plot_aggregates(results[chosen], out, _colors(list(groups)), reps, log)
    elif aggregate_budget is not None:
        log(f"note: no method has scores on every task at {format_budget(aggregate_budget)}; "
            "no aggregate plots")
    aggregates_text = "\n\n".join(sections)
    (out / "scores.md").write_text(
        f"Mean over seeds of the mean score in the final {window:.0%} of each budget "
        f"(environment frames); '-' = no data.\n\n{text}\n"
        + (f"\n{aggregates_text}\n" if sections else ""))
    log(f"wrote {out / 'scores.md'}\n\n{text}" + (f"\n\n{aggregates_text}" if sections else ""))
    return table


def shared_baseline_tasks(suite: str, names: Sequence[str]) -> list[str]:
    """The tasks every named baseline has curves for."""
    valid = available_baselines(suite)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise CompareError(f"Unknown baseline {unknown[0]!r} for suite {suite!r}; "
                           f"valid names: {', '.join(valid)}")
    shared = None
    for name in names:
        tasks = {curve.task for curve in load_baseline(suite, name)}
        shared = tasks if shared is None else shared & tasks
    if not shared:
        raise CompareError(f"{', '.join(names)} share no {suite} task")
    return sorted(shared)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dreamer.compare",
        description="Plot runs against published baselines and tabulate scores at budgets.")
    parser.add_argument("runs", nargs="*",
                        help="folders searched recursively for runs; LABEL=PATH names their method LABEL "
                             "(none: compare the --baseline methods alone)")
    parser.add_argument("--baseline", nargs="*", default=None,
                        help="published methods to overlay, e.g. dreamerv3 drqv2, or "
                             f"'{NO_BASELINE}' (default: those named like the runs' algos)")
    parser.add_argument("--suite", choices=BASELINE_SUITES,
                        help="baseline suite (default: from the runs' configs)")
    parser.add_argument("--out", type=Path, default=Path("comparison"),
                        help="output folder (default: comparison)")
    parser.add_argument("--budgets", nargs="+", default=["100k", "500k", "1M"],
                        help="frame budgets of the table (default: 100k 500k 1M)")
    parser.add_argument("--metric", default="auto",
                        help="score key: auto (eval/score if logged, else episode/score), "
                             "eval/score or episode/score")
    parser.add_argument("--window", type=float, default=0.05,
                        help="final window as a fraction of the budget (default: 0.05)")
    parser.add_argument("--reps", type=int, default=2000,
                        help="bootstrap resamples of the aggregates (default: 2000)")
    parser.add_argument("--aggregate-budget", default=None,
                        help="budget of the aggregate plots (default: the largest budget with "
                             "scores of your runs on every task)")
    args = parser.parse_args(argv)
    try:
        budgets = [parse_budget(b) for b in args.budgets]
        aggregate_budget = parse_budget(args.aggregate_budget) if args.aggregate_budget else None
        if args.reps < 1:
            raise CompareError(f"--reps {args.reps}: must be an integer > 0")
        compare(args.runs, args.baseline, args.suite, args.out, budgets, args.metric, args.window,
                args.reps, aggregate_budget)
    except (CompareError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
