"""What the live loop remembers about one tracked face: one typed object, one per face track.

Every per-face stage keeps its history here (the track lives in realtime.temporal, found by the face tracker's id,
realtime.tracking), so a face keeps all of it across a missed detection and loses all of it together when it is
lost for good or jumps (another person). One field (or one small object) per stage, named after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from realtime.follow import Neutral
    from realtime.occlusion import OcclusionState


@dataclass(eq=False)
class FaceState:
    # realtime.recentre: the face's running mean latent code, and how many frames are in it (capped)
    latent_mean: np.ndarray | None = None
    latent_count: int = 0
    # realtime.eyes: the eye aspect ratio (lightly smoothed) and the face's own "open" baseline (a decaying peak)
    eyes_ear: float | None = None
    eyes_open_baseline: float | None = None
    # ... how deep this face's blinks read (a moving average of past blinks' EAR / baseline), and the dip under way
    eyes_blink_depth: float | None = None
    eyes_dip: float | None = None
    eyes_dip_frames: int = 0
    # realtime.sharpness: the blur level that matches the camera (moving average)
    sharpness_level: float | None = None
    # realtime.occlusion: the face's learned look and how much of the swap is shown
    occlusion: OcclusionState | None = None
    # realtime.follow: the face's resting geometry (the expression follower's neutral), and how much of a smile the
    # model draws by itself for this face (0..1, measured once: realtime.follow.drawn_expression)
    expression: Neutral | None = None
    expression_drawn: float | None = None
    expression_drawn_open: float | None = None  # ... and the inner-lip gap the model draws at rest (eye distances)
