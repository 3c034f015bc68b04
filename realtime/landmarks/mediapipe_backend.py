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

import os

import cv2
import numpy as np

from realtime.native import quiet_native_logs
from realtime.types import Face, Image, check_image

MEDIAPIPE_TO_IBUG68 = np.array([
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,  # jaw 0-16
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301,  # brows 17-26
    168, 197, 5, 4, 75, 97, 2, 326, 305,  # nose 27-35
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # eyes 36-47
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lip 48-59
    78, 82, 13, 312, 308, 317, 14, 87,  # inner lip 60-67
])


class MediaPipeDetector:
    """FaceMesh landmarks. One instance per stream: tracking mode keeps per-stream state."""

    def __init__(self, mode: str = "static", max_faces: int = 1, min_confidence: float = 0.5) -> None:
        if mode not in ("static", "tracking"):
            raise ValueError(f"mode={mode!r}, expected 'static' or 'tracking'")
        if max_faces < 1:
            raise ValueError(f"max_faces={max_faces}, expected >= 1")
        quiet_native_logs()  # mediapipe's C++ INFO/WARNING lines are noise for users
        import mediapipe as mp

        self.mode = mode
        self.max_faces = max_faces
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=(mode == "static"),
            max_num_faces=max_faces,
            refine_landmarks=False,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        self._closed = False

    def detect(self, image: Image) -> list[Face]:
        if self._closed:
            raise RuntimeError("MediaPipeDetector is closed")
        check_image(image, "image")
        h, w = image.shape[:2]
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        result = self._mesh.process(rgb)
        faces: list[Face] = []
        for i, mesh in enumerate(result.multi_face_landmarks or []):
            raw = np.array([(p.x * w, p.y * h) for p in mesh.landmark], dtype=np.float32)
            faces.append(Face(landmarks=raw[MEDIAPIPE_TO_IBUG68].copy(), raw=raw, confidence=1.0, track_id=i))
        return faces

    def close(self) -> None:
        if not self._closed:
            self._mesh.close()
            self._closed = True

    def __enter__(self) -> "MediaPipeDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
