import threading
import warnings

import numpy as np
import pytest

from dreamer.replay import Replay

IMAGE = (8, 8, 3)


def make_step(step_id, first=False, last=False, image_shape=IMAGE):
    """A step whose `id` key identifies it, so tests can tell which stored steps a batch holds."""
    return {
        "image": np.full(image_shape, step_id % 256, np.uint8),
        "id": np.array([step_id], np.float32),
        "action": np.zeros(2, np.float32) if first else np.full(2, 0.5, np.float32),
        "reward": np.float32(step_id),
        "is_first": np.bool_(first),
        "is_last": np.bool_(last),
        "is_terminal": np.bool_(False),
    }


def add_episode(replay, ids, worker=0):
    for i, step_id in enumerate(ids):
        replay.add(make_step(step_id, first=i == 0, last=i == len(ids) - 1), worker)


def flag_by_id(replay, samples=200):
    """is_first as sampled for each stored step id (it depends on the step, not on where a sequence starts)."""
    batch = replay.sample(samples, min(8, len(replay)))
    flags = {}
    for step_id, flag in zip(batch["id"][..., 0].ravel().astype(int), batch["is_first"].ravel()):
        assert flags.setdefault(step_id, flag) == flag
    return flags


@pytest.mark.parametrize("batch_size,length", [(1, 1), (4, 6), (16, 10)])
def test_sample_shapes_and_dtypes(batch_size, length):
    replay = Replay(capacity=100, chunk_length=8)
    add_episode(replay, range(30))
    batch = replay.sample(batch_size, length)
    expected = {
        "image": ((*IMAGE,), np.uint8),
        "id": ((1,), np.float32),
        "action": ((2,), np.float32),
        "reward": ((), np.float32),
        "is_first": ((), np.bool_),
        "is_last": ((), np.bool_),
        "is_terminal": ((), np.bool_),
    }
    assert set(batch) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert batch[key].shape == (batch_size, length, *shape), key
        assert batch[key].dtype == dtype, key
    ids = batch["id"][..., 0]
    assert np.all((batch["reward"] == ids) & (batch["image"][..., 0, 0, 0] == ids))


def coverage_statistic(covered, length):
    """Chi-square of per-step coverage counts, divided by the number of steps: about 1 when uniform.

    A step's count sums `length` multinomial start counts, so its variance is E * (1 - length / steps).
    """
    steps = len(covered)
    expected = covered.sum() / steps
    return float(np.sum((covered - expected) ** 2 / (expected * (1 - length / steps))) / steps)


def test_sample_covers_every_stored_step_equally_often():
    capacity, length, batch_size, batches = 200, 4, 64, 500
    replay = Replay(capacity=capacity, chunk_length=16, seed=1)
    rng = np.random.default_rng(0)
    step_id = 0
    while step_id < 330:  # evicts, so the ring wraps and the oldest step is mid-episode
        episode_length = int(rng.integers(5, 40))
        add_episode(replay, range(step_id, step_id + episode_length), worker=int(rng.integers(2)))
        step_id += episode_length
    stored = step_id - capacity
    assert len(replay) == capacity
    covered = np.zeros(capacity)
    for _ in range(batches):
        ids = replay.sample(batch_size, length)["id"][..., 0].astype(int).ravel()
        assert ids.min() >= stored
        covered += np.bincount(ids - stored, minlength=capacity)
    assert coverage_statistic(covered, length) < 2.0

    # The tolerance rejects a sampler that only starts where a whole sequence fits before the newest step.
    starts = rng.integers(0, capacity - length + 1, batch_size * batches)
    biased = np.bincount((starts[:, None] + np.arange(length)).ravel(), minlength=capacity)
    assert coverage_statistic(biased.astype(float), length) > 2.0


def test_is_first_at_episode_starts_and_seams_between_workers():
    replay = Replay(capacity=100, chunk_length=4)
    # Two workers interleave: worker 0 runs a 10-step episode, worker 1 a 6-step one.
    first = [make_step(i, first=i == 0, last=i == 9) for i in range(10)]
    second = [make_step(100 + i, first=i == 0, last=i == 5) for i in range(6)]
    for i in range(10):
        replay.add(first[i], worker=0)
        if i < 6:
            replay.add(second[i], worker=1)
    add_episode(replay, range(200, 212))  # alone, so its chunks follow each other in the ring
    batch = replay.sample(2000, 2)
    ids = batch["id"][..., 0].astype(int)
    consecutive = ids[:, 1] == ids[:, 0] + 1
    np.testing.assert_array_equal(batch["is_first"][:, 1], ~consecutive)
    pairs = set(map(tuple, ids))
    assert (203, 204) in pairs and (207, 208) in pairs  # chunk boundaries within one episode stay continuous
    # Ring order: [0..3] [100..103] [104 105] [4..7] [8 9] [200..203] ...
    assert {(3, 100), (103, 104), (105, 4), (7, 8), (9, 200)} <= pairs
    flags = flag_by_id(replay)
    assert flags[0] and flags[100] and flags[200]
    assert flags[4] and not flags[8]  # 4 follows worker 1's chunk; 8 follows its own episode's chunk
    assert not flags[104]


def test_fifo_eviction_keeps_the_newest_steps():
    replay = Replay(capacity=10, chunk_length=3)
    add_episode(replay, range(0, 7))
    add_episode(replay, range(7, 25))
    assert len(replay) == 10 and replay.stats()["steps"] == 10
    batch = replay.sample(100, 10)
    ids = batch["id"][..., 0].astype(int)
    assert set(ids.ravel()) == set(range(15, 25))
    # A full-length sequence is a rotation of the stored steps, oldest step marked as a start.
    for row, flags in zip(ids, batch["is_first"]):
        k = int(np.argmin(row))
        np.testing.assert_array_equal(np.roll(row, -k), np.arange(15, 25))
        assert flags[k] and flags.sum() == 1


def test_long_episode_is_written_as_consecutive_chunks(tmp_path):
    replay = Replay(capacity=100, directory=tmp_path, chunk_length=4)
    add_episode(replay, range(10))
    files = sorted(tmp_path.glob("*.npz"))
    assert [int(f.stem.rsplit("-", 1)[1]) for f in files] == [4, 4, 2]
    chunks = [np.load(f)["id"][:, 0].astype(int).tolist() for f in files]
    assert chunks == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert not list(tmp_path.glob("*.tmp"))
    flags = flag_by_id(replay)
    assert [i for i in range(10) if flags[i]] == [0]


def test_reload_after_crash_restores_the_same_steps(tmp_path):
    first = Replay(capacity=1000, directory=tmp_path, chunk_length=5)
    add_episode(first, range(0, 12), worker=0)
    add_episode(first, range(100, 107), worker=1)
    for i in range(3):  # staged but never committed: lost with the crash
        first.add(make_step(500 + i, first=i == 0), worker=2)
    expected = flag_by_id(first, samples=500)
    assert first.stats()["steps"] == 19 and len(first) == 22
    del first  # no cleanup, as after a crash

    resumed = Replay(capacity=1000, directory=tmp_path)
    assert resumed.load() == 19
    assert len(resumed) == 19
    assert flag_by_id(resumed, samples=500) == expected
    assert resumed.load() == 0 and len(resumed) == 19

    smaller = Replay(capacity=9, directory=tmp_path)
    assert smaller.load() == 9
    assert set(smaller.sample(50, 9)["id"][..., 0].astype(int).ravel()) == {10, 11, *range(100, 107)}


def test_load_does_not_duplicate_own_files(tmp_path):
    replay = Replay(capacity=100, directory=tmp_path, chunk_length=4)
    add_episode(replay, range(6))
    assert replay.load() == 0 and len(replay) == 6


def test_corrupt_and_truncated_files_are_skipped_with_a_warning(tmp_path):
    writer = Replay(capacity=100, directory=tmp_path)
    for start in (0, 100, 200, 300):
        add_episode(writer, range(start, start + 20))
    files = sorted(tmp_path.glob("*.npz"))
    truncated, corrupt, empty = files[0], files[1], files[3]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = bytes(64)
    corrupt.write_bytes(bytes(data))
    empty.write_bytes(b"")

    replay = Replay(capacity=100, directory=tmp_path)
    with pytest.warns(UserWarning) as record:
        assert replay.load() == 20
    messages = " ".join(str(w.message) for w in record)
    for bad in (truncated, corrupt, empty):
        assert bad.name in messages
    assert files[2].name not in messages
    assert set(replay.sample(20, 5)["id"][..., 0].astype(int).ravel()) <= set(range(200, 220))


def test_leftover_temporary_files_are_ignored(tmp_path):
    writer = Replay(capacity=100, directory=tmp_path)
    add_episode(writer, range(8))
    name = next(tmp_path.glob("*.npz")).name
    (tmp_path / f"20990101T000000000000-00000000-{'a' * 32}-0-8.npz.tmp").write_bytes(b"half a file")
    (tmp_path / f"{name}.tmp").write_bytes((tmp_path / name).read_bytes())
    replay = Replay(capacity=100, directory=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert replay.load() == 8
    assert not list(tmp_path.glob("*.tmp"))


def test_files_with_other_keys_or_shapes_are_skipped(tmp_path):
    Replay(capacity=100, directory=tmp_path / "a").add(make_step(0, first=True, last=True))
    other = tmp_path / "b"
    add_episode(Replay(capacity=100, directory=other), range(5))
    for path in (tmp_path / "a").glob("*.npz"):
        path.rename(other / path.name)
    replay = Replay(capacity=100, directory=other)
    replay.add(make_step(50, first=True, image_shape=(4, 4, 3)))
    with pytest.warns(UserWarning, match="image"):
        assert replay.load() == 0


def test_mismatched_steps_are_rejected():
    replay = Replay(capacity=10)
    replay.add(make_step(0, first=True))
    step = make_step(1)
    del step["reward"]
    with pytest.raises(KeyError, match="reward"):
        replay.add(step)
    with pytest.raises(ValueError, match=r"'image' has shape \(4, 4, 3\), expected \(8, 8, 3\)"):
        replay.add(make_step(1, image_shape=(4, 4, 3)))
    step = make_step(1)
    step["image"] = step["image"].astype(np.float32)
    with pytest.raises(TypeError, match="image"):
        replay.add(step)
    with pytest.raises(KeyError, match="is_last"):
        Replay(capacity=10).add({"is_first": np.bool_(True)})


def test_sample_needs_enough_steps():
    replay = Replay(capacity=10)
    add_episode(replay, range(3))
    with pytest.raises(ValueError, match="only 3 steps stored"):
        replay.sample(2, 4)


def test_drop_partial_discards_only_that_workers_staged_steps():
    replay = Replay(capacity=100)
    for i in range(3):
        replay.add(make_step(500 + i, first=i == 0), worker=1)
    add_episode(replay, range(5), worker=0)
    assert replay.drop_partial(1) == 3
    add_episode(replay, range(10, 14), worker=1)
    ids = set(replay.sample(100, 3)["id"][..., 0].astype(int).ravel())
    assert ids == {0, 1, 2, 3, 4, 10, 11, 12, 13}


def test_steps_are_copied_and_stored_as_one_uint8_copy():
    capacity, frame = 40, (64, 64, 3)
    replay = Replay(capacity=capacity, chunk_length=16)
    step = make_step(0, first=True, image_shape=frame)
    replay.add(step)
    step["image"][:] = 255  # an adapter reusing its buffer must not change what was stored
    for i in range(1, 60):
        replay.add(make_step(i, last=i == 59, image_shape=frame))
    per_step = np.prod(frame) + 4 + 8 + 4 + 3 + 1  # image, id, action, reward, flags, continuity flag
    stats = replay.stats()
    assert stats["ring_bytes"] == capacity * per_step
    assert stats["staging_bytes"] == 16 * (per_step - 1)
    batch = replay.sample(4, 3)
    assert batch["image"].dtype == np.uint8


def test_sampling_is_reproducible_and_thread_safe():
    def filled(seed):
        replay = Replay(capacity=50, chunk_length=4, seed=seed)
        add_episode(replay, range(30))
        return replay

    np.testing.assert_array_equal(filled(3).sample(8, 5)["id"], filled(3).sample(8, 5)["id"])
    replay, errors = filled(0), []

    def sample_loop():
        try:
            for _ in range(300):
                batch = replay.sample(8, 5)
                assert batch["id"].shape == (8, 5, 1)
        except Exception as error:  # surfaced in the main thread below
            errors.append(error)

    thread = threading.Thread(target=sample_loop)
    thread.start()
    add_episode(replay, range(1000, 1400))
    thread.join()
    assert not errors and len(replay) == 50


def test_an_unfinished_episode_is_sampled_before_it_ends():
    replay = Replay(capacity=100, chunk_length=1024)
    for i in range(7):
        replay.add(make_step(i, first=i == 0))
    assert not replay.can_sample(8)
    with pytest.raises(ValueError, match="only 0 steps stored and at most 7 staged by one worker"):
        replay.sample(2, 8)
    replay.add(make_step(7))
    assert replay.can_sample(8) and len(replay) == 8 and replay.stats()["staged"] == 8
    batch = replay.sample(50, 8)
    for row, flags in zip(batch["id"][..., 0].astype(int), batch["is_first"]):
        k = int(np.argmin(row))  # a full-length sequence is a rotation, the oldest staged step a start
        np.testing.assert_array_equal(np.roll(row, -k), np.arange(8))
        assert flags[k] and flags.sum() == 1


def test_without_sample_ongoing_only_finished_episodes_are_sampled():
    replay = Replay(capacity=100, chunk_length=1024, sample_ongoing=False)
    add_episode(replay, range(10))
    for i in range(20):  # staged, mid-episode: longer than the finished one, never drawn
        replay.add(make_step(100 + i, first=i == 0))
    assert replay.can_sample(10) and not replay.can_sample(11) and len(replay) == 30
    ids = replay.sample(64, 4)["id"][..., 0]
    assert ids.max() < 10


def test_staged_and_committed_steps_are_covered_equally_often_and_never_twice():
    length, batch_size, batches = 4, 64, 400
    replay = Replay(capacity=1000, chunk_length=16, seed=2)
    add_episode(replay, range(40), worker=0)  # committed: 16 + 16 + 8
    for i in range(23):  # worker 1: one chunk of 16 committed, 7 staged (mid-episode)
        replay.add(make_step(100 + i, first=i == 0), worker=1)
    for i in range(3):  # worker 2: too few staged steps for a sequence of 4
        replay.add(make_step(200 + i, first=i == 0), worker=2)
    assert replay.stats()["staged"] == 10 and replay.stats()["steps"] == 56
    sampleable = [*range(40), *range(100, 123)]
    covered = np.zeros(123)
    for _ in range(batches):
        batch = replay.sample(batch_size, length)
        ids = batch["id"][..., 0].astype(int)
        assert set(ids.ravel()) <= set(sampleable)
        consecutive = ids[:, 1:] == ids[:, :-1] + 1
        np.testing.assert_array_equal(batch["is_first"][:, 1:], ~consecutive)
        first_ids = set(ids[batch["is_first"]])
        assert 116 in first_ids or 116 not in ids  # the staged part's first step starts its pool
        assert not {101, 117} & first_ids  # inside the ring's chunk and inside the staged part
        covered += np.bincount(ids.ravel(), minlength=123)
    assert coverage_statistic(covered[sampleable], length) < 2.0
    replay.add(make_step(123, last=True), worker=1)  # commits the staged steps into the ring
    ids = replay.sample(2000, 1)["id"][..., 0].astype(int).ravel()
    assert set(ids) == {*range(40), *range(100, 124), 200, 201, 202}  # worker 2's 3 staged steps now fit
    assert replay.stats()["staged"] == 3
