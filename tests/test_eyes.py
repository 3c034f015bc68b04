"""The swap's eyelids follow the camera's (realtime.eyes): the closure measure on landmark sets, and through the real
pipeline (mediapipe + onnxruntime) a blink in the clip is a blink in the output, checked by an independent
landmark pass on the output frames, with a model that always draws the same open-eyed face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from _live_fixtures import frozen_model

from realtime.expressions import expression_warp, moved_landmarks
from realtime.eyes import (
    BASELINE_DECAY,
    BLINK_DEEPER,
    BLINK_FRAMES,
    DIP_FROM,
    EAR_SMOOTHING,
    SHALLOWEST_SHUT,
    SHUT_RATIO,
    EyeFollower,
    close_eyes,
)
from realtime.facestate import FaceState
from realtime.landmarks.measures import eye_aspect_ratio
from realtime.pipeline import FaceSwapProcessor, PipelineOptions


def test_closure_against_the_faces_own_open_baseline(portrait_landmarks):
    lm = portrait_landmarks["astronaut"].astype(np.float64)
    state = FaceState()
    assert EyeFollower.closure(state, lm) == 0.0  # the first frame sets the baseline
    assert EyeFollower.closure(state, moved_landmarks(lm, eyes=0.04)) == 0.0  # jitter: the dead zone
    EyeFollower.closure(state, lm)
    # the EAR is lightly smoothed: a blink shows on its first frame, half way (EAR_SMOOTHING), and then fully
    shut_lm = moved_landmarks(lm, eyes=1.0 - SHUT_RATIO)
    onset = EyeFollower.closure(state, shut_lm)
    shut = [EyeFollower.closure(state, shut_lm) for _ in range(4)][-1]
    # (measured 0.46 and 0.83: the open baseline decays a little while the eye is shut)
    assert onset == pytest.approx(1.0 - EAR_SMOOTHING, abs=0.1) and shut > 0.8, (onset, shut)
    reopened = [EyeFollower.closure(state, lm) for _ in range(4)]
    assert reopened[1:] == [0.0, 0.0, 0.0], reopened  # open again a frame after (the smoothing is short)
    # the tracker reads a shut eye as SHUT_RATIO of the open one: a tenth of the lid gap is well under a blink
    squint = moved_landmarks(lm, eyes=0.1)
    part = max(EyeFollower.closure(state, squint) for _ in range(4))
    assert 0.2 < part < 0.5, part
    # the baseline is a slowly decaying peak hold: a long squint slowly becomes the new "open"
    for _ in range(300):
        last = EyeFollower.closure(state, squint)
    assert last == 0.0
    assert state.eyes_open_baseline == pytest.approx(eye_aspect_ratio(squint), abs=BASELINE_DECAY)


def test_a_face_whose_blinks_read_shallow_gets_its_lids_shut(portrait_landmarks):
    """Behind glasses the tracker reads a blink shallower than SHUT_RATIO: after the face's first blink its own
    depth counts as shut. A long dip (a squint, a look down) teaches nothing, and a face that blinks deep is
    treated as before."""
    lm = portrait_landmarks["astronaut"].astype(np.float64)
    shallow = moved_landmarks(lm, eyes=0.18)  # reads ~0.82 of the open eye (SHUT_RATIO: 0.75)
    ratio = eye_aspect_ratio(shallow) / eye_aspect_ratio(lm)
    assert SHUT_RATIO + 0.05 < ratio < SHALLOWEST_SHUT, ratio

    def blink(state: FaceState, shut: np.ndarray, frames: int = 3) -> float:
        deepest = max(EyeFollower.closure(state, shut) for _ in range(frames))
        for _ in range(8):
            EyeFollower.closure(state, lm)
        return deepest

    state = FaceState()
    for _ in range(5):
        EyeFollower.closure(state, lm)
    onset = EyeFollower.closure(state, shallow)
    assert onset < 0.7, onset  # a dip's first frame: drawn part way, on SHUT_RATIO's span
    for _ in range(8):
        EyeFollower.closure(state, lm)
    state = FaceState()
    for _ in range(5):
        EyeFollower.closure(state, lm)
    first, second, third = (blink(state, shallow) for _ in range(3))
    # the first blink is drawn shut at its own depth so far (from its second frame), the next at the depth learned
    assert first > 0.9 and second > 0.9 and third > 0.9, (first, second, third)
    assert state.eyes_blink_depth is not None and SHUT_RATIO < state.eyes_blink_depth < SHALLOWEST_SHUT + 0.01
    # a long dip of the same depth is not a blink: it teaches nothing
    state = FaceState()
    for _ in range(5):
        EyeFollower.closure(state, lm)
    closures = [EyeFollower.closure(state, shallow) for _ in range(BLINK_FRAMES + 20)]
    blink(state, lm, frames=1)
    assert state.eyes_blink_depth is None
    assert max(closures[-10:]) < 0.7, closures  # past BLINK_FRAMES a dip is no blink: SHUT_RATIO's span again
    # ... nor does a quick narrowing of the eyes that stays above BLINK_DEEPER (speech: 0.92 on carphone)
    state = FaceState()
    for _ in range(5):
        EyeFollower.closure(state, lm)
    narrowing = moved_landmarks(lm, eyes=0.11)
    dips = []
    for _ in range(4):
        EyeFollower.closure(state, narrowing)
        dips.append(state.eyes_dip)
    assert dips[-1] is not None and BLINK_DEEPER < dips[-1] < DIP_FROM, dips  # a dip, not deep enough
    blink(state, lm, frames=1)
    assert state.eyes_dip is None and state.eyes_blink_depth is None
    # deep blinks keep SHUT_RATIO's span: the same closures as a face never seen blinking
    deep = moved_landmarks(lm, eyes=0.35)
    fresh, taught = FaceState(), FaceState()
    for s in (fresh, taught):
        for _ in range(5):
            EyeFollower.closure(s, lm)
    blink(taught, deep)
    assert taught.eyes_blink_depth is not None and taught.eyes_blink_depth < SHUT_RATIO
    assert EyeFollower.shut_ratio(taught, 1.0) == SHUT_RATIO == EyeFollower.shut_ratio(fresh, 1.0)


def test_close_eyes_moves_the_lids(portraits, portrait_landmarks):
    image, lm = portraits["grace_hopper"].image, portrait_landmarks["grace_hopper"]
    assert close_eyes(image, lm, 0.0) is image
    squint = close_eyes(image, lm, 0.3)  # lids moved, not painted
    moved_only, _, _ = expression_warp(image, lm, eyes=0.3, paint_lids=False)
    np.testing.assert_array_equal(squint, moved_only)
    blink = close_eyes(image, lm, 1.0)  # painted over too
    painted, _, _ = expression_warp(image, lm, eyes=1.0)
    np.testing.assert_array_equal(blink, painted)


@pytest.fixture
def static_detector():
    """mediapipe in static mode: the independent landmark pass that reads the output frames' eyes."""
    from realtime.landmarks import create_detector

    detector = create_detector("mediapipe", mode="static")
    detector.warmup()
    yield detector
    detector.close()


def frozen_grace_swapper(tmp_path, grace_hopper, portrait_landmarks):
    """A model that always draws Grace Hopper's aligned portrait, eyes open: whatever closes them is the follower."""
    from realtime.align import align
    from realtime.builder import open_swapper

    crop, _ = align(grace_hopper.image, portrait_landmarks["grace_hopper"], 128, 1.6)
    frozen = frozen_model(tmp_path / "frozen.onnx", cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255)
    return open_swapper(frozen, threads=1)


def output_ears(swapper, options: PipelineOptions, frames, detector, measure=eye_aspect_ratio) -> np.ndarray:
    """What the static detector reads (``measure`` of its landmarks: the eye aspect ratio by default) on each output
    frame of ``frames`` run through the pipeline."""
    ears = []
    with FaceSwapProcessor(swapper, options) as proc:
        for i, frame in enumerate(frames):
            out = proc.process(frame, i / 30.0)
            ears.append(measure(detector.detect(out)[0].landmarks))
    return np.array(ears)


@pytest.mark.slow
def test_a_blink_in_the_clip_is_a_blink_in_the_output(
    tmp_path, grace_hopper, grace_hopper_clip, portrait_landmarks, static_detector
):
    swapper = frozen_grace_swapper(tmp_path, grace_hopper, portrait_landmarks)
    frames, blinking = [], set(range(10, 16))
    for i, frame in enumerate(grace_hopper_clip.frames[:22]):
        if i in blinking:  # the camera's person shuts their eyes
            frame, _, _ = expression_warp(frame, static_detector.detect(frame)[0].landmarks, eyes=1.0)
        frames.append(frame)
    measured = {
        mode: output_ears(
            swapper,
            PipelineOptions(colour="none", mouth="swap", eyes=mode, hud=False, label=False, smoothing=False),
            frames,
            static_detector,
        )
        for mode in ("swap", "follow")
    }
    shut = [i for i in blinking if i > min(blinking)]  # the tracker may need a frame to see the lids move
    open_ = [i for i in range(4, 22) if i not in blinking and i - 1 not in blinking]
    swap, follow = measured["swap"], measured["follow"]
    # the frozen model's eyes never close by themselves ...
    assert abs(swap[shut].mean() - swap[open_].mean()) < 0.03, swap
    # ... following the camera they do, and open again after
    assert follow[shut].mean() < follow[open_].mean() - 0.05, follow
    assert abs(follow[open_].mean() - swap[open_].mean()) < 0.03


@pytest.mark.slow
def test_a_quick_blink_of_a_still_head_is_not_smeared_by_landmark_smoothing(
    tmp_path, grace_hopper, grace_hopper_clip, portrait_landmarks, static_detector
):
    """Smoothing on (the default): One Euro smoothing holds a still head's points steady, and a blink is a fast
    motion of a few pixels, which it spreads over the next frames. The lids follow the detector's own points of
    each frame instead (Face.measured), so a 3-frame blink is shut on its frames and open right after."""
    swapper = frozen_grace_swapper(tmp_path, grace_hopper, portrait_landmarks)
    still = grace_hopper_clip.frames[0]
    shut_frame, _, _ = expression_warp(still, static_detector.detect(still)[0].landmarks, eyes=1.0)
    blinking = (12, 13, 14)
    options = PipelineOptions(colour="none", mouth="swap", eyes="follow", hud=False, label=False, smoothing=True)
    ears = output_ears(swapper, options, [shut_frame if i in blinking else still for i in range(20)], static_detector)
    open_ear = ears[4:12].mean()
    # measured: open 0.241, the blink 0.220 0.209 0.205, then 0.245; following the smoothed points instead, the
    # lids were still shut a frame after the blink (0.226)
    assert ears[list(blinking)].mean() < open_ear - 0.02, ears
    assert ears[15] > open_ear - 0.01, ears  # open again on the first frame after
