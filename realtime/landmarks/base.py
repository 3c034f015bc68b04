"""The landmark detector protocol: ``detect(image) -> list[Face]`` with 68 iBUG points per face."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from realtime.types import Face, Image


@runtime_checkable
class LandmarkDetector(Protocol):
    """Finds faces in a BGR uint8 image. Returns [] when there is no face. ``close()`` is idempotent."""

    def detect(self, image: Image) -> list[Face]: ...

    def close(self) -> None: ...
