"""The environment contract, the wrappers and the parallel workers."""

import functools
import os

import numpy as np
import pytest

from envs import ActionError, Env, Space, VectorEnv, env_factories, make_env
from envs.base import continuous_space, discrete_space, image_space, make_obs
from envs.toy import BEST_SCORE, RANDOM_SCORE, ToyReach, scripted_scores
from envs.wrappers import ActionRepeat, ResizeImage, TimeLimit

FLAGS = ("is_first", "is_last", "is_terminal")

CONTRACT_CASES = {
    "dmc_pixels": ("dmc", "walker_walk", {}),
    "dmc_proprio": ("dmc", "walker_walk", {"image": False, "proprio": True}),
    "gym_cartpole": ("gym", "CartPole-v1", {}),
    "gym_pendulum": ("gym", "Pendulum-v1", {}),
    "atari_pong": ("atari", "pong", {}),
    "toy_reach": ("toy", "reach", {}),
    "toy_reach_discrete": ("toy", "reach_discrete", {}),
}


def check_obs(obs, obs_space, first):
    assert set(obs) == set(obs_space) | {"reward", *FLAGS}
    for key, space in obs_space.items():
        assert obs[key].shape == space.shape, (key, obs[key].shape, space.shape)
        assert obs[key].dtype == space.dtype, (key, obs[key].dtype, space.dtype)
    assert obs["reward"].dtype == np.float32 and obs["reward"].shape == ()
    for flag in FLAGS:
        assert obs[flag].dtype == bool and obs[flag].shape == (), flag
    assert bool(obs["is_first"]) == first
    if obs["is_terminal"]:
        assert obs["is_last"]


@pytest.mark.parametrize("case", CONTRACT_CASES)
def test_contract(case):
    suite, task, options = CONTRACT_CASES[case]
    rng = np.random.default_rng(0)
    with make_env(suite, task, seed=1, **options) as env:
        for key, space in env.obs_space.items():
            assert isinstance(space, Space)
            if key == "image":
                assert space.dtype == np.uint8 and space.shape[-1] in (1, 3)
            else:
                assert space.dtype == np.float32 and len(space.shape) == 1
        if "image" in env.obs_space:
            assert env.obs_space["image"].shape[:2] == (64, 64)
        act = env.act_space
        if act.discrete:
            assert act.dtype == np.float32 and len(act.shape) == 1 and act.shape[0] > 1
        else:
            assert (act.low, act.high) == (-1.0, 1.0)

        obs = env.reset()
        check_obs(obs, env.obs_space, first=True)
        assert obs["reward"] == 0 and not obs["is_last"] and not obs["is_terminal"]
        for _ in range(5):
            obs = env.step(act.sample(rng))
            check_obs(obs, env.obs_space, first=False)
            if obs["is_last"]:
                obs = env.reset()

        bad_actions = [np.zeros(act.shape[0] + 1), np.full(act.shape, np.nan)]
        bad_actions.append(np.full(act.shape, 0.5) if act.discrete else np.full(act.shape, 1.5))
        for bad in bad_actions:
            with pytest.raises(ActionError):
                env.step(bad)


def run_until_last(env, action, max_steps=10_000):
    env.reset()
    for step in range(1, max_steps + 1):
        obs = env.step(action)
        if obs["is_last"]:
            return step, obs
    raise AssertionError(f"No is_last within {max_steps} steps")


def test_dmc_default_episode_is_1000_frames_ending_by_time_limit():
    env = make_env("dmc", "walker_walk", image=False, proprio=True)
    steps, obs = run_until_last(env, np.zeros(env.act_space.shape))
    assert steps == 1000 // 2
    assert not obs["is_terminal"]


@pytest.mark.parametrize("time_limit,action_repeat,steps", [(10, 2, 5), (7, 1, 7), (5, 2, 3)])
def test_toy_time_limit_counts_frames(time_limit, action_repeat, steps):
    env = make_env("toy", "reach", time_limit=time_limit, action_repeat=action_repeat)
    found, obs = run_until_last(env, np.zeros(2))
    assert found == steps
    assert not obs["is_terminal"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))


def test_cartpole_falling_is_terminal():
    env = make_env("gym", "CartPole-v1")
    steps, obs = run_until_last(env, np.array([1.0, 0.0]))
    assert steps < 100 and obs["is_terminal"]


def test_gym_truncation_is_last_without_terminal():
    env = make_env("gym", "Pendulum-v1")
    steps, obs = run_until_last(env, np.zeros(1))
    assert steps == 200 and not obs["is_terminal"]


def test_dmc_seed_decides_the_episode_and_quadruped_uses_camera_2():
    first = [make_env("dmc", "walker_walk", image=False, proprio=True, seed=s).reset() for s in (0, 0, 1)]
    assert np.array_equal(first[0]["orientations"], first[1]["orientations"])
    assert not np.array_equal(first[0]["orientations"], first[2]["orientations"])
    assert make_env("dmc", "quadruped_run", image=False, proprio=True).camera == 2


def test_atari_protocol_frame_skip_4_sticky_025():
    env = make_env("atari", "Pong")
    ale = env.unwrapped._env.unwrapped.ale
    env.reset()
    for _ in range(3):
        env.step(np.eye(env.act_space.shape[0], dtype=np.float32)[0])
    assert ale.getEpisodeFrameNumber() == 12
    assert ale.getFloat("repeat_action_probability") == pytest.approx(0.25)


@pytest.mark.parametrize(
    "suite,task,expected",
    [
        ("nope", "x", ["dmc", "gym", "atari", "toy"]),
        ("dmc", "walker_flip", ["walker_walk", "ball_in_cup_catch", "quadruped_run"]),
        ("gym", "NoSuchEnv-v0", ["CartPole-v1", "Pendulum-v1"]),
        ("atari", "pongg", ["pong", "ms_pacman"]),
        ("toy", "fetch", ["reach", "reach_discrete"]),
    ],
)
def test_unknown_names_list_the_valid_ones(suite, task, expected):
    with pytest.raises(ValueError) as error:
        make_env(suite, task)
    for name in expected:
        assert name in str(error.value)


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ValueError, match="action_repeat"):
        make_env("toy", "reach", colour="red")


class Scripted(Env):
    """Rewards 1, 2, 3, ...; frame i lights pixel (0, i) with 10 * i; terminal after ``length`` frames."""

    def __init__(self, length=100):
        self.obs_space = {"image": image_space(4, 6)}
        self.act_space = continuous_space(1)
        self.length = length
        self.observed = []

    def reset(self):
        self.frame = 0
        return make_obs({"image": np.zeros((4, 6, 3), np.uint8)}, is_first=True)

    def step(self, action, observe=True):
        self.frame += 1
        end = self.frame >= self.length
        self.observed.append(observe or end)
        image = np.zeros((4, 6, 3), np.uint8)
        image[0, self.frame % 6] = 10 * self.frame
        values = {"image": image} if observe or end else {}
        return make_obs(values, reward=self.frame, is_terminal=end)


def test_action_repeat_sums_rewards_and_renders_only_needed_frames():
    inner = Scripted()
    env = ActionRepeat(inner, 3)
    env.reset()
    obs = env.step(np.zeros(1))
    assert obs["reward"] == 1 + 2 + 3
    assert obs["image"][0, 3, 0] == 30 and np.count_nonzero(obs["image"][..., 0]) == 1
    assert inner.observed == [False, False, True]


def test_action_repeat_max_pools_last_two_frames_and_stops_at_the_end():
    inner = Scripted(length=6)
    env = ActionRepeat(inner, 4, max_pool=True)
    env.reset()
    obs = env.step(np.zeros(1))
    assert inner.observed == [False, False, True, True]
    assert obs["image"][0, 3, 0] == 30 and obs["image"][0, 4, 0] == 40
    assert np.count_nonzero(obs["image"][..., 0]) == 2
    obs = env.step(np.zeros(1))
    assert obs["is_terminal"] and obs["reward"] == 5 + 6 and inner.frame == 6


def test_time_limit_renders_its_last_frame_and_resize_changes_the_space():
    env = ResizeImage(ActionRepeat(TimeLimit(Scripted(), 4), 3), (8, 12))
    assert env.obs_space["image"].shape == (8, 12, 3)
    env.reset()
    env.step(np.zeros(1))
    obs = env.step(np.zeros(1))
    assert obs["is_last"] and not obs["is_terminal"]
    assert obs["image"].shape == (8, 12, 3) and obs["image"][:2, 8:10, 0].min() == 40


def test_space_sample_and_discrete_shape():
    rng = np.random.default_rng(0)
    one_hot = discrete_space(4).sample(rng)
    assert one_hot.dtype == np.float32 and one_hot.sum() == 1
    assert np.all(np.abs(continuous_space(3).sample(rng)) <= 1)
    with pytest.raises(ValueError):
        Space((2, 2), np.float32, 0, 1, discrete=True)


@pytest.mark.parametrize("task", ["reach", "reach_discrete"])
def test_toy_scores_match_the_published_constants(task):
    best, random = scripted_scores(task, episodes=100)
    assert best == pytest.approx(BEST_SCORE[task], abs=1.5)
    assert random == pytest.approx(RANDOM_SCORE[task], abs=2.0)
    assert random < best / 4


def test_toy_image_shows_agent_and_target():
    env = ToyReach("reach", seed=0)
    first = env.reset()["image"]
    obs = env.step(env.greedy_action())
    assert not np.array_equal(first, obs["image"])
    assert obs["reward"] > 0 or np.linalg.norm(env._agent - env._target) > env.reward_radius
    colours = {tuple(pixel) for pixel in obs["image"].reshape(-1, 3)}
    assert len(colours) >= 2


# --- VectorEnv ---


def crashing_toy(seed, crash_at, hard):
    """A toy env that dies (hard: the process exits) on step ``crash_at``."""
    return CrashingEnv(make_env("toy", "reach", seed=seed, size=16), crash_at, hard)


class CrashingEnv(Env):
    def __init__(self, env, crash_at, hard):
        self.env, self.crash_at, self.hard, self.steps = env, crash_at, hard, 0
        self.obs_space, self.act_space = env.obs_space, env.act_space

    def reset(self):
        return self.env.reset()

    def step(self, action, observe=True):
        self.steps += 1
        if self.steps == self.crash_at:
            if self.hard:
                os._exit(3)
            raise RuntimeError("simulated simulator failure")
        return self.env.step(action, observe)


def test_parallel_matches_local_with_distinct_seeds_and_auto_reset():
    factories = env_factories("toy", "reach", num_envs=2, seed=5, rank=1, size=16, time_limit=3)
    assert [factory.keywords["seed"] for factory in factories] == [7, 8]
    actions = np.full((2, 2), 0.5, np.float32)
    runs = []
    for parallel in (False, True):
        with VectorEnv(factories, parallel=parallel) as envs:
            assert envs.num_envs == 2 and envs.act_space == continuous_space(2)
            assert envs.obs_space["image"].shape == (16, 16, 3)
            observations = [envs.reset()]
            for _ in range(4):
                envs.step_async(actions)
                observations.append(envs.step_wait())
            runs.append(observations)
    local, parallel = runs
    for local_step, parallel_step in zip(local, parallel):
        for a, b in zip(local_step, parallel_step):
            assert all(np.array_equal(a[key], b[key]) for key in a)
    assert not np.array_equal(local[0][0]["image"], local[0][1]["image"])
    assert [bool(step[0]["is_last"]) for step in local] == [False, False, False, True, False]
    assert [bool(step[0]["is_first"]) for step in local] == [True, False, False, False, True]


@pytest.mark.parametrize("parallel,hard", [(True, True), (False, False)])
def test_crashed_worker_is_restarted_and_the_others_continue(parallel, hard):
    factories = [
        functools.partial(crashing_toy, seed=0, crash_at=0, hard=hard),
        functools.partial(crashing_toy, seed=1, crash_at=2, hard=hard),
    ]
    actions = np.zeros((2, 2), np.float32)
    with VectorEnv(factories, parallel=parallel) as envs:
        first = envs.reset()
        with pytest.raises(ActionError, match="environment 0"):
            envs.step([np.full(2, np.nan), np.zeros(2)])
        assert envs.restarted == [] and envs.seeds == [0, 1]
        with pytest.warns(RuntimeWarning, match="worker 1 crashed.*with seed 1000001"):
            obs = envs.step(actions)
        assert envs.restarted == [1] and envs.seeds == [0, 1_000_001]
        assert obs[1]["is_first"] and not obs[0]["is_first"]
        # The fresh seed starts a different episode than the crashed worker's first one.
        assert not np.array_equal(obs[1]["image"], first[1]["image"])
        obs = envs.step(actions)
        assert envs.restarted == [] and not obs[1]["is_first"]
        processes = [worker._process for worker in envs._workers] if parallel else []
    assert not any(process.is_alive() for process in processes)
