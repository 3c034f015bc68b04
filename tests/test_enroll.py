"""training.enroll: the coverage meter on synthetic landmark sets, the quality gate on real frames (mediapipe), and a
whole enrolment from a short video (capture -> fine-tune of the shipped rt128 checkpoint -> export -> Swapper)."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _training_fixtures import build_facesets, short_run  # noqa: E402

from models.checkpoint import CHECKPOINT, load_checkpoint  # noqa: E402
from realtime import coverage as cov  # noqa: E402
from realtime.align import template_points  # noqa: E402
from realtime.builder import newest_model  # noqa: E402
from realtime.errors import SwapcamError  # noqa: E402
from realtime.landmarks.measures import eye_aspect_ratio as eye_openness  # noqa: E402
from realtime.landmarks.measures import eye_distance, head_pose, mouth_openness  # noqa: E402
from realtime.mouth import OPEN_AT  # noqa: E402
from realtime.samples import synthetic_clip, write_mp4  # noqa: E402
from realtime.types import Face  # noqa: E402
from training import enroll  # noqa: E402
from training.faceset import read_index  # noqa: E402
from training.train import TrainConfig, train  # noqa: E402


# ------------------------------------------------------------------------------------------- synthetic landmarks
def synthetic_face(yaw: float = 0.0, pitch: float = 0.0, expression: str = "neutral") -> np.ndarray:
    """The 68-point template (frontal, neutral) edited into a head pose and an expression, the way a face changes
    in a photo: the nose (its tip and ridge) slides sideways for yaw and up/down for pitch (head_pose reads these),
    the lips part, the lids close, the mouth corners rise."""
    lm = template_points(256).astype(np.float64)
    d = eye_distance(lm)
    nose = list(range(27, 36))
    lm[nose, 0] += yaw * d  # fraction of the eye distance
    lm[nose, 1] += pitch * d
    if expression == "mouth open":
        lm[[65, 66, 67, 55, 56, 57, 58, 59], 1] += 0.35 * d
    elif expression == "eyes closed":
        for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
            lm[upper, 1] = lm[lower, 1] - 0.01 * d
    elif expression == "smile":
        lm[[48, 54], 1] -= 0.12 * d
        lm[48, 0] -= 0.05 * d
        lm[54, 0] += 0.05 * d
    return lm


def test_synthetic_faces_read_as_intended():
    """The edits above move the measures enroll bins on, in the documented directions (a check on the test data)."""
    base_yaw, base_pitch, _ = head_pose(synthetic_face())
    assert abs(base_yaw) < 1.0
    assert head_pose(synthetic_face(yaw=0.3))[0] > cov.YAW_STEP  # nose to the image's right: their left
    assert head_pose(synthetic_face(yaw=-0.3))[0] < -cov.YAW_STEP
    assert head_pose(synthetic_face(pitch=-0.15))[1] < base_pitch - cov.PITCH_STEP  # nose tip up: looking up
    assert head_pose(synthetic_face(pitch=0.15))[1] > base_pitch + cov.PITCH_STEP
    assert mouth_openness(synthetic_face(expression="mouth open")) > OPEN_AT
    assert eye_openness(synthetic_face(expression="eyes closed")) < cov.EYES_CLOSED_AT
    for name in cov.EXPRESSIONS:
        assert cov.expression_of(synthetic_face(expression=name)) == name


def test_coverage_meter_turned_left_fills_the_left_bin_and_asks_for_the_rest():
    meter = cov.CoverageMeter(per_target=5)
    assert meter.fraction() == 0.0 and meter.prompt() == "look straight at the camera"
    for k in range(5):
        meter.update(synthetic_face(yaw=0.3 + 0.01 * k))
    counts = meter.pose_counts()
    assert counts[1, 2] == 5 and counts.sum() == 5, counts  # level row, the person's-left column
    # one of 13 targets full (left), neutral expression full too: 2 of 13
    assert meter.fraction() == pytest.approx(2 / 13)
    assert meter.prompt() == "look straight at the camera"  # the frontal face is still missing and comes first
    for _ in range(5):
        meter.update(synthetic_face())
    assert meter.prompt() == "turn your head a little to your right"
    for _ in range(5):
        meter.update(synthetic_face(yaw=-0.3))
    assert meter.pose_counts()[1, 0] == 5
    assert meter.prompt() == "tilt your head up a little"
    assert "open your mouth (say 'ah')" in meter.missing()
    state = meter.state()
    assert json.loads(json.dumps(state)) == state and state["faces"] == 15 and state["pose_counts"][1] == [5, 5, 5]


def test_coverage_meter_full_grid_and_expressions():
    meter = cov.CoverageMeter(per_target=2)
    for yaw in (-0.3, 0.0, 0.3):
        for pitch in (-0.15, 0.0, 0.15):
            for _ in range(2):
                meter.update(synthetic_face(yaw, pitch))
    assert (meter.pose_counts() == 2).all(), meter.pose_counts()
    assert meter.prompt() == "open your mouth (say 'ah')"
    meter.update(synthetic_face(expression="mouth open"))
    meter.update(synthetic_face(expression="mouth open"))
    assert meter.prompt() == "smile"
    for name in ("smile", "smile", "eyes closed"):
        meter.update(synthetic_face(expression=name))
    assert meter.prompt() == "close your eyes for a moment" and meter.fraction() < 1.0
    meter.update(synthetic_face(expression="eyes closed"))
    assert meter.prompt() is None and meter.fraction() == 1.0 and meter.missing() == []
    # crop landmarks (scaled, rotated, shifted) bin the same as frame landmarks: the measures are ratios
    angle = math.radians(20)
    rot = 0.4 * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    other = cov.CoverageMeter(per_target=1)
    for _ in range(3):
        other.update(synthetic_face())
    other.update(synthetic_face(yaw=0.3) @ rot.T + [40, -7])
    assert other.pose_counts()[1, 2] == 1
    with pytest.raises(ValueError):
        meter.update(np.zeros((5, 2)))


def test_draw_coverage_draws_on_the_frame():
    meter = cov.CoverageMeter()
    meter.update(synthetic_face(yaw=0.3))
    frame = np.full((480, 640, 3), 128, np.uint8)
    cov.draw_coverage(frame, meter)
    assert (frame != 128).any(axis=2).mean() > 0.01  # the grid, the bar and the prompt


# ------------------------------------------------------------------------------------------- quality gate
@pytest.fixture(scope="module")
def sharp_faces():
    """Frames of a synthetic astronaut clip with their mediapipe landmarks."""
    from realtime.landmarks import create_detector

    clip = synthetic_clip("astronaut", 8, seed=5, motion=0.6)
    detector = create_detector("mediapipe", mode="static")
    try:
        out = []
        for frame in clip.frames:
            faces = detector.detect(frame)
            assert faces, "no face in a synthetic astronaut frame"
            out.append((frame, faces[0]))
        return out
    finally:
        detector.close()


def test_quality_gate_rejects_blurred_dark_bright_partial_small(sharp_faces):
    frame, face = sharp_faces[0]
    gate = cov.QualityGate(128)
    assert gate(frame, face) is None
    assert gate(cv2.GaussianBlur(frame, (0, 0), 6), face) == "blurry"
    assert gate((frame * 0.2).astype(np.uint8), face) == "too dark"
    assert gate(np.clip(frame.astype(int) * 3, 0, 255).astype(np.uint8), face) == "over-exposed"
    shifted = Face(face.landmarks - [face.landmarks[:, 0].min() + 5, 0], face.raw)
    assert gate(frame, shifted) == "partial"
    small = cv2.resize(frame, None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)
    assert gate(small, Face(face.landmarks * 0.15, face.raw)) == "too small"
    # relative blur: after sharp faces from this camera, a mildly blurred one (still above the absolute floor)
    for other, other_face in sharp_faces[1:7]:
        assert gate(other, other_face) is None
    mild = cv2.GaussianBlur(frame, (0, 0), 3)
    assert cov.face_measures(mild, face.landmarks)["sharpness"] > cov.BLUR_FLOOR
    assert gate(mild, face) == "blurry"
    assert cov.QualityGate(128)(mild, face) is None  # a fresh gate has no reference: the floor alone decides


def test_extractor_counts_the_reason_and_writes_nothing(tmp_path, sharp_faces):
    from training.extract import Extractor, _new_stats

    frame, _ = sharp_faces[0]
    ex = Extractor(tmp_path / "fs", 128, 1.6, "mediapipe", 1, 1.0)
    try:
        stats = _new_stats("x")
        kept = ex.add_frame((frame * 0.2).astype(np.uint8), "k", 0, stats, check=cov.QualityGate(128))
        assert kept == [] and stats["too dark"] == 1 and stats["faces"] == 0
        kept = ex.add_frame(frame, "k", 1, stats, check=cov.QualityGate(128))
        assert len(kept) == 1 and stats["faces"] == 1
    finally:
        ex.save()
        ex.close()
    assert len(read_index(tmp_path / "fs")["faces"]) == 1


# ------------------------------------------------------------------------------------------- small helpers
def test_parse_frames_and_export_names(tmp_path):
    assert enroll.parse_frames("0:90") == (0, 90)
    assert enroll.parse_frames("10:") == (10, None) and enroll.parse_frames(":5") == (0, 5)
    assert enroll.parse_frames(None) == (0, None)
    for bad in ("5", "a:b", "9:3", "-1:4"):
        with pytest.raises(SwapcamError, match="--frames"):
            enroll.parse_frames(bad)
    with pytest.raises(SwapcamError, match="has no .onnx"):
        newest_model(tmp_path)
    # live picks the newest by write time: each export is written when its name is taken (times set explicitly
    # here, so a coarse file-system clock cannot tie them)
    first = enroll.export_name(tmp_path, now=1_700_000_000)
    first.write_bytes(b"x")
    os.utime(first, (1_700_000_000, 1_700_000_000))
    second = enroll.export_name(tmp_path, now=1_700_000_000)  # the same second
    assert second.name == first.name.replace(".onnx", "-2.onnx")
    second.write_bytes(b"x")
    os.utime(second, (1_700_000_001, 1_700_000_001))
    later = enroll.export_name(tmp_path, now=1_700_000_100)
    later.write_bytes(b"x")
    os.utime(later, (1_700_000_100, 1_700_000_100))
    assert newest_model(tmp_path) == later
    later.unlink()
    assert newest_model(tmp_path) == second


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    enroll.add_arguments(parser)
    argv = []
    for key, value in kw.items():
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return parser.parse_args(argv)


def test_bad_source_and_target_are_one_line_errors(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SwapcamError, match=r"--source .*nope\.mp4: no such file") as err:
        enroll.enroll(_args(source=missing, out=tmp_path / "me", minutes=1))
    assert "\n" not in str(err.value)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SwapcamError, match="not a video file"):
        enroll.enroll(_args(source=tmp_path / "notes.txt", out=tmp_path / "me", minutes=1))
    with pytest.raises(SwapcamError, match="--source is needed"):
        enroll.enroll(_args(out=tmp_path / "me", minutes=1))
    with pytest.raises(SwapcamError, match="--target .*nowhere: not 'demo'"):
        enroll.resolve_target(str(tmp_path / "nowhere"), tmp_path / "cache")
    with pytest.raises(SwapcamError, match="--frames applies to a video"):
        enroll.capture("0", tmp_path / "fs", 128, frames=(0, 10))
    with pytest.raises(SwapcamError, match="camera 9 could not be opened") as err:  # no such camera: 3 s of retries
        enroll.capture("9", tmp_path / "fs", 128, seconds=1)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------- train.py additions
@pytest.fixture(scope="module")
def facesets(tmp_path_factory):
    return build_facesets(str(tmp_path_factory.getbasetemp() / "facesets"))


def _first_faces(faceset: Path, count: int, out: Path) -> Path:
    """A faceset of the first ``count`` faces of ``faceset`` (a target of a few photos)."""
    index = read_index(faceset)
    index["faces"] = index["faces"][:count]
    out.mkdir(parents=True)
    for face in index["faces"]:
        (out / face["file"]).write_bytes((faceset / face["file"]).read_bytes())
    (out / "faces.json").write_text(json.dumps(index))
    return out


def test_held_out_psnr_of_the_person_does_not_need_the_targets(tmp_path, facesets):
    """`enroll` printed "held out nan" for the person's held-out PSNR when the target faceset had too few faces for a
    held-out set of its own (fewer than 4: a target of a few photos): train() reported the held-out PSNR only when
    both identities had one, and the missing number was printed as nan. Now each identity's is its own, a set of 4-5
    faces holds one out (it held out none and gave nan), and the enroll line says why when there is no number."""
    from training.train import MIN_HOLDOUT_FACES, load_identity

    few = _first_faces(facesets["B"], MIN_HOLDOUT_FACES - 1, tmp_path / "few")
    cfg = TrainConfig(
        a=str(facesets["A"]), b=str(few), out=str(tmp_path / "run"), steps=1, batch=2, holdout=0.1, preview_every=0
    )
    psnr = train(cfg, progress=False, threads=1)["psnr"]
    assert math.isfinite(psnr["held_a"]) and "held_b" not in psnr, psnr
    assert enroll.held_out_text(psnr, 0.1) == f"held out {psnr['held_a']:.2f}"

    five = _first_faces(facesets["B"], 5, tmp_path / "five")  # 0.1 of 5 faces: every 10th from the 5th, none
    _, _, held = load_identity(str(five), "five", 64, cfg)
    assert held is not None and len(held) == 1

    assert enroll.held_out_text({"a": 20.0}, 0.0) == "no held-out PSNR: this run holds no faces out (--holdout 0)"
    assert "fewer than 4 faces" in enroll.held_out_text({"a": 20.0}, 0.1)
    assert "not a number" in enroll.held_out_text({"a": 20.0, "held_a": math.nan}, 0.1)


def test_init_and_frozen_decoder_b(tmp_path, facesets, tmp_path_factory):
    """--init starts a fresh run from another run's weights; --decoder-b-lr 0 leaves decoder B exactly as it was
    while the encoder and decoder A move; a resume keeps that optimizer layout."""
    base = short_run(str(tmp_path_factory.getbasetemp() / "run20"))  # shared with test_train / test_export
    start = load_checkpoint(base / CHECKPOINT)["model"]
    cfg = TrainConfig(
        a=str(facesets["B"]),
        b=str(facesets["A"]),
        out=str(tmp_path / "tuned"),
        steps=3,
        batch=2,
        lr=1e-3,
        preset="lite",  # ignored: the architecture is --init's
        init=str(base),
        decoder_b_lr=0.0,
        preview_every=0,
        save_every=1000,
    )
    summary = train(cfg, progress=False, threads=1)
    assert summary["step"] == 3
    state = load_checkpoint(tmp_path / "tuned" / CHECKPOINT)
    assert state["model_config"]["name"] == "tiny" and state["train_config"]["init"] == str(base)
    tuned = state["model"]
    assert all(torch.equal(tuned[k], start[k]) for k in start if k.startswith("decoder_b."))
    assert any(not torch.equal(tuned[k], start[k]) for k in start if k.startswith("encoder."))
    assert any(not torch.equal(tuned[k], start[k]) for k in start if k.startswith("decoder_a."))
    cfg.steps = 4
    train(cfg, resume=True, progress=False, threads=1)
    again = load_checkpoint(tmp_path / "tuned" / CHECKPOINT)["model"]
    assert all(torch.equal(again[k], start[k]) for k in start if k.startswith("decoder_b."))
    with pytest.raises(SwapcamError, match="--decoder-b-lr 2"):
        train(TrainConfig(a=cfg.a, b=cfg.b, out=str(tmp_path / "bad"), decoder_b_lr=2.0), progress=False)


# ------------------------------------------------------------------------------------------- a whole enrolment
@pytest.mark.slow
def test_enrol_from_a_video_fine_tunes_the_shipped_model_and_exports(tmp_path, facesets, capsys):
    from realtime.swapper import Swapper

    clip = synthetic_clip("astronaut", 48, seed=21, motion=1.5)
    video = write_mp4(clip.frames, tmp_path / "me.mp4", clip.fps)
    out = tmp_path / "me"
    args = _args(
        source=video,
        frames="0:40",
        out=out,
        target=facesets["B"],
        minutes=0,
        steps=2,
        batch=2,
        threads=1,
        no_progress=True,
        status=str(tmp_path / "status.json"),
        augment_off=0.25,
    )
    assert enroll.run(args) == 0
    printed = capsys.readouterr().out
    assert re.search(r"PSNR you \d+\.\d\d dB \(held out \d+\.\d\d\)", printed), printed
    status = json.loads((tmp_path / "status.json").read_text())  # what `swapcam serve` polls
    assert status["stage"] == "done" and status["model"] == str(newest_model(out))
    index = read_index(out / "faceset")
    assert len(index["faces"]) >= enroll.MIN_FACES
    assert all(f["frame"] < 40 for f in index["faces"])
    (key,) = index["sources"]
    assert key.endswith("#frames=0:40") and index["sources"][key]["done"]
    assert "blurry" in index["sources"][key]  # the reasons are counted per source
    # the default path fine-tunes the shipped rt128 checkpoint
    state = load_checkpoint(out / "run" / CHECKPOINT)
    assert state["step"] == 2 and state["model_config"]["name"] == "rt128"
    assert Path(state["train_config"]["init"]) == enroll.demo_checkpoint()
    assert state["train_config"]["decoder_b_lr"] == 1.0  # a FACESET target is a face decoder B never drew
    assert state["train_config"]["augment_off"] == 0.25  # --augment-off reaches the training run
    model = newest_model(out)
    assert (
        model is not None
        and model.name.startswith("swap-")
        and f"go live: swapcam live --model {model.parent}" in printed
    )
    swapper = Swapper(model, providers="cpu")
    assert swapper.size == 128 and swapper.info.identities == ("me", facesets["B"].name)
    crop = cv2.imread(str(out / "faceset" / index["faces"][0]["file"]))
    faces, masks = swapper.swap([crop])
    assert faces[0].shape == (128, 128, 3) and np.isfinite(masks[0]).all()
    summary = json.loads((out / "enroll.json").read_text())
    assert summary["model"] == str(model) and summary["capture"]["faces"] == len(index["faces"])

    # again: the capture is done (skipped), training continues from its checkpoint, a second model is written
    assert enroll.run(args) == 0
    assert len(read_index(out / "faceset")["faces"]) == len(index["faces"])
    assert load_checkpoint(out / "run" / CHECKPOINT)["step"] == 4
    newest = newest_model(out)
    assert newest != model and len(list(out.glob("swap-*.onnx"))) == 2


def test_demo_target_faceset_is_built_once(tmp_path):
    cache = tmp_path / "cache"
    folder = enroll.demo_target_faceset(cache, 64, clips=1, frames=4, progress=False)
    index = read_index(folder)
    assert index["faces"] and index["size"] == 64
    stamp = (folder / "faces.json").stat().st_mtime_ns
    assert enroll.demo_target_faceset(cache, 64, clips=1, frames=4, progress=False) == folder
    assert (folder / "faces.json").stat().st_mtime_ns == stamp
