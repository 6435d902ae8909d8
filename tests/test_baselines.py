import csv
import gzip
import json

import numpy as np
import pytest

from dreamer import compare
from dreamer.scores import BASELINE_DIR, BASELINE_SUITES, available_baselines, load_baseline
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
    assert (data["suite"], data["method"]) == (path.parent.name, path.name[:-len(".json.gz")])
    assert data["runs"] and data["method"] == data["method"].lower()


def test_shipped_size_and_suites():
    assert sum(p.stat().st_size for p in SHIPPED) < 3_000_000
    assert set(BASELINE_SUITES) == {p.parent.name for p in SHIPPED}
    assert {"dreamerv3", "drqv2", "curl", "sac", "ppo", "dreamerv1", "planet", "slac",
            "d4pg", "tdmpc2_pixels"} <= set(available_baselines("dmc_vision"))
    assert {"dreamerv3", "d4pg", "dmpo", "mpo", "ddpg", "ppo", "a3c", "tdmpc2", "tdmpc",
            "sac", "dreamerv3_tdmpc2"} <= set(available_baselines("dmc_proprio"))

