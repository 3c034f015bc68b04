"""The camera person's expression on the swapped face: mouth corners, lips and brows follow the camera.

A decoder trained on a few stills of B draws B's resting mouth whatever the camera shows, and identity re-centring
(realtime.recentre) moves a held expression into the person's mean, so a smile is taken away. The camera's landmarks
say where the person's mouth corners, lips and brows are; this stage warps the swapped 128 px crop so that its
features move from the person's *neutral* to where the camera has them this frame (the generalisation of the eye
follower, realtime.eyes, which closes the lids; lids stay with it).

The neutral (per face track, in crop coordinates, so head pose and distance are already taken out by the alignment)
must not swallow a held expression: it is the person's own geometry averaged over the frames whose expression is
least -- corner lift, inner-lip gap and brow height each within a margin of the lowest the face has shown lately (a
floor that rises slowly, so a changed pose or light lets it move) -- and it is capped at the alignment template's (a
mean, resting face) corner lift and lip gap, so a person who smiles from the first frame on still gets a resting,
closed-mouth neutral. The swapped face is assumed to sit at that neutral (drawn along the camera's crop with B's
resting mouth). The warp, ``strength`` x (camera - neutral), is a radial-basis field that takes each followed point
(lips, corners, brows) exactly where it goes, the eyes, nose and jaw held still. Two parts of the move are shaped
first: the smile (the corners' lift beyond the neutral's, measured against the upper lip, :func:`smile_lift`) is
drawn larger by 1 / RESPONSE, since the tracker reads a drawn smile short; and the lips part only by the opening
beyond the person's own resting lip gap (as the mouth gate, realtime.mouth, counts it), so lips that rest parted
are drawn closed, as the neutral has them. Parted lips are painted dark between them.
Cost: p50 1.3 / p95 1.7 ms per 128 px face in the live loop on this 2-core CPU (README "Expression").
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.align import TEMPLATE_68
from realtime.expressions import (
    BROWS,
    add_upsampled,
    coarse_grid,
    expression_warp,
    identity_map,
    paint_mouth,
    smile_displacement,
)
from realtime.facestate import FaceState
from realtime.landmarks.measures import eye_distance, face_axes, mouth_openness, smile_lift
from realtime.types import Image

MOUTH = tuple(range(48, 68))
FOLLOWED = MOUTH + BROWS
# held still: the jaw's sides, the nose, the eyes (the eye follower moves the lids on its own)
STILL = (0, 1, 2, 3, 4, 12, 13, 14, 15, 16) + tuple(range(27, 36)) + tuple(range(36, 48))
CORNERS = (48, 54, 60, 64)
LOWER_LIP = (56, 57, 58, 65, 66, 67)  # the lower lip's middle, outer and inner
LIFT_MARGIN = 0.015  # eye distances above the lift floor (and above the template's lift) that still count as resting
OPEN_MARGIN = 0.03  # eye distances of inner-lip gap above the openness floor that still count as resting
BROW_MARGIN = 0.02  # eye distances above the brow floor that still count as resting
FLOOR_RISE = 0.0005  # eye distances per frame the floors rise towards the current value (0.015 per second at 30 fps)
NEUTRAL_RATE = 0.05  # weight of a resting frame in the neutral's moving average (a time constant of 20 frames)
TEMPLATE_LIFT = smile_lift(np.asarray(TEMPLATE_68, np.float64))  # the mean resting face's corner lift (-0.037)
TEMPLATE_OPEN = mouth_openness(np.asarray(TEMPLATE_68, np.float64))  # ... and inner-lip gap (0.085)
SIGMA = 0.3  # the warp field's reach, in eye distances
DEAD_ZONE = 0.01  # eye distances: smaller moves are landmark jitter and are left alone
# ... for the brows more (a raise is ~0.15): their jitter, warped next to the lids, cost eyes r on the truth clips
# (following no brows at all: 0.58 -> 0.62 and 0.20 -> 0.21)
BROW_DEAD_ZONE = 0.04
REGULARISE = 0.01  # ridge on the interpolation (close landmarks with different moves would otherwise overshoot)
PAINT_FROM = 0.03  # eye distances of inner-lip gap (beyond the neutral's) from which the opened mouth is painted dark
SMILE_RANGE = (-0.5, 1.5)  # the smile's amount, in unit smiles (realtime.expressions' smile at 1: a clear one)
# The landmark tracker reads the mouth's moves short (mediapipe on the synthetic clips, drawn moves): a smile's corner
# lift 0.59-0.67 of the drawn one on Grace Hopper. The follower draws the smile it read / RESPONSE. Measured on the
# astronaut's expression clip (`swapcam eval`, smile kept of the camera's lift; issue 20): 0.6 -> 1.54, 0.8 -> 0.95,
# 1.0 -> 0.67. (Drawn by realtime.expressions' smile field, which also lifts the cheeks and widens the mouth, the
# smile read shorter for its amount and the output's eyes read narrower whenever it smiled: eyes r 0.71 -> 0.59.)
RESPONSE = 0.8
SMILE_DEAD_ZONE = 0.05  # smaller smile amounts are landmark jitter
PROBE_SMILE = 1.0  # the smile drawn on the camera's crop to see how much of it the model draws (drawn_expression)
PROBE_MARGIN = 0.3  # eye distances around the mouth's landmarks in which the probe compares
# A model may draw the lips parted at rest although the camera person's are closed: decoder A learned the
# astronaut's toothy smile, and identity re-centring pulls every face towards it (Grace Hopper's clip, b2a: the
# output read 0.09-0.13 at rest against the camera's 0.01). The pipeline reads the drawn face's lip gap once per face
# (a static face mesh on the swapped crop); where it exceeds the camera person's own resting gap by more than
# CLOSE_FROM, the follower closes CLOSE_SHARE of the excess. Measured on that clip (`swapcam eval`, --expression 1):
# share 0 / 0.5 / 1: mouth r vs truth 0.65 / 0.72 / 0.75, smile kept 0.65 / 0.73 / 0.82, distance to A 0.466 /
# 0.480 / 0.501 (0.464 off: a full close costs more identity than the 0.03); the astronaut clip and carphone
# are unchanged (nothing drawn open), and so is a camera person whose own lips rest parted.
CLOSE_SHARE = 0.5
CLOSE_FROM = 0.03  # eye distances of drawn lip gap beyond the person's resting gap from which it is closed
_FOLLOWED = np.array(FOLLOWED)
_ZONES = np.array([BROW_DEAD_ZONE if i in BROWS else DEAD_ZONE for i in FOLLOWED])  # each followed point's dead zone


def brow_height(lm: np.ndarray) -> float:
    """How far the brows sit above the eyes, along the face's up axis, in eye distances (a raise lifts it)."""
    lm = np.asarray(lm, np.float64)
    _, down = face_axes(lm)
    return float((lm[36:48].mean(axis=0) - lm[list(BROWS)].mean(axis=0)) @ down / (eye_distance(lm) + 1e-6))


class Neutral:
    """One face's neutral: the resting points (68 x 2, crop coordinates) and the floors that say what resting is:
    for the corner lift, the inner-lip gap and the brows' height, the lowest lately (rising FLOOR_RISE a frame)."""

    def __init__(self, pts: np.ndarray) -> None:
        self.neutral = cap_resting(pts.copy())
        self.lift_floor = min(smile_lift(pts), TEMPLATE_LIFT + LIFT_MARGIN)
        self.open_floor = mouth_openness(pts)
        self.brow_floor = brow_height(pts)

    def update(self, pts: np.ndarray) -> bool:
        lift, gap, brow = smile_lift(pts), mouth_openness(pts), brow_height(pts)
        self.lift_floor = min(lift, self.lift_floor + FLOOR_RISE, TEMPLATE_LIFT + LIFT_MARGIN)
        self.open_floor = min(gap, self.open_floor + FLOOR_RISE)
        self.brow_floor = min(brow, self.brow_floor + FLOOR_RISE)
        resting = (
            lift <= self.lift_floor + LIFT_MARGIN
            and gap <= self.open_floor + OPEN_MARGIN
            and brow <= self.brow_floor + BROW_MARGIN
        )
        if resting:
            self.neutral = cap_resting(self.neutral + NEUTRAL_RATE * (pts - self.neutral))
        return resting

    @property
    def neutral(self) -> np.ndarray:
        return self._neutral

    @neutral.setter
    def neutral(self, pts: np.ndarray) -> None:
        self._neutral = pts
        self._basis: tuple[np.ndarray, float, float, float] | None = None

    def basis(self) -> tuple[np.ndarray, float, float, float]:
        """What the follower measures on the neutral, kept until it moves (it holds still while the face is not
        resting, which is when the follower works): the points' move under a unit smile, the corner lift that
        adds, and the neutral's own corner lift and inner-lip gap."""
        if self._basis is None:
            n = self._neutral
            unit_move = smile_displacement(n, 1.0)(n)
            lift = smile_lift(n)
            self._basis = (unit_move, smile_lift(n + unit_move) - lift, lift, mouth_openness(n))
        return self._basis


def cap_resting(pts: np.ndarray) -> np.ndarray:
    """``pts`` made a resting mouth: the corners lowered (along the face's down axis) to at most the template's
    corner lift plus LIFT_MARGIN, and the lower lip raised to at most the template's inner-lip gap plus OPEN_MARGIN.
    Someone who smiles, or rests with parted lips, from the first frame on still gets a closed, resting neutral."""
    d = eye_distance(pts)
    _, down = face_axes(pts)
    out = pts
    lift_excess = smile_lift(pts) - (TEMPLATE_LIFT + LIFT_MARGIN)
    if lift_excess > 0:
        out = out.copy()
        out[list(CORNERS)] += lift_excess * d * down
    open_excess = mouth_openness(pts) - (TEMPLATE_OPEN + OPEN_MARGIN)
    if open_excess > 0:
        out = out.copy()
        out[list(LOWER_LIP)] -= open_excess * d * down
    return out


def resting_openness(state: FaceState) -> float:
    """The face's own resting inner-lip gap (its openness floor; 0 for a face never observed): the mouth gate
    (realtime.mouth) counts a mouth as open by how far it opens beyond the person's rest, not from zero."""
    return 0.0 if state.expression is None else float(state.expression.open_floor)


def observe(state: FaceState, pts: np.ndarray, seen: bool = True) -> bool:
    """Fold this frame's crop points into the face's neutral (kept in its track ``state``); whether the face is
    resting in this frame (no smile, open mouth or raised brows beyond the margins). Once per frame and face,
    before :func:`follow_expression` (the pipeline does it before the swap: re-centring may leave out expressive
    frames, realtime.recentre). ``seen=False`` (a hand or a cup over the mouth, realtime.occlusion.mouth_seen):
    the landmarks' mouth there is a guess, which would drag the floors down -- a hand read as a closed mouth made a
    face that rests with parted lips count as open for seconds after -- so the frame is left out."""
    if state.expression is None:
        state.expression = Neutral(np.asarray(pts, np.float64))
        return True
    if not seen:
        return False
    return state.expression.update(np.asarray(pts, np.float64))


def follow_expression(face: Image, crop_pts: np.ndarray, state: FaceState, strength: float) -> Image:
    """The swapped crop ``face`` with its mouth and brows moved by ``strength`` x (the camera's ``crop_pts`` - the
    face's neutral, as :func:`observe` left it; a face never observed is observed now). Strength 0 returns ``face``
    itself (the pipeline observes every frame also then, so switching on mid-call needs no settling).

    One remap, :func:`interpolating_field` from the neutral's followed points to their targets: the camera's move,
    its smile drawn larger by 1 / RESPONSE and its lips parted only beyond the person's resting gap (module doc)."""
    pts = np.asarray(crop_pts, np.float64)
    if state.expression is None:
        observe(state, pts)
    assert state.expression is not None
    neutral = state.expression.neutral
    if strength <= 0:
        return face
    d = eye_distance(pts)
    target = neutral + strength * (pts - neutral)
    unit_move, unit, neutral_lift, neutral_open = state.expression.basis()
    # the lips part only by the opening beyond the person's own resting gap (as the mouth gate counts it): lips that
    # rest parted are drawn as the neutral's closed ones, not as a mouth held open
    _, down = face_axes(pts)
    beyond = max(mouth_openness(pts) - state.expression.open_floor, 0.0)
    target[list(LOWER_LIP)] += (neutral_open + strength * beyond - mouth_openness(target)) * d * down
    # the smile as the tracker saw it, in unit smiles (the smile field's move is linear in its amount and gentle, so
    # one evaluation on the neutral gives a unit smile's move and lift), drawn larger by 1 / RESPONSE
    read = (smile_lift(target) - neutral_lift) / max(unit, 1e-6)
    smile = float(np.clip(read / RESPONSE, *SMILE_RANGE))
    if abs(smile) >= SMILE_DEAD_ZONE:
        target = target + (smile - read) * unit_move
    # where the model draws the lips: at the neutral's, unless it was seen to draw them parted wider at rest
    # (state.expression_drawn_open: a decoder that learned a toothy smile, pulled towards it by re-centring); then
    # its lower lip is taken from there to the target, closing a mouth the camera person keeps closed
    # (against the person's own resting gap, not the neutral's capped one: lips that rest parted on the camera too
    # are left as drawn)
    drawn = neutral
    drawn_open = state.expression_drawn_open
    rest_open = max(neutral_open, state.expression.open_floor)
    if drawn_open is not None and drawn_open > rest_open + CLOSE_FROM:
        drawn = neutral.copy()
        drawn[list(LOWER_LIP)] += (drawn_open - neutral_open) * d * down
        shift = drawn_open - neutral_open - strength * CLOSE_SHARE * (drawn_open - rest_open)
        target[list(LOWER_LIP)] += shift * d * down
    move = target - drawn
    moved = np.hypot(move[_FOLLOWED, 0], move[_FOLLOWED, 1]) > _ZONES * d
    followed = _FOLLOWED[moved].tolist()
    if not followed:
        return face
    src = np.concatenate([drawn[followed], pts[list(STILL)]])
    dst = np.concatenate([target[followed], pts[list(STILL)]])
    field = interpolating_field(src, dst, (face.shape[0], face.shape[1]), sigma=SIGMA * d)
    out = cv2.remap(face, field, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    opened = mouth_openness(target) - neutral_open
    if opened > PAINT_FROM:  # the lips parted: the gap between them is the dark inside of a mouth, not stretched lip
        paint_mouth(out, target, opened, d)
    return out


def drawn_expression(swapper, crops: list[Image], crop_pts: list[np.ndarray], morph: float) -> list[float]:
    """How much of the camera's expression the model draws by itself, 0..1, for each face: its aligned crop and the
    same crop with a smile drawn on it (realtime.expressions, amount PROBE_SMILE) are swapped (all faces in one
    batch), and the change the smile makes to the swapped mouth area is projected onto the change it made to the crop
    (grey levels, the mouth's box grown by PROBE_MARGIN eye distances). A model trained on a few stills draws its
    resting mouth whatever the camera shows (the demo models: -0.06 .. 0.08 on the truth clips and carphone); a
    pass-through, or a model trained on video of both people, draws the camera's smile (1): the follower must not add
    it a second time, so the pipeline scales its strength by 1 - this. One extra batch on a face's first frame."""
    points = [np.asarray(p, np.float64) for p in crop_pts]
    smiled = [expression_warp(c, p, smile=PROBE_SMILE)[0] for c, p in zip(crops, points, strict=True)]
    faces, _ = swapper.swap(list(crops) + smiled, morph=morph)
    n = len(crops)
    return [_response(c, s, f, g, p) for c, s, f, g, p in zip(crops, smiled, faces[:n], faces[n:], points, strict=True)]


def _response(crop: Image, smiled: Image, plain: Image, probed: Image, pts: np.ndarray) -> float:
    d = eye_distance(pts)
    h, w = crop.shape[:2]
    x0, y0 = np.clip(np.floor(pts[list(MOUTH)].min(axis=0) - PROBE_MARGIN * d).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(pts[list(MOUTH)].max(axis=0) + PROBE_MARGIN * d).astype(int), 0, [w, h])

    def grey(image: Image) -> np.ndarray:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY)[y0:y1, x0:x1].astype(np.float64)

    wanted = grey(smiled) - grey(crop)
    got = grey(probed) - grey(plain)
    power = float((wanted * wanted).sum())
    if power < 1.0:  # the smile moved nothing visible (a face too small or outside the crop): nothing to learn
        return 0.0
    return float(np.clip((got * wanted).sum() / power, 0.0, 1.0))


def interpolating_field(src: np.ndarray, dst: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Backward map (H x W x 2, float32; output pixel -> where it samples the input) that takes each ``dst`` point
    exactly to its ``src`` (a Gaussian radial-basis interpolation, lightly regularised), fading to no motion
    3 sigma beyond the points. Unlike a normalised weighted mean of the moves (realtime.expressions'
    displacement_field), the mouth's corners move as far as their landmarks do, however close the lips' middle,
    which does not move in a smile, sits. Computed on a grid of about sigma / 2 pixels and upsampled."""
    base = identity_map(shape)
    offsets = src - dst
    if not (np.abs(offsets).max(axis=1) > 1e-6).any():
        return base
    gram = np.exp(-((dst[:, None, :] - dst[None, :, :]) ** 2).sum(-1) / (2 * sigma * sigma))
    # (OpenCV's own solver: numpy's goes through a threaded BLAS, ~6 ms for this 50 x 50 system on a busy 2-core CPU)
    ok, coef = cv2.solve(gram + REGULARISE * np.eye(len(dst)), offsets, flags=cv2.DECOMP_CHOLESKY)
    if not ok:
        return base
    step = int(np.clip(sigma / 2.0, 1, 8))
    grid = coarse_grid(dst, 3.0 * sigma, shape, step)
    if grid is None:
        return base
    lo, hi, gx, gy = grid
    # the Gaussian is separable: one row of weights per grid column and one per grid row, not one per grid point
    wx = np.exp(-((gx[0][:, None] - dst[None, :, 0]) ** 2) / (2 * sigma * sigma))
    wy = np.exp(-((gy[:, 0][:, None] - dst[None, :, 1]) ** 2) / (2 * sigma * sigma))
    return add_upsampled(base, np.tensordot(wy, wx[:, :, None] * coef[None], axes=(1, 1)), lo, hi, step)
