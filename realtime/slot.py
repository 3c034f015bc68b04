"""The one-item "newest frame wins" hand-off between two threads, used by the live runner and the WebRTC worker."""

from __future__ import annotations

import threading
import time
from typing import Any

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
