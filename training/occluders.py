"""Synthetic occluders for training: a hand, a cup, a phone in front of the face, and the mask target that says so.

The learned mask (the model's second output) decides where the live compositor pastes the swapped face. Trained on
landmark hulls alone it covers the whole face whatever is in front of it, so a hand over the mouth is painted over
with the swapped face. :func:`paste_occluder` draws an object over a training input and returns its exact alpha;
training multiplies the sample's mask target by ``1 - alpha`` (training.augment), so the model learns to leave out
what is not face. The face target stays the whole face: the decoder keeps drawing the face behind the object.

Kinds (:data:`KINDS`), all drawn with OpenCV on the crop itself (no image files needed):

- ``hand``: a palm ellipse, four fingers and a thumb (capsules), often a forearm reaching in from the crop's edge;
  a skin tone taken from the face itself or drawn from a range of skin tones; shaded (darker edges, a light
  direction, finger outlines).
- ``bar``: a pen, a phone or a microphone (rectangles and capsules, dark or coloured, shaded along their width).
- ``round``: a cup (a body, a rim and sometimes a handle) or a ball/fruit, one colour with radial shading.
- ``patch``: a piece of another training crop (``others``; DeepFaceLab's XSeg trainer pastes other samples'
  backgrounds) in a random ellipse or polygon: real texture (hair, clothes, background, skin) the model cannot
  recognise by colour alone.

Placement follows where things are held: mostly over the lower face (mouth, chin, cheeks), sometimes anywhere on it,
sometimes entering from the crop's edge (an arm, a microphone); 5-35 % of the face's area; any rotation; edges
softened by a 1-2 px blur and now and then a motion blur. Alpha is quantised to 1/255 steps, so ``1 - alpha`` is the
exact mask target and pixels with alpha 0 are the input's own, bit for bit.
"""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ("hand", "bar", "round", "patch")
# Share of each kind: hands and patches most (benchmarks/occluder_finetune.md: shapes only, patches only and this mix
# cut occluders alike after 300 fine-tuning steps, the unseen kind included; the mix covers both).
KIND_WEIGHTS = (0.35, 0.2, 0.15, 0.3)

AREA = (0.05, 0.35)  # occluder area as a fraction of the face's (hull) area
LOWER_FACE = 0.6  # share of occluders centred on the lower face (mouth, chin, cheeks)
FROM_EDGE = 0.3  # share of hands and bars that reach in from the crop's edge (an arm, a microphone's cable side)
MOTION_BLUR = 0.2  # share with a motion blur on top of the edge blur

# BGR skin tones from light to dark; a random tone is a mix of two neighbours.
SKIN_TONES = np.array(
    [(196, 214, 246), (160, 190, 232), (120, 160, 214), (90, 130, 190), (62, 96, 150), (40, 62, 100), (28, 42, 70)],
    np.float32,
)

_SHIFT = 4  # fractional bits of the polygon coordinates handed to OpenCV (sub-pixel edges)


def choose_kind(rng: np.random.Generator) -> str:
    return str(KINDS[int(rng.choice(len(KINDS), p=np.asarray(KIND_WEIGHTS) / sum(KIND_WEIGHTS)))])


def paste_occluder(
    face: np.ndarray,
    rng: np.random.Generator,
    others: np.ndarray | None = None,
    face_mask: np.ndarray | None = None,
    kind: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste one occluder over ``face`` (HxWx3 uint8 BGR); returns (the pasted face, its alpha HxW float32 in [0, 1]).

    ``others`` (N x H x W x 3 uint8, e.g. the faceset) are where ``patch`` occluders cut their texture (the face
    itself when None); ``face_mask`` (HxW, the landmark hull) places and sizes the occluder and gives the skin tone of
    hands (the central half of the crop when None); ``kind`` one of :data:`KINDS` (None: drawn from ``rng``).
    Pixels where alpha is 0 are returned unchanged.
    """
    if face.ndim != 3 or face.shape[2] != 3 or face.dtype != np.uint8:
        raise ValueError(f"face has shape {face.shape} and dtype {face.dtype}, expected HxWx3 uint8")
    h, w = face.shape[:2]
    kind = choose_kind(rng) if kind is None else kind
    if kind not in KINDS:
        raise ValueError(f"occluder kind {kind!r}, expected one of {', '.join(KINDS)}")
    region = _face_region(face_mask, h, w)
    colour, alpha = _DRAW[kind](face, rng, region, others)
    alpha = _soften(colour, alpha, rng)
    alpha = np.round(np.clip(alpha, 0.0, 1.0) * 255.0) * np.float32(1 / 255)
    a = alpha[..., None]
    blended = face.astype(np.float32) * (1.0 - a) + colour * a
    out = np.where(a > 0, np.clip(blended + 0.5, 0, 255).astype(np.uint8), face)
    return out, alpha.astype(np.float32)


# --------------------------------------------------------------------------------------------------- placement
class _Region:
    """Where the face is: its box (x0, y0, x1, y1), area in pixels, and the pixels that sample its skin tone."""

    def __init__(self, box: tuple[float, float, float, float], area: float, inside: np.ndarray, size: tuple[int, int]):
        self.box, self.area, self.inside, self.size = box, area, inside, size


def _face_region(face_mask: np.ndarray | None, h: int, w: int) -> _Region:
    if face_mask is not None:
        inside = np.asarray(face_mask) > 0.5
        if inside.sum() >= 16:
            ys, xs = np.nonzero(inside)
            return _Region((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), float(inside.sum()), inside, (h, w))
    inside = np.zeros((h, w), bool)
    inside[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = True
    return _Region((w / 4, h / 4, 3 * w / 4, 3 * h / 4), float(inside.sum()), inside, (h, w))


def _centre(rng: np.random.Generator, region: _Region) -> np.ndarray:
    """Mostly the lower face (mouth, chin, cheeks: where hands, cups and microphones go), else anywhere on it."""
    x0, y0, x1, y1 = region.box
    bw, bh = x1 - x0, y1 - y0
    if rng.random() < LOWER_FACE:
        return np.array([rng.uniform(x0 + 0.1 * bw, x1 - 0.1 * bw), rng.uniform(y0 + 0.55 * bh, y1 + 0.05 * bh)])
    return np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])


def _target_area(rng: np.random.Generator, region: _Region) -> float:
    return float(rng.uniform(*AREA) * region.area)


def _place(points: np.ndarray, centre: np.ndarray, angle: float, scale: float) -> np.ndarray:
    """Local shape points (x right, y down, around 0) -> crop pixels: scaled, rotated by ``angle`` radians, moved."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return points * scale @ rot.T + centre


def _fill(canvas: np.ndarray, polygons: list[np.ndarray]) -> None:
    """The union of ``polygons`` at 255 (one call each: one fillPoly call of overlapping polygons would XOR them)."""
    for p in polygons:
        pts = np.round(p * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(canvas, [pts], 255, lineType=cv2.LINE_AA, shift=_SHIFT)


def _capsule(p0: np.ndarray, p1: np.ndarray, radius: float, n: int = 10) -> np.ndarray:
    """A stadium (segment p0-p1 with round ends of ``radius``) as a polygon."""
    d = p1 - p0
    a = np.arctan2(d[1], d[0])
    t0 = np.linspace(a + np.pi / 2, a + 3 * np.pi / 2, n)
    t1 = np.linspace(a - np.pi / 2, a + np.pi / 2, n)
    return np.concatenate(
        [
            p1 + radius * np.stack([np.cos(t1), np.sin(t1)], 1),
            p0 + radius * np.stack([np.cos(t0), np.sin(t0)], 1),
        ]
    )


def _ellipse(centre: tuple[float, float], axes: tuple[float, float], n: int = 32) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + axes[0] * np.cos(t), centre[1] + axes[1] * np.sin(t)], 1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def _unit_area(polygons: list[np.ndarray]) -> float:
    """Area of the union of local-frame polygons (rasterised at 40 px per unit)."""
    pts = np.concatenate(polygons)
    lo, hi = pts.min(0), pts.max(0)
    scale = 40.0
    size = np.ceil((hi - lo) * scale).astype(int) + 4
    canvas = np.zeros((int(size[1]), int(size[0])), np.uint8)
    _fill(canvas, [(p - lo) * scale + 2 for p in polygons])
    return float(canvas.sum() / 255.0) / scale**2


def _rasterise(
    polygons: list[np.ndarray],
    extra: list[np.ndarray],
    rng: np.random.Generator,
    region: _Region,
    angle: float | None = None,
) -> tuple[np.ndarray, list[np.ndarray], float]:
    """Size ``polygons`` (local frame) to the target area, place and rotate them; ``extra`` polygons (an arm, a
    cable side) follow the same transform without counting towards the area. Returns the hard mask (uint8 0..255),
    the placed polygons (in the same order as ``polygons + extra``) and the scale."""
    h, w = region.size
    scale = np.sqrt(_target_area(rng, region) / max(_unit_area(polygons), 1e-6))
    angle = float(rng.uniform(-np.pi, np.pi)) if angle is None else angle
    centre = _centre(rng, region)
    placed = [_place(p, centre, angle, scale) for p in polygons + extra]
    mask = np.zeros((h, w), np.uint8)
    _fill(mask, placed)
    return mask, placed, float(scale)


def _edge_angle(rng: np.random.Generator, region: _Region) -> float:
    """A rotation whose local +y (where arms and handles point) leads to the nearest crop edge from the lower face:
    mostly down, sometimes to a side."""
    base = float(rng.choice([0.0, np.pi / 2, -np.pi / 2], p=[0.6, 0.2, 0.2]))  # +y down, then left/right
    return base + float(rng.uniform(-0.5, 0.5))


def _shade(mask: np.ndarray, base: np.ndarray, rng: np.random.Generator, depth: float = 0.35) -> np.ndarray:
    """Colour canvas for a solid object: ``base`` BGR, darker towards its outline (a rounded body) and along a random
    light direction, with a little texture."""
    h, w = mask.shape
    hard = (mask > 127).astype(np.uint8)
    dist = cv2.distanceTransform(hard, cv2.DIST_L2, 3)
    reach = max(float(dist.max()), 1.0)
    body = 1.0 - depth + depth * np.sqrt(np.clip(dist / reach, 0.0, 1.0))
    a = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.0 + 0.15 * ((xs - w / 2) * np.cos(a) + (ys - h / 2) * np.sin(a)) / max(h, w)
    grain = 1.0 + rng.normal(0.0, 0.02, (h // 4 + 1, w // 4 + 1)).astype(np.float32)
    grain = cv2.resize(grain, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(base[None, None, :] * (body * light * grain)[..., None], 0, 255).astype(np.float32)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """Dark (black/grey plastic) half the time, else any saturated colour."""
    if rng.random() < 0.5:
        return np.full(3, rng.uniform(15, 70), np.float32) + rng.uniform(-6, 6, 3).astype(np.float32)
    hsv = np.array([[[rng.integers(0, 180), rng.integers(90, 256), rng.integers(70, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _skin_tone(face: np.ndarray, rng: np.random.Generator, region: _Region) -> np.ndarray:
    """The face's own median colour (as the camera sees it) half the time, else a tone from SKIN_TONES; jittered."""
    if rng.random() < 0.5:
        tone = np.median(face[region.inside], axis=0).astype(np.float32)
    else:
        t = rng.uniform(0, len(SKIN_TONES) - 1)
        i = min(int(t), len(SKIN_TONES) - 2)
        tone = SKIN_TONES[i] * (1 - (t - i)) + SKIN_TONES[i + 1] * (t - i)
    return np.clip(tone * rng.uniform(0.85, 1.15) + rng.uniform(-8, 8, 3), 0, 255).astype(np.float32)


# --------------------------------------------------------------------------------------------------- kinds
def _hand(face: np.ndarray, rng: np.random.Generator, region: _Region, others: np.ndarray | None):
    """A palm (ellipse), four fingers and a thumb (capsules); local frame: fingers up (-y), wrist down (+y)."""
    del others
    palm_w, palm_h = 1.0, rng.uniform(0.9, 1.2)
    parts = [_ellipse((0.0, 0.0), (palm_w / 2, palm_h / 2))]
    fingers = []
    width = palm_w / rng.uniform(4.2, 5.2)
    spread = rng.uniform(0.0, 0.25)
    curled = rng.random() < 0.25  # a fist: short fingers
    for k, length in enumerate((0.75, 0.9, 0.85, 0.65)):
        x = (k - 1.5) * palm_w * 0.24
        length *= rng.uniform(0.85, 1.1) * (0.35 if curled else 1.0)
        tilt = (k - 1.5) * spread + rng.uniform(-0.06, 0.06)
        base = np.array([x, -palm_h * 0.3])
        tip = base + length * np.array([np.sin(tilt), -np.cos(tilt)])
        fingers.append(_capsule(base, tip, width / 2))
    side = rng.choice([-1.0, 1.0])
    t_base = np.array([side * palm_w * 0.4, palm_h * 0.1])
    t_angle = side * rng.uniform(0.5, 1.2)
    t_tip = t_base + 0.6 * np.array([np.sin(t_angle), -np.cos(t_angle)])
    fingers.append(_capsule(t_base, t_tip, width * 0.6))
    from_edge = rng.random() < FROM_EDGE
    arm_len = 6.0 if from_edge else rng.uniform(0.2, 0.5)
    arm = [_capsule(np.array([0.0, palm_h * 0.3]), np.array([0.0, palm_h * 0.3 + arm_len]), palm_w * 0.38)]
    angle = _edge_angle(rng, region) if from_edge else None
    mask, placed, _ = _rasterise(parts + fingers, arm, rng, region, angle)
    colour = _shade(mask, _skin_tone(face, rng, region), rng, depth=0.3)
    crease = np.float32(rng.uniform(0.7, 0.85))
    for outline in placed[1 : 1 + len(fingers)]:  # the fingers' outlines: darker creases between them
        line = np.zeros(mask.shape, np.uint8)
        cv2.polylines(
            line,
            [np.round(outline * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)],
            True,
            255,
            1,
            cv2.LINE_AA,
            _SHIFT,
        )
        colour *= 1.0 - (1.0 - crease) * (line.astype(np.float32) / 255.0)[..., None]
    return colour, mask.astype(np.float32) / 255.0


def _bar(face: np.ndarray, rng: np.random.Generator, region: _Region, others: np.ndarray | None):
    """A pen (thin, long), a phone (a slab, maybe a lit screen) or a microphone (a handle and a round head)."""
    del face, others
    which = rng.choice(["pen", "phone", "mic"])
    from_edge = rng.random() < FROM_EDGE
    extra: list[np.ndarray] = []
    screen = None
    if which == "pen":
        length, width = 1.0, rng.uniform(0.06, 0.12)
        parts = [_capsule(np.array([0.0, -length / 2]), np.array([0.0, length / 2]), width / 2)]
        if from_edge:
            extra = [_rect(-width / 2, 0.0, width / 2, 6.0)]
    elif which == "phone":
        aspect = rng.uniform(1.7, 2.2)
        parts = [_rect(-0.5, -aspect / 2, 0.5, aspect / 2)]
        if rng.random() < 0.4:
            screen = _rect(-0.43, -aspect / 2 + 0.1, 0.43, aspect / 2 - 0.1)
    else:
        head = rng.uniform(0.35, 0.5)
        parts = [
            _ellipse((0.0, -0.5), (head, head * rng.uniform(1.0, 1.3))),
            _capsule(np.array([0.0, -0.4]), np.array([0.0, 0.9]), head * 0.45),
        ]
        if from_edge:
            extra = [_rect(-head * 0.45, 0.0, head * 0.45, 6.0)]
    angle = _edge_angle(rng, region) if from_edge else None
    mask, placed, _ = _rasterise(parts, extra, rng, region, angle)
    colour = _shade(mask, _random_colour(rng), rng, depth=0.45)
    if screen is not None:  # a lit screen: a bright flat inset, its own colour
        inset = np.zeros(mask.shape, np.uint8)
        centre_poly = placed[0].mean(0)
        scale = np.linalg.norm(placed[0][1] - placed[0][0])  # the slab's width in pixels: local width 1
        rot = np.arctan2(*(placed[0][1] - placed[0][0])[::-1])
        _fill(inset, [_place(screen, centre_poly, float(rot), float(scale))])
        lit = rng.uniform(150, 255, 3).astype(np.float32)
        sel = inset.astype(np.float32)[..., None] / 255.0
        colour = colour * (1 - sel) + lit[None, None, :] * sel
    return colour, mask.astype(np.float32) / 255.0


def _round(face: np.ndarray, rng: np.random.Generator, region: _Region, others: np.ndarray | None):
    """A cup (a body with a rim, sometimes a handle) or a ball/fruit (an ellipse), one colour, radially shaded."""
    del face, others
    if rng.random() < 0.6:
        width, height = 1.0, rng.uniform(0.9, 1.4)
        parts = [
            _rect(-width / 2, -height / 2, width / 2, height / 2 - 0.15),
            _ellipse((0.0, height / 2 - 0.15), (width / 2, 0.15)),
            _ellipse((0.0, -height / 2), (width / 2, 0.12)),
        ]
        if rng.random() < 0.6:  # a handle: a ring on one side, one keyhole polygon (outer loop, seam, inner loop)
            side = rng.choice([-1.0, 1.0])
            ring = _ellipse((side * width * 0.65, 0.0), (0.22, 0.28))
            hole = _ellipse((side * width * 0.65, 0.0), (0.11, 0.16))
            parts.append(np.concatenate([ring, ring[:1], hole[::-1], hole[-1:]]))
        angle = float(rng.uniform(-0.6, 0.6))  # cups are held roughly upright
    else:
        parts = [_ellipse((0.0, 0.0), (0.5, 0.5 * rng.uniform(0.8, 1.2)))]
        angle = None
    mask, _, _ = _rasterise(parts, [], rng, region, angle)
    colour = _shade(mask, _random_colour(rng), rng, depth=0.5)
    return colour, mask.astype(np.float32) / 255.0


def _patch(face: np.ndarray, rng: np.random.Generator, region: _Region, others: np.ndarray | None):
    """A piece of another crop (or of this one, elsewhere), cut in an ellipse or a random polygon."""
    h, w = region.size
    source = face if others is None or len(others) == 0 else others[int(rng.integers(len(others)))]
    if source.shape[:2] != (h, w):
        source = cv2.resize(source, (w, h), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        shape = _ellipse((0.0, 0.0), (0.5, 0.5 * rng.uniform(0.5, 1.5)))
    else:
        n = int(rng.integers(5, 10))
        t = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(0.3, 0.6, n)
        shape = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    mask, placed, scale = _rasterise([shape], [], rng, region)
    # the texture: a window of the source around a random point, rotated and scaled onto the occluder
    src_centre = rng.uniform(0.1, 0.9, 2)
    if rng.random() < 0.8:  # mostly background, hair, clothes (DeepFaceLab's choice): out of the crop's middle
        side = int(rng.integers(4))
        src_centre[side // 2] = rng.uniform(0.05, 0.25) if side % 2 else rng.uniform(0.75, 0.95)
    src_centre *= (w, h)
    dst_centre = placed[0].mean(0)
    angle = float(rng.uniform(-180, 180))
    zoom = float(rng.uniform(0.7, 1.4))
    m = cv2.getRotationMatrix2D((float(src_centre[0]), float(src_centre[1])), angle, zoom)
    m[:, 2] += dst_centre - src_centre
    if rng.random() < 0.5:
        source = cv2.flip(source, 1)
    colour = cv2.warpAffine(source, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return colour.astype(np.float32), mask.astype(np.float32) / 255.0


_DRAW = {"hand": _hand, "bar": _bar, "round": _round, "patch": _patch}


def _soften(colour: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 1-2 px edge blur, sometimes a motion blur, applied to the alpha (and the colour, premultiplied, in place)."""
    sigma = float(rng.uniform(0.3, 0.9))
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
    if rng.random() < MOTION_BLUR:
        length = int(rng.integers(3, 10))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        kernel /= max(float(kernel.sum()), 1e-6)
        premult = cv2.filter2D(colour * alpha[..., None], -1, kernel)
        alpha = cv2.filter2D(alpha, -1, kernel)
        colour[...] = premult / np.maximum(alpha, 1e-3)[..., None]
    return alpha
