"""Temporal stability of the compositor: per tracked face, the colour-transfer parameters and the blend mask are
smoothed over time, so the pasted face does not pulse in brightness or shape from frame to frame; and each face's
track carries the state of the other per-face stages (FaceTrack.state).

Which face is which comes from the stream's one face tracker (realtime.tracking): faces found by the live pipeline
carry its ``track_id`` and are looked up by it (:meth:`TemporalSmoother.match_ids`); faces without one (a caller with
its own landmarks) are tracked here by the same tracker from their crop matrices (:meth:`TemporalSmoother.match`).
A track whose face is missing (a missed detection, a frame whose crop failed, a hand over the face) is kept with its
state for MAX_AGE_S seconds and taken up again when the face comes back; a face that jumps (its centre moves more
than JUMP_FRACTION of its size, or its size changes by more than SCALE_JUMP, per FRAME_S: a cut in a video, another
person stepping in) starts a new track, its history forgotten.

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
from realtime.facestate import FaceState
from realtime.tracking import FRAME_S, JUMP_FRACTION, MAX_AGE_S, SCALE_JUMP, FaceTracker, Observation

__all__ = ["FRAME_S", "JUMP_FRACTION", "MAX_AGE_S", "MAX_WEIGHT", "SCALE_JUMP", "FaceTrack", "TemporalSmoother"]

MAX_WEIGHT = 0.95


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
    id: int  # the face tracker's id (realtime.tracking)
    colour: np.ndarray | None = None  # smoothed colour-transfer parameters (realtime.colour.ColourModel.fit)
    mask: np.ndarray | None = None  # smoothed blend mask, crop space
    frames: int = 0  # frames since the track started (0: new)
    seen: float = 0.0  # time of the last frame with this face (the match's clock)
    state: FaceState = field(default_factory=FaceState)  # what every per-face stage remembers (realtime.facestate)


class TemporalSmoother:
    """Per-face history of one stream. ``match_ids`` (or ``match``) once per frame, then ``colour`` and ``mask``
    per face. Not thread-safe (one per processor, used by its render thread)."""

    def __init__(self, weight: float = 0.3) -> None:
        if not 0.0 <= weight <= MAX_WEIGHT:
            raise ValueError(f"temporal weight {weight!r}, expected 0..{MAX_WEIGHT}")
        self.weight = float(weight)
        self.tracks: list[FaceTrack] = []  # this frame's, then the lost ones still kept
        self.lost: list[FaceTrack] = []  # kept tracks without a face in the last frame
        self._tracker = FaceTracker()  # for faces that come without a track id

    def reset(self) -> None:
        self.tracks, self.lost = [], []
        self._tracker.reset()

    def match_ids(self, ids: list[int], now: float | None = None) -> list[FaceTrack]:
        """The track of each face by its tracker id (in order); a new id starts a new track. Tracks of ids not in
        this frame are kept (``lost``) for MAX_AGE_S seconds (``now``: the frame's time, default the clock)."""
        now = time.perf_counter() if now is None else float(now)
        known = {t.id: t for t in self.tracks if now - t.seen <= MAX_AGE_S}
        result = []
        for i in ids:
            track = known.pop(i, None)
            if track is None:
                track = FaceTrack(i)
            else:
                track.frames += 1
            track.seen = now
            result.append(track)
        self.lost = list(known.values())
        self.tracks = result + self.lost
        return result

    def match(self, matrices: list[np.ndarray], size: int, now: float | None = None) -> list[FaceTrack]:
        """The track of each face (in order) from the faces' crop matrices (frame -> SxS crop), by the face tracker
        (no shape: a crop's centre and side); see :meth:`match_ids`."""
        now = time.perf_counter() if now is None else float(now)
        observations = [Observation(*face_geometry(m, size)) for m in matrices]
        return self.match_ids(self._tracker.update(observations, now), now)

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
