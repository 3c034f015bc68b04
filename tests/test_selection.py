"""Face selection (realtime.selection, ``--faces``): on a frame with two faces (Grace Hopper large, the astronaut
small; tests/_live_fixtures.two_faces_frame) ``largest`` swaps only the larger face and leaves the smaller one's
pixels exactly as the camera's, ``2`` swaps both, ``match:IMAGE`` the person in the photo (by dlib's descriptor, and
by landmark geometry without it); a live switch from all to largest finds the faces it needs; mistakes are one line.
Real mediapipe, real onnxruntime on a known colour-shift model, real dlib."""

from __future__ import annotations

import dataclasses
import time

import cv2
import numpy as np
import pytest
from _live_fixtures import BIG_REGION, SMALL_REGION, colour_shift_model, two_faces_frame

from realtime import cli
from realtime.builder import create_processor, open_swapper, run_live
from realtime.controls import SWITCHES, apply_changes, key_change
from realtime.errors import SwapcamError
from realtime.landmarks import create_detector
from realtime.pipeline import PipelineOptions
from realtime.selection import SEARCH_FACES, FaceSelector, parse_faces, search_count, shape_distance
from realtime.sinks.null import NullSink
from realtime.sources import FramesSource

# the colour shift itself must reach the frame: no colour transfer, no mouth or eyes from the camera, no occlusion
PLAIN = dict(colour="none", mouth="swap", eyes="swap", occlusion="off", hud=False, label=False)


@pytest.fixture(scope="module")
def red(tmp_path_factory):
    path = colour_shift_model(tmp_path_factory.mktemp("selection") / "red.onnx", offset=(0.35, -0.2, -0.2))
    return open_swapper(path, threads=1)


@pytest.fixture(scope="module")
def frame():
    return two_faces_frame()


@pytest.fixture(scope="module")
def detected(frame):
    """Both faces as the live detector sees them (big first or not: the detector's order)."""
    detector = create_detector("mediapipe", mode="static", max_faces=SEARCH_FACES)
    try:
        faces = detector.detect(frame)
    finally:
        detector.close()
    assert len(faces) == 2, "mediapipe should find both faces of the two-face frame"
    return faces


def changed(out: np.ndarray, frame: np.ndarray, region) -> float:
    """Mean absolute change of ``region`` (rows, columns) from the camera's frame, grey levels."""
    return float(np.abs(out[region].astype(np.int16) - frame[region].astype(np.int16)).mean())


def swapped_regions(red, frame, faces: str, max_faces: int = 1, n: int = 10) -> tuple[float, float]:
    """(change of the big face's region, change of the small face's) in the last frame of a live run."""
    outputs = []
    options = PipelineOptions(faces=faces, max_faces=max_faces, **PLAIN)
    summary, _ = run_live(
        red,
        FramesSource([frame] * n, 30.0, pace="fast", n_frames=n),
        NullSink(),
        options,
        on_frame=lambda f, image: outputs.append(image),
    )
    assert summary["frames_out"] == n
    return changed(outputs[-1], frame, BIG_REGION), changed(outputs[-1], frame, SMALL_REGION)


def test_largest_swaps_only_the_larger_face_and_n_the_n_largest(red, frame):
    big, small = swapped_regions(red, frame, "largest")
    assert big > 5.0 and small == 0.0, (big, small)  # the small face's pixels are the camera's, to the last bit
    big, small = swapped_regions(red, frame, "2")
    assert big > 5.0 and small > 2.0, (big, small)
    big, small = swapped_regions(red, frame, "all", max_faces=2)  # --max-faces keeps working
    assert big > 5.0 and small > 2.0, (big, small)


def test_match_swaps_the_person_in_the_photo_by_descriptor(red, frame, tmp_path, portraits):
    pytest.importorskip("dlib")
    for name, region, other in (("astronaut", SMALL_REGION, BIG_REGION), ("grace_hopper", BIG_REGION, SMALL_REGION)):
        photo = tmp_path / f"{name}.png"
        cv2.imwrite(str(photo), portraits[name].image)
        options = PipelineOptions(faces=f"match:{photo}", **PLAIN)
        with create_processor(red, options) as processor:
            selector = processor._selector
            assert selector.by_descriptor and selector.reference is not None
            deadline = time.monotonic() + 60
            while selector.descriptors < 2 and time.monotonic() < deadline:  # both faces' descriptors, in the
                processor.process(frame)  # background, one at a time
            assert selector.descriptors == 2
            frames = 0
            for _ in range(8):  # the face fades in over a few frames
                out = processor.process(frame)
                frames += 1
            assert selector.descriptors == 2, "a descriptor per face, not per frame"
            assert changed(out, frame, region) > 2.0 and changed(out, frame, other) == 0.0, name


def test_match_by_landmark_geometry_without_the_descriptor(frame, detected, tmp_path, portraits):
    for name, small in (("astronaut", True), ("grace_hopper", False)):
        photo = tmp_path / f"{name}.png"
        cv2.imwrite(str(photo), portraits[name].image)
        selector = FaceSelector(f"match:{photo}", use_descriptor=False)
        assert not selector.by_descriptor
        (chosen,) = selector.select(frame, detected, 0.0)
        width = chosen.landmarks[:, 0].max() - chosen.landmarks[:, 0].min()
        assert (width < 140) == small, (name, width)  # the astronaut's face is the small one
        others = [shape_distance(f.landmarks, selector.reference.landmarks) for f in detected]  # type: ignore[union-attr]
        assert min(others) < 0.05 < max(others), others  # the same photo's shape vs another person's


def test_a_live_switch_from_all_to_largest_finds_the_faces_it_needs(red, frame):
    """The page's and the window's faces switch: a processor built for one face (all, max-faces 1) looks for more
    once it must choose the largest."""
    with create_processor(red, PipelineOptions(**PLAIN)) as processor:
        assert processor.detector.max_faces == 1
        processor.reconfigure(options=apply_changes(processor.options, {"faces": "largest"}))
        for _ in range(8):
            out = processor.process(frame)
        assert processor.detector.max_faces == SEARCH_FACES
        assert len(processor.last_faces) == 1
        assert changed(out, frame, BIG_REGION) > 5.0 and changed(out, frame, SMALL_REGION) == 0.0
        kept = processor._selector
        processor.reconfigure(options=dataclasses.replace(processor.options, hud=True))
        assert processor._selector is kept  # an unrelated switch keeps the selection (and its descriptors)


def test_the_switch_table_offers_all_and_largest():
    assert SWITCHES["faces"].choices == ("all", "largest")
    options, text = key_change(PipelineOptions(), "f")  # type: ignore[misc]
    assert options.faces == "largest" and text == "faces: largest"
    with pytest.raises(ValueError, match="faces"):
        apply_changes(PipelineOptions(), {"faces": "3"})  # N and match:IMAGE are command-line choices


def test_faces_values_and_how_they_combine_with_max_faces(tmp_path):
    assert parse_faces("all").kind == "all" and parse_faces("largest").count == 1 and parse_faces("3").count == 3
    assert search_count("all", 2) == 2  # all: the detector looks for --max-faces, as before
    assert search_count("largest", 1) == SEARCH_FACES and search_count("6", 1) == 6 and search_count("2", 8) == 8
    for bad, word in (("0", "1..16"), ("17", "1..16"), ("some", "expected all, largest"), ("match:", "reference")):
        with pytest.raises(SwapcamError, match=word):
            parse_faces(bad)
    with pytest.raises(SwapcamError, match="nobody.png does not exist"):
        PipelineOptions(faces=f"match:{tmp_path / 'nobody.png'}").validate()


def test_reference_photo_mistakes_are_one_line_naming_the_file(tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    faceless = tmp_path / "faceless.png"
    cv2.imwrite(str(faceless), np.full((240, 320, 3), 128, np.uint8))
    for photo, words in (
        (tmp_path / "missing.png", "missing.png does not exist"),
        (broken, "cannot read the reference photo"),
        (faceless, "no face found in the reference photo"),
    ):
        argv = ["live", "--source", "synthetic", "--sink", "null", "--frames", "2", "--faces", f"match:{photo}"]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and photo.name in err and len(err.splitlines()) == 1, err
    assert cli.main(["live", "--source", "synthetic", "--sink", "null", "--frames", "2", "--faces", "many"]) == 2
    assert "faces='many'" in capsys.readouterr().err
