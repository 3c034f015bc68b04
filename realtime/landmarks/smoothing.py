"""Landmark smoothing for a stream with several faces: one One Euro filter per face, kept with the right face.

A detector may report the same people in another order from one frame to the next. Faces are paired with their
tracks by the stream's one face tracker (realtime.tracking: a global assignment on centre, size and shape, with jump
limits scaled by the time between frames), which gives each face its ``track_id``; each track id has its own filter,
so one person's landmarks are never dragged towards another's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from realtime.landmarks.one_euro import OneEuroFilter
from realtime.tracking import FaceTracker, track_faces
from realtime.types import Face


class FaceSmoother:
    """``smooth(faces, t) -> faces`` with One Euro-filtered landmarks (``raw`` untouched, the detector's 68 points
    kept as ``unsmoothed``); ``reset()`` forgets every face. ``min_cutoff`` / ``beta`` apply to filters started
    after they are changed. Faces that come with a ``track_id`` (the pipeline's tracker gave them one) use it;
    others are tracked here."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05) -> None:
        OneEuroFilter(min_cutoff, beta)  # the filter's own checks, raised here rather than on the first face
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self._filters: dict[int, OneEuroFilter] = {}  # track id -> its filter
        self._tracker = FaceTracker()

    def reset(self) -> None:
        self._filters = {}
        self._tracker.reset()

    def smooth(self, faces: list[Face], t: float) -> list[Face]:
        """Smoothed copies of ``faces`` (same order); ``t`` is the frame's time in seconds. Faces absent from this
        call lose their filters, so a face that comes back starts fresh instead of from a stale position (its
        track, and the state the other stages keep for it, lives on: realtime.tracking.MAX_AGE_S)."""
        if any(face.track_id is None for face in faces):
            faces = track_faces(self._tracker, faces, t)
        filters: dict[int, OneEuroFilter] = {}
        out = []
        for face in faces:
            assert face.track_id is not None
            filt = self._filters.get(face.track_id) or OneEuroFilter(self.min_cutoff, self.beta)
            filters[face.track_id] = filt
            smoothed = filt(face.landmarks, t).astype(np.float32)
            out.append(dataclasses.replace(face, landmarks=smoothed, unsmoothed=face.landmarks))
        self._filters = filters
        return out
