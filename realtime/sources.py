"""Frame sources for the live pipeline: camera (index or device path), video file, still image, synthetic clip.

Every source has ``width``, ``height``, ``fps``, ``live`` (True: it runs on its own clock, so a slow pipeline drops
frames; False: read as fast as the pipeline takes them, every frame processed), ``read() -> SourceFrame | None``
(None at the end) and an idempotent ``close()``. ``open_source(spec)`` turns a ``--source`` value into one.

Specs: ``0`` / ``1`` (camera index), ``/dev/video2`` (camera device path), ``clip.mp4`` (video file), ``face.png``
(still image, repeated), ``synthetic`` or ``synthetic:grace_hopper`` (the built-in clip of a public-domain portrait).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from realtime.errors import SwapcamError
from realtime.media import IMAGE_EXTS, VIDEO_EXTS, media_kind, open_video, read_image
from realtime.types import Frame, Image

log = logging.getLogger("swapcam.sources")

PACES = ("realtime", "fast")


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` a camera source uses (a fake one stands in for a camera in tests)."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


@dataclass
class SourceFrame(Frame):
    """A captured frame with its media time (seconds on the source's own clock, for the landmark filter)."""

    t_media: float = 0.0


class _Source:
    live = True
    width = 0
    height = 0
    fps = 30.0
    name = "source"

    def __init__(self) -> None:
        self._index = 0
        self._closed = False

    def _frame(self, image: Image, t_media: float) -> SourceFrame:
        frame = SourceFrame(image=image, index=self._index, t_capture=time.perf_counter(), t_media=t_media)
        self._index += 1
        return frame

    def read(self) -> SourceFrame | None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        pace = "live" if self.live else "as fast as possible"
        return f"{self.name} {self.width}x{self.height} @ {self.fps:g} fps ({pace})"


class _Pacer:
    """Releases frame i at start + i / fps (real-time pacing of files, images and the synthetic clip)."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self.start: float | None = None

    def wait(self, index: int) -> None:
        now = time.perf_counter()
        if self.start is None:
            self.start = now
        due = self.start + index * self.period
        if due > now:
            time.sleep(due - now)


class CameraSource(_Source):
    """An OpenCV camera. Driver buffer of 1 frame so ``read()`` returns the newest frame, not a queued old one.

    Absent at start: retries for ``retry_s`` seconds, then SwapcamError. Unplugged mid-run (reads fail): reopens for
    ``retry_s`` seconds, then SwapcamError -- the runner stops cleanly and the CLI prints one line.

    ``open_capture(device)`` opens the device once, returning a :class:`Capture` or None when it is not there;
    by default an OpenCV capture with the requested size, rate and a one-frame driver buffer.
    """

    live = True

    def __init__(
        self,
        device: int | str,
        width: int | None = 640,
        height: int | None = 480,
        fps: float | None = 30.0,
        mjpg: bool = False,
        retry_s: float = 3.0,
        open_capture: Callable[[int | str], Capture | None] | None = None,
    ) -> None:
        super().__init__()
        self.device = device
        self.name = f"camera {device}"
        self.want = (width, height, fps, mjpg)
        self.retry_s = float(retry_s)
        self._open_capture = open_capture or self._open_once
        self._cap = self._open_with_retries("could not be opened")
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise SwapcamError(f"camera {device} opened but delivered no frame; is another program using it?")
        self.height, self.width = first.shape[:2]
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or fps or 30.0)
        self._first: Image | None = first

    def _open_once(self, device: int | str) -> cv2.VideoCapture | None:
        # OpenCV prints several WARN/ERROR lines for an absent camera; our own message says it once, plainly.
        previous = cv2.getLogLevel()
        cv2.setLogLevel(0)  # 0 = silent
        try:
            api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
            cap = cv2.VideoCapture(device, api)
            if not cap.isOpened():
                cap.release()
                return None
        finally:
            cv2.setLogLevel(previous)
        width, height, fps, mjpg = self.want
        if mjpg:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _open_with_retries(self, what: str) -> Capture:
        deadline = time.monotonic() + self.retry_s
        attempt = 0
        while True:
            attempt += 1
            cap = self._open_capture(self.device)
            if cap is not None:
                return cap
            if time.monotonic() >= deadline:
                hint = ""
                if isinstance(self.device, int) and sys.platform.startswith("linux"):
                    devices = sorted(p.name for p in Path("/dev").glob("video*"))
                    hint = f"; video devices here: {', '.join(devices) if devices else 'none'}"
                raise SwapcamError(
                    f"camera {self.device} {what} after {attempt} tries in {self.retry_s:g} s "
                    f"(not connected, in use, or no permission){hint}"
                )
            if attempt == 1:
                log.warning("camera %s not available, retrying for %g s ...", self.device, self.retry_s)
            time.sleep(min(0.5, max(0.05, self.retry_s / 6)))

    def read(self) -> SourceFrame | None:
        if self._closed:
            return None
        if self._first is not None:
            first, self._first = self._first, None
            return self._frame(first, time.perf_counter())
        ok, image = self._cap.read()
        if ok and image is not None:
            return self._frame(image, time.perf_counter())
        log.warning(
            "camera %s stopped delivering frames (unplugged?); trying to reopen for %g s", self.device, self.retry_s
        )
        self._cap.release()
        self._cap = self._open_with_retries("stopped delivering frames and could not be reopened")
        ok, image = self._cap.read()
        if not ok or image is None:
            raise SwapcamError(f"camera {self.device} reopened but delivers no frames; stopping")
        return self._frame(image, time.perf_counter())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cap.release()


class VideoFileSource(_Source):
    """A video file read with OpenCV, paced in real time (``pace="realtime"``) or as fast as possible."""

    def __init__(self, path: str | os.PathLike, pace: str = "realtime", loop: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = f"video {self.path.name}"
        if pace not in PACES:
            raise SwapcamError(f"pace={pace!r}; choose from {', '.join(PACES)}")
        self._cap = open_video(self.path)
        ok, first = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok or first is None:
            self._cap.release()
            raise SwapcamError(f"video {self.path} could not be read (unsupported codec or not a video)")
        self.height, self.width = first.shape[:2]
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1 <= fps <= 240 else 30.0
        self.live = pace == "realtime"
        self.loop = loop
        self._pacer = _Pacer(self.fps) if self.live else None
        self._first: Image | None = first
        self._media_index = 0

    def read(self) -> SourceFrame | None:
        if self._closed:
            return None
        if self._first is not None:
            image, self._first = self._first, None
        else:
            ok, image = self._cap.read()
            if (not ok or image is None) and self.loop:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self._cap.read()
            if not ok or image is None:
                return None
        if self._pacer is not None:
            self._pacer.wait(self._media_index)
        t = self._media_index / self.fps
        self._media_index += 1
        return self._frame(image, t)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cap.release()


class FramesSource(_Source):
    """Frames from memory (the synthetic clip, a still image): played forward then backward (ping-pong), so a loop
    has no jump the landmark tracker would see as a new face; ``n_frames`` total (None: until closed)."""

    def __init__(
        self,
        frames: list[Image],
        fps: float = 30.0,
        pace: str = "realtime",
        n_frames: int | None = None,
        name: str = "frames",
    ) -> None:
        super().__init__()
        if not frames:
            raise SwapcamError(f"{name}: no frames")
        if pace not in PACES:
            raise SwapcamError(f"pace={pace!r}; choose from {', '.join(PACES)}")
        self.frames = frames
        self.height, self.width = frames[0].shape[:2]
        self.fps = float(fps)
        self.live = pace == "realtime"
        self.n_frames = n_frames
        self.name = name
        self._pacer = _Pacer(self.fps) if self.live else None
        n = len(frames)
        self._order = list(range(n)) + list(range(n - 2, 0, -1)) if n > 2 else list(range(n))

    def read(self) -> SourceFrame | None:
        if self._closed or (self.n_frames is not None and self._index >= self.n_frames):
            return None
        i = self._index
        if self._pacer is not None:
            self._pacer.wait(i)
        return self._frame(self.frames[self._order[i % len(self._order)]], i / self.fps)


def synthetic_source(
    portrait: str = "astronaut",
    pace: str = "realtime",
    n_frames: int | None = None,
    size: tuple[int, int] = (640, 480),
    clip_frames: int = 90,
    seed: int = 0,
) -> FramesSource:
    """The built-in synthetic camera clip (realtime.samples) as a source, looped ping-pong."""
    from realtime.samples import synthetic_clip

    clip = synthetic_clip(portrait, n_frames=clip_frames, size=size, fps=30.0, seed=seed)
    return FramesSource(clip.frames, clip.fps, pace, n_frames, name=f"synthetic {portrait}")


def image_source(
    path: str | os.PathLike, pace: str = "realtime", n_frames: int | None = None, fps: float = 30.0
) -> FramesSource:
    """A still image as a source (any bit depth; grey, alpha and 16-bit images come out as 8-bit BGR)."""
    path = Path(path)
    image = read_image(path)
    if image is None:
        raise SwapcamError(f"image {path} could not be read (corrupt or not an image)")
    return FramesSource(
        [image],
        fps,
        pace,
        n_frames if n_frames is not None else (None if pace == "realtime" else 1),
        name=f"image {path.name}",
    )


def open_source(
    spec: str | int,
    pace: str = "realtime",
    n_frames: int | None = None,
    width: int | None = 640,
    height: int | None = 480,
    fps: float | None = 30.0,
    mjpg: bool = False,
    retry_s: float = 3.0,
    loop: bool = False,
):
    """Build the source a ``--source`` value names. Raises SwapcamError for anything it cannot open."""
    text = str(spec).strip()
    if text.isdigit():
        return CameraSource(int(text), width, height, fps, mjpg, retry_s)
    if text == "synthetic" or text.startswith("synthetic:"):
        from realtime.samples import PORTRAITS

        portrait = text.partition(":")[2] or "astronaut"
        if portrait not in PORTRAITS:
            raise SwapcamError(f"source {text!r}: unknown portrait {portrait!r}; choose from {', '.join(PORTRAITS)}")
        return synthetic_source(portrait, pace, n_frames, size=(width or 640, height or 480))
    if text.startswith("/dev/video"):
        return CameraSource(text, width, height, fps, mjpg, retry_s)
    if text == "carphone":
        from realtime.samples import talking_clip

        frames, clip_fps = talking_clip((width or 640, height or 480))
        return FramesSource(frames, clip_fps, pace, n_frames, name="carphone talking head")
    path = Path(text)
    kind = media_kind(path)
    if kind is None:
        raise SwapcamError(
            f"source {text!r} is not supported: use a camera index (0), a device path (/dev/video0), a video file "
            f"({', '.join(VIDEO_EXTS[:4])}, ...), an image ({', '.join(IMAGE_EXTS[:3])}, ...), "
            "'synthetic' or 'carphone'"
        )
    if not path.exists():
        raise SwapcamError(f"source file {path} does not exist")
    if kind == "image":
        return image_source(path, pace, n_frames, fps or 30.0)
    return VideoFileSource(path, pace, loop)
