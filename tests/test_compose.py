"""Blend mask and box-only paste-back, checked against a full-frame reference blend built with realtime.align.uncrop."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime.align import alignment_matrix, transform_points
from realtime.compose import blend_mask, hull_mask, mask_kernels, paste_back, paste_box

SIZE = 64


@pytest.fixture(scope="module")
def scene(astronaut_clip, portrait_landmarks, astronaut):
    """A clip frame, its ground-truth 68 landmarks (portrait landmarks through the clip's transform) and the crop."""
    frame = astronaut_clip.frames[5]
    h = astronaut_clip.transforms[5]
    pts = np.c_[portrait_landmarks["astronaut"], np.ones(68)] @ h.T
    landmarks = (pts[:, :2] / pts[:, 2:]).astype(np.float32)
    matrix = alignment_matrix(landmarks, SIZE)
    crop = cv2.warpAffine(frame, matrix, (SIZE, SIZE))
    return frame, landmarks, matrix, crop


def test_hull_mask_area_matches_polygon(scene):
    _, landmarks, matrix, _ = scene
    crop_pts = transform_points(landmarks, matrix)
    mask = hull_mask(crop_pts, SIZE)
    area = cv2.contourArea(cv2.convexHull(crop_pts.astype(np.float32)))
    assert mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
    # Rasterising counts the pixels the edge passes through: the difference is bounded by about half the perimeter.
    perimeter = cv2.arcLength(cv2.convexHull(crop_pts.astype(np.float32)), True)
    assert abs(mask.sum() - area) <= 0.75 * perimeter


def test_blend_mask_stays_inside_hull_and_is_feathered(scene):
    _, landmarks, matrix, _ = scene
    crop_pts = transform_points(landmarks, matrix)
    learned = np.ones((SIZE, SIZE), np.float32)
    mask = blend_mask(learned, crop_pts)
    hull = hull_mask(crop_pts, SIZE)
    assert mask.min() >= 0 and mask.max() <= 1.0
    assert np.all(mask[hull == 0] == 0)  # nothing outside the landmark hull
    assert mask.max() == pytest.approx(1.0)  # solid inside
    soft = (mask > 0.02) & (mask < 0.98)
    assert soft.sum() > 0.05 * (mask > 0).sum()  # a real feathered edge, not a hard cut
    # learned mask multiplies in: zero learned mask -> zero blend mask
    assert blend_mask(np.zeros_like(learned), crop_pts).max() == 0


def test_feather_scales_with_the_crop_size():
    (erode_64, feather_64), (erode_256, feather_256) = mask_kernels(64), mask_kernels(256)
    assert feather_64 < feather_256 and feather_64 % 2 == feather_256 % 2 == 1  # odd box-blur sides
    # the erosion reaches past the feather radius, so the blurred edge cannot leave the hull
    assert erode_64.shape[0] // 2 > feather_64 // 2 and erode_256.shape[0] // 2 > feather_256 // 2


def test_paste_back_equals_full_frame_reference_and_touches_only_the_box(scene):
    frame, landmarks, matrix, crop = scene
    crop_pts = transform_points(landmarks, matrix)
    face = 255 - crop  # an obviously different face
    mask = blend_mask(np.ones((SIZE, SIZE), np.float32), crop_pts)
    out = frame.copy()
    box = paste_back(out, face, mask, matrix)
    assert box is not None
    x0, y0, x1, y1 = box
    # Reference: full-frame inverse warps (what the live path avoids), blended everywhere.
    inv = cv2.invertAffineTransform(matrix)
    h, w = frame.shape[:2]
    face_full = cv2.warpAffine(face, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
    reference = np.clip(frame * (1 - alpha) + face_full * alpha + 0.5, 0, 255).astype(np.uint8)
    # OpenCV warps uint8 with 1/32-pixel fixed-point maps, whose rounding depends on the output origin: a few
    # LSB at strong edges, but a wrong box offset or matrix would differ by tens of levels everywhere.
    diff = np.abs(out.astype(int) - reference.astype(int))
    assert diff.max() <= 6 and diff[y0:y1, x0:x1].mean() < 0.3
    outside = np.ones((h, w), bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], frame[outside])
    # The face's own landmark box bounds every change.
    fx0, fy0 = np.floor(landmarks.min(axis=0)).astype(int)
    fx1, fy1 = np.ceil(landmarks.max(axis=0)).astype(int)
    changed = np.any(out != frame, axis=2)
    ys, xs = np.nonzero(changed)
    assert len(xs) > 1000
    assert xs.min() >= fx0 and xs.max() <= fx1 and ys.min() >= fy0 and ys.max() <= fy1


def test_paste_back_at_the_frame_edge(scene):
    frame, landmarks, _, _ = scene
    shifted = landmarks + np.array([-frame.shape[1] * 0.45, 0], np.float32)  # face half out of the frame, left
    matrix = alignment_matrix(shifted, SIZE)
    crop = cv2.warpAffine(frame, matrix, (SIZE, SIZE))
    mask = blend_mask(np.ones((SIZE, SIZE), np.float32), transform_points(shifted, matrix))
    out = frame.copy()
    box = paste_back(out, 255 - crop, mask, matrix)
    assert box is not None and box[0] == 0
    assert paste_box(np.zeros((SIZE, SIZE), np.float32), matrix, frame.shape) is None


def test_paste_back_bad_inputs(scene):
    frame, _, matrix, crop = scene
    with pytest.raises(ValueError, match="mask has shape"):
        paste_back(frame.copy(), crop, np.ones((10, 10), np.float32), matrix)
    with pytest.raises(TypeError, match="uint8"):
        paste_back(frame.copy(), crop.astype(np.float32), np.ones((SIZE, SIZE), np.float32), matrix)
