"""Identity by dlib's ResNet face descriptor (realtime.eval.identity), with answers known in advance: the same photo
is the same descriptor, two different people are further apart than dlib's 0.6 line, a slightly moved photo of one
person stays close to her, a blur moves her away, and identity_block's medians and shares on hand-made descriptors.

dlib comes with the `eval` extra, which `all` (what `make test` installs) includes: these tests use the real models.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime.eval import identity
from realtime.eval.identity import FaceRecognizer, identity_block, landmark_rectangle, reference_descriptor


@pytest.fixture(scope="module")
def faces():
    """The recognizer, and the sample portraits (plus a moved and a blurred Grace Hopper) with their mediapipe
    landmarks: one load of everything for the module."""
    from realtime.landmarks import create_detector
    from realtime.samples import portrait

    grace, astronaut = portrait("grace_hopper").image, portrait("astronaut").image
    h, w = grace.shape[:2]
    # a small similarity: 5 degrees, 3 % smaller, moved by (10, -8) px
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 5.0, 0.97)
    matrix[:, 2] += (10.0, -8.0)
    moved = cv2.warpAffine(grace, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    # her brow-to-chin box is about 175 px tall: sigma 4 px wipes out the detail below about a 30th of the face
    blurred = cv2.GaussianBlur(grace, (0, 0), 4.0)
    images = {"grace": grace, "astronaut": astronaut, "moved": moved, "blurred": blurred}
    detector = create_detector("mediapipe", mode="static")
    try:
        detector.warmup()
        landmarks = {name: detector.detect(image)[0].landmarks for name, image in images.items()}
    finally:
        detector.close()
    return FaceRecognizer(), images, landmarks


def test_missing_is_none_here():
    assert identity.missing() is None


def test_descriptor_shape_and_determinism(faces):
    recognizer, images, landmarks = faces
    with_lm = recognizer.descriptor(images["grace"], landmarks["grace"])
    own = recognizer.descriptor(images["grace"])
    for d in (with_lm, own):
        assert d is not None and d.shape == (128,) and d.dtype == np.float64
    # the same photo, the same way: no jitter, so the same descriptor
    assert identity.distance(with_lm, recognizer.descriptor(images["grace"], landmarks["grace"])) < 0.05
    assert identity.distance(own, recognizer.descriptor(images["grace"])) < 0.05
    # the landmark box and dlib's own box: a few pixels apart, which moves the descriptor by about 0.13 here
    assert identity.distance(with_lm, own) < 0.25


def test_landmark_box_matches_dlibs_own_box(faces):
    recognizer, images, landmarks = faces
    for name in ("grace", "astronaut"):
        mine, dlibs = landmark_rectangle(landmarks[name]), recognizer.detect(images[name])
        assert dlibs is not None
        ix = max(0, min(mine[2], dlibs[2]) - max(mine[0], dlibs[0]))
        iy = max(0, min(mine[3], dlibs[3]) - max(mine[1], dlibs[1]))
        area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
        iou = ix * iy / (area(mine) + area(dlibs) - ix * iy)
        assert iou > 0.75, (name, mine, dlibs, iou)


def test_landmark_rectangle_is_a_raised_square():
    points = np.array([[100.0, 200.0], [300.0, 200.0], [100.0, 400.0], [300.0, 400.0]])  # a 200 x 200 box
    assert landmark_rectangle(points) == (100, 182, 300, 382)  # side 200, centre 18 px (0.09 x 200) higher
    with pytest.raises(ValueError):
        landmark_rectangle(np.zeros((68, 3)))
    with pytest.raises(ValueError):
        landmark_rectangle(np.full((68, 2), np.nan))


def test_two_people_are_apart(faces):
    recognizer, images, landmarks = faces
    for use_landmarks in (True, False):
        grace = recognizer.descriptor(images["grace"], landmarks["grace"] if use_landmarks else None)
        astronaut = recognizer.descriptor(images["astronaut"], landmarks["astronaut"] if use_landmarks else None)
        assert identity.distance(grace, astronaut) > identity.SAME_PERSON  # measured 0.67 and 0.70


def test_moved_photo_stays_close_and_blur_moves_away(faces):
    recognizer, images, landmarks = faces
    reference = reference_descriptor(recognizer, [(images["grace"], landmarks["grace"])])
    moved = identity.distance(reference, recognizer.descriptor(images["moved"], landmarks["moved"]))
    blurred = identity.distance(reference, recognizer.descriptor(images["blurred"], landmarks["blurred"]))
    assert moved < 0.4  # measured 0.13: the descriptor's own noise under a few pixels of alignment
    assert blurred > moved + 0.1  # measured 0.33
    own = recognizer.descriptor(images["moved"])
    assert own is not None and identity.distance(recognizer.descriptor(images["grace"]), own) < 0.4


def test_reference_is_the_mean_and_skips_faceless_images(faces):
    recognizer, images, landmarks = faces
    blank = np.zeros((240, 320, 3), np.uint8)
    assert recognizer.descriptor(blank) is None
    assert reference_descriptor(recognizer, [(blank, None)]) is None
    pair = [(images["grace"], landmarks["grace"]), (images["moved"], landmarks["moved"]), (blank, None)]
    expected = np.mean([recognizer.descriptor(i, lm) for i, lm in pair[:2]], axis=0)
    assert np.allclose(reference_descriptor(recognizer, pair), expected)


def test_bad_images_raise(faces):
    recognizer = faces[0]
    with pytest.raises(TypeError):
        recognizer.descriptor(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError):
        recognizer.descriptor(np.zeros((64, 64), np.uint8))


def test_pick_evenly():
    assert identity.pick_evenly(list(range(10)), 32) == list(range(10))
    assert identity.pick_evenly(list(range(100)), 5) == [0, 25, 50, 74, 99]
    assert len(identity.pick_evenly(list(range(1000)))) == identity.REFERENCE_FACES
    with pytest.raises(ValueError):
        identity.pick_evenly([1], 0)


def _axis(length: float) -> np.ndarray:
    vector = np.zeros(128)
    vector[0] = length
    return vector


def test_identity_block_on_hand_made_descriptors():
    b = np.zeros(128)
    camera = [_axis(0.3), _axis(0.6), _axis(0.9)]  # 0.3, 0.6, 0.9 from B

    still_camera = identity_block(list(camera), camera, b)  # the output is the camera's face
    assert still_camera["distance_to_camera"] == 0.0 and still_camera["retrieval"] == 0.0
    assert still_camera["distance_to_b"] == 0.6 and still_camera["camera_to_b"] == 0.6
    assert still_camera["share_b"] == 0.3333  # only 0.3 is under 0.6 (0.6 itself is not)
    assert still_camera["frames"] == 3 and still_camera["threshold"] == 0.6 and still_camera["method"]

    became_b = identity_block([b, b, b], camera, b)  # the output is B
    assert became_b["distance_to_b"] == 0.0 and became_b["share_b"] == 1.0 and became_b["retrieval"] == 1.0
    assert became_b["distance_to_camera"] == 0.6

    # frames without a face: output None in frame 0, camera None in frame 1
    block = identity_block([None, _axis(0.1), _axis(0.2), _axis(0.7)], [_axis(1.0), None, _axis(1.0), _axis(0.5)], b)
    assert block["frames"] == 3 and block["frames_both"] == 2
    assert block["distance_to_b"] == 0.2  # median of 0.1, 0.2, 0.7
    assert block["distance_to_camera"] == 0.5  # median of 0.8 and 0.2
    assert block["camera_to_b"] == 1.0  # median of 1.0, 1.0, 0.5
    assert block["share_b"] == 0.6667
    assert block["retrieval"] == 0.5  # frame 2: 0.2 < 0.8 yes; frame 3: 0.7 < 0.2 no

    empty = identity_block([None, None], [None, None], b)
    assert empty["frames"] == 0 and all(empty[k] is None for k in ("distance_to_b", "share_b", "retrieval"))
    no_reference = identity_block([b], [_axis(1.0)], None)
    assert no_reference["distance_to_b"] is None and no_reference["distance_to_camera"] == 1.0
    with pytest.raises(ValueError):
        identity_block([b], [], b)
