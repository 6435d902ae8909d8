"""Aggregates across tasks (rliable) against values computed by hand, and
their place in dreamer.compare's table and plots."""

import numpy as np
import pytest
from matplotlib.image import imread

from dreamer import aggregates, compare
from dreamer.scores import Curve
from test_compare import FRAMES, make_run

# 2 runs x 4 tasks, normalised scores 0.1 ... 0.8.
KNOWN = np.array([[0.1, 0.2, 0.3, 0.4],
                  [0.5, 0.6, 0.7, 0.8]])


def test_metrics_of_a_known_set_match_hand_computation():
    result = aggregates.aggregate_intervals({"m": KNOWN}, reps=500)["m"]
    # IQM: drop the lowest and highest quarter of the 8 scores, average 0.3 0.4 0.5 0.6.
    assert result["IQM"].point == pytest.approx(0.45)
    assert result["mean"].point == pytest.approx(0.45)
    # Median of the task means (0.3, 0.4, 0.5, 0.6).
    assert result["median"].point == pytest.approx(0.45)
    # Optimality gap: 1 - mean of min(score, 1).
    assert result["optimality gap"].point == pytest.approx(0.55)
    skewed = np.array([[0.0, 0.0, 0.1, 1.0], [0.0, 0.2, 0.3, 1.0]])
    got = aggregates.aggregate_intervals({"s": skewed}, reps=200)["s"]
    assert got["IQM"].point == pytest.approx(np.mean([0.0, 0.1, 0.2, 0.3]))
    assert got["median"].point == pytest.approx(np.median([0.0, 0.1, 0.2, 1.0]))
    for interval in list(result.values()) + list(got.values()):
        assert interval.low <= interval.point <= interval.high


def test_probability_of_improvement_of_separated_sets_is_near_one():
    rng = np.random.default_rng(0)
    low = rng.uniform(0.0, 0.3, (5, 6))
    high = rng.uniform(0.7, 1.0, (5, 6))
    result = aggregates.improvement_probabilities(
        {"high": high, "low": low}, [("high", "low"), ("low", "high"), ("high", "high")], reps=500)
    assert result[("high", "low")].point == pytest.approx(1.0)
    assert result[("high", "low")].low > 0.99
    assert result[("low", "high")].point == pytest.approx(0.0)
    assert result[("high", "high")].point == pytest.approx(0.5)
    # Overlapping sets: half of the pairs of runs are won on each task.
    a = np.array([[0.2], [0.6]])
    b = np.array([[0.4], [0.8]])
    # P(a > b) over the 4 pairs: only 0.6 > 0.4 wins.
    assert aggregates.improvement_probabilities({"a": a, "b": b}, [("a", "b")], reps=200)[("a", "b")].point \
        == pytest.approx(0.25)


def test_intervals_are_reproducible_and_leave_the_global_rng_alone():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = aggregates.aggregate_intervals({"m": KNOWN}, reps=300, seed=1)
    assert np.array_equal(np.random.get_state()[1], before)
    again = aggregates.aggregate_intervals({"m": KNOWN}, reps=300, seed=1)
    assert first == again
    wider = aggregates.aggregate_intervals({"m": KNOWN}, reps=300, confidence=0.99, seed=1)["m"]["mean"]
    assert wider.high - wider.low >= first["m"]["mean"].high - first["m"]["mean"].low


def test_performance_profile_counts_runs_above_each_threshold():
    profile, low, high = aggregates.performance_profiles({"m": KNOWN}, np.array([0.0, 0.45, 0.8]), reps=200)["m"]
    np.testing.assert_allclose(profile, [1.0, 0.5, 0.0])
    assert np.all(low <= profile) and np.all(profile <= high)


def _curve(task, seed, score):
    return Curve(task, "m", seed, np.array([90_000.0, 100_000.0]), np.array([score, score]))


def test_score_matrix_keeps_equal_runs_per_task_and_normalises():
    by_task = {"a": [_curve("a", s, 100.0 * (s + 1)) for s in range(3)],
               "b": [_curve("b", s, 500.0) for s in (1, 0)]}
    matrix = aggregates.score_matrix(by_task, ["a", "b"], 100_000)
    # Task b has 2 seeds, so task a keeps its two lowest-numbered seeds.
    np.testing.assert_allclose(matrix, [[0.1, 0.5], [0.2, 0.5]])
    assert aggregates.score_matrix(by_task, ["a", "b", "c"], 100_000) is None
    assert aggregates.score_matrix(by_task, ["a"], 2_000_000) is None


def test_comparison_pairs_cover_ours_against_published_and_each_other():
    assert aggregates.comparison_pairs(["x", "y"], ["p"]) == [("x", "p"), ("y", "p"), ("x", "y")]
    assert aggregates.comparison_pairs([], ["p", "q", "r"]) == [("p", "q"), ("p", "r"), ("q", "r")]


def test_compare_adds_aggregate_rows_and_plots_for_two_labelled_sets(tmp_path):
    tasks = ("walker_walk", "cheetah_run", "finger_spin")
    for seed in range(3):
        for i, task in enumerate(tasks):
            make_run(tmp_path / "good", f"{task}{seed}", task, "dreamerv3", seed,
                     np.full(len(FRAMES), 800.0 + 10 * seed + i))
            make_run(tmp_path / "bad", f"{task}{seed}", task, "dreamerv3", seed,
                     np.full(len(FRAMES), 100.0 + 10 * seed + i))
    out = tmp_path / "out"
    lines = []
    compare.compare([f"lr_high={tmp_path / 'good'}", f"lr_low={tmp_path / 'bad'}"], baselines=(),
                    out=out, budgets=[1_000_000], reps=300, log=lines.append)
    markdown = (out / "scores.md").read_text()
    assert "Aggregates at 1M frames over 3 task(s)" in markdown
    # IQM of lr_high: the 9 scores 800..822 over 1000, middle half.
    row = next(line for line in markdown.splitlines() if line.startswith("| lr_high | 3 |"))
    assert "0.81" in row
    assert "| lr_high > lr_low | 1.000 [1.000, 1.000] |" in markdown
    for name in ("aggregates.png", "performance_profile.png", "improvement.png"):
        assert imread(out / name).std() > 0.05
        assert any(name in line for line in lines)


def test_compare_of_baselines_alone_uses_their_shared_tasks_and_own_seeds(tmp_path, monkeypatch):
    # Two published files on three tasks keep the test fast.
    monkeypatch.setattr(compare, "shared_baseline_tasks",
                        lambda suite, names: ["cartpole_swingup", "walker_walk", "cheetah_run"])
    lines = []
    compare.compare([], ["dreamerv3", "drqv2"], suite="dmc_vision", out=tmp_path / "out",
                    budgets=[1_000_000], reps=300, log=lines.append)
    markdown = (tmp_path / "out" / "scores.md").read_text()
    assert "| dreamerv3 (published) | 10 |" in markdown  # ten seeds on these tasks
    assert "P(X > Y)" in markdown and "| dreamerv3 (published) > drqv2 (published) |" in markdown
    assert (tmp_path / "out" / "improvement.png").exists()


def test_compare_without_runs_or_baselines_is_an_error(tmp_path, capsys):
    assert compare.main(["--out", str(tmp_path / "out")]) == 2
    assert "nothing to compare" in capsys.readouterr().err
    assert compare.main(["--baseline", "dreamerv3", "--reps", "0", "--out", str(tmp_path)]) == 2
