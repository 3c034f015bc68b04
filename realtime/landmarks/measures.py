"""What a face's 68 landmarks say about its expression and pose: one definition for every stage that reads them.

Used by the live loop (the mouth gate, the eye follower), enrolment's coverage meter and `swapcam eval`, so that
what eval measures is what the live stages act on. numpy + OpenCV only (the live path imports this).

All ratios are in face units (over the eye-centre distance), so they do not change with the face's size in the frame:
- mouth openness: mean inner-lip gap (68-point 61-67, 62-66, 63-65); 0 closed, ~0.3 open when speaking.
- eye aspect ratio (Soukupova and Cech 2016), both eyes averaged: ~0.3 open; mediapipe's mesh never closes its lid
  points fully, a shut eye reads ~0.17-0.2 (realtime.eyes).
- mouth-corner lift: how far the mouth corners (48, 54) sit above the lips' middle (51, 57), along the face's own
  up axis (perpendicular to the eye line, so a tilted head reads the same); larger = a smile. Neutral faces read
  ~0.07-0.10, the smiling astronaut 0.17. The smile lift takes the upper lip's middle alone (51), so an opening
  mouth does not read as a smile (the expression follower's measure).
- head pose, two ways: :func:`head_pose` (fast 2-D ratios: roll = eye-line angle, yaw = asin of the nose tip's
  offset from the jaw's middle, pitch = where the nose tip sits between eye line 0 and mouth 1), which the coverage
  meter bins; :func:`head_pose_degrees`, yaw/pitch/roll in degrees from a perspective-n-point solve (OpenCV's
  solvePnP) of 24 rigid points against a 3-D template of a frontal face, which `swapcam eval` reports.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

LEFT_EYE = (36, 37, 38, 39, 40, 41)
RIGHT_EYE = (42, 43, 44, 45, 46, 47)
OUTER_LIPS = tuple(range(48, 60))
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
MOUTH_CORNERS = (48, 54)
LIP_MIDDLE = (51, 57)  # upper and lower outer lip, middle
UPPER_LIP_MIDDLE = (51,)
NOSE_TIP = 30
JAW_LEFT, JAW_RIGHT = 0, 16


def eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lm[list(LEFT_EYE)].mean(axis=0), lm[list(RIGHT_EYE)].mean(axis=0)


def eye_distance(lm: np.ndarray) -> float:
    left, right = eye_centres(lm)
    return float(np.linalg.norm(left - right))


def mouth_openness(lm: np.ndarray) -> float:
    """Mean inner-lip gap over the eye-centre distance (0 closed, ~0.3-0.5 wide open)."""
    gap = float(np.mean([np.linalg.norm(lm[a] - lm[b]) for a, b in INNER_LIP_PAIRS]))
    return gap / (eye_distance(lm) + 1e-6)


def eye_aspect_ratio(lm: np.ndarray) -> float:
    """Eye aspect ratio (Soukupova and Cech 2016), both eyes averaged: ~0.3 open, < 0.1 shut."""

    def ear(idx: tuple[int, ...]) -> float:
        p = lm[list(idx)]
        vertical = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
        return float(vertical / (2.0 * np.linalg.norm(p[0] - p[3]) + 1e-6))

    return 0.5 * (ear(LEFT_EYE) + ear(RIGHT_EYE))


def face_axes(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(across, down): unit vectors along the eye line (left eye -> right eye) and perpendicular to it, pointing
    from the eyes towards the mouth (image y grows downwards)."""
    left, right = eye_centres(np.asarray(lm, np.float64))
    across = (right - left) / (np.linalg.norm(right - left) + 1e-9)
    return across, np.array([-across[1], across[0]])


def _corners_above(lm: np.ndarray, reference: tuple[int, ...]) -> float:
    """How far the mouth corners sit above the mean of the ``reference`` points, along the face's up axis, in eye
    distances."""
    lm = np.asarray(lm, np.float64)
    _, down = face_axes(lm)
    middle = lm[list(reference)].mean(axis=0) @ down
    corners = lm[list(MOUTH_CORNERS)].mean(axis=0) @ down
    return float((middle - corners) / (eye_distance(lm) + 1e-6))


def mouth_corner_lift(lm: np.ndarray) -> float:
    """How far the mouth corners sit above the lips' middle, along the face's up axis, in eye distances."""
    return _corners_above(lm, LIP_MIDDLE)


def smile_lift(lm: np.ndarray) -> float:
    """How far the mouth corners sit above the upper lip's middle (outer): a smile's measure that an opening mouth
    leaves alone (:func:`mouth_corner_lift` takes both lips' middle, which drops with the lower lip as the mouth
    opens). The expression follower's measure of a smile."""
    return _corners_above(lm, UPPER_LIP_MIDDLE)


def mouth_width(lm: np.ndarray) -> float:
    """Corner-to-corner mouth width in eye distances (a smile widens the mouth)."""
    lm = np.asarray(lm, np.float64)
    return float(np.linalg.norm(lm[MOUTH_CORNERS[1]] - lm[MOUTH_CORNERS[0]]) / (eye_distance(lm) + 1e-6))


def head_pose(lm: np.ndarray) -> tuple[float, float, float]:
    """(yaw degrees, pitch ratio, roll degrees) from 68 landmarks by 2-D ratios; see the module doc."""
    lm = np.asarray(lm, np.float64)
    left, right = eye_centres(lm)
    dx, dy = right - left
    roll = math.degrees(math.atan2(dy, dx))
    # undo the roll about the eyes' middle, so yaw and pitch are read along the face's own axes
    c, s = math.cos(-math.radians(roll)), math.sin(-math.radians(roll))
    centre = (left + right) / 2
    pts = (lm - centre) @ np.array([[c, s], [-s, c]], np.float64)
    jaw_mid = (pts[JAW_LEFT] + pts[JAW_RIGHT]) / 2
    half_width = abs(pts[JAW_RIGHT, 0] - pts[JAW_LEFT, 0]) / 2 + 1e-6
    yaw = math.degrees(math.asin(float(np.clip((pts[NOSE_TIP, 0] - jaw_mid[0]) / half_width, -1, 1))))
    mouth_y = (pts[MOUTH_CORNERS[0], 1] + pts[MOUTH_CORNERS[1], 1]) / 2
    pitch = float(pts[NOSE_TIP, 1] / (mouth_y + 1e-6))
    return yaw, pitch, roll


# ------------------------------------------------------------------------------------------------ pose in degrees
# Rigid points for the pose solve: brows' inner ends, nose bridge and base, eye corners, mouth corners and the
# upper lip's middle. Left out: the jaw (FaceMesh's oval runs outside the iBUG jaw), the lids, the lower lip and the
# chin (they move with blinks and speech).
POSE_POINTS = (19, 20, 21, 22, 23, 24, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45, 48, 50, 51, 52, 54)
# Those points on a frontal face in 3-D, in OpenCV's camera axes (x right, y down, z away from the viewer), scaled to
# 9 cm between the outer eye corners: FaceMesh's 3-D output on the two sample portraits, each made left-right
# symmetric and turned frontal (eye line along x, eyes-to-mouth along y), averaged. tests/test_pose.py derives it
# again from mediapipe and checks these numbers.
POSE_TEMPLATE = np.array(
    [
        [-4.17, -3.91, 0.69], [-2.96, -3.93, 0.11], [-1.51, -3.81, -0.17], [1.51, -3.81, -0.17],
        [2.96, -3.93, 0.11], [4.17, -3.91, 0.69], [0.0, -2.2, -0.16], [0.0, -0.8, -1.16],
        [0.0, 0.51, -2.32], [0.0, 1.36, -2.58], [-1.43, 2.13, -0.45], [-0.84, 2.52, -0.65],
        [0.0, 2.57, -0.81], [0.84, 2.52, -0.65], [1.43, 2.13, -0.45], [-4.5, -1.71, 2.0],
        [-1.73, -1.59, 1.48], [1.73, -1.59, 1.48], [4.5, -1.71, 2.0], [-2.9, 4.13, 1.46],
        [-0.88, 3.59, -0.61], [0.0, 3.7, -0.69], [0.88, 3.59, -0.61], [2.9, 4.13, 1.46],
    ]
)  # fmt: skip


def head_pose_degrees(lm: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float, float] | None:
    """(yaw, pitch, roll) in degrees of the head in an image of ``image_size`` (width, height), or None when the
    solve fails. A pinhole camera with a focal length of the image width (a ~53 degree webcam) and the centre at
    the image's middle; the angles are against the line of sight to the face (:func:`line_of_sight`). Signs:
    yaw + = the nose turned towards the image's right, pitch + = the nose turned down, roll + = the head tilted
    clockwise in the image (as :func:`head_pose`'s roll)."""
    w, h = image_size
    camera = np.array([[w, 0, w / 2.0], [0, w, h / 2.0], [0, 0, 1.0]])
    image_points = np.ascontiguousarray(np.asarray(lm, np.float64)[list(POSE_POINTS)])
    ok, rvec, tvec = cv2.solvePnP(POSE_TEMPLATE, image_points, camera, None, flags=cv2.SOLVEPNP_EPNP)
    if not ok:
        return None
    ok, rvec, tvec = cv2.solvePnP(
        POSE_TEMPLATE, image_points, camera, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok or tvec[2, 0] <= 0:
        return None
    rotation, _ = cv2.Rodrigues(rvec)
    return euler_angles(line_of_sight(tvec.ravel()).T @ rotation)


def line_of_sight(translation: np.ndarray) -> np.ndarray:
    """The smallest rotation taking the camera's axis (0, 0, 1) to the ray towards ``translation``. A face off the
    image centre is seen from the side a little: its pose against the camera's axis changes as it merely moves
    across the frame, while its pose against this ray (what its picture shows) does not."""
    ray = translation / (np.linalg.norm(translation) + 1e-12)
    axis = np.cross([0.0, 0.0, 1.0], ray)
    sin, cos = float(np.linalg.norm(axis)), float(ray[2])
    if sin < 1e-9:
        return np.eye(3)
    rotation, _ = cv2.Rodrigues(axis / sin * math.atan2(sin, cos))
    return rotation


def euler_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of a face rotation R = Rz(roll) Ry(yaw) Rx(pitch) in camera axes, signed as
    :func:`head_pose_degrees` says."""
    yaw = -math.degrees(math.asin(float(np.clip(-rotation[2, 0], -1.0, 1.0))))
    pitch = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return yaw, pitch, roll
