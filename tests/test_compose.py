"""Blend mask and box-only paste-back, checked against a full-frame reference blend built with realtime.align.uncrop;
the two blend modes: feather bit for bit as before, multiband inside the mask's support only and with a lower
seam (realtime.eval.measures.seam_excess, and added edges reaching further in) on a face whose brightness and texture
differ from the frame's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime.align import alignment_matrix, transform_points
from realtime.compose import (
    BLEND_MODES,
    blend_mask,
    hull_mask,
    mask_kernels,
    multiband_levels,
    paste_back,
    paste_box,
)
from realtime.eval.measures import gradient_magnitude, paste_alpha, seam_excess

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


# ------------------------------------------------------------------------------------------------ blend modes
def old_feather_paste(frame, face, mask, matrix):
    """paste_back's feather blend as it was before the blend modes (the reference the feather mode must keep)."""
    x0, y0, x1, y1 = paste_box(mask, matrix, frame.shape)
    inv = cv2.invertAffineTransform(matrix)
    inv[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    face_box = cv2.warpAffine(face, inv, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, inv, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    roi = frame[y0:y1, x0:x1]
    roi_f = roi.astype(np.float32)
    blended = roi_f + (face_box.astype(np.float32) - roi_f) * alpha[..., None]
    roi[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def box_matrix(matrix, box):
    """Frame-box pixel -> crop pixel: the inverse crop matrix shifted to the box's origin, as paste_back warps."""
    inv = cv2.invertAffineTransform(matrix)
    inv[:, 2] -= box[:2]
    return inv


def box_alpha(mask, matrix, box):
    """The warped mask inside ``box``, exactly as paste_back warps it."""
    x0, y0, x1, y1 = box
    return cv2.warpAffine(mask, box_matrix(matrix, box), (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=0)


def seam_scene(box_side: int, brightness: float = 40.0, crop: int = 128, seed: int = 0):
    """A textured 640x480 frame and a crop whose face is brighter and differently textured (a swap whose colour
    transfer missed): elliptic 68-point hull, the landmark box ~``box_side`` px, the face rolled by 0.2 rad."""
    rng = np.random.default_rng(seed)
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 110 + 30 * np.sin(xx / 53) + 20 * np.cos(yy / 37)
    grain = cv2.GaussianBlur(rng.normal(0, 12, (h, w, 3)).astype(np.float32), (0, 0), 1.2)
    frame = np.clip(base[..., None] + grain, 0, 255).astype(np.uint8)
    cy, cx = np.mgrid[0:crop, 0:crop].astype(np.float32)
    skin = 110 + brightness + 15 * np.sin(cx / 9 + cy / 13)
    pores = cv2.GaussianBlur(rng.normal(0, 20, (crop, crop, 3)).astype(np.float32), (0, 0), 0.8)
    face = np.clip(skin[..., None] + pores, 0, 255).astype(np.uint8)
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    r = crop / 1.6 / 2
    landmarks = np.c_[crop / 2 + r * np.cos(t), crop / 2 + 1.1 * r * np.sin(t)].astype(np.float32)
    mask = blend_mask(np.ones((crop, crop), np.float32), landmarks)
    scale, angle = crop / (1.6 * box_side), 0.2  # frame -> crop
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    matrix = np.array([[c, -s, 0.0], [s, c, 0.0]])
    matrix[:, 2] = crop / 2 - matrix[:, :2] @ np.array([w / 2, h / 2])
    return frame, face, mask, matrix


def added_edges_near_seam(camera, output, alpha, reach: int) -> float:
    """Mean Sobel gradient the output adds over the camera (increases only) on the pasted side of the seam, from
    the mask's outer edge ``reach`` px inwards: unlike seam_excess's 0.05..0.95 band it also sees an edge the
    blend pushed inwards, past the band."""
    support = (alpha > 0).astype(np.uint8)
    inner = cv2.erode(support, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    ring = (support > 0) & (inner == 0)
    added = gradient_magnitude(output)[ring] - gradient_magnitude(camera)[ring]
    return float(np.maximum(added, 0).mean())


def test_blend_modes_constant():
    assert set(BLEND_MODES) == {"feather", "multiband"}


@pytest.mark.parametrize("box_side", [150, 250])
def test_feather_mode_is_bit_for_bit_the_old_blend(scene, box_side):
    frame, landmarks, matrix, crop = scene
    mask = blend_mask(np.ones((SIZE, SIZE), np.float32), transform_points(landmarks, matrix))
    cases = [(frame, 255 - crop, mask, matrix), (frame, 255 - crop, mask.astype(np.float64), matrix)]
    cases.append(seam_scene(box_side))
    for frame, face, mask, matrix in cases:
        reference = frame.copy()
        old_feather_paste(reference, face, mask, matrix)
        default, feather = frame.copy(), frame.copy()
        box = paste_back(default, face, mask, matrix)
        assert paste_back(feather, face, mask, matrix, blend="feather") == box
        np.testing.assert_array_equal(default, reference)
        np.testing.assert_array_equal(feather, reference)


def test_paste_box_is_the_masks_nonzero_box(scene):
    _, _, matrix, _ = scene
    rng = np.random.default_rng(1)
    for _ in range(50):
        mask = np.zeros((SIZE, SIZE), np.float32)
        x0, y0 = rng.integers(0, SIZE, 2)
        x1, y1 = x0 + rng.integers(1, SIZE - x0 + 1), y0 + rng.integers(1, SIZE - y0 + 1)
        mask[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)).astype(np.float32) * (rng.random() > 0.1)
        ys, xs = np.nonzero(mask > 0)
        if len(xs) == 0:
            assert paste_box(mask, matrix, (480, 640, 3)) is None
            continue
        # the non-zero pixels' box corners through the inverse crop matrix, padded by 1 and clipped to the frame
        corners = np.array(
            [[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.min(), ys.max() + 1], [xs.max() + 1, ys.max() + 1]],
            np.float64,
        )
        pts = transform_points(corners, cv2.invertAffineTransform(matrix))
        lo = np.maximum(np.floor(pts.min(axis=0)).astype(int) - 1, 0)
        hi = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + 1, (640, 480))
        assert paste_box(mask, matrix, (480, 640, 3)) == (lo[0], lo[1], hi[0], hi[1])


@pytest.mark.parametrize(("box_side", "shift"), [(150, 0.0), (250, 0.0), (400, 0.0), (250, -280.0)])
def test_multiband_changes_only_the_masks_support(box_side, shift):
    frame, face, mask, matrix = seam_scene(box_side)
    matrix = matrix.copy()
    matrix[:, 2] -= matrix[:, :2] @ np.array([shift, 0.0])  # shift < 0: the face half out of the frame, left
    out = frame.copy()
    box = paste_back(out, face, mask, matrix, blend="multiband")
    assert box is not None and out.dtype == np.uint8 and out.shape == frame.shape
    if shift:
        assert box[0] == 0
    x0, y0, x1, y1 = box
    outside = np.ones(frame.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], frame[outside])
    alpha = box_alpha(mask, matrix, box)
    zero = alpha == 0
    assert zero.sum() > 100  # the box has an unmasked margin to check (the corners at least)
    np.testing.assert_array_equal(out[y0:y1, x0:x1][zero], frame[y0:y1, x0:x1][zero])
    # ... and the face did go in: where the mask is solid and far from its edge, the output is the face
    solid = cv2.erode((alpha >= 1.0).astype(np.uint8), np.ones((9, 9), np.uint8), iterations=4) > 0
    face_box = cv2.warpAffine(face, box_matrix(matrix, box), (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    assert solid.sum() > 500
    err = np.abs(out[y0:y1, x0:x1][solid].astype(int) - face_box[solid].astype(int))
    assert err.mean() < 6  # the face's own level (its low frequencies reach this far in only faintly)


def test_multiband_levels_follow_the_box():
    assert [multiband_levels(s) for s in (8, 15, 16, 31, 32, 150, 250, 400, 2000)] == [0, 0, 1, 1, 2, 4, 4, 5, 5]


def test_multiband_on_a_box_too_small_for_a_pyramid_is_the_feather_blend():
    frame, face, mask, matrix = seam_scene(10)
    feather, multiband = frame.copy(), frame.copy()
    box = paste_back(feather, face, mask, matrix, blend="feather")
    assert box is not None and min(box[2] - box[0], box[3] - box[1]) < 16
    paste_back(multiband, face, mask, matrix, blend="multiband")
    np.testing.assert_array_equal(multiband, feather)


@pytest.mark.parametrize(("box_side", "brightness"), [(150, 40.0), (250, 40.0), (250, -30.0), (400, 40.0)])
def test_multiband_seam_is_lower_than_feather(box_side, brightness):
    frame, face, mask, matrix = seam_scene(box_side, brightness)
    alpha = paste_alpha(mask, matrix, frame.shape)
    outputs = {}
    for mode in BLEND_MODES:
        outputs[mode] = frame.copy()
        paste_back(outputs[mode], face, mask, matrix, blend=mode)
    seam = {mode: seam_excess(frame, out, alpha) for mode, out in outputs.items()}
    reach = box_side // 5
    near = {mode: added_edges_near_seam(frame, out, alpha, reach) for mode, out in outputs.items()}
    assert seam["feather"] is not None and seam["feather"] > 1.0  # there is a seam to remove
    # measured: seam_excess ratios 0.61, 0.57, 0.56, 0.72 and near-seam ratios 0.70, 0.66, 0.69, 0.80 (in order)
    assert seam["multiband"] < 0.8 * seam["feather"], seam
    assert near["multiband"] < 0.88 * near["feather"], near


def test_paste_back_bad_blend_mode(scene):
    frame, _, matrix, crop = scene
    with pytest.raises(ValueError, match=r"blend='poisson'.*feather.*multiband|blend='poisson'.*multiband.*feather"):
        paste_back(frame.copy(), crop, np.ones((SIZE, SIZE), np.float32), matrix, blend="poisson")
