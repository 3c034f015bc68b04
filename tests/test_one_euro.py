"""One Euro filter: lag vs. beta, jitter reduction, agreement with a scalar transcription of the paper, validation;
FaceSmoother: one filter per face, kept with the right face when the detector reorders or loses faces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from realtime.landmarks.one_euro import OneEuroFilter
from realtime.landmarks.smoothing import FaceSmoother
from realtime.types import Face

FPS = 30.0


def _run(filt: OneEuroFilter, signal: np.ndarray, fps: float = FPS) -> np.ndarray:
    return np.stack([filt(x, i / fps) for i, x in enumerate(signal)])


def _frames_to_reach(out: np.ndarray, start: int, level: float) -> int:
    """Frames after ``start`` until every element of the output reaches ``level``."""
    for k in range(start, len(out)):
        if np.all(out[k] >= level):
            return k - start
    return len(out)


def _paper_one_euro(xs: list[float], ts: list[float], min_cutoff: float, beta: float, d_cutoff: float) -> list[float]:
    """Scalar transcription of the CHI 2012 pseudo-code, written independently of the implementation under test."""

    def alpha(cutoff: float, te: float) -> float:
        r = 2 * math.pi * cutoff * te
        return r / (r + 1)

    out = [xs[0]]
    x_prev, dx_prev = xs[0], 0.0
    for i in range(1, len(xs)):
        te = ts[i] - ts[i - 1]
        dx = (xs[i] - x_prev) / te
        edx = dx_prev + alpha(d_cutoff, te) * (dx - dx_prev)
        cutoff = min_cutoff + beta * abs(edx)
        x_hat = x_prev + alpha(cutoff, te) * (xs[i] - x_prev)
        out.append(x_hat)
        x_prev, dx_prev = x_hat, edx
    return out


def test_step_response_lags_less_with_higher_beta():
    step = np.zeros((60, 68, 2))
    step[15:] = 100.0  # a 100 px jump, like a fast head turn
    lags = []
    for beta in (0.0, 0.05, 0.5):
        out = _run(OneEuroFilter(min_cutoff=1.0, beta=beta), step)
        lags.append(_frames_to_reach(out, 15, 90.0))
    # beta=0 is a plain 1 Hz low-pass: ~11 frames at 30 fps to reach 90 %; beta must shorten that strictly.
    assert lags[0] > lags[1] > lags[2], lags
    assert lags[2] <= 3, lags


def test_jitter_on_constant_signal_is_reduced():
    rng = np.random.default_rng(0)
    truth = rng.uniform(100, 400, size=(68, 2))
    noisy = truth + rng.normal(0, 1.0, size=(300, 68, 2))  # ~1 px landmark jitter
    out = _run(OneEuroFilter(min_cutoff=1.0, beta=0.05), noisy)
    settled = out[30:]  # skip the first second while the filter forgets its first sample
    in_jitter = np.std(np.diff(noisy[30:], axis=0))
    out_jitter = np.std(np.diff(settled, axis=0))
    # frame-to-frame jitter: a 1 Hz cutoff at 30 fps has alpha ~0.17, so ~5x less; demand at least 3x.
    assert in_jitter / out_jitter > 3.0, (in_jitter, out_jitter)
    # and it must not drift away from the truth
    assert np.abs(settled.mean(axis=0) - truth).max() < 0.5


def test_matches_paper_pseudocode_per_element():
    rng = np.random.default_rng(1)
    n = 120
    ts = np.cumsum(rng.uniform(0.02, 0.05, size=n))  # irregular frame times
    signal = np.cumsum(rng.normal(0, 3, size=(n, 3, 2)), axis=0)
    filt = OneEuroFilter(min_cutoff=0.7, beta=0.02, d_cutoff=1.3)
    out = np.stack([filt(signal[i], ts[i]) for i in range(n)])
    for idx in np.ndindex(3, 2):
        ref = _paper_one_euro(list(signal[(slice(None),) + idx]), list(ts), 0.7, 0.02, 1.3)
        np.testing.assert_allclose(out[(slice(None),) + idx], ref, rtol=1e-10, atol=1e-9)


def test_first_sample_passes_through_and_dtype_is_kept():
    filt = OneEuroFilter()
    x = np.arange(136, dtype=np.float32).reshape(68, 2)
    y = filt(x, 0.0)
    assert y.dtype == np.float32 and y.shape == (68, 2)
    np.testing.assert_array_equal(y, x)
    ints = OneEuroFilter()(np.array([1, 2, 3]), 0.0)
    assert ints.dtype == np.float64


def test_reset_forgets_history():
    filt = OneEuroFilter(min_cutoff=0.5, beta=0.0)
    filt(np.zeros(4), 0.0)
    lagged = filt(np.full(4, 10.0), 1 / FPS)
    assert np.all(lagged < 5.0)
    filt.reset()
    np.testing.assert_array_equal(filt(np.full(4, 10.0), 2 / FPS), np.full(4, 10.0))
    # after a reset a new shape is accepted (a different number of faces/points)
    filt.reset()
    assert filt(np.zeros((68, 2)), 3 / FPS).shape == (68, 2)


def test_duplicate_timestamp_keeps_state():
    filt = OneEuroFilter()
    filt(np.zeros(2), 0.0)
    a = filt(np.ones(2), 0.1)
    b = filt(np.full(2, 50.0), 0.1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_cutoff": 0.0},
        {"min_cutoff": -1.0},
        {"beta": -0.1},
        {"d_cutoff": 0.0},
        {"min_cutoff": float("nan")},
        {"beta": float("inf")},
        {"d_cutoff": "1"},
        {"beta": True},
    ],
)
def test_parameters_validated(kwargs):
    with pytest.raises(ValueError) as info:
        OneEuroFilter(**kwargs)
    assert next(iter(kwargs)) in str(info.value)


def test_bad_inputs_raise():
    filt = OneEuroFilter()
    filt(np.zeros((68, 2)), 0.0)
    with pytest.raises(ValueError, match="shape"):
        filt(np.zeros((5, 2)), 0.1)
    with pytest.raises(ValueError, match="backwards"):
        filt(np.zeros((68, 2)), -1.0)
    with pytest.raises(ValueError, match="NaN"):
        filt(np.full((68, 2), np.nan), 0.2)
    with pytest.raises(ValueError, match="finite"):
        filt(np.zeros((68, 2)), float("nan"))
    with pytest.raises(TypeError, match="dtype"):
        OneEuroFilter()(np.array(["a"]), 0.0)


# -- FaceSmoother -----------------------------------------------------------------------------------------------------
def _face(centre_x: float, seed: int = 0) -> Face:
    rng = np.random.default_rng(seed)
    points = (rng.uniform(-50, 50, size=(68, 2)) + [centre_x, 240]).astype(np.float32)
    return Face(landmarks=points, raw=points.copy(), confidence=0.9)


def test_smoother_keeps_each_filter_with_its_face_when_the_order_changes():
    left, right = _face(150), _face(450, seed=1)
    smoother = FaceSmoother(min_cutoff=1.0, beta=0.0)
    smoother.smooth([left, right], 0.0)
    # Both faces move 6 px to the right; the detector now lists them the other way round.
    moved = [
        Face(landmarks=f.landmarks + np.float32([6, 0]), raw=f.raw, confidence=f.confidence) for f in (right, left)
    ]
    out = smoother.smooth(moved, 1 / FPS)
    for before, got in zip((right, left), out, strict=True):
        shift = got.landmarks - before.landmarks
        # its own filter: a small lagged step towards +6 px; a swapped filter would jump ~300 px
        assert np.all(shift[:, 0] > 0) and np.all(shift[:, 0] < 6) and np.abs(shift[:, 1]).max() < 1e-4
    assert out[0].raw is moved[0].raw and out[0].confidence == 0.9  # only the landmarks are smoothed
    # ... and the detector's own points stay at hand for stages that need this frame's (the eyes' blink measure)
    assert out[0].unsmoothed is moved[0].landmarks and out[0].measured is moved[0].landmarks
    assert moved[0].unsmoothed is None and moved[0].measured is moved[0].landmarks


def test_smoother_starts_fresh_for_a_new_face_and_after_reset():
    smoother = FaceSmoother(min_cutoff=0.5, beta=0.0)
    smoother.smooth([_face(150)], 0.0)
    stranger = _face(500, seed=2)  # far from the tracked face: its own filter, not the old one's history
    np.testing.assert_array_equal(smoother.smooth([stranger], 1 / FPS)[0].landmarks, stranger.landmarks)
    near = Face(landmarks=stranger.landmarks + np.float32([10, 0]), raw=stranger.raw)
    assert np.all(smoother.smooth([near], 2 / FPS)[0].landmarks[:, 0] < near.landmarks[:, 0])  # smoothed: lags
    smoother.reset()
    np.testing.assert_array_equal(smoother.smooth([near], 3 / FPS)[0].landmarks, near.landmarks)


def test_smoother_parameters_apply_to_new_filters_and_are_validated():
    with pytest.raises(ValueError, match="min_cutoff"):
        FaceSmoother(min_cutoff=0.0)
    still, step = _face(200), _face(200)
    step.landmarks = step.landmarks + np.float32([20, 0])
    lags = []
    for beta in (0.0, 1.0):
        smoother = FaceSmoother(min_cutoff=1.0, beta=0.5)
        smoother.beta = beta
        smoother.smooth([still], 0.0)
        lags.append(float(np.mean(step.landmarks - smoother.smooth([step], 1 / FPS)[0].landmarks)))
    assert lags[0] > 2 * lags[1] > 0  # a higher beta follows the 20 px step more closely
