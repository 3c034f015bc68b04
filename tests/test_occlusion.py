"""Occlusion live (realtime.occlusion): what is in front of the face stays in front.

Known answers: a patch pasted over a face the model has learned is flagged there and nowhere else, and stays flagged
while it is held; hand landmarks are cut out of the crop where they lie; a fully covered face fades to the camera's
own pixels over FADE_FRAMES and the swap fades back in; a DFM whose camera-face mask leaves out an occluder keeps it;
and, with the real mediapipe face and hand landmarkers and the shipped demo model, the project's occluder clip keeps
its hand and bar in front of the face (and does not without occlusion: the test can fail).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from _live_fixtures import colour_shift_model

from realtime import occlusion
from realtime.align import align, transform_points
from realtime.facestate import FaceState
from realtime.follow import observe
from realtime.occlusion import (
    GRID,
    MOUTH_SETTLE,
    Appearance,
    appearance_occluded,
    face_visibility,
    hands_occluded,
    mouth_seen,
)
from realtime.pipeline import FaceSwapProcessor, PipelineOptions
from realtime.swapper import Swapper
from realtime.types import Face

NO_OVERLAY = dict(hud=False, label=False)
SIZE = 128


class StillDetector:
    """The same face every frame (no detector noise: what the test draws is all that changes)."""

    def __init__(self, landmarks):
        self.face = landmarks

    def detect(self, image):
        return [Face(landmarks=self.face.copy(), raw=self.face.copy())]

    def warmup(self):
        pass

    def close(self):
        pass


@pytest.fixture(scope="module")
def learned(astronaut, portrait_landmarks):
    """(crop, crop landmarks, a noisy-frame maker) of the astronaut's aligned face."""
    crop, matrix = align(astronaut.image, portrait_landmarks["astronaut"], SIZE, 1.6)
    pts = transform_points(portrait_landmarks["astronaut"].astype(np.float64), matrix)
    rng = np.random.default_rng(0)

    def noisy(image):
        return np.clip(image + rng.normal(0, 2.0, image.shape), 0, 255).astype(np.uint8)

    return crop, pts, noisy


def _patch_box(pts: np.ndarray) -> tuple[int, int, int, int]:
    """A box over the left cheek and the left half of the mouth, crop pixels."""
    x0, y0 = int(pts[3, 0] + 4), int(pts[30, 1])
    x1, y1 = int(pts[51, 0]), int(pts[57, 1])
    return x0, y0, x1, y1


def test_a_patch_over_a_learned_face_is_flagged_there_only_and_while_held(learned):
    crop, pts, noisy = learned
    model = Appearance()
    for _ in range(10):  # learning the face, camera noise only
        flagged = appearance_occluded(model, noisy(crop), pts)
    assert flagged.sum() == 0  # noise is not an occluder
    x0, y0, x1, y1 = _patch_box(pts)
    covered = crop.copy()
    covered[y0:y1, x0:x1] = (60, 90, 140)  # a brown cup
    truth = np.zeros((SIZE, SIZE), np.uint8)
    truth[y0:y1, x0:x1] = 1
    truth_grid = cv2.resize(truth.astype(np.float32), (GRID, GRID), interpolation=cv2.INTER_AREA) > 0.5
    away = cv2.dilate(truth_grid.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    for held in range(40):  # held still in front of the face for over a second
        flagged = appearance_occluded(model, noisy(covered), pts).astype(bool)
        recall = (flagged & truth_grid).sum() / truth_grid.sum()
        assert recall > 0.85, f"frame {held}: only {recall:.0%} of the patch flagged"
        assert (flagged & away).sum() <= 4, f"frame {held}: flagged away from the patch"
    for _ in range(3):  # taken away: the face is the face again
        flagged = appearance_occluded(model, noisy(crop), pts)
    assert flagged.sum() == 0


def test_a_lighting_change_is_not_an_occluder(learned):
    crop, pts, noisy = learned
    model = Appearance()
    for _ in range(10):
        appearance_occluded(model, noisy(crop), pts)
    brighter = np.clip(crop.astype(np.int16) + 25, 0, 255).astype(np.uint8)  # the camera's exposure steps up
    assert appearance_occluded(model, noisy(brighter), pts).sum() == 0


def test_hand_landmarks_are_cut_out_where_they_lie():
    matrix = np.array([[0.5, 0.0, -100.0], [0.0, 0.5, -50.0]])  # frame -> crop: x/2 - 100, y/2 - 50
    hand = np.array([[300 + 10 * (i % 5), 200 + 12 * (i // 5)] for i in range(21)], np.float64)  # 50 x 60 px
    raster = hands_occluded([hand], matrix, SIZE)
    crop_pts = transform_points(hand, matrix) * (GRID / SIZE)
    centre = np.round(crop_pts.mean(axis=0)).astype(int)
    assert raster[centre[1], centre[0]] == 1
    assert raster[:, :10].sum() == 0 and raster[:, 40:].sum() == 0  # nothing far from the hand
    assert hands_occluded([], matrix, SIZE).sum() == 0


def test_a_hand_over_the_mouth_does_not_teach_the_resting_mouth(learned):
    """The mesh reads a hand over the mouth as a closed mouth: for someone whose lips rest parted, folding that
    into the expression neutral's lip-gap floor made their resting mouth count as open for seconds after (the
    camera's lips pasted by the mouth gate). While the area around the mouth is hidden, and until the MOUTH_SETTLE-th
    frame after, the frame is left out; a patch on the forehead changes nothing."""
    from realtime.expressions import moved_landmarks

    crop, pts, noisy = learned
    parted = moved_landmarks(pts, mouth=0.15)  # lips parted at rest
    state = FaceState()
    for _ in range(10):
        face_visibility("appearance", state, noisy(crop), parted, np.eye(2, 3), None)
        assert mouth_seen(state)
        observe(state, parted, seen=mouth_seen(state))
    floor = state.expression.open_floor
    x0, x1 = int(pts[48, 0]) - 6, int(pts[54, 0]) + 6
    y0, y1 = int(pts[33, 1]), int(pts[8, 1])
    covered = crop.copy()
    covered[y0:y1, x0:x1] = (60, 90, 140)  # a brown cup over the mouth and chin
    closed = moved_landmarks(pts, mouth=0.0)  # ... which the mesh reads as a closed mouth
    for _ in range(20):
        face_visibility("appearance", state, noisy(covered), closed, np.eye(2, 3), None)
        assert not mouth_seen(state)
        assert not observe(state, closed, seen=mouth_seen(state))
    assert state.expression.open_floor == floor
    settling = []
    for _ in range(MOUTH_SETTLE + 2):  # the hand gone; the mesh takes a few frames to find the lips again
        face_visibility("appearance", state, noisy(crop), parted, np.eye(2, 3), None)
        settling.append(mouth_seen(state))
    assert settling == [False] * (MOUTH_SETTLE - 1) + [True] * 3  # trusted again on the MOUTH_SETTLE-th frame
    # without the check the same frames drag the floor down to the closed mouth
    unchecked = FaceState()
    for _ in range(10):
        observe(unchecked, parted)
    observe(unchecked, closed)
    assert unchecked.expression.open_floor < floor - 0.05
    # a patch away from the mouth (the forehead) leaves it seen
    forehead = crop.copy()
    forehead[: int(pts[19, 1]), int(pts[19, 0]) : int(pts[24, 0])] = (60, 90, 140)
    other = FaceState()
    for _ in range(10):
        face_visibility("appearance", other, noisy(crop), parted, np.eye(2, 3), None)
    face_visibility("appearance", other, noisy(forehead), parted, np.eye(2, 3), None)
    assert mouth_seen(other)


def test_mostly_hidden_face_fades_out_and_back_in(learned):
    crop, pts, noisy = learned
    state = FaceState()
    for _ in range(8):
        visible, presence = face_visibility("appearance", state, noisy(crop), pts, np.eye(2, 3), None)
        assert presence == 1.0 and visible is None
    hidden = np.full_like(crop, 128)  # a hand over the whole face
    levels = [face_visibility("appearance", state, noisy(hidden), pts, np.eye(2, 3), None)[1] for _ in range(6)]
    assert levels == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0, 0.0])
    back = [face_visibility("appearance", state, noisy(crop), pts, np.eye(2, 3), None)[1] for _ in range(6)]
    assert back == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert face_visibility("off", FaceState(), crop, pts, np.eye(2, 3), None) == (None, 1.0)


@pytest.fixture(scope="module")
def shift_swapper(tmp_path_factory):
    path = colour_shift_model(tmp_path_factory.mktemp("occ") / "shift.onnx", size=64, offset=(0.25, -0.15, 0.1))
    return Swapper(path)


def _hull(landmarks, shape):
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks).astype(np.int32)), 1)
    return mask.astype(bool)


def test_covered_face_shows_the_camera_and_the_swap_fades_back_in(shift_swapper, astronaut, portrait_landmarks):
    lm = portrait_landmarks["astronaut"]
    frame = astronaut.image
    face = _hull(lm, frame.shape)
    covered = frame.copy()
    covered[face] = (150, 170, 200)  # skin-coloured, flat: a palm over the whole face
    options = PipelineOptions(colour="none", smoothing=False, mouth="swap", occlusion="appearance", **NO_OVERLAY)
    with FaceSwapProcessor(shift_swapper, options, detector=StillDetector(lm)) as proc:
        for i in range(6):
            out = proc.process(frame, i / 30)
        swapped = np.abs(out.astype(int) - frame)[face].mean()
        assert swapped > 10  # the swap is on
        for i in range(6, 6 + occlusion.FADE_FRAMES):
            out = proc.process(covered, i / 30)
        np.testing.assert_array_equal(out, covered)  # the camera's own frame, bit for bit
        back = []
        for i in range(12, 12 + occlusion.FADE_FRAMES + 1):
            out = proc.process(frame, i / 30)
            back.append(np.abs(out.astype(int) - frame)[face].mean())
        assert all(b > a for a, b in zip(back[:-2], back[1:-1], strict=True)), back  # the swap fades back in ...
        assert back[0] < 0.3 * swapped and back[-1] == pytest.approx(swapped, rel=0.1)  # ... all the way


def test_dfm_camera_face_mask_that_leaves_out_an_occluder_keeps_it(tmp_path, astronaut, portrait_landmarks):
    """DeepFaceLive's out_face_mask multiplies in: a DFM that cuts a disc out of the face keeps what is there."""
    size = 64
    yy, xx = np.mgrid[0:size, 0:size]
    disc = ((xx - 22) ** 2 + (yy - 44) ** 2) <= 9**2  # crop pixels: the left of the mouth
    source_mask = np.where(disc, 0.0, 1.0).astype(np.float32)
    path = colour_shift_model(
        tmp_path / "occluder.dfm", size=size, offset=(0.3, 0.3, 0.3), layout="dfm", source_mask=source_mask
    )
    swapper = Swapper(path)
    lm = portrait_landmarks["astronaut"]
    options = PipelineOptions(colour="none", smoothing=False, mouth="swap", occlusion="off", **NO_OVERLAY)
    with FaceSwapProcessor(swapper, options, detector=StillDetector(lm)) as proc:
        frame = astronaut.image.copy()
        _, matrix = align(frame, lm, size, proc.coverage)
        inner = cv2.erode(disc.astype(np.uint8), np.ones((7, 7), np.uint8))  # well inside the disc's soft edge
        in_frame = cv2.warpAffine(inner, cv2.invertAffineTransform(matrix), frame.shape[1::-1]) > 0
        frame[in_frame] = (30, 30, 200)  # a red microphone there
        out = proc.process(frame)
    assert np.any(out != frame, axis=2).sum() > 500  # the face was swapped ...
    np.testing.assert_array_equal(out[in_frame], frame[in_frame])  # ... but not over the microphone


@pytest.fixture(scope="module")
def occluder_clip():
    from realtime.clips import truth_clip

    clip = truth_clip("occluders", "astronaut", n_frames=90)
    frames = [clip.frame(i) for i in range(len(clip))]
    masks = []
    for i in range(len(clip)):
        drawn = np.zeros(frames[0].shape[:2], bool)
        for mask in clip.masks(i).values():
            drawn |= mask.astype(bool)
        masks.append(drawn & _hull(clip.face_landmarks(i), frames[0].shape))
    return frames, masks


def test_the_occluder_clip_keeps_hand_and_bar_in_front(occluder_clip):
    """Real FaceMesh + hand landmarker + the shipped demo model: of the occluders' pixels over the face, 90 % stay
    the camera's (within 12 grey levels, eval's rule) with occlusion on, and clearly fewer with it off."""
    from realtime.builder import open_swapper

    frames, masks = occluder_clip
    assert sum(m.sum() for m in masks) > 20000
    swapper = open_swapper("models/demo/demo_a2b.onnx")
    kept = {}
    for mode in ("auto", "off"):
        hits = total = 0
        with FaceSwapProcessor(swapper, PipelineOptions(occlusion=mode, **NO_OVERLAY)) as proc:
            proc.warmup()
            for i, (frame, mask) in enumerate(zip(frames, masks, strict=True)):
                out = proc.process(frame, i / 30)
                same = np.abs(out.astype(int) - frame).max(axis=2) <= 12
                hits += int(same[mask].sum())
                total += int(mask.sum())
        kept[mode] = hits / total
    assert kept["auto"] >= 0.9, kept
    assert kept["off"] < kept["auto"] - 0.15, kept


def test_a_coloured_cup_in_front_of_the_face_does_not_tint_the_swap(tmp_path, astronaut, portrait_landmarks):
    """Colour transfer reads its statistics where the face is visible: an orange cup over mouth and cheek leaves
    the rest of the swapped face's colour as it was without the cup; with occlusion off the cup's colours enter
    the statistics and cast the whole face. The model always draws the clean face, bluer (a swap never draws the
    cup)."""
    from _live_fixtures import frozen_model
    from skimage.color import rgb2lab

    from realtime.builder import open_swapper

    lm = portrait_landmarks["astronaut"]
    frame = astronaut.image
    face = _hull(lm, frame.shape)
    cup = frame.copy()
    box = (int(lm[4, 0]), int(lm[33, 1]), int(lm[54, 0]), int(lm[8, 1]) + 20)  # left cheek, mouth, chin
    cup[box[1] : box[3], box[0] : box[2]] = (20, 110, 240)  # orange (BGR)
    away = face.copy()
    away[box[1] - 10 : box[3] + 10, box[0] - 10 : box[2] + 10] = False  # the face well away from the cup
    assert away.sum() > 1000

    def lab_mean(image):
        return rgb2lab(image[..., ::-1])[away].mean(axis=0)

    crop, _ = align(frame, lm, SIZE, 1.6)
    drawn = np.clip(crop[..., ::-1].astype(np.float32) / 255 + np.float32([-0.1, 0.0, 0.15]), 0, 1)
    swapper = open_swapper(frozen_model(tmp_path / "frozen.onnx", drawn), threads=1)
    shifts = {}
    for mode in ("appearance", "off"):
        options = PipelineOptions(colour="rct", smoothing=False, mouth="swap", occlusion=mode, **NO_OVERLAY)
        with FaceSwapProcessor(swapper, options, detector=StillDetector(lm)) as proc:
            for i in range(8):
                clean = proc.process(frame, i / 30)
            for i in range(8, 12):
                with_cup = proc.process(cup, i / 30)
        shifts[mode] = float(np.abs(lab_mean(with_cup) - lab_mean(clean)).max())
    assert shifts["appearance"] < 1.5, shifts
    assert shifts["off"] > 3.0, shifts
