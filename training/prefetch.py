"""Training batches built ahead of time in worker processes.

Augmentation (random warp, albumentations, expression warps) is Python + OpenCV work of a few milliseconds per face;
on a GPU one core doing it starves the model (measured on an H200: ~250 samples/s with 14 threads, the GIL being the
limit). Worker processes (fork: the facesets are shared copy-on-write, not copied) each build whole batches for
upcoming steps, at most ``ahead`` steps in advance, so memory stays bounded when the model is the slow side.

Batches are pure functions of (seed, step, stream) (training.step.identity_arrays), so a batch is identical whichever
process builds it, and a resumed run draws the same batches as an uninterrupted one.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]
BatchMaker = Callable[[int], tuple[Arrays, Arrays]]

_MAKER: BatchMaker | None = None  # set in the parent just before the fork; each worker inherits its own copy


def _make(step: int) -> tuple[int, Arrays, Arrays]:
    assert _MAKER is not None, "worker started without a batch maker"
    arrays_a, arrays_b = _MAKER(step)
    return step, arrays_a, arrays_b


def fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


class BatchStream:
    """Yields ``(step, arrays_a, arrays_b)`` for ``start .. end - 1`` in order. ``workers`` 0 (or no fork on this
    platform) builds each batch inline when asked; otherwise a pool of worker processes keeps up to ``ahead``
    batches in flight. ``close()`` (or leaving the ``with`` block) stops the workers."""

    def __init__(self, make: BatchMaker, start: int, end: int, workers: int = 0, ahead: int | None = None) -> None:
        self.make, self.start, self.end = make, start, end
        self.workers = workers if workers > 0 and fork_available() else 0
        self.ahead = ahead or 2 * self.workers
        self._pool: Any = None

    def __iter__(self) -> Iterator[tuple[int, Arrays, Arrays]]:
        if self.workers == 0:
            for step in range(self.start, self.end):
                yield (step, *self.make(step))
            return
        import cv2

        # OpenCV's worker-thread pool does not survive a fork: a child that calls a parallel OpenCV function waits
        # forever on the parent's pool. One thread in the parent (idle while workers augment) means no pool to
        # inherit; each worker process is one core's worth of augmentation anyway.
        cv2.setNumThreads(1)
        global _MAKER
        _MAKER = self.make
        try:
            self._pool = multiprocessing.get_context("fork").Pool(self.workers)
        finally:
            _MAKER = None  # the parent never needs it; workers got their copy at fork time
        pending: deque = deque()
        next_step = self.start
        while next_step < self.end or pending:
            while next_step < self.end and len(pending) < self.ahead:
                pending.append(self._pool.apply_async(_make, (next_step,)))
                next_step += 1
            yield pending.popleft().get()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
