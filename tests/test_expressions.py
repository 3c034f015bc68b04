"""Expression warps of a still portrait: checked by an independent landmark pass (mediapipe) on the warped image."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.expressions import expression_warp, moved_landmarks
from realtime.landmarks import measures as lm_measures


@pytest.fixture(scope="module")
def detector():
    from realtime.landmarks import create_detector

    det = create_detector("mediapipe", mode="static")
    det.warmup()
    yield det
    det.close()


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_opening_the_mouth_is_seen_by_the_landmarks(detector, portraits, portrait_landmarks, name):
    image, lm = portraits[name].image, portrait_landmarks[name]
    measured = []
    for amount in (0.0, 0.25, 0.45):
        warped, moved, _ = expression_warp(image, lm, mouth=amount)
        assert warped.shape == image.shape and warped.dtype == np.uint8
        faces = detector.detect(warped)
        assert len(faces) == 1
        measured.append(lm_measures.mouth_openness(faces[0].landmarks))
    assert measured[0] < measured[1] < measured[2], measured
    assert measured[2] - measured[0] > 0.15, measured  # a clearly open mouth, not jitter


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_closing_the_eyes_is_seen_by_the_landmarks(detector, portraits, portrait_landmarks, name):
    image, lm = portraits[name].image, portrait_landmarks[name]
    open_ear = lm_measures.eye_aspect_ratio(detector.detect(image)[0].landmarks)
    closed, _, _ = expression_warp(image, lm, eyes=1.0)
    closed_ear = lm_measures.eye_aspect_ratio(detector.detect(closed)[0].landmarks)
    assert closed_ear < open_ear - 0.03, (open_ear, closed_ear)


def test_moved_landmarks_and_masks_follow(portraits, portrait_landmarks):
    image, lm = portraits["astronaut"].image, portrait_landmarks["astronaut"].astype(np.float64)
    moved = moved_landmarks(lm, mouth=0.3)
    eye_gap = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
    assert np.linalg.norm(moved[66] - lm[66]) == pytest.approx(0.3 * eye_gap)
    assert np.allclose(moved[17:48], lm[17:48])  # brows, nose and eyes stay
    mask = np.zeros(image.shape[:2], np.float32)
    mask[int(lm[66, 1]) - 3 : int(lm[66, 1]) + 3, int(lm[66, 0]) - 3 : int(lm[66, 0]) + 3] = 1.0
    _, _, (warped_mask,) = expression_warp(image, lm, mouth=0.3, extra=(mask,))
    ys, xs = np.nonzero(warped_mask > 0.5)
    # the lower-lip patch moved down with the lip (less than the lip itself: on a closed mouth the upper lip sits on
    # the same pixels and pulls the other way; the painted cavity covers that gap)
    assert ys.mean() > lm[66, 1] + 0.1 * eye_gap
    unchanged, same, _ = expression_warp(image, lm)
    assert np.array_equal(unchanged, image) and np.allclose(same, lm)
