import json
import math

import numpy as np
import pytest
from matplotlib.image import imread

from dreamer import compare
from dreamer.scores import (
    Curve, aggregate, bootstrap_ci, budget_score, final_window_score, normalise_task,
    parse_budget, resample)

FRAMES = np.arange(0, 1_000_001, 10_000)


def make_run(root, name, task, method, seed, scores, frames=FRAMES, key="episode/score",
             algo_name=True, extra=None):
    """Write a run directory with metrics.jsonl and .hydra/config.yaml."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    algo = f"algo:\n  name: {method}\n" if algo_name else "algo:\n  lr: 0.1\n"
    (run / ".hydra" / "config.yaml").write_text(
        f"env:\n  suite: dmc\n  task: {task}\n{algo}seed: {seed}\n")
    with open(run / "metrics.jsonl", "w") as file:
        for step, score in zip(frames, scores):
            file.write(json.dumps({"step": int(step), key: float(score), "fps": 1.0}) + "\n")
        for row in extra or []:
            file.write(json.dumps(row) + "\n")
    return run


def linear(offset):
    """Scores rising linearly from `offset` to `offset + 1000` over 1M frames."""
    return offset + FRAMES / 1000.0


def test_final_window_score_is_the_mean_of_the_last_five_percent():
    # Scores 950 ... 1000 lie in [950k, 1M]; their mean is 975.
    assert final_window_score(FRAMES, FRAMES / 1000.0, 1_000_000) == pytest.approx(975.0)
    # [95k, 100k] holds only the point at 100k.
    assert final_window_score(FRAMES, FRAMES / 1000.0, 100_000) == pytest.approx(100.0)
    assert final_window_score(FRAMES, FRAMES / 1000.0, 1_000_000, window=0.1) == pytest.approx(950.0)


def test_final_window_score_interpolates_sparse_curves_but_never_extrapolates():
    frames, scores = np.array([0, 200_000, 400_000]), np.array([0.0, 200.0, 600.0])
    assert final_window_score(frames, scores, 100_000) == pytest.approx(100.0)
    assert final_window_score(frames, scores, 300_000) == pytest.approx(400.0)
    assert math.isnan(final_window_score(frames, scores, 500_000))


def test_budget_score_averages_seeds_and_skips_seeds_without_data():
    curves = [Curve("t", "m", s, FRAMES, linear(10 * s)) for s in range(3)]
    curves.append(Curve("t", "m", 3, [0], [5000.0]))  # stopped before the window
    assert budget_score(curves, 1_000_000) == pytest.approx(975 + 10)


def test_bootstrap_interval_matches_hand_computation():
    # Resampled means of [0, 1] are 0, 0.5, 1 with chances 1/4, 1/2, 1/4: the
    # central 40% is exactly 0.5 and the central 95% spans 0 to 1.
    assert bootstrap_ci([0.0, 1.0], confidence=0.4) == pytest.approx((0.5, 0.5))
    assert bootstrap_ci([0.0, 1.0], confidence=0.95) == pytest.approx((0.0, 1.0))
    assert bootstrap_ci([7.0]) == (7.0, 7.0)


def test_bootstrap_interval_contains_mean_shrinks_with_seeds_and_is_reproducible():
    # Same spread of scores, ten times the seeds: the interval must narrow.
    few = np.array([400.0, 450.0, 500.0, 550.0, 600.0])
    many = np.tile(few, 10)
    for values in (few, many):
        low, high = bootstrap_ci(values)
        assert low <= values.mean() <= high
    assert np.diff(bootstrap_ci(many)) < np.diff(bootstrap_ci(few))
    assert bootstrap_ci(few) == bootstrap_ci(few)


def test_resample_averages_each_trailing_bin_and_interpolates_empty_ones():
    curve = Curve("t", "m", 0, [5, 10, 11, 12, 40], [1.0, 2.0, 4.0, 6.0, 9.0])
    values = resample(curve, np.array([10.0, 20.0, 30.0, 40.0, 50.0]))
    # (0, 10]: 1 and 2; (10, 20]: 4 and 6; (20, 30]: empty, so the line from
    # (12, 6) to (40, 9) at 30; (30, 40]: 9; beyond the run: nothing.
    np.testing.assert_allclose(values, [1.5, 5.0, 6 + 3 * 18 / 28, 9.0, np.nan])


def test_aggregate_gives_seed_mean_on_common_grid():
    curves = [Curve("t", "m", s, FRAMES, np.full(len(FRAMES), 100.0 * s)) for s in range(3)]
    # A seed logged on a different frame grid still lands on the common grid.
    curves.append(Curve("t", "m", 3, FRAMES[::3] + 1234, np.full(len(FRAMES[::3]), 300.0)))
    grid = np.linspace(0, 900_000, 10)[1:]
    mean, low, high = aggregate(curves, grid)
    np.testing.assert_allclose(mean, 150.0)
    assert np.all(low <= mean) and np.all(mean <= high) and np.all(high > low)


def test_names_and_budgets_are_normalised():
    assert normalise_task("dmc_walker_walk") == "walker_walk"
    assert normalise_task("cup-catch") == "ball_in_cup_catch"
    assert normalise_task("cartpole-balance-sparse") == "cartpole_balance_sparse"
    assert [parse_budget(b) for b in ("100k", "1M", "1.5m", "2500")] == [
        100_000, 1_000_000, 1_500_000, 2500]
    with pytest.raises(ValueError, match="1 million"):
        parse_budget("1 million")


def test_runs_are_grouped_by_task_and_method(tmp_path):
    for seed in range(2):
        make_run(tmp_path / "a", f"walk{seed}", "walker_walk", "dreamerv3", seed, linear(0))
        make_run(tmp_path / "a", f"run{seed}", "cheetah-run", "dreamerv3", seed, linear(0))
    make_run(tmp_path / "b" / "deep" / "er", "x", "walker_walk", "planet", 0, linear(0))
    runs = compare.find_runs([tmp_path], log=lambda _: None)
    groups = compare.group_runs(runs)
    assert set(groups) == {"dreamerv3", "planet"}
    assert {t: len(c) for t, c in groups["dreamerv3"].items()} == {
        "walker_walk": 2, "cheetah_run": 2}
    assert list(groups["planet"]) == ["walker_walk"]


def test_eval_score_is_preferred_and_metric_can_be_chosen(tmp_path):
    evals = [{"step": int(s), "eval/score": 7.0} for s in FRAMES]
    make_run(tmp_path, "r", "walker_walk", "m", 0, linear(0), extra=evals)
    (auto,) = compare.find_runs([tmp_path], log=lambda _: None)
    assert np.all(auto.curve.scores == 7.0)
    (chosen,) = compare.find_runs([tmp_path], metric="episode/score", log=lambda _: None)
    assert chosen.curve.scores[-1] == pytest.approx(1000.0)


def test_missing_algo_name_falls_back_to_the_hydra_choice_and_says_so(tmp_path):
    run = make_run(tmp_path, "r", "walker_walk", "x", 0, linear(0), algo_name=False)
    (run / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  runtime:\n    choices:\n      algo: dreamerv1\n      experiment: dmc_proprio\n")
    notes = []
    (found,) = compare.find_runs([tmp_path], log=notes.append)
    assert found.method == "dreamerv1"
    assert found.suite == "dmc_proprio"
    assert any("no algo.name" in n and "dreamerv1" in n for n in notes)


def test_table_and_plots_match_known_curves(tmp_path):
    for seed in range(3):
        make_run(tmp_path / "runs", f"a{seed}", "walker_walk", "fast", seed, linear(100 * seed))
        make_run(tmp_path / "runs", f"b{seed}", "cheetah_run", "fast", seed, linear(0))
    make_run(tmp_path / "runs", "c", "walker_walk", "slow", 0, FRAMES / 2000.0)
    out = tmp_path / "out"
    lines = []
    table = compare.compare([tmp_path / "runs"], out=out, budgets=[100_000, 1_000_000],
                            log=lines.append)
    assert table.tasks == ["cheetah_run", "walker_walk"]
    assert table.columns == [("fast", 100_000), ("fast", 1_000_000),
                             ("slow", 100_000), ("slow", 1_000_000)]
    expected = np.array([[100.0, 975.0, np.nan, np.nan],
                         [200.0, 1075.0, 50.0, 487.5]])
    np.testing.assert_allclose(table.values, expected)
    markdown = (out / "scores.md").read_text()
    assert "| walker_walk | 200 | 1075 | 50 | 488 |" in markdown
    assert "| cheetah_run | 100 | 975 | - | - |" in markdown
    assert "| **mean** | 150 | 1025 | 50 (1/2) | 488 (1/2) |" in markdown
    assert any("found 7 runs" in line for line in lines)
    for name in ("walker_walk.png", "cheetah_run.png", "overview.png"):
        image = imread(out / name)
        assert (out / name).stat().st_size > 10_000
        assert image.shape[0] > 200 and image.std() > 0.05
        assert any(name in line for line in lines)


def test_baseline_overlay_adds_published_columns(tmp_path):
    make_run(tmp_path / "runs", "a", "walker_walk", "mine", 0, linear(0))
    table = compare.compare([tmp_path / "runs"], ["dreamerv3"], suite="dmc_vision",
                            out=tmp_path / "out", budgets=[1_000_000], log=lambda _: None)
    assert table.columns == [("mine", 1_000_000), ("dreamerv3 (published)", 1_000_000)]
    assert table.values[0, 1] == pytest.approx(960, abs=1)


@pytest.mark.parametrize("algo, origin", [("dreamerv3", "danijar/dreamerv3 @2411f7d"),
                                           ("dreamerv3_2023", "danijar/dreamerv3 @423291a"),
                                           ("dreamerv1", "danijar/dreamer @56d4d44"),
                                           ("planet", "danijar/dreamer @56d4d44")])
def test_default_overlay_is_the_published_curve_of_the_same_agent_version(tmp_path, algo, origin):
    make_run(tmp_path / "runs", "a", "walker_walk", algo, 0, linear(0))
    make_run(tmp_path / "runs", "b", "walker_walk", "mine", 0, linear(0))
    lines = []
    table = compare.compare([tmp_path / "runs"], suite="dmc_vision", out=tmp_path / "out",
                            budgets=[1_000_000], log=lines.append)
    assert [m for m, _ in table.columns] == [*sorted([algo, "mine"]), algo + compare.PUBLISHED]
    (line,) = [line for line in lines if line.startswith("overlaying published")]
    assert f"{algo} ({origin}, baselines/dmc_vision/{algo}.json.gz) for runs of algo {algo}" \
        in line
    # PlaNet's published numbers are one score per task at 1M frames.
    expected = {"dreamerv3": 960, "dreamerv3_2023": 963, "dreamerv1": 955, "planet": 951}[algo]
    assert table.values[0, -1] == pytest.approx(expected, abs=1)


def test_default_overlay_gives_each_version_its_own_curve_and_reads_the_suite(tmp_path):
    for algo in ("dreamerv3", "dreamerv3_2023"):
        run = make_run(tmp_path / "runs", algo, "walker_walk", algo, 0, linear(0))
        (run / ".hydra" / "hydra.yaml").write_text(
            "hydra:\n  runtime:\n    choices:\n      experiment: dmc_proprio\n")
    lines = []
    table = compare.compare([tmp_path / "runs"], out=tmp_path / "out", budgets=[500_000],
                            log=lines.append)
    assert [m for m, _ in table.columns] == [
        "dreamerv3", "dreamerv3_2023", "dreamerv3 (published)", "dreamerv3_2023 (published)"]
    (line,) = [line for line in lines if line.startswith("overlaying published")]
    assert "baselines/dmc_proprio/dreamerv3.json.gz" in line
    assert "baselines/dmc_proprio/dreamerv3_2023.json.gz" in line


def test_explicit_baseline_replaces_the_default_and_none_disables_it(tmp_path, capsys):
    make_run(tmp_path / "runs", "a", "walker_walk", "dreamerv3_2023", 0, linear(0))
    args = [str(tmp_path / "runs"), "--suite", "dmc_vision", "--budgets", "1M"]
    assert compare.main(args + ["--out", str(tmp_path / "a"), "--baseline", "drqv2"]) == 0
    assert "overlaying" not in capsys.readouterr().out
    markdown = (tmp_path / "a" / "scores.md").read_text()
    assert "drqv2 (published)" in markdown and "dreamerv3_2023 (published)" not in markdown
    assert compare.main(args + ["--out", str(tmp_path / "b"), "--baseline", "none"]) == 0
    assert "(published)" not in (tmp_path / "b" / "scores.md").read_text()
    assert compare.main(args + ["--out", str(tmp_path / "c")]) == 0
    assert "overlaying published dreamerv3_2023" in capsys.readouterr().out
    assert "dreamerv3_2023 (published)" in (tmp_path / "c" / "scores.md").read_text()
    assert compare.main(args + ["--out", str(tmp_path / "d"), "--baseline", "none", "drqv2"]) == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_no_default_overlay_for_runs_outside_dmc(tmp_path):
    run = make_run(tmp_path / "runs", "a", "walker_walk", "dreamerv3", 0, linear(0))
    config = run / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("suite: dmc", "suite: toy"))
    lines = []
    table = compare.compare([tmp_path / "runs"], out=tmp_path / "out", budgets=[1_000_000],
                            log=lines.append)
    assert table.columns == [("dreamerv3", 1_000_000)]
    assert not any("overlaying" in line for line in lines)


def test_error_for_path_without_runs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(compare.CompareError, match="No runs found under .*empty"):
        compare.find_runs([tmp_path / "empty"])
    with pytest.raises(compare.CompareError, match="does not exist"):
        compare.find_runs([tmp_path / "nowhere"])


def test_error_for_unknown_baseline_lists_valid_names(tmp_path, capsys):
    make_run(tmp_path, "a", "walker_walk", "mine", 0, linear(0))
    code = compare.main([str(tmp_path), "--baseline", "dreamerv9", "--suite", "dmc_vision",
                         "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "Unknown baseline 'dreamerv9'" in err
    assert "dreamerv3" in err and "drqv2" in err and "tdmpc2_pixels" in err


def test_error_for_malformed_line_names_file_and_line(tmp_path):
    run = make_run(tmp_path, "a", "walker_walk", "mine", 0, linear(0)[:3], frames=FRAMES[:3])
    with open(run / "metrics.jsonl", "a") as file:
        file.write('{"step": 40000, "episode/score": \n')
    with pytest.raises(compare.CompareError, match=r"metrics.jsonl, line 4: not valid JSON"):
        compare.find_runs([tmp_path])
