"""Domain types shared by every stage. Conventions: images are uint8 BGR (OpenCV order) HxWx3."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]  # HxWx3 BGR uint8
Mask = NDArray[np.float32]  # HxW float32 in [0, 1]
Landmarks = NDArray[np.float32]  # Nx2 (x, y) pixel coordinates


@dataclass
class Face:
    """One detected face: 68 iBUG points, the backend's raw points and a confidence in [0, 1]."""

    landmarks: Landmarks  # 68x2, iBUG order
    raw: Landmarks  # backend's own points (468 for FaceMesh, 68 for FAN)
    confidence: float = 1.0
    # the detector's 68 points before temporal smoothing (set by the smoother; None: ``landmarks`` are unsmoothed).
    # Smoothing steadies the paste, but smears fast, small motions such as a blink over the following frames.
    unsmoothed: Landmarks | None = None
    # hands near this face (21x2 frame-pixel points each, mediapipe's hand landmarks): set by the live pipeline when
    # occlusion by hands is on (realtime.occlusion), so the swap leaves them in front of the face
    hands: list[Landmarks] = field(default_factory=list)
    # which face this is across frames (realtime.tracking; set by the live pipeline's tracker, None elsewhere): the
    # per-face state of every stage is kept under it
    track_id: int | None = None

    @property
    def measured(self) -> Landmarks:
        """The detector's own 68 points of this frame: ``unsmoothed`` when smoothed, else ``landmarks``."""
        return self.landmarks if self.unsmoothed is None else self.unsmoothed

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the 68 points, integer, not clipped to the frame."""
        x0, y0 = np.floor(self.landmarks.min(axis=0)).astype(int)
        x1, y1 = np.ceil(self.landmarks.max(axis=0)).astype(int)
        return int(x0), int(y0), int(x1), int(y1)


@dataclass
class Frame:
    """A frame travelling through the live pipeline, with its capture timestamp and per-stage timings."""

    image: Image
    index: int
    t_capture: float  # time.perf_counter() when captured
    faces: list[Face] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


def check_image(image: object, what: str = "image") -> Image:
    """Validate an HxWx3 uint8 image at a boundary, raising TypeError/ValueError naming the problem."""
    if image is None:
        raise TypeError(f"{what} is None, expected an HxWx3 uint8 BGR array")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{what} is a {type(image).__name__}, expected an HxWx3 uint8 BGR numpy array")
    if image.dtype != np.uint8:
        raise TypeError(f"{what} has dtype {image.dtype}, expected uint8 (0..255)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} has shape {image.shape}, expected HxWx3 (BGR); convert grayscale/RGBA first")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"{what} has shape {image.shape}, too small to hold a face")
    return image
