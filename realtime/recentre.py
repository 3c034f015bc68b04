"""Identity re-centring: move the camera person's latent code to where the drawn identity's decoder was trained.

The shared encoder does not only code pose and expression: measured on the demo model, the two training identities'
mean codes lie 48 apart while each identity's faces spread about 6-7 around their own mean, and a stranger's frames
(the carphone clip) sit 45-51 from both. A decoder only ever saw its own identity's region, so fed a code from
elsewhere it draws smears and blotches; fed ``code - mean(this person's codes) + mean(B's codes)`` it draws B, sharp,
with this frame's difference from the person's average (pose, expression) on top.

The camera person's mean is a running mean per tracked face (realtime.temporal keeps the track): a plain mean over
the first ``MEAN_FRAMES`` frames, then an exponential one with that time constant (5 s at 30 fps), so it settles
quickly on a new face and then follows slow changes (light, a new person after a jump, which starts a new track).
A track's first frame is encoded once with no shift to start its mean (one extra inference per new face).

The strength is the pipeline's ``morph`` (0 = the plain swap; 1 = the whole identity replaced; 0.75 by default, the
value DeepFaceLive gives its AMP models' morph), times an identity gate: a face whose mean code already lies within
GATE_FROM spreads of the target's mean (the model's ``latent_spread``, its training faces' RMS distance from their
mean) is the drawn identity itself and is left alone; from GATE_FULL spreads on it gets the full shift (linear in
between). Measured on the demo model (spreads: astronaut 6.0, Grace Hopper 6.5): the drawn person's own clip sits
0.8-0.85 spreads from the target, strangers 6.6-8.5 (the swap 7.6-8.1, the carphone man 6.6-8.5); without the gate
the own clip lost 0.5 dB (the clip's mean is not quite the faceset's, and the shift moved it there). Models without
a spread get no gate. Models exported before re-centring (no ``latent_shift`` input) and DFM files swap as they always
did.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from realtime.facestate import FaceState
from realtime.types import Image, Mask

MEAN_FRAMES = 150  # frames in the running mean of a face's code (then an EMA with this time constant)
# the identity gate, in spreads of the target identity: no shift up to GATE_FROM, the whole shift from GATE_FULL
GATE_FROM, GATE_FULL = 2.0, 3.0


def update_mean(state: FaceState, code: np.ndarray) -> np.ndarray:
    """Fold one frame's code into a track's running mean (kept in ``state``); returns the new mean."""
    count = min(state.latent_count + 1, MEAN_FRAMES)
    mean = state.latent_mean
    mean = code.astype(np.float64) if mean is None else mean + (code - mean) / count
    state.latent_mean, state.latent_count = mean, count
    return mean


def identity_gate(distance: float, spread: float) -> float:
    """0..1: how much of the re-centring shift a face gets whose mean code lies ``distance`` from the target's
    mean; 1 when ``spread`` (the target identity's) is unknown (0)."""
    if spread <= 0:
        return 1.0
    return float(np.clip((distance / spread - GATE_FROM) / (GATE_FULL - GATE_FROM), 0.0, 1.0))


def forget_codes(states: Sequence[FaceState]) -> None:
    """Drop the tracks' running mean codes: a new model (another encoder, maybe another code size) must start its
    own from the next frame (a hot swap, ``FaceSwapProcessor.reconfigure``)."""
    for state in states:
        state.latent_mean, state.latent_count = None, 0


def recentred_swap(
    swapper, crops: Sequence[Image], states: Sequence[FaceState], morph: float, fold: Sequence[bool] | None = None
) -> tuple[list[Image], list[Mask]]:
    """Swap ``crops`` (one per tracked face, ``states`` their tracks' state dicts). A re-centring model
    (``swapper.recentres``) gets each face's code shifted by ``morph`` x (the model's target mean - the face's
    running mean), and this frame's codes are folded into the means (only the faces whose ``fold`` is true, when
    given: a smile held for seconds would otherwise move into the mean and be taken away); any other model is the plain
    :meth:`Swapper.swap` with ``morph`` as its morph factor (a DFM's ``morph_value:0``), as is ``morph`` 0."""
    if not getattr(swapper, "recentres", False) or morph <= 0:
        return swapper.swap(crops, morph=morph)
    fresh = [s.latent_mean is None for s in states]
    if any(fresh):  # a new face: its first code starts its mean
        _, _, codes = swapper.swap_codes(crops, morph)
        for state, code, new in zip(states, codes, fresh, strict=True):
            if new:
                update_mean(state, code)
    target, spread = swapper.latent_target, getattr(swapper, "latent_spread", 0.0)
    gaps = [target - s.latent_mean for s in states]
    shifts = np.stack([morph * identity_gate(float(np.linalg.norm(g)), spread) * g for g in gaps]).astype(np.float32)
    faces, masks, codes = swapper.swap_codes(crops, morph, shifts)
    folds = [True] * len(states) if fold is None else fold
    for state, code, new, folded in zip(states, codes, fresh, folds, strict=True):
        if folded and not new:  # (a new face's code is already in its mean)
            update_mean(state, code)
    return faces, masks
