"""The user's own mouth (realtime.mouth): the fade-in with the opening, the paste itself, and a mouth that opens
in a clip is open in the output (measured by an independent mediapipe pass on the output frames) with a model that
never opens its own."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime.landmarks.measures import mouth_openness
from realtime.mouth import FADE_FROM, FADE_TO, MouthGate, paste_camera_mouth
from tests._live_fixtures import frozen_model


def _with_openness(lm: np.ndarray, value: float) -> np.ndarray:
    """Landmarks whose lower inner lip sits ``value`` eye distances below the upper one."""
    out = lm.astype(np.float64).copy()
    d = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        out[lower] = out[upper] + [0.0, value * d]
    return out


def test_the_camera_mouth_fades_in_with_the_opening(portrait_landmarks):
    """None of the camera's mouth up to FADE_FROM, all of it from FADE_TO, a straight ramp between; the same
    opening gives the same amount whatever came before (no state to flicker or to lag)."""
    lm = portrait_landmarks["grace_hopper"]
    gate = MouthGate("auto")
    assert mouth_openness(_with_openness(lm, 0.25)) == pytest.approx(0.25, abs=1e-6)
    mid = (FADE_FROM + FADE_TO) / 2
    sequence = [0.0, FADE_FROM - 0.01, mid, FADE_TO + 0.02, mid, FADE_FROM - 0.01, FADE_TO]
    amounts = [gate.amount(_with_openness(lm, v)) for v in sequence]
    assert amounts[:2] == [0.0, 0.0] and amounts[3] == 1.0 and amounts[5] == 0.0
    assert amounts[2] == pytest.approx(0.5, abs=1e-3) and amounts[4] == amounts[2]  # opening or closing alike
    assert amounts[6] == pytest.approx(1.0)
    ramp = [gate.amount(_with_openness(lm, v)) for v in np.linspace(FADE_FROM, FADE_TO, 12)]
    assert np.all(np.diff(ramp) > 0), ramp
    assert MouthGate("keep").amount(lm) == 1.0
    assert MouthGate("swap").amount(_with_openness(lm, 0.4)) == 0.0
    with pytest.raises(ValueError):
        MouthGate("open")


def test_only_the_opening_beyond_the_persons_rest_counts(portrait_landmarks):
    """Someone whose lips are parted at rest (the smiling astronaut reads 0.15-0.18) must not count as talking, and
    someone whose mouth rests shut must not have to open further than they do: the gate measures the opening beyond
    the person's own rest (realtime.follow.resting_openness), the same for both."""
    lm = portrait_landmarks["grace_hopper"]
    gate = MouthGate("auto")
    for rest in (0.0, 0.02, 0.18):
        assert gate.amount(_with_openness(lm, rest), resting=rest) == 0.0  # their resting mouth is theirs
        half = gate.amount(_with_openness(lm, rest + (FADE_FROM + FADE_TO) / 2), resting=rest)
        assert half == pytest.approx(0.5, abs=1e-3), (rest, half)
        assert gate.amount(_with_openness(lm, rest + FADE_TO + 0.01), resting=rest) == 1.0
    assert gate.amount(_with_openness(lm, 0.18)) == 1.0  # without the rest known, parted lips read as open


def test_paste_takes_the_mouth_from_the_camera_and_nothing_else(portrait_landmarks, grace_hopper):
    lm = _with_openness(portrait_landmarks["grace_hopper"], 0.3)
    camera = grace_hopper.image
    out = np.full_like(camera, 17)
    box = paste_camera_mouth(out, camera, lm)
    assert box is not None
    x0, y0, x1, y1 = box
    cx, cy = np.round(lm[48:60].mean(0)).astype(int)  # the middle of the mouth: fully the camera's
    core = (slice(cy - 2, cy + 3), slice(cx - 2, cx + 3))
    assert np.abs(out[core].astype(int) - camera[core]).mean() < 3  # (the feather reaches a little way in)
    outside = np.ones(camera.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (out[outside] == 17).all()  # nothing outside the mouth's box was touched
    assert (x1 - x0) * (y1 - y0) < 0.05 * camera.shape[0] * camera.shape[1]
    # by an amount: the middle of the mouth is that share of the way from the swap's pixels to the camera's
    half = np.full_like(camera, 17)
    paste_camera_mouth(half, camera, lm, 0.5)
    expected = 17 + 0.5 * (camera[core].astype(float) - 17)
    assert np.abs(half[core] - expected).mean() < 3
    far = lm + [10_000.0, 10_000.0]
    assert paste_camera_mouth(out, camera, far) is None


@pytest.mark.slow
def test_a_mouth_that_opens_in_the_clip_is_open_in_the_output(tmp_path, grace_hopper, portrait_landmarks):
    from realtime.align import align
    from realtime.builder import create_processor, open_swapper
    from realtime.expressions import expression_warp
    from realtime.landmarks import create_detector
    from realtime.pipeline import PipelineOptions

    image, lm = grace_hopper.image, portrait_landmarks["grace_hopper"]
    crop, _ = align(image, lm, 128, 1.6)  # the model always draws this closed-mouth face
    model = frozen_model(tmp_path / "frozen.onnx", cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255)
    swapper = open_swapper(model, providers="cpu")
    amounts = [0.0, 0.0, 0.3, 0.6, 0.7, 0.6, 0.3, 0.0, 0.0, 0.5, 0.7, 0.0]
    frames = [expression_warp(image, lm, mouth=a)[0] for a in amounts]
    detector = create_detector("mediapipe", mode="static")
    detector.warmup()
    measured = {}
    try:
        camera = [mouth_openness(detector.detect(f)[0].landmarks) for f in frames]
        # the mouth gate alone (the expression follower off), and the follower alone (the gate never pastes)
        for name, mode, expression in (("auto", "auto", 0.0), ("swap", "swap", 0.0), ("follow", "swap", 1.0)):
            with create_processor(swapper, PipelineOptions(colour="none", mouth=mode, expression=expression)) as proc:
                # a second apart: each frame shows its own mouth, not the One Euro filter's memory of the last one
                outputs = [proc.process(f, float(i)) for i, f in enumerate(frames)]
            measured[name] = [mouth_openness(detector.detect(o)[0].landmarks) for o in outputs]
    finally:
        detector.close()
    camera_open = np.array(amounts) >= 0.6
    auto, swap = np.array(measured["auto"]), np.array(measured["swap"])
    assert np.corrcoef(camera, auto)[0, 1] > 0.85, (camera, measured)
    assert auto[camera_open].min() > 0.12, measured  # open in the camera: open in the output
    assert swap[camera_open].max() < 0.1, measured  # the model alone keeps its mouth shut
    # the expression follower parts the model's lips as far as the camera's (realtime.follow), and paints the gap
    follow = np.array(measured["follow"])
    assert np.corrcoef(camera, follow)[0, 1] > 0.85 and follow[camera_open].min() > 0.12, measured
