"""The swap takes on the camera's expression (realtime.follow): the neutral does not swallow a held smile, and
through the real pipeline (mediapipe + onnxruntime) a smiling camera face gives a smiling output -- read by an
independent landmark pass on the output frames -- with a model that always draws the same resting face."""

from __future__ import annotations

import numpy as np
import pytest
from test_eyes import frozen_grace_swapper, output_ears

from realtime import pipeline
from realtime.expressions import expression_warp, moved_landmarks
from realtime.facestate import FaceState
from realtime.follow import (
    RESPONSE,
    TEMPLATE_LIFT,
    TEMPLATE_OPEN,
    drawn_expression,
    follow_expression,
    observe,
    smile_lift,
)
from realtime.landmarks.measures import mouth_corner_lift, mouth_openness
from realtime.pipeline import FaceSwapProcessor, PipelineOptions


@pytest.fixture
def static_detector():
    from realtime.landmarks import create_detector

    detector = create_detector("mediapipe", mode="static")
    detector.warmup()
    yield detector
    detector.close()


def test_strength_zero_is_the_face_itself_and_still_learns_the_neutral(portraits, portrait_landmarks):
    image, lm = portraits["grace_hopper"].image, portrait_landmarks["grace_hopper"].astype(np.float64)
    state = FaceState()
    assert follow_expression(image, lm, state, 0.0) is image
    assert (
        state.expression is not None
    )  # the neutral is kept up also while off: switching on mid-call needs no settling
    smiling = moved_landmarks(lm, smile=1.0)
    observe(state, smiling)
    assert follow_expression(image, smiling, state, 0.0) is image


def test_the_neutral_does_not_swallow_a_held_smile(portrait_landmarks):
    lm = portrait_landmarks["grace_hopper"].astype(np.float64)
    smiling = moved_landmarks(lm, smile=1.0)
    assert smile_lift(smiling) > TEMPLATE_LIFT + 0.05
    state = FaceState()
    for _ in range(300):  # ten seconds of a smile from the first frame on
        observe(state, smiling)
    neutral = state.expression.neutral
    # capped at a resting face's lift: the held smile stays an expression to follow
    assert smile_lift(neutral) < TEMPLATE_LIFT + 0.02, smile_lift(neutral)
    # a resting face seen after it is taken up as the person's own neutral
    assert not observe(state, smiling)  # not a resting frame
    for _ in range(120):
        assert observe(state, lm)
    neutral = state.expression.neutral
    assert np.abs(neutral - lm).max() < 0.5, np.abs(neutral - lm).max()
    # ... and a smile after that does not move it
    for _ in range(60):
        observe(state, smiling)
    neutral = state.expression.neutral
    assert np.abs(neutral - lm).max() < 0.5


def test_an_opening_mouth_is_not_read_as_a_smile(portrait_landmarks):
    """The follower's smile is the corners' lift against the upper lip: the lower lip dropping as the mouth opens
    moves the lips' middle (which realtime.landmarks.measures' mouth_corner_lift takes) but not that."""
    lm = portrait_landmarks["grace_hopper"].astype(np.float64)
    opened = moved_landmarks(lm, mouth=0.3, rigid_jaw=True)
    assert mouth_corner_lift(opened) - mouth_corner_lift(lm) > 0.1  # both lips' middle: an opening reads as a smile
    assert abs(smile_lift(opened) - smile_lift(lm)) < 0.01, (smile_lift(opened), smile_lift(lm))
    assert smile_lift(moved_landmarks(lm, smile=1.0)) - smile_lift(lm) > 0.1  # ... a smile does


def test_lips_that_rest_parted_are_drawn_as_the_neutral_has_them(portraits, portrait_landmarks):
    """Lips that rest parted (beyond the template's gap, so the neutral is capped closed) are the person's rest: the
    follower leaves the swapped mouth closed; an opening beyond that rest opens it (and paints the gap dark)."""
    image, lm = portraits["grace_hopper"].image, portrait_landmarks["grace_hopper"].astype(np.float64)
    parted = moved_landmarks(lm, mouth=0.15, rigid_jaw=True)
    assert mouth_openness(parted) > TEMPLATE_OPEN + 0.05
    state = FaceState()
    for _ in range(30):
        observe(state, parted)
    assert mouth_openness(state.expression.neutral) < mouth_openness(parted) - 0.03  # capped: a closed neutral
    np.testing.assert_array_equal(follow_expression(image, parted, state, 1.0), image)
    wide = moved_landmarks(lm, mouth=0.4, rigid_jaw=True)
    opened = follow_expression(image, wide, state, 1.0)
    mouth = (slice(int(wide[62, 1]) + 2, int(wide[66, 1]) - 2), slice(int(wide[62, 0]) - 3, int(wide[62, 0]) + 4))
    assert opened[mouth].mean() < image[mouth].mean() - 30, (opened[mouth].mean(), image[mouth].mean())


def test_a_smile_moves_the_mouth_corners_up(portraits, portrait_landmarks, static_detector):
    """The warp puts the corners where the camera's are: the landmarks read on the warped face lift about as much
    as on the same smile drawn by the analytic smile field (realtime.expressions, which the truth clips use)."""
    image, lm = portraits["grace_hopper"].image, portrait_landmarks["grace_hopper"].astype(np.float64)
    state = FaceState()
    for _ in range(5):
        observe(state, lm)
        rest = follow_expression(image, lm, state, 1.0)
    np.testing.assert_array_equal(rest, image)  # resting: nothing moves (the dead zone holds landmark jitter)

    def lift(face: np.ndarray) -> float:
        return mouth_corner_lift(static_detector.detect(face)[0].landmarks)

    drawn, _, _ = expression_warp(image, lm, smile=1.0)
    # the tracker reads a drawn smile's corner lift short, by RESPONSE: these points are how it reads a full one
    read = moved_landmarks(lm, smile=RESPONSE)
    followed = follow_expression(image, read, state, 1.0)
    half = follow_expression(image, read, state, 0.5)
    # measured: 0.042 resting, drawn 0.112, followed 0.102, half 0.073
    gain = lift(drawn) - lift(image)
    assert 0.75 * gain < lift(followed) - lift(image) < 1.25 * gain, (lift(followed), lift(drawn), lift(image))
    assert 0.3 * gain < lift(half) - lift(image) < 0.7 * gain, lift(half)  # strength scales the move


def output_lifts(swapper, expression: float, frames, detector) -> np.ndarray:
    """The corner lift the static detector reads on each output frame of ``frames`` run through the pipeline."""
    options = PipelineOptions(
        colour="none", mouth="swap", eyes="swap", occlusion="off", hud=False, label=False, expression=expression
    )
    return output_ears(swapper, options, frames, detector, measure=mouth_corner_lift)


@pytest.mark.slow
def test_a_smiling_camera_face_smiles_in_the_output(
    tmp_path, grace_hopper, grace_hopper_clip, portrait_landmarks, static_detector
):
    swapper = frozen_grace_swapper(tmp_path, grace_hopper, portrait_landmarks)
    still = grace_hopper_clip.frames[0]
    smile_frame, _, _ = expression_warp(still, static_detector.detect(still)[0].landmarks, smile=1.0)
    smiling = range(16, 26)
    frames = [smile_frame if i in smiling else still for i in range(26)]
    camera = np.array([mouth_corner_lift(static_detector.detect(f)[0].landmarks) for f in (still, smile_frame)])
    off, on = (output_lifts(swapper, e, frames, static_detector) for e in (0.0, 1.0))
    rest, smile = list(range(4, 16)), list(smiling)[2:]  # (One Euro smoothing takes a frame or two to arrive)
    # the frozen model never smiles by itself ...
    assert abs(off[smile].mean() - off[rest].mean()) < 0.01, off
    # ... following the camera it does, by most of the camera's own lift ...
    gain = on[smile].mean() - on[rest].mean()
    assert gain > 0.6 * (camera[1] - camera[0]), (gain, camera, on)
    # ... and a resting camera face is left as the model draws it
    assert abs(on[rest].mean() - off[rest].mean()) < 0.01, (on, off)


@pytest.mark.slow
def test_expression_zero_is_todays_output_exactly(
    tmp_path, grace_hopper, grace_hopper_clip, portrait_landmarks, static_detector, monkeypatch
):
    swapper = frozen_grace_swapper(tmp_path, grace_hopper, portrait_landmarks)
    still = grace_hopper_clip.frames[0]
    smile_frame, _, _ = expression_warp(still, static_detector.detect(still)[0].landmarks, smile=1.0)
    frames = [still] * 4 + [smile_frame] * 4 + list(grace_hopper_clip.frames[:4])

    def run() -> list[np.ndarray]:
        with FaceSwapProcessor(swapper, PipelineOptions(expression=0.0)) as proc:
            return [proc.process(f, i / 30.0) for i, f in enumerate(frames)]

    with_stage = run()
    monkeypatch.setattr(pipeline, "follow_expression", lambda face, *args: face)  # the stage taken out
    without = run()
    for a, b in zip(with_stage, without, strict=True):
        np.testing.assert_array_equal(a, b)


class _PassThrough:
    """A "model" that draws the camera's aligned crop as it is: every expression is already there."""

    recentres = False

    def __init__(self, info) -> None:
        self.info = info

    def swap(self, crops, morph: float = 0.75):
        return [np.ascontiguousarray(c) for c in crops], [np.ones(c.shape[:2], np.float32) for c in crops]


def test_the_probe_tells_a_model_that_draws_expressions_from_one_that_does_not(
    tmp_path, grace_hopper, portrait_landmarks
):
    from realtime.align import align, transform_points

    frozen = frozen_grace_swapper(tmp_path, grace_hopper, portrait_landmarks)
    lm = portrait_landmarks["grace_hopper"]
    crop, matrix = align(grace_hopper.image, lm, frozen.size, frozen.info.coverage)
    pts = transform_points(lm, matrix)
    (passed,) = drawn_expression(_PassThrough(frozen.info), [crop], [pts], 0.75)
    assert passed > 0.95
    # the same resting face whatever the camera shows; two faces in one batch, each its own answer
    assert drawn_expression(frozen, [crop, crop], [pts, pts], 0.75) == [pytest.approx(0.0, abs=0.05)] * 2


@pytest.mark.slow
def test_a_model_that_draws_the_expression_itself_does_not_get_it_twice(
    tmp_path, grace_hopper, grace_hopper_clip, portrait_landmarks, static_detector
):
    """With a pass-through model (the reconstruction ceiling of `swapcam eval`) the follower adds nothing: the
    output is the same with --expression 1 as with 0, smile included; the frozen model still gets the smile."""
    frozen = frozen_grace_swapper(tmp_path, grace_hopper, portrait_landmarks)
    still = grace_hopper_clip.frames[0]
    smile_frame, _, _ = expression_warp(still, static_detector.detect(still)[0].landmarks, smile=1.0)
    frames = [still] * 6 + [smile_frame] * 6

    def run(swapper, expression: float) -> list[np.ndarray]:
        with FaceSwapProcessor(swapper, PipelineOptions(expression=expression)) as proc:
            return [proc.process(f, i / 30.0) for i, f in enumerate(frames)]

    passthrough = _PassThrough(frozen.info)
    for a, b in zip(run(passthrough, 1.0), run(passthrough, 0.0), strict=True):
        np.testing.assert_array_equal(a, b)
    on, off = run(frozen, 1.0), run(frozen, 0.0)
    assert np.abs(on[-1].astype(int) - off[-1].astype(int)).max() > 30  # the frozen model's face was moved


def test_lips_the_model_draws_parted_are_closed_towards_the_camera_persons(
    portraits, portrait_landmarks, static_detector
):
    """A model that draws the lips parted while the camera person's rest closed (state.expression_drawn_open, read
    by the pipeline on the face's first frame): the follower closes CLOSE_SHARE of the excess."""
    from realtime.follow import CLOSE_SHARE

    image, lm = portraits["grace_hopper"].image, portrait_landmarks["grace_hopper"].astype(np.float64)
    drawn, parted, _ = expression_warp(image, lm, mouth=0.2, rigid_jaw=True)  # what the model draws
    state = FaceState()
    for _ in range(5):
        observe(state, lm)  # the camera person rests closed
    np.testing.assert_array_equal(follow_expression(drawn, lm, state, 1.0), drawn)  # not known: left as drawn

    def gap(face: np.ndarray) -> float:
        return mouth_openness(static_detector.detect(face)[0].landmarks)

    state.expression_drawn_open = mouth_openness(parted)
    closed = follow_expression(drawn, lm, state, 1.0)
    excess = gap(drawn) - gap(image)
    assert excess > 0.1, (gap(drawn), gap(image))
    # (measured: 0.120 drawn -> 0.100 followed, 0.007 at rest: the lower lip comes up, the painted dark between the
    # lips is squeezed, not removed, and the mesh still reads some of it)
    assert gap(drawn) - gap(closed) > 0.3 * CLOSE_SHARE * excess, (gap(drawn), gap(closed), gap(image))
