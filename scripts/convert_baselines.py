"""Convert published score files into the project's baseline format.

Usage, from the repository root:

    python -m scripts.convert_baselines SOURCE_DIR [--out baselines]

SOURCE_DIR holds upstream snapshots laid out as
    dreamerv3/scores/<suite>-<method>.json.gz   (danijar/dreamerv3 @2411f7d, scores/)
    dreamerv3/2023-05_423291a/scores/data/<suite>_<method>.json.gz
                                                (danijar/dreamerv3 @423291a, scores/data/)
    dreamer/scores/{dreamer,baselines}.json     (danijar/dreamer, scores/)
    tdmpc2/results/<method>/<task>.csv          (nicklashansen/tdmpc2, results/)

Output: one file `<out>/<suite>/<method>.json.gz` per (suite, method), see
baselines/README.md for the format and the step convention of each source.
"""

from __future__ import annotations

import argparse
import collections
import csv
import gzip
import json
import math
from pathlib import Path

from dreamer.scores import FORMAT_VERSION, normalise_task

# Commits the upstream files were taken from (baselines/README.md).
DREAMERV3_COMMIT = "2411f7d136832378c0291c587cdbf2fca6506873"
DREAMERV3_2023_COMMIT = "423291a9875bb9af43b6db7150aaa972ba889266"
DREAMERV1_COMMIT = "56d4d444dfd0582b0e79dab80aebbea74c0ce40d"
TDMPC2_COMMIT = "a7890b69857c402ef19edea494e210068e3ec363"

DREAMERV3_FILES = {  # upstream file stem -> (suite, method)
    "dmc_vision-dreamerv3": ("dmc_vision", "dreamerv3"),
    "dmc_vision-drqv2": ("dmc_vision", "drqv2"),
    "dmc_vision-curl": ("dmc_vision", "curl"),
    "dmc_vision-sac": ("dmc_vision", "sac"),
    "dmc_vision-ppo_fixhp": ("dmc_vision", "ppo"),
    "dmc_proprio-dreamerv3": ("dmc_proprio", "dreamerv3"),
    "dmc_proprio-d4pg": ("dmc_proprio", "d4pg"),
    "dmc_proprio-dmpo": ("dmc_proprio", "dmpo"),
    "dmc_proprio-mpo": ("dmc_proprio", "mpo"),
    "dmc_proprio-ddpg": ("dmc_proprio", "ddpg"),
    "dmc_proprio-ppo_fixhp": ("dmc_proprio", "ppo"),
}
# The 2023 release's curves, named after the preset that reproduces that agent.
DREAMERV3_2023_DIR = Path("dreamerv3", "2023-05_423291a", "scores", "data")
DREAMERV3_2023_FILES = {
    "dmcvision_dreamerv3": ("dmc_vision", "dreamerv3_2023"),
    "dmcproprio_dreamerv3": ("dmc_proprio", "dreamerv3_2023"),
}

# DreamerV1's baselines.json: key -> (suite, method, frames of the final number).
DREAMERV1_FINALS = {
    "d4pg_100m": ("dmc_vision", "d4pg", 100_000_000),
    "planet_1e6": ("dmc_vision", "planet", 1_000_000),
    "slac_3e6": ("dmc_vision", "slac", 3_000_000),
    "a3c_100m_proprio": ("dmc_proprio", "a3c", 100_000_000),
}

# TD-MPC2 result folders -> (suite, method). Its DreamerV3 runs were made by
# the TD-MPC2 authors from states, so they get a name of their own.
TDMPC2_METHODS = {
    "tdmpc2": ("dmc_proprio", "tdmpc2"),
    "tdmpc2-pixels": ("dmc_vision", "tdmpc2_pixels"),
    "tdmpc": ("dmc_proprio", "tdmpc"),
    "sac": ("dmc_proprio", "sac"),
    "dreamerv3": ("dmc_proprio", "dreamerv3_tdmpc2"),
}
# TD-MPC2's DMC wrapper repeats each action twice and counts agent steps.
TDMPC2_FRAMES_PER_STEP = 2
DMC_DOMAINS = {
    "acrobot", "ball_in_cup", "cartpole", "cheetah", "dog", "finger", "fish", "hopper",
    "humanoid", "manipulator", "pendulum", "point_mass", "quadruped", "reacher",
    "swimmer", "walker",
}
SCORE_DECIMALS = 2


def write(out: Path, suite: str, method: str, kind: str, source: str, commit: str,
          runs: list[dict]) -> Path:
    """Write one baseline file and return its path."""
    runs = sorted(runs, key=lambda r: (r["task"], -1 if r["seed"] is None else r["seed"]))
    data = {"format_version": FORMAT_VERSION, "suite": suite, "method": method,
            "kind": kind, "x": "env_frames", "source": source, "commit": commit, "runs": runs}
    path = out / suite / f"{method}.json.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, separators=(",", ":")).encode()
    # mtime=0 keeps the bytes identical between conversions of the same data.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as file:
        file.write(text)
    return path


def run_record(task: str, seed, frames, scores) -> dict:
    return {"task": normalise_task(task), "seed": None if seed is None else int(seed),
            "frames": [int(round(float(f))) for f in frames],
            "scores": [round(float(s), SCORE_DECIMALS) for s in scores]}


def convert_dreamerv3(src: Path, out: Path) -> list[Path]:
    written = []
    for stem, (suite, method) in DREAMERV3_FILES.items():
        with gzip.open(src / "dreamerv3" / "scores" / f"{stem}.json.gz", "rt") as file:
            records = json.load(file)
        # Upstream xs already count environment frames (see baselines/README.md).
        runs = [run_record(r["task"], r["seed"], r["xs"], r["ys"]) for r in records]
        written.append(write(out, suite, method, "curves",
                             f"danijar/dreamerv3 scores/{stem}.json.gz", DREAMERV3_COMMIT, runs))
    return written


def convert_dreamerv3_2023(src: Path, out: Path) -> list[Path]:
    written = []
    for stem, (suite, method) in DREAMERV3_2023_FILES.items():
        with gzip.open(src / DREAMERV3_2023_DIR / f"{stem}.json.gz", "rt") as file:
            records = json.load(file)
        runs = []
        for r in records:
            # xs count environment frames, as in the 2024 files. NaN marks a bin in
            # which no episode finished; it would turn a window mean into NaN.
            points = [(x, y) for x, y in zip(r["xs"], r["ys"]) if math.isfinite(y)]
            if points:
                runs.append(run_record(r["task"], r["seed"], *zip(*points)))
        written.append(write(out, suite, method, "curves",
                             f"danijar/dreamerv3 scores/data/{stem}.json.gz",
                             DREAMERV3_2023_COMMIT, runs))
    return written


def convert_dreamerv1(src: Path, out: Path) -> list[Path]:
    folder = src / "dreamer" / "scores"
    records = json.loads((folder / "dreamer.json").read_text())
    runs = [run_record(r["task"], r["seed"], r["xs"], r["ys"]) for r in records]
    written = [write(out, "dmc_vision", "dreamerv1", "curves",
                     "danijar/dreamer scores/dreamer.json", DREAMERV1_COMMIT, runs)]
    finals = json.loads((folder / "baselines.json").read_text())
    grouped = collections.defaultdict(list)
    for task, entries in finals.items():
        for key, value in entries.items():
            if key not in DREAMERV1_FINALS:
                raise ValueError(f"Unknown key {key!r} in baselines.json; "
                                 f"known: {', '.join(DREAMERV1_FINALS)}")
            suite, method, frames = DREAMERV1_FINALS[key]
            grouped[suite, method].append(run_record(task, None, [frames], [value]))
    for (suite, method), runs in sorted(grouped.items()):
        written.append(write(out, suite, method, "final",
                             "danijar/dreamer scores/baselines.json", DREAMERV1_COMMIT, runs))
    return written


def convert_tdmpc2(src: Path, out: Path) -> list[Path]:
    written = []
    for folder, (suite, method) in TDMPC2_METHODS.items():
        runs = []
        for path in sorted((src / "tdmpc2" / "results" / folder).glob("*.csv")):
            task = normalise_task(path.stem)
            if not any(task.startswith(domain + "_") for domain in DMC_DOMAINS):
                continue
            with open(path, newline="") as file:
                rows = list(csv.DictReader(file))
            if not rows or "reward" not in rows[0]:
                continue
            by_seed = collections.defaultdict(list)
            for row in rows:
                by_seed[int(row["seed"])].append(
                    (float(row["step"]) * TDMPC2_FRAMES_PER_STEP, float(row["reward"])))
            for seed, points in sorted(by_seed.items()):
                points.sort()
                runs.append(run_record(task, seed, *zip(*points)))
        written.append(write(out, suite, method, "curves",
                             f"nicklashansen/tdmpc2 results/{folder}/*.csv", TDMPC2_COMMIT, runs))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="folder with the upstream snapshots")
    parser.add_argument("--out", type=Path, default=Path("baselines"),
                        help="output folder (default: baselines)")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.error(f"source folder {args.source} does not exist")
    written = (convert_dreamerv3(args.source, args.out)
               + convert_dreamerv3_2023(args.source, args.out)
               + convert_dreamerv1(args.source, args.out)
               + convert_tdmpc2(args.source, args.out))
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
