"""Time one behaviour update and one CEM planner call on the real world model.

Prints one JSON object:
- ``updates``: per model size and actor gradient, seconds per behaviour update
  (imagination + actor and critic losses + their one backward pass + both Adam
  steps + slow-critic EMA) from ``--batch`` x ``--length`` start states over
  ``--horizon`` imagined steps;
- ``planner``: seconds per ``CEMPlanner.plan`` call on a PlaNet-sized
  Gaussian RSSM (deter 200, stoch 30, hidden 200), per number of states B.

    python scripts/bench_behavior.py --sizes xs s --grads reinforce dynamics
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from behavior import CEMPlanner, ImaginationBehavior  # noqa: E402
from dreamer.agent import resolve_device  # noqa: E402
from world_model.world_model import WorldModel  # noqa: E402

ACTION_DIM = 6
OBS = {"vector": (8,)}  # imagination never touches the encoder or decoder
PLANET_MODEL = dict(
    latent="gaussian", deter=200, hidden=200, stoch=30, mlp_units=200, mlp_layers=2, act="elu", norm=False,
    gru_norm=False, learned_initial=False, reward_dist="normal", cont=False, symlog_inputs=False,
    vector_dist="normal",
)


def size_config(name: str) -> dict:
    return yaml.safe_load((ROOT / "configs" / "model" / f"{name}.yaml").read_text())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up: allocator, lazy initialisation
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def start_states(model: WorldModel, count: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Non-trivial detached states: a few imagined steps from the initial state."""
    with torch.no_grad():
        state = model.initial(count)
        for _ in range(3):
            state = model.img_step(state, torch.rand(count, ACTION_DIM, device=device) * 2 - 1)
    return state


def time_update(size: str, grad: str, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    cfg = size_config(size)
    model = WorldModel(OBS, ACTION_DIM, **cfg).to(device)
    behavior = ImaginationBehavior(
        model.feat_size, ACTION_DIM, False, horizon=args.horizon, actor_grad=grad,
        units=cfg["mlp_units"], layers=cfg["mlp_layers"],
    ).to(device)
    actor, critic = list(behavior.actor.parameters()), list(behavior.critic.parameters())
    actor_opt, critic_opt = torch.optim.Adam(actor, lr=3e-5), torch.optim.Adam(critic, lr=3e-5)
    start = start_states(model, args.batch * args.length, device)

    def update():
        losses, _ = behavior.loss(model, start)
        actor_opt.zero_grad(set_to_none=True)
        critic_opt.zero_grad(set_to_none=True)
        torch.autograd.backward([losses["actor"], losses["critic"]], inputs=actor + critic)
        actor_opt.step()
        critic_opt.step()
        behavior.update_slow_critic()

    seconds = timed(update, args.repeats, device)
    states = args.batch * args.length * args.horizon
    return {
        "size": size, "actor_grad": grad, "feat": model.feat_size, "start_states": args.batch * args.length,
        "horizon": args.horizon, "seconds": round(seconds, 4), "imagined_states_per_s": round(states / seconds),
    }


def time_planner(batch: int, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = WorldModel(OBS, ACTION_DIM, **PLANET_MODEL).to(device)
    planner = CEMPlanner(ACTION_DIM, horizon=12, candidates=1000, top_k=100, iterations=10)
    state = start_states(model, batch, device)
    seconds = timed(lambda: planner.plan(model, state), args.repeats, device)
    return {"states": batch, "candidates": 1000, "horizon": 12, "iterations": 10, "seconds": round(seconds, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=["xs", "s"])
    parser.add_argument("--grads", nargs="+", default=["reinforce"], choices=["reinforce", "dynamics"])
    parser.add_argument("--planner-batches", nargs="*", type=int, default=[1, 4])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    result = {
        "device": str(device),
        "machine": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "updates": [time_update(size, grad, args, device) for size in args.sizes for grad in args.grads],
        "planner": [time_planner(batch, args, device) for batch in args.planner_batches],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
