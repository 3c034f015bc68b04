"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target, so a reader (or a crash
midway) sees the old file or the new one, never half of one. Used for crops, facesets, checkpoints, models, JSON."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from realtime.errors import SwapcamError


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating the folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; crops, checkpoints and models are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_png(path: str | Path, image: np.ndarray) -> Path:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise SwapcamError(f"could not encode PNG for {path}")
    return atomic_write_bytes(path, buf.tobytes())


def atomic_write_json(path: str | Path, data: object, indent: int = 1) -> Path:
    return atomic_write_bytes(path, (json.dumps(data, indent=indent) + "\n").encode())
