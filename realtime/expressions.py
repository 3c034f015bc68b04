"""Landmark-driven expression warps of a still face: open the mouth, close the eyes.

A faceset made from one portrait shows one expression, so decoder B would only ever learn to draw that one. These
warps move the lips, jaw and eyelids of a face image along its own 68 landmarks: a smooth displacement field is
interpolated from the moved landmarks (Gaussian radial basis, anchored at the stable points and the image border so
the rest of the face stays put), the image is resampled with it, and the opened mouth is painted as a dark cavity
with a hint of upper teeth. The moved landmarks come back too, so masks and measures follow.

Amounts are in face units: ``mouth`` is the inner-lip gap to add, as a fraction of the eye-centre distance (0.3 is a
clearly open mouth when speaking); ``eyes`` is how far the upper lids close, 0 open .. 1 shut.
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.landmarks.measures import eye_distance
from realtime.types import Image

UPPER_INNER_LIP = (61, 62, 63)
LOWER_INNER_LIP = (65, 66, 67)
LOWER_OUTER_LIP = (55, 56, 57, 58, 59)
CHIN = (6, 7, 8, 9, 10)
INNER_MOUTH = (60, 61, 62, 63, 64, 65, 66, 67)
UPPER_LIDS = ((37, 41), (38, 40), (43, 47), (44, 46))  # (upper lid point, the lower lid point under it)
ANCHORS = tuple(range(17, 36)) + (36, 39, 42, 45) + (0, 1, 2, 14, 15, 16)  # brows, nose, eye corners, upper jaw
EYE_ANCHORS = (17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 36, 39, 42, 45)  # brows, nose bridge, eye corners
LOWER_LIDS = (40, 41, 46, 47)


def moved_landmarks(landmarks: np.ndarray, mouth: float = 0.0, eyes: float = 0.0) -> np.ndarray:
    """Where the landmarks go: lower lip and (less) the chin down by ``mouth`` eye distances, along the face's own
    downward axis; upper lids towards the lower lids by ``eyes`` of their gap."""
    lm = np.asarray(landmarks, np.float64)
    out = lm.copy()
    d = eye_distance(lm)
    across = lm[45] - lm[36]
    down = np.array([-across[1], across[0]]) / (np.linalg.norm(across) + 1e-9)  # image y grows downwards
    if mouth:
        shift = mouth * d * down
        for i in LOWER_INNER_LIP + LOWER_OUTER_LIP:
            out[i] = lm[i] + shift
        for i in CHIN:
            out[i] = lm[i] + 0.7 * shift
        for i in (5, 11):
            out[i] = lm[i] + 0.35 * shift
        for i in UPPER_INNER_LIP:
            out[i] = lm[i] - 0.08 * shift
        for i in (60, 64):  # the corners open a little
            out[i] = lm[i] + 0.15 * shift
    if eyes:
        for upper, lower in UPPER_LIDS:
            out[upper] = lm[upper] + np.clip(eyes, 0.0, 1.0) * (lm[lower] - lm[upper])
    return out


def displacement_field(src: np.ndarray, dst: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Backward map (H x W x 2, float32) taking each output pixel to where it samples the input, interpolated from
    control points ``dst -> src`` with normalised Gaussian weights; points that do not move pull the field to 0.

    Computed only in the box around the moving points (3 sigma beyond; zero outside) on a grid of about sigma / 2
    pixels, then upsampled: the field is smooth at the scale of sigma, and training warps thousands of crops."""
    h, w = shape
    base = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), axis=-1)
    offsets = src - dst
    moving = np.abs(offsets).max(axis=1) > 1e-6
    if not moving.any():
        return base
    reach = 3.0 * sigma
    lo = np.floor(np.maximum(dst[moving].min(axis=0) - reach, 0)).astype(int)
    hi = np.ceil(np.minimum(dst[moving].max(axis=0) + reach, [w - 1, h - 1])).astype(int)
    step = int(np.clip(sigma / 2.0, 1, 8))
    xs = np.arange(lo[0], hi[0] + step, step, dtype=np.float64)
    ys = np.arange(lo[1], hi[1] + step, step, dtype=np.float64)
    gx, gy = np.meshgrid(xs, ys)
    d2 = (gx[..., None] - dst[None, None, :, 0]) ** 2 + (gy[..., None] - dst[None, None, :, 1]) ** 2
    weight = np.exp(-d2 / (2 * sigma * sigma))
    field = np.einsum("yxn,nc->yxc", weight, offsets) / (weight.sum(2)[..., None] + 1e-3)
    # fade to zero towards the border: the background never moves
    edge = np.minimum.reduce([gx, gy, (w - 1) - gx, (h - 1) - gy]) / (0.08 * min(h, w))
    field *= np.clip(edge, 0.0, 1.0)[..., None]
    box_w, box_h = int(hi[0] - lo[0] + 1), int(hi[1] - lo[1] + 1)
    # upsample the coarse grid to (about) one value per pixel of the box, then crop to the box
    full = (
        cv2.resize(
            field.astype(np.float32),
            ((len(xs) - 1) * step + 1, (len(ys) - 1) * step + 1),
            interpolation=cv2.INTER_LINEAR,
        )
        if step > 1
        else field.astype(np.float32)
    )
    base[lo[1] : lo[1] + box_h, lo[0] : lo[0] + box_w] += full[:box_h, :box_w]
    return base


def _paint_mouth(image: Image, lm: np.ndarray, amount: float, d: float) -> None:
    """Darken the opened mouth (the moved inner-lip polygon, feathered) towards a mouth-interior colour, keeping
    some of the stretched texture, and lay a band of upper teeth along the upper inner lip when wide open."""
    h, w = image.shape[:2]
    poly = np.round(lm[list(INNER_MOUTH)] * 4).astype(np.int32)  # 2 fractional bits: smooth small polygons
    cavity = np.zeros((h, w), np.float32)
    cv2.fillPoly(cavity, [poly], 1.0, lineType=cv2.LINE_AA, shift=2)
    if cavity.sum() < 2:
        return
    interior = np.array([38, 32, 70], np.float32)  # BGR: a dim red-brown, what a mouth looks like inside
    colour = np.empty(image.shape, np.float32)
    colour[:] = interior
    strength = float(np.clip(amount / 0.25, 0.0, 1.0))  # a slightly parted mouth only darkens a little
    if amount > 0.12:  # upper teeth, the whole width of the upper inner lip
        teeth = np.zeros((h, w), np.float32)
        top = lm[[60, 61, 62, 63, 64]]
        depth = min(0.11 * d, 0.45 * amount * d)
        band = np.concatenate([top, top[::-1] + np.array([0.0, depth])])
        cv2.fillPoly(teeth, [np.round(band * 4).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=2)
        teeth = cv2.GaussianBlur(teeth, (0, 0), max(0.6, 0.015 * d)) * cavity
        colour = colour * (1 - teeth[..., None]) + np.array([200, 210, 222], np.float32) * teeth[..., None]
    alpha = cv2.GaussianBlur(cavity, (0, 0), max(0.6, 0.025 * d))[..., None] * (0.85 * strength)
    image[:] = np.clip(image * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def _paint_lids(image: Image, lm: np.ndarray, amount: float, d: float) -> None:
    """Cover each eye's opening with lid-coloured skin (sampled just above the eye), by ``amount``, and draw the lash
    line where the lids meet: landmarks place the lids tighter than the visible iris, so warping alone leaves it."""
    h, w = image.shape[:2]
    for eye in ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47)):
        pts = lm[list(eye)]
        centre = pts.mean(axis=0)
        opening = centre + (pts - centre) * np.array([1.05, 1.9])  # the visible opening is taller than the landmarks
        cover = np.zeros((h, w), np.float32)
        cv2.fillPoly(cover, [np.round(opening * 4).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=2)
        cover = cv2.GaussianBlur(cover, (0, 0), max(0.6, 0.04 * d))
        y0 = int(round(centre[1] - 0.28 * d))
        x0, x1 = int(round(pts[0, 0])), int(round(pts[3, 0]))
        lid = image[max(0, y0 - 2) : max(1, y0 + 2), max(0, x0) : max(1, x1)].reshape(-1, 3)
        if lid.size == 0:
            continue
        skin = np.median(lid, axis=0).astype(np.float32)
        lash = np.zeros((h, w), np.float32)
        lower = lm[[eye[0], eye[5], eye[4], eye[3]]]
        cv2.polylines(
            lash,
            [np.round(lower * 4).astype(np.int32)],
            False,
            1.0,
            max(1, int(round(0.03 * d))),
            lineType=cv2.LINE_AA,
            shift=2,
        )
        a = (amount * cover)[..., None]
        out = image * (1 - a) + skin * a
        la = (amount**2 * cv2.GaussianBlur(lash, (0, 0), 0.6))[..., None] * 0.7
        image[:] = np.clip(out * (1 - la) + skin * 0.35 * la, 0, 255).astype(np.uint8)


def expression_warp(
    image: Image,
    landmarks: np.ndarray,
    mouth: float = 0.0,
    eyes: float = 0.0,
    extra: tuple[np.ndarray, ...] = (),
    paint_lids: bool = True,
) -> tuple[Image, np.ndarray, tuple[np.ndarray, ...]]:
    """Open the mouth by ``mouth`` eye distances and close the eyes by ``eyes`` (0..1) in ``image`` (H x W x 3
    uint8). ``extra`` arrays (H x W masks) are warped with the same field. ``paint_lids=False``: the lids are only
    moved, not painted over (a squint). Returns (image, moved landmarks, extra)."""
    lm = np.asarray(landmarks, np.float64)
    if mouth <= 0 and eyes <= 0:
        return image.copy(), lm.copy(), tuple(e.copy() for e in extra)
    moved = moved_landmarks(lm, mouth, eyes)
    d = eye_distance(lm)
    warped, extra_out = image, tuple(extra)
    # Two fields: the mouth and jaw move smoothly over a wide area; the lids must move within the eye only.
    for part, sigma, keep in (("mouth", 0.35 * d, ANCHORS), ("eyes", 0.07 * d, EYE_ANCHORS)):
        amount = mouth if part == "mouth" else eyes
        if amount <= 0:
            continue
        target = moved_landmarks(lm, mouth if part == "mouth" else 0.0, eyes if part == "eyes" else 0.0)
        movers = [i for i in range(68) if np.any(np.abs(target[i] - lm[i]) > 1e-6)]
        idx = movers + [i for i in keep if i not in movers]
        src, dst = lm[idx], target[idx]
        if part == "eyes":  # hold the skin under the lower lids still (the lids themselves are where the upper ones go)
            below = lm[list(LOWER_LIDS)] + np.array([0.0, 0.12 * d])
            src, dst = np.concatenate([src, below]), np.concatenate([dst, below])
        field = displacement_field(src, dst, (image.shape[0], image.shape[1]), sigma=sigma)
        warped = cv2.remap(warped, field[..., 0], field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        extra_out = tuple(
            cv2.remap(e, field[..., 0], field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            for e in extra_out
        )
    warped = np.ascontiguousarray(warped)
    if mouth > 0.03:
        _paint_mouth(warped, moved, mouth, d)
    if eyes > 0.05 and paint_lids:
        _paint_lids(warped, lm, float(np.clip(eyes, 0.0, 1.0)), d)
    return warped, moved, extra_out
