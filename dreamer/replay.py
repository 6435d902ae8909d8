"""Episode buffer: environment steps in preallocated ring arrays, sampled as fixed-length sequences.

A step is a dict of numpy arrays as produced by the environment adapters: ``image`` (uint8, H x W x C)
and/or float32 vector keys, ``reward`` (float32 scalar), ``is_first``, ``is_last``, ``is_terminal``
(bool scalars) and ``action`` (the action that led to this observation, zeros on the first step).
Each env worker's steps are staged until its episode ends or ``chunk_length`` steps are staged; the
chunk is then written to disk (optional) and copied into the ring, which evicts the oldest steps first.
With ``sample_ongoing`` the staged steps are sampled too, as DreamerV3's replay makes every step
sampleable on arrival: with one environment and 1,000-step episodes, waiting for the episode's end
would train a few hundred updates without the current policy's data. PlaNet, DreamerV1 and DreamerV2
sample finished episodes only.
"""

from __future__ import annotations

import datetime
import itertools
import logging
import os
import re
import threading
import uuid
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_FLAGS = ("is_first", "is_last")
# <utc time>-<counter>-<episode uuid>-<first step within the episode>-<length>.npz; the fixed-width
# time and counter make name order chronological.
_NAME = re.compile(r"^\d{8}T\d{12}-\d{8}-(?P<episode>[0-9a-f]{32})-(?P<start>\d+)-(?P<length>\d+)\.npz$")
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)
_log = logging.getLogger(__name__)

Spec = dict[str, tuple[tuple[int, ...], np.dtype]]


@dataclass(frozen=True)
class _ChunkInfo:
    """Where a chunk sits in its episode; chunk B continues chunk A when B.key == A.end_key."""

    episode: str
    start: int
    length: int

    @property
    def key(self) -> tuple[str, int]:
        return self.episode, self.start

    @property
    def end_key(self) -> tuple[str, int]:
        return self.episode, self.start + self.length


class _Staging:
    """One worker's uncommitted steps, written straight into chunk-sized arrays (one copy per step)."""

    def __init__(self, spec: Spec, chunk_length: int):
        self.buffers = {key: np.empty((chunk_length, *shape), dtype) for key, (shape, dtype) in spec.items()}
        self.count = 0
        self.episode: str | None = None
        self.start = 0


def _spec_of(arrays: dict[str, np.ndarray], leading_axis: bool) -> Spec:
    """Keys, per-step shapes and storage dtypes; float64 is stored as float32."""
    missing = [key for key in _FLAGS if key not in arrays]
    if missing:
        raise KeyError(f"replay steps need the keys {list(_FLAGS)}; missing {missing} in {sorted(arrays)}")
    spec = {}
    for key, value in arrays.items():
        array = np.asarray(value)
        dtype = np.dtype(np.float32) if array.dtype == np.float64 else array.dtype
        if key in _FLAGS and dtype != np.bool_:
            raise TypeError(f"step key '{key}' must be bool, got {dtype}")
        if dtype.hasobject:
            raise TypeError(f"step key '{key}' has dtype {dtype}; only numeric and bool arrays can be stored")
        spec[key] = (array.shape[1:] if leading_axis else array.shape, dtype)
    return spec


class Replay:
    """FIFO episode buffer with uniform sequence sampling and optional on-disk chunks.

    Args:
        capacity: most steps held in memory; the oldest are evicted first.
        directory: where committed chunks are written as compressed ``.npz`` (None: memory only).
        chunk_length: a worker's staged steps are committed when its episode ends or at this length.
        seed: seed of the sampler's own random generator.
        sample_ongoing: sample a worker's staged steps before its episode ends (DreamerV3) or only
            committed ones (PlaNet, DreamerV1, DreamerV2).

    ``sample`` may run on a prefetch thread while another thread calls ``add``.
    """

    def __init__(
        self,
        capacity: int,
        directory: str | Path | None = None,
        chunk_length: int = 1024,
        seed: int = 0,
        sample_ongoing: bool = True,
    ):
        if capacity < 1:
            raise ValueError(f"capacity must be a positive number of steps, got {capacity}")
        if chunk_length < 1:
            raise ValueError(f"chunk_length must be a positive number of steps, got {chunk_length}")
        self._capacity = int(capacity)
        self._chunk_length = int(chunk_length)
        self._sample_ongoing = bool(sample_ongoing)
        self._directory = None if directory is None else Path(directory)
        if self._directory is not None:
            self._directory.mkdir(parents=True, exist_ok=True)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._spec: Spec | None = None
        self._staging: dict[int, _Staging] = {}
        self._ring: dict[str, np.ndarray] = {}
        # _continues[i]: ring entry i is the next step, in the same episode, after the entry before it.
        self._continues = np.zeros(0, bool)
        self._start = 0  # ring index of the oldest stored step
        self._size = 0
        self._tail: tuple[str, int] | None = None  # end_key of the newest chunk in the ring
        self._head: tuple[str, int] | None = None  # key of the oldest chunk, tracked while loading
        self._counter = itertools.count()
        self._written: set[str] = set()
        self._loaded = False
        self._chunks_added = 0

    def __len__(self) -> int:
        """Steps held: in the ring and staged."""
        return self._size + sum(staging.count for staging in list(self._staging.values()))

    def can_sample(self, length: int) -> bool:
        """Whether :meth:`sample` can draw sequences of ``length`` steps."""
        with self._lock:
            return bool(self._pools(length))

    def add(self, step: dict[str, np.ndarray], worker: int = 0) -> None:
        """Stage one step of ``worker``; commits the worker's chunk at ``is_last`` or ``chunk_length``.

        The first step ever added fixes the keys and per-step shapes; the step is copied.
        """
        if self._spec is None:
            self._spec = _spec_of(step, leading_axis=False)
        staging = self._staging.get(worker)
        if staging is None:
            with self._lock:  # sample() iterates over the workers' staging on another thread
                staging = self._staging[worker] = _Staging(self._spec, self._chunk_length)
        if set(step) != set(self._spec):
            raise KeyError(
                f"step keys {sorted(step)} differ from the buffer's keys {sorted(self._spec)}: "
                f"missing {sorted(set(self._spec) - set(step))}, unexpected {sorted(set(step) - set(self._spec))}"
            )
        is_first = bool(step["is_first"])
        if is_first and staging.count:
            self._commit(staging)  # the previous episode ended without is_last; keep what it had
        if is_first or staging.episode is None:
            staging.episode, staging.start = uuid.uuid4().hex, 0
        index = staging.count
        for key, (shape, dtype) in self._spec.items():
            value = np.asarray(step[key])
            if value.shape != shape:
                raise ValueError(f"step key '{key}' has shape {value.shape}, expected {shape}")
            if not np.can_cast(value.dtype, dtype, "same_kind"):
                raise TypeError(f"step key '{key}' has dtype {value.dtype}, expected {dtype}")
            staging.buffers[key][index] = value
        staging.count += 1
        is_last = bool(step["is_last"])
        if is_last or staging.count == self._chunk_length:
            self._commit(staging)
        if is_last:
            staging.episode = None

    def drop_partial(self, worker: int) -> int:
        """Discard ``worker``'s staged, uncommitted steps (its env crashed); returns how many."""
        staging = self._staging.get(worker)
        if staging is None:
            return 0
        with self._lock:
            dropped, staging.count, staging.episode = staging.count, 0, None
        return dropped

    def sample(self, batch_size: int, length: int) -> dict[str, np.ndarray]:
        """Draw ``batch_size`` sequences of ``length`` consecutive stored steps: arrays of shape (B, T, ...).

        Start steps are uniform over all sampleable steps: the ring's, once it holds ``length``, and
        (with ``sample_ongoing``) each worker's staged steps, once it has staged ``length``. A sequence
        that runs past the newest step of its pool continues at the pool's oldest one, so every
        sampleable step is covered with probability exactly length / (sampleable steps). ``is_first`` is set wherever a step does not
        follow its predecessor in the same episode: episode starts, seams between different workers'
        chunks, the oldest step of a pool (its predecessor was evicted or is in the ring) and the wrap
        from newest to oldest. The data is otherwise as stored.
        """
        if batch_size < 1 or length < 1:
            raise ValueError(f"batch_size and length must be positive, got {batch_size} and {length}")
        with self._lock:
            pools = self._pools(length)
            if not pools:
                staged = max((staging.count for staging in self._staging.values()), default=0)
                raise ValueError(
                    f"cannot sample sequences of length {length}: only {self._size} steps stored"
                    + (f" and at most {staged} staged by one worker" if staged else "")
                )
            sizes = np.array([size for _, size in pools])
            # With the ring the only pool this draws what sampling the ring alone would.
            starts = self._rng.integers(0, sizes.sum(), batch_size)
            pool_of = np.searchsorted(np.cumsum(sizes), starts, side="right")
            offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            parts = []
            for p, (staging, size) in enumerate(pools):
                rows = np.flatnonzero(pool_of == p)
                if not rows.size:
                    continue
                logical = (starts[rows, None] - offsets[p] + np.arange(length)) % size
                if staging is None:
                    index = (self._start + logical) % self._capacity
                    source, breaks = self._ring, ~self._continues[index]
                else:  # one worker's consecutive steps of one episode
                    index, source, breaks = logical, staging.buffers, False
                data = {key: values[index] for key, values in source.items()}
                data["is_first"] |= breaks | (logical == 0)
                parts.append((rows, data))
        if len(parts) == 1:
            return parts[0][1]
        batch = {
            key: np.empty((batch_size, length, *shape), dtype) for key, (shape, dtype) in self._spec.items()
        }
        for rows, data in parts:
            for key, values in data.items():
                batch[key][rows] = values
        return batch

    def _pools(self, length: int) -> list[tuple[_Staging | None, int]]:
        """The sampleable pools, (None, ring size) and (staging, staged count), that hold ``length``
        steps (caller holds the lock)."""
        pools = [(None, self._size)] if self._size >= length else []
        if not self._sample_ongoing:
            return pools
        return pools + [(staging, staging.count) for staging in self._staging.values() if staging.count >= length]

    def load(self) -> int:
        """Reload the directory's chunks once (newest first until full); returns the steps loaded.

        Chunks written by this buffer are not loaded again; later calls load nothing. Unreadable or
        mismatching files are skipped with a warning that names them; leftover temporary files from
        an interrupted write are deleted.
        """
        if self._loaded or self._directory is None:
            self._loaded = True
            return 0
        self._loaded = True
        for leftover in self._directory.glob("*.npz.tmp"):
            _log.info("Removing unfinished replay file %s", leftover)
            leftover.unlink(missing_ok=True)
        paths = sorted(p for p in self._directory.glob("*.npz") if p.name not in self._written)
        self._head = None
        loaded = 0
        for path in reversed(paths):
            if self._size >= self._capacity:
                break
            read = self._read(path)
            if read is not None:
                with self._lock:
                    loaded += self._prepend(*read)
        return loaded

    def stats(self) -> dict[str, int]:
        """Counters for logging: steps in the ring and staged, episode starts in the ring, chunks added,
        memory bytes."""
        with self._lock:
            staged = sum(staging.count for staging in self._staging.values())
            index = (self._start + np.arange(self._size)) % self._capacity
            episodes = int(np.count_nonzero(self._ring["is_first"][index])) if self._ring else 0
        ring_bytes = sum(array.nbytes for array in self._ring.values()) + self._continues.nbytes
        staging_bytes = sum(a.nbytes for s in list(self._staging.values()) for a in s.buffers.values())
        return {
            "steps": self._size,
            "staged": staged,
            "capacity": self._capacity,
            "episodes": episodes,
            "chunks_added": self._chunks_added,
            "ring_bytes": ring_bytes,
            "staging_bytes": staging_bytes,
            "memory_bytes": ring_bytes + staging_bytes,
        }

    def _commit(self, staging: _Staging) -> None:
        info = _ChunkInfo(staging.episode, staging.start, staging.count)
        chunk = {key: buffer[: info.length] for key, buffer in staging.buffers.items()}
        if self._directory is not None:
            self._write(chunk, info)
        with self._lock:  # moved from staging to ring at once, so no sample sees it twice
            self._append(chunk, info)
            staging.start += info.length
            staging.count = 0

    def _write(self, chunk: dict[str, np.ndarray], info: _ChunkInfo) -> None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{next(self._counter):08d}-{info.episode}-{info.start}-{info.length}.npz"
        temporary = self._directory / f"{name}.tmp"
        try:
            with open(temporary, "wb") as file:
                np.savez_compressed(file, **chunk)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self._directory / name)
        except BaseException as error:
            # Never leave a partial chunk behind; earlier chunks are separate files and stay intact.
            try:
                temporary.unlink(missing_ok=True)
            except OSError:
                pass
            if isinstance(error, OSError):
                message = (
                    f"cannot write replay chunk {self._directory / name}: {error.strerror or error}; "
                    "the partial file was removed and earlier chunks are intact"
                )
                raise (OSError(message) if error.errno is None else OSError(error.errno, message)) from error
            raise
        self._written.add(name)

    def _read(self, path: Path) -> tuple[dict[str, np.ndarray], _ChunkInfo] | None:
        """A chunk file's arrays and position, or None (with a warning naming the file) if unusable."""
        match = _NAME.match(path.name)
        if match is None:
            warnings.warn(f"Skipping replay file {path}: its name is not a replay chunk name", stacklevel=3)
            return None
        info = _ChunkInfo(match["episode"], int(match["start"]), int(match["length"]))
        try:
            with np.load(path, allow_pickle=False) as file:
                chunk = {key: file[key] for key in file.files}
            if self._spec is None:
                self._spec = _spec_of(chunk, leading_axis=True)
        except (*_READ_ERRORS, TypeError) as error:
            warnings.warn(f"Skipping replay file {path}: unreadable ({type(error).__name__}: {error})", stacklevel=3)
            return None
        problem = self._mismatch(chunk, info.length)
        if problem:
            warnings.warn(f"Skipping replay file {path}: {problem}", stacklevel=3)
            return None
        return chunk, info

    def _mismatch(self, chunk: dict[str, np.ndarray], length: int) -> str | None:
        if set(chunk) != set(self._spec):
            return f"keys {sorted(chunk)} differ from the buffer's keys {sorted(self._spec)}"
        for key, (shape, dtype) in self._spec.items():
            if chunk[key].shape != (length, *shape):
                return f"'{key}' has shape {chunk[key].shape}, expected {(length, *shape)}"
            if not np.can_cast(chunk[key].dtype, dtype, "same_kind"):
                return f"'{key}' has dtype {chunk[key].dtype}, expected {dtype}"
        return None

    def _allocate(self) -> None:
        # np.empty leaves untouched pages unmapped, so a large, mostly empty buffer costs little memory.
        self._ring = {key: np.empty((self._capacity, *shape), dtype) for key, (shape, dtype) in self._spec.items()}
        self._continues = np.zeros(self._capacity, bool)

    def _put(self, position: int, chunk: dict[str, np.ndarray], continues: np.ndarray) -> None:
        """Copy a chunk of at most capacity steps into the ring from ``position`` on, wrapping at the end."""
        count = len(continues)
        first = min(count, self._capacity - position)
        pairs = [(self._ring[key], chunk[key]) for key in self._ring] + [(self._continues, continues)]
        for ring, values in pairs:
            ring[position : position + first] = values[:first]
            ring[: count - first] = values[first:]

    def _append(self, chunk: dict[str, np.ndarray], info: _ChunkInfo) -> None:
        """Add a chunk after the newest step, evicting the oldest ones (caller holds the lock)."""
        if not self._ring:
            self._allocate()
        continues = np.ones(info.length, bool)
        continues[0] = self._tail == info.key
        keep = min(info.length, self._capacity)
        end = (self._start + self._size) % self._capacity
        self._put(end, {key: values[-keep:] for key, values in chunk.items()}, continues[-keep:])
        size = min(self._size + keep, self._capacity)
        self._start = (end + keep - size) % self._capacity
        self._size = size
        self._tail = info.end_key
        self._chunks_added += 1

    def _prepend(self, chunk: dict[str, np.ndarray], info: _ChunkInfo) -> int:
        """Add an older chunk before the oldest step while there is room; returns steps kept (lock held)."""
        if not self._ring:
            self._allocate()
        keep = min(info.length, self._capacity - self._size)
        if keep <= 0:
            return 0
        if self._size:
            self._continues[self._start] = self._head == info.end_key
        continues = np.ones(keep, bool)
        continues[0] = False
        position = (self._start - keep) % self._capacity
        self._put(position, {key: values[-keep:] for key, values in chunk.items()}, continues)
        if self._size == 0:
            self._tail = info.end_key
        self._start = position
        self._size += keep
        self._head = info.key if keep == info.length else None
        self._chunks_added += 1
        return keep


class Episode:
    """One episode of a replay directory, read on demand from its chunk files (never written)."""

    def __init__(self, episode_id: str, paths: list[Path], length: int):
        self.id, self.paths, self.length = episode_id, paths, length
        self._data: dict[str, np.ndarray] | None = None

    def load(self) -> dict[str, np.ndarray]:
        """The episode's (T, ...) arrays; raises ``ValueError`` naming a damaged file."""
        if self._data is None:
            chunks = []
            for path in self.paths:
                try:
                    with np.load(path, allow_pickle=False) as file:
                        chunks.append({key: file[key] for key in file.files})
                except (*_READ_ERRORS, TypeError) as error:
                    raise ValueError(f"replay file {path} is unreadable ({type(error).__name__}: {error})") from error
            self._data = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
        return self._data


def list_episodes(directory: str | Path) -> dict[str, Episode]:
    """The episodes of a replay directory by id, oldest first, each made of the
    chunks that run from its step 0 without a gap (an episode still being
    collected is listed with the chunks written so far)."""
    chunks: dict[str, list[tuple[int, int, Path]]] = {}
    for path in sorted(Path(directory).glob("*.npz")):
        match = _NAME.match(path.name)
        if match:
            chunks.setdefault(match["episode"], []).append((int(match["start"]), int(match["length"]), path))
    episodes = {}
    for episode_id, parts in chunks.items():
        parts.sort()
        position, paths = 0, []
        for start, length, path in parts:
            if start != position:
                break
            position, paths = start + length, [*paths, path]
        if paths and position > 1:
            episodes[episode_id] = Episode(episode_id, paths, position)
    return episodes
