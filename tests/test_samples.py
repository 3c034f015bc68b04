"""Sample media: the two public-domain portraits, the synthetic clip and its ground truth, y4m/mp4 writers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime.cli import main
from realtime.errors import SwapcamError
from realtime.samples import PORTRAITS, portrait, synthetic_clip, write_mp4, write_y4m


def test_portraits_are_bgr_uint8(portraits):
    assert set(portraits) == set(PORTRAITS)
    for por in portraits.values():
        assert por.image.dtype == np.uint8 and por.image.ndim == 3 and por.image.shape[2] == 3
        assert "public domain" in por.provenance
        h, w = por.image.shape[:2]
        assert 0 < por.face_center[0] < w and 0 < por.face_center[1] < h
    from skimage import data

    # skimage ships RGB; the portrait must be in OpenCV's BGR order
    np.testing.assert_array_equal(portraits["astronaut"].image, data.astronaut()[:, :, ::-1])


def test_unknown_portrait():
    with pytest.raises(SwapcamError, match="unknown sample portrait 'mona'"):
        portrait("mona")


def test_clip_shape_and_determinism(astronaut_clip, astronaut):
    clip = astronaut_clip
    assert len(clip) == len(clip.frames) == 30
    assert all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for f in clip.frames)
    assert clip.transforms.shape == (30, 3, 3)
    assert clip.face_visible.all() and not clip.occluded.any()
    again = synthetic_clip(astronaut, n_frames=3, size=(640, 480), fps=clip.fps, seed=0)
    for i in range(3):
        np.testing.assert_array_equal(again.frames[i], clip.frames[i])  # same seed, same clip
    other = synthetic_clip(astronaut, n_frames=3, size=(640, 480), fps=clip.fps, seed=1)
    assert not np.array_equal(other.transforms, again.transforms)


def test_clip_transforms_are_the_ground_truth(astronaut_clip, astronaut):
    """Warping the portrait with the stated transform reproduces the frame (up to lighting drift and noise)."""
    clip = astronaut_clip
    for i in (0, 15, 29):
        warped = cv2.warpPerspective(astronaut.image, clip.transforms[i], (640, 480), flags=cv2.INTER_LINEAR)
        footprint = (
            cv2.warpPerspective(
                np.full(astronaut.image.shape[:2], 255, np.uint8),
                clip.transforms[i],
                (640, 480),
                flags=cv2.INTER_NEAREST,
            )
            > 0
        )
        a = warped[footprint].astype(np.float64).ravel()
        b = clip.frames[i][footprint].astype(np.float64).ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.97
        # a transform from another frame fits clearly worse
        wrong = cv2.warpPerspective(astronaut.image, clip.transforms[(i + 15) % 30], (640, 480))
        assert np.corrcoef(wrong[footprint].astype(np.float64).ravel(), b)[0, 1] < np.corrcoef(a, b)[0, 1] - 0.05


def test_clip_keeps_the_face_in_frame(clips):
    for clip in clips.values():
        cx, cy = clip.portrait.face_center
        for H in clip.transforms:
            p = H @ np.array([cx, cy, 1.0])
            x, y = p[:2] / p[2]
            assert 0.15 * 640 < x < 0.85 * 640 and 0.15 * 480 < y < 0.85 * 480


def test_leave_frame_and_occlusion_segments(astronaut):
    clip = synthetic_clip(astronaut, n_frames=20, size=(320, 240), seed=0, leave_frame=True, occlusion=True)
    assert not clip.face_visible.all() and clip.face_visible[0] and clip.face_visible[-1]
    assert clip.occluded.sum() == 2 and clip.occluded[14] and not clip.occluded[0]
    cx, cy = astronaut.face_center
    for i in np.flatnonzero(~clip.face_visible):
        p = clip.transforms[i] @ np.array([cx, cy, 1.0])
        assert p[0] / p[2] > 320 * 0.9  # the face centre has slid out to the right


@pytest.mark.parametrize("kwargs", [{"n_frames": 0}, {"size": (32, 240)}])
def test_clip_bad_arguments(astronaut, kwargs):
    with pytest.raises(SwapcamError):
        synthetic_clip(astronaut, **kwargs)


def _read_y4m(path):
    data = path.read_bytes()
    header, rest = data.split(b"\n", 1)
    fields = dict((f[:1].decode(), f[1:].decode()) for f in header.split(b" ")[1:])
    w, h = int(fields["W"]), int(fields["H"])
    frame_bytes = w * h * 3 // 2
    frames = []
    while rest:
        marker, rest = rest.split(b"\n", 1)
        assert marker == b"FRAME"
        yuv = np.frombuffer(rest[:frame_bytes], np.uint8).reshape(h * 3 // 2, w)
        frames.append(cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420))
        rest = rest[frame_bytes:]
    return header, frames


def test_write_y4m_round_trip(tmp_path, astronaut_clip):
    frames = astronaut_clip.frames[:4]
    path = write_y4m(frames, tmp_path / "cam.y4m", fps=30)
    header, back = _read_y4m(path)
    assert header.startswith(b"YUV4MPEG2 W640 H480 F30000:1000") and b"C420" in header
    assert len(back) == 4
    for a, b in zip(frames, back, strict=True):
        # 4:2:0 chroma subsampling loses colour detail; luminance-dominated error stays small
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 6.0
    assert [p.name for p in tmp_path.iterdir()] == ["cam.y4m"]  # no temp file left behind


def test_write_y4m_rejects_bad_frames(tmp_path):
    with pytest.raises(SwapcamError, match="no frames"):
        write_y4m([], tmp_path / "x.y4m")
    with pytest.raises(SwapcamError, match="even"):
        write_y4m([np.zeros((101, 64, 3), np.uint8)], tmp_path / "x.y4m")


def test_write_mp4_is_readable(tmp_path, astronaut_clip):
    frames = astronaut_clip.frames[:5]
    path = write_mp4(frames, tmp_path / "cam.mp4", fps=30)
    cap = cv2.VideoCapture(str(path))
    try:
        read = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            read.append(frame)
    finally:
        cap.release()
    assert len(read) == 5 and read[0].shape == (480, 640, 3)
    assert np.abs(read[2].astype(int) - frames[2].astype(int)).mean() < 8.0  # lossy, but the same picture
    assert [p.name for p in tmp_path.iterdir()] == ["cam.mp4"]


def test_make_clip_command(tmp_path, capsys):
    out = tmp_path / "clip.y4m"
    assert (
        main(["make-clip", "--portrait", "grace_hopper", "--frames", "3", "--size", "160x120", "--out", str(out)]) == 0
    )
    header, frames = _read_y4m(out)
    assert b"W160 H120" in header and len(frames) == 3
    assert main(["make-clip", "--frames", "2", "--out", str(tmp_path / "clip.gif")]) == 2
    assert "unsupported extension" in capsys.readouterr().err
    assert main(["make-clip", "--frames", "2", "--size", "big", "--out", str(out)]) == 2
