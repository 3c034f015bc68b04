"""``--status FILE``: the enrolment's stage and progress for another process (`swapcam serve`'s page) to poll."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from realtime.atomic import atomic_write_json

if TYPE_CHECKING:
    from training.train import TrainProgress


class StatusFile:
    """``--status FILE``: the enrolment's stage and progress as JSON, for another process to poll."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.t0 = time.monotonic()
        self._last = 0.0

    def write(self, stage: str, **fields: Any) -> None:
        if self.path is not None:
            doc = {"stage": stage, "seconds": round(time.monotonic() - self.t0, 1), **fields}
            atomic_write_json(self.path, doc)

    def training(self, p: TrainProgress) -> bool:
        """A train() callback: the step and an ETA, at most twice a second. Never stops the run."""
        now = time.monotonic()
        if now - self._last >= 0.5 or p.step >= p.steps:
            self._last = now
            self.write("train", step=p.step, steps=p.steps)
        return False
