"""Evaluation episodes run side by side: the same episodes, in a known order, whatever the layout."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import envs
from dreamer.loop import evaluate_episodes
from dreamer.run import eval_envs_factory, eval_layout


class StillAgent:
    """Always the zero action, so an episode's score depends only on its seed."""

    def __init__(self, action_dim: int):
        self.action_dim = action_dim
        self.batches: list[int] = []

    def act(self, obs, state, mode, track=True):
        self.batches.append(len(obs["is_first"]))
        return np.zeros((len(obs["is_first"]), self.action_dim), np.float32), state


TOY = functools.partial(envs.make_env, "toy", "reach", size=(16, 16), seed=10_000)


def one_after_another(env_fn, episodes: int) -> list[float]:
    """Episode scores of one environment, the old single-environment evaluation."""
    env, scores = env_fn(), []
    for _ in range(episodes):
        obs, score = env.reset(), 0.0
        while not obs["is_last"]:
            obs = env.step(np.zeros(2, np.float32))
            score += float(obs["reward"])
        scores.append(score)
    env.close()
    return scores


@pytest.mark.parametrize("count", [1, 2, 5])
def test_side_by_side_episodes_are_those_of_each_seeded_environment_in_episode_order(count):
    agent = StillAgent(2)
    with envs.VectorEnv(envs.eval_factories(TOY, count), parallel=False) as vector_env:
        results = evaluate_episodes(agent, vector_env, 5, record_video=True)
    # Episode k ran on environment k % count as its (k // count)-th episode.
    alone = [one_after_another(fn, 5) for fn in envs.eval_factories(TOY, count)]
    assert results["scores"] == pytest.approx([alone[k % count][k // count] for k in range(5)])
    assert results["lengths"] == [50] * 5
    assert len(set(results["scores"])) > 1  # the episodes differ, so the order is checked
    # The first environment keeps the single evaluator's seed: its first episode is the old one.
    assert results["scores"][0] == pytest.approx(one_after_another(TOY, 1)[0])
    # The video is episode 0 from its first frame to its last; the policy saw all envs at once.
    assert results["video"].shape == (51, 16, 16, 3)
    assert set(agent.batches) == {count}


def test_evaluation_in_processes_matches_the_one_in_process():
    factories = envs.eval_factories(TOY, 2)
    with envs.VectorEnv(factories, parallel=False) as local:
        expected = evaluate_episodes(StillAgent(2), local, 3)
    with envs.VectorEnv(factories, parallel=True) as processes:
        got = evaluate_episodes(StillAgent(2), processes, 3)
        again = evaluate_episodes(StillAgent(2), processes, 3)  # kept between evaluations, as training does
    assert got["scores"] == pytest.approx(expected["scores"])
    assert got["video"] is None
    assert len(again["scores"]) == 3


def test_eval_factories_spread_the_seeds_and_reject_a_bad_count():
    seeds = [fn.keywords["seed"] for fn in envs.eval_factories(TOY, 3)]
    assert seeds == [10_000, 10_000 + envs.registry.EVAL_SEED_STRIDE, 10_000 + 2 * envs.registry.EVAL_SEED_STRIDE]
    with pytest.raises(ValueError, match="count >= 1, got 0"):
        envs.eval_factories(TOY, 0)


def test_eval_layout_auto_runs_one_environment_per_episode_in_processes_except_for_the_toy_task():
    assert eval_layout("dmc", 5) == (5, True)
    assert eval_layout("dmc", 10) == (8, True)
    assert eval_layout("dmc", 1) == (1, False)
    assert eval_layout("toy", 5) == (5, False)
    assert eval_layout("dmc", 5, count=2, parallel=False) == (2, False)
    assert eval_layout("toy", 5, parallel=True) == (5, True)
    with eval_envs_factory(TOY, 2, False)() as vector_env:
        assert vector_env.num_envs == 2
