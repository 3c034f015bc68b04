"""Frame sources: spec parsing, synthetic clip, video file (paced / fast / looped), images of any depth, absent
camera, and a camera unplugged and plugged back in (a fake capture device: there is no camera here)."""

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


def test_video_file_loop_plays_past_the_end(video_file):
    looped = open_source(str(video_file), pace="fast", loop=True)
    frames = [looped.read() for _ in range(30)]
    looped.close()
    assert all(f is not None for f in frames)
    # frame 12 is frame 0 again (the file restarted), and media time keeps going forward for the landmark filter
    assert np.abs(frames[12].image.astype(int) - frames[0].image.astype(int)).mean() < 2
    assert np.abs(frames[12].image.astype(int) - frames[11].image.astype(int)).mean() > 20
    assert [f.t_media for f in frames] == sorted(f.t_media for f in frames)
    assert frames[29].t_media == pytest.approx(29 / 30)


def test_image_source(tmp_path):
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), _frames(1)[0])
    src = open_source(str(path), pace="fast", n_frames=3)
    assert sum(1 for _ in iter(src.read, None)) == 3
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(SwapcamError, match="broken.jpg could not be read"):
        open_source(str(broken))


@pytest.mark.parametrize(
    "name, image",
    [
        ("grey16.png", np.full((120, 160), 65280, np.uint16)),
        ("float.tiff", np.full((120, 160), 0.5, np.float32)),
        ("rgba.png", np.dstack([np.full((120, 160, 3), (10, 120, 230), np.uint8), np.full((120, 160), 128, np.uint8)])),
        ("grey.tiff", np.full((120, 160), 200, np.uint8)),
    ],
)
def test_image_source_reads_any_depth_as_bgr8(tmp_path, name, image):
    path = tmp_path / name
    assert cv2.imwrite(str(path), image)
    frame = open_source(str(path), pace="fast").read()
    assert frame.image.shape == (120, 160, 3) and frame.image.dtype == np.uint8
    # 16-bit scaled, not shifted: 65280 / 65535 * 255 = 254.0 (a >> 8 gives 255); float 0..1 scaled to 0..255 (a
    # plain 8-bit read cannot open 32-bit samples); alpha dropped; grey copied to all three channels
    expected = {"grey16.png": [254] * 3, "float.tiff": [128] * 3, "rgba.png": [10, 120, 230], "grey.tiff": [200] * 3}[
        name
    ]
    assert frame.image[60, 80].tolist() == expected


def test_every_video_extension_of_the_media_table_is_a_source():
    with pytest.raises(SwapcamError, match="talk.flv does not exist"):  # recognised as a video, then looked for
        open_source("talk.flv")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("talk.xyz", "is not supported"),
        ("http://example.com/cam", "is not supported"),
        ("missing.mp4", "does not exist"),
    ],
)
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


class FakeCapture:
    """Stands in for cv2.VideoCapture: ``script`` says, read by read, whether a frame comes (True) or not (False)."""

    def __init__(self, script: list[bool], frame_value: int) -> None:
        self.script = list(script)
        self.value = frame_value
        self.released = False

    def read(self):
        if self.released:
            return False, None
        ok = self.script.pop(0) if self.script else True
        return (True, np.full((120, 160, 3), self.value, np.uint8)) if ok else (False, None)

    def get(self, prop):
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.released = True


class FakeCameraPort:
    """The USB port: ``captures`` says what each open attempt finds (a capture, or None: nothing plugged in)."""

    def __init__(self, captures: list[FakeCapture | None]) -> None:
        self.captures = list(captures)
        self.opened: list[FakeCapture] = []
        self.attempts = 0

    def __call__(self, device):
        assert device == 3
        self.attempts += 1
        cap = self.captures.pop(0) if self.captures else None
        if cap is not None:
            self.opened.append(cap)
        return cap


def test_camera_unplugged_then_back_is_reopened():
    # First device delivers 3 frames (the first at open), then its reads fail: unplugged. The port finds nothing
    # twice, then the replugged camera (a new capture, other frames).
    first, second = FakeCapture([True, True, True, False], 50), FakeCapture([True], 200)
    port = FakeCameraPort([first, None, None, second])
    cam = CameraSource(3, retry_s=5.0, open_capture=port)
    assert (cam.width, cam.height, cam.fps, cam.live) == (160, 120, 25.0, True)
    values = [int(cam.read().image[0, 0, 0]) for _ in range(5)]
    assert values == [50, 50, 50, 200, 200]
    assert first.released and not second.released and port.attempts == 4
    assert [f.index for f in [cam.read()]] == [5]  # frame numbering carries on across the reconnect
    cam.close()
    cam.close()
    assert second.released and cam.read() is None


def test_camera_that_stays_unplugged_ends_the_run_with_one_line():
    port = FakeCameraPort([FakeCapture([True, False], 50)])  # then nothing, however often it is tried
    cam = CameraSource(3, retry_s=0.3, open_capture=port)
    cam.read()
    t0 = time.perf_counter()
    message = r"camera 3 stopped delivering frames and could not be reopened after \d+ tries"
    with pytest.raises(SwapcamError, match=message) as info:
        cam.read()
    assert time.perf_counter() - t0 >= 0.3 and port.attempts > 2  # it kept trying for the time it was given
    assert "\n" not in str(info.value)


def test_camera_that_opens_but_sends_nothing():
    port = FakeCameraPort([FakeCapture([False], 0)])
    with pytest.raises(SwapcamError, match="camera 3 opened but delivered no frame"):
        CameraSource(3, retry_s=0.1, open_capture=port)
    assert port.opened[0].released
