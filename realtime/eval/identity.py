"""Identity by a face-recognition network nobody here trained: dlib's ResNet face descriptor (the model behind the
``face_recognition`` package), for `swapcam eval`. Needs the `eval` extra (dlib-bin + face-recognition-models); the
live path imports it only for ``--faces match:IMAGE`` (realtime.selection, in a background thread).

How a face becomes a descriptor (``FaceRecognizer.descriptor``):

1. A box. Given our 68 iBUG landmarks, the box dlib's HOG frontal detector would have drawn, predicted from the
   landmarks' bounding box (see ``landmark_rectangle``); without landmarks, dlib's own HOG frontal detector
   (upsampled once, the largest face).
2. Five points. dlib's 5-point shape predictor (eye corners and the bottom of the nose) run inside that box.
3. The chip. dlib's ``compute_face_descriptor`` fits a similarity (rotation, uniform scale, translation; least
   squares) from the five points to its mean-face template and cuts a 150x150 RGB chip with 25 % padding around the
   template (bilinear, pyramid-downsampled first when the face is much larger): pose in the image plane and size are
   gone, as in dlib's training.
4. The network. A 29-layer ResNet maps the chip to 128 numbers (float64 here). ``num_jitters=0``: the chip is used
   once, unjittered, so a descriptor is deterministic.

Distances are plain Euclidean, dlib's convention: below 0.6 is dlib's "same person" line (99.38 % on LFW). The
descriptor is not perfectly steady: moving the five points by one pixel moves it by 0.06-0.12 on the sample
portraits, so single-frame distances carry that much noise; ``identity_block`` reports medians over frames.

The model files are found in the installed face_recognition_models package folder without importing it: its
``__init__`` imports ``pkg_resources``, which setuptools >= 81 no longer ships.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from realtime.errors import SwapcamError
from realtime.types import Image

INSTALL_HINT = "pip install 'swapcam[eval]'  (dlib-bin + face-recognition-models)"
SAME_PERSON = 0.6  # dlib's same-person line for its descriptor distance
REFERENCE_FACES = 32  # faces averaged into a reference descriptor at most, evenly picked
UPSAMPLE = 1  # dlib HOG detector: upsample the image once (finds faces down to about 40 px)

MODEL_FILES = {
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "five_point": "shape_predictor_5_face_landmarks.dat",
    "sixty_eight": "shape_predictor_68_face_landmarks.dat",
}

# Landmarks' bounding box -> the box dlib's HOG frontal detector draws, measured on the two sample portraits and
# every third frame of the upscaled carphone clip (42 faces): dlib's box is square, its side 1.01 x the mean of the
# landmark box's width and height (median 0.98, sd 0.07: dlib's boxes come in pyramid-level steps), its centre
# 0.09 x the landmark box's height above the landmark box's centre (sd 0.04; the 68 points stop at the brows, dlib's
# box reaches the forehead and stops above the chin) and level with it across (mean +0.01 x width, sd 0.05).
BOX_SIDE = 1.0  # side of the square box / mean(width, height) of the landmarks' bounding box
BOX_RAISE = 0.09  # box centre above the landmarks' bounding-box centre, in bounding-box heights

T = TypeVar("T")


def model_folder() -> Path | None:
    """The ``models`` folder of the installed face_recognition_models package (found, not imported), or None."""
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        return None
    for folder in list(spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "models"
        if path.is_dir():
            return path
    return None


def missing() -> str | None:
    """None when dlib imports and the model files are present; else one line: what is missing and how to install."""
    try:
        import dlib  # noqa: F401
    except Exception as exc:  # ImportError, or a wheel whose native library does not load
        return f"dlib cannot be imported ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
    folder = model_folder()
    if folder is None:
        return f"face_recognition_models is not installed (dlib's model files); {INSTALL_HINT}"
    absent = [name for name in MODEL_FILES.values() if not (folder / name).is_file()]
    if absent:
        return f"face_recognition_models in {folder} lacks {', '.join(absent)}; reinstall: {INSTALL_HINT}"
    return None


def model_path(kind: str) -> Path:
    """Path of one of ``MODEL_FILES`` ('recognition', 'five_point', 'sixty_eight'); SwapcamError when absent."""
    problem = missing()
    if problem is not None:
        raise SwapcamError(f"face recognition for eval: {problem}")
    folder = model_folder()
    assert folder is not None  # missing() said it is there
    return folder / MODEL_FILES[kind]


def landmark_rectangle(landmarks: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the box dlib's HOG detector would draw around a face with these landmarks (68
    iBUG points, Nx2 pixels): a square of side ``BOX_SIDE`` x the mean of the landmarks' box width and height,
    centred ``BOX_RAISE`` x its height above the landmarks' box centre. Not clipped to the image (dlib reads outside
    pixels as black). ValueError for anything but a finite Nx2 array of N >= 2 points."""
    points = np.asarray(landmarks, np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 2:
        raise ValueError(f"landmarks: expected an Nx2 array of points, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("landmarks: not all finite")
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    width, height = x1 - x0, y1 - y0
    side = BOX_SIDE * (width + height) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - BOX_RAISE * height
    return (
        int(round(cx - side / 2)),
        int(round(cy - side / 2)),
        int(round(cx + side / 2)),
        int(round(cy + side / 2)),
    )


def _rgb(image_bgr: Image) -> np.ndarray:
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8:
        raise TypeError(f"image: expected a uint8 numpy array, got {getattr(image_bgr, 'dtype', type(image_bgr))}")
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"image: expected HxWx3 BGR, got shape {image_bgr.shape}")
    return np.ascontiguousarray(image_bgr[:, :, ::-1])


class FaceRecognizer:
    """dlib's HOG face detector, 5-point shape predictor and ResNet descriptor, loaded once (about 1 s, 32 MB of
    model files). SwapcamError (one line, with the install hint) when the eval extra is not installed."""

    def __init__(self, upsample: int = UPSAMPLE) -> None:
        recognition, five_point = model_path("recognition"), model_path("five_point")
        import dlib  # the eval extra; model_path has checked that it imports

        self._dlib = dlib
        self.upsample = int(upsample)
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(five_point))
        self._net = dlib.face_recognition_model_v1(str(recognition))

    def detect(self, image_bgr: Image) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) of the largest face dlib's HOG frontal detector finds, or None."""
        return self._largest_face(_rgb(image_bgr))

    def _largest_face(self, rgb: np.ndarray) -> tuple[int, int, int, int] | None:
        rects = self._detector(rgb, self.upsample)
        if not len(rects):
            return None
        best = max(rects, key=lambda r: r.area())
        return best.left(), best.top(), best.right(), best.bottom()

    def descriptor(self, image_bgr: Image, landmarks68: np.ndarray | None = None) -> np.ndarray | None:
        """dlib's 128-d descriptor (float64) of the face in ``image_bgr`` (BGR uint8); its box from ``landmarks68``
        (our 68 iBUG points, Nx2) when given, else from dlib's own detector (None when that finds no face). See the
        module doc for the steps."""
        rgb = _rgb(image_bgr)
        box = landmark_rectangle(landmarks68) if landmarks68 is not None else self._largest_face(rgb)
        if box is None:
            return None
        shape = self._shape(rgb, self._dlib.rectangle(*box))
        return np.array(self._net.compute_face_descriptor(rgb, shape, num_jitters=0), dtype=np.float64)

    def descriptors_of(self, faces: Iterable[tuple[Image, np.ndarray | None]]) -> list[np.ndarray | None]:
        """``descriptor`` of each (image, landmarks or None), in order; None where no face was found."""
        return [self.descriptor(image, landmarks) for image, landmarks in faces]


def pick_evenly(items: Sequence[T], limit: int = REFERENCE_FACES) -> list[T]:
    """At most ``limit`` items, evenly spread over the sequence (first and last included), in order."""
    if limit < 1:
        raise ValueError(f"limit={limit}: expected >= 1")
    if len(items) <= limit:
        return list(items)
    return [items[int(i)] for i in np.round(np.linspace(0, len(items) - 1, limit)).astype(int)]


def reference_descriptor(
    recognizer: FaceRecognizer,
    images: Sequence[tuple[Image, np.ndarray | None]],
    limit: int = REFERENCE_FACES,
) -> np.ndarray | None:
    """Identity B as one descriptor: the mean of the descriptors of the given faces, each (image, its 68 landmarks
    or None for dlib's own detector): one photo, or the crops of a faceset folder with their landmarks (at most
    ``limit``, evenly picked). The mean of one person's descriptors is their centre: nearer to each of them than
    they are to each other, so one odd frame weighs little. Faces where nothing is found are left out; None when
    none is found at all. Not renormalised: dlib's descriptors are compared by plain Euclidean distance."""
    found = [d for d in recognizer.descriptors_of(pick_evenly(images, limit)) if d is not None]
    if not found:
        return None
    return np.mean(np.stack(found), axis=0)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two descriptors (dlib's convention; < 0.6: the same person)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def identity_block(
    output: Sequence[np.ndarray | None],
    camera: Sequence[np.ndarray | None],
    reference_b: np.ndarray | None,
    same_person: float = SAME_PERSON,
) -> dict[str, Any]:
    """Identity of the output frames by dlib's descriptor. ``output`` and ``camera`` hold one descriptor (or None:
    no face found) per frame, aligned by frame; ``reference_b`` is identity B's (``reference_descriptor``).

    distance_to_b: median distance output -> B over frames with an output descriptor; distance_to_camera: median
    output -> that frame's camera face over frames with both; camera_to_b: median camera -> B; share_b: share of
    output frames closer to B than ``same_person``; retrieval: share of frames with both where the output is closer
    to B than to its own camera face (strictly). frames: output frames measured; frames_both: frames with both.
    Values rounded to 4 digits, None where undefined (no such frame, or no reference)."""
    if len(output) != len(camera):
        raise ValueError(f"output has {len(output)} frames, camera {len(camera)}: expected one entry per frame each")
    outs = [o for o in output if o is not None]
    both = [(o, c) for o, c in zip(output, camera, strict=True) if o is not None and c is not None]
    to_b = [distance(o, reference_b) for o in outs] if reference_b is not None else []
    cams_to_b = [distance(c, reference_b) for c in camera if c is not None] if reference_b is not None else []
    to_cam = [distance(o, c) for o, c in both]
    closer = [distance(o, reference_b) < distance(o, c) for o, c in both] if reference_b is not None else []
    return {
        "method": (
            "dlib ResNet face descriptor (face_recognition_models v1, 128-d; 5-point chip alignment, no jitter), "
            f"Euclidean distance, median over frames; < {same_person} = same person"
        ),
        "distance_to_b": _round(_median(to_b)),
        "distance_to_camera": _round(_median(to_cam)),
        "camera_to_b": _round(_median(cams_to_b)),
        "share_b": _round(_share([d < same_person for d in to_b])),
        "retrieval": _round(_share(closer)),
        "frames": len(outs),
        "frames_both": len(both),
        "threshold": same_person,
    }
