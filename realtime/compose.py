"""Blend mask and paste-back: the swapped SxS face goes back into the frame inside the face's box only.

Mask = learned mask (from the model) x convex hull of the 68 landmarks (in crop coordinates), then eroded and
feathered. Both happen on the SxS crop, where every face has the same size (the alignment normalises it), so the
erosion and feather kernels are built once per crop size -- "once per face size" -- and cost the same for a face
that fills the frame as for a small one. Erosion by the feather radius keeps the feathered mask strictly inside
the hull, so nothing outside the face's landmark box changes.

Paste-back inverts the crop matrix and warps only the box the mask covers (facefusion-style ``paste_back``): no
full-frame warp, no full-frame blur, no seamlessClone on the per-frame path. Two blends (``BLEND_MODES``, the
``blend`` keyword of ``paste_back``):

- ``feather`` (paste_back's default, unchanged): one alpha blend with the warped mask, so every frequency crosses
  over the same feathered band: a brightness or lighting mismatch shows as a soft ring that wide.
- ``multiband``: a Laplacian-pyramid (Burt-Adelson) blend inside the box. The difference face - frame is split into
  band-pass levels, each level is weighted by the same level of the warped mask's Gaussian pyramid, and the
  levels are summed back: coarse levels (skin tone, lighting) cross over bands 2, 4, ... 2**levels times wider
  than the feather, fine ones (pores, hair, edges) over the feather band itself, so neither a ring nor a halo
  of cross-faded texture marks the seam. The depth follows the box: halvings until its smallest side drops below
  MULTIBAND_MIN_SIDE (16 px), at most MULTIBAND_MAX_LEVELS (5): 4 levels for a 150-250 px box, 5 from 256 px; a
  box under 16 px gets the feather blend. The pyramid is built on the difference alone (the frame's own pyramid
  would cancel out of the sum), with OpenCV's pyrDown/pyrUp on float32 and ``dstsize`` for odd sides (no padding).
  Edge at the seam: the wide bands reach past the mask, where nothing may change, and a hard cut there would
  make a new seam. So the summed difference is faded by the warped mask itself: the change falls continuously
  to exactly 0 where the mask ends -- pixels where the warped mask is 0 keep their value bit for bit, as with
  ``feather`` -- and the wide bands spread into the face instead: the face's outer skin takes some of the
  frame's tone, fading out over about 1/8 of the box inwards.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from realtime.align import invert_matrix, transform_points
from realtime.types import Image, Mask

ERODE_FRACTION = 0.025  # of the crop side; with coverage 1.6 ~ 4 % of the landmark box
FEATHER_FRACTION = 0.035

# paste_back's blends, the recommended one first (lower seams; its cost: benchmarks/blend_bench.py). paste_back's
# own default stays "feather", the blend it always had, until a caller chooses.
BLEND_MODES = ("multiband", "feather")
MULTIBAND_MIN_SIDE = 16  # px: halve the box until its smallest side drops below this ...
MULTIBAND_MAX_LEVELS = 5  # ... but no more often than this


@lru_cache(maxsize=8)
def mask_kernels(size: int) -> tuple[np.ndarray, int]:
    """(erosion structuring element, odd feather kernel side) for SxS crops; built once per crop size."""
    feather = max(1, int(round(FEATHER_FRACTION * size)))
    erode = max(1, int(round(ERODE_FRACTION * size))) + feather
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1))
    return kernel, 2 * feather + 1


def hull_mask(crop_landmarks: np.ndarray, size: int) -> Mask:
    """Filled convex hull of the landmarks (already in crop coordinates) as an SxS float32 0/1 mask."""
    pts = np.asarray(crop_landmarks, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"crop_landmarks has shape {pts.shape}, expected Nx2")
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))  # 4 fractional bits: sub-pixel hull edges
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_8, shift=4)
    return mask.astype(np.float32) * np.float32(1 / 255)


def blend_mask(learned_mask: Mask, crop_landmarks: np.ndarray) -> Mask:
    """learned mask x landmark hull, eroded then feathered (SxS float32 in [0, 1])."""
    learned = np.asarray(learned_mask, dtype=np.float32)
    if learned.ndim != 2 or learned.shape[0] != learned.shape[1]:
        raise ValueError(f"learned_mask has shape {learned.shape}, expected SxS")
    size = learned.shape[0]
    kernel, feather = mask_kernels(size)
    mask = learned * hull_mask(crop_landmarks, size)
    mask = cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    # A box blur of side 2r+1 after an erosion by more than r cannot reach outside the hull (unlike a Gaussian tail).
    mask = cv2.blur(mask, (feather, feather), borderType=cv2.BORDER_CONSTANT)
    return mask


def paste_box(mask: Mask, matrix: np.ndarray, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) frame box that the non-zero part of ``mask`` maps to, clipped to the frame; None if empty."""
    support = (np.asarray(mask) > 0).view(np.uint8)
    if not support.any():
        return None
    mx, my, mw, mh = cv2.boundingRect(support)  # the non-zero pixels' box, ~10x faster than np.nonzero
    corners = np.array([[mx, my], [mx + mw, my], [mx, my + mh], [mx + mw, my + mh]], np.float64)
    pts = transform_points(corners, invert_matrix(matrix))
    h, w = frame_shape[:2]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def multiband_levels(box_side: int) -> int:
    """Pyramid depth for a paste box whose smallest side is ``box_side`` px: halvings until the side drops below
    MULTIBAND_MIN_SIDE, capped at MULTIBAND_MAX_LEVELS (0: too small for a pyramid)."""
    levels, side = 0, float(box_side)
    while levels < MULTIBAND_MAX_LEVELS and side >= MULTIBAND_MIN_SIDE:
        side /= 2
        levels += 1
    return levels


def _per_channel(alpha: np.ndarray, like: np.ndarray) -> np.ndarray:
    """HxW float32 weights shaped to multiply ``like`` (HxWxC): a real HxWx3 copy for BGR, since numpy multiplies
    equal shapes ~15x faster than it broadcasts a trailing axis of 1 (same products, bit for bit)."""
    if like.ndim == 3 and like.shape[2] == 3 and alpha.dtype == np.float32:
        return cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR)
    return alpha[..., None]


def multiband_difference(diff: np.ndarray, alpha: np.ndarray, levels: int) -> np.ndarray:
    """Laplacian-pyramid blend of ``diff`` (HxWxC float32, face - frame) with weights ``alpha`` (HxW float32):
    sum over levels of (band-pass level of diff) x (same level of alpha's Gaussian pyramid), upsampled back."""
    g, ga = [diff], [alpha]
    for _ in range(levels):
        g.append(cv2.pyrDown(g[-1]))
        ga.append(cv2.pyrDown(ga[-1]))
    acc = g[levels] * _per_channel(ga[levels], g[levels])
    for k in range(levels - 1, -1, -1):
        size = (g[k].shape[1], g[k].shape[0])
        band = g[k] - cv2.pyrUp(g[k + 1], dstsize=size)
        band *= _per_channel(ga[k], band)
        acc = cv2.pyrUp(acc, dstsize=size)
        acc += band
    return acc


def paste_back(
    frame: Image, face: Image, mask: Mask, matrix: np.ndarray, blend: str = "feather"
) -> tuple[int, int, int, int] | None:
    """Blend the SxS ``face`` into ``frame`` IN PLACE with ``mask``, touching only the mask's box. Returns the box.

    ``blend`` is one of BLEND_MODES (see the module doc); either way pixels where the warped mask is 0 keep their
    value bit for bit."""
    if blend not in BLEND_MODES:
        raise ValueError(f"blend={blend!r}, expected one of {', '.join(BLEND_MODES)}")
    if frame.dtype != np.uint8 or face.dtype != np.uint8:
        raise TypeError(f"frame {frame.dtype} / face {face.dtype}: expected uint8 images")
    if face.shape[:2] != mask.shape:
        raise ValueError(f"face has shape {face.shape} but mask has shape {mask.shape}")
    box = paste_box(mask, matrix, frame.shape)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    inv = invert_matrix(matrix)
    inv[:, 2] -= (x0, y0)  # warp straight into the box: the rest of the frame is never computed
    size = (x1 - x0, y1 - y0)
    face_box = cv2.warpAffine(face, inv, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, inv, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    roi = frame[y0:y1, x0:x1]
    roi_f = roi.astype(np.float32)
    diff = face_box.astype(np.result_type(np.float32, alpha.dtype))  # float32, unless the mask is float64
    diff -= roi_f
    levels = multiband_levels(min(size)) if blend == "multiband" else 0
    if levels > 0:
        diff = multiband_difference(diff, alpha, levels)
    # feather: roi + (face - roi) * alpha. multiband: the same with the pyramid's difference, faded by the mask so
    # the wide bands, which reach past it, end continuously at 0. In place: no more full-size float temporaries.
    diff *= _per_channel(alpha, roi)
    diff += roi_f  # alpha == 0 gives roi_f exactly: pixels outside the mask keep their value bit for bit
    diff += 0.5
    np.clip(diff, 0, 255, out=diff)
    roi[...] = diff  # truncates, as astype(np.uint8) does: +0.5 then truncation rounds to nearest
    return box
