"""Colour transfer, checked against an independent LAB computation (scikit-image's rgb2lab, not OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from _live_fixtures import _ellipse_mask
from skimage.color import rgb2lab

from realtime.colour import MASK_THRESHOLD, colour_model, hist_match, no_transfer, rct
from realtime.errors import SwapcamError

# After RCT the masked LAB stats equal the target's up to uint8 rounding and gamut clipping of a few saturated
# pixels; measured error on these portraits is < 0.8 (mean) and < 5 % (std). The portraits differ by ~5 L and
# ~15 a/b units in mean, so these tolerances cannot pass without the transfer (asserted below).
MEAN_TOL = 1.5  # LAB units
STD_REL_TOL = 0.10


def masked_lab_stats_reference(bgr: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = rgb2lab(bgr[..., ::-1])  # skimage: RGB float in [0, 1] (uint8 scaled), D65, L in 0..100
    pixels = lab[region]
    return pixels.mean(axis=0), pixels.std(axis=0)


@pytest.fixture(scope="module")
def face_pair(astronaut, grace_hopper):
    source = cv2.resize(astronaut.image[60:260, 130:330], (96, 96), interpolation=cv2.INTER_AREA)
    target = cv2.resize(grace_hopper.image[100:400, 120:420], (96, 96), interpolation=cv2.INTER_AREA)
    mask = _ellipse_mask(96) * 0.9 + 0.05  # soft values: only > MASK_THRESHOLD counts as the face
    return source, target, mask


def test_rct_matches_target_lab_stats(face_pair):
    source, target, mask = face_pair
    region = mask > MASK_THRESHOLD
    out = rct(source, target, mask)
    assert out.dtype == np.uint8 and out.shape == source.shape
    got_mean, got_std = masked_lab_stats_reference(out, region)
    want_mean, want_std = masked_lab_stats_reference(target, region)
    src_mean, _ = masked_lab_stats_reference(source, region)
    assert np.abs(src_mean - want_mean).max() > 5 * MEAN_TOL  # the test can fail: the faces differ in colour
    np.testing.assert_allclose(got_mean, want_mean, atol=MEAN_TOL)
    np.testing.assert_allclose(got_std, want_std, rtol=STD_REL_TOL, atol=0.5)


def test_rct_leaves_structure(face_pair):
    source, target, mask = face_pair
    out = rct(source, target, mask)
    # A per-channel affine map in LAB keeps the face's own detail: luminance stays strongly correlated.
    corr = np.corrcoef(cv2.cvtColor(source, cv2.COLOR_BGR2GRAY).ravel(), cv2.cvtColor(out, cv2.COLOR_BGR2GRAY).ravel())[
        0, 1
    ]
    assert corr > 0.95


def test_hist_match_moves_masked_histograms(face_pair):
    source, target, mask = face_pair
    region = mask > MASK_THRESHOLD
    out = hist_match(source, target, mask)

    def ks(a, b):  # Kolmogorov-Smirnov distance between two samples of 0..255 values
        ca = np.cumsum(np.bincount(a, minlength=256)) / a.size
        cb = np.cumsum(np.bincount(b, minlength=256)) / b.size
        return np.abs(ca - cb).max()

    for c in range(3):
        before = ks(source[..., c][region], target[..., c][region])
        after = ks(out[..., c][region], target[..., c][region])
        assert before > 0.2 and after < 0.08, (c, before, after)  # 0.08: uint8 LUT steps


def test_none_and_dispatch(face_pair):
    source, target, mask = face_pair
    assert no_transfer(source, target, mask) is source
    for mode, whole in (("rct", rct), ("hist", hist_match)):
        model = colour_model(mode)
        params = model.fit(source, target, mask)
        assert params is not None and params.dtype == np.float32
        # fit + apply is exactly the one-call transfer (the pipeline smooths params in between)
        np.testing.assert_array_equal(model.apply(source, params), whole(source, target, mask))
    assert colour_model("none").fit(source, target, mask) is None
    with pytest.raises(SwapcamError, match="colour mode 'lab'"):
        colour_model("lab")


def test_rct_params_average_to_an_intermediate_colour(face_pair):
    """Smoothing acts on parameters: halfway between two fits gives a face between the two transfers' colours."""
    source, target, mask = face_pair
    model = colour_model("rct")
    to_target = model.fit(source, target, mask)
    identity = model.fit(source, source, mask)
    assert to_target is not None and identity is not None
    np.testing.assert_allclose(identity, [[1, 1, 1], [0, 0, 0]], atol=1e-3)
    region = mask > MASK_THRESHOLD
    half = model.apply(source, (to_target + identity) / 2)
    l_src, l_dst, l_half = (masked_lab_stats_reference(x, region)[0][0] for x in (source, target, half))
    assert abs(l_half - (l_src + l_dst) / 2) < 0.25 * abs(l_dst - l_src)


def test_empty_mask_leaves_face_alone(face_pair):
    source, target, _ = face_pair
    empty = np.zeros(source.shape[:2], np.float32)
    np.testing.assert_array_equal(rct(source, target, empty), source)
    np.testing.assert_array_equal(hist_match(source, target, empty), source)


def test_bad_inputs(face_pair):
    source, target, mask = face_pair
    with pytest.raises(ValueError, match="target has shape"):
        rct(source, target[:50], mask)
    with pytest.raises(ValueError, match="mask has shape"):
        rct(source, target, mask[:10])
    with pytest.raises(ValueError, match="source is float32"):
        rct(source.astype(np.float32), target, mask)
