"""Which of the detected faces are swapped (``--faces``; the window's key f and the WebRTC page switch between all and
largest while the stream runs). Faces not chosen are left as the camera shows them: a painting or a second person
behind the user keeps their own face.

- ``all``: every face found, up to ``--max-faces`` (in the detector's order). The default, as before.
- ``largest``: the largest face only (largest landmark box).
- ``N``: the N largest faces.
- ``match:IMAGE``: the one face closest to the person in a reference photo, read once at start. By dlib's face
  descriptor (the face-recognition network of :mod:`realtime.eval.identity`, the ``eval`` extra) when it imports; a
  face further than dlib's same-person line (0.6) from the reference is never swapped. Without dlib, by landmark
  geometry: the 68 points aligned to the reference's by a similarity (Procrustes), the residual in units of the
  shape's size; a weak identity cue (pose and expression move it too) that still tells two people apart in the
  same pose, so the closest face is swapped whatever its distance.

How ``--max-faces`` and ``--faces`` combine: with ``all``, max-faces is how many faces the detector looks for and
swaps. With any other choice the detector looks for max(max-faces, N, :data:`SEARCH_FACES`) faces, so that it has
faces to choose from, and ``--faces`` says how many of them are swapped (largest and match: one; N: N). Looking for
more faces costs: mediapipe's tracking graph runs its face detector on every frame while it tracks fewer faces than
it looks for (measured on a 640x480 clip with one face, 2 busy cores: 4.0 ms per frame looking for 1, 6.6 ms for 4).

A choice holds: the face swapped last frame stays swapped unless another is :data:`HOLD` times larger, so two faces
of nearly one size do not flicker between swapped and not.

The descriptor never runs on every frame: it costs 80-155 ms per face on this 2-core CPU (measured 79 ms quiet,
155 ms with two other jobs running; dlib's 29-layer ResNet on a 150x150 chip), so it runs in a background thread,
once when a face appears and again every :data:`REFRESH_S` seconds, one face at a time; a face is found again frame
to frame by position (its centre within half a face width of where it was). Until its first descriptor is in (a few
frames) a new face is not swapped. Amortised at 30 fps: 80-155 ms / (30 x 10 s) = 0.3-0.5 ms of one core per frame
per face in view, off the frame path; on the frame path :meth:`FaceSelector.select` costs 30 us (match, two faces)
to 65 us (largest) per frame.
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.errors import SwapcamError
from realtime.types import Face, Image

log = logging.getLogger("swapcam.selection")

FACE_CHOICES = ("all", "largest")  # what the window's key and the WebRTC page switch between while running
MAX_COUNT = 16  # --faces N: at most this many (as --max-faces)
SEARCH_FACES = 4  # faces the detector looks for when it must choose among them
HOLD = 1.2  # the face chosen last frame stays chosen unless another is this many times larger
REFRESH_S = 10.0  # match: a face's descriptor is computed again after this long
LOST_S = 1.0  # match: a face not seen for this long is forgotten (its descriptor with it)
SAME_PERSON = 0.6  # dlib's same-person line (realtime.eval.identity.SAME_PERSON; that module is imported lazily)
FACES_HELP = "all, largest, a number N or match:IMAGE"


@dataclass(frozen=True)
class FaceRule:
    """A parsed ``--faces`` value: ``kind`` all | largest | count | match; ``count`` faces swapped (0 for all: up to
    max-faces); ``reference`` the photo of match."""

    kind: str
    count: int = 0
    reference: Path | None = None


def parse_faces(value: object) -> FaceRule:
    """The rule a ``--faces`` value names; SwapcamError naming the value (or the missing reference file)."""
    if not isinstance(value, str):
        raise SwapcamError(f"faces={value!r}; expected {FACES_HELP}")
    if value == "all":
        return FaceRule("all")
    if value == "largest":
        return FaceRule("largest", 1)
    if re.fullmatch(r"[0-9]+", value):
        count = int(value)
        if not 1 <= count <= MAX_COUNT:
            raise SwapcamError(f"faces={value}: expected a number of faces in 1..{MAX_COUNT}")
        return FaceRule("count", count)
    if value.startswith("match:"):
        path = Path(value[len("match:") :])
        if not str(path) or str(path) == ".":
            raise SwapcamError("faces=match:IMAGE needs a reference photo, e.g. match:me.jpg")
        if not path.is_file():
            raise SwapcamError(f"--faces match: reference photo {path} does not exist")
        return FaceRule("match", 1, path)
    raise SwapcamError(f"faces={value!r}; expected {FACES_HELP}")


def search_count(value: str, max_faces: int) -> int:
    """How many faces the detector must look for under ``--faces value`` and ``--max-faces max_faces``."""
    rule = parse_faces(value)
    return max_faces if rule.kind == "all" else max(max_faces, rule.count, SEARCH_FACES)


def face_area(face: Face) -> float:
    (x0, y0), (x1, y1) = face.landmarks.min(axis=0), face.landmarks.max(axis=0)
    return float((x1 - x0) * (y1 - y0))


def _centre_width(face: Face) -> tuple[np.ndarray, float]:
    points = np.asarray(face.landmarks, np.float64)
    low, high = points.min(axis=0), points.max(axis=0)
    return (low + high) / 2, float(max(high[0] - low[0], 1.0))


def shape_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How far two 68-point shapes are apart once position, size and rotation are taken out (orthogonal Procrustes,
    no reflection): the residual of the unit-size shapes, 0 (same shape) .. ~1.4."""
    shapes = []
    for points in (a, b):
        p = np.asarray(points, np.float64)
        p = p - p.mean(axis=0)
        shapes.append(p / max(float(np.linalg.norm(p)), 1e-9))
    p, q = shapes
    u, _, vt = np.linalg.svd(p.T @ q)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, d]) @ vt
    return float(np.linalg.norm(p @ rotation - q))


@dataclass
class _Known:
    """A face seen in the last frames (match with the descriptor): where it is, and its distance to the reference."""

    centre: np.ndarray
    width: float
    seen: float
    distance: float | None = None
    asked: float | None = None  # when its descriptor was last asked for
    pending: bool = False


@dataclass
class Reference:
    """The person to match: the photo's landmarks (68 points) and, with dlib, its descriptor."""

    path: Path
    landmarks: np.ndarray
    descriptor: np.ndarray | None = None
    recognizer: object | None = field(default=None, repr=False)

    @classmethod
    def read(cls, path: Path, use_descriptor: bool | None = None) -> Reference:
        """Read the photo and find its (largest) face; SwapcamError naming the file when it cannot be read or has no
        face. ``use_descriptor``: None = dlib's descriptor when it imports, False = landmark geometry only."""
        from realtime.landmarks import create_detector
        from realtime.media import read_image

        image = read_image(path)
        if image is None:
            raise SwapcamError(f"--faces match: cannot read the reference photo {path} (not an image OpenCV reads)")
        detector = create_detector("mediapipe", mode="static", max_faces=SEARCH_FACES)
        try:
            faces = detector.detect(image)
        finally:
            detector.close()
        if not faces:
            raise SwapcamError(f"--faces match: no face found in the reference photo {path}")
        face = max(faces, key=face_area)
        reference = cls(Path(path), np.asarray(face.landmarks, np.float64))
        if use_descriptor is not False:
            from realtime.eval import identity

            problem = identity.missing()
            if problem is None:
                recognizer = identity.FaceRecognizer()
                reference.recognizer = recognizer
                reference.descriptor = recognizer.descriptor(image, face.landmarks)
                log.info("--faces match: %s by face descriptor (dlib)", path.name)
            elif use_descriptor:
                raise SwapcamError(f"--faces match: {problem}")
            else:
                log.info("--faces match: %s by landmark geometry (no face descriptor: %s)", path.name, problem)
        return reference

    def distance(self, image: Image, landmarks: np.ndarray) -> float:
        """The descriptor distance of the face at ``landmarks`` in ``image`` to the reference (the slow part)."""
        assert self.recognizer is not None and self.descriptor is not None
        found = self.recognizer.descriptor(image, landmarks)  # type: ignore[attr-defined]
        return float("inf") if found is None else float(np.linalg.norm(found - self.descriptor))


class FaceSelector:
    """Picks the faces to swap from the detected ones, frame by frame (:meth:`select`); see the module doc.
    ``close()`` stops the descriptor thread (idempotent)."""

    def __init__(self, value: str = "all", max_faces: int = 1, use_descriptor: bool | None = None) -> None:
        self.value = value
        self.rule = parse_faces(value)
        self.max_faces = max_faces
        self.search = search_count(value, max_faces)  # faces the detector looks for
        self.reference = Reference.read(self.rule.reference, use_descriptor) if self.rule.reference else None
        self._chosen: list[np.ndarray] = []  # centres of the faces chosen last frame (hysteresis)
        self._known: list[_Known] = []
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.RLock()  # a future done before its callback is added calls it at once, locked
        self._closed = False
        self.descriptors = 0  # descriptors computed (match), for tests and the curious

    @property
    def by_descriptor(self) -> bool:
        return self.reference is not None and self.reference.descriptor is not None

    def select(self, image: Image, faces: list[Face], t: float) -> list[Face]:
        """The faces to swap in this frame, from ``faces`` (the detector's); ``t`` the frame's time in seconds."""
        if self.rule.kind == "all":
            return faces[: self.max_faces]
        if self.rule.kind == "match":
            return self._match(image, faces, t)
        return self._largest(faces, self.rule.count)

    # -- largest, N largest
    def _largest(self, faces: list[Face], count: int) -> list[Face]:
        if len(faces) <= count:
            chosen = list(faces)
        else:
            scores = [face_area(f) * (HOLD if self._was_chosen(f) else 1.0) for f in faces]
            order = sorted(range(len(faces)), key=lambda i: -scores[i])[:count]
            chosen = [faces[i] for i in sorted(order)]  # in the detector's order
        self._chosen = [_centre_width(f)[0] for f in chosen]
        return chosen

    def _was_chosen(self, face: Face) -> bool:
        centre, width = _centre_width(face)
        return any(float(np.linalg.norm(centre - c)) < 0.5 * width for c in self._chosen)

    # -- match
    def _match(self, image: Image, faces: list[Face], t: float) -> list[Face]:
        reference = self.reference
        assert reference is not None
        if not faces:
            return []
        if not self.by_descriptor:
            distances = [shape_distance(f.landmarks, reference.landmarks) for f in faces]
            return [faces[int(np.argmin(distances))]]
        best: tuple[float, Face] | None = None
        with self._lock:
            known = self._track(faces, t)
            for face, entry in zip(faces, known, strict=True):
                due = entry.asked is None or t - entry.asked >= REFRESH_S
                if due and not entry.pending and not any(k.pending for k in self._known):
                    self._ask(entry, image, face, t)
                if entry.distance is not None and entry.distance < SAME_PERSON:
                    if best is None or entry.distance < best[0]:
                        best = (entry.distance, face)
        return [] if best is None else [best[1]]

    def _track(self, faces: list[Face], t: float) -> list[_Known]:
        """Each face's entry (found by position, else new); entries not seen for LOST_S are forgotten."""
        free = [k for k in self._known if t - k.seen <= LOST_S]
        out = []
        for face in faces:
            centre, width = _centre_width(face)
            near = [(float(np.linalg.norm(centre - k.centre)), k) for k in free]
            near = [(d, k) for d, k in near if d < 0.5 * max(width, k.width)]
            if near:
                entry = min(near, key=lambda pair: pair[0])[1]
                free.remove(entry)
                entry.centre, entry.width, entry.seen = centre, width, t
            else:
                entry = _Known(centre, width, t)
            out.append(entry)
        self._known = out + [k for k in free if t - k.seen <= LOST_S]
        return out

    def _ask(self, entry: _Known, image: Image, face: Face, t: float) -> None:
        """Compute ``face``'s descriptor in the background; the entry gets its distance when it is done."""
        if self._closed:
            return
        # a crop around the face (1.5 face widths each side): the thread must not hold on to the whole frame
        x0, y0, x1, y1 = face.bbox
        margin = int(1.5 * max(x1 - x0, y1 - y0))
        h, w = image.shape[:2]
        cx0, cy0 = max(0, x0 - margin), max(0, y0 - margin)
        crop = np.ascontiguousarray(image[cy0 : min(h, y1 + margin), cx0 : min(w, x1 + margin)])
        points = np.asarray(face.landmarks, np.float64) - (cx0, cy0)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="swapcam-faceid")
        entry.pending, entry.asked = True, t
        reference = self.reference
        assert reference is not None
        try:
            future = self._pool.submit(reference.distance, crop, points)
        except RuntimeError:  # closed meanwhile
            entry.pending = False
            return
        future.add_done_callback(lambda done: self._answered(entry, done))

    def _answered(self, entry: _Known, done: Future) -> None:
        if self._closed:
            return
        with self._lock:
            entry.pending = False
            self.descriptors += 1
            try:
                entry.distance = float(done.result())
            except Exception as exc:  # one face's descriptor failed: that face is not swapped, the stream goes on
                log.warning("--faces match: a face's descriptor failed (%s: %s)", type(exc).__name__, exc)
                entry.distance = float("inf")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
