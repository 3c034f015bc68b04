"""Shared, session-scoped sample media: built once, used by every test module that asks for them.

Fixtures (all read-only by convention; copy before you draw on an image):
- ``astronaut``, ``grace_hopper``: :class:`realtime.samples.Portrait` (BGR uint8 image + provenance).
- ``portraits``: dict name -> Portrait.
- ``astronaut_clip``, ``grace_hopper_clip``: a 30-frame 640x480 synthetic clip of each portrait (seed 0, normal
  motion and noise; ~0.5 s each to build), with ground-truth transforms. Sampled at 10 fps, so 30 frames span 3 s
  of the clip's head motion (at 30 fps, 30 frames would barely move the head).
- ``clips``: dict name -> SyntheticClip.
- ``portrait_landmarks``: dict name -> 68x2 float32 mediapipe (static mode) landmarks of the still portrait.
"""

from __future__ import annotations

import numpy as np
import pytest

CLIP_FRAMES = 30
CLIP_SIZE = (640, 480)
CLIP_FPS = 10.0


@pytest.fixture(scope="session")
def portraits():
    from realtime.samples import PORTRAITS, portrait

    return {name: portrait(name) for name in PORTRAITS}


@pytest.fixture(scope="session")
def astronaut(portraits):
    return portraits["astronaut"]


@pytest.fixture(scope="session")
def grace_hopper(portraits):
    return portraits["grace_hopper"]


@pytest.fixture(scope="session")
def clips(portraits):
    from realtime.samples import synthetic_clip

    return {
        name: synthetic_clip(por, n_frames=CLIP_FRAMES, size=CLIP_SIZE, fps=CLIP_FPS, seed=0)
        for name, por in portraits.items()
    }


@pytest.fixture(scope="session")
def astronaut_clip(clips):
    return clips["astronaut"]


@pytest.fixture(scope="session")
def grace_hopper_clip(clips):
    return clips["grace_hopper"]


@pytest.fixture(scope="session")
def portrait_landmarks(portraits):
    from realtime.landmarks import create_detector

    detector = create_detector("mediapipe", mode="static")
    try:
        out = {}
        for name, por in portraits.items():
            faces = detector.detect(por.image)
            assert len(faces) == 1, f"expected one face in the {name} portrait, found {len(faces)}"
            out[name] = faces[0].landmarks.astype(np.float32)
        return out
    finally:
        detector.close()
