"""`swapcam align`: crops, JSON and previews from real images/videos; bad inputs give one line and exit 2."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.align import STABLE_IDX, align, template_points, transform_points
from realtime.cli import main
from realtime.samples import write_mp4

REPO = Path(__file__).resolve().parents[1]
# glog/absl lines as mediapipe's C++ side prints them ("W0000 00:00:... landmark_projection_calculator.cc:186] ...")
# and the TFLite / absl start-up lines that precede them
NATIVE_LOG_LINE = re.compile(r"^([IWEF]\d{4} |INFO: Created TensorFlow|WARNING: All log messages)", re.MULTILINE)


@pytest.fixture(scope="module")
def media(tmp_path_factory, portraits, astronaut_clip):
    folder = tmp_path_factory.mktemp("align_inputs")
    for name, por in portraits.items():
        cv2.imwrite(str(folder / f"{name}.png"), por.image)
    write_mp4(astronaut_clip.frames[:12], folder / "clip.mp4", fps=10)
    (folder / "notes.txt").write_text("not an image\n")
    cv2.imwrite(str(folder / "grey.png"), np.full((240, 320, 3), 128, np.uint8))
    return folder


def _load(out: Path) -> dict:
    return json.loads((out / "align.json").read_text())


def test_non_image_file_one_line_exit_2(media, tmp_path):
    """The real command line in a fresh process: exit code 2, one stderr line naming the file, no traceback."""
    bad = media / "notes.txt"
    proc = subprocess.run(
        [sys.executable, "-m", "realtime.cli", "align", str(bad), "--out", str(tmp_path / "o")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(bad) in lines[0] and lines[0].startswith("swapcam align: error:")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "o").exists()  # nothing created for a lone bad input


@pytest.mark.parametrize(
    "name, content", [("fake.mp4", b"\x00" * 4096), ("broken.png", b"\x89PNG not really"), ("empty.jpg", b"")]
)
def test_unreadable_media_named(tmp_path, capsys, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["align", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0], err


def test_missing_file(tmp_path, capsys):
    assert main(["align", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.jpg: no such file" in capsys.readouterr().err


def test_images_give_crops_json_and_previews(media, tmp_path, portraits):
    out = tmp_path / "out"
    code = main(
        ["align", str(media / "astronaut.png"), str(media / "grace_hopper.png"), "--out", str(out), "--size", "192"]
    )
    assert code == 0
    doc = _load(out)
    assert doc["size"] == 192 and doc["fit"] == "stable" and doc["errors"] == []
    assert [i["faces"] for i in doc["inputs"]] == [1, 1]
    assert len(doc["faces"]) == 2
    for rec, name in zip(doc["faces"], ["astronaut", "grace_hopper"], strict=True):
        image = portraits[name].image
        crop = cv2.imread(str(out / rec["crop"]))
        assert crop.shape == (192, 192, 3)
        landmarks = np.array(rec["landmarks"])
        matrix = np.array(rec["matrix"])
        assert landmarks.shape == (68, 2) and matrix.shape == (2, 3)
        # the JSON is self-consistent: crop landmarks are the frame landmarks through the matrix
        np.testing.assert_allclose(np.array(rec["crop_landmarks"]), transform_points(landmarks, matrix), atol=0.01)
        # the stable points sit on the template inside the crop (the fit is least squares, so not exactly)
        err = np.linalg.norm(np.array(rec["crop_landmarks"])[STABLE_IDX] - template_points(192)[STABLE_IDX], axis=1)
        assert err.mean() < 0.03 * 192
        # the crop on disk is what realtime.align cuts with those landmarks
        expected, _ = align(image, landmarks.astype(np.float32), size=192)
        assert np.abs(crop.astype(int) - expected.astype(int)).mean() < 1.0
        # the face is where the sample module says it is
        cx, cy = portraits[name].face_center
        x0, y0, x1, y1 = rec["bbox"]
        assert x0 < cx < x1 and y0 < cy < y1
        # the preview has the landmarks drawn at the landmark positions (green/yellow dots), not elsewhere
        preview = cv2.imread(str(out / f"previews/{name}.png"))
        assert preview.shape == image.shape
        changed = np.abs(preview.astype(int) - image.astype(int)).sum(axis=2) > 60
        at_points = [changed[int(round(y)), int(round(x))] for x, y in landmarks]
        assert np.mean(at_points) > 0.9
        # nothing is drawn away from the face's crop outline (blue box) and its label just above it
        corners = transform_points(
            np.array([[0, 0], [192, 0], [192, 192], [0, 192]]), cv2.invertAffineTransform(matrix)
        )
        bx0, by0 = np.floor(corners.min(axis=0)).astype(int) - np.array([10, 40])
        bx1, by1 = np.ceil(corners.max(axis=0)).astype(int) + 10
        far = np.ones(changed.shape, bool)
        far[max(0, by0) : by1, max(0, bx0) : bx1] = False
        assert far.mean() > 0.3
        assert changed[far].mean() < 0.001
    assert not list(out.rglob(".*.tmp"))  # atomic writes (realtime.atomic) leave no temp files


def test_coverage_changes_how_much_head_the_crop_holds(media, tmp_path):
    spans = {}
    for coverage in ("1.2", "2.0"):
        out = tmp_path / coverage
        assert main(["align", str(media / "astronaut.png"), "--out", str(out), "--coverage", coverage]) == 0
        pts = np.array(_load(out)["faces"][0]["crop_landmarks"])
        spans[coverage] = np.ptp(pts, axis=0).max()
    # crop side / landmark box side == coverage, within the stable-point fit's slack
    assert spans["1.2"] == pytest.approx(256 / 1.2, rel=0.08)
    assert spans["2.0"] == pytest.approx(256 / 2.0, rel=0.08)


def test_video_every_n(media, tmp_path):
    out = tmp_path / "vid"
    assert main(["align", str(media / "clip.mp4"), "--out", str(out), "--every", "4", "--no-progress"]) == 0
    doc = _load(out)
    assert doc["inputs"][0]["kind"] == "video" and doc["inputs"][0]["frames"] == 3
    assert [r["frame"] for r in doc["faces"]] == [0, 4, 8]
    assert len(list((out / "crops").glob("clip_f*.png"))) == 3
    assert (out / "previews" / "clip.png").is_file()


def test_folder_mixed_inputs_warn_and_exit_2_at_the_end(media, tmp_path, capsys):
    """A folder with good images, a face-less image and a video; plus one unreadable file given by name: every
    readable input is processed, the bad one is named on one line, and the exit code is 2."""
    out = tmp_path / "mixed"
    code = main(["align", str(media), str(media / "notes.txt"), "--out", str(out), "--every", "6", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "notes.txt: not a readable image or video" in err
    assert "no face found in" in err and "grey.png" in err
    doc = _load(out)
    kinds = {Path(i["source"]).name: (i["kind"], i["faces"]) for i in doc["inputs"]}
    assert kinds == {
        "astronaut.png": ("image", 1),
        "clip.mp4": ("video", 2),
        "grace_hopper.png": ("image", 1),
        "grey.png": ("image", 0),
    }
    assert len(doc["errors"]) == 1 and "notes.txt" in doc["errors"][0]
    assert (out / "previews" / "grey.png").is_file()  # a preview even without a face


def test_same_stem_does_not_overwrite(media, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    cv2.imwrite(str(other / "astronaut.png"), cv2.flip(cv2.imread(str(media / "astronaut.png")), 1))
    out = tmp_path / "out"
    assert main(["align", str(media / "astronaut.png"), str(other / "astronaut.png"), "--out", str(out)]) == 0
    crops = sorted(r["crop"] for r in _load(out)["faces"])
    assert len(set(crops)) == 2 and all((out / c).is_file() for c in crops)


@pytest.mark.parametrize("extra, words", [(["--size", "4"], "--size"), (["--coverage", "9"], "--coverage")])
def test_bad_options(media, tmp_path, capsys, extra, words):
    assert main(["align", str(media / "astronaut.png"), "--out", str(tmp_path / "o"), *extra]) == 2
    assert words in capsys.readouterr().err


def test_grey_rgba_and_16bit_files_are_read_as_bgr(tmp_path, astronaut):
    """Image files in other layouts are converted on reading (the detector itself only takes HxWx3 uint8)."""
    image = astronaut.image
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    rgba = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    deep = image.astype(np.uint16) * 257
    for name, data in (("grey.png", grey), ("rgba.png", rgba), ("deep.png", deep)):
        cv2.imwrite(str(tmp_path / name), data)
    out = tmp_path / "out"
    assert (
        main(
            [
                "align",
                str(tmp_path / "grey.png"),
                str(tmp_path / "rgba.png"),
                str(tmp_path / "deep.png"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    doc = _load(out)
    assert [i["faces"] for i in doc["inputs"]] == [1, 1, 1]
    boxes = np.array([r["bbox"] for r in doc["faces"]])
    assert np.ptp(boxes, axis=0).max() <= 6  # the same face found in all three


def test_clean_output_in_a_fresh_process(media, tmp_path):
    """A user running the command sees swapcam's summary line, not mediapipe's C++ log lines."""
    proc = subprocess.run(
        [sys.executable, "-m", "realtime.cli", "align", str(media / "grace_hopper.png"), "--out", str(tmp_path / "o")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert not NATIVE_LOG_LINE.search(proc.stderr + proc.stdout), proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("1 face(s) from 1 input(s)") and proc.stdout.count("\n") == 1


def test_folders_are_searched_recursively_and_flv_is_a_video(media, tmp_path):
    """The same media table and folder walk as `swapcam extract` (realtime.media)."""
    nested = tmp_path / "in" / "a" / "b"
    nested.mkdir(parents=True)
    shutil.copy(media / "astronaut.png", nested / "astronaut.png")
    # an MP4 stream under a .flv name: FFmpeg reads it by content; what is tested is that the extension is taken
    shutil.copy(media / "clip.mp4", tmp_path / "in" / "a" / "clip.flv")
    (tmp_path / "in" / "a" / "notes.txt").write_text("skipped: not media\n")
    out = tmp_path / "out"
    assert main(["align", str(tmp_path / "in"), "--out", str(out), "--every", "6", "--no-progress"]) == 0
    kinds = {Path(i["source"]).name: (i["kind"], i["faces"]) for i in _load(out)["inputs"]}
    assert kinds == {"astronaut.png": ("image", 1), "clip.flv": ("video", 2)}
