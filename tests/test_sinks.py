"""Sinks: the virtual camera through pyvirtualcam's real Camera class (register_backend hook), the MP4 file sink
read back with PyAV, the null sink, the window sink's headless message, and sink specs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import pyvirtualcam

from realtime.errors import SwapcamError
from realtime.sinks import TeeSink, check_sink_spec, open_sink
from realtime.sinks.file import SYNTHETIC_NOTE, FileSink, read_note
from realtime.sinks.null import NullSink
from realtime.sinks.vcam import VirtualCameraSink


class RecordingBackend:
    """A pyvirtualcam backend (the documented Backend interface) that keeps what pyvirtualcam.Camera hands it."""

    instances: list[RecordingBackend] = []

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self._device = device or "/dev/video-test"
        self.frames: list[np.ndarray] = []
        self.closed = 0
        RecordingBackend.instances.append(self)

    def send(self, frame):
        self.frames.append(frame.copy())

    def close(self):
        self.closed += 1

    def device(self):
        return self._device

    def native_fourcc(self):
        return self.fourcc


BACKEND = "swapcam-test-recorder"


@pytest.fixture
def recording_backend():
    pyvirtualcam.register_backend(BACKEND, RecordingBackend)
    RecordingBackend.instances.clear()
    yield RecordingBackend
    # Unregister, or pyvirtualcam would fall back to it when no backend is named (as in the set-up message test).
    pyvirtualcam.camera.BACKENDS.pop(BACKEND, None)


def _frames(n, w=320, h=240):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_vcam_sink_delivers_every_frame_through_pyvirtualcam(recording_backend):
    frames = _frames(7)
    with VirtualCameraSink(320, 240, 30.0, backend=BACKEND) as sink:
        for f in frames:
            assert sink.send(f) is True
        assert sink.device == "/dev/video-test"
    backend = recording_backend.instances[-1]
    assert backend.closed == 1
    assert backend.fourcc == pyvirtualcam.util.encode_fourcc(pyvirtualcam.PixelFormat.BGR.value)
    assert len(backend.frames) == 7
    for sent, got in zip(frames, backend.frames, strict=True):
        np.testing.assert_array_equal(got.reshape(240, 320, 3), sent)


def test_vcam_sink_rejects_wrong_shape(recording_backend):
    with VirtualCameraSink(320, 240, 30.0, backend=BACKEND) as sink:
        with pytest.raises(ValueError, match="opened for 320x240"):
            sink.send(np.zeros((480, 640, 3), np.uint8))
        with pytest.raises(TypeError, match="float32"):
            sink.send(np.zeros((240, 320, 3), np.float32))


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or any(Path("/sys/devices/virtual/video4linux").glob("video*")),
    reason="checks the message on a Linux machine without a v4l2loopback device",
)
def test_vcam_without_loopback_gives_setup_message():
    with pytest.raises(SwapcamError, match="no virtual camera .*modprobe v4l2loopback") as info:
        open_sink("vcam", 640, 480, 30.0)
    assert "\n" not in str(info.value)


def test_file_sink_writes_playable_mp4_with_note(tmp_path, astronaut_clip):
    path = tmp_path / "out.mp4"
    frames = astronaut_clip.frames[:25]
    with open_sink(f"file:{path}", 640, 480, 30.0) as sink:
        for f in frames:
            sink.send(f)
        assert not path.exists()  # written under a temporary name until closed
    assert path.exists() and not list(tmp_path.glob("*.part*"))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [fr.to_ndarray(format="bgr24") for fr in container.decode(stream)]
        assert container.metadata.get("comment") == SYNTHETIC_NOTE
    assert len(decoded) == 25
    assert decoded[0].shape == (480, 640, 3)
    # Lossy, but each decoded frame is its own picture: much closer to its source than to the next frame.
    for i in (0, 12, 24):
        own = np.abs(decoded[i].astype(int) - frames[i].astype(int)).mean()
        assert own < 4.0
        if i < 24:
            assert own < np.abs(decoded[i].astype(int) - frames[i + 1].astype(int)).mean() / 2
    assert read_note(path) == SYNTHETIC_NOTE


def test_file_sink_odd_size_and_bad_paths(tmp_path):
    with FileSink(tmp_path / "odd.mp4", 161, 121, 25.0) as sink:
        sink.send(np.zeros((121, 161, 3), np.uint8))
    with av.open(str(tmp_path / "odd.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (160, 120)
    with pytest.raises(SwapcamError, match="does not exist"):
        FileSink(tmp_path / "no" / "dir.mp4", 64, 64)
    with pytest.raises(SwapcamError, match="use a name ending in .mp4"):
        check_sink_spec("file:out.avi")


def test_null_and_tee(tmp_path):
    a, b = NullSink(), NullSink()
    tee = TeeSink([a, b])
    assert tee.send(np.zeros((8, 8, 3), np.uint8))
    tee.close()
    assert a.frames == b.frames == 1 and a.closed and b.closed


@pytest.mark.parametrize(
    "spec, message", [("bogus", "not supported"), ("file", "needs a path"), ("rtmp://x", "not supported")]
)
def test_bad_sink_specs(spec, message):
    with pytest.raises(SwapcamError, match=message):
        open_sink(spec, 64, 64)


@pytest.mark.skipif(
    bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or not sys.platform.startswith("linux"),
    reason="checks the headless message",
)
def test_window_without_display():
    with pytest.raises(SwapcamError, match="needs a display"):
        open_sink("window", 64, 64)
