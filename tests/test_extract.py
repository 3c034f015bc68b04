"""training.extract / training.faceset with real mediapipe on synthetic clips: crops, faces.json, skips, dedup,
resume, corrupt inputs, and the faceset loader's bad-input errors."""

from __future__ import annotations

import json
import logging
import shutil

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
        remade = cv2.warpAffine(frames[entry["frame"]], m, (FACESET_SIZE, FACESET_SIZE), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
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
