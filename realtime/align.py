"""Face alignment: the Umeyama similarity from 68 iBUG landmarks to a canonical template, and crops with their matrix.

Coordinates: (x, y) pixels. A *crop matrix* ``M`` is 2x3 and maps frame points to crop points; keep it with the crop
so compositing can invert it (``invert_matrix``) and touch only the face's box.
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.types import Image, check_image

# Canonical 68-point iBUG template ("swapcam-ibug68-v1"), normalised so the points span [0, 1] on both axes.
# Provenance: mediapipe FaceMesh (468 -> 68 mapping in realtime.landmarks.mediapipe_backend) on the two public-domain
# sample portraits (astronaut, grace_hopper), Umeyama-registered on the stable points, averaged, eye line levelled,
# and made left/right symmetric with MIRROR_68. A template derived by this project, not copied from another.
TEMPLATE_68 = np.array(
    [
        [0.0019, 0.0957],
        [0.0, 0.2945],
        [0.0051, 0.3944],
        [0.046, 0.6189],
        [0.0892, 0.7146],
        [0.1381, 0.7892],
        [0.2608, 0.9102],
        [0.3998, 0.9889],
        [0.5, 1.0],
        [0.6002, 0.9889],
        [0.7392, 0.9102],
        [0.8619, 0.7892],
        [0.9108, 0.7146],
        [0.954, 0.6189],
        [0.9949, 0.3944],
        [1.0, 0.2945],
        [0.9981, 0.0957],  # jaw 0-16
        [0.0504, 0.0431],
        [0.1176, 0.0222],
        [0.1849, 0.0],
        [0.2766, 0.0018],
        [0.3858, 0.0134],  # right brow 17-21
        [0.6142, 0.0134],
        [0.7234, 0.0018],
        [0.8151, 0.0],
        [0.8824, 0.0222],
        [0.9496, 0.0431],  # left brow 22-26
        [0.5, 0.1421],
        [0.5, 0.2599],
        [0.5, 0.3718],
        [0.5, 0.4417],  # nose bridge 27-30
        [0.3923, 0.4893],
        [0.4366, 0.5209],
        [0.5, 0.5264],
        [0.5634, 0.5209],
        [0.6077, 0.4893],  # nostrils 31-35
        [0.1603, 0.1666],
        [0.2077, 0.1373],
        [0.2876, 0.1322],
        [0.3693, 0.1796],
        [0.3047, 0.1917],
        [0.2267, 0.1911],  # 36-41
        [0.6307, 0.1796],
        [0.7124, 0.1322],
        [0.7923, 0.1373],
        [0.8397, 0.1666],
        [0.7733, 0.1911],
        [0.6953, 0.1917],  # 42-47
        [0.2808, 0.6333],
        [0.3679, 0.6101],
        [0.4339, 0.6059],
        [0.5, 0.6153],
        [0.5661, 0.6059],
        [0.6321, 0.6101],
        [0.7192, 0.6333],
        [0.6188, 0.7247],
        [0.5637, 0.7453],
        [0.5, 0.7519],
        [0.4363, 0.7453],
        [0.3812, 0.7247],  # 48-59
        [0.3088, 0.6339],
        [0.4475, 0.6443],
        [0.5, 0.6481],
        [0.5525, 0.6443],
        [0.6912, 0.6339],
        [0.5536, 0.6852],
        [0.5, 0.6888],
        [0.4464, 0.6852],  # inner mouth 60-67
    ],
    dtype=np.float64,
)

# iBUG index of each point's left/right mirror (for flips and symmetry).
MIRROR_68 = np.array(
    [16 - i for i in range(17)]
    + [26 - i for i in range(5)]
    + [21 - i for i in range(5)]
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)

# Points that move with the skull, not the jaw or expression: brows, nose, eyes, mouth corners. Fitting only these
# keeps the crop from jittering when the mouth opens or the jaw contour estimate wobbles.
STABLE_IDX = np.array(list(range(17, 48)) + [48, 54])

# Regions (used for loss priority and masks).
EYES_IDX = np.arange(36, 48)
MOUTH_IDX = np.arange(48, 68)
JAW_IDX = np.arange(0, 17)

# The crop centre sits this far (in template units) above the landmark box centre, so a crop holds forehead.
TEMPLATE_Y_SHIFT = 0.1
DEFAULT_COVERAGE = 1.6
TEMPLATE_NAME = "swapcam-ibug68-v1"  # names TEMPLATE_68 + TEMPLATE_Y_SHIFT; a model trained on other crops says so


def _as_points(points: object, name: str) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} has shape {arr.shape}, expected Nx2 points")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def umeyama(src: object, dst: object, estimate_scale: bool = True) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst`` (Umeyama 1991).

    Returns the 3x3 homogeneous matrix T with ``dst ~ T @ [src; 1]``. A reflection that the SVD may produce is
    corrected with the determinant sign, so T is always a proper rotation. Raises ValueError on degenerate input.
    """
    src_pts, dst_pts = _as_points(src, "src"), _as_points(dst, "dst")
    if src_pts.shape != dst_pts.shape:
        raise ValueError(f"src has shape {src_pts.shape} but dst has shape {dst_pts.shape}")
    n, dim = src_pts.shape
    if n < 2:
        raise ValueError(f"umeyama needs at least 2 points, got {n}")
    src_mean, dst_mean = src_pts.mean(axis=0), dst_pts.mean(axis=0)
    src_c, dst_c = src_pts - src_mean, dst_pts - dst_mean
    src_var = (src_c**2).sum() / n
    if src_var <= 1e-12 * max(1.0, float(np.abs(src_pts).max()) ** 2):
        raise ValueError("src points are all equal (zero spread); cannot estimate a similarity")
    dst_var = (dst_c**2).sum() / n
    if estimate_scale and dst_var <= 1e-12 * max(1.0, float(np.abs(dst_pts).max()) ** 2):
        # every src point would map to one place: scale 0, a matrix that cannot be inverted for pasting back
        raise ValueError("dst points are all equal (zero spread); cannot estimate a similarity")
    cov = dst_c.T @ src_c / n
    u, sing, vt = np.linalg.svd(cov)
    d = np.ones(dim)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float(sing @ d / src_var) if estimate_scale else 1.0
    out = np.eye(dim + 1)
    out[:dim, :dim] = scale * rot
    out[:dim, dim] = dst_mean - scale * rot @ src_mean
    return out


def template_points(size: int, coverage: float = DEFAULT_COVERAGE) -> np.ndarray:
    """The 68 template points in the pixel coordinates of a ``size`` x ``size`` crop.

    ``coverage`` is the crop side divided by the landmark box side: 1.0 cuts at the jaw and brows (too tight: the
    model then never sees the cheeks and forehead it must blend), 1.6 (default) holds the forehead and the cheeks.
    """
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"crop size={size!r}, expected an integer >= 8")
    if not 0.5 <= float(coverage) <= 4.0:
        raise ValueError(f"coverage={coverage!r}, expected a value in 0.5..4.0")
    centred = TEMPLATE_68 - np.array([0.5, 0.5 - TEMPLATE_Y_SHIFT])
    return (centred / float(coverage) + 0.5) * size


def alignment_matrix(
    landmarks: object, size: int, coverage: float = DEFAULT_COVERAGE, stable_only: bool = True
) -> np.ndarray:
    """2x3 matrix mapping frame points to crop points for a face's 68 landmarks."""
    pts = _as_points(landmarks, "landmarks")
    if pts.shape[0] != 68:
        raise ValueError(f"landmarks has {pts.shape[0]} points, expected 68 (iBUG order)")
    target = template_points(size, coverage)
    idx = STABLE_IDX if stable_only else slice(None)
    return umeyama(pts[idx], target[idx])[:2]


def align(
    frame: Image, landmarks: np.ndarray, size: int = 256, coverage: float = DEFAULT_COVERAGE, stable_only: bool = True
) -> tuple[Image, np.ndarray]:
    """Cut the aligned ``size`` x ``size`` face crop from ``frame``; returns ``(crop, M)`` with M frame -> crop."""
    check_image(frame, "frame")
    matrix = alignment_matrix(landmarks, size, coverage, stable_only)
    crop = cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return crop, matrix


def invert_matrix(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (crop -> frame)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"matrix has shape {m.shape}, expected 2x3")
    return cv2.invertAffineTransform(m)


def transform_points(points: object, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to Nx2 points."""
    pts = _as_points(points, "points")
    m = np.asarray(matrix, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def uncrop(crop: Image, matrix: np.ndarray, frame_shape: tuple[int, ...]) -> tuple[Image, np.ndarray]:
    """Map a crop back into frame coordinates: returns (image, valid_mask) of the frame's size.

    For inspection and tests; the live path pastes back inside the face's box only (realtime.compose).
    """
    h, w = frame_shape[:2]
    inv = invert_matrix(matrix)
    image = cv2.warpAffine(crop, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    ones = np.full(crop.shape[:2], 255, np.uint8)
    valid = cv2.warpAffine(ones, inv, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT) > 0
    return image, valid
