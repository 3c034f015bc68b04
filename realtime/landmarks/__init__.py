"""Face landmarks: a small protocol, the mediapipe FaceMesh backend (default), face-alignment's FAN, and the One Euro
smoothing that follows each face of a stream."""

from __future__ import annotations

from realtime.landmarks.base import LandmarkDetector

BACKENDS = ("mediapipe", "fan")


def create_detector(
    backend: str = "mediapipe", mode: str = "static", max_faces: int = 1, **options
) -> LandmarkDetector:
    """Build a detector; call its ``warmup()`` before the first frame that matters. ``mode``: 'static' for
    photos/extraction, 'tracking' for streams."""
    if backend == "mediapipe":
        from realtime.landmarks.mediapipe_backend import MediaPipeDetector

        return MediaPipeDetector(mode=mode, max_faces=max_faces, **options)
    if backend == "fan":
        from realtime.landmarks.fan_backend import FanDetector

        return FanDetector(max_faces=max_faces, **options)
    from realtime.errors import SwapcamError

    raise SwapcamError(f"unknown landmark backend {backend!r}; choose from {', '.join(BACKENDS)}")


__all__ = ["LandmarkDetector", "create_detector", "BACKENDS"]
