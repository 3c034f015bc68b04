"""A sink that keeps nothing (benchmarks, headless runs); counts frames and checks their type."""

from __future__ import annotations

from realtime.types import Image, check_image


class NullSink:
    def __init__(self) -> None:
        self.frames = 0
        self.closed = False

    def send(self, image: Image) -> bool:
        check_image(image, "frame sent to the null sink")
        self.frames += 1
        return True

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> NullSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
