"""End-to-end runs of the training loop: presets, logs, checkpoints, resume, evaluate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, compose_config, train_in_process
from dreamer import checkpoint as ckpt
from dreamer.evaluate import main as evaluate_main
from dreamer.logger import Logger
from dreamer.loop import LoopSettings, Trainer
from dreamer.replay import Replay

ALGOS = ["dreamerv3", "dreamerv2", "dreamerv1", "planet"]
# PlaNet's paper planner (1000 candidates x 10 iterations) per env step is
# too slow for a smoke test; the planner itself is tested in test_planner.py.
SMALL_PLANNER = ["algo.planner.candidates=64", "algo.planner.top_k=8", "algo.planner.iterations=2"]


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def metric_names(records: list[dict]) -> set[str]:
    return {key for record in records for key in record}


@pytest.mark.parametrize("algo", ALGOS)
def test_every_preset_trains_on_the_toy_env(tmp_path, algo):
    overrides = ["experiment=debug", f"algo={algo}", "steps=240", "eval_every=0", "report_every=0"]
    counters = train_in_process(tmp_path, overrides + (SMALL_PLANNER if algo == "planet" else []))
    assert counters.frames >= 240
    assert counters.updates > 0
    records = read_metrics(tmp_path)
    assert all("step" in r for r in records)
    names = metric_names(records)
    assert {"episode/score", "episode/length", "fps", "train/model_loss", "eval/score"} <= names
    if algo != "planet":
        assert {"train/actor_loss", "train/critic_loss"} <= names
    assert (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("algo", ALGOS)
def test_every_preset_trains_on_real_dmc_from_pixels(tmp_path, algo):
    overrides = [
        "experiment=debug",
        f"algo={algo}",
        "env=dmc",
        "env.task=cartpole_balance",
        # The unpadded CNN of PlaNet, DreamerV1 and V2 is built for 64 x 64 frames.
        "env.size=[32,32]" if algo == "dreamerv3" else "env.size=[64,64]",
        "env.parallel=false",
        "env.action_repeat=2",  # PlaNet's own table would give cartpole 8: too few agent steps to train here
        "env.time_limit=60",
        "steps=120",
        "prefill=60",
        "eval_every=0",
        "report_every=0",
    ]
    counters = train_in_process(tmp_path, overrides + (SMALL_PLANNER if algo == "planet" else []))
    assert counters.frames >= 120 and counters.updates > 0
    records = read_metrics(tmp_path)
    lengths = [r["episode/length"] for r in records if "episode/length" in r]
    assert lengths and all(length == 60 for length in lengths)


def test_logs_hold_documented_names_and_openloop_video(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_in_process(tmp_path, ["experiment=debug", "steps=300", "eval_every=150", "report_every=150"])
    names = metric_names(read_metrics(tmp_path))
    documented = {"step", "episode/score", "episode/length", "eval/score", "eval/length", "fps"}
    assert documented <= names
    assert any(n.startswith("train/") for n in names)
    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0, "images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    scalars = set(tags["scalars"]) | set(tags.get("tensors", []))
    assert {"episode/score", "eval/score", "fps", "train/model_loss"} <= scalars
    # add_video writes image summaries holding an animated GIF.
    videos = set(tags["images"])
    assert {"openloop", "eval/video"} <= videos, videos
    # The first report waits for report_every frames: an untrained model's would show nothing.
    assert min(image.step for image in events.Images("openloop")) >= 150
    gif = events.Images("openloop")[-1].encoded_image_string
    assert gif[:6] in (b"GIF89a", b"GIF87a") and len(gif) > 1000


def test_a_video_queued_between_writes_keeps_the_step_it_was_made_at(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dreamer.logger import Logger

    logger = Logger(tmp_path)
    frames = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    logger.video("openloop", frames, step=6_000)
    logger.video("eval/video", frames)
    logger.scalar("fps", 10.0)
    logger.write(7_002)
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    assert [image.step for image in events.Images("openloop")] == [6_000]
    assert [image.step for image in events.Images("eval/video")] == [7_002]


def test_killed_run_resumes_with_replay_intact(tmp_path):
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        str(REPO / "train.py"),
        "experiment=debug",
        "steps=100000",
        "checkpoint_every=1",
        "eval_every=0",
        "report_every=0",
        f"hydra.run.dir={run_dir}",
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            finished = list((run_dir / "replay").glob("*.npz")) if (run_dir / "replay").exists() else []
            if (run_dir / "checkpoint.pt").exists() and len(finished) >= 3:
                saved = ckpt.load(run_dir / "checkpoint.pt")
                if saved["counters"]["updates"] > 0:
                    break
            time.sleep(1)
        else:
            pytest.fail("the run wrote no checkpoint with updates and 3 episodes within 240 s")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = {p.name for p in (run_dir / "replay").glob("*.npz")}
    frames_at_kill = ckpt.load(run_dir / "checkpoint.pt")["counters"]["frames"]
    resumed = subprocess.run(
        command[:3] + [f"steps={frames_at_kill + 80}"] + command[4:],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from" in resumed.stdout
    after = {p.name for p in (run_dir / "replay").glob("*.npz")}
    assert before <= after, f"episodes lost: {sorted(before - after)}"
    final = ckpt.load(run_dir / "checkpoint.pt")["counters"]
    assert final["frames"] >= frames_at_kill + 80
    steps_logged = [r["step"] for r in read_metrics(run_dir)]
    assert max(steps_logged) >= frames_at_kill


def test_checkpoint_from_other_config_fails_clearly(tmp_path):
    train_in_process(tmp_path, ["experiment=debug", "steps=120", "eval_every=0", "report_every=0"])
    with pytest.raises(ckpt.CheckpointError, match=r"model.deter: checkpoint has 64, this run has 96"):
        train_in_process(tmp_path, ["experiment=debug", "steps=240", "model.deter=96"])


def test_corrupt_checkpoint_fails_clearly(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointError, match="corrupt or not a checkpoint"):
        ckpt.load(tmp_path / "checkpoint.pt")
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint at"):
        ckpt.load(tmp_path / "missing.pt")


def test_evaluate_writes_scores_and_video(tmp_path, capsys):
    train_in_process(tmp_path, ["experiment=debug", "steps=120", "eval_every=0", "report_every=0"])
    assert evaluate_main([str(tmp_path), "--episodes", "2"]) == 0
    scores = json.loads((tmp_path / "eval_scores.json").read_text())
    assert len(scores["scores"]) == 2 and scores["frames"] >= 120
    assert (tmp_path / "eval_video.mp4").stat().st_size > 1000
    assert "2 episodes: score" in capsys.readouterr().out
    # Damage both files: evaluation would otherwise fall back to checkpoint.prev.pt, if a save rotated one.
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (tmp_path / name).write_bytes(b"\0" * 10)
    assert evaluate_main([str(tmp_path)]) == 2
    assert "corrupt" in capsys.readouterr().err


# ----------------------------------------------------------------- loop logic
class _CountingAgent:
    """Acts randomly, counts updates, and can be told to produce NaN losses."""

    action_dim = 2

    def __init__(self, nonfinite: bool = False):
        self.updates, self.nonfinite, self.batches = 0, nonfinite, []
        self.acted, self.acted_at_first_update = 0, None

    def act(self, obs, state, mode, track=True):
        self.acted += len(obs["is_first"])
        return np.zeros((len(obs["is_first"]), 2), np.float32), state

    def update(self, batch):
        if self.acted_at_first_update is None:
            self.acted_at_first_update = self.acted
        self.batches.append({k: v.shape for k, v in batch.items()})
        if self.nonfinite:
            return {"train/nonfinite": 1.0}
        self.updates += 1
        return {"train/loss": 1.0, "train/nonfinite": 0.0}

    def report(self, batch):
        return {}, {}

    def checkpoint_state(self):
        return {"updates": torch.tensor(self.updates)}

    def load_checkpoint_state(self, state):
        self.updates = int(state["updates"])


def _trainer(tmp_path, agent, **settings):
    from envs import VectorEnv, env_factories

    fns = env_factories("toy", "reach", 2, seed=0, size=(16, 16), time_limit=20)
    defaults = dict(steps=400, prefill=100, train_ratio=32, batch_size=2, batch_length=8, eval_every=0, progress=False)
    defaults.update(settings)
    return Trainer(
        LoopSettings(**defaults),
        tmp_path,
        make_envs=lambda: VectorEnv(fns, parallel=False),
        make_eval_envs=None,
        agent=agent,
        replay=Replay(10_000, tmp_path / "replay", chunk_length=64),
        logger=Logger(tmp_path, tensorboard=False),
        config_slice={"test": 1},
    )


def test_train_ratio_is_replayed_steps_per_agent_step(tmp_path):
    agent = _CountingAgent()
    counters = _trainer(tmp_path, agent).run()
    # Training starts once the prefill is stored; from then on every agent
    # step (2 workers per loop iteration) owes 32 / (2 * 8) = 2 updates.
    assert counters.agent_steps == agent.acted == 400
    assert 100 <= agent.acted_at_first_update < 200
    trained_steps = agent.acted - agent.acted_at_first_update + 2
    assert agent.updates == trained_steps * 32 // (2 * 8)
    assert agent.batches[0]["image"] == (2, 8, 16, 16, 3)
    assert counters.frames == 400
    records = read_metrics(tmp_path)
    assert [r["episode/length"] for r in records if "episode/length" in r][0] == 20


def test_pretrain_updates_come_once_when_training_starts_and_not_again_on_resume(tmp_path):
    agent = _CountingAgent()
    counters = _trainer(tmp_path, agent, pretrain=25).run()
    trained_steps = agent.acted - agent.acted_at_first_update + 2
    assert agent.updates == 25 + trained_steps * 32 // (2 * 8)
    assert counters.pretrained
    resumed = _CountingAgent()
    counters = _trainer(tmp_path, resumed, pretrain=25, steps=440).run()
    assert resumed.updates == agent.updates + 40 * 32 // (2 * 8)  # no second pretrain


@pytest.mark.parametrize("algo", ["dreamerv3", "planet"])
def test_the_policy_takes_over_from_the_state_filtered_during_prefill(algo):
    import envs
    from dreamer.loop import _stack
    from dreamer.run import build_agent

    cfg = compose_config(["experiment=debug", "device=cpu", f"algo={algo}", *(SMALL_PLANNER if algo == "planet" else [])])
    env = envs.make_env("toy", "reach", size=tuple(cfg.env.size), seed=0)
    agent = build_agent(cfg, env.obs_space, env.act_space, torch.device("cpu"))
    obs, state = _stack([env.reset()]), None
    for _ in range(4):
        torch.manual_seed(3)
        action, random_state = agent.act(obs, state, "random")
        torch.manual_seed(3)
        _, policy_state = agent.act(obs, state, "eval")
        # A random step filters the observation exactly as a policy step does.
        assert torch.equal(random_state[0]["deter"], policy_state[0]["deter"])
        np.testing.assert_array_equal(random_state[1].numpy(), action)
        state = random_state
        obs = _stack([env.step(action[0])])
    assert not torch.allclose(state[0]["deter"], agent.world_model.initial(1)["deter"])
    assert agent.act(obs, None, "random", track=False)[1] is None
    env.close()


class _TrackingAgent(_CountingAgent):
    def __init__(self):
        super().__init__()
        self.calls = []

    def act(self, obs, state, mode, track=True):
        self.calls.append((mode, track))
        return super().act(obs, state, mode)


@pytest.mark.parametrize("prefill, tracked", [(100, True), (400, False)])
def test_prefill_steps_are_filtered_unless_the_run_is_random_only(tmp_path, prefill, tracked):
    agent = _TrackingAgent()
    _trainer(tmp_path, agent, prefill=prefill).run()
    random_calls = [track for mode, track in agent.calls if mode == "random"]
    assert random_calls and all(track == tracked for track in random_calls)
    assert any(mode == "train" for mode, _ in agent.calls) == tracked


def test_a_restarted_worker_is_logged_with_its_fresh_seed(tmp_path, capsys):
    import functools

    from envs import VectorEnv
    from test_envs import crashing_toy

    fns = [functools.partial(crashing_toy, seed=0, crash_at=30, hard=False)]
    trainer = _trainer(tmp_path, _CountingAgent(), steps=100, prefill=50, log_every=10)
    trainer.make_envs = lambda: VectorEnv(fns, parallel=False)
    with pytest.warns(RuntimeWarning, match="worker 0 crashed"):
        trainer.run()
    out = capsys.readouterr().out
    assert "[dreamer] environment worker 0 restarted with seed 1000000;" in out
    assert "[dreamer] environment worker 0 restarted with seed 2000000;" in out
    restarts = out.count("[dreamer] environment worker 0 restarted")
    assert max(r["env/restarts"] for r in read_metrics(tmp_path) if "env/restarts" in r) == restarts


def test_persistent_nonfinite_losses_stop_the_run_after_saving(tmp_path):
    from dreamer.loop import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="consecutive updates had NaN"):
        _trainer(tmp_path, _CountingAgent(nonfinite=True), max_nonfinite_updates=3).run()
    assert (tmp_path / "checkpoint.pt").exists()
    assert any("train/nonfinite_skipped" in r for r in read_metrics(tmp_path))


def test_device_auto_and_errors():
    from dreamer.agent import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_presets_compose_with_paper_settings():
    cfg = compose_config(["experiment=dmc_vision", "env.task=walker_walk"])
    assert (cfg.algo.name, cfg.algo.train_ratio, cfg.algo.batch_size, cfg.algo.batch_length) == ("dreamerv3", 512, 16, 65)
    assert (cfg.env.suite, cfg.env.action_repeat, cfg.env.size, cfg.steps) == ("dmc", 2, [64, 64], 1_000_000)
    assert (cfg.model.deter, cfg.env.num_envs, cfg.prefill) == (2048, 16, 0)
    v3_2023 = compose_config(["experiment=dmc_vision", "algo=dreamerv3_2023"])
    assert (v3_2023.model.deter, v3_2023.algo.batch_length, v3_2023.env.num_envs, v3_2023.prefill) == (512, 64, 4, 2048)
    v1 = compose_config(["experiment=dmc_vision", "algo=dreamerv1"])
    assert (v1.algo.world_model.latent, v1.model.deter, v1.model.stoch) == ("gaussian", 200, 30)
    planet = compose_config(["algo=planet"])
    assert planet.algo.policy == "planner" and planet.algo.planner.candidates == 1000


def test_the_default_is_the_dmc_quickstart_and_the_toy_task_is_its_own_experiment():
    # `python train.py` is the quickstart on a real DMC task; its sizes, budget
    # and rates are its own, never those of the paper presets or the toy task.
    quick = compose_config([])
    assert (quick.env.suite, quick.env.task, list(quick.env.size)) == ("dmc", "finger_spin", [64, 64])
    assert (quick.model.deter, quick.steps, quick.algo.name, quick.algo.optim.model.lr) == (512, 12_000, "dreamerv3", 6e-4)
    assert compose_config(["env.task=reacher_easy"]).env.task == "reacher_easy"
    toy = compose_config(["experiment=toy"])
    assert (toy.env.suite, list(toy.env.size), toy.model.deter, toy.steps) == ("toy", [16, 16], 64, 10_000)
    paper = compose_config(["experiment=dmc_vision", "env.task=walker_walk", "seed=1"])
    assert (list(paper.env.size), paper.model.deter, paper.steps, paper.algo.train_ratio) == ([64, 64], 2048, 1_000_000, 512)
    assert paper.algo.optim.model.lr == 4e-5
    base = compose_config(["experiment=none"])
    assert (base.env.suite, base.steps, base.algo.optim.model.lr) == ("dmc", 1_000_000, 4e-5)


def test_another_env_without_an_experiment_is_one_clear_error():
    result = subprocess.run(
        [sys.executable, "train.py", "env=gym"], cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "env=gym with experiment=quickstart" in result.stderr and "experiment=none" in result.stderr


def test_a_random_only_run_evaluates_the_random_policy(tmp_path, monkeypatch):
    # prefill >= steps trains nothing: its evaluations must score random actions,
    # not the untrained actor, so that it is the random baseline of a plot.
    from dreamer.agent import Agent

    modes = []
    act = Agent.act

    def spy(self, obs, state=None, mode="train", track=True):
        modes.append((mode, track))
        return act(self, obs, state, mode, track)

    monkeypatch.setattr(Agent, "act", spy)
    train_in_process(tmp_path, ["experiment=debug", "prefill=200", "steps=200", "eval_every=100", "report_every=0"])
    assert set(modes) == {("random", False)}
    assert len([r for r in read_metrics(tmp_path) if "eval/score" in r]) == 3  # at the start, 100 and 200 frames
