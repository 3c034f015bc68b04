"""Image and series measures of `swapcam eval`: PSNR/SSIM inside a region, correlation of two series, added seams,
and the pixel identity score (the older, pose-normalised grey-level comparison; see realtime.eval.cli's doc)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike

from realtime.align import alignment_matrix, invert_matrix, transform_points
from realtime.types import Image


def correlation(camera: ArrayLike, output: ArrayLike, min_std: float = 0.01) -> float | None:
    """Pearson r of two series; None when the camera series barely moves (std < ``min_std``: nothing to follow) or
    has < 5 samples. A series that moves on the camera side but not at all on the output side (frozen) scores 0."""
    a, b = np.asarray(camera, np.float64), np.asarray(output, np.float64)
    if a.size < 5 or a.std() < min_std:
        return None
    if b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


# ------------------------------------------------------------------------------------------------ image measures
def hull_region(landmarks: np.ndarray, shape: tuple[int, ...], erode_fraction: float = 0.0) -> np.ndarray:
    """Boolean mask of the landmarks' convex hull in an image of ``shape``, optionally eroded by a fraction of the
    hull's width (keeps measurements off the hair line and the background)."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks).astype(np.int32)), 1)
    if erode_fraction > 0:
        k = max(1, int(round(erode_fraction * float(np.ptp(landmarks[:, 0])))))
        mask = cv2.erode(mask, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    return mask.astype(bool)


def region_psnr(a: Image, b: Image, region: np.ndarray) -> float:
    diff = a[region].astype(np.float64) - b[region].astype(np.float64)
    mse = float(np.mean(diff * diff)) if diff.size else 0.0
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def region_ssim(a: Image, b: Image, region: np.ndarray) -> float:
    """Mean of skimage's SSIM map (grey, Gaussian window, the paper's constants) over the region's pixels."""
    from skimage.metrics import structural_similarity

    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return float("nan")
    pad = 6
    y0, y1 = max(0, ys.min() - pad), min(region.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(region.shape[1], xs.max() + pad + 1)
    ga = cv2.cvtColor(a[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.float64)
    gb = cv2.cvtColor(b[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.float64)
    _, smap = structural_similarity(
        ga, gb, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True
    )
    return float(smap[region[y0:y1, x0:x1]].mean())


def grey(image: Image) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def gradient_magnitude(image: Image) -> np.ndarray:
    g = grey(image)
    return cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))


def seam_excess(camera: Image, output: Image, alpha: np.ndarray) -> float | None:
    """Edges the swap adds in the blend mask's feathered band: mean of max(0, |grad out| - |grad camera|) over the
    band (Sobel, grey levels per pixel). Only added edges count: a blurrier output (less gradient) scores 0, not
    a negative number that would hide a seam elsewhere in the band."""
    band = (alpha > 0.05) & (alpha < 0.95)
    if band.sum() < 20:
        return None
    added = gradient_magnitude(output)[band] - gradient_magnitude(camera)[band]
    return float(np.maximum(added, 0.0).mean())


@dataclass
class IdentityReference:
    """Identity B as the metric sees it: its face aligned to the model's crop, blurred grey, and its hull there."""

    grey: np.ndarray
    hull: np.ndarray
    size: int
    coverage: float


def _aligned_grey(image: Image, landmarks: np.ndarray, size: int, coverage: float) -> tuple[np.ndarray, np.ndarray]:
    matrix = alignment_matrix(landmarks, size, coverage)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(grey(crop), (0, 0), max(1.0, size / 32.0))
    hull = hull_region(transform_points(landmarks, matrix), (size, size), erode_fraction=0.05)
    return blurred, hull


def identity_reference(image: Image, landmarks: np.ndarray, size: int, coverage: float) -> IdentityReference:
    blurred, hull = _aligned_grey(image, landmarks, size, coverage)
    return IdentityReference(blurred, hull, size, coverage)


def _z(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-6)


def identity_score(
    camera: Image, camera_lm: np.ndarray, output: Image, output_lm: np.ndarray, reference: IdentityReference
) -> float | None:
    """(d(out, camera) - d(out, B)) / d(camera, B); each face aligned with its own landmarks (pose removed)."""
    cam, cam_hull = _aligned_grey(camera, camera_lm, reference.size, reference.coverage)
    out, out_hull = _aligned_grey(output, output_lm, reference.size, reference.coverage)
    region = cam_hull & out_hull & reference.hull
    if region.sum() < 0.05 * reference.size**2:
        return None
    zc, zo, zb = _z(cam[region]), _z(out[region]), _z(reference.grey[region])
    d_cb = float(np.abs(zc - zb).mean())
    if d_cb < 1e-6:
        return None
    return (float(np.abs(zo - zc).mean()) - float(np.abs(zo - zb).mean())) / d_cb


def paste_alpha(mask: np.ndarray, matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A blend mask the compositor used (crop space, see FaceSwapProcessor.last_pastes) in frame coordinates."""
    h, w = shape[:2]
    return cv2.warpAffine(mask.astype(np.float32), invert_matrix(matrix), (w, h), flags=cv2.INTER_LINEAR)
