"""One face tracker for the live loop: which face in this frame is which face of the previous frames.

Every per-face stage keeps state (the One Euro filter of the landmarks, re-centring's running mean code, the eyes'
open baseline, the expression neutral (and with it the mouth gate's resting gap), colour and mask history,
occlusion statistics), so a face given another face's track, or a new track after one missed detection, shows as a
jump in the output. Two greedy nearest-centre matchers used to do this, each differently and order-dependently
(faces at 25 and 70 against tracks at 0 and 40: the face at 25 took the track at 40, leaving the face at 70 none
within reach).

Here one global assignment (the Hungarian method, scipy's linear_sum_assignment) pairs this frame's faces with the
live tracks at the least total cost, where a pair's cost is the centre's move in face sizes, plus the change of size
(|log ratio|), plus SHAPE_WEIGHT x the landmark shape's difference (the 68 points about their centre over the face's
size: two people side by side differ in shape even when they come close). A pair that moved or changed size more
than a face does in the time between the frames (JUMP_FRACTION of its size and SCALE_JUMP per FRAME_S, up to
MAX_JUMP_FRAMES of them: at 8 fps a face may move ~4x as far between frames) is never paired: that face starts a new
track (a cut in a video, another person stepping in). A track whose face is missing is kept for MAX_AGE_S seconds
(a missed detection, a hand over the face) and taken up again when the face comes back near it.

Each face gets its track's id (``Face.track_id``, increasing per tracker, never reused), which the render half
uses to find the face's state (realtime.temporal), so both halves agree on who is who.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from realtime.types import Face

JUMP_FRACTION = 0.25  # of the face's size, per FRAME_S
SCALE_JUMP = 0.2  # relative change of the face's size, per FRAME_S
FRAME_S = 1 / 30
MAX_JUMP_FRAMES = 4.0  # a face back after a second may not come from anywhere
MAX_AGE_S = 1.0  # a track whose face is missing for longer is dropped
SHAPE_WEIGHT = 2.0  # weight of the shape difference (mean point distance in face sizes) in a pair's cost
_NEVER = 1e9  # the cost of a pair that may not be made


@dataclass(frozen=True)
class Observation:
    """Where a face is: centre (x, y) and size (pixels, any consistent measure) and its shape (N x 2 points about
    the centre over the size; None: shape not compared)."""

    centre: np.ndarray
    size: float
    shape: np.ndarray | None = None

    @staticmethod
    def of_points(points: np.ndarray) -> Observation:
        """The observation of a face's landmarks: their mean, the width of their box, the shape relative to both."""
        pts = np.asarray(points, np.float64)
        centre = pts.mean(axis=0)
        size = max(float(np.ptp(pts[:, 0])), 1e-6)
        return Observation(centre, size, (pts - centre) / size)


@dataclass(eq=False)
class Track:
    id: int
    where: Observation
    seen: float  # time of the last frame with this face
    frames: int = 0  # frames paired since the track started (0: new)


def frames_between(dt: float) -> float:
    """How many FRAME_S the jump limits allow for ``dt`` seconds between two sightings (1 .. MAX_JUMP_FRAMES)."""
    return min(max(1.0, dt / FRAME_S), MAX_JUMP_FRAMES)


def pair_cost(track: Track, face: Observation, now: float) -> float:
    """The cost of saying ``face`` is ``track``'s face (``_NEVER`` when it jumped)."""
    frames = frames_between(now - track.seen)
    old = track.where
    move = float(np.linalg.norm(face.centre - old.centre)) / old.size
    ratio = face.size / old.size
    if move > JUMP_FRACTION * frames or abs(ratio - 1.0) > SCALE_JUMP * frames:
        return _NEVER
    cost = move + abs(float(np.log(ratio)))
    if old.shape is not None and face.shape is not None and old.shape.shape == face.shape.shape:
        cost += SHAPE_WEIGHT * float(np.linalg.norm(face.shape - old.shape, axis=1).mean())
    return cost


def assign(costs: np.ndarray) -> list[tuple[int, int]]:
    """(row, column) pairs of the least-total-cost assignment, leaving out the pairs that may not be made."""
    if costs.size == 0:
        return []
    rows, cols = linear_sum_assignment(costs)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if costs[r, c] < _NEVER]


class FaceTracker:
    """``update(observations, now) -> track ids`` (one per observation, in order). Not thread-safe: one per
    stream, used by the thread that finds the faces."""

    def __init__(self) -> None:
        self.tracks: list[Track] = []  # live tracks: this frame's and the missing ones still kept
        self._next_id = 1

    def reset(self) -> None:
        self.tracks = []

    def update(self, observations: list[Observation], now: float) -> list[int]:
        self.tracks = [t for t in self.tracks if now - t.seen <= MAX_AGE_S]
        costs = np.array([[pair_cost(t, o, now) for o in observations] for t in self.tracks], np.float64)
        costs = costs.reshape(len(self.tracks), len(observations))
        paired = {col: self.tracks[row] for row, col in assign(costs)}
        ids = []
        for j, where in enumerate(observations):
            track = paired.get(j)
            if track is None:
                track = Track(self._next_id, where, now)
                self._next_id += 1
                self.tracks.append(track)
            else:
                track.where, track.seen = where, now
                track.frames += 1
            ids.append(track.id)
        return ids


def track_faces(tracker: FaceTracker, faces: list[Face], now: float) -> list[Face]:
    """Copies of ``faces`` with their ``track_id`` from ``tracker`` (observed by their landmarks)."""
    ids = tracker.update([Observation.of_points(f.landmarks) for f in faces], now)
    return [dataclasses.replace(f, track_id=i) for f, i in zip(faces, ids, strict=True)]
