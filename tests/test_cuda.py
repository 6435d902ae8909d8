"""The agent's CUDA paths end to end: updates and acting under the CUDA
``auto`` switches and with CUDA graphs. Skipped where torch sees no GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import toy_agent

from dreamer import fast

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


def cuda_agent(**switches):
    overrides = ["experiment=debug", "device=cuda", *(f"fast.{name}={value}" for name, value in switches.items())]
    cfg, agent, batch = toy_agent(overrides, CUDA)
    return agent, batch, fast.settings_from(cfg, CUDA)


def train_and_act(agent, batch, updates: int = 3, steps: int = 4) -> None:
    """Updates that move the parameters, then acting with the policy state fed back."""
    before = [p.detach().clone() for p in agent.parameters() if p.requires_grad]
    for _ in range(updates):
        metrics = agent.update(batch)
        assert metrics.get("train/nonfinite", 0) == 0 and all(np.isfinite(v) for v in metrics.values()), metrics
    after = [p for p in agent.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    obs = {k: v[:2, 0] for k, v in batch.items() if k not in ("action", "reward")}
    state = None
    for step in range(steps):
        obs["is_first"] = np.full(2, step == 0)
        action, state = agent.act(obs, state, "train")
        assert np.isfinite(action).all() and action.shape[0] == 2
    # An update after acting reads nothing the acting overwrote.
    assert agent.update(batch).get("train/nonfinite", 0) == 0


def test_the_auto_switches_train_and_act_on_cuda():
    agent, batch, settings = cuda_agent()
    assert settings["bf16"] and settings["fused_optim"] and settings["prefetch"]
    train_and_act(agent, batch)


def test_cuda_graphs_over_the_compiled_rssm_steps_train_and_act():
    agent, batch, settings = cuda_agent(compile="true", cuda_graphs="true")
    assert settings["cuda_graphs"]
    train_and_act(agent, batch)


@pytest.mark.slow
def test_cuda_graphs_over_the_whole_compiled_update_train_and_act():
    agent, batch, settings = cuda_agent(compile_update="true", cuda_graphs="true")
    assert settings["cuda_graphs"] and settings["compile_update"]
    train_and_act(agent, batch)
