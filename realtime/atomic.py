"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target, so a reader (or a crash
midway) sees the old file or the new one, never half of one. Used for crops, facesets, checkpoints, models, JSON and
contact sheets."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from realtime.errors import SwapcamError

FILE_MODE = 0o644  # mkstemp makes 0600; crops, checkpoints and models are meant to be shared


@contextlib.contextmanager
def atomic_replace(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for the block to write. When the block ends normally the temp file is
    fsynced and renamed over ``path``; when it raises, the temp file is removed and ``path`` is left as it was.

    For writes that must be checked before they count (an exported model's parity), and the building block of
    :func:`atomic_write_bytes`. The folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # os.chmod, not os.fchmod: Windows has no fchmod before Python 3.13 (there chmod only sets read-only)
        os.chmod(tmp, FILE_MODE)
        with open(tmp, "r+b") as f:  # opened for writing: Windows' fsync (_commit) refuses a read-only handle
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating the folder); returns the path."""
    with atomic_replace(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
JPEG_MAX_BYTES = 300 * 1024  # a contact sheet a clone can carry
JPEG_QUALITY_START, JPEG_QUALITY_FLOOR, JPEG_QUALITY_STEP = 88, 60, 4
JPEG_SHRINK = 0.8  # per step, once the quality floor is still too big


def _encode(ext: str, image: np.ndarray, params: list[int], path: str | Path) -> bytes:
    try:
        ok, buf = cv2.imencode(ext, image, params)
    except cv2.error as e:
        raise SwapcamError(f"could not encode {path}: {str(e).strip().splitlines()[0]}") from None
    if not ok:
        raise SwapcamError(f"could not encode {path}")
    return buf.tobytes()


def encode_jpeg(image: np.ndarray, path: str | Path = "image", max_bytes: int = JPEG_MAX_BYTES) -> bytes:
    """JPEG bytes of at most ``max_bytes``: quality 88 stepping down to 60, then the image shrunk by 0.8 a step."""
    quality = JPEG_QUALITY_START
    while True:
        data = _encode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality], path)
        if len(data) <= max_bytes:
            return data
        if quality > JPEG_QUALITY_FLOOR:
            quality = max(JPEG_QUALITY_FLOOR, quality - JPEG_QUALITY_STEP)
            continue
        h, w = image.shape[:2]
        if h == 1 and w == 1:  # cannot happen for any sane max_bytes; keeps the loop finite
            raise SwapcamError(f"could not encode {path} in {max_bytes} bytes")
        size = (max(1, round(w * JPEG_SHRINK)), max(1, round(h * JPEG_SHRINK)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def atomic_write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a BGR (or grey) uint8 image to ``path`` atomically; the suffix picks the format: ``.png`` lossless,
    ``.jpg`` / ``.jpeg`` as JPEG of at most 300 KB (see :func:`encode_jpeg`). Returns the path.

    Nothing is written unless the image encodes; an existing file is replaced whole or left as it was.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise SwapcamError(
            f"{path}: cannot write an image as {suffix or 'a file without a suffix'} (use .png, .jpg, .jpeg)"
        )
    # OpenCV would quietly cast other depths to 8 bits (floats in 0..1 come out black); PNG also holds 16 bits
    allowed = (np.uint8, np.uint16) if suffix == ".png" else (np.uint8,)
    if image.dtype not in allowed:
        raise SwapcamError(f"{path}: image is {image.dtype}, expected {' or '.join(np.dtype(d).name for d in allowed)}")
    data = _encode(".png", image, [], path) if suffix == ".png" else encode_jpeg(image, path)
    return atomic_write_bytes(path, data)


def atomic_write_png(path: str | Path, image: np.ndarray) -> Path:
    """PNG whatever ``path``'s suffix says (crops, previews); :func:`atomic_write_image` picks by suffix."""
    return atomic_write_bytes(path, _encode(".png", image, [], path))


def atomic_write_json(path: str | Path, data: object, indent: int = 1) -> Path:
    return atomic_write_bytes(path, (json.dumps(data, indent=indent) + "\n").encode())
