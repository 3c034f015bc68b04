"""Occlusion live: what is in front of the face (a hand, a cup, a microphone, glasses pushed up) stays in front.

The swap model's learned mask already leaves out some occluders (training pastes occluders over the input and
teaches the mask 0 there: training/occluders.py). Live, at CPU cost, two more views of "something is in front of
the face" are multiplied in, per tracked face, on the SxS aligned crop (where the face keeps its place whatever the
head does):

* ``appearance`` -- a per-pixel model of this person's own face as the camera sees it: a running mean and variance
  of the aligned camera crop in CIE LAB on a GRID x GRID raster, learned in the first frames of the track and kept up
  to date where the face is visible. A pixel whose colour departs from it by more than THRESHOLD standard deviations
  (after the frame's overall lighting change is taken out) shows something else. The eyes, brows and mouth move with
  expression, so a region that departs only inside them must depart ZONE_FACTOR times more, and the eye openings
  and the inside of the mouth never start one (a blink or an opening mouth is not a hand), while a region that also
  reaches the cheeks, nose or chin is flagged whole (a cup in front of the mouth). When the rest of the face no
  longer matches the learned pattern of light and dark (a hand over all of it), all of it is hidden. Occluded
  pixels are not learned (a hand held still stays a hand) but drift in very slowly (STUCK_RATE), so a lasting change
  (glasses put on) is accepted after some seconds. Works for any object of any colour; it cannot see an occluder
  that was there from the track's first frame until it moves. Under a millisecond per face.
* ``hands`` -- mediapipe's hand landmarks (the model ships in the wheel), run in the landmarks half while a face is
  in view: looked for on every third frame, tracked on every other frame once found (the frames between reuse the
  last hands); a hand that reaches near a face has its 21 points' hull, grown by a finger's width, cut out of that
  face. Sees a hand of any skin tone from about its first frame, and only hands; one hand at a time on a CPU.

``OCCLUSION_MODES``: ``auto`` (both), ``appearance``, ``hands``, ``off``. What each costs and keeps on the project's
occluder clip: README "Occlusion".

A face mostly hidden (less than MIN_VISIBLE of its landmark hull visible) fades to the camera's own face over
FADE_FRAMES frames instead of showing a broken swap, and so does a face the landmarks lose for a moment (its track
is kept for realtime.temporal.MAX_AGE_S); when it comes back, the swap fades in over the same frames
(:class:`Presence`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from realtime.align import transform_points
from realtime.colour import to_lab
from realtime.compose import hull_mask
from realtime.facestate import FaceState
from realtime.types import Image, Landmarks, Mask

OCCLUSION_MODES = ("auto", "appearance", "hands", "off")
APPEARANCE_MODES = ("auto", "appearance")  # the modes that use each view
HAND_MODES = ("auto", "hands")
GRID = 64  # px: the appearance model's raster (the crop resized to GRID x GRID)
NOISE_FLOOR = np.array([5.0, 3.0, 3.0], np.float32)  # LAB std added to the learned one (sensor noise, jitter)
THRESHOLD = 4.0  # normalised colour distance above which a pixel is "something else"
ZONE_FACTOR = 2.5  # ... times this inside the eyes, brows and mouth (they move with expression)
LEARN_RATE = 0.06  # per frame, where the face is visible (time constant ~16 frames)
STUCK_RATE = 0.004  # per frame, where it is occluded (a lasting change is accepted after ~250 frames)
WARMUP_FRAMES = 4  # the first frames of a track only learn
GROW_PX = 2  # GRID px the occluded region is grown by (its soft edge, the landmarks' jitter)
MIN_LIKENESS = 0.4  # Pearson r of the face's lightness pattern with the learned one: below it, all of it is hidden
FLAT_CONTRAST = 0.3  # a face with less than this share of its learned lightness contrast reads as covered
MIN_VISIBLE = 0.35  # of the landmark hull: less visible fades the swap out
MOUTH_SEEN = 0.9  # of the area around the mouth visible: less, and the landmarks' mouth is a guess (follow.observe)
AROUND_MOUTH = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 31, 32, 33, 34, 35)  # the jaw under the mouth, the nose's base
MOUTH_SETTLE = 6  # the mouth is trusted again on this frame after a hand left it (the mesh's lips take ~5 to settle)
FADE_FRAMES = 5
HAND_EVERY = 2  # while a hand is in view, its landmarks are tracked on every HAND_EVERY-th frame (~8 ms a run) ...
HAND_SEARCH_EVERY = 3  # ... and while none is, looked for on every HAND_SEARCH_EVERY-th frame (palm detector, ~12 ms)
MAX_HANDS = 1  # one hand: mediapipe then skips its palm detector while it tracks one (two: it never does)
HAND_MARGIN = 0.6  # hands are looked for in the faces' box grown by this much of its size on each side
HAND_GROW = 0.12  # a hand's hull is grown by this share of its size (a finger's half width and then some)


@dataclass
class Appearance:
    """A track's running look of its face: LAB mean and variance on the GRID raster, frames learned."""

    mean: np.ndarray | None = None
    var: np.ndarray | None = None
    frames: int = 0


@dataclass
class Presence:
    """How much of the swap is shown (0 = the camera's own face, 1 = the swap), moving towards 0 or 1 by
    1/FADE_FRAMES a frame. A new face is swapped at once; one that was hidden or missing fades back in."""

    steps: int = FADE_FRAMES  # of FADE_FRAMES

    @property
    def level(self) -> float:
        return self.steps / FADE_FRAMES

    def step(self, visible: bool) -> float:
        self.steps = min(FADE_FRAMES, self.steps + 1) if visible else max(0, self.steps - 1)
        return self.level


@dataclass
class OcclusionState:
    appearance: Appearance = field(default_factory=Appearance)
    presence: Presence = field(default_factory=Presence)
    visible_share: float = 1.0  # of the hull, last frame (for the HUD and tests)
    mouth_unsettled: int = 0  # frames left until the landmarks' mouth is trusted again after it was hidden


def state_of(state: FaceState) -> OcclusionState:
    if state.occlusion is None:
        state.occlusion = OcclusionState()
    return state.occlusion


def _lab(crop: Image) -> np.ndarray:
    return to_lab(cv2.resize(crop, (GRID, GRID), interpolation=cv2.INTER_AREA))


def _fill(points: np.ndarray, scale: float, grow: float = 0.0) -> np.ndarray:
    """GRID x GRID uint8 0/1 raster of the convex hull of ``points`` (crop px) scaled by ``scale``, grown by ``grow``
    raster px."""
    pts = np.asarray(points, np.float64) * scale
    if not np.isfinite(pts).all() or len(pts) < 3:
        return np.zeros((GRID, GRID), np.uint8)
    out = (hull_mask(pts, GRID) > 0.5).astype(np.uint8)
    if grow >= 0.5:
        r = int(round(grow))
        out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return out


def zones(crop_landmarks: Landmarks, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(face hull, expression zones) as GRID x GRID uint8: the 68 points' hull (0/1), and per pixel 0 = still face,
    1 = a part that moves with expression (the eyes with their brows, the lips, each grown a little), 2 = an opening
    that changes wholesale with it (the eye openings, the inside of the mouth: a blink turns eyeball into lid)."""
    pts = np.asarray(crop_landmarks, np.float64)
    scale = GRID / float(size)
    hull = _fill(pts, scale)
    zone = _fill(np.concatenate([pts[17:22], pts[36:42]]), scale, 0.04 * GRID)
    zone |= _fill(np.concatenate([pts[22:27], pts[42:48]]), scale, 0.04 * GRID)
    zone |= _fill(pts[48:68], scale, 0.04 * GRID)
    opening = _fill(pts[36:42], scale, 0.04 * GRID) | _fill(pts[42:48], scale, 0.04 * GRID)
    opening |= _fill(pts[60:68], scale, 0.02 * GRID)
    return hull, zone + opening


def likeness(now: np.ndarray, mean: np.ndarray, inside: np.ndarray) -> float:
    """Pearson r of two lightness rasters inside the face (its edge left out), scaled down when ``now`` has much
    less contrast than ``mean`` (under FLAT_CONTRAST of it): a face under any lighting keeps its pattern of eyes,
    brows, nose and mouth (near 1), a hand over all of it, or the back of a head, does not."""
    core = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    a, b = now[core].astype(np.float64), mean[core].astype(np.float64)
    if a.size < 16:
        return 1.0
    a -= a.mean()
    b -= b.mean()
    va, vb = float((a * a).sum()), float((b * b).sum())
    if vb < 1e-6 * a.size:  # the learned face itself is flat: nothing to compare
        return 1.0
    if va < 1e-6 * a.size:  # a flat patch where the face had its pattern
        return 0.0
    return float((a * b).sum() / np.sqrt(va * vb)) * min(1.0, np.sqrt(va / vb) / FLAT_CONTRAST)


def _flag(distance: np.ndarray, inside: np.ndarray, zone: np.ndarray) -> np.ndarray:
    """Occluded pixels (GRID x GRID uint8 0/1) from the normalised colour distance: every connected region above
    THRESHOLD that holds a seed -- a pixel above THRESHOLD on the still face (zone 0), or above ZONE_FACTOR x
    THRESHOLD on a part that moves with expression (zone 1); the openings (zone 2) never seed. So a cup over mouth
    and cheek is flagged whole, mouth included, while a blink or an opening mouth, which change only their own
    parts, are not; specks (noise) are opened away first."""
    kernel = np.ones((3, 3), np.uint8)
    candidate = cv2.morphologyEx(((distance > THRESHOLD) & inside).astype(np.uint8), cv2.MORPH_OPEN, kernel)
    if not candidate.any():
        return candidate
    seed = candidate.astype(bool) & ((zone == 0) | ((zone == 1) & (distance > THRESHOLD * ZONE_FACTOR)))
    if not seed.any():
        return np.zeros_like(candidate)
    count, labels = cv2.connectedComponents(candidate, connectivity=8)
    keep = np.zeros(count, bool)
    keep[np.unique(labels[seed])] = True
    keep[0] = False
    return keep[labels].astype(np.uint8)


def appearance_occluded(
    model: Appearance, crop: Image, crop_landmarks: Landmarks, extra: np.ndarray | None = None
) -> np.ndarray:
    """GRID x GRID uint8 0/1: where the camera crop departs from the track's learned look (1 = occluded), and the
    model learns this frame. ``extra`` (GRID x GRID 0/1): pixels known occluded by another view (not learned)."""
    size = crop.shape[0]
    lab = _lab(crop)
    hull, zone = zones(crop_landmarks, size)
    if model.mean is None or model.var is None or model.mean.shape != lab.shape:
        model.mean, model.var, model.frames = lab.copy(), np.zeros_like(lab), 1
        return np.zeros((GRID, GRID), np.uint8)
    inside = hull.astype(bool)
    residual = lab - model.mean
    if inside.sum() >= 16:  # the frame's overall lighting change (camera exposure, a lamp) is not an occluder
        residual -= np.median(residual[inside], axis=0)
    if model.frames < WARMUP_FRAMES:
        occluded = np.zeros((GRID, GRID), np.uint8)
    else:
        z2 = residual * residual / (model.var + NOISE_FLOOR**2)
        distance = np.sqrt(z2.sum(axis=2))
        occluded = _flag(distance, inside, zone)
        rest = inside & ~cv2.dilate(occluded, np.ones((3, 3), np.uint8)).astype(bool)
        if likeness(lab[..., 0], model.mean[..., 0], rest) < MIN_LIKENESS:  # what is left is not this face either
            occluded = inside.astype(np.uint8)
    if extra is not None:
        occluded |= extra.astype(np.uint8)
    rate = LEARN_RATE if model.frames >= WARMUP_FRAMES else 1.0 / (model.frames + 1)
    alpha = np.where(occluded.astype(bool), STUCK_RATE, rate).astype(np.float32)[..., None]
    model.mean += alpha * (lab - model.mean)
    # the spread is learned where the face is visible only, each pixel's square capped at the flagging limit (an
    # occluder's edge just under it must not widen what counts as face)
    seen = np.where(occluded.astype(bool), np.float32(0), np.float32(rate))[..., None]
    cap = (THRESHOLD**2) * (model.var + NOISE_FLOOR**2)
    model.var += seen * (np.minimum(residual * residual, cap) - model.var)
    model.frames += 1
    return occluded


def hands_occluded(hands: list[Landmarks], matrix: np.ndarray, size: int) -> np.ndarray:
    """GRID x GRID uint8 0/1: the hands (21 frame-pixel points each) in the crop of ``matrix`` (frame -> crop)."""
    out = np.zeros((GRID, GRID), np.uint8)
    scale = GRID / float(size)
    for hand in hands:
        pts = transform_points(np.asarray(hand, np.float64), matrix)
        extent = float(np.max(pts.max(axis=0) - pts.min(axis=0))) * scale
        out |= _fill(pts, scale, HAND_GROW * extent)
    return out


def visible_mask(occluded: np.ndarray, size: int) -> Mask:
    """SxS float32 in [0, 1] (1 = face visible) from a GRID raster of occluded pixels: grown, softened, upscaled."""
    if not occluded.any():
        return np.ones((size, size), np.float32)
    grown = cv2.dilate(occluded, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * GROW_PX + 1,) * 2))
    soft = cv2.blur(grown.astype(np.float32), (3, 3))
    visible = 1.0 - cv2.resize(soft, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.clip(visible, 0.0, 1.0).astype(np.float32)


def face_visibility(
    mode: str,
    state: FaceState,
    crop: Image,
    crop_landmarks: Landmarks,
    matrix: np.ndarray,
    hands: list[Landmarks] | None,
) -> tuple[Mask | None, float]:
    """(visible mask SxS or None for "all visible", presence 0..1) of one face this frame, per ``mode``."""
    occ = state_of(state)
    if mode == "off":
        occ.visible_share, occ.mouth_unsettled = 1.0, 0
        return None, occ.presence.step(True)
    size = crop.shape[0]
    extra = hands_occluded(hands, matrix, size) if hands and mode in HAND_MODES else None
    if mode in APPEARANCE_MODES:
        occluded = appearance_occluded(occ.appearance, crop, crop_landmarks, extra)
    else:
        occluded = np.zeros((GRID, GRID), np.uint8) if extra is None else extra
    occ.visible_share = _visible_share(occluded, _fill(crop_landmarks, GRID / float(size)))
    # around the mouth (the jaw below it, the nose above): a hand there bends the mesh's lips before it covers them;
    # a hidden mouth says nothing of the resting face (realtime.follow.observe)
    around = _fill(np.asarray(crop_landmarks)[list(AROUND_MOUTH)], GRID / float(size))
    hidden = _visible_share(occluded, around) < MOUTH_SEEN
    occ.mouth_unsettled = MOUTH_SETTLE if hidden else max(0, occ.mouth_unsettled - 1)
    presence = occ.presence.step(occ.visible_share >= MIN_VISIBLE)
    return (visible_mask(occluded, size) if occluded.any() else None), presence


def _visible_share(occluded: np.ndarray, region: np.ndarray) -> float:
    """The share of ``region`` (GRID x GRID 0/1) that ``occluded`` leaves visible; 1 for an empty region."""
    area = int(region.sum())
    return 1.0 if area == 0 else 1.0 - float((occluded & region).sum()) / area


def mouth_seen(state: FaceState) -> bool:
    """Whether this face's mouth was visible in this frame and the MOUTH_SETTLE - 1 frames before it
    (``face_visibility`` has run for it; a face never checked, or with occlusion off, counts as seen)."""
    return state.occlusion is None or state.occlusion.mouth_unsettled == 0


def near_box(hands: list[np.ndarray], box: tuple[int, int, int, int]) -> list[np.ndarray]:
    """The hands whose points' box meets ``box`` (x0, y0, x1, y1) grown by HAND_MARGIN of its size on each side."""
    x0, y0, x1, y1 = box
    mx, my = HAND_MARGIN * (x1 - x0), HAND_MARGIN * (y1 - y0)
    out = []
    for pts in hands:
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        if lo[0] < x1 + mx and hi[0] > x0 - mx and lo[1] < y1 + my and hi[1] > y0 - my:
            out.append(pts)
    return out


def fade_out(state: FaceState) -> None:
    """A frame in which this face was not found: its swap fades further out (shown again by fading in)."""
    state_of(state).presence.step(False)


class HandFinder:
    """mediapipe's hand landmarks near the faces: tracked on every HAND_EVERY-th frame while a hand is in view,
    looked for on every HAND_SEARCH_EVERY-th frame while none is (the frames between reuse the last answer).
    ``find(image, faces_in_view)`` -> list of 21x2 frame-pixel arrays. Built on first use; ``close()`` frees it."""

    def __init__(self, every: int = HAND_EVERY, search_every: int = HAND_SEARCH_EVERY) -> None:
        self.every = max(1, int(every))
        self.search_every = max(1, int(search_every))
        self._hands = None
        self._count = 0
        self._last: list[np.ndarray] = []

    def _model(self):
        if self._hands is None:
            import mediapipe as mp

            self._hands = mp.solutions.hands.Hands(
                static_image_mode=False,
                max_num_hands=MAX_HANDS,
                model_complexity=0,
                min_detection_confidence=0.5,
                min_tracking_confidence=0.5,
            )
        return self._hands

    def find(self, image: Image, faces_in_view: bool) -> list[np.ndarray]:
        """The hands in ``image`` (each 21x2 frame pixels); none, and nothing run, while no face is in view. The
        landmarker sees the whole frame (its tracking follows a hand from frame to frame in frame coordinates);
        :func:`near_box` then picks each face's."""
        if not faces_in_view:
            self.reset()
            return []
        self._count += 1
        if (self._count - 1) % (self.every if self._last else self.search_every) == 0:
            result = self._model().process(np.ascontiguousarray(image[..., ::-1]))  # RGB
            h, w = image.shape[:2]
            self._last = [
                np.array([(p.x * w, p.y * h) for p in hand.landmark], np.float32)
                for hand in result.multi_hand_landmarks or []
            ]
        return self._last

    def reset(self) -> None:
        """Forget the last hands and the frame count (the next call runs the landmarker)."""
        self._last, self._count = [], 0

    def close(self) -> None:
        if self._hands is not None:
            self._hands.close()
            self._hands = None
