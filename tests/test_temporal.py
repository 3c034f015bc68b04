"""Temporal smoothing of the compositor (realtime.temporal): matching faces to tracks, resets, the moving averages,
and, through the real pipeline, a face whose brightness pulses frame to frame comes out steadier."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.temporal import FRAME_S, MAX_AGE_S, FaceTrack, TemporalSmoother, ema, face_geometry


def crop_matrix(cx: float, cy: float, side: float, size: int = 128) -> np.ndarray:
    """frame -> crop matrix of an SxS crop of a face box of ``side`` pixels centred at (cx, cy)."""
    s = size / side
    return np.array([[s, 0.0, size / 2 - s * cx], [0.0, s, size / 2 - s * cy]])


def test_face_geometry_inverts_the_crop_matrix():
    centre, side = face_geometry(crop_matrix(300, 200, 250), 128)
    np.testing.assert_allclose(centre, [300, 200], atol=1e-9)
    assert side == pytest.approx(250)
    # a rotated similarity: the same centre and side
    theta = np.radians(20)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) * (128 / 250)
    t = np.array([64, 64]) - rot @ np.array([300, 200])
    centre, side = face_geometry(np.hstack([rot, t[:, None]]), 128)
    np.testing.assert_allclose(centre, [300, 200], atol=1e-9)
    assert side == pytest.approx(250)


def test_ema():
    a, b = np.zeros(3, np.float32), np.ones(3, np.float32)
    np.testing.assert_allclose(ema(a, b, 0.75), 0.25)
    assert ema(None, b, 0.75) is b
    assert ema(a, b, 0.0) is b
    assert ema(np.zeros(4, np.float32), b, 0.75) is b  # another shape (another model / colour mode): start afresh
    assert ema(a, None, 0.75) is None


def test_tracks_follow_moving_faces_and_reset_on_jump_or_loss():
    sm = TemporalSmoother(0.6)
    dt = FRAME_S
    (t1,) = sm.match([crop_matrix(300, 200, 250)], 128, 0.0)
    assert t1.frames == 0
    (t2,) = sm.match([crop_matrix(310, 205, 252)], 128, dt)  # small motion: the same track
    assert t2 is t1 and t2.frames == 1
    (t3,) = sm.match([crop_matrix(500, 205, 252)], 128, 2 * dt)  # moved ~0.75 of its size in one frame: a new track
    assert t3 is not t1 and t3.frames == 0
    (t4,) = sm.match([crop_matrix(500, 205, 380)], 128, 3 * dt)  # 50 % bigger: a new track
    assert t4 is not t3
    sm.match([], 128, 4 * dt)  # lost for longer than MAX_AGE_S: dropped
    (t5,) = sm.match([crop_matrix(500, 205, 380)], 128, 4 * dt + MAX_AGE_S + dt)
    assert t5 is not t4


def test_a_track_and_its_state_outlive_a_missed_frame():
    """One frame without the face (a missed detection, a hand passing): the track comes back with its state."""
    sm = TemporalSmoother(0.6)
    (track,) = sm.match([crop_matrix(300, 200, 250)], 128, 0.0)
    track.state.latent_mean = np.ones(4)
    assert sm.match([], 128, FRAME_S) == [] and sm.lost == [track]
    (back,) = sm.match([crop_matrix(305, 200, 250)], 128, 2 * FRAME_S)
    assert back is track and back.state.latent_mean.sum() == 4 and sm.lost == []


def test_jump_limits_scale_with_the_time_between_frames():
    """At 8 fps a head turn moves the face ~4x as far between two frames as at 30 fps: still the same face."""
    moved = crop_matrix(300 + 0.6 * 250, 200, 250)  # 0.6 of the face's size: a jump in 1/30 s, not in 1/8 s
    sm = TemporalSmoother(0.6)
    (first,) = sm.match([crop_matrix(300, 200, 250)], 128, 0.0)
    assert sm.match([moved], 128, FRAME_S)[0] is not first
    sm = TemporalSmoother(0.6)
    (first,) = sm.match([crop_matrix(300, 200, 250)], 128, 0.0)
    assert sm.match([moved], 128, 1 / 8)[0] is first


def test_two_faces_keep_their_tracks_when_their_order_swaps():
    sm = TemporalSmoother(0.6)
    left, right = sm.match([crop_matrix(150, 200, 120), crop_matrix(450, 200, 120)], 128)
    right2, left2 = sm.match([crop_matrix(452, 200, 120), crop_matrix(148, 200, 120)], 128)
    assert left2 is left and right2 is right


def test_tracks_are_assigned_globally_not_nearest_first():
    """Tracks at 0 and 40, faces at 25 and 70 four frames later: nearest-first matching gave the face at 25 the
    track at 40 and left the face at 70 to the other; the least total move (realtime.tracking) pairs 0-25, 40-70."""
    sm = TemporalSmoother(0.6)
    a, b = sm.match([crop_matrix(200, 200, 100), crop_matrix(240, 200, 100)], 128, 0.0)
    a2, b2 = sm.match([crop_matrix(225, 200, 100), crop_matrix(270, 200, 100)], 128, 4 * FRAME_S)
    assert a2 is a and b2 is b


def test_colour_and_mask_smoothing():
    sm = TemporalSmoother(0.5)
    (track,) = sm.match([crop_matrix(300, 200, 250)], 128)
    p1, p2 = np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)
    assert sm.colour(track, p1) is p1  # first frame: as it is
    np.testing.assert_allclose(sm.colour(track, p2), 0.5)
    np.testing.assert_allclose(sm.colour(track, None), 0.5)  # no fit this frame: keep the last parameters
    m1 = np.ones((8, 8), np.float32)
    m2 = np.zeros((8, 8), np.float32)
    m2[2:6, 2:6] = 1.0
    assert sm.mask(track, m1) is m1
    out = sm.mask(track, m2)
    # inside this frame's mask: the average; outside it: 0, however much the previous mask covered
    np.testing.assert_allclose(out[2:6, 2:6], 1.0)
    assert out[0, 0] == 0.0 and out[7, 7] == 0.0
    out3 = sm.mask(track, m2 * 0.5)
    np.testing.assert_allclose(out3[2:6, 2:6], 0.5 * 0.5 + 0.5 * 1.0)


def test_weight_zero_is_per_frame_and_bad_weight_rejected():
    sm = TemporalSmoother(0.0)
    (track,) = sm.match([crop_matrix(300, 200, 250)], 128)
    sm.colour(track, np.zeros((2, 3), np.float32))
    p = np.ones((2, 3), np.float32)
    assert sm.colour(track, p) is p
    with pytest.raises(ValueError, match="temporal weight"):
        TemporalSmoother(1.0)
    assert isinstance(track, FaceTrack)
