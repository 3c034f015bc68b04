"""face-alignment's 2D FAN (Bulat & Tzimiropoulos 2017): 68 iBUG points, the landmarks the design uses for training
data. Optional (train extra): needs torch, the ``face-alignment`` package and its weights.

Weights are loaded the library's usual way: ``face_alignment.FaceAlignment`` reads them from the torch hub cache
(``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``), downloading them when absent. swapcam
never downloads at run time: if a file is missing, :class:`FanDetector` raises a one-line SwapcamError saying which
file to put where (see :func:`fan_weight_files`).

Face boxes: ``face_detector="sfd"`` (default) uses the library's own S3FD detector (one more weight file);
``face_detector="mediapipe"`` takes the boxes from mediapipe's bundled face detector instead and hands them to FAN
(the library's ``detected_faces`` argument), so only the FAN weights are needed.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from realtime.errors import SwapcamError
from realtime.native import quiet_native_logs
from realtime.types import Face, Image, check_image

FACE_DETECTORS = ("sfd", "mediapipe")


def _hub_checkpoint_dir() -> Path:
    import torch.hub

    # The same folder face_alignment.utils.load_file_from_url and torch.hub.load_state_dict_from_url use.
    return Path(torch.hub.get_dir()) / "checkpoints"


def fan_weight_files(face_detector: str = "sfd") -> dict[str, Path]:
    """Where face-alignment looks for its weights: name -> path in the torch hub cache. File names come from the
    library's own URL tables, so they follow the installed version."""
    from face_alignment import api

    ckpt = _hub_checkpoint_dir()
    files = {"2DFAN-4": ckpt / os.path.basename(urlparse(api.models_urls["2DFAN-4"]).path)}
    if face_detector == "sfd":
        from face_alignment.detection.sfd import sfd_detector

        files["s3fd"] = ckpt / os.path.basename(urlparse(sfd_detector.models_urls["s3fd"]).path)
    return files


def fan_weight_urls(face_detector: str = "sfd") -> dict[str, str]:
    from face_alignment import api

    urls = {"2DFAN-4": api.models_urls["2DFAN-4"]}
    if face_detector == "sfd":
        from face_alignment.detection.sfd import sfd_detector

        urls["s3fd"] = sfd_detector.models_urls["s3fd"]
    return urls


class FanDetector:
    """FAN landmarks. ``detect(bgr) -> list[Face]`` with 68 iBUG points; raw = the same 68 points (FAN's own)."""

    def __init__(
        self,
        max_faces: int = 1,
        face_detector: str = "sfd",
        device: str | None = None,
        flip_input: bool = True,
        min_confidence: float = 0.5,
    ) -> None:
        if max_faces < 1:
            raise ValueError(f"max_faces={max_faces}, expected >= 1")
        if face_detector not in FACE_DETECTORS:
            raise SwapcamError(f"face_detector={face_detector!r}; choose from {', '.join(FACE_DETECTORS)}")
        try:
            import face_alignment
            import torch
        except ImportError as exc:
            raise SwapcamError(
                f"the fan landmark backend needs torch and face-alignment (pip install 'swapcam[train]'): {exc}"
            ) from None
        files = fan_weight_files(face_detector)
        missing = [name for name, path in files.items() if not path.is_file()]
        if missing:
            urls = fan_weight_urls(face_detector)
            where = "; ".join(f"{urls[name]} -> {files[name]}" for name in missing)
            raise SwapcamError(
                f"face-alignment weights not found (swapcam does not download at run time); "
                f"put them in the torch hub cache (TORCH_HOME): {where}"
            )
        self.max_faces = max_faces
        self.face_detector = face_detector
        self.min_confidence = float(min_confidence)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self._fa = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D,
                device=self.device,
                flip_input=flip_input,
                # 'folder' is the library's "boxes come from elsewhere" detector: it loads no weights.
                face_detector="sfd" if face_detector == "sfd" else "folder",
                compile=False,  # torch.compile needs a compiler toolchain and minutes of warm-up on CPU
            )
        except Exception as exc:  # torch.load / load_state_dict on a truncated or foreign file: many types
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise SwapcamError(
                f"face-alignment weights in {_hub_checkpoint_dir()} could not be loaded ({first}); "
                f"delete and replace: {', '.join(str(p) for p in files.values())}"
            ) from None
        self._mp_faces = None
        if face_detector == "mediapipe":
            quiet_native_logs()
            import mediapipe as mp

            self._mp_faces = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=min_confidence
            )
        self._torch = torch
        self._closed = False

    def _boxes(self, rgb: np.ndarray) -> list[np.ndarray]:
        """[x0, y0, x1, y1, score] per face, best first, at most max_faces, clipped to the image."""
        h, w = rgb.shape[:2]
        if self._mp_faces is not None:
            result = self._mp_faces.process(rgb)
            boxes = []
            for det in result.detections or []:
                rb = det.location_data.relative_bounding_box
                boxes.append(
                    [
                        rb.xmin * w,
                        rb.ymin * h,
                        (rb.xmin + rb.width) * w,
                        (rb.ymin + rb.height) * h,
                        float(det.score[0]) if det.score else 1.0,
                    ]
                )
        else:
            boxes = [list(map(float, b[:5])) for b in self._fa.face_detector.detect_from_image(rgb.copy())]
        out = []
        for x0, y0, x1, y1, score in sorted(boxes, key=lambda b: -b[4]):
            x0, x1 = np.clip([x0, x1], 0, w - 1)
            y0, y1 = np.clip([y0, y1], 0, h - 1)
            if x1 - x0 < 4 or y1 - y0 < 4 or score < self.min_confidence:
                continue
            out.append(np.array([x0, y0, x1, y1, score], np.float32))
            if len(out) == self.max_faces:
                break
        return out

    def detect(self, image: Image) -> list[Face]:
        if self._closed:
            raise RuntimeError("FanDetector is closed")
        check_image(image, "image")
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # face-alignment expects RGB arrays
        boxes = self._boxes(rgb)
        if not boxes:
            return []
        landmarks, scores, _ = self._fa.get_landmarks_from_image(rgb, detected_faces=boxes, return_landmark_score=True)
        faces = []
        for points, point_scores in zip(landmarks or [], scores or [], strict=True):
            points = np.asarray(points, dtype=np.float32)[:, :2]
            if points.shape != (68, 2) or not np.all(np.isfinite(points)):
                continue
            confidence = float(np.clip(np.mean(point_scores), 0.0, 1.0)) if np.size(point_scores) else 0.0
            faces.append(Face(landmarks=points.copy(), raw=points.copy(), confidence=confidence))
        return faces

    def warmup(self) -> None:
        """Nothing to do: FAN loads its weights in the constructor and prints nothing on its first run."""

    def close(self) -> None:
        if not self._closed:
            if self._mp_faces is not None:
                self._mp_faces.close()
            self._fa = None
            self._closed = True

    def __enter__(self) -> FanDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
