"""Evaluate a run's checkpoint without exploration noise.

    python -m dreamer.evaluate RUN_DIR [--episodes 10] [--envs auto] [--device auto] [--out DIR]

Rebuilds the environment and agent from ``RUN_DIR/.hydra/config.yaml``, loads
``RUN_DIR/checkpoint.pt``, runs the episodes (``--envs`` of them side by side,
as training evaluates: ``auto`` is one per episode up to 8, each in its own
process except for the toy task), writes ``eval_scores.json`` and
``eval_video.mp4`` (the first episode) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import imageio
import numpy as np

from dreamer.cli import USAGE_EXIT_STATUS, USER_ERRORS
from dreamer.loop import evaluate_episodes
from dreamer.run import eval_envs_factory, eval_layout, load_trained


def evaluate(
    run_dir: str | Path, episodes: int = 10, device: str = "auto", out: str | Path | None = None, envs="auto"
) -> dict:
    run_dir = Path(run_dir)
    cfg, agent, eval_fn, _, frames = load_trained(run_dir, device)
    count, parallel = eval_layout(cfg.env.suite, episodes, envs)
    print(
        f"[evaluate] {cfg.algo.name} on {cfg.env.suite}:{cfg.env.task}, checkpoint at {frames} frames, "
        f"{episodes} episodes on {count} environment(s)" + (" in processes" if parallel else "")
    )
    vector_env = eval_envs_factory(eval_fn, count, parallel)()
    try:
        results = evaluate_episodes(agent, vector_env, episodes, record_video=True)
    finally:
        vector_env.close()
    out = Path(out) if out is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "run_dir": str(run_dir),
        "frames": frames,
        "episodes": episodes,
        "scores": [float(s) for s in results["scores"]],
        "lengths": [int(n) * int(cfg.env.get("action_repeat", 1)) for n in results["lengths"]],
        "mean": float(np.mean(results["scores"])),
        "std": float(np.std(results["scores"])),
    }
    (out / "eval_scores.json").write_text(json.dumps(summary, indent=2) + "\n")
    if results["video"] is not None:
        summary["video"] = str(out / "eval_video.mp4")
        imageio.mimwrite(summary["video"], _even(results["video"]), fps=16, macro_block_size=1)
    return summary


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad to even height and width, which H.264 encoders need."""
    _, h, w, _ = frames.shape
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dreamer.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory with .hydra/config.yaml and checkpoint.pt")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    parser.add_argument("--envs", default="auto", help="environments run side by side: auto (one per episode, up to 8) or N")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--out", default=None, help="where to write scores and video (default: the run dir)")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be at least 1, got {args.episodes}")
    if args.envs != "auto" and not (args.envs.isdigit() and int(args.envs) > 0):
        parser.error(f"--envs must be auto or an integer > 0, got {args.envs!r}")
    try:
        summary = evaluate(args.run_dir, args.episodes, args.device, args.out, args.envs)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_EXIT_STATUS
    print(
        f"[evaluate] {summary['episodes']} episodes: score {summary['mean']:.1f} +- {summary['std']:.1f} "
        f"(min {min(summary['scores']):.1f}, max {max(summary['scores']):.1f})"
    )
    print(f"[evaluate] wrote {Path(args.out or args.run_dir) / 'eval_scores.json'}" + (f" and {summary['video']}" if "video" in summary else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
