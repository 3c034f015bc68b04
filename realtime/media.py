"""Media inputs, one table: which files are images or videos, reading images of any depth, video frames, folders.

``swapcam align``, ``swapcam extract`` and the live sources all read their inputs through here, so a file one of
them takes is a file all of them take.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from realtime.errors import SwapcamError
from realtime.native import quiet_native_logs
from realtime.types import Image

log = logging.getLogger("swapcam.media")

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".y4m", ".mpg", ".mpeg", ".wmv", ".flv")
MEDIA_EXTS = IMAGE_EXTS + VIDEO_EXTS


def media_kind(path: str | Path) -> str | None:
    """'image' or 'video' by the file's extension (case-insensitive); None for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTS:
        return "image"
    if suffix in VIDEO_EXTS:
        return "video"
    return None


def to_bgr8(image: np.ndarray) -> Image:
    """Any decoded image (grey, grey+alpha, BGR, BGRA; 8/16-bit integer or float in 0..1) as HxWx3 uint8 BGR."""
    if image.dtype == np.uint16:
        image = (image.astype(np.uint32) * 255 + 32767) // 65535
    elif image.dtype.kind == "f":
        image = np.clip(np.nan_to_num(image) * 255.0 + 0.5, 0, 255)
    image = image.astype(np.uint8, copy=False)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if channels == 2:  # grey + alpha
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if channels == 4:  # alpha dropped: faces are opaque, and a premultiplied edge is not worth a composite
        return np.ascontiguousarray(image[:, :, :3])
    return np.ascontiguousarray(image[:, :, :3])


def read_image(path: str | Path) -> Image | None:
    """The image as HxWx3 uint8 BGR, or None when OpenCV cannot decode the file (any bit depth; alpha dropped)."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # imdecode handles non-ASCII paths, imread does not on Windows
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        return None
    return to_bgr8(image)


def open_video(path: str | Path) -> cv2.VideoCapture:
    """An OpenCV capture of a video file, FFmpeg's own complaints silenced (we say what went wrong in one line)."""
    quiet_native_logs()
    return cv2.VideoCapture(str(path))


def capture_frames(cap: cv2.VideoCapture, start: int = 0) -> Iterator[tuple[int, Image]]:
    """(frame index, frame) from an open capture, from ``start`` on, until it stops decoding."""
    index = 0
    while index < start:  # grab() skips without decoding to BGR; seeking by CAP_PROP_POS_FRAMES is inexact
        if not cap.grab():
            return
        index += 1
    while True:
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        yield index, frame
        index += 1


def video_frames(
    path: str | Path, every: int = 1, max_frames: int | None = None, start: int = 0
) -> Iterator[tuple[int, Image]]:
    """(frame index, frame) for every ``every``-th frame. Raises SwapcamError naming the file if none decodes."""
    if every < 1:
        raise SwapcamError(f"every={every}: expected >= 1")
    cap = open_video(path)
    try:
        taken = 0
        any_read = False
        for index, frame in capture_frames(cap, start):
            any_read = True
            if index % every:
                continue
            yield index, frame
            taken += 1
            if max_frames is not None and taken >= max_frames:
                return
        if not any_read:
            raise SwapcamError(f"{path}: not a readable image or video")
    finally:
        cap.release()


def video_length(path: str | Path) -> int | None:
    """Frame count the container claims, or None when it does not say."""
    cap = open_video(path)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    return n if n > 0 else None


def expand_inputs(inputs: Iterable[str | Path], recursive: bool = True) -> list[Path]:
    """Files as given (whatever their extension: the caller decides); folders expand to the images and videos
    inside them, searched recursively and sorted. A folder holding none is warned about and skipped."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            media = sorted(p for p in found if p.is_file() and media_kind(p) is not None)
            if not media:
                log.warning("warning: folder %s holds no images or videos; skipped", path)
            paths.extend(media)
        else:
            paths.append(path)
    return paths
