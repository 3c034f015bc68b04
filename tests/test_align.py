"""Alignment: Umeyama against independent estimators, the template, crop matrices, crop -> frame round trips."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.align import (
    DEFAULT_COVERAGE,
    JAW_IDX,
    MIRROR_68,
    STABLE_IDX,
    TEMPLATE_68,
    align,
    alignment_matrix,
    invert_matrix,
    template_points,
    transform_points,
    umeyama,
    uncrop,
)


def _similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty], [0, 0, 1.0]])


def _apply(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ T[:2, :2].T + T[:2, 2]


def _complex_lsq_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Independent estimator: a proper similarity is z -> a z + b over complex numbers; solve for a, b by
    ordinary linear least squares (numpy lstsq). No SVD of a covariance, no determinant trick."""
    z = src[:, 0] + 1j * src[:, 1]
    w = dst[:, 0] + 1j * dst[:, 1]
    design = np.stack([z, np.ones_like(z)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, w, rcond=None)
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag], [0, 0, 1.0]])


def _random_similarity(rng: np.random.Generator) -> np.ndarray:
    return _similarity(rng.uniform(-np.pi, np.pi), rng.uniform(0.2, 5.0), *rng.uniform(-500, 500, size=2))


# ---------------------------------------------------------------- umeyama


def test_umeyama_recovers_known_similarity_exactly():
    rng = np.random.default_rng(0)
    for _ in range(50):
        src = rng.uniform(-100, 100, size=(rng.integers(2, 80), 2))
        truth = _random_similarity(rng)
        est = umeyama(src, _apply(truth, src))
        assert est.shape == (3, 3)
        np.testing.assert_allclose(est, truth, atol=1e-8 * np.abs(truth).max())


def test_umeyama_with_noise_is_close():
    rng = np.random.default_rng(1)
    for _ in range(30):
        src = rng.uniform(-100, 100, size=(68, 2))
        truth = _random_similarity(rng)
        scale = np.hypot(truth[0, 0], truth[1, 0])
        sigma = 0.5 * scale  # half a source pixel of noise on points spread over ~100 px
        dst = _apply(truth, src) + rng.normal(0, sigma, size=src.shape)
        est = umeyama(src, dst)
        est_scale = np.hypot(est[0, 0], est[1, 0])
        angle_err = np.arctan2(est[1, 0], est[0, 0]) - np.arctan2(truth[1, 0], truth[0, 0])
        angle_err = (angle_err + np.pi) % (2 * np.pi) - np.pi
        # Expected errors ~ sigma / (scale * spread * sqrt(n)) ~ 0.5 / (58 * 8) ~ 1e-3; allow 6x that.
        assert abs(est_scale / scale - 1) < 6e-3
        assert abs(angle_err) < 6e-3
        # Mapped points land within the noise level of the truth (mean error far below sigma).
        assert np.linalg.norm(_apply(est, src) - _apply(truth, src), axis=1).mean() < 0.5 * sigma


def test_umeyama_agrees_with_independent_estimators():
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(2)
    for _ in range(50):
        n = int(rng.integers(3, 70))
        src = rng.normal(0, 50, size=(n, 2))
        dst = rng.normal(0, 80, size=(n, 2))  # unrelated point sets: a real least-squares problem
        est = umeyama(src, dst)
        np.testing.assert_allclose(est, _complex_lsq_similarity(src, dst), atol=1e-8, rtol=1e-7)
        if hasattr(SimilarityTransform, "from_estimate"):  # skimage >= 0.26
            sk = SimilarityTransform.from_estimate(src, dst)
        else:
            sk = SimilarityTransform()
            assert sk.estimate(src, dst)
        np.testing.assert_allclose(est, sk.params, atol=1e-8, rtol=1e-7)


def test_umeyama_reflection_gives_proper_rotation_not_the_mirror():
    rng = np.random.default_rng(3)
    for _ in range(20):
        src = rng.uniform(-100, 100, size=(30, 2))
        mirrored = src * np.array([-1.0, 1.0])  # a reflection: no rotation can produce it
        dst = _apply(_random_similarity(rng), mirrored)
        est = umeyama(src, dst)
        assert np.linalg.det(est[:2, :2]) > 0
        # It is the best *proper* similarity (same answer as the complex least squares, which cannot reflect)...
        np.testing.assert_allclose(est, _complex_lsq_similarity(src, dst), atol=1e-7, rtol=1e-6)
        # ...and it does not fit the mirror image: residuals are of the size of the point spread.
        residual = np.linalg.norm(_apply(est, src) - dst, axis=1).mean()
        assert residual > 0.1 * np.linalg.norm(dst - dst.mean(0), axis=1).mean()


def test_umeyama_without_scale():
    rng = np.random.default_rng(4)
    src = rng.uniform(-100, 100, size=(40, 2))
    truth = _similarity(0.7, 1.0, 12.0, -30.0)
    est = umeyama(src, _apply(truth, src), estimate_scale=False)
    np.testing.assert_allclose(est, truth, atol=1e-9)
    # With a scaled target the rotation is still found but the scale stays 1.
    est2 = umeyama(src, _apply(_similarity(0.7, 3.0, 0, 0), src), estimate_scale=False)
    np.testing.assert_allclose(est2[:2, :2], truth[:2, :2], atol=1e-9)


def test_umeyama_two_points_suffice():
    src = np.array([[0.0, 0.0], [1.0, 0.0]])
    dst = np.array([[10.0, 10.0], [10.0, 12.0]])
    est = umeyama(src, dst)
    np.testing.assert_allclose(est, _similarity(np.pi / 2, 2.0, 10.0, 10.0), atol=1e-12)


@pytest.mark.parametrize(
    "src, dst, match",
    [
        (np.zeros((1, 2)), np.zeros((1, 2)), "at least 2"),
        (np.ones((5, 2)), np.random.default_rng(0).normal(size=(5, 2)), "all equal"),
        (np.random.default_rng(0).normal(size=(5, 2)), np.ones((5, 2)), "all equal"),
        (np.array([[0, 0], [1, np.nan]]), np.zeros((2, 2)), "NaN"),
        (np.zeros((3, 2)), np.array([[0, 0], [1, 1], [np.inf, 0]]), "NaN or inf"),
        (np.zeros((4, 2)), np.zeros((5, 2)), "shape"),
        (np.zeros((4, 3)), np.zeros((4, 3)), "Nx2"),
        (np.zeros(8), np.zeros(8), "Nx2"),
    ],
)
def test_umeyama_degenerate_input_raises(src, dst, match):
    with pytest.raises(ValueError, match=match):
        umeyama(src, dst)


# ---------------------------------------------------------------- template


def test_template_is_normalised_and_mirror_symmetric():
    assert TEMPLATE_68.shape == (68, 2)
    assert TEMPLATE_68.min() == pytest.approx(0.0) and TEMPLATE_68.max() == pytest.approx(1.0)
    assert sorted(MIRROR_68.tolist()) == list(range(68))
    np.testing.assert_array_equal(MIRROR_68[MIRROR_68], np.arange(68))  # an involution
    mirrored = TEMPLATE_68[MIRROR_68] * np.array([-1, 1]) + np.array([1, 0])
    np.testing.assert_allclose(mirrored, TEMPLATE_68, atol=1e-3)
    # anatomy: brows above eyes above nose tip above mouth above chin; subject's right eye on image left
    assert TEMPLATE_68[17:27, 1].max() < TEMPLATE_68[36:48, 1].min()
    assert TEMPLATE_68[36:48, 1].max() < TEMPLATE_68[30, 1] < TEMPLATE_68[48:68, 1].min()
    assert TEMPLATE_68[48:68, 1].max() < TEMPLATE_68[8, 1]
    assert TEMPLATE_68[36:42, 0].max() < TEMPLATE_68[42:48, 0].min()
    assert not set(JAW_IDX) & set(STABLE_IDX)


@pytest.mark.parametrize("coverage", [1.0, 1.6, 2.2])
def test_template_points_coverage(coverage):
    pts = template_points(256, coverage)
    span = pts.max(0) - pts.min(0)
    np.testing.assert_allclose(span, 256 / coverage)  # crop side / landmark box side == coverage
    assert abs(pts[:, 0].mean() - 128) < 1.0  # horizontally centred
    # The crop keeps more room above the brows (forehead) than the box centre would give.
    assert pts[:, 1].min() > 256 - pts[:, 1].max()


@pytest.mark.parametrize("size, coverage", [(4, 1.6), (256.0, 1.6), (256, 0.2), (256, 9.0)])
def test_template_points_bad_arguments(size, coverage):
    with pytest.raises(ValueError):
        template_points(size, coverage)


# ---------------------------------------------------------------- crop matrices


def test_alignment_matrix_inverts_known_placement():
    rng = np.random.default_rng(5)
    target = template_points(256, DEFAULT_COVERAGE)
    for _ in range(10):
        placement = _random_similarity(rng)  # where the face sits in a frame
        landmarks = _apply(placement, target)
        M = alignment_matrix(landmarks, 256, DEFAULT_COVERAGE)
        assert M.shape == (2, 3)
        np.testing.assert_allclose(M, np.linalg.inv(placement)[:2], atol=1e-8 * np.abs(M).max())


def test_stable_only_ignores_the_jaw():
    target = template_points(256)
    landmarks = _apply(_similarity(0.2, 1.5, 100, 50), target)
    wobbly = landmarks.copy()
    wobbly[JAW_IDX] += np.random.default_rng(6).normal(0, 8, size=(17, 2))
    np.testing.assert_allclose(alignment_matrix(wobbly, 256), alignment_matrix(landmarks, 256), atol=1e-9)
    moved = np.abs(
        alignment_matrix(wobbly, 256, stable_only=False) - alignment_matrix(landmarks, 256, stable_only=False)
    )
    assert moved.max() > 1e-3


def test_alignment_matrix_bad_landmarks():
    with pytest.raises(ValueError, match="68"):
        alignment_matrix(np.zeros((5, 2)), 256)
    with pytest.raises(ValueError, match="NaN"):
        alignment_matrix(np.full((68, 2), np.nan), 256)


def _textured_frame(h: int = 480, w: int = 640) -> np.ndarray:
    """Smooth but non-trivial colour pattern (so interpolation error stays small and measurable)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack(
        [128 + 100 * np.sin(xx / 23.0), 128 + 100 * np.cos(yy / 17.0), 128 + 100 * np.sin((xx + yy) / 31.0)], axis=2
    )
    return img.astype(np.uint8)


def test_align_and_uncrop_round_trip():
    frame = _textured_frame()
    landmarks = _apply(_similarity(0.3, 0.9, 320, 230), TEMPLATE_68 * 200 - 100)
    crop, M = align(frame, landmarks.astype(np.float32), size=256)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    # points: frame -> crop -> frame
    back = transform_points(transform_points(landmarks, M), invert_matrix(M))
    np.testing.assert_allclose(back, landmarks, atol=1e-9)
    # landmarks land on the template inside the crop
    np.testing.assert_allclose(transform_points(landmarks, M)[STABLE_IDX], template_points(256)[STABLE_IDX], atol=1e-6)
    # pixels: the crop warped back matches the frame where the crop has content (bilinear error only)
    restored, valid = uncrop(crop, M, frame.shape)
    assert restored.shape == frame.shape and valid.dtype == bool
    import cv2

    inner = cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # borders mix in black
    assert inner.sum() > 0.1 * inner.size
    diff = np.abs(restored.astype(int) - frame.astype(int))[inner]
    assert diff.mean() < 3.0, diff.mean()
    # outside the crop's footprint nothing is painted (one pixel of slack: bilinear edges vs. a nearest mask)
    footprint = cv2.dilate(valid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert restored[~footprint].max() == 0


def test_invert_matrix_checks_shape():
    with pytest.raises(ValueError, match="2x3"):
        invert_matrix(np.eye(3))


@pytest.mark.parametrize(
    "frame, error",
    [
        (None, TypeError),
        (np.zeros((480, 640), np.uint8), ValueError),
        (np.zeros((480, 640, 4), np.uint8), ValueError),
        (np.zeros((1, 1, 3), np.uint8), ValueError),
        (np.zeros((0, 0, 3), np.uint8), ValueError),
        (np.zeros((480, 640, 3), np.float32), TypeError),
        ([[0, 0, 0]], TypeError),
    ],
)
def test_align_bad_frames(frame, error):
    with pytest.raises(error, match="frame"):
        align(frame, template_points(256), 256)
