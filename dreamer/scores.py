"""Score conventions shared by user runs and published baselines.

Every x-axis here counts environment frames, action repeat included (a DMC
episode is 1000 frames whatever the action repeat). The score of a run at a
budget B is the mean of all its scores with frames in the final window
[B * (1 - window), B], and a method's score is that value averaged over the
seeds that have data in the window. This is how the DreamerV3 paper turns
its score files into table entries (1M frames: the scores from 950k to 1M).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

BASELINE_DIR = Path(__file__).resolve().parent.parent / "baselines"
BASELINE_SUITES = ("dmc_vision", "dmc_proprio")
FORMAT_VERSION = 1

# Short domain names used by other codebases, mapped to dm_control's names.
_DOMAIN_ALIASES = {"cup": "ball_in_cup", "pointmass": "point_mass"}


@dataclasses.dataclass
class Curve:
    """One run (one seed) of one method on one task.

    frames: (N,) environment frames, increasing. scores: (N,) episode returns.
    final: True for a published end-of-training number stored as one point.
    """

    task: str
    method: str
    seed: int | None
    frames: np.ndarray
    scores: np.ndarray
    final: bool = False

    def __post_init__(self):
        self.frames = np.asarray(self.frames, dtype=np.float64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.frames.shape != self.scores.shape or self.frames.ndim != 1:
            raise ValueError(
                f"{self.method}/{self.task}: frames {self.frames.shape} and "
                f"scores {self.scores.shape} must be 1-D of equal length")
        order = np.argsort(self.frames, kind="stable")
        self.frames, self.scores = self.frames[order], self.scores[order]


def normalise_task(name: str) -> str:
    """Return a task name in dm_control's `domain_task` form.

    Accepts `dmc_walker_walk`, `walker-walk`, `cup-catch`, `walker_walk`.
    """
    name = name.strip().lower().replace("-", "_")
    if name.startswith("dmc_"):
        name = name[len("dmc_"):]
    domain, _, rest = name.partition("_")
    domain = _DOMAIN_ALIASES.get(domain, domain)
    return f"{domain}_{rest}" if rest else domain


def parse_budget(text: str | float | int) -> int:
    """Parse a frame budget such as `100k`, `1M`, `1.5m` or `500000`."""
    if isinstance(text, (int, float)):
        return int(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmM]?)\s*", text)
    if not match:
        raise ValueError(
            f"Cannot read budget {text!r}; use a number of frames such as "
            "100000, 100k or 1M")
    value = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[match.group(2).lower()]
    return int(round(value))


def format_budget(frames: float) -> str:
    """Short label for a frame count: 100000 -> '100k', 1000000 -> '1M'."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if frames >= scale:
            return f"{frames / scale:g}{suffix}"
    return f"{frames:g}"


def final_window_score(frames: np.ndarray, scores: np.ndarray, budget: float,
                       window: float = 0.05) -> float:
    """Mean of the scores whose frames lie in [budget * (1 - window), budget].

    frames, scores: (N,), frames increasing. Sparse evaluation curves (one
    point every 100k frames, say) can have no point in the window; then the
    score is interpolated linearly at the budget between the points around
    the window. Never extrapolates: NaN when the run stops before the window.
    """
    if not 0 < window <= 1:
        raise ValueError(f"window must be in (0, 1], got {window}")
    frames, scores = np.asarray(frames, float), np.asarray(scores, float)
    inside = (frames >= budget * (1 - window)) & (frames <= budget)
    if inside.any():
        return float(scores[inside].mean())
    if len(frames) and frames[0] < budget < frames[-1]:
        return float(np.interp(budget, frames, scores))
    return math.nan


def seed_scores(curves: Iterable[Curve], budget: float, window: float = 0.05) -> np.ndarray:
    """Final-window score of each seed that has data in the window: (S,)."""
    values = [final_window_score(c.frames, c.scores, budget, window) for c in curves]
    return np.array([v for v in values if not math.isnan(v)])


def budget_score(curves: Iterable[Curve], budget: float, window: float = 0.05) -> float:
    """A method's score on a task at a budget: the seed mean of final-window scores."""
    values = seed_scores(curves, budget, window)
    return float(values.mean()) if len(values) else math.nan


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95,
                 samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (S,) over seeds.

    Resamples the seeds with replacement `samples` times using a fixed RNG
    seed, so the same data always gives the same interval. NaNs are ignored;
    one value gives a zero-width interval, none gives (NaN, NaN).
    """
    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(samples, len(values)))
    means = values[picks].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def resample(curve: Curve, grid: np.ndarray) -> np.ndarray:
    """Values of one curve on an evenly spaced frame grid (G,).

    Grid point i gets the mean of the scores in its trailing bin
    (grid[i-1], grid[i]], or a linear interpolation where that bin is empty.
    NaN where the grid point lies outside the run and its bin holds no score.
    """
    grid = np.asarray(grid, float)
    out = np.full(len(grid), math.nan)
    if len(curve.frames) == 0:
        return out
    covered = (grid >= curve.frames[0]) & (grid <= curve.frames[-1])
    out[covered] = np.interp(grid[covered], curve.frames, curve.scores)
    step = grid[1] - grid[0] if len(grid) > 1 else max(grid[0], 1.0)
    edges = np.concatenate([[grid[0] - step], grid])
    # Binning averages out the episode-to-episode noise of dense score logs.
    bins = np.searchsorted(edges, curve.frames, side="left") - 1
    for index in np.unique(bins):
        if 0 <= index < len(grid):
            out[index] = curve.scores[bins == index].mean()
    return out


def aggregate(curves: Sequence[Curve], grid: np.ndarray, confidence: float = 0.95,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seed mean and bootstrap interval of several curves on a frame grid.

    Returns (mean, low, high), each (G,); NaN where no seed has data.
    """
    values = np.stack([resample(c, grid) for c in curves])  # (S, G)
    mean = np.full(len(grid), math.nan)
    low, high = mean.copy(), mean.copy()
    for g in range(len(grid)):
        column = values[:, g]
        column = column[~np.isnan(column)]
        if len(column):
            mean[g] = column.mean()
            low[g], high[g] = bootstrap_ci(column, confidence, seed=seed)
    return mean, low, high


def available_baselines(suite: str, root: Path = BASELINE_DIR) -> list[str]:
    """Method names with a shipped baseline file for `suite`, sorted."""
    _check_suite(suite)
    return sorted(p.name[:-len(".json.gz")] for p in (root / suite).glob("*.json.gz"))


def _read_baseline(suite: str, method: str, root: Path) -> dict:
    _check_suite(suite)
    path = root / suite / f"{method}.json.gz"
    if not path.exists():
        valid = ", ".join(available_baselines(suite, root)) or "none"
        raise ValueError(
            f"Unknown baseline {method!r} for suite {suite!r}; valid names: {valid}")
    with gzip.open(path, "rt") as file:
        data = json.load(file)
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {data.get('format_version')!r}, "
                         f"expected {FORMAT_VERSION}")
    return data


def baseline_origin(suite: str, method: str, root: Path = BASELINE_DIR) -> str:
    """Where a shipped baseline comes from, e.g. 'danijar/dreamerv3 @423291a'."""
    data = _read_baseline(suite, method, root)
    repo = data["source"].split()[0]
    return f"{repo} @{data['commit'][:7]}" if data.get("commit") else repo


def load_baseline(suite: str, method: str, root: Path = BASELINE_DIR) -> list[Curve]:
    """All curves of one shipped baseline file `<root>/<suite>/<method>.json.gz`."""
    data = _read_baseline(suite, method, root)
    final = data["kind"] == "final"
    return [Curve(run["task"], data["method"], run["seed"], run["frames"],
                  run["scores"], final) for run in data["runs"]]


def _check_suite(suite: str) -> None:
    if suite not in BASELINE_SUITES:
        raise ValueError(f"Unknown suite {suite!r}; valid suites: {', '.join(BASELINE_SUITES)}")
