"""Clips whose truth is known: what `swapcam eval` measures expression and occlusion against.

Two clips, both a sample portrait under the head motion of :func:`realtime.samples.synthetic_clip` (motion 0.6):

* ``expressions``: the portrait's own face blinks, squints, opens its mouth and smiles on a seeded schedule
  (:func:`expression_schedule`), drawn by :func:`realtime.expressions.expression_warp` in portrait space at full
  resolution before the frame's transform places it; the truth landmarks are the warp's moved landmarks through that
  transform.
* ``occluders``: the still face, crossed first by a hand (palm, four fingers and a forearm, in the person's own skin
  tone with shading and texture) that sweeps in from one side over the mouth and cheek and out again, later by a dark
  bar (a microphone or phone) that sweeps across the face; the truth masks are exactly the pixels each covers
  (anti-aliased edge pixels count where their coverage is >= 0.5).

The truth file (``<stem>.truth.json``, written by :func:`write_truth_clip`)::

    {"clip": "expressions" | "occluders", "portrait": name, "frames": N, "fps": float, "size": [W, H], "seed": S,
     "video": video file name, "landmarks": N x 68 x 2 (frame pixels, rounded to 0.01),
     "schedule": {"eyes": [N], "mouth": [N], "smile": [N]} (lid closure 0..1, added inner-lip gap in eye distances,
                 smile 0..1; all zeros for occluders),
     "events": {"blink", "squint", "mouth_open", "smile", "hand", "bar": [[start, end_exclusive], ...]},
     "masks": masks file name or null, "occluded": [N bools]}

and for occluders ``<stem>.masks.npz`` with key ``masks``: N x H x W uint8 0/1.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from realtime.atomic import atomic_replace, atomic_write_bytes
from realtime.errors import SwapcamError
from realtime.expressions import expression_warp, moved_landmarks
from realtime.landmarks.measures import eye_distance
from realtime.samples import (
    HeadMotion,
    Portrait,
    check_clip_size,
    expose,
    head_motion,
    place,
    portrait,
    write_mp4,
    write_y4m,
)
from realtime.types import Image

KINDS = ("expressions", "occluders")
TRUTH_PORTRAIT = "grace_hopper"  # the larger face of the two (eye distance 89 px vs 44) and a neutral, closed mouth
MOTION = 0.6  # head motion, as synthetic_clip's ``motion``
NOISE = 2.0  # sensor noise, grey levels
EVENTS = ("blink", "squint", "mouth_open", "smile", "hand", "bar")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".y4m")

# --------------------------------------------------------------------------------------------- expression schedule
# Durations in seconds (frames at the clip's fps; a blink at least 3). At 30 fps: blinks close and open over 5
# frames, the squint holds 14 (20 with its ramps), mouth openings last 15-16, the smile holds 23-25 (31-33). All of
# them take ~118 of the default 150 frames: the neutral lead-in gets 10, the gaps between events 2-3 (a longer clip
# gets longer gaps, the events keep their length).
BLINKS, MOUTHS = 4, 3
BLINK_S = 0.17
SQUINT_RAMP_S, SQUINT_HOLD_S, SQUINT_AMOUNT = 0.1, (0.45, 0.5), 0.45  # lids ~half closed, moved, not painted
MOUTH_RAMP_S, MOUTH_HOLD_S, MOUTH_PEAK = 0.2, (0.1, 0.13), (0.25, 0.35)  # peak gap in eye distances
SMILE_RAMP_S, SMILE_HOLD_S = 0.13, (0.77, 0.83)
LEAD_GAP, TAIL_GAP, MIN_GAP = 10, 4, 2  # neutral frames at least: before the first event, after the last, between


@dataclass
class Schedule:
    """Per-frame expression amounts (as :func:`expression_warp` takes them) and the frame ranges of each event."""

    eyes: np.ndarray  # n, lid closure 0 open .. 1 shut
    mouth: np.ndarray  # n, added inner-lip gap in eye distances
    smile: np.ndarray  # n, 0..1
    paint_lids: np.ndarray  # n bool: False while squinting (the lids move, the eye stays visible)
    events: dict[str, list[list[int]]] = field(default_factory=dict)  # name -> [[start, end_exclusive], ...]

    @classmethod
    def neutral(cls, n_frames: int) -> Schedule:
        z = np.zeros(n_frames)
        return cls(z, z.copy(), z.copy(), np.ones(n_frames, bool), {name: [] for name in EVENTS})


def _frames(seconds: float, fps: float, least: int = 1) -> int:
    return max(least, int(round(seconds * fps)))


def _ramp(n: int) -> np.ndarray:
    """n values rising smoothly (raised cosine) from just above 0 to just below 1."""
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(1, n + 1) / (n + 1))


def _envelope(ramp: int, hold: int) -> np.ndarray:
    return np.concatenate([_ramp(ramp), np.ones(hold), _ramp(ramp)[::-1]])


def expression_schedule(n_frames: int, fps: float, seed: int) -> Schedule:
    """The expressions clip's schedule: BLINKS blinks (eyes 0 -> 1 -> 0), one squint (lids SQUINT_AMOUNT closed,
    held, not painted), MOUTHS mouth openings (raised-cosine ramps to a peak gap in MOUTH_PEAK) and one held smile,
    in a seeded order, never overlapping, with neutral frames before (at least LEAD_GAP), between and after them.
    A clip too short for all of them keeps the first that fit."""
    rng = np.random.default_rng([seed, 18, 2])
    kinds = ["blink"] * BLINKS + ["mouth_open"] * MOUTHS + ["squint", "smile"]
    order = [kinds[i] for i in rng.permutation(len(kinds))]
    shapes: list[tuple[str, np.ndarray]] = []
    for kind in order:
        if kind == "blink":
            n = _frames(BLINK_S, fps, 3)
            shapes.append((kind, np.sin(np.pi * np.arange(1, n + 1) / (n + 1))))
        elif kind == "squint":
            env = _envelope(_frames(SQUINT_RAMP_S, fps), _frames(rng.uniform(*SQUINT_HOLD_S), fps))
            shapes.append((kind, SQUINT_AMOUNT * env))
        elif kind == "mouth_open":
            env = _envelope(_frames(MOUTH_RAMP_S, fps, 2), _frames(rng.uniform(*MOUTH_HOLD_S), fps))
            shapes.append((kind, rng.uniform(*MOUTH_PEAK) * env))
        else:
            shapes.append((kind, _envelope(_frames(SMILE_RAMP_S, fps, 2), _frames(rng.uniform(*SMILE_HOLD_S), fps))))
    while shapes and sum(len(s) for _, s in shapes) + LEAD_GAP + TAIL_GAP + MIN_GAP * (len(shapes) - 1) > n_frames:
        shapes.pop()
    schedule = Schedule.neutral(n_frames)
    if not shapes:
        return schedule
    # the neutral room left over, shared out at random
    spare = n_frames - sum(len(s) for _, s in shapes) - LEAD_GAP - TAIL_GAP - MIN_GAP * (len(shapes) - 1)
    weights = rng.uniform(0.6, 1.4, len(shapes) + 1)
    extra = np.floor(spare * weights / weights.sum()).astype(int)
    start = LEAD_GAP + int(extra[0])
    for k, (kind, values) in enumerate(shapes):
        end = start + len(values)
        track = {"blink": schedule.eyes, "squint": schedule.eyes, "mouth_open": schedule.mouth, "smile": schedule.smile}
        track[kind][start:end] = values
        if kind == "squint":
            schedule.paint_lids[start:end] = False
        schedule.events[kind].append([start, end])
        start = end + MIN_GAP + int(extra[k + 1])
    return schedule


# ----------------------------------------------------------------------------------------------------- occluders
# When each occluder is on screen, as fractions of the clip (so any length works); the rest is neutral.
HAND_WINDOW, BAR_WINDOW, WINDOW_JITTER = (0.12, 0.44), (0.58, 0.84), 0.02
EDGE_PX = 1.5  # the occluders' soft edge: coverage falls from 1 to 0 over this many pixels
BAR_LENGTH, BAR_RADIUS = 3.2, 0.28  # eye distances
HAND_TEXTURE_SIZE = 96


@dataclass(frozen=True)
class Capsule:
    """A segment a -> b thickened by radius r (a finger, a forearm, a bar), frame pixels."""

    a: np.ndarray
    b: np.ndarray
    r: float

    def sdf(self, p: np.ndarray) -> np.ndarray:
        ab = self.b - self.a
        t = np.clip(((p - self.a) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
        return np.linalg.norm(p - (self.a + t[..., None] * ab), axis=-1) - self.r

    def box(self) -> np.ndarray:
        return np.stack([np.minimum(self.a, self.b) - self.r, np.maximum(self.a, self.b) + self.r])

    @property
    def radius(self) -> float:
        return self.r


@dataclass(frozen=True)
class Ellipse:
    """An ellipse (a palm) at ``centre`` with semi-axes ``axes`` along (``direction``, its perpendicular)."""

    centre: np.ndarray
    axes: tuple[float, float]
    direction: np.ndarray  # unit

    def sdf(self, p: np.ndarray) -> np.ndarray:
        """Signed distance, first-order approximation (exact on the outline, which is all the edge needs)."""
        rel = p - self.centre
        perp = np.array([-self.direction[1], self.direction[0]])
        x, y = rel @ self.direction / self.axes[0], rel @ perp / self.axes[1]
        k = np.sqrt(x * x + y * y) + 1e-9
        grad = np.sqrt((x / self.axes[0]) ** 2 + (y / self.axes[1]) ** 2) / k + 1e-9
        return (k - 1.0) / grad

    def box(self) -> np.ndarray:
        r = max(self.axes)
        return np.stack([self.centre - r, self.centre + r])

    @property
    def radius(self) -> float:
        return min(self.axes)


Shape = Capsule | Ellipse


@dataclass(frozen=True)
class Occluder:
    """One occluder in one frame: its parts (their union is the shape) and its own axes, for shading."""

    name: str
    parts: tuple[Shape, ...]
    origin: np.ndarray  # frame pixels
    direction: np.ndarray  # unit: along the fingers / the bar
    scale: float  # the face's eye distance in the frame, pixels


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), frame pixels


def _box(occ: Occluder, size: tuple[int, int]) -> Box | None:
    """The occluder's bounding box clipped to the frame; None when it is off screen."""
    lo = np.min([p.box()[0] for p in occ.parts], axis=0) - 2
    hi = np.max([p.box()[1] for p in occ.parts], axis=0) + 2
    x0, y0 = int(max(np.floor(lo[0]), 0)), int(max(np.floor(lo[1]), 0))
    x1, y1 = int(min(np.ceil(hi[0]) + 1, size[0])), int(min(np.ceil(hi[1]) + 1, size[1]))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _grid(box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    return np.stack([gx, gy], axis=-1)


def _part_alphas(occ: Occluder, points: np.ndarray) -> list[tuple[Shape, np.ndarray, np.ndarray]]:
    """(part, signed distance, coverage 0..1) for each part, in drawing order."""
    out = []
    for part in occ.parts:
        sdf = part.sdf(points)
        out.append((part, sdf, np.clip(0.5 - sdf / EDGE_PX, 0.0, 1.0)))
    return out


def coverage(occ: Occluder, size: tuple[int, int]) -> tuple[np.ndarray, Box | None]:
    """(coverage 0..1 over the occluder's box, the box): how much of each pixel the occluder hides. The parts are
    drawn one over another, so a pixel shows 1 - prod(1 - part coverage) of them."""
    box = _box(occ, size)
    if box is None:
        return np.zeros((0, 0), np.float32), None
    through = np.ones(_grid(box).shape[:2])
    for _, _, alpha in _part_alphas(occ, _grid(box)):
        through *= 1.0 - alpha
    return (1.0 - through).astype(np.float32), box


def paint(occ: Occluder, size: tuple[int, int], plan: OccluderPlan) -> tuple[np.ndarray, np.ndarray, Box | None]:
    """(coverage, colour already multiplied by coverage (H x W x 3 float32), box): the occluder drawn part by part
    (forearm, palm, fingers: each finger's own rounded shading shows where it lies on the palm or its neighbour)."""
    box = _box(occ, size)
    if box is None:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0, 3), np.float32), None
    points = _grid(box)
    u, v = _local(occ, points)
    through = np.ones(points.shape[:2])
    colour = np.zeros(points.shape[:2] + (3,))
    for part, sdf, alpha in _part_alphas(occ, points):
        if occ.name == "hand":
            depth = np.clip(-sdf / (0.6 * part.radius), 0.0, 1.0)  # 0 at the outline, 1 well inside: rounded
            shade = (0.72 + 0.28 * np.sqrt(depth)) * (1.0 + 0.06 * np.clip(v, -1.0, 1.0))
            part_colour = plan.skin[None, None, :] * (shade * _hand_texture(plan, u, v))[..., None]
        else:
            part_colour = _bar_colour(v)
        colour = colour * (1.0 - alpha[..., None]) + part_colour * alpha[..., None]
        through *= 1.0 - alpha
    return (1.0 - through).astype(np.float32), colour.astype(np.float32), box


def _local(occ: Occluder, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points in the occluder's own axes (along, across), in eye distances from its origin."""
    rel = points - occ.origin
    perp = np.array([-occ.direction[1], occ.direction[0]])
    return rel @ occ.direction / occ.scale, rel @ perp / occ.scale


def _smoothstep(x: np.ndarray | float) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass
class OccluderPlan:
    """Where the occluders go: the hand's side and timing, the bar's angle, direction and timing."""

    hand_side: int  # +1: in from the frame's right, -1: from the left
    hand_window: tuple[int, int]  # frames [start, end) of the hand's sweep (in, hold, out)
    bar_angle: float  # degrees from the frame's x axis
    bar_from: int  # +1: the bar sweeps from the left to the right, -1 the other way
    bar_window: tuple[int, int]
    skin: np.ndarray  # BGR float32: the cheek's colour in the portrait
    texture: np.ndarray  # HAND_TEXTURE_SIZE^2 float32 around 1: the hand's skin texture


def occluder_plan(n_frames: int, seed: int, por: Portrait, lm: np.ndarray) -> OccluderPlan:
    rng = np.random.default_rng([seed, 18, 3])

    def window(frac: tuple[float, float]) -> tuple[int, int]:
        a, b = (np.array(frac) + rng.uniform(-WINDOW_JITTER, WINDOW_JITTER, 2)) * n_frames
        return int(round(a)), max(int(round(a)) + 1, int(round(b)))

    hand_side = int(rng.choice([-1, 1]))
    hand_window = window(HAND_WINDOW)
    bar_angle = float(rng.uniform(62, 80) * rng.choice([-1, 1]))
    bar_from = int(rng.choice([-1, 1]))
    bar_window = window(BAR_WINDOW)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (HAND_TEXTURE_SIZE, HAND_TEXTURE_SIZE)).astype(np.float32), (0, 0), 3)
    texture = 1.0 + 0.06 * texture / (np.abs(texture).max() + 1e-6)
    return OccluderPlan(hand_side, hand_window, bar_angle, bar_from, bar_window, cheek_colour(por.image, lm), texture)


def cheek_colour(image: Image, lm: np.ndarray) -> np.ndarray:
    """Median BGR of both cheeks (half way between the nose wings and the jaw line at their height)."""
    d = eye_distance(lm)
    r = max(2, int(round(0.1 * d)))
    samples = []
    for centre in ((lm[31] + lm[2]) / 2, (lm[35] + lm[14]) / 2):
        x, y = np.round(centre).astype(int)
        samples.append(image[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].reshape(-1, 3))
    return np.median(np.concatenate(samples), axis=0).astype(np.float32)


def _phase(i: int, window: tuple[int, int]) -> float:
    """0 before ``window``, 0 -> 1 across it."""
    a, b = window
    return float(np.clip((i - a) / max(b - a - 1, 1), 0.0, 1.0))


def hand_at(i: int, plan: OccluderPlan, face: np.ndarray, size: tuple[int, int]) -> Occluder | None:
    """The hand in frame ``i`` over the face whose frame landmarks are ``face``; None outside its window.

    In on a third of the window (eased), held over the mouth and cheek on the middle third, out on the last."""
    a, b = plan.hand_window
    if not a <= i < b:
        return None
    t = _phase(i, plan.hand_window)
    reach = float(_smoothstep(3.0 * t) if t < 0.5 else _smoothstep(3.0 * (1.0 - t)))  # 0 out .. 1 in place
    d = eye_distance(face)
    s = plan.hand_side
    tilt = np.deg2rad(8.0 + 4.0 * np.sin(2 * np.pi * t))  # fingers a little up, rocking
    along = np.array([-s * np.cos(tilt), -np.sin(tilt)])  # the way the fingers point: across the face
    perp = np.array([-along[1], along[0]])
    mouth = face[48:68].mean(axis=0)
    target = mouth + np.array([s * 1.4 * d, 0.12 * d])  # the palm on the cheek, the fingers over the mouth
    out_x = size[0] + 1.8 * d + 4 if s > 0 else -1.8 * d - 4  # the fingertips just off screen
    palm = target + (1.0 - reach) * np.array([out_x - target[0], 0.0])
    parts: list[Shape] = [
        Capsule(palm - 0.3 * d * along, palm - 3.5 * d * along, 0.45 * d),  # the forearm, running off screen
        Ellipse(palm, (0.78 * d, 0.66 * d), along),
    ]
    for offset, length, angle in ((-0.45, 0.85, -7.0), (-0.15, 1.1, -2.5), (0.15, 1.15, 2.5), (0.45, 1.0, 7.0)):
        base = palm + 0.5 * d * along + offset * d * perp
        turn = np.deg2rad(angle) * s
        tip_dir = np.array(
            [along[0] * np.cos(turn) - along[1] * np.sin(turn), along[0] * np.sin(turn) + along[1] * np.cos(turn)]
        )
        parts.append(Capsule(base, base + length * d * tip_dir, 0.12 * d))
    return Occluder("hand", tuple(parts), palm, along, d)


def bar_at(i: int, plan: OccluderPlan, face: np.ndarray, size: tuple[int, int]) -> Occluder | None:
    """The bar in frame ``i``: a capsule BAR_LENGTH long, 2 BAR_RADIUS wide (eye distances) at ``bar_angle``, at
    the nose's height: in from off screen to one side of the face over the first 30 % of the window, slowly across
    the face (an eye distance either side of the nose) over the middle 40 %, off screen on the other side."""
    a, b = plan.bar_window
    if not a <= i < b:
        return None
    d = eye_distance(face)
    angle = np.deg2rad(plan.bar_angle)
    along = np.array([np.cos(angle), np.sin(angle)])
    half = BAR_LENGTH / 2 * d * along
    reach = abs(half[0]) + BAR_RADIUS * d + 4  # the centre's distance from the edge when the bar is just off screen
    nose = face[27:36].mean(axis=0)
    keys = np.array([-reach, nose[0] - d, nose[0] + d, size[0] + reach])[:: plan.bar_from]
    t = float(_smoothstep(_phase(i, plan.bar_window)))
    centre = np.array([np.interp(t, [0.0, 0.3, 0.7, 1.0], keys), nose[1]])
    return Occluder("bar", (Capsule(centre - half, centre + half, BAR_RADIUS * d),), centre, along, d)


def _hand_texture(plan: OccluderPlan, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The skin texture (around 1) in the hand's own axes (u -3.5..2, v -1.5..1.5 eye distances): it moves with the
    hand."""
    n = HAND_TEXTURE_SIZE
    map_x = ((u + 3.5) / 5.5 * (n - 1)).astype(np.float32)
    map_y = ((v + 1.5) / 3.0 * (n - 1)).astype(np.float32)
    return cv2.remap(plan.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _bar_colour(v: np.ndarray) -> np.ndarray:
    """Dark grey, rounder (lighter) along the middle, with a thin highlight along one side; ``v`` across the bar
    in eye distances."""
    r = BAR_RADIUS
    across = np.clip(np.abs(v) / r, 0.0, 1.0)
    shade = 0.6 + 0.4 * np.sqrt(1.0 - across**2)
    highlight = 55.0 * np.exp(-((v - 0.45 * r) ** 2) / (2 * (0.1 * r) ** 2))
    base = np.array([34.0, 33.0, 36.0])
    return base[None, None, :] * shade[..., None] + highlight[..., None]


# ---------------------------------------------------------------------------------------------------- the clip
@functools.lru_cache(maxsize=4)
def portrait_landmarks(name: str) -> np.ndarray:
    """The 68 landmarks of a sample portrait, from mediapipe (static mode), once per process."""
    from realtime.landmarks import create_detector

    detector = create_detector("mediapipe", mode="static")
    try:
        detector.warmup()
        faces = detector.detect(portrait(name).image)
    finally:
        detector.close()
    if len(faces) != 1:
        raise SwapcamError(f"expected one face in the {name} portrait, found {len(faces)}")
    return faces[0].landmarks.astype(np.float64)


@dataclass
class TruthClip:
    """A truth clip, rendered on demand: :meth:`frame` draws one frame, :meth:`truth` says what was drawn."""

    kind: str
    portrait: Portrait
    landmarks: np.ndarray  # 68 x 2, the still portrait's
    n_frames: int
    size: tuple[int, int]
    fps: float
    seed: int
    motion: HeadMotion
    schedule: Schedule
    plan: OccluderPlan | None  # None for the expressions clip

    def __len__(self) -> int:
        return self.n_frames

    def face_landmarks(self, i: int) -> np.ndarray:
        """The drawn face's 68 landmarks in frame ``i``, frame pixels."""
        s = self.schedule
        moved = moved_landmarks(self.landmarks, s.mouth[i], s.eyes[i], s.smile[i], rigid_jaw=True)
        return cv2.perspectiveTransform(moved[None], self.motion.transforms[i])[0]

    def occluders(self, i: int) -> list[Occluder]:
        if self.plan is None:
            return []
        face = cv2.perspectiveTransform(self.landmarks[None], self.motion.transforms[i])[0]
        found = (hand_at(i, self.plan, face, self.size), bar_at(i, self.plan, face, self.size))
        return [occ for occ in found if occ is not None]

    def masks(self, i: int) -> dict[str, np.ndarray]:
        """Each occluder's mask in frame ``i`` (H x W uint8 0/1: coverage >= 0.5)."""
        width, height = self.size
        out = {}
        for occ in self.occluders(i):
            mask = np.zeros((height, width), np.uint8)
            cover, box = coverage(occ, self.size)
            if box is not None:
                x0, y0, x1, y1 = box
                mask[y0:y1, x0:x1] = cover >= 0.5
            out[occ.name] = mask
        return out

    def frame(self, i: int, occluders: bool = True) -> Image:
        """Frame ``i`` (BGR uint8). ``occluders=False``: the same frame (same noise) without the occluders."""
        s = self.schedule
        face = self.portrait.image
        if s.mouth[i] > 0 or s.eyes[i] > 0 or s.smile[i] > 0:
            face, _, _ = expression_warp(
                face,
                self.landmarks,
                mouth=float(s.mouth[i]),
                eyes=float(s.eyes[i]),
                paint_lids=bool(s.paint_lids[i]),
                smile=float(s.smile[i]),
                rigid_jaw=True,
            )
        placed = place(face, self.motion.transforms[i], self.size).astype(np.float32)
        if occluders and self.plan is not None:
            for occ in self.occluders(i):
                cover, colour, box = paint(occ, self.size, self.plan)
                if box is not None:
                    x0, y0, x1, y1 = box
                    placed[y0:y1, x0:x1] = placed[y0:y1, x0:x1] * (1.0 - cover[..., None]) + colour
        rng = np.random.default_rng([self.seed, 18, 4, i])  # per frame: any frame renders alone, the same
        return expose(placed, self.motion.light[i], NOISE, rng)

    def truth(self, video: str, masks: str | None) -> dict:
        """The truth file's content (see the module doc); ``video`` and ``masks`` are the file names it cites."""
        width, height = self.size
        events = {name: [list(r) for r in ranges] for name, ranges in self.schedule.events.items()}
        occluded = np.zeros(self.n_frames, bool)
        if self.plan is not None:
            present: dict[str, np.ndarray] = {name: np.zeros(self.n_frames, bool) for name in ("hand", "bar")}
            for i in range(self.n_frames):
                for name, mask in self.masks(i).items():
                    present[name][i] = bool(mask.any())
            for name, on in present.items():
                events[name] = _ranges(on)
                occluded |= on
        return {
            "clip": self.kind,
            "portrait": self.portrait.name,
            "frames": self.n_frames,
            "fps": float(self.fps),
            "size": [width, height],
            "seed": self.seed,
            "video": video,
            "landmarks": [np.round(self.face_landmarks(i), 2).tolist() for i in range(self.n_frames)],
            "schedule": {
                "eyes": [round(float(v), 4) for v in self.schedule.eyes],
                "mouth": [round(float(v), 4) for v in self.schedule.mouth],
                "smile": [round(float(v), 4) for v in self.schedule.smile],
            },
            "events": {name: events.get(name, []) for name in EVENTS},
            "masks": masks,
            "occluded": [bool(v) for v in occluded],
        }


def _ranges(on: np.ndarray) -> list[list[int]]:
    """[[start, end_exclusive], ...] of the runs of True."""
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    return [[int(a), int(b)] for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)]


def truth_clip(
    kind: str,
    source: str | Portrait = TRUTH_PORTRAIT,
    n_frames: int = 150,
    size: tuple[int, int] = (640, 480),
    fps: float = 30.0,
    seed: int = 0,
) -> TruthClip:
    """The ``kind`` ("expressions" or "occluders") truth clip of a portrait; nothing is rendered yet."""
    if kind not in KINDS:
        raise SwapcamError(f"unknown truth clip {kind!r}; choose from {', '.join(KINDS)}")
    if not 1.0 <= fps <= 240.0:
        raise SwapcamError(f"fps={fps}, expected 1..240")
    width, height = check_clip_size(n_frames, size)
    por = portrait(source) if isinstance(source, str) else source
    lm = portrait_landmarks(por.name)
    motion = head_motion(por, n_frames, (width, height), fps, np.random.default_rng(seed), MOTION)
    if kind == "expressions":
        schedule, plan = expression_schedule(n_frames, fps, seed), None
    else:
        schedule, plan = Schedule.neutral(n_frames), occluder_plan(n_frames, seed, por, lm)
    return TruthClip(kind, por, lm, n_frames, (width, height), fps, seed, motion, schedule, plan)


def truth_paths(out: str | Path) -> tuple[Path, Path, Path]:
    """(video, truth JSON, masks npz) for an output video path."""
    out = Path(out)
    return out, out.with_name(out.stem + ".truth.json"), out.with_name(out.stem + ".masks.npz")


def check_video_path(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise SwapcamError(f"--out {out}: unsupported extension {out.suffix!r}; use .mp4 or .y4m")
    return out


def write_video(frames: list[Image], out: Path, fps: float) -> Path:
    if out.suffix.lower() == ".y4m":
        return write_y4m(frames, out, fps)
    return write_mp4(frames, out, fps)


def truth_json(truth: dict) -> bytes:
    """The truth as JSON text: one key per line, one frame's landmarks per line (readable and diffable)."""
    lines = []
    for key, value in truth.items():
        if key == "landmarks":
            inner = ",\n  ".join(json.dumps(frame, separators=(",", ":")) for frame in value)
            lines.append(f'"{key}": [\n  {inner}\n ]')
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}")
    return ("{\n " + ",\n ".join(lines) + "\n}\n").encode()


def write_truth_clip(clip: TruthClip, out: str | Path) -> tuple[Path, Path, Path | None]:
    """Render ``clip`` and write the video to ``out`` (.mp4/.avi/.mov or .y4m), then ``<stem>.masks.npz``
    (occluders only), then ``<stem>.truth.json``, each atomically. Returns (video, truth, masks or None)."""
    video, truth_path, masks_path = truth_paths(check_video_path(out))
    frames = [clip.frame(i) for i in range(len(clip))]
    write_video(frames, video, clip.fps)
    masks_name = None
    if clip.plan is not None:
        width, height = clip.size
        stack = np.zeros((len(clip), height, width), np.uint8)
        for i in range(len(clip)):
            for mask in clip.masks(i).values():
                stack[i] |= mask
        with atomic_replace(masks_path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, masks=stack)
        masks_name = masks_path.name
    atomic_write_bytes(truth_path, truth_json(clip.truth(video.name, masks_name)))
    return video, truth_path, masks_path if masks_name else None
