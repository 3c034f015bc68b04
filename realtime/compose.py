"""Blend mask and paste-back: the swapped SxS face goes back into the frame inside the face's box only.

Mask = learned mask (from the model) x convex hull of the 68 landmarks (in crop coordinates), then eroded and
feathered. Both happen on the SxS crop, where every face has the same size (the alignment normalises it), so the
erosion and feather kernels are built once per crop size -- "once per face size" -- and cost the same for a face
that fills the frame as for a small one. Erosion by the feather radius keeps the feathered mask strictly inside
the hull, so nothing outside the face's landmark box changes.

Paste-back inverts the crop matrix and warps only the box the mask covers (facefusion-style ``paste_back``): no
full-frame warp, no full-frame blur, no seamlessClone on the per-frame path.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from realtime.align import invert_matrix, transform_points
from realtime.types import Image, Mask

ERODE_FRACTION = 0.025  # of the crop side; with coverage 1.6 ~ 4 % of the landmark box
FEATHER_FRACTION = 0.035


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
    ys, xs = np.nonzero(mask > 0)
    if len(xs) == 0:
        return None
    corners = np.array(
        [[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.min(), ys.max() + 1], [xs.max() + 1, ys.max() + 1]],
        np.float64,
    )
    pts = transform_points(corners, invert_matrix(matrix))
    h, w = frame_shape[:2]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def paste_back(frame: Image, face: Image, mask: Mask, matrix: np.ndarray) -> tuple[int, int, int, int] | None:
    """Blend the SxS ``face`` into ``frame`` IN PLACE with ``mask``, touching only the mask's box. Returns the box."""
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
    blended = roi_f + (face_box.astype(np.float32) - roi_f) * alpha[..., None]
    # alpha == 0 gives roi_f exactly, so pixels outside the mask keep their value bit for bit.
    roi[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return box
