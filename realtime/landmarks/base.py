"""The landmark detector protocol: ``detect(image) -> list[Face]`` with 68 iBUG points per face, an explicit
``warmup()`` and an idempotent ``close()``."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from realtime.types import Face, Image


@runtime_checkable
class LandmarkDetector(Protocol):
    """Finds faces in a BGR uint8 image. Returns [] when there is no face. ``close()`` is idempotent.

    ``warmup()`` does the backend's one-time start-up work (first inference, first face) with its native console
    output captured, so neither the delay nor the start-up lines land on a user's first frame; callers that care
    about the first frame call it once before that frame.
    """

    def detect(self, image: Image) -> list[Face]: ...

    def warmup(self) -> None: ...

    def close(self) -> None: ...
