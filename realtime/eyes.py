"""The user's blinks and squints: the swapped face's eyelids close as far as the camera's do.

A decoder trained on a still portrait draws its eyes open whatever the camera shows (eye-openness correlation with
the camera was about 0 on real talking-head footage). The camera's landmarks say how open each frame's eyes are;
this stage closes the swapped face's upper lids by the same share with the landmark-driven lid warp of
realtime.expressions, on the aligned crop before paste-back (the swap is drawn along the camera's own landmarks, so
its eyes sit where the camera's are).

How closed: the eye aspect ratio (EAR) of the detector's own points of each frame (not the One Euro-smoothed ones the
paste uses: a blink is a fast motion of a few pixels, which that smoothing spreads over the next frames, so the swap's
lids stayed shut after the camera's opened), lightly smoothed itself (EAR_SMOOTHING), against the face's own "open"
baseline, a peak hold that decays slowly (people's open EAR differs: 0.25 .. 0.35), so closure = (baseline - EAR) /
(baseline x (1 - SHUT_RATIO)), 0 open .. 1 shut, with a dead zone for landmark jitter. SHUT_RATIO is what the landmark
tracker reports for a shut eye relative to the open one: mediapipe's mesh never closes its lid points fully (measured:
an eye painted shut reads 0.17 against 0.25 open in static mode and about 0.19 in the pipeline's tracking mode; a real
blink on the carphone clip 0.19-0.21 against 0.31). Lids are also painted over (skin colour, lash line) only past
PAINT_FROM: a blink, not a squint. Cost: a remap of the eye boxes of one 128 px crop, well under 1 ms, and nothing while
eyes are open.

Measured (``swapcam eval``, demo model): with the smoothed points (and a 0.08 dead zone) the carphone eyes r was
0.152; with the detector's own, EAR_SMOOTHING and a 0.2 dead zone 0.185 (flicker 0.40 either way), and the astronaut
self-reconstruction 30.84 -> 30.92 dB; the detector's own points with no smoothing at all and a 0.08 dead zone gave
0.178, but flicker 0.50 and 30.66 dB.
"""

from __future__ import annotations

import numpy as np

from realtime.expressions import expression_warp
from realtime.facestate import FaceState
from realtime.landmarks.measures import eye_aspect_ratio
from realtime.types import Image

EYES_MODES = ("follow", "swap")  # follow: the camera's blinks and squints; swap: the model's own eyes, always
SHUT_RATIO = 0.75  # EAR of a shut eye / EAR of the same eye open, as the landmark model measures them
BASELINE_DECAY = 0.002  # EAR per frame the open baseline sinks towards the current value (~0.06 per second at 30 fps)
DEAD_ZONE = 0.2  # closure (at SHUT_RATIO's span) below this is landmark jitter: leave the eyes alone
EAR_SMOOTHING = 0.5  # weight of the previous frames in the EAR (exponential; a blink still shows on its first frame)
PAINT_FROM = 0.6  # closure from which the lids are painted over too (a blink)
# Blinks that read shallow: behind glasses mediapipe's tracker reads a shut eye as only ~0.85 of the open one (Grace
# Hopper's drawn blinks: 0.211-0.215 against 0.256), so SHUT_RATIO's span closed the swap's lids half way and the
# blink did not read as one. A face's own blink depth is learned: a dip of the smoothed EAR below DIP_FROM x baseline
# that is over within BLINK_FRAMES and reaches BLINK_DEEPER is a blink (a squint or a look down lasts longer; eyes
# narrowing for a frame or two in speech read 0.92 on carphone), and its deepest ratio goes into a moving average
# (BLINK_DEPTH_RATE); the shut ratio used is that depth, kept within SHUT_RATIO .. SHALLOWEST_SHUT
# (a face that blinks deeper than SHUT_RATIO is treated as today; none shallower than SHALLOWEST_SHUT counts as shut).
DIP_FROM = 0.93
BLINK_FRAMES = 10  # frames at 30 fps: a blink takes 100-400 ms
BLINK_DEEPER = 0.9  # a dip must reach this ratio to be a blink
BLINK_DEPTH_RATE = 0.5
SHALLOWEST_SHUT = 0.87


class EyeFollower:
    """Per-face open baseline (kept in the face's temporal track state) -> closure of this frame."""

    @staticmethod
    def closure(state: FaceState, landmarks: np.ndarray) -> float:
        """0 (open) .. 1 (shut) for this frame's ``landmarks``: the detector's own (``Face.measured``)."""
        ear = eye_aspect_ratio(np.asarray(landmarks, np.float64))
        previous = state.eyes_ear
        if previous is not None:
            ear = EAR_SMOOTHING * previous + (1.0 - EAR_SMOOTHING) * ear
        state.eyes_ear = ear
        baseline = state.eyes_open_baseline
        baseline = ear if baseline is None else max(ear, baseline - BASELINE_DECAY)
        state.eyes_open_baseline = baseline
        shut_ratio = EyeFollower.shut_ratio(state, ear / baseline if baseline > 0 else 1.0)
        span = baseline * (1.0 - SHUT_RATIO)
        # the dead zone is a drop of the EAR (landmark jitter), the same whatever depth this face's blinks read
        if span <= 1e-3 or (baseline - ear) / span < DEAD_ZONE:
            return 0.0
        return float(np.clip((baseline - ear) / (baseline * (1.0 - shut_ratio)), 0.0, 1.0))

    @staticmethod
    def shut_ratio(state: FaceState, ratio: float) -> float:
        """The EAR ratio (shut / open) that counts as a shut eye for this face, after this frame's ``ratio`` (smoothed
        EAR / open baseline) is seen: SHUT_RATIO until the face has blinked, then its own blinks' depth (module
        notes)."""
        if ratio < DIP_FROM:
            state.eyes_dip = ratio if state.eyes_dip is None else min(state.eyes_dip, ratio)
            state.eyes_dip_frames += 1
        elif state.eyes_dip is not None:  # a dip just ended: a blink when it was short
            if state.eyes_dip_frames <= BLINK_FRAMES and state.eyes_dip <= BLINK_DEEPER:
                depth = state.eyes_blink_depth
                state.eyes_blink_depth = (
                    state.eyes_dip if depth is None else depth + BLINK_DEPTH_RATE * (state.eyes_dip - depth)
                )
            state.eyes_dip, state.eyes_dip_frames = None, 0
        if state.eyes_blink_depth is None:
            dip = state.eyes_dip
            if dip is not None and dip <= BLINK_DEEPER and 2 <= state.eyes_dip_frames <= BLINK_FRAMES:
                # a first blink under way (from its second frame: an onset is drawn half way, as the camera's):
                # until a blink has taught the face's depth, this dip's own so far
                return float(np.clip(dip, SHUT_RATIO, SHALLOWEST_SHUT))
            return SHUT_RATIO
        return float(np.clip(state.eyes_blink_depth, SHUT_RATIO, SHALLOWEST_SHUT))


def close_eyes(face: Image, crop_landmarks: np.ndarray, amount: float) -> Image:
    """The swapped crop with its upper lids closed by ``amount`` (0..1) along the camera's crop landmarks."""
    if amount <= 0:
        return face
    warped, _, _ = expression_warp(face, crop_landmarks, eyes=amount, paint_lids=amount >= PAINT_FROM)
    return warped
