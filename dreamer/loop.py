"""The training loop: collect with the policy, replay, update, evaluate, save.

Counting convention: a *frame* is one environment frame (an agent step with
action repeat 2 is 2 frames); every logged ``step`` and every frame budget in
the config is in frames. The train ratio is replayed steps per agent step, so
``updates = agent_steps * train_ratio / (batch_size * (batch_length - replay_context))``
whatever the environment's speed; the replay-context steps only set the
latent state and are not counted as trained. ``pretrain`` updates are made
once on top, when the prefill is done (DreamerV1/V2: 100).

The loop receives factories and built objects, never the config, so tests can
hand in a dummy environment and a counting agent.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dreamer import checkpoint as ckpt
from dreamer.prefetch import Prefetcher


@dataclass
class LoopSettings:
    steps: int  # frames to train for
    prefill: int = 5000  # frames of random actions before the first update
    pretrain: int = 0  # extra updates made once, when training starts after the prefill
    train_ratio: float = 512
    batch_size: int = 16
    batch_length: int = 64
    replay_context: int = 0  # leading steps of each sequence that only set the latent state
    action_repeat: int = 1
    eval_every: int = 10_000
    eval_episodes: int = 1
    log_every: int = 1000
    report_every: int = 20_000
    checkpoint_every: float = 300.0  # seconds
    max_nonfinite_updates: int = 10
    progress: bool = True
    prefetch: bool = False  # sample the next batch in a background thread (see dreamer.prefetch)
    pin_memory: bool = False  # prefetched batches in pinned memory (CUDA agents)
    overlap_env: bool = False  # train while the environment workers step


@dataclass
class Counters:
    frames: int = 0
    agent_steps: int = 0
    updates: int = 0
    episodes: int = 0
    owed_updates: float = 0.0  # fractional updates carried between env steps
    pretrained: bool = False  # the one-off pretrain updates were owed
    next_eval: int = 0
    next_log: int = 0
    next_report: int = 0

    def state(self) -> dict:
        return dict(self.__dict__)


class NonFiniteLossError(RuntimeError):
    pass


class StopRequested(Exception):
    pass


class Trainer:
    """Owns one run: counters, episode bookkeeping, evaluation and checkpoints."""

    def __init__(
        self,
        settings: LoopSettings,
        run_dir: str | Path,
        make_envs: Callable,
        make_eval_envs: Callable | None,
        agent,
        replay,
        logger,
        config_slice: dict,
        seed: int = 0,
        ranks=None,
    ):
        """``ranks``: a :class:`dreamer.distributed.Distributed` when several ranks
        train together (rank 0 alone saves); None for a single process."""
        self.s = settings
        self.run_dir = Path(run_dir)
        # The evaluation environments are built at the first evaluation and kept for the run.
        self.make_envs, self.make_eval_envs, self._eval_envs = make_envs, make_eval_envs, None
        self.agent, self.replay, self.logger = agent, replay, logger
        self.config_slice = config_slice
        self.is_main = ranks is None or ranks.is_main
        # Decisions that gate an update or the stop must be the same on every rank.
        self._any = ranks.any if ranks is not None else lambda *flags: flags
        self.rng = np.random.default_rng(seed)
        # The first open-loop report waits for report_every frames: one at the
        # first update would only show an untrained model.
        self.counters = Counters(next_report=settings.report_every)
        self.checkpoint_path = self.run_dir / "checkpoint.pt"
        self._stop_signal: int | None = None
        self._nonfinite_streak = 0
        self._last_save = time.time()

    # ------------------------------------------------------------ checkpoint
    def save(self) -> None:
        if not self.is_main:
            return
        ckpt.save(
            self.checkpoint_path,
            {
                "agent": self.agent.checkpoint_state(),
                "counters": self.counters.state(),
                "rng": ckpt.rng_state(self.rng),
                "config": self.config_slice,
            },
        )
        self._last_save = time.time()

    def restore(self) -> bool:
        """Resume from the run directory's checkpoint and replay, if any."""
        loaded = self.replay.load()
        if not (self.checkpoint_path.exists() or ckpt.previous_path(self.checkpoint_path).exists()):
            if loaded:
                print(f"[dreamer] no checkpoint; reloaded {loaded} replay steps from {self.run_dir / 'replay'}")
            return False
        # Falls back to checkpoint.prev.pt, with a warning, if checkpoint.pt is missing or damaged.
        state, used = ckpt.load_latest(self.checkpoint_path)
        ckpt.check_compatible(state["config"], self.config_slice, used)
        self.agent.load_checkpoint_state(state["agent"])
        self.counters = Counters(**state["counters"])
        if self.is_main:  # other ranks keep their own seeds, so their noise differs
            ckpt.restore_rng(state["rng"], self.rng)
        print(
            f"[dreamer] resumed from {used}: {self.counters.frames} frames, "
            f"{self.counters.updates} updates, {loaded} replay steps reloaded"
        )
        return True

    # --------------------------------------------------------------- signals
    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum

    def _install_signal_handlers(self):
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR1", None)):
            if sig is not None:
                try:
                    previous[sig] = signal.signal(sig, self._on_signal)
                except ValueError:  # not in the main thread
                    pass
        return previous

    # ------------------------------------------------------------------ run
    def run(self) -> Counters:
        self.restore()
        previous_handlers = self._install_signal_handlers()
        envs = self.make_envs()
        progress = _Progress(self.s.steps, self.counters.frames, self.s.progress)
        try:
            self._collect_and_train(envs, progress)
            progress.close()
            self._evaluate()
            self.logger.write(self.counters.frames)
        except StopRequested:
            print(f"[dreamer] signal {self._stop_signal or 'on another rank'} received: saving and stopping")
        finally:
            progress.close()
            try:
                self.save()
            finally:
                envs.close()
                if self._eval_envs is not None:
                    self._eval_envs.close()
                    self._eval_envs = None
                self.logger.close()
                for sig, handler in previous_handlers.items():
                    signal.signal(sig, handler)
        return self.counters

    def _collect_and_train(self, envs, progress) -> None:
        s, c = self.s, self.counters
        num = envs.num_envs
        obs = _stack(envs.reset())
        policy_state = None
        prev_action = np.zeros((num, self.agent.action_dim), np.float32)
        scores, lengths = np.zeros(num), np.zeros(num, np.int64)
        window_frames, window_start = c.frames, time.time()
        # During the prefill the agent still filters what it sees, so its first
        # policy step continues the episode's state; a random-only run skips that.
        track = s.prefill < s.steps
        while c.frames < s.steps:
            if self._any(self._stop_signal is not None)[0]:
                raise StopRequested()
            mode = "random" if c.frames < s.prefill and len(self.replay) < s.prefill else "train"
            action, policy_state = self.agent.act(obs, policy_state, mode, track=track)
            self._store(obs, prev_action, num)
            # Finished episodes are reset by the env on this step; their action is unused.
            prev_action = np.where(obs["is_last"][:, None], 0.0, action).astype(np.float32)
            scores, lengths = self._track_episodes(obs, scores, lengths)
            overlap = s.overlap_env and hasattr(envs, "step_async")
            if overlap:
                # The workers step while the agent trains on what is already stored.
                envs.step_async(list(action))
                self._train(num)
                obs = _stack(envs.step_wait())
            else:
                obs = _stack(envs.step(list(action)))
            for worker in getattr(envs, "restarted", []):
                seed = envs.seeds[worker] if hasattr(envs, "seeds") else None
                print(
                    f"[dreamer] environment worker {worker} restarted"
                    + (f" with seed {seed}" if seed is not None else "")
                    + "; its unfinished episode is not stored"
                )
                self.replay.drop_partial(worker)
                scores[worker], lengths[worker] = 0, 0
                prev_action[worker] = 0
            c.agent_steps += num
            c.frames += num * s.action_repeat
            progress.update(c.frames)
            if not overlap:
                self._train(num)
            if c.frames >= c.next_log:
                c.next_log = c.frames + s.log_every
                elapsed = time.time() - window_start
                if elapsed > 0:
                    self.logger.scalar("fps", (c.frames - window_frames) / elapsed)
                window_frames, window_start = c.frames, time.time()
                self.logger.scalar("replay/steps", len(self.replay))
                self.logger.scalar("env/restarts", sum(getattr(envs, "restart_counts", [0])))
                self.logger.scalar("train/updates", c.updates)
                self.logger.write(c.frames)
            if s.eval_every and c.frames >= c.next_eval:
                c.next_eval = c.frames + s.eval_every
                if c.frames > 0:
                    self._evaluate()
                    self.logger.write(c.frames)
            if time.time() - self._last_save > s.checkpoint_every:
                self.save()

    def _store(self, obs: dict[str, np.ndarray], prev_action: np.ndarray, num: int) -> None:
        for i in range(num):
            step = {k: v[i] for k, v in obs.items()}
            step["action"] = prev_action[i]
            self.replay.add(step, worker=i)

    def _track_episodes(self, obs, scores, lengths):
        scores = np.where(obs["is_first"], 0.0, scores + obs["reward"])
        lengths = np.where(obs["is_first"], 0, lengths + 1)
        for i in np.flatnonzero(obs["is_last"]):
            self.counters.episodes += 1
            self.logger.scalar("episode/score", scores[i])
            self.logger.scalar("episode/length", lengths[i] * self.s.action_repeat)
        return scores, lengths

    def _train(self, new_agent_steps: int) -> None:
        s, c = self.s, self.counters
        waiting = (
            len(self.replay) < s.prefill // s.action_repeat
            or c.frames < s.prefill
            or not self.replay.can_sample(s.batch_length)
        )
        if self._any(waiting)[0]:
            return
        if not c.pretrained:
            c.pretrained = True
            if c.updates == 0:  # a run resumed from before this flag existed has trained already
                c.owed_updates += s.pretrain
        c.owed_updates += new_agent_steps * s.train_ratio / (s.batch_size * (s.batch_length - s.replay_context))
        batches = self._batches(int(c.owed_updates))
        while c.owed_updates >= 1:
            c.owed_updates -= 1
            batch = next(batches)
            metrics = self.agent.update(batch)
            if metrics.get("train/nonfinite", 0.0):
                self._nonfinite_streak += 1
                self.logger.scalar("train/nonfinite_skipped", 1)
                if self._nonfinite_streak >= s.max_nonfinite_updates:
                    self.logger.write(c.frames)
                    self.save()
                    raise NonFiniteLossError(
                        f"{self._nonfinite_streak} consecutive updates had NaN or infinite losses "
                        f"(at {c.frames} frames); the checkpoint was saved to {self.checkpoint_path}. "
                        "Lower the learning rates or check the observations for NaNs."
                    )
                continue
            self._nonfinite_streak = 0
            c.updates += 1
            self.logger.scalars(metrics)
            if s.report_every and c.frames >= c.next_report:
                c.next_report = (c.frames // s.report_every + 1) * s.report_every
                videos, scalars = self.agent.report(batch)
                self.logger.scalars(scalars)
                for name, frames in videos.items():
                    self.logger.video(name, frames, step=c.frames)

    def _batches(self, count: int):
        """``count`` replayed batches, prefetched one ahead when ``s.prefetch``."""
        s = self.s
        if not s.prefetch:
            return (self.replay.sample(s.batch_size, s.batch_length) for _ in range(count))
        if getattr(self, "_prefetcher", None) is None:
            sample = lambda: self.replay.sample(s.batch_size, s.batch_length)  # noqa: E731
            self._prefetcher = Prefetcher(sample, pin=s.pin_memory)
        return self._prefetcher.batches(count)

    def _evaluate(self) -> None:
        if self.make_eval_envs is None or self.s.eval_episodes <= 0:
            return
        if self._eval_envs is None:
            self._eval_envs = self.make_eval_envs()
        # A run that only collects random actions measures the random policy, in evaluation too.
        mode = "random" if self.s.prefill >= self.s.steps else "eval"
        results = evaluate_episodes(self.agent, self._eval_envs, self.s.eval_episodes, record_video=True, mode=mode)
        self.logger.scalar("eval/score", np.mean(results["scores"]))
        self.logger.scalar("eval/length", np.mean(results["lengths"]) * self.s.action_repeat)
        if results["video"] is not None:
            self.logger.video("eval/video", results["video"])


def evaluate_episodes(agent, envs, episodes: int, record_video: bool = False, mode: str = "eval") -> dict:
    """Run ``episodes`` full episodes without exploration (``mode="random"``:
    uniform random actions) on the environments of ``envs`` side by side.

    ``envs`` is a :class:`envs.VectorEnv` (it resets an environment on the step
    after its last observation); the policy acts for all of them in one batch.
    Environment ``i`` runs episodes ``i, i + n, ...`` of the ``n``; one that has
    run its share keeps stepping unrecorded until the others finish. Scores
    and lengths come back in that episode order, and episode 0's frames form
    the video. A worker that crashes loses its unfinished episode, which is run
    again from its restart.
    """
    num = envs.num_envs
    shares = [len(range(i, episodes, num)) for i in range(num)]
    finished: list[list[tuple[float, int]]] = [[] for _ in range(num)]
    score, length = np.zeros(num), np.zeros(num, np.int64)
    obs = envs.reset()
    frames = [obs[0]["image"]] if record_video and "image" in obs[0] else []
    state = None
    while any(len(done) < share for done, share in zip(finished, shares)):
        action, state = agent.act(_stack(obs), state, mode, track=mode != "random")
        obs = envs.step(list(action))
        restarted = set(getattr(envs, "restarted", []))
        for i, step in enumerate(obs):
            if step["is_first"] or i in restarted:
                score[i], length[i] = 0.0, 0
                if i == 0 and frames and not finished[0]:
                    frames = [step["image"]]  # a restart begins the video's episode again
                continue
            score[i] += float(step["reward"])
            length[i] += 1
            if i == 0 and frames and not finished[0]:
                frames.append(step["image"])
            if step["is_last"] and len(finished[i]) < shares[i]:
                finished[i].append((float(score[i]), int(length[i])))
    ordered = [finished[k % num][k // num] for k in range(episodes)]
    return {
        "scores": [s for s, _ in ordered],
        "lengths": [n for _, n in ordered],
        "video": np.stack(frames) if frames else None,
    }


def _stack(observations: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.stack([o[k] for o in observations]) for k in observations[0]}


class _Progress:
    """A tqdm bar in frames, with FPS and ETA; silent when disabled."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="frame", unit_scale=True, dynamic_ncols=True)
        self.last = initial

    def update(self, frames: int) -> None:
        if self.bar is not None:
            self.bar.update(frames - self.last)
        self.last = frames

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
