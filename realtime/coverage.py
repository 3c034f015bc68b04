"""Guided capture for enrolment (`swapcam enroll`, the WebRTC page's "use my face"): what the camera has shown of a
person so far, and whether a frame's face is good enough to learn from. numpy + OpenCV only, so the live path (the
server, the window) can draw the meter without torch.

- :class:`CoverageMeter`: head poses (yaw x pitch, 3 x 3) and expressions (neutral, mouth open, smile, eyes closed)
  seen so far, the share filled and the next prompt ("turn your head a little to your left"); :func:`draw_coverage`
  draws it on a frame.
- :class:`QualityGate`: rejects blurry, too dark, over-exposed, partial (cut by the frame edge) and too small faces,
  with the reason.
- :class:`NearDuplicates`: the faceset's near-duplicate rule (training.extract drops such crops), so a capture can
  count the faces a faceset will really keep.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import cv2
import numpy as np

from realtime.align import DEFAULT_COVERAGE, align, transform_points
from realtime.compose import hull_mask
from realtime.landmarks.measures import eye_aspect_ratio, head_pose, mouth_corner_lift, mouth_openness, mouth_width
from realtime.mouth import OPEN_AT
from realtime.types import Face, Image

# ================================================================================================ coverage meter
# Head pose from the 68 landmarks (realtime.landmarks.measures.head_pose): yaw in degrees, + = the nose towards the
# image's right, i.e. the person turned to their own left (an unmirrored camera); pitch is where the nose tip sits
# between the eye line (0) and the mouth (1): lower = looking up. Pitch's neutral value depends on the face (0.37 on
# carphone, 0.55 and 0.65 on the two sample portraits), so the meter measures it from the median of what it has seen.
YAW_STEP = 10.0  # degrees off centre for the left / right columns (carphone's head turns: p10 -11, p90 +13)
PITCH_STEP = 0.05  # pitch ratio off the person's median for the up / down rows (carphone: p10 -0.07, p90 +0.07)
YAW_COLUMNS = ("right", "centre", "left")  # the person's own right / left; column 0 = nose towards the image's left
PITCH_ROWS = ("up", "level", "down")
# Expressions: mouth open beyond realtime.mouth.OPEN_AT (wide open); eyes closed below this eye aspect ratio
# (~0.25-0.33 open; mediapipe never closes its lid points fully: a shut eye reads ~0.17 in static mode, ~0.19
# tracking; see realtime.eyes); smile
# from the mouth corners lifted above the lips' middle or a wide mouth, in eye distances (neutral: carphone lift
# <= 0.07 and width <= 0.85, the 68-point template 0.10 and 0.91; the smiling astronaut 0.17 and 1.01).
EYES_CLOSED_AT = 0.2
SMILE_LIFT = 0.13
SMILE_WIDTH = 0.98
EXPRESSIONS = ("neutral", "mouth open", "smile", "eyes closed")

POSE_PROMPTS = {
    (1, 1): "look straight at the camera",
    (1, 2): "turn your head a little to your left",
    (1, 0): "turn your head a little to your right",
    (0, 1): "tilt your head up a little",
    (2, 1): "tilt your head down a little",
    (0, 2): "look up and a little to your left",
    (0, 0): "look up and a little to your right",
    (2, 2): "look down and a little to your left",
    (2, 0): "look down and a little to your right",
}
EXPRESSION_PROMPTS = {
    "mouth open": "open your mouth (say 'ah')",
    "smile": "smile",
    "eyes closed": "close your eyes for a moment",
    "neutral": "relax your face",
}
# What is asked for first when several things are missing: the frontal face, the plain turns, the expressions that
# matter most live (the mouth), then the corners of the pose grid.
PRIORITY: tuple[tuple[str, Any], ...] = (
    ("pose", (1, 1)),
    ("pose", (1, 2)),
    ("pose", (1, 0)),
    ("pose", (0, 1)),
    ("pose", (2, 1)),
    ("expression", "mouth open"),
    ("expression", "smile"),
    ("expression", "eyes closed"),
    ("expression", "neutral"),
    ("pose", (0, 2)),
    ("pose", (0, 0)),
    ("pose", (2, 2)),
    ("pose", (2, 0)),
)


def expression_of(landmarks: np.ndarray) -> str:
    """One of EXPRESSIONS for 68 landmarks (eyes closed wins over mouth open, which wins over smile)."""
    lm = np.asarray(landmarks, np.float64)
    if eye_aspect_ratio(lm) < EYES_CLOSED_AT:
        return "eyes closed"
    if mouth_openness(lm) > OPEN_AT:
        return "mouth open"
    if mouth_corner_lift(lm) >= SMILE_LIFT or mouth_width(lm) >= SMILE_WIDTH:
        return "smile"
    return "neutral"


class CoverageMeter:
    """How much of the head-pose grid (yaw x pitch, 3 x 3) and of the expressions the captured faces cover.

    ``update(landmarks)`` adds one kept face (68 x 2, frame or crop pixels: the measures are ratios, unchanged by
    scale, rotation and shift); ``fraction()`` is the share filled (each of the 9 cells and 4 expressions counts
    up to ``per_target`` faces); ``prompt()`` is what to do next, or None when full. Pure numpy: the window HUD and
    the WebRTC page can draw ``state()``.
    """

    def __init__(self, per_target: int = 5, yaw_step: float = YAW_STEP, pitch_step: float = PITCH_STEP) -> None:
        if per_target < 1:
            raise ValueError(f"per_target={per_target}, expected >= 1")
        self.per_target, self.yaw_step, self.pitch_step = per_target, yaw_step, pitch_step
        self.yaws: list[float] = []
        self.pitches: list[float] = []
        self.expressions: list[str] = []

    def update(self, landmarks: np.ndarray) -> None:
        lm = np.asarray(landmarks, np.float64)
        if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
            raise ValueError(f"landmarks of shape {lm.shape}, expected finite 68 x 2")
        yaw, pitch, _ = head_pose(lm)
        self.yaws.append(yaw)
        self.pitches.append(pitch)
        self.expressions.append(expression_of(lm))

    def __len__(self) -> int:
        return len(self.yaws)

    def pose_counts(self) -> np.ndarray:
        """3 x 3 face counts: rows PITCH_ROWS (up, level, down), columns YAW_COLUMNS (the person's right, centre,
        left)."""
        counts = np.zeros((3, 3), int)
        if not self.yaws:
            return counts
        yaw = np.asarray(self.yaws)
        pitch = np.asarray(self.pitches) - float(np.median(self.pitches))
        cols = np.where(yaw < -self.yaw_step, 0, np.where(yaw > self.yaw_step, 2, 1))
        rows = np.where(pitch < -self.pitch_step, 0, np.where(pitch > self.pitch_step, 2, 1))
        np.add.at(counts, (rows, cols), 1)
        return counts

    def expression_counts(self) -> dict[str, int]:
        return {name: self.expressions.count(name) for name in EXPRESSIONS}

    def _fills(self) -> list[tuple[float, int, str]]:
        """(fill 0..1, priority, prompt) per target."""
        poses, expressions = self.pose_counts(), self.expression_counts()
        out = []
        for rank, (kind, key) in enumerate(PRIORITY):
            count = poses[key] if kind == "pose" else expressions[key]
            text = POSE_PROMPTS[key] if kind == "pose" else EXPRESSION_PROMPTS[key]
            out.append((min(1.0, count / self.per_target), rank, text))
        return out

    def fraction(self) -> float:
        return float(np.mean([fill for fill, _, _ in self._fills()]))

    def prompt(self) -> str | None:
        """The least-filled target's instruction (ties: PRIORITY order), or None when everything is covered."""
        fill, _, text = min(self._fills())
        return None if fill >= 1.0 else text

    def missing(self) -> list[str]:
        """Instructions for every target not yet full, in PRIORITY order."""
        return [text for fill, _, text in self._fills() if fill < 1.0]

    def state(self) -> dict:
        """JSON-ready: faces, fraction, prompt, the pose grid and expression counts (for a HUD or a web page)."""
        return {
            "faces": len(self),
            "fraction": round(self.fraction(), 3),
            "prompt": self.prompt(),
            "pose_rows": list(PITCH_ROWS),
            "pose_columns": list(YAW_COLUMNS),
            "pose_counts": self.pose_counts().tolist(),
            "expressions": self.expression_counts(),
            "per_target": self.per_target,
        }


def _darken(frame: Image, x0: int, y0: int, x1: int, y1: int) -> None:
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = (frame[y0:y1, x0:x1] * np.float32(0.35)).astype(np.uint8)


def draw_coverage(frame: Image, meter: CoverageMeter, mirrored: bool = True) -> None:
    """The meter on a preview frame (IN PLACE): top right, the pose grid (a cell brightens as it fills;
    ``mirrored``: the preview is a mirror image, so the person's left is on the screen's left) over the expressions
    (+ done, - missing); along the bottom, the filled share as a bar under the prompt."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    h, w = frame.shape[:2]
    scale = max(0.4, h / 1000.0)
    thickness = max(1, int(round(scale * 2)))
    cell = max(12, h // 24)
    line_h = cv2.getTextSize("Ag", font, scale, thickness)[0][1] + 10
    text_w = max(cv2.getTextSize(f"+ {name}", font, scale, thickness)[0][0] for name in EXPRESSIONS)
    panel_w = max(3 * cell, text_w) + 16
    x0, y0 = w - panel_w - 8, 8
    _darken(frame, x0, y0, x0 + panel_w, y0 + 3 * cell + 16 + line_h * len(EXPRESSIONS))
    counts = meter.pose_counts()
    for r in range(3):
        for c in range(3):
            fill = min(1.0, counts[r, c] / meter.per_target)
            left = x0 + 8 + (2 - c if mirrored else c) * cell
            top = y0 + 8 + r * cell
            colour = (60, int(110 + 145 * fill), 60) if fill > 0 else (125, 125, 125)
            cv2.rectangle(frame, (left, top), (left + cell - 3, top + cell - 3), colour, -1)
    y = y0 + 3 * cell + 8
    for name, count in meter.expression_counts().items():
        done = count >= meter.per_target
        y += line_h
        colour = (90, 235, 90) if done else (235, 235, 235)
        label = f"{'+' if done else '-'} {name}"
        cv2.putText(frame, label, (x0 + 8, y - 6), font, scale, colour, thickness, cv2.LINE_AA)
    fraction = meter.fraction()
    text = f"{fraction:.0%}  {meter.prompt() or 'done: every pose and expression covered'}"
    big = scale * 1.5
    (tw, th), _ = cv2.getTextSize(text, font, big, thickness + 1)
    _darken(frame, 0, h - th - 40, w, h)
    cv2.putText(frame, text, (max(10, (w - tw) // 2), h - 24), font, big, (255, 255, 255), thickness + 1, cv2.LINE_AA)
    cv2.rectangle(frame, (10, h - 14), (w - 10, h - 6), (70, 70, 70), -1)
    cv2.rectangle(frame, (10, h - 14), (10 + int((w - 20) * fraction), h - 6), (60, 220, 60), -1)


# ================================================================================================ face quality
# Measured on the face itself, aligned to a 128 px crop (scale removed), inside its landmark hull.
QUALITY_SIZE = 128
# Variance of the Laplacian: sharp synthetic faces 470-3600, carphone (a 176x144 clip upscaled to 640x480: soft but
# usable) 49-81; a Gaussian blur of sigma 3 brings carphone to ~9 and sigma 6 the astronaut to ~10. Below the floor a
# face is blurry whatever the camera; above it, a face under BLUR_RELATIVE x the median of the last accepted faces is
# motion blur on this camera.
BLUR_FLOOR = 15.0
BLUR_RELATIVE = 0.4
BLUR_HISTORY = 30
DARK_BELOW = 50.0  # mean grey level in the face (carphone ~118, the portraits 136-170; a 5x darker frame ~30)
BRIGHT_ABOVE = 215.0  # mean grey level in the face ...
CLIPPED_SHARE = 0.3  # ... or this share of it at >= 250: burnt out
MIN_FACE_SHARE = 0.5  # landmark box width at least this share of what the crop's template gives it (size / coverage)
REJECT_REASONS = ("partial", "too small", "too dark", "over-exposed", "blurry")


def face_measures(frame: Image, landmarks: np.ndarray, coverage: float = DEFAULT_COVERAGE) -> dict[str, float]:
    """sharpness (variance of the Laplacian), brightness (mean grey) and clipped share (>= 250) of the face, aligned
    to QUALITY_SIZE px and measured inside its landmark hull."""
    crop, matrix = align(frame, landmarks, QUALITY_SIZE, coverage)
    hull = hull_mask(transform_points(landmarks, matrix), QUALITY_SIZE) > 0
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    lap = cv2.Laplacian(grey, cv2.CV_64F)
    inside = grey[hull]
    return {
        "sharpness": float(lap[hull].var()),
        "brightness": float(inside.mean()),
        "clipped": float((inside >= 250).mean()),
    }


DEDUP_WINDOW = 8  # a crop is compared with this many recently kept ones ...
DEDUP_THRESHOLD = 1.0  # ... and is a near-duplicate under this mean grey difference of the 32x32 thumbnails


def thumbnail(crop: Image) -> np.ndarray:
    """32x32 grey float32 thumbnail of an aligned face crop: what near-duplicates are compared by."""
    return cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


class NearDuplicates:
    """The last DEDUP_WINDOW kept thumbnails; :meth:`keep` says whether a new crop differs from all of them by at
    least ``threshold`` mean grey levels (and remembers it if so). ``threshold`` 0 keeps everything."""

    def __init__(self, threshold: float = DEDUP_THRESHOLD, window: int = DEDUP_WINDOW) -> None:
        self.threshold = float(threshold)
        self.recent: deque[np.ndarray] = deque(maxlen=window)

    def remember(self, thumb: np.ndarray) -> None:
        self.recent.append(thumb)

    def keep(self, crop: Image) -> bool:
        thumb = thumbnail(crop)
        if self.threshold > 0 and any(float(np.abs(thumb - t).mean()) < self.threshold for t in self.recent):
            return False
        self.recent.append(thumb)
        return True


class QualityGate:
    """``gate(frame, face) -> reason | None``: why a face should not go into the faceset (one of REJECT_REASONS),
    or None to keep it. Remembers the sharpness of the faces it let through (the motion-blur reference)."""

    def __init__(self, size: int = 128, coverage: float = DEFAULT_COVERAGE) -> None:
        self.coverage = coverage
        self.min_width = MIN_FACE_SHARE * size / coverage
        self.recent: deque[float] = deque(maxlen=BLUR_HISTORY)

    def __call__(self, frame: Image, face: Face) -> str | None:
        lm = np.asarray(face.landmarks, np.float64)
        h, w = frame.shape[:2]
        if lm[:, 0].min() < 0 or lm[:, 1].min() < 0 or lm[:, 0].max() > w - 1 or lm[:, 1].max() > h - 1:
            return "partial"
        if np.ptp(lm[:, 0]) < self.min_width:
            return "too small"
        m = face_measures(frame, lm, self.coverage)
        if m["brightness"] < DARK_BELOW:
            return "too dark"
        if m["brightness"] > BRIGHT_ABOVE or m["clipped"] > CLIPPED_SHARE:
            return "over-exposed"
        if m["sharpness"] < BLUR_FLOOR or (
            len(self.recent) >= 5 and m["sharpness"] < BLUR_RELATIVE * float(np.median(self.recent))
        ):
            return "blurry"
        self.recent.append(m["sharpness"])
        return None
