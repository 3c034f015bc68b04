"""Frame sources: spec parsing, synthetic clip, video file (paced / fast), image, absent camera."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.errors import SwapcamError
from realtime.samples import write_mp4
from realtime.sources import CameraSource, FramesSource, VideoFileSource, open_source


def _frames(n: int, size=(160, 120)) -> list[np.ndarray]:
    out = []
    for i in range(n):
        img = np.full((size[1], size[0], 3), 20 + 15 * i, np.uint8)
        cv2.putText(img, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
        out.append(img)
    return out


@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sources") / "clip.mp4"
    return write_mp4(_frames(12), path, fps=30.0)


def test_frames_source_plays_ping_pong_and_stops_after_n():
    frames = _frames(4)
    src = FramesSource(frames, pace="fast", n_frames=9)
    got = []
    while (f := src.read()) is not None:
        got.append(f)
    order = [next(j for j, fr in enumerate(frames) if fr is f.image) for f in got]
    assert order == [0, 1, 2, 3, 2, 1, 0, 1, 2]  # no jump at the loop point
    assert [f.index for f in got] == list(range(9))
    assert got[3].t_media == pytest.approx(3 / 30)
    assert not src.live


def test_synthetic_spec():
    src = open_source("synthetic:grace_hopper", pace="fast", n_frames=3, width=320, height=240)
    assert (src.width, src.height) == (320, 240) and src.live is False
    assert src.read().image.shape == (240, 320, 3)
    with pytest.raises(SwapcamError, match="unknown portrait 'bob'"):
        open_source("synthetic:bob")


def test_video_file_fast_reads_every_frame(video_file):
    src = open_source(str(video_file), pace="fast")
    assert isinstance(src, VideoFileSource) and not src.live
    count = 0
    while src.read() is not None:
        count += 1
    src.close()
    assert count == 12 and (src.width, src.height) == (160, 120)


def test_video_file_realtime_is_paced(video_file):
    src = VideoFileSource(video_file, pace="realtime")
    t0 = time.perf_counter()
    n = 0
    while src.read() is not None:
        n += 1
    elapsed = time.perf_counter() - t0
    src.close()
    assert n == 12 and src.live
    assert elapsed >= 0.9 * 11 / 30  # frame i is released at i / fps


def test_image_source(tmp_path):
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), _frames(1)[0])
    src = open_source(str(path), pace="fast", n_frames=3)
    assert sum(1 for _ in iter(src.read, None)) == 3
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(SwapcamError, match="broken.jpg could not be read"):
        open_source(str(broken))


@pytest.mark.parametrize("spec, message", [
    ("talk.xyz", "is not supported"),
    ("http://example.com/cam", "is not supported"),
    ("missing.mp4", "does not exist"),
])
def test_bad_specs(spec, message):
    with pytest.raises(SwapcamError, match=message):
        open_source(spec)


def test_corrupt_video(tmp_path):
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(SwapcamError, match="corrupt.mp4 could not be read"):
        open_source(str(path))


@pytest.mark.skipif(Path("/dev/video7").exists(), reason="needs a machine without /dev/video7")
def test_absent_camera_retries_then_says_so():
    t0 = time.perf_counter()
    with pytest.raises(SwapcamError, match=r"camera 7 could not be opened after \d+ tries in 0.6 s") as info:
        open_source("7", retry_s=0.6)
    assert time.perf_counter() - t0 >= 0.6  # it did retry for the time it was given
    assert "\n" not in str(info.value)
    with pytest.raises(SwapcamError, match="camera /dev/video7 could not be opened"):
        CameraSource("/dev/video7", retry_s=0.1)
