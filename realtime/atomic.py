"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target, so a reader (or a crash
midway) sees the old file or the new one, never half of one. Used for crops, facesets, checkpoints, models, JSON."""

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


def atomic_write_png(path: str | Path, image: np.ndarray) -> Path:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise SwapcamError(f"could not encode PNG for {path}")
    return atomic_write_bytes(path, buf.tobytes())


def atomic_write_json(path: str | Path, data: object, indent: int = 1) -> Path:
    return atomic_write_bytes(path, (json.dumps(data, indent=indent) + "\n").encode())
