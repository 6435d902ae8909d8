"""Shared helpers: compose the Hydra config and run training in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]


def compose_config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose("config", overrides=overrides)


def toy_agent(overrides: list[str], device):
    """``(cfg, agent, batch)``: an agent built as training builds it, with the
    toy reach task's spaces, and a synthetic batch of 3 x 8 steps."""
    import torch

    import envs
    from dreamer.bench import synthetic_batch
    from dreamer.run import build_agent

    cfg = compose_config(overrides)
    probe = envs.make_env("toy", "reach", size=tuple(cfg.env.size))
    torch.manual_seed(0)
    agent = build_agent(cfg, probe.obs_space, probe.act_space, device)
    batch = synthetic_batch(probe.obs_space, probe.act_space, 3, 8)
    probe.close()
    return cfg, agent, batch


def train_in_process(run_dir: Path, overrides: list[str]):
    """Run train.py's work without a subprocess; writes .hydra/config.yaml as Hydra would."""
    from dreamer.run import run

    cfg = compose_config(overrides)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml", resolve=True)
    return run(cfg, run_dir)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks run fastest single-threaded."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
