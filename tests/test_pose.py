"""Head pose in degrees (realtime.landmarks.measures.head_pose_degrees): the 3-D template is what its comment says it
is (derived again here from mediapipe's own 3-D FaceMesh output), a known rotation projected through the same camera
comes back, and on real pictures an in-plane turn reads as roll and a mirror image flips yaw."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from realtime.landmarks.measures import POSE_POINTS, POSE_TEMPLATE, head_pose_degrees

# iBUG 68 left-right mirror partner of each point
MIRROR = (
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


def _kabsch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ca, cb = a.mean(0), b.mean(0)
    u, _, vt = np.linalg.svd((a - ca).T @ (b - cb))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rotation, cb - rotation @ ca


def _frontal_template(image: np.ndarray) -> np.ndarray:
    """FaceMesh's 3-D points of a portrait at the 68 iBUG places, made symmetric and turned frontal, 9 cm between
    the outer eye corners: the recipe of POSE_TEMPLATE's comment."""
    import mediapipe as mp

    from realtime.landmarks.mediapipe_backend import MEDIAPIPE_TO_IBUG68

    h, w = image.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True) as mesh:
        found = mesh.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    pts = np.array([[p.x * w, p.y * h, p.z * w] for p in found.multi_face_landmarks[0].landmark])[MEDIAPIPE_TO_IBUG68]
    mirrored = pts[MIRROR] * np.array([-1.0, 1.0, 1.0])
    rotation, shift = _kabsch(mirrored, pts)
    sym = (pts + mirrored @ rotation.T + shift) / 2
    pairs = np.array([sym[j] - sym[i] for i, j in enumerate(MIRROR) if i < j])
    x = np.linalg.svd(pairs, full_matrices=False)[2][0]
    x = x if x @ (sym[45] - sym[36]) > 0 else -x
    y = (sym[48] + sym[54]) / 2 - sym[36:48].mean(0)
    y = (y - (y @ x) * x) / np.linalg.norm(y - (y @ x) * x)
    out = (sym - sym.mean(0)) @ np.stack([x, y, np.cross(x, y)]).T
    return out * 9.0 / np.linalg.norm(out[45] - out[36])


def test_template_is_mediapipes_frontal_face_made_symmetric(portraits):
    assert sorted(MIRROR) == list(range(68))
    derived = (_frontal_template(portraits["grace_hopper"].image) + _frontal_template(portraits["astronaut"].image)) / 2
    derived = derived[list(POSE_POINTS)]
    derived -= derived.mean(0)
    np.testing.assert_allclose(derived, POSE_TEMPLATE, atol=0.05)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.mark.parametrize("angles", [(0, 0, 0), (25, 0, 0), (0, 20, 0), (0, 0, -15), (-18, 12, 8)])
def test_a_projected_rotation_comes_back(angles):
    """The template turned by R = Rz Ry Rx and projected through the solve's own camera: the same angles back,
    with the documented signs (Ry's + turns the nose towards the image's left, so it reads as yaw -)."""
    yaw, pitch, roll = angles
    points = POSE_TEMPLATE @ _rotation(-yaw, pitch, roll).T + np.array([0.0, 0.0, 55.0])
    camera = np.array([[640.0, 0, 320], [0, 640, 240], [0, 0, 1]])
    projected = points @ camera.T
    lm = np.zeros((68, 2))
    lm[list(POSE_POINTS)] = projected[:, :2] / projected[:, 2:]
    got = head_pose_degrees(lm, (640, 480))
    assert got is not None
    np.testing.assert_allclose(got, angles, atol=0.05)
    nose_x = lm[30, 0]
    if yaw:
        assert np.sign(nose_x - 320) == np.sign(yaw)  # yaw + = the nose towards the image's right


def test_real_faces_roll_with_the_image_and_keep_their_pose_across_the_frame(portraits, portrait_landmarks):
    """An in-plane turn of the picture reads as roll; the same picture moved from one corner of a wide frame to the
    other keeps its yaw and pitch (the angles are against the line of sight, not the camera's axis)."""
    from realtime.landmarks import create_detector

    image = portraits["astronaut"].image
    h, w = image.shape[:2]
    base = head_pose_degrees(portrait_landmarks["astronaut"], (w, h))
    assert base is not None
    detector = create_detector("mediapipe", mode="static")
    poses = []
    try:
        detector.warmup()
        turned = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), -12.0, 1.0), (w, h))
        rolled = head_pose_degrees(detector.detect(turned)[0].landmarks, (w, h))
    finally:
        detector.close()
    # the same picture in the top-left and the bottom-right corner of a frame three times its size
    for offset in ((0, 0), (2 * w, 2 * h)):
        poses.append(head_pose_degrees(portrait_landmarks["astronaut"] + np.array(offset), (3 * w, 3 * h)))
    assert rolled is not None and None not in poses
    assert rolled[2] - base[2] == pytest.approx(12.0, abs=1.5)  # clockwise in the image = roll +
    assert abs(rolled[0] - base[0]) < 3 and abs(rolled[1] - base[1]) < 3
    corner, other_corner = poses
    assert abs(corner[0] - other_corner[0]) < 2.0 and abs(corner[1] - other_corner[1]) < 2.0, poses
    assert abs(corner[0] - base[0]) < 2.0 and abs(corner[1] - base[1]) < 2.0, (corner, base)
