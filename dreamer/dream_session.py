"""One person steering a trained world model, step by step, beside reality.

A :class:`DreamSession` holds the model's latent state for a dream that a
person (or the actor, or the planner) drives one action at a time. A start
sets that state by filtering a few observed frames: frames of a replayed
episode, or of a fresh environment reset. Reality runs beside the dream from
the same start with the same actions: the environment itself after a fresh
reset (the same seed gives the same start), or the recorded frames of the
replayed episode for as long as the actions are the recorded ones (replay
keeps no simulator state to reset to). :meth:`DreamSession.resync` sets the
dream to the model's filtered view of reality and continues from there.

Everything here goes through the same ``Agent`` and ``WorldModel`` methods
as training (``observe``, ``img_step``, the decoder, the reward and continue
heads, the critic, ``policy``); the web layer in ``dreamer.dream`` only
converts requests and responses.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch

from dreamer.replay import Episode

MAX_CONTEXT = 64  # observed frames a start may filter


class DreamError(ValueError):
    """A request the session cannot follow (a bad action, start or state)."""


@dataclasses.dataclass
class Frame:
    """What one step shows: the dream's prediction and, where known, reality."""

    dream: dict[str, np.ndarray]  # obs key -> decoded prediction (images uint8 H x W x 3)
    reward: float
    cont: float
    value: float | None
    real: dict[str, np.ndarray] | None = None
    real_reward: float | None = None
    error: float | None = None  # MSE of dream vs reality: pixels scaled to [0, 1], vectors in their own units
    action: list[float] | None = None  # the action that led here (None at the start)
    observed: bool = False  # a context frame: the model saw reality here


class DreamSession:
    """A dream driven one action at a time, beside reality where it is known.

    Args:
        agent: a trained ``dreamer.agent.Agent`` (in eval mode).
        make_env: builds one environment of the run (its ``seed`` keyword
            selects the start of a fresh reset).
        episodes: replayed episodes to start from, by id.
        image_keys, vector_keys: observation keys the model reconstructs.
    """

    def __init__(self, agent, make_env: Callable, episodes: dict[str, Episode],
                 image_keys: list[str], vector_keys: list[str]):
        self.agent, self.make_env, self.episodes = agent, make_env, episodes
        self.image_keys, self.vector_keys = list(image_keys), list(vector_keys)
        self.action_dim, self.discrete = agent.action_dim, agent.discrete
        self.device = agent.device
        self.env = None
        self.frames: list[Frame] = []
        self.latent = None  # the dream's model state (batch of one)
        self.real_latent = None  # the model's filtered view of reality
        self.real_obs: dict[str, np.ndarray] | None = None
        self.recording: tuple[Episode, int] | None = None  # (episode, next step) while reality is the recording
        self.start_info: dict | None = None
        self.step_latency_ms: float | None = None

    # ------------------------------------------------------------------ starts
    def start_replay(self, episode_id: str, step: int, context: int = 5) -> Frame:
        """Filter ``context`` recorded frames ending at ``step`` of a replayed episode."""
        if episode_id not in self.episodes:
            raise DreamError(f"unknown episode {episode_id!r}; {len(self.episodes)} replayed episodes are listed")
        episode = self.episodes[episode_id]
        if not (isinstance(step, int) and 0 <= step < episode.length - 1):
            raise DreamError(f"step={step!r} must be an integer in [0, {episode.length - 2}] for episode {episode_id}")
        context = self._check_context(context)
        first = max(0, step - context + 1)
        self._close_env()
        self.frames, latent = [], None
        data = episode.load()
        for t in range(first, step + 1):
            obs = {k: data[k][t] for k in (*self.image_keys, *self.vector_keys)}
            obs["is_first"] = np.asarray(t == first or bool(data["is_first"][t]))
            latent = self._filter(obs, latent, data["action"][t] if t > first else None)
            self.frames.append(self._show(latent, real=obs, observed=True, real_reward=float(data["reward"][t])))
        self.latent, self.real_latent = latent, latent
        self.real_obs = None
        self.recording = (episode, step + 1)
        self.start_info = {"kind": "replay", "episode": episode_id, "step": step, "context": step - first + 1}
        return self.frames[-1]

    def start_reset(self, seed: int, context: int = 1) -> Frame:
        """Reset a fresh environment with ``seed`` and filter its first ``context``
        frames (the reset and ``context - 1`` steps of a neutral action)."""
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise DreamError(f"seed={seed!r} must be an integer >= 0")
        context = self._check_context(context)
        self._close_env()
        self.env = self.make_env(seed=seed)
        obs = self.env.reset()
        # The frames after the reset follow a neutral action: zeros, or discrete action 0.
        neutral = np.eye(self.action_dim, dtype=np.float32)[0] if self.discrete else np.zeros(self.action_dim, np.float32)
        self.frames, latent = [], None
        for t in range(context):
            if t > 0:
                obs = self.env.step(neutral)
            latent = self._filter(obs, latent, neutral if t > 0 else None)
            self.frames.append(self._show(latent, real=obs, observed=True, real_reward=float(obs["reward"])))
            if obs["is_last"]:
                break
        self.latent, self.real_latent, self.real_obs = latent, latent, obs
        self.recording = None
        self.start_info = {"kind": "reset", "seed": seed, "context": len(self.frames)}
        return self.frames[-1]

    # ------------------------------------------------------------------- steps
    def action_from(self, given) -> np.ndarray:
        """A valid action from a request: an index (discrete) or a list of floats."""
        if self.discrete:
            if isinstance(given, list) and len(given) == 1:
                given = given[0]
            if not isinstance(given, int) or isinstance(given, bool) or not 0 <= given < self.action_dim:
                raise DreamError(f"action={given!r} must be an action index in [0, {self.action_dim - 1}]")
            return np.eye(self.action_dim, dtype=np.float32)[given]
        if not (isinstance(given, list) and len(given) == self.action_dim
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in given)):
            raise DreamError(f"action={given!r} must be a list of {self.action_dim} numbers in [-1, 1]")
        action = np.asarray(given, np.float32)
        if not np.isfinite(action).all():
            raise DreamError(f"action={given!r} must be finite")
        return np.clip(action, -1.0, 1.0)

    def policy_action(self) -> np.ndarray:
        """The actor's (or planner's) action at the dream's current state."""
        self._require_start()
        return self.agent.policy(self.latent, "eval")[0].cpu().numpy()

    def recorded_action(self) -> np.ndarray:
        """The recorded action of the replayed episode at this step."""
        self._require_start()
        if self.recording is None or self.recording[1] >= self.recording[0].length:
            raise DreamError("no recorded action here: the start is not a replayed episode, or the recording ended")
        episode, t = self.recording
        return episode.load()["action"][t].astype(np.float32)

    def step(self, action: np.ndarray) -> Frame:
        """Advance the dream one imagined step with ``action``, and reality with it."""
        self._require_start()
        begin = time.perf_counter()
        action_t = torch.as_tensor(action, device=self.device)[None]
        with torch.no_grad(), self.agent._autocast():
            self.latent = self.agent.world_model.img_step(self.latent, action_t)
        real, real_reward = self._step_reality(action)
        frame = self._show(self.latent, real=real, real_reward=real_reward)
        frame.action = [float(v) for v in action]
        self.frames.append(frame)
        self.step_latency_ms = 1000 * (time.perf_counter() - begin)
        return frame

    def resync(self) -> Frame:
        """Set the dream to the model's filtered view of reality; continue from there."""
        self._require_start()
        if self.real_latent is None:
            raise DreamError("reality is unknown here (the actions left the recording), so there is nothing to sync to")
        self.latent = {k: v.clone() for k, v in self.real_latent.items()}
        last = self.frames[-1]
        frame = self._show(self.latent, real=last.real, real_reward=last.real_reward, observed=True)
        frame.action = last.action
        self.frames[-1] = frame
        return frame

    # --------------------------------------------------------------- exports
    def video(self) -> np.ndarray:
        """(T, H, 3W, 3) uint8: dream | reality | error, for the first image key."""
        if not self.frames or not self.image_keys:
            raise DreamError("nothing to export: start a dream (with image observations) first")
        key = self.image_keys[0]
        rows = []
        for frame in self.frames:
            dream = frame.dream[key]
            if frame.real is None:  # reality unknown: black reality and error panels
                real = error = np.zeros_like(dream)
            else:
                real = frame.real[key]
                error = np.abs(dream.astype(np.int16) - real.astype(np.int16)).astype(np.uint8)
            rows.append(np.concatenate([dream, real, error], 1))
        return np.stack(rows)

    def record(self) -> dict:
        """What was played, as JSON: the start and the actions, to replay it."""
        if not self.frames:
            raise DreamError("nothing to export: start a dream first")
        return {
            "start": self.start_info,
            "actions": [f.action for f in self.frames if f.action is not None],
            "rewards": [f.reward for f in self.frames],
            "real_rewards": [f.real_reward for f in self.frames],
            "errors": [f.error for f in self.frames],
        }

    def close(self) -> None:
        self._close_env()

    # --------------------------------------------------------------- helpers
    def _check_context(self, context) -> int:
        if not isinstance(context, int) or isinstance(context, bool) or not 1 <= context <= MAX_CONTEXT:
            raise DreamError(f"context={context!r} must be an integer in [1, {MAX_CONTEXT}] (observed frames)")
        return context

    def _require_start(self) -> None:
        if self.latent is None:
            raise DreamError("no dream yet: choose a start (a replayed episode or a fresh reset) first")

    def _filter(self, obs: dict, latent, action) -> dict:
        batch = {k: np.asarray(v)[None] for k, v in obs.items() if k in (*self.image_keys, *self.vector_keys, "is_first")}
        prev = torch.zeros(1, self.action_dim) if action is None else torch.as_tensor(np.asarray(action, np.float32))[None]
        return self.agent.observe(batch, latent, prev)

    def _step_reality(self, action: np.ndarray) -> tuple[dict | None, float | None]:
        if self.env is not None:
            if self.real_obs is not None and self.real_obs["is_last"]:
                self.real_latent = None
                return None, None  # the real episode ended; the dream may go on
            obs = self.env.step(action)
            self.real_obs = obs
            self.real_latent = self._filter({**obs, "is_first": np.asarray(False)}, self.real_latent, action)
            return {k: obs[k] for k in (*self.image_keys, *self.vector_keys)}, float(obs["reward"])
        if self.recording is not None:
            episode, t = self.recording
            data = episode.load()
            if t < episode.length and np.allclose(data["action"][t], action, atol=1e-4):
                obs = {k: data[k][t] for k in (*self.image_keys, *self.vector_keys)}
                self.real_latent = self._filter({**obs, "is_first": np.asarray(False)}, self.real_latent, action)
                self.recording = (episode, t + 1)
                return obs, float(data["reward"][t])
            self.recording, self.real_latent = None, None  # the actions left the recording
        return None, None

    @torch.no_grad()
    def _show(self, latent: dict, real: dict | None = None, real_reward: float | None = None,
              observed: bool = False) -> Frame:
        agent = self.agent
        wm = agent.world_model
        with agent._autocast():
            feat = wm.feat(latent)
            preds = {k: d.mean for k, d in wm.decoder(feat).items()}
            reward, cont = float(wm.reward(feat)[0]), float(wm.cont(feat)[0])
            value = float(agent.behavior.critic(feat).mean[0]) if agent.behavior is not None else None
        dream = {}
        for key in self.image_keys:
            image = ((preds[key][0].float() + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
            dream[key] = _rgb(image.movedim(0, -1).cpu().numpy())
        for key in self.vector_keys:
            dream[key] = preds[key][0].float().cpu().numpy()
        error = None
        if real is not None:
            real = {k: _rgb(v) if k in self.image_keys else np.asarray(v, np.float32) for k, v in real.items()}
            errors = [np.mean((dream[k].astype(np.float32) / 255 - real[k].astype(np.float32) / 255) ** 2)
                      for k in self.image_keys]
            errors += [np.mean((dream[k] - real[k]) ** 2) for k in self.vector_keys]
            error = float(np.mean(errors))
        return Frame(dream, reward, cont, value, real, real_reward, error, observed=observed)

    def _close_env(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return np.repeat(image, 3, -1) if image.shape[-1] < 3 else image[..., :3]
