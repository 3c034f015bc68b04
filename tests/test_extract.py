"""training.extract / training.faceset with real mediapipe on synthetic clips: crops, faces.json, skips, dedup,
resume, corrupt inputs, and the faceset loader's bad-input errors."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from _training_fixtures import FACESET_SIZE, build_facesets

from models.contract import TEMPLATE_NAME
from realtime.align import STABLE_IDX, template_points
from realtime.cli import main as cli_main
from realtime.errors import SwapcamError
from realtime.samples import synthetic_clip, write_mp4
from training.extract import extract
from training.faceset import load_faceset, read_index

REPO = Path(__file__).resolve().parents[1]
# glog/absl lines as mediapipe's C++ side prints them ("W0000 00:00:... landmark_projection_calculator.cc:186] ...")
# and the TFLite / absl start-up lines that precede them
NATIVE_LOG_LINE = re.compile(r"^([IWEF]\d{4} |INFO: Created TensorFlow|WARNING: All log messages)", re.MULTILINE)


@pytest.fixture(scope="module")
def facesets(tmp_path_factory):
    return build_facesets(str(tmp_path_factory.getbasetemp() / "facesets"))


def _decoded_frames(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_faceset_layout_crops_landmarks_and_matrix(facesets):
    folder = facesets["A"]
    index = read_index(folder)
    assert index["size"] == FACESET_SIZE and index["template"] == TEMPLATE_NAME and index["coverage"] == 1.6
    faces = index["faces"]
    assert len(faces) >= 30, f"only {len(faces)} faces from a 48-frame clip"
    frames = _decoded_frames(facesets["clips"]["astronaut"])
    target = template_points(FACESET_SIZE, 1.6)
    for entry in faces[::7]:
        crop = cv2.imread(str(folder / entry["file"]))
        assert crop.shape == (FACESET_SIZE, FACESET_SIZE, 3)
        lm = np.array(entry["landmarks"])
        assert lm.shape == (68, 2)
        # landmarks are in crop coordinates: the stable points sit on the template (Umeyama fit residual only)
        assert np.abs(lm[STABLE_IDX] - target[STABLE_IDX]).mean() < 0.04 * FACESET_SIZE
        # the stored matrix is the frame -> crop warp that made this crop
        m = np.array(entry["matrix"])
        remade = cv2.warpAffine(
            frames[entry["frame"]],
            m,
            (FACESET_SIZE, FACESET_SIZE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        )
        assert np.abs(remade.astype(int) - crop.astype(int)).mean() < 1.0
    stats = next(iter(index["sources"].values()))
    assert stats["done"] and stats["frames"] == 48
    assert stats["faces"] + stats["no_face"] + stats["duplicates"] == 48


def test_frames_without_face_are_skipped_and_counted(tmp_path):
    clip = synthetic_clip("grace_hopper", 30, seed=4, leave_frame=True)
    mp4 = write_mp4(clip.frames, tmp_path / "leave.mp4", clip.fps)
    index = extract([str(mp4)], tmp_path / "fs", size=64, progress=False, dedup=0)
    stats = index["sources"][str(mp4.resolve())]
    assert stats["no_face"] >= 2, stats
    assert stats["faces"] == 30 - stats["no_face"]
    assert len(index["faces"]) == stats["faces"]
    kept = {e["frame"] for e in index["faces"]}
    assert not kept & set(np.nonzero(~clip.face_visible)[0].tolist()), "a crop was kept for a frame without a face"


def test_near_duplicates_dropped(tmp_path):
    # a still camera: the same frame eight times (lossless PNG, so they are truly equal), then a different view
    frame = synthetic_clip("astronaut", 1, seed=0, noise=0).frames[0]
    folder = tmp_path / "still"
    folder.mkdir()
    for i in range(8):
        cv2.imwrite(str(folder / f"f{i}.png"), frame)
    cv2.imwrite(str(folder / "f9.png"), cv2.flip(frame, 1))
    index = extract([str(folder)], tmp_path / "fs", size=64, progress=False)
    dups = sum(s["duplicates"] for s in index["sources"].values())
    assert len(index["faces"]) == 2 and dups == 7, (len(index["faces"]), dups)
    # with dedup off every frame is kept
    index = extract([str(folder)], tmp_path / "fs_all", size=64, progress=False, dedup=0)
    assert len(index["faces"]) == 9


def test_resume_does_not_redo_work(tmp_path, facesets):
    mp4 = facesets["clips"]["grace_hopper"]
    out = tmp_path / "fs"
    extract([str(mp4)], out, size=64, progress=False)
    index = read_index(out)
    mtimes = {e["file"]: (out / e["file"]).stat().st_mtime_ns for e in index["faces"]}
    # second run: nothing rewritten
    extract([str(mp4)], out, size=64, progress=False)
    assert {e["file"]: (out / e["file"]).stat().st_mtime_ns for e in read_index(out)["faces"]} == mtimes
    # simulate a run killed after frame 20 (what the atomic index would hold at that point): resume finishes it
    key = str(mp4.resolve())
    cut = dict(index)
    cut["faces"] = [e for e in index["faces"] if e["frame"] < 20]
    cut["sources"] = {key: dict(index["sources"][key], done=False, next_frame=20)}
    for e in index["faces"]:
        if e["frame"] >= 20:
            (out / e["file"]).unlink()
    (out / "faces.json").write_text(json.dumps(cut))
    extract([str(mp4)], out, size=64, progress=False)
    resumed = read_index(out)
    assert [e["file"] for e in resumed["faces"]] == [e["file"] for e in index["faces"]]
    for e in resumed["faces"]:
        if e["frame"] < 20:
            assert (out / e["file"]).stat().st_mtime_ns == mtimes[e["file"]], "an already extracted crop was redone"


def test_corrupt_inputs_warn_and_extraction_goes_on(tmp_path, facesets, caplog):
    out = tmp_path / "fs"
    good = facesets["clips"]["astronaut"]
    extract([str(good)], out, size=64, progress=False)
    before = len(read_index(out)["faces"])
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_bytes(b"\x00\x01garbage" * 300)
    bad_image = tmp_path / "broken.png"
    bad_image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"nonsense" * 50)
    other = write_mp4(synthetic_clip("astronaut", 10, seed=9).frames, tmp_path / "more.mp4", 30)
    with caplog.at_level(logging.WARNING, logger="swapcam.extract"):
        index = extract([str(bad_video), str(bad_image), str(other)], out, size=64, progress=False)
    text = caplog.text
    assert "broken.mp4" in text and "broken.png" in text
    assert len(index["faces"]) > before, "extraction stopped at the corrupt inputs"
    assert {e["file"] for e in read_index(out)["faces"]} >= {e["file"] for e in index["faces"][:before]}


def test_image_folder_source(tmp_path, portraits):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), portraits["astronaut"].image)
    cv2.imwrite(str(folder / "b.png"), portraits["grace_hopper"].image)
    index = extract([str(folder)], tmp_path / "fs", size=96, progress=False)
    assert len(index["faces"]) == 2
    assert {e["frame"] for e in index["faces"]} == {0}


def test_nested_folders_flv_and_image_depths(tmp_path, astronaut, facesets):
    """Folders are searched recursively; .flv is a video; a 16-bit, a grey+alpha and an 8-bit copy of one photo give
    the same face (realtime.media reads them all as BGR uint8)."""
    photo = astronaut.image
    deep = tmp_path / "in" / "photos" / "16bit"
    deep.mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "in" / "photos" / "plain.png"), photo)
    cv2.imwrite(str(deep / "deep.png"), photo.astype(np.uint16) * 257)
    grey_alpha = cv2.cvtColor(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGRA)
    cv2.imwrite(str(deep / "grey_alpha.png"), grey_alpha)
    # an MP4 stream under a .flv name: FFmpeg reads it by its content, so what is tested is that the extension is
    # taken (a folder only yields files whose extension is in realtime.media's table)
    flv = tmp_path / "in" / "clips" / "talk.flv"
    flv.parent.mkdir()
    shutil.copy(facesets["clips"]["grace_hopper"], flv)
    (tmp_path / "in" / "clips" / "notes.txt").write_text("not media\n")
    index = extract([str(tmp_path / "in")], tmp_path / "fs", size=96, progress=False, dedup=0)
    by_source = {Path(key).name: stats for key, stats in index["sources"].items()}
    assert set(by_source) == {"plain.png", "deep.png", "grey_alpha.png", "talk.flv"}
    assert by_source["talk.flv"]["frames"] == 48 and by_source["talk.flv"]["faces"] >= 30
    assert all(by_source[name]["faces"] == 1 for name in ("plain.png", "deep.png", "grey_alpha.png"))
    crops = {
        Path(e["source"]).name: cv2.imread(str(tmp_path / "fs" / e["file"])).astype(int)
        for e in index["faces"]
        if e["frame"] == 0 and not e["source"].endswith(".flv")
    }
    assert np.abs(crops["deep.png"] - crops["plain.png"]).mean() < 1.0
    # grey + alpha: expanded to three equal channels; the landmarks differ a little on a grey photo, so the crop
    # matches the colour one's grey version only roughly
    grey = crops["grey_alpha.png"]
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
    grey_plain = cv2.cvtColor(crops["plain.png"].astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(int)
    assert np.abs(grey[..., 0] - grey_plain).mean() < 6.0


def test_no_native_log_lines_in_a_fresh_process(tmp_path, astronaut):
    """mediapipe's C++ start-up lines (glog/absl, e.g. landmark_projection_calculator) never reach the user."""
    photo = tmp_path / "portrait.png"
    cv2.imwrite(str(photo), astronaut.image)
    proc = subprocess.run(
        [sys.executable, "-m", "realtime.cli", "extract", str(photo), "--out", str(tmp_path / "fs"), "--no-progress"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert not NATIVE_LOG_LINE.search(proc.stderr + proc.stdout), proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith(f"{tmp_path / 'fs'}: 1 faces") and proc.stdout.count("\n") == 1


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli_main(["extract", "--out", str(tmp_path / "x"), "--size", "8", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("swapcam extract: error:") and "--size 8" in err[0]
    assert cli_main(["extract", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to extract" in err[0]


def test_camera_missing_is_one_line(tmp_path, capsys):
    assert cli_main(["extract", "--out", str(tmp_path / "cam"), "--camera", "1", "--camera-index", "37"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("swapcam extract: error:") and "camera" in err[-1]


# --------------------------------------------------------------------------------------------- loader bad input
def test_loader_bad_inputs(tmp_path, facesets):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "faces.json").write_text(json.dumps({"version": 1, "size": 64, "coverage": 1.6, "faces": []}))
    with pytest.raises(SwapcamError, match="is empty"):
        load_faceset(empty, 64)
    with pytest.raises(SwapcamError, match="has no faces.json"):
        load_faceset(tmp_path, 64)

    mixed = tmp_path / "mixed"
    shutil.copytree(facesets["A"], mixed)
    entry = read_index(mixed)["faces"][3]
    crop = cv2.imread(str(mixed / entry["file"]))
    cv2.imwrite(str(mixed / entry["file"]), cv2.resize(crop, (100, 100)))
    with pytest.raises(SwapcamError, match=f"{entry['file']}.*mixed sizes"):
        load_faceset(mixed, 64)

    corrupt = tmp_path / "corrupt"
    shutil.copytree(facesets["A"], corrupt)
    entry = read_index(corrupt)["faces"][5]
    (corrupt / entry["file"]).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(SwapcamError, match=f"{entry['file']}.*not a readable image"):
        load_faceset(corrupt, 64)


def test_loader_resizes_and_scales_landmarks(facesets):
    full = load_faceset(facesets["A"], FACESET_SIZE)
    small = load_faceset(facesets["A"], 64)
    assert small.images.shape[1:] == (64, 64, 3) and len(small) == len(full)
    assert np.allclose((small.landmarks + 0.5) * 2, full.landmarks + 0.5, atol=1e-3)
