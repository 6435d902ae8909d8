"""Each fast path gives the plain path's losses (within a stated tolerance) and
the switches resolve and fail as documented."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import envs
from behavior.imagine import flatten_states
from dreamer import fast
from conftest import REPO, toy_agent
from dreamer.logger import Logger
from dreamer.loop import LoopSettings, Trainer
from dreamer.prefetch import Prefetcher
from dreamer.replay import Replay

CPU = torch.device("cpu")
PLAIN = {name: "false" for name in fast.SWITCHES}


def tiny_agent(algo: str = "dreamerv3", **switches):
    overrides = ["experiment=debug", "device=cpu", f"algo={algo}"]
    overrides += [f"fast.{name}={value}" for name, value in {**PLAIN, **switches}.items()]
    _, agent, batch = toy_agent(overrides, CPU)
    return agent, batch


def model_losses(agent, batch) -> dict[str, float]:
    torch.manual_seed(1)
    with agent._autocast():
        _, _, _, metrics = agent._model_loss(agent._tensors(batch))
    return {k: float(v) for k, v in metrics.items()}


def assert_close(fast_metrics, plain_metrics, rtol, atol):
    assert fast_metrics.keys() == plain_metrics.keys()
    for key, value in plain_metrics.items():
        assert fast_metrics[key] == pytest.approx(value, rel=rtol, abs=atol), key


@pytest.fixture(scope="module")
def plain():
    agent, batch = tiny_agent()
    return model_losses(agent, batch), batch


# --------------------------------------------------------------- resolution
def test_auto_follows_the_device_table_and_values_are_checked():
    for name in fast.AUTO:
        assert fast.resolve(name, "auto", CPU) is fast.auto_value(name, CPU)
        assert fast.resolve(name, "auto", torch.device("cuda")) is fast.auto_value(name, torch.device("cuda"))
    # bf16 follows the CPU's bfloat16 units, compile_behavior a C++ compiler for
    # the CPU kernels; everything else is fixed per device type.
    assert fast.auto_value("bf16", CPU) is fast.cpu_has_bfloat16_units()
    assert fast.auto_value("compile_behavior", CPU) is fast.has_cpp_compiler()
    machine_dependent = ("bf16", "compile_behavior")
    assert all(isinstance(v, bool) for name, pair in fast.AUTO.items() for v in pair if name not in machine_dependent)
    assert fast.resolve("bf16", "true", CPU) is True
    assert fast.resolve("bf16", False, CPU) is False
    with pytest.raises(ValueError, match="allowed: auto, true, false"):
        fast.resolve("bf16", "yes", CPU)
    with pytest.raises(ValueError, match="unknown fast path 'jit'"):
        fast.resolve("jit", "auto", CPU)


def test_compile_behavior_auto_is_off_on_cpu_without_a_cpp_compiler(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(fast.shutil, "which", lambda name: None)
    assert fast.resolve("compile_behavior", "auto", CPU) is False
    monkeypatch.setattr(fast.shutil, "which", lambda name: "/usr/bin/g++" if name == "g++" else None)
    assert fast.resolve("compile_behavior", "auto", CPU) is True
    assert fast.resolve("compile_behavior", "auto", torch.device("cuda")) is False  # not measured on a GPU


def test_cuda_graphs_stay_off_on_cpu_even_when_asked(capsys):
    assert fast.resolve("cuda_graphs", True, CPU) is False
    assert "needs CUDA" in capsys.readouterr().err
    agent, _ = tiny_agent(cuda_graphs="true", compile="false")
    assert "_core" not in vars(agent.world_model.rssm)


def test_graph_captured_functions_hand_out_copies_their_caller_owns():
    # Under CUDA graphs a compiled function's outputs are reused by its next
    # replay; the wrapper copies every tensor out, keeps the structure and
    # passes gradients through.
    kept = {}

    def step(x):
        kept["deter"] = x * 2
        return {"deter": kept["deter"], "stats": (x + 1, 3)}

    x = torch.ones(2, requires_grad=True)
    out = fast.owned_outputs(step)(x)
    assert out["stats"][1] == 3 and torch.equal(out["deter"], kept["deter"])
    assert out["deter"].data_ptr() != kept["deter"].data_ptr()
    (out["deter"].sum() + out["stats"][0].sum()).backward()
    assert torch.equal(x.grad, torch.full((2,), 3.0))


def test_cuda_graphs_wrap_every_compiled_function_in_owned_outputs():
    agent, _ = tiny_agent(compile="false")
    fast.compile_rssm_steps(agent.world_model.rssm, cuda_graphs=True)
    fast.compile_update(agent, cuda_graphs=True)
    rssm = agent.world_model.rssm
    wrapped = [rssm._core, rssm._posterior, rssm._prior, agent._model_loss, agent._behavior_loss]
    assert all(getattr(fn, "owns_outputs", False) for fn in wrapped)
    plain, _ = tiny_agent(compile="false")
    fast.compile_update(plain, cuda_graphs=False)
    assert not getattr(plain._model_loss, "owns_outputs", False)


def test_cuda_graphs_require_compile():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"fast": {"cuda_graphs": True, "compile": False, "compile_update": False}})
    with pytest.raises(ValueError, match="needs fast.compile, fast.compile_update or fast.compile_behavior"):
        fast.settings_from(cfg, torch.device("cuda"))
    for compiled in ("compile", "compile_update", "compile_behavior"):
        cfg = OmegaConf.create({"fast": {"cuda_graphs": True, "compile": False, "compile_update": False, compiled: True}})
        assert fast.settings_from(cfg, torch.device("cuda"))["cuda_graphs"]


def test_compile_update_swaps_in_compiled_losses_and_keeps_the_eager_methods():
    agent, _ = tiny_agent(compile_update="true")
    # torch.compile is lazy: nothing compiles until the first update.
    assert agent._model_loss is not agent.world_model.loss
    assert agent._behavior_loss is not agent.behavior.loss
    assert "_core" not in vars(agent.world_model.rssm)  # the per-step switch stays separate


def test_compile_behavior_compiles_the_behaviour_loss_alone(capsys):
    agent, _ = tiny_agent(compile_behavior="true", compile_update="false")
    assert agent._model_loss == agent.world_model.loss
    assert agent._behavior_loss is not agent.behavior.loss
    # The pause at the first update is announced.
    assert "fast.compile_behavior: the first update compiles" in capsys.readouterr().err
    plain, _ = tiny_agent()
    assert plain._model_loss == plain.world_model.loss


# ---------------------------------------------------------------- numerics
def test_channels_last_gives_the_same_losses(plain):
    agent, batch = tiny_agent(channels_last="true")
    conv = agent.world_model.encoder.cnn.net[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert_close(model_losses(agent, batch), plain[0], rtol=1e-4, atol=1e-5)


def test_bf16_losses_stay_close_to_float32(plain):
    agent, batch = tiny_agent(bf16="true")
    assert agent.bf16
    # bfloat16 keeps 8 mantissa bits; the losses agree to a few percent.
    assert_close(model_losses(agent, batch), plain[0], rtol=0.05, atol=0.02)


def test_fused_adam_takes_the_same_step_as_foreach_adam():
    # The 2023 preset trains with Adam (the 2024 one with LaProp, which has no fused kernel).
    (foreach, batch), (fused, _) = tiny_agent("dreamerv3_2023"), tiny_agent("dreamerv3_2023", fused_optim="true")
    assert fused.model_opt.param_groups[0]["fused"] and not foreach.model_opt.param_groups[0]["fused"]
    for agent in (foreach, fused):
        torch.manual_seed(2)
        agent.update(batch)
    for a, b in zip(foreach.parameters(), fused.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algo", ["dreamerv3", "dreamerv3_2023"])  # joint and sequential updates
def test_a_nonfinite_loss_moves_no_parameter_and_a_finite_one_does(algo):
    agent, batch = tiny_agent(algo)
    before = [p.detach().clone() for p in agent.parameters()]
    spoiled = {**batch, "reward": batch["reward"].copy()}
    spoiled["reward"][0, 1] = np.nan
    assert agent.update(spoiled) == {"train/nonfinite": 1.0}
    assert all(torch.equal(a, b) for a, b in zip(before, agent.parameters()))
    agent.update(batch)  # the learning-rate warm-up starts at zero
    metrics = agent.update(batch)
    assert metrics["train/nonfinite"] == 0.0
    assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())
    assert not all(torch.equal(a, b) for a, b in zip(before, agent.parameters()))


@pytest.mark.parametrize("algo", ["dreamerv1", "dreamerv2", "dreamerv3_2023"])  # the sequential updates
def test_one_backward_pass_gives_actor_and_critic_their_own_losses_gradients(algo):
    # DreamerV1 and the 2023 DreamerV3 backpropagate returns through the model
    # and bootstrap on the trained critic, so the actor loss reaches the model's
    # features and the critic's values; it must train neither.
    agent, batch = tiny_agent(algo)
    data = agent._tensors(batch)
    with torch.no_grad():
        _, post, _, _ = agent._model_loss(data)
    start, start_cont = flatten_states(post), agent._start_cont(data)
    statistics = {k: v.clone() for k, v in agent.behavior.state_dict().items()}  # the loss moves return_norm's

    torch.manual_seed(1)
    losses, _ = agent.behavior.loss(agent.world_model, start, start_cont)
    own = torch.autograd.grad(losses["actor"], agent.actor_params, retain_graph=True, allow_unused=True)
    own += torch.autograd.grad(losses["critic"], agent.critic_params, allow_unused=True)

    agent.behavior.load_state_dict(statistics)
    agent.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    losses, _ = agent._behavior_losses(start, start_cont)
    # Built with the model's weights frozen, the graph has no path into them
    # (a compiled loss would compute their gradients otherwise), though it
    # runs through the model.
    weights = list(agent.world_model.parameters())
    assert all(g is None for g in torch.autograd.grad(losses["actor"], weights, retain_graph=True, allow_unused=True))
    agent._behavior_backward(losses)
    shared = [p.grad for p in [*agent.actor_params, *agent.critic_params]]
    assert all(g is not None and g.abs().sum() > 0 for g in shared[:2] + shared[-2:])
    for one, both in zip(own, shared):
        torch.testing.assert_close(both, torch.zeros_like(both) if one is None else one, rtol=1e-5, atol=1e-8)
    # The model's weights got nothing and train again afterwards.
    assert all(p.grad is None and p.requires_grad for p in agent.world_model.parameters())


@pytest.mark.slow  # compiling takes one to three minutes on two cores
def test_compiled_rssm_steps_give_the_same_losses(plain, monkeypatch):
    import torch._inductor.config as inductor_config

    # Eager random numbers inside compiled graphs, so sampled latents match.
    monkeypatch.setattr(inductor_config, "fallback_random", True)
    agent, batch = tiny_agent(compile="true")
    assert "_core" in vars(agent.world_model.rssm)
    assert_close(model_losses(agent, batch), plain[0], rtol=1e-4, atol=1e-5)


def joint_gradients(agent, batch) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """The 2024 update's losses and the gradients of its summed loss, before any step."""
    torch.manual_seed(1)
    data = agent._tensors(batch)
    model_loss, post, _, metrics = agent._model_loss(data)
    losses, behavior_metrics = agent._behavior_loss(
        agent.world_model, flatten_states(post), agent._start_cont(data), agent.replayed(data, post)
    )
    agent.zero_grad(set_to_none=True)
    (model_loss + losses["actor"] + losses["critic"]).backward()
    grads = {name: p.grad.clone() for name, p in agent.named_parameters() if p.grad is not None}
    values = {k: float(v) for k, v in {**metrics, **behavior_metrics}.items()}
    return values, grads


@pytest.mark.slow  # compiling the two whole losses takes a few minutes on two cores
def test_compiled_update_gives_the_eager_losses_and_gradients(monkeypatch):
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config, "fallback_random", True)
    (eager, batch), (compiled, _) = tiny_agent(), tiny_agent(compile_update="true")
    eager_values, eager_grads = joint_gradients(eager, batch)
    compiled_values, compiled_grads = joint_gradients(compiled, batch)
    # Fused kernels reorder float32 sums: losses agree to 1e-4, and every
    # parameter's gradient to 1e-3 of that tensor's largest entry.
    assert_close(compiled_values, eager_values, rtol=1e-4, atol=1e-5)
    assert compiled_grads.keys() == eager_grads.keys()
    assert any(name.startswith("world_model.") for name in eager_grads)
    assert any(name.startswith("behavior.actor.") for name in eager_grads)
    for name, grad in eager_grads.items():
        scale = float(grad.abs().max())
        torch.testing.assert_close(compiled_grads[name], grad, rtol=1e-3, atol=1e-3 * scale + 1e-8, msg=name)
    # The return-normalisation statistics the loss updates in place move alike.
    for (name, a), (_, b) in zip(eager.behavior.named_buffers(), compiled.behavior.named_buffers()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
    # The behaviour loss compiled alone, after an eager world-model loss, agrees alike.
    behavior_values, behavior_grads = joint_gradients(tiny_agent(compile_behavior="true")[0], batch)
    assert_close(behavior_values, eager_values, rtol=1e-4, atol=1e-5)
    for name, grad in eager_grads.items():
        scale = float(grad.abs().max())
        torch.testing.assert_close(behavior_grads[name], grad, rtol=1e-3, atol=1e-3 * scale + 1e-8, msg=name)
    # The full update (and the sequential update) run compiled.
    assert compiled.update(batch)["train/nonfinite"] == 0.0
    sequential, batch = tiny_agent("dreamerv3_2023", compile_update="true")
    assert sequential.update(batch)["train/nonfinite"] == 0.0


@pytest.mark.slow  # one to three minutes of compiling per preset on two cores
@pytest.mark.parametrize("algo", ["dreamerv1", "dreamerv2"])
def test_the_older_presets_compile_their_behaviour_loss_as_one_graph(algo, monkeypatch):
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config, "fallback_random", True)
    (eager, batch), (compiled, _) = tiny_agent(algo), tiny_agent(algo, compile_behavior="true")
    assert compiled._behavior_loss is not compiled.behavior.loss
    torch.manual_seed(1)
    eager_metrics = eager.update(batch)
    torch.manual_seed(1)
    compiled_metrics = compiled.update(batch)
    assert compiled_metrics["train/nonfinite"] == 0.0
    assert_close(compiled_metrics, eager_metrics, rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------ loop paths
FAULTS_SCRIPT = """
import resource, sys, torch
from dreamer import fast

def faults(repeats=6, megabytes=256):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        block = torch.empty(megabytes * 2**18)  # float32: megabytes MiB
        block.fill_(1.0)  # touch every page
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

assert fast.keep_freed_memory(True)
assert fast.keep_freed_memory(False)  # glibc's own behaviour again
default = faults()
assert fast.keep_freed_memory(True)
faults(1)  # the first block grows the heap once
print(default, faults())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_keep_memory_reuses_freed_blocks_instead_of_faulting_them_in_again():
    # In a fresh interpreter: what earlier tests left in this process's heap
    # (and how its pages are backed) would change the counts.
    result = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    default, kept = (int(v) for v in result.stdout.split())
    pages = 6 * 256 * 2**20 // 4096
    assert default > 0.9 * pages  # each block arrived as fresh pages
    # At most two of the six blocks need new pages: small allocations can take
    # part of a freed block, and under memory pressure the kernel may reclaim one.
    assert kept <= 2.1 * pages / 6, (default, kept)


def test_prefetcher_yields_what_sequential_sampling_yields():
    def sampler():
        rng = np.random.default_rng(0)
        return lambda: {"x": rng.normal(size=(2, 3))}

    sequential = sampler()
    expected = [sequential()["x"] for _ in range(5)]
    prefetcher = Prefetcher(sampler(), pin=False)
    got = [batch["x"] for batch in prefetcher.batches(5)]
    assert list(prefetcher.batches(0)) == []
    prefetcher.close()
    np.testing.assert_array_equal(np.stack(got), np.stack(expected))


class _RecordingAgent:
    action_dim = 2

    def __init__(self):
        self.sums = []

    def act(self, obs, state, mode, track=True):
        return np.full((len(obs["is_first"]), 2), 0.5, np.float32), state

    def update(self, batch):
        self.sums.append(float(np.asarray(batch["image"], np.float64).sum()))
        return {"train/nonfinite": 0.0}

    def report(self, batch):
        return {}, {}

    def checkpoint_state(self):
        return {}

    def load_checkpoint_state(self, state):
        pass


def _train(tmp_path, **switches) -> tuple[_RecordingAgent, object]:
    fns = envs.env_factories("toy", "reach", 2, seed=0, size=(16, 16), time_limit=20)
    settings = dict(steps=200, prefill=60, train_ratio=32, batch_size=2, batch_length=8, eval_every=0, progress=False)
    agent = _RecordingAgent()
    trainer = Trainer(
        LoopSettings(**settings, **switches),
        tmp_path,
        make_envs=lambda: envs.VectorEnv(fns, parallel=False),
        make_eval_envs=None,
        agent=agent,
        replay=Replay(10_000, tmp_path / "replay", chunk_length=64, seed=0),
        logger=Logger(tmp_path, tensorboard=False),
        config_slice={"test": 1},
    )
    return agent, trainer.run()


def test_prefetch_trains_on_the_same_batches(tmp_path):
    plain_agent, _ = _train(tmp_path / "plain")
    fast_agent, _ = _train(tmp_path / "prefetch", prefetch=True)
    assert len(plain_agent.sums) > 5
    assert fast_agent.sums == plain_agent.sums


def test_overlapped_env_steps_keep_the_train_ratio(tmp_path):
    plain_agent, plain_counters = _train(tmp_path / "plain")
    fast_agent, counters = _train(tmp_path / "overlap", overlap_env=True)
    assert counters.frames == plain_counters.frames == 200
    assert abs(len(fast_agent.sums) - len(plain_agent.sums)) <= 2 * 32 // 16
