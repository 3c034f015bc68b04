"""The per-frame processor: real mediapipe, real onnxruntime, the synthetic clip. (The threaded runner and the
builder that wires them: tests/test_runner.py.)

Most tests use a known "swap" (tests/_live_fixtures.colour_shift_model: the input face with a colour shift and an
elliptical mask), so every changed pixel can be accounted for. The identity test uses the shipped demo model.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from _live_fixtures import colour_shift_model
from skimage.color import rgb2lab

from realtime.align import alignment_matrix, transform_points
from realtime.compose import hull_mask
from realtime.errors import SwapcamError
from realtime.pipeline import FaceSwapProcessor, PipelineOptions
from realtime.swapper import Swapper

NO_OVERLAY = dict(hud=False, label=False)


@pytest.fixture(scope="module")
def shift_swapper(tmp_path_factory):
    path = colour_shift_model(
        tmp_path_factory.mktemp("pipeline") / "shift.onnx", size=64, gain=(0.7, 1.0, 1.3), offset=(0.15, -0.1, 0.05)
    )
    return Swapper(path)


def _box_outside(shape, bbox) -> np.ndarray:
    x0, y0, x1, y1 = bbox
    outside = np.ones(shape[:2], bool)
    outside[max(0, y0) : max(0, y1 + 1), max(0, x0) : max(0, x1 + 1)] = False
    return outside


# -- processor ------------------------------------------------------------------------------------------------------
def test_swaps_inside_face_box_only_and_never_touches_input(shift_swapper, astronaut_clip):
    with FaceSwapProcessor(shift_swapper, PipelineOptions(colour="none", **NO_OVERLAY)) as proc:
        swapped_frames = 0
        for i, frame in enumerate(astronaut_clip.frames[:12]):
            before = frame.copy()
            out = proc.process(frame, t=i / 10)
            np.testing.assert_array_equal(frame, before)  # input untouched
            assert out.shape == frame.shape and out.dtype == np.uint8
            assert len(proc.last_faces) == 1
            face = proc.last_faces[0]
            outside = _box_outside(frame.shape, face.bbox)
            np.testing.assert_array_equal(out[outside], frame[outside])
            changed = np.any(out != frame, axis=2)
            x0, y0, x1, y1 = face.bbox
            box_area = (x1 - x0) * (y1 - y0)
            if changed.sum() > 0.3 * box_area:  # the colour-shifted face covers most of its box
                swapped_frames += 1
        assert swapped_frames == 12
        assert set(proc.last_timings) >= {
            "landmarks",
            "smooth",
            "align",
            "swap",
            "colour",
            "compose",
            "overlay",
            "total",
        }


def test_frame_without_face_passes_through_unchanged(shift_swapper, astronaut_clip):
    rng = np.random.default_rng(0)
    empty = np.clip(rng.normal(120, 20, (480, 640, 3)), 0, 255).astype(np.uint8)  # noise, no face
    with FaceSwapProcessor(shift_swapper, PipelineOptions(**NO_OVERLAY)) as proc:
        out = proc.process(empty, 0.0)
        np.testing.assert_array_equal(out, empty)
        assert proc.last_faces == []
        proc.process(astronaut_clip.frames[0], 0.1)  # a face, tracked ...
        assert len(proc.last_faces) == 1
        out = proc.process(empty, 0.2)  # ... then gone: the frame must not carry a stale paste
        np.testing.assert_array_equal(out, empty)


def test_several_faces_in_one_session_run(shift_swapper, astronaut_clip, grace_hopper_clip):
    frame = np.hstack([astronaut_clip.frames[0], grace_hopper_clip.frames[0]])  # 1280x480, two faces
    calls = []
    real_run = shift_swapper.session.run

    def counting_run(*args, **kwargs):
        calls.append(args[1][shift_swapper.input_name].shape[0])
        return real_run(*args, **kwargs)

    shift_swapper.session.run = counting_run
    try:
        with FaceSwapProcessor(shift_swapper, PipelineOptions(colour="none", max_faces=2, **NO_OVERLAY)) as proc:
            proc.process(frame, 0.0)
            # the first frame also probes both new faces, in one more run (realtime.follow.drawn_expression)
            assert calls == [2, 4], calls
            calls.clear()
            out = proc.process(frame, 1 / 30)
            faces = proc.last_faces
    finally:
        del shift_swapper.session.run
    assert len(faces) == 2 and calls == [2]
    changed = np.any(out != frame, axis=2)
    assert changed[:, :640].sum() > 2000 and changed[:, 640:].sum() > 2000
    with FaceSwapProcessor(shift_swapper, PipelineOptions(colour="none", max_faces=1, **NO_OVERLAY)) as proc:
        proc.process(frame, 0.0)
        assert len(proc.last_faces) == 1


def test_rct_pasted_face_matches_camera_face_colour(shift_swapper, astronaut_clip):
    """The pasted face's masked LAB mean/std (skimage, independent of OpenCV's LAB) match the camera's face."""
    frame = astronaut_clip.frames[3]
    results = {}
    for mode in ("none", "rct"):
        with FaceSwapProcessor(shift_swapper, PipelineOptions(colour=mode, smoothing=False, **NO_OVERLAY)) as proc:
            out = proc.process(frame, 0.0)
            landmarks = proc.last_faces[0].landmarks
        size = 128
        matrix = alignment_matrix(landmarks, size, shift_swapper.info.coverage)
        crop_in = cv2.warpAffine(frame, matrix, (size, size))
        crop_out = cv2.warpAffine(out, matrix, (size, size))
        # The solid part of the blend mask: the landmark hull, well inside its feathered edge, where the model's
        # elliptical mask is 1 -- there the output pixel is the colour-transferred face.
        hull = hull_mask(transform_points(landmarks, matrix), size)
        region = cv2.erode(hull, np.ones((15, 15), np.uint8)) > 0.5
        assert region.sum() > 1500

        def stats(img, region=region):
            px = rgb2lab(img[..., ::-1])[region]
            return px.mean(axis=0), px.std(axis=0)

        results[mode] = (stats(crop_out), stats(crop_in))
    (none_mean, _), (cam_mean, cam_std) = results["none"]
    (rct_mean, rct_std), _ = results["rct"]
    assert np.abs(none_mean - cam_mean).max() > 8  # without transfer the shifted face is visibly off
    np.testing.assert_allclose(rct_mean, cam_mean, atol=2.5)
    np.testing.assert_allclose(rct_std, cam_std, rtol=0.2, atol=1.0)


def test_one_euro_smoothing_reduces_landmark_jitter(shift_swapper, astronaut):
    from realtime.samples import synthetic_clip

    # A still head with fresh sensor noise in every frame: any landmark motion is jitter.
    clip = synthetic_clip(astronaut, n_frames=25, motion=0.0, noise=4.0, seed=3)
    spread = {}
    for smoothing in (False, True):
        with FaceSwapProcessor(shift_swapper, PipelineOptions(smoothing=smoothing, **NO_OVERLAY)) as proc:
            points = []
            for i, frame in enumerate(clip.frames):
                proc.process(frame, i / 30)
                points.append(proc.last_faces[0].landmarks)
        spread[smoothing] = np.stack(points[5:]).std(axis=0).mean()
    assert spread[False] > 0.05  # mediapipe does jitter on noise, so the comparison means something
    # mediapipe tracking jitter is partly slow (correlated across frames), which a low-pass removes less of.
    assert spread[True] < 0.8 * spread[False], spread


class AlternatingDetector:
    """Two fixed faces reported in alternating order (as a detector may do from frame to frame)."""

    def __init__(self, faces):
        self.faces, self.calls = faces, 0

    def detect(self, image):
        self.calls += 1
        return list(self.faces if self.calls % 2 else self.faces[::-1])

    def warmup(self):
        pass

    def close(self):
        pass


def test_smoothing_follows_each_face_when_the_detector_reorders_them(shift_swapper, portrait_landmarks):
    from realtime.types import Face

    left = portrait_landmarks["astronaut"] * 0.5 + np.float32([20, 100])
    right = left + np.float32([300, 0])
    faces = [Face(landmarks=left, raw=left), Face(landmarks=right, raw=right)]
    proc = FaceSwapProcessor(
        shift_swapper, PipelineOptions(max_faces=2, **NO_OVERLAY), detector=AlternatingDetector(faces)
    )
    image = np.zeros((480, 640, 3), np.uint8)
    for i in range(6):
        found = proc.find_faces(image, t=i / 30)
        for face in found:
            own = left if face.raw is left else right
            # index pairing would pull each face ~150 px towards the other one
            assert np.abs(face.landmarks - own).max() < 1e-3


def test_label_and_hud_are_drawn_only_when_asked(shift_swapper, astronaut_clip):
    frame = astronaut_clip.frames[0]
    outs = {}
    for name, opts in {"plain": {}, "label": {"label": True}, "hud": {"hud": True}}.items():
        with FaceSwapProcessor(shift_swapper, PipelineOptions(**{**NO_OVERLAY, **opts})) as proc:
            outs[name] = proc.process(frame, 0.0)
    corner_br = (slice(440, 480), slice(480, 640))
    corner_tl = (slice(0, 30), slice(0, 200))
    assert np.array_equal(outs["plain"][corner_br], frame[corner_br])
    assert not np.array_equal(outs["label"][corner_br], frame[corner_br])
    assert np.array_equal(outs["label"][corner_tl], frame[corner_tl])
    assert not np.array_equal(outs["hud"][corner_tl], frame[corner_tl])


def test_bad_options():
    with pytest.raises(SwapcamError, match="colour='lab'"):
        PipelineOptions(colour="lab").validate()
    with pytest.raises(SwapcamError, match="max_faces=0"):
        PipelineOptions(max_faces=0).validate()


def test_close_is_idempotent(shift_swapper):
    proc = FaceSwapProcessor(shift_swapper, PipelineOptions(**NO_OVERLAY))
    proc.close()
    proc.close()
    with pytest.raises(RuntimeError, match="closed"):
        proc.process(np.zeros((64, 64, 3), np.uint8))


# -- identity: the shipped demo model -------------------------------------------------------------------------------
def _aligned_grey(image, landmarks, size, coverage):
    matrix = alignment_matrix(landmarks, size, coverage)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA)
    return crop, matrix


def identity_distances(swapper, clip_frames, reference_b, reference_b_landmarks):
    """Per frame: (d(out, A), d(out, B), d(A, B)), d = mean |z_x - z_y| of blurred grey levels over the face region.

    Every face is aligned to the model's own crop (pose and scale removed); grey levels are blurred (sigma 2 px at
    64 px: detail a 64 px model cannot draw) and z-normalised (brightness and contrast removed), leaving the face's
    shading layout -- eyes, brows, nose, mouth, folds. The region is where the pipeline's blend mask (learned mask x
    landmark hull, eroded and feathered, exactly as compositing uses it) is >= 0.9, i.e. the pixels the swap owns,
    and inside B's own landmark hull: the feathered rim mixes both people by design and would pull scores towards A.
    """
    from realtime.compose import blend_mask

    size, coverage = swapper.info.size, swapper.info.coverage
    crop_b, matrix_b = _aligned_grey(reference_b, reference_b_landmarks, size, coverage)
    hull_b = cv2.erode(hull_mask(transform_points(reference_b_landmarks, matrix_b), size), np.ones((7, 7), np.uint8))

    def grey(img):
        return cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), 2.0)

    grey_b = grey(crop_b)
    rows = []
    # mouth "swap": the identity of what the model draws (the camera's own open mouth would be A's, by design)
    with FaceSwapProcessor(
        swapper, PipelineOptions(colour="none", smoothing=False, mouth="swap", **NO_OVERLAY)
    ) as proc:
        for i, frame in enumerate(clip_frames):
            out = proc.process(frame, i / 10)
            assert len(proc.last_faces) == 1
            landmarks = proc.last_faces[0].landmarks
            crop_a, matrix = _aligned_grey(frame, landmarks, size, coverage)
            crop_out, _ = _aligned_grey(out, landmarks, size, coverage)
            learned = swapper.swap([crop_a])[1][0]
            opaque = blend_mask(learned, transform_points(landmarks, matrix)) > 0.9
            region = opaque & (hull_b > 0.5)
            assert region.sum() > 0.1 * size * size, region.sum()
            za, zb, zo = _z(grey(crop_a)[region]), _z(grey_b[region]), _z(grey(crop_out)[region])
            rows.append((np.abs(zo - za).mean(), np.abs(zo - zb).mean(), np.abs(za - zb).mean()))
    return np.array(rows)


def _z(values):
    return (values - values.mean()) / (values.std() + 1e-6)


# score = (d(out, A) - d(out, B)) / d(A, B): 0 is the midpoint between the two people, a pass-through or a
# colour-only change scores about -1 (it IS A), B's own portrait would score +1. A 64 px face keeps A's pose and
# expression, so it cannot reach +1. The swapped face must be on B's side in every frame, by a median margin of
# 15 % of the A-B separation: the demo models from step 500 to 1500 measured 0.29 .. 0.36 per frame, the
# colour-shift control -0.95. (Including the feathered rim, where by design both people mix, drags the score to ~0.)
IDENTITY_MARGIN = 0.15


@pytest.mark.slow
def test_demo_model_turns_the_face_into_the_other_identity(
    astronaut_clip, grace_hopper, portrait_landmarks, shift_swapper
):
    from models.contract import demo_model_path

    swapper = Swapper(demo_model_path("a2b"))
    frames = astronaut_clip.frames[::3]
    rows = identity_distances(swapper, frames, grace_hopper.image, portrait_landmarks["grace_hopper"])
    score = (rows[:, 0] - rows[:, 1]) / rows[:, 2]  # (d(out,A) - d(out,B)) / d(A,B), per frame
    assert np.all(score > 0), score.round(2)
    assert np.median(score) > IDENTITY_MARGIN, score.round(2)
    print("identity scores", score.round(3))
    # The same metric on a model that does not change identity (colour shift only) must fail: it can tell.
    control = identity_distances(shift_swapper, frames[:3], grace_hopper.image, portrait_landmarks["grace_hopper"])
    assert np.all((control[:, 0] - control[:, 1]) / control[:, 2] < -0.5)


# -- DeepFaceLive parity: coverage override, morph, the camera face's mask -----------------------------------------
class RecordingSwapper:
    """Wraps a Swapper and records what the processor feeds it (crops and morph factor)."""

    def __init__(self, swapper):
        self.inner, self.info, self.calls = swapper, swapper.info, []

    def swap(self, crops, morph=None):
        self.calls.append((list(crops), morph))
        return self.inner.swap(crops) if morph is None else self.inner.swap(crops, morph=morph)


def _still_face(portrait_landmarks):
    from realtime.types import Face

    lm = portrait_landmarks["astronaut"]
    return AlternatingDetector([Face(landmarks=lm, raw=lm)])


def test_coverage_option_overrides_the_models_framing(shift_swapper, astronaut, portrait_landmarks):
    from realtime.align import align

    spy = RecordingSwapper(shift_swapper)
    options = PipelineOptions(coverage=2.4, smoothing=False, **NO_OVERLAY)
    with FaceSwapProcessor(spy, options, detector=_still_face(portrait_landmarks)) as proc:
        assert proc.coverage == 2.4 != shift_swapper.info.coverage
        proc.process(astronaut.image)
        crop = spy.calls[-1][0][0]
        expected, _ = align(astronaut.image, proc.last_faces[0].landmarks, 64, 2.4)
        np.testing.assert_array_equal(crop, expected)
        proc.reconfigure(options=PipelineOptions(smoothing=False, **NO_OVERLAY))  # None: the model's own again
        assert proc.coverage == shift_swapper.info.coverage
        assert spy.calls[-1][1] == PipelineOptions().morph == 0.75  # the morph factor reaches the model


def test_dfm_camera_face_mask_keeps_the_paste_inside_it(tmp_path, astronaut, portrait_landmarks):
    """DeepFaceLive's merger multiplies in out_face_mask (the camera face's mask): where it is 0 nothing is pasted,
    even though the swapped face's own mask is 1 everywhere. Here it keeps the left half of the crop."""
    size = 64
    left = np.zeros((size, size), np.float32)
    left[:, : size // 2] = 1.0
    path = colour_shift_model(
        tmp_path / "halves.dfm",
        size=size,
        offset=(0.3, 0.3, 0.3),
        layout="dfm",
        mask=np.ones((size, size)),
        source_mask=left,
        with_meta=False,
    )
    swapper = Swapper(path)
    assert swapper.info.coverage == 2.0  # DeepFaceLive's default framing for a DFM without swapcam metadata
    frame = astronaut.image
    options = PipelineOptions(colour="none", smoothing=False, mouth="swap", **NO_OVERLAY)
    with FaceSwapProcessor(swapper, options, detector=_still_face(portrait_landmarks)) as proc:
        out = proc.process(frame)
        matrix = alignment_matrix(proc.last_faces[0].landmarks, size, proc.coverage)
    ys, xs = np.nonzero(np.any(out != frame, axis=2))
    assert len(xs) > 500  # the face was swapped ...
    crop_x = transform_points(np.stack([xs, ys], axis=1).astype(np.float64), matrix)[:, 0]
    assert crop_x.max() <= size / 2 + 1.0  # ... only where the camera face's mask lets it (bilinear: 1 px)
    assert crop_x.min() < size / 2 - 10
