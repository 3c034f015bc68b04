"""Hand-offs between threads, used by the live runner and the WebRTC worker: the one-item "newest frame wins" slot,
and the queue of changes that other threads ask the frame thread to make between two frames."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from realtime.errors import one_line

log = logging.getLogger("swapcam.slot")

CLOSED: Any = object()  # what ``get`` returns once the slot is closed and empty


class LatestSlot:
    """A one-item hand-off between two threads.

    ``put(item)`` replaces an item the consumer has not taken yet (newest frame wins; returns True when it dropped
    one, counted in ``dropped``). ``put(item, block=True)`` waits for the slot to empty instead (file processing:
    every frame counts). ``get(timeout)`` waits for an item; returns None on timeout and ``LatestSlot.CLOSED`` once
    closed and empty. Closing keeps a waiting item, so a consumer drains what was handed over before it ends.
    """

    CLOSED = CLOSED

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._full = False
        self._closed = False
        self.dropped = 0

    def put(self, item: Any, block: bool = False) -> bool:
        with self._cond:
            if block:
                while self._full and not self._closed:
                    self._cond.wait(0.1)
            if self._closed:
                return False
            dropped = self._full
            if dropped:
                self.dropped += 1
            self._item, self._full = item, True
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._full:
                if self._closed:
                    return CLOSED
                wait = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                if wait <= 0:
                    return None
                self._cond.wait(wait)
            item, self._item, self._full = self._item, None, False
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class PendingChanges:
    """Changes asked for from any thread (a key press, the page's controls, a new model), made in order by the one
    thread that owns the target (the processor), between two frames: ``put(change)``, then ``apply(target)``, which
    calls ``change(target)`` for each and counts them in ``applied``.

    A failure stays local: a change that raises is refused (counted in ``refused``) and handed to its ``on_error``
    (in the applying thread; logged in one line when it has none); the frame thread and the other changes go on. The
    change itself must leave its target as it was when it raises (FaceSwapProcessor.reconfigure builds everything
    new before it swaps anything in)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changes: list[tuple[Callable[[Any], None], Callable[[Exception], None] | None]] = []
        self.applied = 0
        self.refused = 0

    def put(self, change: Callable[[Any], None], on_error: Callable[[Exception], None] | None = None) -> None:
        with self._lock:
            self._changes.append((change, on_error))

    def apply(self, target: Any) -> None:
        if not self._changes:  # the common case, every frame: no lock taken
            return
        with self._lock:
            changes, self._changes = self._changes, []
        for change, on_error in changes:
            try:
                change(target)
            except Exception as exc:
                self.refused += 1
                if on_error is not None:
                    on_error(exc)
                else:
                    log.warning("change refused, going on as before: %s", one_line(exc))
            else:
                self.applied += 1
