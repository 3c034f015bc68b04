"""Landmark-driven expression warps of a still face: open the mouth, close the eyes, smile.

A faceset made from one portrait shows one expression, so decoder B would only ever learn to draw that one. These
warps move the lips, jaw and eyelids of a face image along its own 68 landmarks: a smooth displacement field is
interpolated from the moved landmarks (Gaussian radial basis, anchored at the stable points and the image border so
the rest of the face stays put), the image is resampled with it, and the opened mouth is painted as a dark cavity
with a hint of upper teeth. The moved landmarks come back too, so masks and measures follow.

Amounts are in face units: ``mouth`` is the inner-lip gap to add, as a fraction of the eye-centre distance (0.3 is a
clearly open mouth when speaking); ``eyes`` is how far the upper lids close, 0 open .. 1 shut; ``smile`` 0..1, 1 a
clear closed-mouth smile.

The smile and the rigid-jaw mouth opening (``rigid_jaw=True``) are displacement fields written down
directly (not interpolated from landmarks), and the landmarks are moved by the same field, so they sit on the drawn
face exactly; the truth clips (realtime.clips) rely on that. The interpolated mouth field (the default) only
approximates its landmarks: its lower lip is drawn up to ~0.1 eye distances short of them.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from realtime.landmarks.measures import eye_distance, face_axes
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
# A smile at amount 1, in eye distances: the mouth corners rise by SMILE_LIFT and move out by SMILE_WIDEN each; the
# lift grows with the square of the distance from the mouth's middle (so both lips curve up towards the corners) and
# carries on, fading, over the cheeks.
SMILE_LIFT, SMILE_WIDEN = 0.15, 0.08
Displacement = Callable[[np.ndarray], np.ndarray]  # points (..., 2) -> displacement (..., 2), pixels


def moved_landmarks(
    landmarks: np.ndarray,
    mouth: float = 0.0,
    eyes: float = 0.0,
    smile: float = 0.0,
    rigid_jaw: bool = False,
) -> np.ndarray:
    """Where the landmarks go: lower lip and (less) the chin down by ``mouth`` eye distances, along the face's own
    downward axis (``rigid_jaw``: by :class:`JawDrop`'s field); every point by the smile's field
    (:func:`smile_displacement`); upper lids towards the lower lids by ``eyes`` of their gap."""
    lm = np.asarray(landmarks, np.float64)
    out = lm.copy()
    d = eye_distance(lm)
    across = lm[45] - lm[36]
    down = np.array([-across[1], across[0]]) / (np.linalg.norm(across) + 1e-9)  # image y grows downwards
    if mouth > 0 and rigid_jaw:
        out = JawDrop(lm, mouth).move(out)
    elif mouth:
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
    if smile > 0:
        out = forward(out, smile_displacement(lm, smile))
    if eyes:
        for upper, lower in UPPER_LIDS:
            out[upper] = out[upper] + np.clip(eyes, 0.0, 1.0) * (out[lower] - out[upper])
    return out


class JawDrop:
    """The mouth opened by dropping the lower lip and the jaw as one piece, written down as a field.

    In the mouth's axes (u across in half mouth widths from the corners' middle, dv down in pixels from the line
    where the lips meet): above that line nothing moves; below it everything moves down by G(u, dv), which is the
    whole gap (``amount`` eye distances) under the lips' middle, tapering to nothing at the corners (1 - |u|^4: the
    gap is lens-shaped) for the lower lip, and 0.75 of it over the chin and lower cheeks, fading to nothing beyond
    the chin; the pixels inside the gap sample the lips' line (the painted cavity covers them). Moving the landmarks
    through the same field puts them exactly on the drawn lips."""

    JAW = 0.75  # the chin's share of the gap

    def __init__(self, landmarks: np.ndarray, amount: float) -> None:
        lm = np.asarray(landmarks, np.float64)
        d = eye_distance(lm)
        across = (lm[45] - lm[36]) / (np.linalg.norm(lm[45] - lm[36]) + 1e-9)
        self.across, self.down = across, np.array([-across[1], across[0]])
        self.centre = (lm[48] + lm[54]) / 2
        self.half = max(float(np.linalg.norm(lm[54] - lm[48])) / 2, 1e-3)
        self.gap = float(amount) * d
        # the lips' meeting line: the inner corners and the middles of the inner-lip pairs
        knots = np.stack([lm[60], (lm[61] + lm[67]) / 2, (lm[62] + lm[66]) / 2, (lm[63] + lm[65]) / 2, lm[64]])
        u, v = self._axes(knots)
        order = np.argsort(u)
        self.knots_u, self.knots_v = u[order], v[order]

    def _axes(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rel = np.asarray(points, np.float64) - self.centre
        return rel @ self.across / self.half, rel @ self.down

    def coords(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(u, dv): across in half mouth widths, pixels below the lips' meeting line."""
        u, v = self._axes(points)
        return u, v - np.interp(u, self.knots_u, self.knots_v)

    def drop(self, u: np.ndarray, dv: np.ndarray) -> np.ndarray:
        """G(u, dv): how far (pixels) the face at and below the lips moves down."""
        lens = np.clip(1.0 - np.abs(u) ** 4, 0.0, 1.0)
        jaw = self.JAW * np.exp(-(u**2) / (2 * 1.6**2))
        # below the lower lip (about where the pixel came from, more than 0.4 half widths under the lips' line) the
        # lips' lens shape gives way to the jaw's over a half mouth width
        b = np.clip((dv - self.gap * lens) / self.half - 0.4, 0.0, 1.0)
        b = b * b * (3 - 2 * b)
        tail = np.exp(-(np.maximum(dv - 2.0 * self.half, 0.0) ** 2) / (2 * (0.8 * self.half) ** 2))
        return self.gap * (lens * (1 - b) + jaw * b) * tail

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """The backward displacement (output pixel samples output - displacement): clip(dv, 0, G) down."""
        u, dv = self.coords(points)
        return np.clip(dv, 0.0, self.drop(u, np.maximum(dv, 0.0)))[..., None] * self.down

    def cavity(self, points: np.ndarray) -> np.ndarray:
        """1 where an output pixel lies in the opened gap (it samples the lips' line), else 0."""
        u, dv = self.coords(points)
        return ((dv > 0) & (dv < self.drop(u, np.maximum(dv, 0.0)))).astype(np.float32)

    def move(self, points: np.ndarray) -> np.ndarray:
        """Where points go: those on or below the lips' line (and the lower lip's, whatever rounding says) move
        down with the jaw; the rest stay."""
        x = np.asarray(points, np.float64)
        u, dv = self.coords(x)
        lower = dv >= 0
        if len(x) == 68:
            lower[list(LOWER_INNER_LIP + LOWER_OUTER_LIP)] = True
            lower[[48, 54, 60, 64]] = False  # the corners stay closed
        y = x.copy()
        for _ in range(12):  # y = x + G(y) down, a fixed point (G's slope is well under 1)
            uy, dvy = self.coords(y)
            y = np.where(lower[:, None], x + self.drop(uy, np.maximum(dvy, 0.0))[:, None] * self.down, x)
        return y


def smile_displacement(landmarks: np.ndarray, amount: float) -> Displacement:
    """The smile as a displacement of output pixels, in the mouth's own axes (u across, v down, in half mouth
    widths from the corners' middle): up by SMILE_LIFT * amount * (1 - exp(-2 u^2)) / (1 - exp(-2)) (0 at the lips'
    middle, 1 at the corners), out by SMILE_WIDEN * amount * u; both fade with a Gaussian in v beyond the lips (|v|
    over 0.5, sigma 0.7: the nose base and chin move less, the eyes not at all) and in u (sigma 2: the cheeks
    follow)."""
    lm = np.asarray(landmarks, np.float64)
    d = eye_distance(lm)
    across = (lm[45] - lm[36]) / (np.linalg.norm(lm[45] - lm[36]) + 1e-9)
    down = np.array([-across[1], across[0]])
    centre = (lm[48] + lm[54]) / 2
    half = max(float(np.linalg.norm(lm[54] - lm[48])) / 2, 1e-3)
    lift, widen = SMILE_LIFT * amount * d, SMILE_WIDEN * amount * d
    norm = 1.0 - np.exp(-2.0)

    def displacement(points: np.ndarray) -> np.ndarray:
        rel = (np.asarray(points, np.float64) - centre) / half
        u, v = rel @ across, rel @ down
        # the lips (|v| < 0.5) move as a piece, so their line stays thin; the skin beyond takes up the stretch
        fade = np.exp(-(np.maximum(np.abs(v) - 0.5, 0.0) ** 2) / (2 * 0.7**2) - u**2 / (2 * 2.0**2))
        up = lift * (1.0 - np.exp(-2.0 * u**2)) / norm * fade
        out = widen * u * fade
        return -up[..., None] * down + out[..., None] * across

    return displacement


def forward(points: np.ndarray, displacement: Displacement, iterations: int = 12) -> np.ndarray:
    """Where points go under a backward warp by ``displacement`` (output pixel y samples the input at
    y - displacement(y)): the y with y - displacement(y) = x, by fixed-point iteration (the fields are gentle)."""
    x = np.asarray(points, np.float64)
    y = x.copy()
    for _ in range(iterations):
        y = x + displacement(y)
    return y


def displacement_map(displacement: Displacement, shape: tuple[int, int], box: np.ndarray) -> np.ndarray:
    """Backward map (H x W x 2, float32) for :func:`cv2.remap` of a displacement that is non-zero only inside
    ``box`` ((x0, y0), (x1, y1)), evaluated at every pixel of the box."""
    h, w = shape
    base = identity_map(shape)
    x0, y0 = np.clip(np.floor(box[0]).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(box[1]).astype(int), 0, [w - 1, h - 1])
    if x1 <= x0 or y1 <= y0:
        return base
    region = base[y0 : y1 + 1, x0 : x1 + 1]
    region -= displacement(region.astype(np.float64)).astype(np.float32)
    return base


def identity_map(shape: tuple[int, int]) -> np.ndarray:
    """The backward map (H x W x 2, float32) that moves nothing: each output pixel samples itself."""
    h, w = shape
    return np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), axis=-1)


def coarse_grid(
    points: np.ndarray, reach: float, shape: tuple[int, int], step: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """A grid every ``step`` pixels over the box around ``points`` grown by ``reach`` (clipped to the image): the
    box's first and last pixel (x, y) and the grid's x and y (float64 meshgrids, reaching at least the last pixel);
    None when the box is empty. Smooth fields are evaluated there and spread over the box by :func:`add_upsampled`."""
    h, w = shape
    lo = np.floor(np.maximum(points.min(axis=0) - reach, 0)).astype(int)
    hi = np.ceil(np.minimum(points.max(axis=0) + reach, [w - 1, h - 1])).astype(int)
    if (hi <= lo).any():
        return None
    gx, gy = np.meshgrid(
        np.arange(lo[0], hi[0] + step, step, dtype=np.float64), np.arange(lo[1], hi[1] + step, step, dtype=np.float64)
    )
    return lo, hi, gx, gy


def add_upsampled(
    base: np.ndarray, coarse: np.ndarray, lo: np.ndarray, hi: np.ndarray, step: int, sign: float = 1.0
) -> np.ndarray:
    """``base`` (H x W x 2) plus ``sign`` x the grid values ``coarse`` (evaluated every ``step`` pixels from the box
    corner ``lo``, as :func:`coarse_grid` lays them), bilinearly upsampled to one value per pixel over the box
    ``lo`` .. ``hi``; ``base`` is changed in place and returned."""
    coarse = coarse.astype(np.float32)
    rows, cols = coarse.shape[:2]
    full = cv2.resize(coarse, ((cols - 1) * step + 1, (rows - 1) * step + 1)) if step > 1 else coarse
    box_w, box_h = int(hi[0] - lo[0] + 1), int(hi[1] - lo[1] + 1)
    region = base[lo[1] : lo[1] + box_h, lo[0] : lo[0] + box_w]
    region += sign * full[:box_h, :box_w]
    return base


def displacement_field(src: np.ndarray, dst: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Backward map (H x W x 2, float32) taking each output pixel to where it samples the input, interpolated from
    control points ``dst -> src`` with normalised Gaussian weights; points that do not move pull the field to 0.

    Computed only in the box around the moving points (3 sigma beyond; zero outside) on a grid of about sigma / 2
    pixels, then upsampled: the field is smooth at the scale of sigma, and training warps thousands of crops."""
    h, w = shape
    base = identity_map(shape)
    offsets = src - dst
    moving = np.abs(offsets).max(axis=1) > 1e-6
    if not moving.any():
        return base
    step = int(np.clip(sigma / 2.0, 1, 8))
    grid = coarse_grid(dst[moving], 3.0 * sigma, shape, step)
    if grid is None:
        return base
    lo, hi, gx, gy = grid
    d2 = (gx[..., None] - dst[None, None, :, 0]) ** 2 + (gy[..., None] - dst[None, None, :, 1]) ** 2
    weight = np.exp(-d2 / (2 * sigma * sigma))
    field = np.einsum("yxn,nc->yxc", weight, offsets) / (weight.sum(2)[..., None] + 1e-3)
    # fade to zero towards the border: the background never moves
    edge = np.minimum.reduce([gx, gy, (w - 1) - gx, (h - 1) - gy]) / (0.08 * min(h, w))
    field *= np.clip(edge, 0.0, 1.0)[..., None]
    return add_upsampled(base, field, lo, hi, step)


def paint_mouth(image: Image, lm: np.ndarray, amount: float, d: float, cavity: np.ndarray | None = None) -> None:
    """Darken the opened mouth (``cavity``, else the moved inner-lip polygon; feathered) towards a mouth-interior
    colour, keeping some of the stretched texture, and lay a band of upper teeth along the upper inner lip when
    wide open."""
    h, w = image.shape[:2]
    if cavity is None:
        poly = np.round(lm[list(INNER_MOUTH)] * 4).astype(np.int32)  # 2 fractional bits: smooth small polygons
        cavity = np.zeros((h, w), np.float32)
        cv2.fillPoly(cavity, [poly], 1.0, lineType=cv2.LINE_AA, shift=2)
    if cavity.sum() < 2:
        return
    # only the cavity's box, grown by twice the blurs' reach, is touched (beyond it alpha is 0): the same pixels
    # as painting the whole crop, at a fraction of its cost (this runs on every frame of an open mouth)
    x, y, bw, bh = cv2.boundingRect((cavity > 0).astype(np.uint8))
    pad = 2 * int(np.ceil(4 * max(0.6, 0.025 * d))) + 2
    x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(w, x + bw + pad), min(h, y + bh + pad)
    roi, cavity = image[y0:y1, x0:x1], cavity[y0:y1, x0:x1]
    lm = lm - np.array([x0, y0], np.float64)
    interior = np.array([38, 32, 70], np.float32)  # BGR: a dim red-brown, what a mouth looks like inside
    colour = np.empty(roi.shape, np.float32)
    colour[:] = interior
    strength = float(np.clip(amount / 0.25, 0.0, 1.0))  # a slightly parted mouth only darkens a little
    if amount > 0.12:  # upper teeth, the whole width of the upper inner lip
        teeth = np.zeros(cavity.shape, np.float32)
        top: np.ndarray = lm[[60, 61, 62, 63, 64]]
        depth = min(0.11 * d, 0.45 * amount * d)
        band = np.concatenate([top, top[::-1] + np.array([0.0, depth])])
        cv2.fillPoly(teeth, [np.round(band * 4).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=2)
        teeth = cv2.GaussianBlur(teeth, (0, 0), max(0.6, 0.015 * d)) * cavity
        colour = colour * (1 - teeth[..., None]) + np.array([200, 210, 222], np.float32) * teeth[..., None]
    alpha = cv2.GaussianBlur(cavity, (0, 0), max(0.6, 0.025 * d))[..., None] * (0.85 * strength)
    roi[:] = np.clip(roi * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


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
    smile: float = 0.0,
    rigid_jaw: bool = False,
) -> tuple[Image, np.ndarray, tuple[np.ndarray, ...]]:
    """Open the mouth by ``mouth`` eye distances, close the eyes by ``eyes`` (0..1) and smile by ``smile`` (0..1, 1
    a clear closed-mouth smile) in ``image`` (H x W x 3 uint8).
    ``extra`` arrays (H x W masks) are warped with the same field. ``paint_lids=False``: the lids are only moved,
    not painted over (a squint). ``rigid_jaw=True``: the mouth opens by :class:`JawDrop` (the drawn lips exactly
    where the returned landmarks say) instead of the field interpolated from the moved landmarks.
    Returns (image, moved landmarks, extra)."""
    lm = np.asarray(landmarks, np.float64)
    smile = max(float(smile), 0.0)
    if mouth <= 0 and eyes <= 0 and smile <= 0:
        return image.copy(), lm.copy(), tuple(e.copy() for e in extra)
    moved = moved_landmarks(lm, mouth, eyes, smile, rigid_jaw)
    d = eye_distance(lm)
    shape = (image.shape[0], image.shape[1])
    warped, extra_out = image, tuple(extra)

    def remap(field: np.ndarray) -> None:
        nonlocal warped, extra_out
        warped = cv2.remap(warped, field[..., 0], field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        extra_out = tuple(
            cv2.remap(e, field[..., 0], field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            for e in extra_out
        )

    # In the order moved_landmarks applies them: the mouth opens (a field interpolated from the landmarks, smooth
    # over a wide area, or the rigid jaw's), the smile's field, then the lids (a field within the eye only).
    cavity = None
    if mouth > 0 and rigid_jaw:
        jaw = JawDrop(lm, mouth)
        box = _box(lm[list(range(2, 15)) + list(range(48, 68))], 0.5 * d)
        remap(displacement_map(jaw.displacement, shape, box))
        cavity = _evaluate(jaw.cavity, shape, box)
    elif mouth > 0:
        remap(_landmark_field(lm, moved_landmarks(lm, mouth=mouth), ANCHORS, 0.35 * d, shape))
    if smile > 0:
        remap(np.stack(smile_map(lm, smile, shape), axis=-1))
    if eyes > 0:
        below = lm[list(LOWER_LIDS)] + np.array([0.0, 0.12 * d])  # the skin under the lower lids holds still
        remap(_landmark_field(lm, moved_landmarks(lm, eyes=eyes), EYE_ANCHORS, 0.07 * d, shape, below))
    warped = np.ascontiguousarray(warped)
    if mouth > 0.03:
        if cavity is not None and smile > 0:  # the gap was drawn before the smile moved it
            cavity = cv2.remap(cavity, *smile_map(lm, smile, shape), cv2.INTER_LINEAR)
        paint_mouth(warped, moved, mouth, d, cavity)
    if eyes > 0.05 and paint_lids:
        _paint_lids(warped, lm, float(np.clip(eyes, 0.0, 1.0)), d)
    return warped, moved, extra_out


def _landmark_field(
    lm: np.ndarray,
    target: np.ndarray,
    keep: tuple[int, ...],
    sigma: float,
    shape: tuple[int, int],
    still: np.ndarray | None = None,
) -> np.ndarray:
    """The backward map that moves the landmarks that move in ``target``, holding the ``keep`` landmarks (and the
    ``still`` extra points) where they are."""
    movers = [i for i in range(68) if np.any(np.abs(target[i] - lm[i]) > 1e-6)]
    idx = movers + [i for i in keep if i not in movers]
    src, dst = lm[idx], target[idx]
    if still is not None:
        src, dst = np.concatenate([src, still]), np.concatenate([dst, still])
    return displacement_field(src, dst, shape, sigma=sigma)


def smile_map(lm: np.ndarray, smile: float, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    field = displacement_map(smile_displacement(lm, smile), shape, _box(lm[48:60], 3.5 * eye_distance(lm)))
    return field[..., 0], field[..., 1]


def _evaluate(function: Callable[[np.ndarray], np.ndarray], shape: tuple[int, int], box: np.ndarray) -> np.ndarray:
    """An H x W float32 image of ``function`` of the pixel positions inside ``box``, 0 outside."""
    h, w = shape
    out = np.zeros((h, w), np.float32)
    x0, y0 = np.clip(np.floor(box[0]).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(box[1]).astype(int), 0, [w - 1, h - 1])
    gx, gy = np.meshgrid(np.arange(x0, x1 + 1, dtype=np.float64), np.arange(y0, y1 + 1, dtype=np.float64))
    out[y0 : y1 + 1, x0 : x1 + 1] = function(np.stack([gx, gy], axis=-1))
    return out


def _box(points: np.ndarray, margin: float) -> np.ndarray:
    """((x0, y0), (x1, y1)): the points' bounding box grown by ``margin`` pixels."""
    return np.stack([points.min(axis=0) - margin, points.max(axis=0) + margin])


# ------------------------------------------------------------------------------------- lip press and brow raise
# Amount 1, in eye distances (or of the lips' own thickness): the outer lip line moves LIP_PRESS_THIN of each lip's
# thickness towards the line where the lips meet (thin, pressed lips), the inner lips close, and the corners move in
# by LIP_PRESS_NARROW and down by LIP_PRESS_DROP (the narrow, corners-down mouth of pressed lips). A brow raise lifts
# every brow point by BROW_LIFT; the eyes, nose and jaw hold still, so the skin between lids and brows stretches.
LIP_PRESS_THIN, LIP_PRESS_NARROW, LIP_PRESS_DROP = 0.45, 0.07, 0.05
BROW_LIFT = 0.16
UPPER_OUTER_LIP = (49, 50, 51, 52, 53)
LOWER_OUTER_LIP_MIDDLE = (55, 56, 57, 58, 59)
MOUTH_CORNER_POINTS = (48, 54, 60, 64)
BROWS = tuple(range(17, 27))
# what holds still under a lip press and a brow raise: jaw, nose and eyes (lids included)
HELD_STILL = tuple(range(0, 17)) + tuple(range(27, 48))


def lip_press_landmarks(landmarks: np.ndarray, amount: float) -> np.ndarray:
    """Where the landmarks go when the lips press together by ``amount`` (0..1)."""
    lm = np.asarray(landmarks, np.float64)
    out = lm.copy()
    amount = float(np.clip(amount, 0.0, 1.0))
    if amount <= 0:
        return out
    d = eye_distance(lm)
    across, down = face_axes(lm)
    meet = (lm[list(INNER_MOUTH)] @ down).mean()  # where the lips meet, along the face's down axis
    for i in UPPER_OUTER_LIP + LOWER_OUTER_LIP_MIDDLE:
        out[i] = lm[i] + amount * LIP_PRESS_THIN * (meet - lm[i] @ down) * down
    for i in UPPER_INNER_LIP + LOWER_INNER_LIP:  # an open gap closes
        out[i] = lm[i] + amount * (meet - lm[i] @ down) * down
    centre = (lm[48] + lm[54]) / 2
    for i in MOUTH_CORNER_POINTS:
        inward = np.sign((centre - lm[i]) @ across) * across
        out[i] = lm[i] + amount * d * (LIP_PRESS_NARROW * inward + LIP_PRESS_DROP * down)
    return out


# A lip close shuts parted lips (a toothy smile): the inner lips go to the line where they meet, and the outer
# lips move towards it by LIP_CLOSE_THIN of their distance (closed lips are thinner than lips stretched over teeth,
# and the face mesh reads thick lips around a closed mouth as a parted one: the astronaut's toothy smile closed
# with the lips' full thickness read 0.14 eye distances open, 0.04 with 0.6 of it, her camera open 0.16); the skin
# within LIP_CLOSE_REACH eye distances above and below stretches to follow, the corners hold. Training: an identity
# whose every photo shows parted lips learns a closed resting mouth (training.augment's rest_close).
LIP_CLOSE_THIN = 0.6
LIP_CLOSE_REACH = 0.25
# the four lip lines from corner to corner, top to bottom: upper outer, upper inner, lower inner, lower outer
LIP_LINES = (
    (48, *UPPER_OUTER_LIP, 54),
    (60, *UPPER_INNER_LIP, 64),
    (60, *LOWER_INNER_LIP, 64),
    (48, *LOWER_OUTER_LIP_MIDDLE, 54),
)


def lip_close_landmarks(landmarks: np.ndarray, amount: float) -> np.ndarray:
    """Where the landmarks go when parted lips close by ``amount`` (0..1: 1 = the inner lips meet), on an aligned
    (upright) crop: the inner lips move vertically to the line where they meet, the outer lips towards it by
    ``amount`` x LIP_CLOSE_THIN of their distance; the corners hold."""
    lm = np.asarray(landmarks, np.float64)
    out = lm.copy()
    amount = float(np.clip(amount, 0.0, 1.0))
    if amount <= 0:
        return out
    inner = list(UPPER_INNER_LIP + LOWER_INNER_LIP)
    outer = list(UPPER_OUTER_LIP + LOWER_OUTER_LIP_MIDDLE)
    meet = lm[inner, 1].mean()
    out[inner, 1] = lm[inner, 1] + amount * (meet - lm[inner, 1])
    out[outer, 1] = lm[outer, 1] + amount * LIP_CLOSE_THIN * (meet - lm[outer, 1])
    return out


def _line_at(lm: np.ndarray, line: tuple[int, ...], xs: np.ndarray) -> np.ndarray:
    p = lm[list(line)]
    order = np.argsort(p[:, 0])
    return np.interp(xs, p[order, 0], p[order, 1])


def lip_close_warp(
    image: Image, landmarks: np.ndarray, amount: float, extra: tuple[np.ndarray, ...] = ()
) -> tuple[Image, np.ndarray, tuple[np.ndarray, ...]]:
    """Close parted lips by ``amount`` (0..1) on an aligned crop (:func:`lip_close_landmarks`): in each column
    between the mouth corners a piecewise-linear vertical map takes each lip (outer line to inner line) to its new
    place and squeezes what lay between the inner lines (the teeth) into the gap left (none at 1); the skin above
    and below stretches over LIP_CLOSE_REACH eye distances, and the map fades out towards the corners (over the
    span from the outer to the inner corner). Exact, unlike a smooth field, which cannot shut a gap a few pixels
    high. ``extra`` (H x W masks) move with the image. Returns (image, moved landmarks, extra)."""
    lm = np.asarray(landmarks, np.float64)
    moved = lip_close_landmarks(lm, amount)
    h, w = image.shape[:2]
    left, right = sorted((float(lm[48, 0]), float(lm[54, 0])))
    x0, x1 = int(np.clip(np.floor(left), 0, w - 1)), int(np.clip(np.ceil(right), 0, w))
    if np.allclose(moved, lm) or x1 - x0 < 2:
        return image.copy(), moved, tuple(x.copy() for x in extra)
    xs = np.arange(x0, x1, dtype=np.float64)
    reach = LIP_CLOSE_REACH * eye_distance(lm)
    src = [_line_at(lm, line, xs) for line in LIP_LINES]
    dst = [_line_at(moved, line, xs) for line in LIP_LINES]
    # fade: 0 at the outer corners (48, 54), 1 inside the inner ones (60, 64)
    inner_left, inner_right = sorted((float(lm[60, 0]), float(lm[64, 0])))
    fade = np.minimum(
        np.clip((xs - left) / max(inner_left - left, 1.0), 0, 1),
        np.clip((right - xs) / max(right - inner_right, 1.0), 0, 1),
    )
    fade = fade * fade * (3 - 2 * fade)
    field = identity_map((h, w))
    ys = np.arange(h, dtype=np.float64)
    for k, x in enumerate(range(x0, x1)):
        top, upper, lower, bottom = (float(s[k]) for s in src)
        lower, bottom = max(lower, upper), max(bottom, lower)
        top = min(top, upper)
        src_knots = [top - reach, top, upper, lower, bottom, bottom + reach]
        new = [float(s[k]) for s in dst]
        new[2] = max(new[2], new[1])
        out_knots = [src_knots[0]] + [s + fade[k] * (n - s) for s, n in zip(src_knots[1:5], new, strict=True)]
        out_knots.append(src_knots[5])
        for m in range(1, len(out_knots)):  # strictly increasing for np.interp (a shut gap is one line)
            out_knots[m] = max(out_knots[m], out_knots[m - 1] + 1e-3)
        inside = (ys >= src_knots[0]) & (ys <= src_knots[5])
        field[inside, x, 1] = np.interp(ys[inside], out_knots, src_knots)

    def remap(a: np.ndarray) -> np.ndarray:
        return cv2.remap(a, field, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    return np.ascontiguousarray(remap(image)), moved, tuple(remap(x) for x in extra)


def brow_raise_landmarks(landmarks: np.ndarray, amount: float) -> np.ndarray:
    """Where the landmarks go when the brows rise by ``amount`` (0..1; 1 = BROW_LIFT eye distances)."""
    lm = np.asarray(landmarks, np.float64)
    out = lm.copy()
    amount = float(np.clip(amount, 0.0, 1.0))
    if amount <= 0:
        return out
    up = -face_axes(lm)[1]
    for i in BROWS:
        out[i] = lm[i] + amount * BROW_LIFT * eye_distance(lm) * up
    return out


def lip_press_warp(
    image: Image, landmarks: np.ndarray, amount: float, extra: tuple[np.ndarray, ...] = ()
) -> tuple[Image, np.ndarray, tuple[np.ndarray, ...]]:
    """Press the lips together by ``amount`` (0..1): thinner lips, a closed gap, corners in and down. A landmark
    field (as the eyes' warp): the jaw, nose and eyes hold still. ``extra`` (H x W masks) move with the image.
    Returns (image, moved landmarks, extra)."""
    lm = np.asarray(landmarks, np.float64)
    moved = lip_press_landmarks(lm, amount)
    return _landmark_warp(image, lm, moved, HELD_STILL, 0.07 * eye_distance(lm), extra)


def brow_raise_warp(
    image: Image, landmarks: np.ndarray, amount: float, extra: tuple[np.ndarray, ...] = ()
) -> tuple[Image, np.ndarray, tuple[np.ndarray, ...]]:
    """Raise the brows by ``amount`` (0..1): a landmark field that lifts the brows (and the forehead just above
    them) while the eyes, nose and jaw hold still. ``extra`` (H x W masks) move with the image.
    Returns (image, moved landmarks, extra)."""
    lm = np.asarray(landmarks, np.float64)
    moved = brow_raise_landmarks(lm, amount)
    return _landmark_warp(image, lm, moved, HELD_STILL, 0.2 * eye_distance(lm), extra)


def _landmark_warp(
    image: Image,
    lm: np.ndarray,
    target: np.ndarray,
    keep: tuple[int, ...],
    sigma: float,
    extra: tuple[np.ndarray, ...],
) -> tuple[Image, np.ndarray, tuple[np.ndarray, ...]]:
    """Resample ``image`` (and ``extra``) so that the landmarks ``lm`` go to ``target``, ``keep`` held still."""
    if np.allclose(target, lm):
        return image.copy(), target, tuple(e.copy() for e in extra)
    field = _landmark_field(lm, target, keep, sigma, (image.shape[0], image.shape[1]))

    def remap(a: np.ndarray) -> np.ndarray:
        return cv2.remap(a, field[..., 0], field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    return np.ascontiguousarray(remap(image)), target, tuple(remap(e) for e in extra)
