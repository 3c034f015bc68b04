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


# ------------------------------------------------------------------ the kinds of training data (issue 20, item 2)
def _brow_height(lm: np.ndarray) -> float:
    """How far the brows sit above the eyes, along the face's up axis, in eye distances."""
    _, down = lm_measures.face_axes(lm)
    return float(((lm[36:48] @ down).mean() - (lm[17:27] @ down).mean()) / lm_measures.eye_distance(lm))


def _dot_follows(image, lm, moved, index: int, warp) -> tuple[np.ndarray, np.ndarray]:
    """(where landmark ``index`` should go, where a small dot drawn on it went) under ``warp(extra) -> extra``."""
    import cv2

    dot = np.zeros(image.shape[:2], np.float32)
    cv2.circle(dot, tuple(int(round(v)) for v in lm[index]), 2, 1.0, -1)
    ys, xs = np.nonzero(dot)
    start = np.array([xs.mean(), ys.mean()])
    (out,) = warp((dot,))
    ys, xs = np.nonzero(out > 0.1)
    w = out[ys, xs]
    end = np.array([(xs * w).sum(), (ys * w).sum()]) / w.sum()
    return moved[index] - lm[index], end - start


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_each_expression_kind_moves_its_landmarks_and_the_image_and_masks_with_them(
    portraits, portrait_landmarks, name
):
    """Smile lifts the mouth corners, lip press lowers and narrows them, a brow raise lifts the brows over the eyes,
    a squint narrows the eyes; each leaves the other measures alone; the image and a mask passed as ``extra`` are
    resampled by the same field (a mask made from the image's own channel stays equal to it); amount 0 is the
    image as it was."""
    from realtime.expressions import BROW_LIFT, brow_raise_warp, lip_press_warp

    image, lm = portraits[name].image, portrait_landmarks[name].astype(np.float64)
    lift, width, brows, ear = (
        lm_measures.mouth_corner_lift(lm),
        lm_measures.mouth_width(lm),
        _brow_height(lm),
        lm_measures.eye_aspect_ratio(lm),
    )
    channel = image[..., 1].astype(np.float32)
    kinds = {
        "smile": lambda extra: expression_warp(image, lm, smile=0.8, extra=extra),
        "lip_press": lambda extra: lip_press_warp(image, lm, 1.0, extra=extra),
        "brow_raise": lambda extra: brow_raise_warp(image, lm, 1.0, extra=extra),
        "squint": lambda extra: expression_warp(image, lm, eyes=0.4, paint_lids=False, extra=extra),
    }
    for kind, warp in kinds.items():
        out, moved, (mask,) = warp((channel,))
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - image).mean() > 0.05, kind
        # the mask moved exactly as the image did (the image is uint8-rounded)
        assert np.abs(mask - out[..., 1]).max() <= 1.0, kind
        got = (
            lm_measures.mouth_corner_lift(moved) - lift,
            lm_measures.mouth_width(moved) - width,
            _brow_height(moved) - brows,
            lm_measures.eye_aspect_ratio(moved) - ear,
        )
        if kind == "smile":
            assert got[0] > 0.05 and abs(got[3]) < 0.05, got
        elif kind == "lip_press":
            assert got[0] < -0.03 and got[1] < -0.1 and got[2] == pytest.approx(0) and got[3] == pytest.approx(0)
            assert lm_measures.mouth_openness(moved) < 0.01  # the lips are pressed together
        elif kind == "brow_raise":
            assert got[2] == pytest.approx(BROW_LIFT, abs=1e-6) and got[0] == pytest.approx(0) and got[3] == 0
        else:
            assert got[3] < -0.05 and got[0] == pytest.approx(0, abs=0.01), got
    # the image follows the landmarks: a dot drawn on a mouth corner, a lower lip point and a brow goes where they go
    for kind, index in (("lip_press", 48), ("lip_press", 57), ("brow_raise", 19), ("brow_raise", 24)):
        want, went = _dot_follows(image, lm, kinds[kind](())[1], index, lambda extra, k=kind: kinds[k](extra)[2])
        assert np.linalg.norm(went - want) < 0.5 * np.linalg.norm(want), (kind, index, want, went)
    for warp_zero in (lip_press_warp(image, lm, 0.0), brow_raise_warp(image, lm, 0.0)):
        assert np.array_equal(warp_zero[0], image) and np.allclose(warp_zero[1], lm)


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_lip_press_is_seen_by_the_landmarks(detector, portraits, portrait_landmarks, name):
    """An independent landmark pass on the pressed-lips image: a narrower mouth with lower corners."""
    from realtime.expressions import lip_press_warp

    image, lm = portraits[name].image, portrait_landmarks[name]
    before = detector.detect(image)[0].landmarks
    after = detector.detect(lip_press_warp(image, lm, 1.0)[0])[0].landmarks
    assert lm_measures.mouth_width(after) < lm_measures.mouth_width(before) - 0.04
    assert lm_measures.mouth_corner_lift(after) < lm_measures.mouth_corner_lift(before) - 0.015


def test_brow_raise_is_seen_by_the_landmarks(detector, portraits, portrait_landmarks):
    """An independent landmark pass sees the astronaut's brows higher over her eyes. (On Grace Hopper the glasses'
    frame runs along the brows, and FaceMesh places her brow points on it: they hardly move.)"""
    from realtime.expressions import brow_raise_warp

    image, lm = portraits["astronaut"].image, portrait_landmarks["astronaut"]
    before = _brow_height(detector.detect(image)[0].landmarks)
    after = _brow_height(detector.detect(brow_raise_warp(image, lm, 1.0)[0])[0].landmarks)
    assert after > before + 0.04, (before, after)


def test_lip_close_shuts_the_astronauts_toothy_smile_as_the_landmarks_see_it(detector, portraits, portrait_landmarks):
    """The astronaut smiles with her teeth in every photo; closed (amount 1) an independent landmark pass reads her
    lips closed, half closed in between; Grace Hopper's closed mouth stays closed; nothing outside the mouth's
    columns and reach moves, a mask passed as ``extra`` moves as the image does, and amount 0 is the image."""
    from realtime.expressions import LIP_CLOSE_REACH, lip_close_warp

    image, lm = portraits["astronaut"].image, portrait_landmarks["astronaut"].astype(np.float64)
    readings = []
    for amount in (0.0, 0.5, 1.0):
        out, moved, _ = lip_close_warp(image, lm, amount)
        readings.append(lm_measures.mouth_openness(detector.detect(out)[0].landmarks))
        gap = lm_measures.mouth_openness(moved) / lm_measures.mouth_openness(lm)
        assert abs(gap - (1 - amount)) < 0.08, (amount, gap)  # what is left: the pairs are not quite upright
    assert readings[0] > 0.12 and readings[2] < 0.08 and readings[0] > readings[1] > readings[2], readings
    channel = image[..., 1].astype(np.float32)
    out, moved, (mask,) = lip_close_warp(image, lm, 1.0, extra=(channel,))
    assert np.abs(mask - out[..., 1]).max() <= 1.0
    d = lm_measures.eye_distance(lm)
    changed = np.argwhere(np.abs(out.astype(int) - image).max(axis=2) > 0)
    (x0, y0), (x1, y1) = lm[48:68].min(axis=0), lm[48:68].max(axis=0)
    assert changed[:, 1].min() >= x0 - 1 and changed[:, 1].max() <= x1 + 1
    assert changed[:, 0].min() >= y0 - LIP_CLOSE_REACH * d - 1 and changed[:, 0].max() <= y1 + LIP_CLOSE_REACH * d + 1
    assert np.array_equal(lip_close_warp(image, lm, 0.0)[0], image)
    grace, g_lm = portraits["grace_hopper"].image, portrait_landmarks["grace_hopper"].astype(np.float64)
    assert lm_measures.mouth_openness(detector.detect(lip_close_warp(grace, g_lm, 1.0)[0])[0].landmarks) < 0.03
