"""Replay batches sampled in a background thread while the agent trains.

The loop knows before it starts a burst of updates how many it will run, so
:class:`Prefetcher` samples exactly that many batches, one ahead of the
update that consumes them, and never touches the replay outside the burst
(the replay is only written to between bursts). On CUDA the arrays are
copied into pinned memory, so the agent's copy to the GPU is non-blocking.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator

import numpy as np
import torch

Batch = dict[str, np.ndarray]


def pinned(batch: Batch) -> dict[str, torch.Tensor]:
    """numpy arrays -> tensors in page-locked memory (for non-blocking host-to-GPU copies)."""
    return {k: torch.from_numpy(np.ascontiguousarray(v)).pin_memory() for k, v in batch.items()}


class Prefetcher:
    """Samples batches one ahead on a worker thread.

    Args:
        sample: ``() -> batch``, e.g. ``lambda: replay.sample(B, T)``.
        pin: copy each batch into pinned tensors (use with a CUDA agent).
    """

    def __init__(self, sample: Callable[[], Batch], pin: bool = False):
        self.sample, self.pin = sample, pin
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")

    def _job(self):
        batch = self.sample()
        return pinned(batch) if self.pin else batch

    def batches(self, count: int) -> Iterator:
        """Yield ``count`` batches; batch k + 1 is sampled while batch k is in use.

        Sampling order and random numbers are those of calling ``sample``
        ``count`` times in a row. All sampling has finished when the iterator
        is exhausted or closed.
        """
        pending: Future | None = self._pool.submit(self._job) if count > 0 else None
        try:
            for index in range(count):
                batch = pending.result()
                pending = self._pool.submit(self._job) if index + 1 < count else None
                yield batch
        finally:
            if pending is not None:
                pending.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
