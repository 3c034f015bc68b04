"""The swap's eyelids follow the camera's (realtime.eyes): the closure measure on landmark sets, and through the real
pipeline (mediapipe + onnxruntime) a blink in the clip is a blink in the output, checked by an independent
landmark pass on the output frames, with a model that always draws the same open-eyed face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from _live_fixtures import frozen_model

from realtime.expressions import expression_warp, moved_landmarks
from realtime.eyes import BASELINE_DECAY, SHUT_RATIO, EyeFollower, close_eyes, eye_aspect_ratio
from realtime.pipeline import FaceSwapProcessor, PipelineOptions


def test_closure_against_the_faces_own_open_baseline(portrait_landmarks):
    lm = portrait_landmarks["astronaut"].astype(np.float64)
    state: dict = {}
    assert EyeFollower.closure(state, lm) == 0.0  # the first frame sets the baseline
    assert EyeFollower.closure(state, moved_landmarks(lm, eyes=0.02)) == 0.0  # jitter: the dead zone
    # the tracker reads a shut eye as SHUT_RATIO of the open one: a tenth of the lid gap is 40 % of the way there
    part = EyeFollower.closure(state, moved_landmarks(lm, eyes=0.1))
    shut = EyeFollower.closure(state, moved_landmarks(lm, eyes=1.0 - SHUT_RATIO))
    assert part == pytest.approx(0.1 / (1 - SHUT_RATIO), abs=0.08) and shut > 0.9, (part, shut)  # baseline decay
    # the baseline is a slowly decaying peak hold: a long squint slowly becomes the new "open"
    squint = moved_landmarks(lm, eyes=0.1)
    first = EyeFollower.closure(state, squint)
    for _ in range(300):
        last = EyeFollower.closure(state, squint)
    assert first > 0.2 and last == 0.0
    assert state[EyeFollower.KEY] == pytest.approx(eye_aspect_ratio(squint), abs=BASELINE_DECAY)


def test_close_eyes_moves_the_lids(portraits, portrait_landmarks):
    image, lm = portraits["grace_hopper"].image, portrait_landmarks["grace_hopper"]
    assert close_eyes(image, lm, 0.0) is image
    squint = close_eyes(image, lm, 0.3)  # lids moved, not painted
    moved_only, _, _ = expression_warp(image, lm, eyes=0.3, paint_lids=False)
    np.testing.assert_array_equal(squint, moved_only)
    blink = close_eyes(image, lm, 1.0)  # painted over too
    painted, _, _ = expression_warp(image, lm, eyes=1.0)
    np.testing.assert_array_equal(blink, painted)


@pytest.mark.slow
def test_a_blink_in_the_clip_is_a_blink_in_the_output(tmp_path, grace_hopper, grace_hopper_clip, portrait_landmarks):
    from realtime.align import align
    from realtime.landmarks import create_detector

    crop, _ = align(grace_hopper.image, portrait_landmarks["grace_hopper"], 128, 1.6)
    frozen = frozen_model(tmp_path / "frozen.onnx", cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255)
    from realtime.builder import open_swapper

    swapper = open_swapper(frozen, threads=1)
    detector = create_detector("mediapipe", mode="static")
    detector.warmup()
    try:
        frames, blinking = [], set(range(10, 16))
        for i, frame in enumerate(grace_hopper_clip.frames[:22]):
            if i in blinking:  # the camera's person shuts their eyes
                frame, _, _ = expression_warp(frame, detector.detect(frame)[0].landmarks, eyes=1.0)
            frames.append(frame)
        measured = {}
        for mode in ("swap", "follow"):
            options = PipelineOptions(colour="none", mouth="swap", eyes=mode, hud=False, label=False, smoothing=False)
            ears = []
            with FaceSwapProcessor(swapper, options) as proc:
                for i, frame in enumerate(frames):
                    out = proc.process(frame, i / 30.0)
                    ears.append(eye_aspect_ratio(detector.detect(out)[0].landmarks))
            measured[mode] = np.array(ears)
    finally:
        detector.close()
    shut = [i for i in blinking if i > min(blinking)]  # the tracker may need a frame to see the lids move
    open_ = [i for i in range(4, 22) if i not in blinking and i - 1 not in blinking]
    swap, follow = measured["swap"], measured["follow"]
    # the frozen model's eyes never close by themselves ...
    assert abs(swap[shut].mean() - swap[open_].mean()) < 0.03, swap
    # ... following the camera they do, and open again after
    assert follow[shut].mean() < follow[open_].mean() - 0.05, follow
    assert abs(follow[open_].mean() - swap[open_].mean()) < 0.03
