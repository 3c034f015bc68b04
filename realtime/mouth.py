"""The user's own mouth: as the camera's mouth opens, the mouth (lips, teeth, tongue, the dark inside) comes from
the camera frame, so speech stays real; closed, the swap's own lips are kept.

A swap model trained on few expressions draws a mouth that barely opens (its decoder never saw B speak); the
camera has the real thing, already in place: the swapped face is pasted along the camera's own landmarks. The mouth
(the outer lip polygon, 68-point 48..59, grown a little), feathered, is blended back from the camera: the inner lips
alone are not enough, since the model's own lower lip stays where a closed mouth has it.

How much of the camera's mouth shows follows the opening beyond the person's own resting lip gap (the expression
neutral's openness floor, realtime.follow.resting_openness: lips that rest parted are not an open mouth): none up
to FADE_FROM beyond it, all of it from FADE_TO, a straight ramp between, so the output's mouth opens and closes with
the camera's frame by frame. (It used to be all or nothing at an openness of OPEN_AT with hysteresis, which opened
late, closed late and left a slightly open mouth shut; then a ramp on the absolute openness, which asked a
closed-mouth person to open further than one whose lips rest parted. Mouth r against the truth clips' drawn gap:
0.85 -> 0.90 on the astronaut, -0.15 -> 0.58 on Grace Hopper; carphone camera r 0.962 -> 0.977; README
"Expression".) A ramp has no threshold to flicker across, so it needs no state.

Openness is the mean inner-lip gap over the eye-centre distance (0 closed, ~0.3 wide open); `swapcam eval` measures
expression fidelity with the same function.
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.landmarks.measures import OUTER_LIPS, eye_distance, mouth_openness
from realtime.types import Image

MOUTH_MODES = ("auto", "keep", "swap")  # auto: camera's mouth as it opens; keep: always the camera's; swap: never
FADE_FROM = 0.03  # opening beyond the person's resting lip gap from which the camera's mouth starts to show ...
FADE_TO = 0.15  # ... and from which it is all the camera's (measured: 0.05 .. 0.15 gave the same, README)
OPEN_AT = 0.22  # an openness that counts as an open mouth (enrolment's coverage meter, realtime.coverage)


class MouthGate:
    """How much of the camera's mouth a face gets, from this frame's landmarks alone."""

    def __init__(self, mode: str = "auto") -> None:
        if mode not in MOUTH_MODES:
            raise ValueError(f"mouth mode {mode!r}; choose from {', '.join(MOUTH_MODES)}")
        self.mode = mode

    def amount(self, landmarks: np.ndarray, resting: float = 0.0) -> float:
        """0..1: how much of the camera's mouth this face gets this frame (0 = the swap's own lips). ``resting``:
        the person's own resting inner-lip gap (realtime.follow.resting_openness); only the opening beyond it
        counts."""
        if self.mode != "auto":
            return 1.0 if self.mode == "keep" else 0.0
        opening = mouth_openness(landmarks) - resting
        return float(np.clip((opening - FADE_FROM) / (FADE_TO - FADE_FROM), 0.0, 1.0))


def paste_camera_mouth(
    out: Image, camera: Image, landmarks: np.ndarray, amount: float = 1.0
) -> tuple[int, int, int, int] | None:
    """Blend the camera's mouth (lips and inside) into ``out`` (in place) by ``amount`` (0..1), inside the mouth's
    own box only. Returns the box (x0, y0, x1, y1) touched, or None when the mouth is outside the frame."""
    d = eye_distance(landmarks)
    # The whole mouth, lips included: a model that never opened its mouth draws its lower lip where a closed mouth
    # has it, so the camera's inner mouth alone would show a dark gap above a shut lip. Grown a little so the blend
    # falls on skin, which colour transfer has already matched to the camera.
    pts = landmarks[list(OUTER_LIPS)].astype(np.float64)
    centre = pts.mean(axis=0)
    grown = centre + (pts - centre) * 1.08
    feather = max(1.0, 0.04 * d)
    pad = int(np.ceil(3 * feather)) + 2
    h, w = out.shape[:2]
    x0, y0 = np.floor(grown.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(grown.max(axis=0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
    poly = np.round((grown - [x0, y0]) * 4).astype(np.int32)  # 2 fractional bits: sub-pixel polygon edges
    cv2.fillPoly(alpha, [poly], 1.0, lineType=cv2.LINE_AA, shift=2)
    alpha = cv2.GaussianBlur(alpha, (0, 0), feather)[..., None] * np.float32(amount)
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = region + alpha * (camera[y0:y1, x0:x1].astype(np.float32) - region)
    out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return x0, y0, x1, y1
