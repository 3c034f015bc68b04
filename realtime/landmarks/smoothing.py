"""Landmark smoothing for a stream with several faces: one One Euro filter per face, kept with the right face.

A detector may report the same people in another order from one frame to the next. :class:`FaceSmoother` pairs
each face with the filter whose last face centre is nearest; a face with no filter within half its own width starts
a fresh one, so one person's landmarks are never dragged towards another's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from realtime.landmarks.one_euro import OneEuroFilter
from realtime.types import Face


class FaceSmoother:
    """``smooth(faces, t) -> faces`` with One Euro-filtered landmarks (``raw`` untouched, the detector's 68 points
    kept as ``unsmoothed``); ``reset()`` forgets every face. ``min_cutoff`` / ``beta`` apply to filters started
    after they are changed."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05) -> None:
        OneEuroFilter(min_cutoff, beta)  # the filter's own checks, raised here rather than on the first face
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self._tracks: list[tuple[OneEuroFilter, np.ndarray]] = []  # (filter, centre of its last face)

    def reset(self) -> None:
        self._tracks = []

    def smooth(self, faces: list[Face], t: float) -> list[Face]:
        """Smoothed copies of ``faces`` (same order); ``t`` is the frame's time in seconds. Faces absent from this
        call lose their filters, so a face that comes back starts fresh instead of from a stale position."""
        previous = self._tracks
        unused = list(range(len(previous)))
        kept: list[tuple[OneEuroFilter, np.ndarray]] = []
        out = []
        for face in faces:
            centre = face.landmarks.mean(axis=0)
            reach = 0.5 * float(np.ptp(face.landmarks[:, 0]))
            best = min(unused, key=lambda j: float(np.linalg.norm(previous[j][1] - centre)), default=None)
            if best is not None and np.linalg.norm(previous[best][1] - centre) <= reach:
                unused.remove(best)
                filt = previous[best][0]
            else:
                filt = OneEuroFilter(self.min_cutoff, self.beta)
            smoothed = filt(face.landmarks, t).astype(np.float32)
            kept.append((filt, centre))
            out.append(dataclasses.replace(face, landmarks=smoothed, unsmoothed=face.landmarks))
        self._tracks = kept
        return out
