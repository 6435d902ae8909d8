import csv
import gzip
import json

import numpy as np
import pytest

from dreamer import compare
from dreamer.scores import (
    BASELINE_DIR, BASELINE_SUITES, available_baselines, baseline_origin, load_baseline)
from scripts import convert_baselines

DMC_VISION_20 = [
    "acrobot_swingup", "ball_in_cup_catch", "cartpole_balance", "cartpole_balance_sparse",
    "cartpole_swingup", "cartpole_swingup_sparse", "cheetah_run", "finger_spin",
    "finger_turn_easy", "finger_turn_hard", "hopper_hop", "hopper_stand", "pendulum_swingup",
    "quadruped_run", "quadruped_walk", "reacher_easy", "reacher_hard", "walker_run",
    "walker_stand", "walker_walk",
]
SHIPPED = sorted(BASELINE_DIR.glob("*/*.json.gz"))


def table(suite, method, tasks, budgets):
    groups = compare.group_baselines(suite, [method], tasks)
    return compare.build_table(groups, tasks, budgets)


def test_dreamerv3_dmc_vision_gives_published_scores():
    # DreamerV3 paper, DMC vision at 1M frames: walker_walk 960, mean over
    # the 20 tasks 786. The shipped data gives 960.4 and 785.6.
    result = table("dmc_vision", "dreamerv3", DMC_VISION_20, [1_000_000])
    values = dict(zip(result.tasks, result.values[:, 0]))
    assert values["walker_walk"] == pytest.approx(960, abs=1)
    assert values["cheetah_run"] == pytest.approx(836, abs=1)
    mean, count = result.task_mean()
    assert count[0] == 20
    assert mean[0] == pytest.approx(786, abs=1)


def test_dmc_vision_baselines_rank_as_published():
    # The same convention on the baselines of the same figure: DrQ-v2 705,
    # CURL 524 at 1M frames, and DreamerV3 on DMC proprio 757 at 500k.
    drqv2 = table("dmc_vision", "drqv2", DMC_VISION_20, [1_000_000]).task_mean()[0][0]
    curl = table("dmc_vision", "curl", DMC_VISION_20, [1_000_000]).task_mean()[0][0]
    assert drqv2 == pytest.approx(705, abs=1)
    assert curl == pytest.approx(524, abs=1)
    proprio = sorted({c.task for c in load_baseline("dmc_proprio", "dreamerv3")})
    assert len(proprio) == 18
    assert table("dmc_proprio", "dreamerv3", proprio, [500_000]).task_mean()[0][0] == \
        pytest.approx(757, abs=1)


def test_dreamerv3_2023_release_has_five_seeds_on_the_paper_tasks():
    vision = load_baseline("dmc_vision", "dreamerv3_2023")
    proprio = load_baseline("dmc_proprio", "dreamerv3_2023")
    proprio_18 = sorted({c.task for c in load_baseline("dmc_proprio", "dreamerv3")})
    for curves, tasks, end in ((vision, DMC_VISION_20, 990_000), (proprio, proprio_18, 490_000)):
        seeds = {}
        for curve in curves:
            seeds.setdefault(curve.task, set()).add(curve.seed)
        assert sorted(seeds) == tasks
        assert all(s == {0, 1, 2, 3, 4} for s in seeds.values())
        assert max(c.frames.max() for c in curves) == end
    # DMC vision is binned every 30k frames; seed 0 of cartpole_swingup_sparse
    # has no finished episode after 390k, so its empty bins are dropped.
    walker = next(c for c in vision if c.task == "walker_walk" and c.seed == 0)
    assert np.all(np.diff(walker.frames) == 30_000)
    sparse = next(c for c in vision if c.task == "cartpole_swingup_sparse" and c.seed == 0)
    assert sparse.frames.max() == 390_000 and np.all(np.isfinite(sparse.scores))
    assert baseline_origin("dmc_vision", "dreamerv3_2023") == "danijar/dreamerv3 @423291a"
    assert baseline_origin("dmc_vision", "dreamerv3") == "danijar/dreamerv3 @2411f7d"


def test_dreamerv3_2023_scores_at_the_paper_budgets():
    vision = table("dmc_vision", "dreamerv3_2023", DMC_VISION_20, [1_000_000])
    assert dict(zip(vision.tasks, vision.values[:, 0]))["walker_walk"] == pytest.approx(963, abs=1)
    assert vision.task_mean()[0][0] == pytest.approx(769, abs=1)
    tasks = sorted({c.task for c in load_baseline("dmc_proprio", "dreamerv3_2023")})
    assert table("dmc_proprio", "dreamerv3_2023", tasks, [500_000]).task_mean()[0][0] == \
        pytest.approx(757, abs=1)


def test_dmc_proprio_dreamerv3_at_2411f7d_repeats_the_2023_runs():
    # Upstream's 2024 score set ships the 2023 proprio curves again (equal to
    # 1e-10 before rounding); baselines/README.md says so.
    new = {(c.task, c.seed): c for c in load_baseline("dmc_proprio", "dreamerv3")}
    old = {(c.task, c.seed): c for c in load_baseline("dmc_proprio", "dreamerv3_2023")}
    assert sorted(new) == sorted(old)
    assert all(np.array_equal(new[k].frames, old[k].frames)
               and np.array_equal(new[k].scores, old[k].scores) for k in new)


def test_converter_drops_empty_bins_of_the_2023_files(tmp_path):
    folder = tmp_path / "src" / convert_baselines.DREAMERV3_2023_DIR
    folder.mkdir(parents=True)
    record = {"task": "dmc_cup_catch", "method": "dreamerv3", "seed": "3",
              "xs": [30000.0, 60000.0, 90000.0], "ys": [1.234, float("nan"), 900.0]}
    for stem in convert_baselines.DREAMERV3_2023_FILES:
        with gzip.open(folder / f"{stem}.json.gz", "wt") as file:
            json.dump([record], file)
    convert_baselines.convert_dreamerv3_2023(tmp_path / "src", tmp_path / "out")
    with gzip.open(tmp_path / "out" / "dmc_vision" / "dreamerv3_2023.json.gz", "rt") as file:
        data = json.load(file)
    assert data["commit"] == convert_baselines.DREAMERV3_2023_COMMIT
    assert data["runs"] == [{"task": "ball_in_cup_catch", "seed": 3,
                             "frames": [30000, 90000], "scores": [1.23, 900.0]}]


def test_tdmpc2_steps_are_converted_to_frames():
    # TD-MPC2 trains DMC tasks for 4M agent steps (action repeat 2), pixels for 2M.
    walker = [c for c in load_baseline("dmc_proprio", "tdmpc2") if c.task == "walker_walk"]
    assert len(walker) == 3
    assert all(c.frames.max() == 8_000_000 for c in walker)
    assert all(np.all(np.diff(c.frames) == 200_000) for c in walker)
    pixels = load_baseline("dmc_vision", "tdmpc2_pixels")
    assert max(c.frames.max() for c in pixels) == 4_000_000


def test_converter_doubles_tdmpc2_steps_and_keeps_only_dmc(tmp_path):
    source = tmp_path / "src" / "tdmpc2" / "results" / "tdmpc2"
    source.mkdir(parents=True)
    for name, column in (("cup-catch", "reward"), ("mw-door-open", "success")):
        with open(source / f"{name}.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["step", column, "seed"])
            writer.writerows([[0, 1.0, 1], [100000, 900.0, 1], [0, 2.0, 2]])
    written = convert_baselines.convert_tdmpc2(tmp_path / "src", tmp_path / "out")
    with gzip.open(tmp_path / "out" / "dmc_proprio" / "tdmpc2.json.gz", "rt") as file:
        data = json.load(file)
    assert tmp_path / "out" / "dmc_proprio" / "tdmpc2.json.gz" in written
    assert [(r["task"], r["seed"], r["frames"]) for r in data["runs"]] == [
        ("ball_in_cup_catch", 1, [0, 200000]), ("ball_in_cup_catch", 2, [0])]


def test_final_numbers_are_single_points():
    planet = {c.task: c for c in load_baseline("dmc_vision", "planet")}
    assert planet["walker_walk"].final and planet["walker_walk"].seed is None
    assert list(planet["walker_walk"].frames) == [1_000_000]
    assert list(planet["walker_walk"].scores) == [951]
    d4pg = load_baseline("dmc_vision", "d4pg")
    assert all(list(c.frames) == [100_000_000] for c in d4pg)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_file_is_documented_and_well_formed(path):
    readme = (BASELINE_DIR / "README.md").read_text()
    relative = f"{path.parent.name}/{path.name}"
    row = next((line for line in readme.splitlines() if line.startswith(f"| `{relative}`")), None)
    assert row is not None, f"{relative} has no source row in baselines/README.md"
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    _, repo, upstream, commit, licence = cells
    assert "/" in repo and upstream and len(commit) == 40 and licence
    with gzip.open(path, "rt") as file:
        data = json.load(file)
    assert data["x"] == "env_frames"
    assert data["source"].split()[0] == repo
    assert data["commit"] == commit
    assert (data["suite"], data["method"]) == (path.parent.name, path.name[:-len(".json.gz")])
    assert data["runs"] and data["method"] == data["method"].lower()


def test_shipped_size_and_suites():
    assert sum(p.stat().st_size for p in SHIPPED) < 3_000_000
    assert set(BASELINE_SUITES) == {p.parent.name for p in SHIPPED}
    assert {"dreamerv3", "dreamerv3_2023", "drqv2", "curl", "sac", "ppo", "dreamerv1", "planet",
            "slac", "d4pg", "tdmpc2_pixels"} <= set(available_baselines("dmc_vision"))
    assert {"dreamerv3", "dreamerv3_2023", "d4pg", "dmpo", "mpo", "ddpg", "ppo", "a3c", "tdmpc2",
            "tdmpc", "sac", "dreamerv3_tdmpc2"} <= set(available_baselines("dmc_proprio"))

