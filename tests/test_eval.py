"""`swapcam eval`: each metric against a case whose answer is known.

Landmark measures on hand-made landmark sets; image measures against scikit-image's own PSNR/SSIM; the whole run
(real mediapipe, real onnxruntime) with an identity model (output = camera: perfect fidelity), a frozen model (one
fixed face whatever the camera does), a colour-shift model (not closer to B) and the shipped demo model (closer to B).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest

from realtime.eval import measures, runner
from realtime.landmarks import measures as lm_measures
from tests._live_fixtures import colour_shift_model, frozen_model


# ------------------------------------------------------------------------------------------------ landmark measures
def _rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    centre = points.mean(axis=0)
    return (points - centre) @ rot.T + centre


def test_roll_follows_an_in_plane_rotation_and_openness_is_rotation_free(portrait_landmarks):
    lm = portrait_landmarks["astronaut"].astype(np.float64)
    yaw0, pitch0, roll0 = lm_measures.head_pose(lm)
    for degrees in (-20.0, 7.5, 30.0):
        turned = _rotate(lm, degrees)
        yaw, pitch, roll = lm_measures.head_pose(turned)
        assert roll - roll0 == pytest.approx(degrees, abs=1e-6)
        assert yaw == pytest.approx(yaw0, abs=1e-6) and pitch == pytest.approx(pitch0, abs=1e-6)
        assert lm_measures.mouth_openness(turned) == pytest.approx(lm_measures.mouth_openness(lm), rel=1e-9)
        assert lm_measures.eye_aspect_ratio(turned) == pytest.approx(lm_measures.eye_aspect_ratio(lm), rel=1e-9)


def test_opening_the_mouth_and_closing_the_eyes_move_their_measures(portrait_landmarks):
    lm = portrait_landmarks["grace_hopper"].astype(np.float64)
    opened = lm.copy()
    eye_gap = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
    opened[[65, 66, 67], 1] += 0.3 * eye_gap  # lower inner lip down by 0.3 eye distances
    assert lm_measures.mouth_openness(opened) - lm_measures.mouth_openness(lm) == pytest.approx(0.3, abs=0.02)
    closed = lm.copy()
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        closed[upper] = closed[lower] = (lm[upper] + lm[lower]) / 2
    assert lm_measures.eye_aspect_ratio(closed) < 0.02 < lm_measures.eye_aspect_ratio(lm)


def test_yaw_sign_follows_the_nose():
    lm = np.zeros((68, 2))
    lm[0], lm[16] = (-50, 0), (50, 0)
    lm[36:42] = (-20, -10)
    lm[42:48] = (20, -10)
    lm[48], lm[54] = (-15, 40), (15, 40)
    for offset, sign in ((0.0, 0), (25.0, 1), (-25.0, -1)):
        lm[30] = (offset, 15)
        yaw = lm_measures.head_pose(lm)[0]
        assert np.sign(round(yaw, 6)) == sign
    lm[30] = (25.0, 15)
    assert lm_measures.head_pose(lm)[0] == pytest.approx(30.0, abs=1e-6)  # asin(25 / 50)


def test_correlation_known_cases():
    t = np.linspace(0, 6, 60)
    moving = 0.2 + 0.1 * np.sin(t)
    assert measures.correlation(moving, moving) == pytest.approx(1.0)
    assert measures.correlation(moving, -moving) == pytest.approx(-1.0)
    assert measures.correlation(moving, np.full_like(moving, 0.3)) == 0.0  # frozen output follows nothing
    assert measures.correlation(np.full_like(moving, 0.3), moving) is None  # a still camera: nothing to follow
    assert measures.correlation(moving[:4], moving[:4]) is None


# ------------------------------------------------------------------------------------------------ image measures
def test_region_psnr_and_ssim_against_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (0, 0), 2)
    b = np.clip(a.astype(int) + rng.integers(-12, 13, a.shape), 0, 255).astype(np.uint8)
    full = np.ones(a.shape[:2], bool)
    assert measures.region_psnr(a, b, full) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)
    assert measures.region_psnr(a, a, full) == math.inf
    ga, gb = (cv2.cvtColor(x, cv2.COLOR_BGR2GRAY).astype(np.float64) for x in (a, b))
    mssim, smap = structural_similarity(
        ga, gb, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True
    )
    assert measures.region_ssim(a, b, full) == pytest.approx(smap.mean(), abs=1e-9)  # the map's mean over the region
    assert measures.region_ssim(a, b, full) == pytest.approx(mssim, abs=2e-3)  # skimage's own mean skips a border
    assert measures.region_ssim(a, a, full) == pytest.approx(1.0)
    # only the region counts: damage outside it changes nothing
    region = np.zeros(a.shape[:2], bool)
    region[30:90, 40:120] = True
    c = a.copy()
    c[:20] = 0
    assert measures.region_psnr(a, c, region) == math.inf


def test_seam_counts_an_added_edge_not_blur():
    rng = np.random.default_rng(1)
    camera = cv2.GaussianBlur(rng.integers(60, 200, (200, 200, 3), dtype=np.uint8), (0, 0), 3)
    alpha = np.zeros((200, 200), np.float32)
    cv2.circle(alpha, (100, 100), 60, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 4)
    # (not exactly 0: OpenCV's SIMD Sobel/magnitude can round a pixel differently from one call to the next,
    # depending on the buffers' alignment; one CI run measured 4.5e-9)
    assert measures.seam_excess(camera, camera, alpha) == pytest.approx(0.0, abs=1e-6)
    assert measures.seam_excess(camera, cv2.GaussianBlur(camera, (0, 0), 3), alpha) < 0.5  # blur adds (almost) no edges
    pasted = camera.copy()
    inside = alpha > 0.5
    pasted[inside] = np.clip(pasted[inside].astype(int) + 40, 0, 255).astype(np.uint8)  # a hard-edged paste
    assert measures.seam_excess(camera, pasted, alpha) > 5.0


# ------------------------------------------------------------------------------------------------ whole runs
@pytest.fixture(scope="module")
def eval_clip():
    from realtime.samples import synthetic_clip

    # strong head motion: the pose measures need something to follow
    return synthetic_clip("astronaut", n_frames=40, size=(640, 480), fps=10.0, seed=3, motion=1.5).frames


@pytest.fixture(scope="module")
def reference_b(portrait_landmarks, grace_hopper):
    return measures.identity_reference(grace_hopper.image, portrait_landmarks["grace_hopper"], 128, 1.6)


def _run(model_path, frames, reference, colour="none", recognizer=None, descriptor=None):
    from realtime.builder import open_swapper
    from realtime.pipeline import PipelineOptions

    swapper = open_swapper(model_path, providers="cpu")
    # mouth "swap": these cases have known answers for what the MODEL draws; the camera's own mouth would mix in
    result = runner.evaluate(
        swapper,
        frames,
        PipelineOptions(colour=colour, mouth="swap"),
        reference,
        n_frames=len(frames),
        recognizer=recognizer,
        reference_descriptor=descriptor,
    )
    return result.summary(), result


@pytest.fixture(scope="module")
def recognizer():
    from realtime.eval.identity import FaceRecognizer

    return FaceRecognizer()


@pytest.fixture(scope="module")
def grace_descriptor(recognizer, grace_hopper, portrait_landmarks):
    from realtime.eval.identity import reference_descriptor

    return reference_descriptor(recognizer, [(grace_hopper.image, portrait_landmarks["grace_hopper"])])


@pytest.mark.slow
def test_face_recognition_identity_knows_the_camera_person_b_and_a_blurred_b(
    tmp_path, eval_clip, recognizer, grace_descriptor, grace_hopper, portrait_landmarks
):
    """Known answers for the face-recognition identity block: a pass-through model's output IS the camera person
    (distance ~0 to the camera face, never closer to B); a model that draws B's photo on every face is B (closer to
    B than to the camera in every frame); the same model blurred is further from B."""
    from realtime.align import align

    frames = eval_clip[::2]
    identity = colour_shift_model(tmp_path / "identity.onnx", size=256, gain=(1, 1, 1), offset=(0, 0, 0))
    same = _run(identity, frames, None, recognizer=recognizer, descriptor=grace_descriptor)[0]["identity"]
    assert same["frames"] == len(frames)
    assert same["distance_to_camera"] < 0.15 and same["retrieval"] == 0.0 and same["share_b"] == 0.0
    assert same["camera_to_b"] > 0.6  # the astronaut is not Grace Hopper
    crop, _ = align(grace_hopper.image, portrait_landmarks["grace_hopper"], 128, 1.6)
    rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    b_model = frozen_model(tmp_path / "b.onnx", rgb)
    b = _run(b_model, frames, None, recognizer=recognizer, descriptor=grace_descriptor)[0]["identity"]
    assert b["retrieval"] > 0.9 and b["share_b"] > 0.9 and b["distance_to_b"] < 0.5, b
    blurred = frozen_model(tmp_path / "blurred.onnx", cv2.GaussianBlur(rgb, (0, 0), 2.5))
    soft = _run(blurred, frames, None, recognizer=recognizer, descriptor=grace_descriptor)[0]["identity"]
    assert soft["distance_to_b"] > b["distance_to_b"] + 0.03, (soft, b)


@pytest.mark.slow
def test_identity_model_gives_perfect_fidelity_and_is_not_b(tmp_path, eval_clip, reference_b):
    model = colour_shift_model(tmp_path / "identity.onnx", size=256, gain=(1, 1, 1), offset=(0, 0, 0))
    summary, result = _run(model, eval_clip, reference_b)
    assert summary["coverage"] == 1.0 and summary["output_face_found"] == 1.0
    print(summary)
    # the clip's yaw and pitch come from a slight perspective only (a few degrees): still followed closely
    for axis, corr in (("yaw", 0.85), ("pitch", 0.85), ("roll", 0.99)):
        assert summary["pose"][axis]["corr"] is None or summary["pose"][axis]["corr"] > corr, summary["pose"]
        assert summary["pose"][axis]["median_abs_error"] < 0.5, summary["pose"]
        assert summary["pose"][axis]["p95_abs_error"] < 1.5, summary["pose"]
    assert summary["pose"]["roll"]["corr"] is not None
    assert summary["reconstruction"]["psnr_db"] > 33 and summary["reconstruction"]["ssim"] > 0.9
    assert abs(summary["flicker_excess"]) < 1.0
    assert summary["identity_towards_b"] < -0.8  # it IS the camera's person
    assert len(result.sheet_pairs) == runner.SHEET_ROWS
    sheet = runner.contact_sheet(result.sheet_pairs, "identity")
    assert sheet.shape[1] == 2 * runner.SHEET_SIDE and sheet.shape[0] > runner.SHEET_ROWS * 200


def test_still_flicker_counts_only_the_frames_where_the_head_barely_moved():
    """flicker_excess_still: the mean flicker of the frames whose camera landmarks moved no more than the median."""
    rng = np.random.default_rng(0)
    base = rng.random((68, 2)) * 100
    records, lm = [runner.FrameRecord(0, True, base, base)], base
    moves = [0.1, 5.0, 0.2, 6.0, 0.1, 7.0]  # px of head motion before each frame
    flickers = [0.5, 3.0, 0.7, 4.0, 0.3, 5.0]  # a swap that only flickers when the head moves
    for i, (move, flick) in enumerate(zip(moves, flickers, strict=True), start=1):
        lm = lm + move
        records.append(runner.FrameRecord(i, True, lm, lm, flicker=flick))
    summary = runner.EvalResult(frames=records).summary()
    assert summary["flicker_excess"] == pytest.approx(np.mean(flickers), abs=1e-4)
    assert summary["flicker_excess_still"] == pytest.approx(0.5, abs=1e-4)  # (0.5 + 0.7 + 0.3) / 3
    assert runner.EvalResult(frames=records[:2]).summary()["flicker_excess_still"] is None  # one pair: no median


@pytest.mark.slow
def test_the_ceiling_pass_through_scores_as_an_identity_model(tmp_path, eval_clip):
    """--ceiling's pass-through "model" is exactly an identity ONNX model with a full mask, through the same
    pipeline: the same reconstruction numbers; and a 64 px crop loses more than a 256 px one."""
    frames = eval_clip[::2]
    model = colour_shift_model(
        tmp_path / "identity.onnx", size=128, gain=(1, 1, 1), offset=(0, 0, 0), mask=np.ones((128, 128))
    )
    summary, _ = _run(model, frames, None, colour="rct")
    from realtime.builder import open_swapper
    from realtime.pipeline import PipelineOptions

    info = open_swapper(model, providers="cpu").info
    opts = PipelineOptions(colour="rct", mouth="swap")
    ceiling = runner.evaluate(runner.PassThroughSwapper(info), frames, opts, None, n_frames=len(frames)).summary()
    assert ceiling["reconstruction"]["psnr_db"] == pytest.approx(summary["reconstruction"]["psnr_db"], abs=0.05)
    assert ceiling["reconstruction"]["ssim"] == pytest.approx(summary["reconstruction"]["ssim"], abs=0.002)
    small = runner.evaluate(
        runner.PassThroughSwapper(replace(info, size=64)), frames, opts, None, n_frames=len(frames)
    ).summary()
    assert small["reconstruction"]["psnr_db"] < ceiling["reconstruction"]["psnr_db"] - 1.0


@pytest.mark.slow
def test_frozen_output_does_not_follow_the_head_and_colour_shift_is_not_b(
    tmp_path, eval_clip, reference_b, grace_hopper, portrait_landmarks
):
    from realtime.align import align

    crop, _ = align(grace_hopper.image, portrait_landmarks["grace_hopper"], 128, 1.6)
    frozen = frozen_model(tmp_path / "frozen.onnx", cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255)
    summary, _ = _run(frozen, eval_clip, reference_b)
    assert summary["coverage"] == 1.0
    # the pasted face turns in-plane with the camera (similarity alignment) but its own yaw never changes
    assert summary["pose"]["roll"]["corr"] > 0.9
    assert summary["pose"]["yaw"]["corr"] is not None and summary["pose"]["yaw"]["corr"] < 0.5
    assert summary["identity_towards_b"] > 0.3  # it draws B's face, so it IS closer to B
    shifted = colour_shift_model(tmp_path / "shift.onnx", size=128, gain=(1, 1, 1), offset=(0.15, -0.1, 0.05))
    shift_summary, _ = _run(shifted, eval_clip[::2], reference_b)
    assert shift_summary["identity_towards_b"] < -0.5  # a colour change is not a new identity


@pytest.mark.slow
def test_eval_command_on_the_demo_model_writes_json_and_sheet(tmp_path):
    out_json, out_png = tmp_path / "eval.json", tmp_path / "sheet.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "realtime.cli",
            "eval",
            "--source",
            "synthetic:astronaut",
            "--frames",
            "24",
            "--json",
            str(out_json),
            "--sheet",
            str(out_png),
            "--no-progress",
            "--ceiling",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out_json.read_text())
    assert doc["frames"] == 24 and doc["coverage"] > 0.9
    rec = doc["reconstruction"]
    assert rec["ceiling_psnr_db"] > rec["psnr_db"] + 5 and rec["ceiling_ssim"] > rec["ssim"]  # a swap is not A
    assert "ceiling at this crop size" in proc.stdout
    assert doc["reference_b"] == "sample portrait grace_hopper"
    assert doc["identity_towards_b"] > 0.0, doc  # the demo a2b model draws Grace Hopper
    assert "identity towards B" in proc.stdout
    sheet = cv2.imread(str(out_png))
    assert sheet is not None and sheet.shape[1] == 2 * runner.SHEET_SIDE


def test_eval_rejects_a_camera_and_a_missing_file(tmp_path):
    for source, words in (("0", "not a camera"), (str(tmp_path / "nope.mp4"), "does not exist")):
        proc = subprocess.run(
            [sys.executable, "-m", "realtime.cli", "eval", "--source", source, "--no-progress"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr
