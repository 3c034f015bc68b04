"""The live loop's one face tracker (realtime.tracking): a global assignment that greedy matching gets wrong, faces
that cross keep their tracks, jump limits in time, tracks that outlive missed frames; and through the real pipeline
(mediapipe + the shipped demo model) a one-frame dropout keeps the face's track and its running mean code."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.tracking import FRAME_S, MAX_AGE_S, FaceTracker, Observation, assign, pair_cost, track_faces
from realtime.types import Face


def at(x: float, size: float = 100.0, y: float = 200.0, shape: np.ndarray | None = None) -> Observation:
    return Observation(np.array([x, y]), size, shape)


def test_global_assignment_where_greedy_nearest_centre_gets_it_wrong():
    """Tracks at 0 and 40, faces at 25 and 70 (four frames later, so every pair is within reach): nearest-first
    gave the face at 25 the track at 40 and the face at 70 the one at 0; the least total move pairs 0-25, 40-70."""
    tracker = FaceTracker()
    a, b = tracker.update([at(0), at(40)], 0.0)
    assert tracker.update([at(25), at(70)], 4 * FRAME_S) == [a, b]
    # the same on the cost matrix itself
    costs = np.array([[pair_cost(t, o, 8 * FRAME_S) for o in (at(25), at(70))] for t in tracker.tracks])
    assert sorted(assign(costs)) == [(0, 0), (1, 1)]


def test_faces_that_cross_keep_their_tracks(portrait_landmarks):
    """Two people walk past each other: a small face and a large one, different shapes. At the crossing their
    centres meet; size and shape still say who is who."""
    shapes = {name: Observation.of_points(lm).shape for name, lm in portrait_landmarks.items()}
    tracker = FaceTracker()
    small, large = tracker.update(
        [at(100, 80, shape=shapes["astronaut"]), at(500, 130, shape=shapes["grace_hopper"])], 0
    )
    for i in range(1, 25):  # 16 px a frame towards each other: they cross at frame 12
        t = i * FRAME_S
        faces = [at(100 + 16 * i, 80, shape=shapes["astronaut"]), at(500 - 16 * i, 130, shape=shapes["grace_hopper"])]
        order = [1, 0] if i % 2 else [0, 1]  # the detector lists them in either order
        ids = tracker.update([faces[k] for k in order], t)
        assert [ids[order.index(0)], ids[order.index(1)]] == [small, large], i


def test_jumps_and_age_limits_in_seconds():
    tracker = FaceTracker()
    (first,) = tracker.update([at(300)], 0.0)
    assert tracker.update([at(310)], FRAME_S) == [first]  # a small move: the same face
    (moved,) = tracker.update([at(400)], 2 * FRAME_S)  # its size in one frame: someone else
    assert moved != first
    (bigger,) = tracker.update([at(400, 150)], 3 * FRAME_S)  # 50 % bigger in one frame: someone else again
    assert bigger not in (first, moved)
    # at 8 fps a face moves ~4 times as far between frames as at 30
    tracker = FaceTracker()
    (slow,) = tracker.update([at(300)], 0.0)
    assert tracker.update([at(360)], 1 / 8) == [slow]
    # a face missing for less than MAX_AGE_S is taken up again; after that it is a new track
    assert tracker.update([], 1 / 8 + 0.5) == []
    assert tracker.update([at(362)], 1 / 8 + 0.6) == [slow]
    (later,) = tracker.update([at(362)], 1 / 8 + 0.6 + MAX_AGE_S + 0.1)
    assert later != slow
    assert len({first, moved, bigger}) == 3 and later > slow  # ids are never reused


def test_track_faces_sets_ids_and_keeps_everything_else(portrait_landmarks):
    lm = portrait_landmarks["astronaut"]
    face = Face(landmarks=lm, raw=lm, confidence=0.7)
    (tracked,) = track_faces(FaceTracker(), [face], 0.0)
    assert tracked.track_id == 1 and face.track_id is None
    assert tracked.landmarks is lm and tracked.confidence == 0.7


class DroppingDetector:
    """The real FaceMesh tracker, except that it finds nothing on the frames listed."""

    def __init__(self, drop: set[int]):
        from realtime.landmarks import create_detector

        self.inner = create_detector("mediapipe", mode="tracking")
        self.drop, self.calls = drop, 0

    def detect(self, image):
        self.calls += 1
        return [] if self.calls - 1 in self.drop else self.inner.detect(image)

    def warmup(self):
        self.inner.warmup()

    def close(self):
        self.inner.close()


@pytest.mark.slow
def test_a_missed_detection_keeps_the_faces_track_and_running_mean(astronaut_clip):
    from realtime.builder import open_swapper
    from realtime.pipeline import FaceSwapProcessor, PipelineOptions

    swapper = open_swapper("models/demo/demo_a2b.onnx")
    frames = astronaut_clip.frames[:14]
    runs = {}
    for name, drop in (("steady", set()), ("dropout", {8})):
        proc = FaceSwapProcessor(swapper, PipelineOptions(label=False, hud=False), detector=DroppingDetector(drop))
        with proc:
            ids, counts = [], []
            for i, frame in enumerate(frames):
                proc.process(frame, i / 30.0)
                faces = proc.last_faces
                ids.append(faces[0].track_id if faces else None)
                counts.append(proc._temporal.tracks[0].state.latent_count if proc._temporal.tracks else None)
            runs[name] = (ids, counts, proc._temporal.tracks[0].state.latent_mean.copy())
    ids, counts, _ = runs["dropout"]
    assert ids[8] is None and len({i for i in ids if i is not None}) == 1, ids  # the same track after the gap
    assert counts[9] == counts[7] + 1, counts  # the running mean went on (it did not restart at 1)
    steady_ids, steady_counts, _ = runs["steady"]
    assert counts[-1] == steady_counts[-1] - 1, (counts, steady_counts)  # all but the one frame not seen
