"""A faceset: one folder per identity holding aligned PNG crops and ``faces.json``.

``faces.json`` (written by ``swapcam extract``, always atomically)::

    {"version": 1, "size": 256, "coverage": 1.6, "template": "swapcam-ibug68-v1", "landmarks_backend": "mediapipe",
     "sources": {"<path>": {"fingerprint": "...", "done": true, "next_frame": 120, "frames": 120,
                            "faces": 80, "no_face": 3, "duplicates": 37, "errors": 0}},
     "faces": [{"file": "clip_3f2a_000012_0.png", "source": "<path>", "frame": 12,
                "landmarks": [[x, y] x 68] (crop pixels), "matrix": [[a, b, c], [d, e, f]] (frame -> crop)}]}

Training reads it with :func:`load_faceset`, which checks every file and raises one-line SwapcamErrors naming the
culprit (empty faceset, crops of mixed sizes, unreadable PNG).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.align import DEFAULT_COVERAGE, EYES_IDX, MOUTH_IDX, TEMPLATE_NAME
from realtime.errors import SwapcamError
from realtime.media import read_image

FACES_JSON = "faces.json"
FACESET_VERSION = 1


def empty_index(size: int, coverage: float, backend: str) -> dict:
    return {
        "version": FACESET_VERSION,
        "size": size,
        "coverage": coverage,
        "template": TEMPLATE_NAME,
        "landmarks_backend": backend,
        "sources": {},
        "faces": [],
    }


def read_index(folder: str | Path) -> dict:
    """Read ``faces.json`` of a faceset folder, raising a SwapcamError naming the folder or file when it is bad."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SwapcamError(f"faceset {folder} does not exist or is not a folder")
    path = folder / FACES_JSON
    if not path.exists():
        raise SwapcamError(f"faceset {folder} has no {FACES_JSON}; build it with `swapcam extract ... --out {folder}`")
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SwapcamError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(index, dict) or not isinstance(index.get("faces"), list):
        raise SwapcamError(f"{path} has no 'faces' list; not a swapcam faceset")
    return index


@dataclass
class Faceset:
    """A faceset loaded for training, resized to the model's size."""

    folder: Path
    images: np.ndarray  # N x S x S x 3 uint8 BGR
    landmarks: np.ndarray  # N x 68 x 2 float32, in the resized crop's pixels
    coverage: float

    def __len__(self) -> int:
        return len(self.images)


def load_faceset(folder: str | Path, size: int) -> Faceset:
    """Load every crop of a faceset resized to ``size`` with its landmarks; checks sizes and readability."""
    folder = Path(folder)
    index = read_index(folder)
    faces = index["faces"]
    if not faces:
        raise SwapcamError(f"faceset {folder} is empty (no faces in {FACES_JSON}); extract faces first")
    stored_cov = float(index.get("coverage", DEFAULT_COVERAGE))
    if index.get("template", TEMPLATE_NAME) != TEMPLATE_NAME:
        raise SwapcamError(f"faceset {folder} uses template {index.get('template')!r}, expected {TEMPLATE_NAME!r}")
    images, marks = [], []
    crop_size = None
    for entry in faces:
        path = folder / str(entry.get("file", ""))
        image = read_image(path) if path.is_file() else None
        if image is None:
            raise SwapcamError(f"faceset {folder}: crop {path.name} is missing or not a readable image")
        h, w = image.shape[:2]
        if h != w:
            raise SwapcamError(f"faceset {folder}: crop {path.name} is {w}x{h}, crops must be square")
        if crop_size is None:
            crop_size = h
        elif h != crop_size:
            raise SwapcamError(
                f"faceset {folder}: crop {path.name} is {w}x{h} but earlier crops are "
                f"{crop_size}x{crop_size}; crops of mixed sizes (re-extract into an empty folder)"
            )
        lm = np.asarray(entry.get("landmarks"), dtype=np.float32)
        if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
            raise SwapcamError(f"faceset {folder}: face {path.name} has landmarks of shape {lm.shape}, expected 68x2")
        scale = size / h
        if h != size:
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if h > size else cv2.INTER_LINEAR)
        images.append(image)
        # pixel centres: x_new + 0.5 = (x_old + 0.5) * scale
        marks.append((lm + 0.5) * scale - 0.5)
    return Faceset(folder, np.stack(images), np.stack(marks).astype(np.float32), stored_cov)


def priority_map(landmarks: np.ndarray, size: int, eyes: float = 3.0, mouth: float = 2.0) -> np.ndarray:
    """Per-pixel loss weight: 1 everywhere, ``eyes`` on the eye+brow region and ``mouth`` on the mouth region.

    Eyes and mouth carry identity and expression but cover few pixels, so an unweighted loss lets them blur.
    """
    weight = np.ones((size, size), np.float32)
    pad = max(1.0, size / 40.0)  # grow the regions a little: the loss should cover the lids and lips' edges
    for idx, value in ((EYES_IDX, eyes), (MOUTH_IDX, mouth)):
        region = np.zeros((size, size), np.uint8)
        for part in (idx[:6], idx[6:]) if idx is EYES_IDX else (idx,):
            pts = landmarks[part]
            centre = pts.mean(axis=0)
            grown = centre + (pts - centre) * 1.35 + np.sign(pts - centre) * pad
            hull = cv2.convexHull(np.round(grown * 16).astype(np.int32))
            cv2.fillConvexPoly(region, hull, 1, lineType=cv2.LINE_8, shift=4)
        weight[region > 0] = value
    return weight
