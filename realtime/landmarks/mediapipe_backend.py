"""mediapipe FaceMesh backend (the default): 468 points, mapped to the 68 iBUG points the rest of swapcam uses.

mediapipe 0.10.21 ships the face detector and FaceMesh models inside its wheel, so this runs offline.
``mode="static"`` runs the detector on every image (photos, extraction); ``mode="tracking"`` runs it only when the
tracked face is lost (streams; ~7 ms per 640x480 frame on a 2-core CPU).

468 -> 68 mapping: for each iBUG point, the FaceMesh vertex at the same anatomical place (jaw contour 0-16 along
the face oval, brows 17-26 on the brow's upper edge, nose bridge 27-30 down the midline to the tip, nostrils 31-35,
eye corners and lids 36-47, outer lip 48-59, inner lip 60-67). FaceMesh's oval runs a little outside the iBUG jaw at
the temples (points 0 and 16), which is why alignment fits the stable points, not the jaw.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from realtime.native import captured_native_output, quiet_native_logs
from realtime.types import Face, Image, check_image

MEDIAPIPE_TO_IBUG68 = np.array(
    [
        162,
        234,
        93,
        58,
        172,
        136,
        149,
        148,
        152,
        377,
        378,
        365,
        397,
        288,
        323,
        454,
        389,  # jaw 0-16
        71,
        63,
        105,
        66,
        107,
        336,
        296,
        334,
        293,
        301,  # brows 17-26
        168,
        197,
        5,
        4,
        75,
        97,
        2,
        326,
        305,  # nose 27-35
        33,
        160,
        158,
        133,
        153,
        144,
        362,
        385,
        387,
        263,
        373,
        380,  # eyes 36-47
        61,
        39,
        37,
        0,
        267,
        269,
        291,
        405,
        314,
        17,
        84,
        181,  # outer lip 48-59
        78,
        82,
        13,
        312,
        308,
        317,
        14,
        87,  # inner lip 60-67
    ]
)


WARMUP_SIZE = (640, 480)  # (width, height) of the blank frame that ends the warm-up track


def warmup_face() -> Image | None:
    """A real face photo to start FaceMesh on: matplotlib's bundled public-domain Grace Hopper portrait, found by
    locating the package folder (importing matplotlib, or scikit-image for the astronaut, costs seconds; this does
    not). None when matplotlib is not installed or the file cannot be read."""
    from realtime.media import read_image

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        if path.is_file():
            return read_image(path)
    return None


class MediaPipeDetector:
    """FaceMesh landmarks. One instance per stream: tracking mode keeps per-stream state.

    The FaceMesh graph starts on the first ``detect`` or in ``warmup()``, not in the constructor: starting it opens
    its TFLite models on mediapipe's own threads, which print their start-up lines some time later; only a capture
    that spans the start and the first inference catches them all.
    """

    def __init__(self, mode: str = "static", max_faces: int = 1, min_confidence: float = 0.5) -> None:
        if mode not in ("static", "tracking"):
            raise ValueError(f"mode={mode!r}, expected 'static' or 'tracking'")
        if max_faces < 1:
            raise ValueError(f"max_faces={max_faces}, expected >= 1")
        self.mode = mode
        self.max_faces = max_faces
        self.min_confidence = float(min_confidence)
        self._mesh = None
        self._closed = False

    def _start(self):
        quiet_native_logs()  # before mediapipe's first import: glog reads its level once
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=(self.mode == "static"),
            max_num_faces=self.max_faces,
            refine_landmarks=False,
            min_detection_confidence=self.min_confidence,
            min_tracking_confidence=self.min_confidence,
        )
        return self._mesh

    def detect(self, image: Image) -> list[Face]:
        if self._closed:
            raise RuntimeError("MediaPipeDetector is closed")
        check_image(image, "image")
        h, w = image.shape[:2]
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        result = (self._mesh or self._start()).process(rgb)
        faces: list[Face] = []
        for mesh in result.multi_face_landmarks or []:
            raw = np.array([(p.x * w, p.y * h) for p in mesh.landmark], dtype=np.float32)
            faces.append(Face(landmarks=raw[MEDIAPIPE_TO_IBUG68].copy(), raw=raw, confidence=1.0))
        return faces

    def warmup(self) -> None:
        """Start the graph and run it once on a face, then once on an empty frame, with native output captured.

        mediapipe's C++ side prints its start-up lines (XNNPACK delegate, feedback manager) while its models open
        and a landmark_projection_calculator warning on the first face; glog's level does not cover them all. The
        empty frame ends the warm-up face's track, so in tracking mode the first real frame starts with detection.
        """
        if self._closed:
            raise RuntimeError("MediaPipeDetector is closed")
        face = warmup_face()
        blank = np.zeros((WARMUP_SIZE[1], WARMUP_SIZE[0], 3), np.uint8) if face is None else np.zeros_like(face)
        with captured_native_output():
            if face is not None:
                self.detect(face)
            self.detect(blank)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._mesh is not None:
                self._mesh.close()
                self._mesh = None

    def __enter__(self) -> MediaPipeDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
