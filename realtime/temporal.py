"""Temporal stability of the compositor: per tracked face, the colour-transfer parameters and the blend mask are
smoothed over time, so the pasted face does not pulse in brightness or shape from frame to frame.

Each frame's faces are matched to the previous frames' tracks by the nearest face centre (in frame pixels, through
the crop matrix), with jump limits scaled by the time since the track's face was last seen. A track whose face is
missing (a missed detection, a hand over the face) is kept with its state for MAX_AGE_S seconds and taken up again
when the face comes back near it. A track is reset -- its history forgotten, this frame used as it is -- when its
face is lost for longer, or when the face jumps: its centre moves more than ``JUMP_FRACTION`` of the face's size,
or its size changes by more than ``SCALE_JUMP``, per FRAME_S (a cut in a video, another person stepping in).

Smoothing is an exponential moving average with ``weight`` on the past (0 = off: every frame on its own; the
default 0.3 has a time constant of under one frame at 30 fps, 0.6 about 2 frames). The smoothed mask is limited to
where this frame's own mask is non-zero, so a shrinking face (a closing mouth moves the chin) never pastes outside
its current landmark hull.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from realtime.align import invert_matrix, transform_points

JUMP_FRACTION = 0.25  # of the face's size (the crop side in frame pixels)
SCALE_JUMP = 0.2  # relative change of the face's size in one frame
MAX_WEIGHT = 0.95
FRAME_S = 1 / 30  # the jump limits are per this much time: at 8 fps a face may move ~4x as far between frames
MAX_JUMP_FRAMES = 4.0  # ... up to this many FRAME_S (a face back after a second may not come from anywhere)
MAX_AGE_S = 1.0  # a track whose face is missing for longer is dropped (missed detections, a hand over the face)


def face_geometry(matrix: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """(centre (x, y), side) in frame pixels of the SxS crop that ``matrix`` (frame -> crop) cuts out."""
    m = np.asarray(matrix, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    centre = transform_points(np.array([[size / 2.0, size / 2.0]]), invert_matrix(m))[0]
    return centre, size / max(scale, 1e-9)


def ema(previous: np.ndarray | None, current: np.ndarray | None, weight: float) -> np.ndarray | None:
    """``weight`` x previous + (1 - weight) x current; the current value alone when there is no previous (or the
    shapes differ: another model size)."""
    if current is None or previous is None or previous.shape != current.shape or weight <= 0:
        return current
    return (weight * previous + (1.0 - weight) * current).astype(current.dtype, copy=False)


@dataclass(eq=False)  # tracks are compared by identity
class FaceTrack:
    centre: np.ndarray
    side: float
    colour: np.ndarray | None = None  # smoothed colour-transfer parameters (realtime.colour.ColourModel.fit)
    mask: np.ndarray | None = None  # smoothed blend mask, crop space
    frames: int = 0  # frames since the track started (0: new or just reset)
    seen: float = 0.0  # time of the last frame with this face (realtime.temporal.TemporalSmoother.match's clock)
    state: dict = field(default_factory=dict)  # per-face state of other stages (e.g. the eyes' open baseline)

    def jumped(self, centre: np.ndarray, side: float, dt: float = FRAME_S) -> bool:
        """Did the face move or change size more than a face does in ``dt`` seconds (the limits are per FRAME_S)?"""
        frames = min(max(1.0, dt / FRAME_S), MAX_JUMP_FRAMES)
        moved = float(np.linalg.norm(centre - self.centre)) > JUMP_FRACTION * frames * self.side
        return moved or abs(side / self.side - 1.0) > SCALE_JUMP * frames


class TemporalSmoother:
    """Per-face history of one stream. ``match`` once per frame with the faces' crop matrices, then ``colour`` and
    ``mask`` per face. Not thread-safe (one per processor, used by its render thread)."""

    def __init__(self, weight: float = 0.3) -> None:
        if not 0.0 <= weight <= MAX_WEIGHT:
            raise ValueError(f"temporal weight {weight!r}, expected 0..{MAX_WEIGHT}")
        self.weight = float(weight)
        self.tracks: list[FaceTrack] = []  # this frame's, then the lost ones still kept
        self.lost: list[FaceTrack] = []  # kept tracks without a face in the last frame

    def reset(self) -> None:
        self.tracks, self.lost = [], []

    def match(self, matrices: list[np.ndarray], size: int, now: float | None = None) -> list[FaceTrack]:
        """The track of each face (in order), reusing the previous frames' nearest track unless the face jumped.
        A track without a face is kept, with its state, for MAX_AGE_S seconds (``now``: the frame's time,
        default the clock) and taken up again by a face that comes back near it; after that it is dropped."""
        now = time.perf_counter() if now is None else float(now)
        geometry = [face_geometry(m, size) for m in matrices]
        free = [t for t in self.tracks if now - t.seen <= MAX_AGE_S]
        result: list[FaceTrack] = []
        for centre, side in geometry:
            best = min(free, key=lambda t: float(np.linalg.norm(t.centre - centre)), default=None)
            if best is not None and not best.jumped(centre, side, now - best.seen):
                free.remove(best)
                best.centre, best.side = centre, side
                best.frames += 1
                result.append(best)
            else:
                result.append(FaceTrack(centre, side))
        for track in result:
            track.seen = now
        self.lost = free
        self.tracks = result + free
        return result

    def colour(self, track: FaceTrack, params: np.ndarray | None) -> np.ndarray | None:
        """Smoothed colour parameters; a frame without a fit (too few mask pixels) keeps the last ones."""
        if params is None:
            return track.colour
        track.colour = ema(track.colour, params, self.weight)
        return track.colour

    def mask(self, track: FaceTrack, mask: np.ndarray) -> np.ndarray:
        """Smoothed blend mask, limited to where ``mask`` (this frame's) is non-zero."""
        smoothed = ema(track.mask, mask, self.weight)
        assert smoothed is not None
        track.mask = smoothed
        return smoothed if smoothed is mask else np.where(mask > 0, smoothed, np.float32(0))
