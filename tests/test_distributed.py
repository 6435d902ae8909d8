"""Two CPU ranks with gloo on the debug experiment: lockstep updates, identical parameters, resume."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from hydra import compose, initialize_config_dir

from dreamer.distributed import detect_launch, first_host, replay_dir

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = [
    "experiment=debug",
    "prefill=48",
    "algo.train_ratio=16",  # 4 x 16 sequences per update: one update per 4 frames after prefill
    "eval_every=0",
    "report_every=0",
    "logger.tensorboard=false",
    "checkpoint_every=1000",
    "env.num_envs=1",
    "env.parallel=false",
    "fast.threads=1",
    "distributed.timeout=120",  # a rank out of step fails the test instead of hanging it
]


def _config(steps: int, *overrides: str):
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=TINY + [f"steps={steps}", *overrides])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, cfg, run_dir: str, out_dir: str) -> None:
    """One rank, as torchrun would start it; records what the test checks."""
    import os

    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    import dreamer.run as run_module
    from dreamer.loop import Trainer

    agents, restored = [], []
    build, restore = run_module.build_agent, Trainer.restore
    run_module.build_agent = lambda *a, **k: agents.append(build(*a, **k)) or agents[-1]
    Trainer.restore = lambda self: restored.append(restore(self)) or restored[-1]
    counters = run_module.run(cfg, run_dir)
    params = torch.cat([p.detach().flatten() for p in agents[0].parameters()])
    torch.save(params, Path(out_dir) / f"params{rank}.pt")
    record = {"counters": counters.state(), "restored": restored[0]}
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(record))


def _launch(cfg, run_dir: Path, out_dir: Path, world: int = 2) -> list[dict]:
    out_dir.mkdir()
    mp.spawn(_rank_main, args=(world, _free_port(), cfg, str(run_dir), str(out_dir)), nprocs=world)
    records = [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(world)]
    for r, record in enumerate(records):
        record["params"] = torch.load(out_dir / f"params{r}.pt")
    return records


def test_two_ranks_stay_identical_and_resume_together(tmp_path):
    run_dir = tmp_path / "run"
    first = _launch(_config(steps=96), run_dir, tmp_path / "first")
    for record in first:
        assert not record["restored"]
        assert record["counters"]["frames"] == 96
    assert first[0]["counters"]["updates"] == first[1]["counters"]["updates"] > 0
    assert torch.equal(first[0]["params"], first[1]["params"])
    # Only rank 0 logs and saves; each rank keeps its own replay.
    assert (run_dir / "checkpoint.pt").exists() and (run_dir / "metrics.jsonl").exists()
    assert list(replay_dir(run_dir, 0).glob("*.npz")) and list(replay_dir(run_dir, 1).glob("*.npz"))

    second = _launch(_config(steps=128), run_dir, tmp_path / "second")
    for record in second:
        assert record["restored"]
        assert record["counters"]["frames"] == 128
        assert record["counters"]["updates"] > first[0]["counters"]["updates"]
    assert second[0]["counters"] == second[1]["counters"]
    assert torch.equal(second[0]["params"], second[1]["params"])
    assert not torch.equal(second[0]["params"], first[0]["params"])


@pytest.mark.slow  # each rank compiles the behaviour loss (a few minutes on two cores)
def test_two_ranks_stay_identical_with_the_behaviour_loss_compiled(tmp_path):
    # The compiled loss runs inside DDP's forward, so DDP's gradient hooks must still fire.
    records = _launch(_config(96, "fast.compile_behavior=true"), tmp_path / "run", tmp_path / "out")
    assert records[0]["counters"]["updates"] == records[1]["counters"]["updates"] > 0
    assert torch.equal(records[0]["params"], records[1]["params"])


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, None),
        ({"WORLD_SIZE": "1", "RANK": "0"}, None),
        ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1234"}, (3, 1, 4, "h", 1234)),
        # A batch script in a 4-task allocation, outside srun: one process.
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "gpu[01-02]"}, None),
        (
            {"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_STEP_NUM_TASKS": "8",
             "SLURM_JOB_NODELIST": "gpu[07-09,12]", "MASTER_PORT": "2222"},
            (5, 1, 8, "gpu07", 2222),
        ),
    ],
)
def test_detect_launch_reads_torchrun_and_srun(environ, expected):
    launch = detect_launch(environ)
    got = None if launch is None else (
        launch.rank, launch.local_rank, launch.world_size, launch.master_addr, launch.master_port
    )
    assert got == expected


def test_srun_ranks_agree_on_the_master_port():
    environ = {"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_JOB_ID": "4711", "SLURM_JOB_NODELIST": "n1"}
    ports = {detect_launch({**environ, "SLURM_PROCID": str(r)}).master_port for r in range(2)}
    assert len(ports) == 1


@pytest.mark.parametrize("nodes, host", [("gpu[07-09,12],cpu1", "gpu07"), ("a-1,b-2", "a-1"), ("x[3]", "x3")])
def test_first_host_of_a_slurm_node_list(nodes, host):
    assert first_host(nodes) == host
