"""Match the swapped face's sharpness to the camera's: ``--sharpen match``.

A swap model draws its face at its own resolution (128 px for rt128), whatever the camera delivers: a soft or
low-resolution camera (a 176x144 clip upscaled to 640x480, a cheap webcam, a video call's compressed stream) gets
a face that is crisper than the cheeks, hair and background around it. It reads as pasted, and it shimmers as the
head moves: its fine edges (glasses, wrinkles) change the pixels under them more from frame to frame than the
camera's own soft face does (on the upscaled carphone clip the default model's flicker excess was 1.2 grey levels;
a 0.6 px blur of the swap alone halved it). The other way round (a sharp HD webcam, a softer swap) is left alone:
sharpening the swap to match cost 1.0-1.3 dB on the self-reconstruction clips (measured, not kept).

So, per face and frame, on the aligned crop (camera crop and swapped face share its coordinates):

* sharpness = the ratio of fine detail to medium detail in luma inside the face: mean |Y - G1(Y)| over mean
  |G1(Y) - G2(Y)| (G1, G2: Gaussian blurs of FINE_SIGMA and MID_SIGMA px). A ratio, so it reads the spectrum's
  slope (how soft), not the contrast (a pale face and a dark one of the same softness read the same);
* a level s, the sigma (px) of a Gaussian blur of the swap, solved (regula falsi) so that the swap's ratio after it
  matches the camera crop's, within LEVEL_RANGE; 0 when the swap is no crisper than the camera;
* the level is smoothed over time per tracked face (the same weight as the colour statistics), so the face does
  not pulse between sharp and soft.

Cost: about a dozen blurs of the face's part of one 128x128 luma plane: 1.3 ms p50 per face on the 2-core CPU
(`swapcam bench`). numpy + OpenCV only.
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.facestate import FaceState
from realtime.types import Image

FINE_SIGMA = 1.0  # px of the crop: detail finer than this is "fine"
MID_SIGMA = 2.5  # ... between FINE_SIGMA and this, "medium"
LEVEL_RANGE = (0.0, 2.0)  # as it is .. Gaussian blur of sigma 2 px
SOLVER_STEPS = 4  # regula falsi steps at most
LEVEL_TOLERANCE = 0.02  # px of blur: close enough
MIN_REGION = 64  # pixels: a smaller face region gives no level (the swap is left as it is)


def _luma(image: Image) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def detail_ratio(luma: np.ndarray, region: np.ndarray) -> float:
    """Fine over medium detail of a float32 luma plane inside ``region`` (uint8, non-zero inside; higher = sharper)."""
    fine_blur = cv2.GaussianBlur(luma, (0, 0), FINE_SIGMA, borderType=cv2.BORDER_REFLECT_101)
    mid_blur = cv2.GaussianBlur(fine_blur, (0, 0), _MID_STEP, borderType=cv2.BORDER_REFLECT_101)
    fine = cv2.mean(cv2.absdiff(luma, fine_blur), region)[0]
    mid = cv2.mean(cv2.absdiff(fine_blur, mid_blur), region)[0]
    return float(fine / max(mid, 1e-3))


_MID_STEP = float(np.sqrt(MID_SIGMA**2 - FINE_SIGMA**2))  # blurring G1(Y) by this gives G2(Y)


def apply_level(image: np.ndarray, level: float) -> np.ndarray:
    """``image`` (uint8 BGR or float32 luma) blurred by a Gaussian of sigma ``level`` px (0: as it is)."""
    if level < 1e-3:
        return image
    return cv2.GaussianBlur(image, (0, 0), float(level), borderType=cv2.BORDER_REFLECT_101)


def match_level(face: Image, camera_crop: Image, region: np.ndarray) -> float | None:
    """The blur (see :func:`apply_level`) that gives ``face`` the detail ratio of ``camera_crop`` inside the
    boolean ``region``: 0 when the swap is no sharper than the camera; None when the region is too small to say.

    Works on the region's bounding box (plus the blurs' reach), and solves ratio(level) = camera's ratio by
    regula falsi (Illinois): the ratio falls smoothly as the level rises, so a few steps get within LEVEL_TOLERANCE.
    """
    ys, xs = np.nonzero(region)
    if ys.size < MIN_REGION:
        return None
    pad = int(np.ceil(3 * MID_SIGMA))
    h, w = region.shape[:2]
    y0, y1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, h)
    x0, x1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, w)
    inside = region[y0:y1, x0:x1].astype(np.uint8)
    target = detail_ratio(_luma(camera_crop[y0:y1, x0:x1]), inside)
    luma = _luma(face[y0:y1, x0:x1])

    def excess(level: float) -> float:
        return detail_ratio(apply_level(luma, level), inside) - target

    lo, hi = LEVEL_RANGE
    f_lo = excess(lo)
    if f_lo <= 0:
        return lo  # the swap is no sharper than the camera: leave it
    f_hi = excess(hi)
    if f_hi >= 0:
        return hi
    side = 0
    for _ in range(SOLVER_STEPS):
        level = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        f = excess(level)
        if abs(hi - lo) < LEVEL_TOLERANCE or abs(f) < 1e-3:
            return level
        if f > 0:
            lo, f_lo = level, f
            if side == 1:
                f_hi *= 0.5
            side = 1
        else:
            hi, f_hi = level, f
            if side == -1:
                f_lo *= 0.5
            side = -1
    return (lo * f_hi - hi * f_lo) / (f_hi - f_lo)


def match_sharpness(face: Image, camera_crop: Image, mask: np.ndarray, state: FaceState, weight: float) -> Image:
    """``face`` blurred to the camera crop's sharpness inside the blend mask's core (mask > 0.5), when crisper.

    ``state``: the face's temporal track state (the level's history lives there); ``weight``: the past's weight in
    the level's moving average (0 = this frame's level alone)."""
    level = match_level(face, camera_crop, np.asarray(mask) > 0.5)
    previous = state.sharpness_level
    if level is None:
        level = previous
    elif previous is not None:
        level = weight * previous + (1.0 - weight) * level
    if level is None:
        return face
    state.sharpness_level = level
    return apply_level(face, level)
