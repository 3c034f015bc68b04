"""The per-frame processor of the live pipeline: landmarks -> smooth -> align -> swap -> colour -> compose -> overlay.

``FaceSwapProcessor`` is synchronous and per stream (tracking state, smoothing filters): ``process(image)`` does one
frame. Its two halves, ``find_faces`` (landmarks + One Euro) and ``render`` (align, swap, colour, compose, overlay),
are what :mod:`realtime.runner` puts in separate threads. Build one with :func:`realtime.builder.create_processor`,
which also warms it up. Compositing per face: the blend mask and the colour-transfer parameters are smoothed
over time per tracked face (realtime.temporal), the swap's eyelids follow the camera's (realtime.eyes), and the
camera's own mouth fades back in as it opens (realtime.mouth).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from models.contract import DFM_DEFAULT_MORPH
from realtime import overlay
from realtime.align import align, transform_points
from realtime.colour import COLOUR_MODES, ColourModel, colour_model
from realtime.compose import BLEND_MODES, blend_mask, paste_back
from realtime.errors import SwapcamError
from realtime.eyes import EYES_MODES, EyeFollower, close_eyes
from realtime.follow import drawn_expression, follow_expression, observe, resting_openness
from realtime.landmarks.measures import mouth_openness
from realtime.landmarks.smoothing import FaceSmoother
from realtime.mouth import MOUTH_MODES, MouthGate, paste_camera_mouth
from realtime.occlusion import (
    HAND_MODES,
    OCCLUSION_MODES,
    HandFinder,
    face_visibility,
    fade_out,
    mouth_seen,
    near_box,
)
from realtime.recentre import forget_codes, recentred_swap
from realtime.selection import FaceSelector, parse_faces
from realtime.sharpness import match_sharpness
from realtime.temporal import MAX_WEIGHT, TemporalSmoother
from realtime.tracking import FaceTracker, track_faces
from realtime.types import Face, Image, check_image
from realtime.upscale import SHARPEN_MODES, make_sharpener, scale_mask, scale_matrix

# identity re-centring folds only resting frames into a face's mean code (realtime.follow.observe says which).
# Measured off (README "Expression"): smile kept +0.03 on the Grace Hopper clip, within noise; carphone eyes r -0.06
RECENTRE_RESTING_ONLY = False

STAGES = (
    "landmarks",
    "smooth",
    "hands",
    "align",
    "swap",
    "expression",
    "occlusion",
    "colour",
    "sharpen",
    "compose",
    "mouth",
    "overlay",
)


@dataclass
class PipelineOptions:
    """Per-stream options of the swap. Defaults suit a 640x480 webcam at 30 fps."""

    colour: str = "rct"  # one of realtime.colour.COLOUR_MODES
    max_faces: int = 1
    label: bool = False  # stamp the visible "synthetic video" label
    hud: bool = False  # fps + per-stage ms, top left
    smoothing: bool = True  # One Euro filter on the landmarks
    min_cutoff: float = 1.0  # One Euro: Hz at rest (lower = steadier, more lag)
    beta: float = 0.05  # One Euro: cutoff growth per px/s of speed (higher = less lag in motion)
    mouth: str = "auto"  # realtime.mouth.MOUTH_MODES: the camera's own mouth when open (auto), always, never
    coverage: float | None = None  # face framing of the crop fed to the model; None: the model's own (its metadata)
    morph: float = DFM_DEFAULT_MORPH  # DFMs with a morph_value:0 input (DeepFaceLive AMP): 0..1 towards the celebrity
    temporal: float = 0.3  # weight of the past in the colour statistics and blend mask per face (0 = per frame)
    eyes: str = "follow"  # realtime.eyes.EYES_MODES: the swap's lids close as far as the camera's (follow), or never
    blend: str = "feather"  # realtime.compose.BLEND_MODES: the seam at the face's edge
    sharpen: str = "match"  # realtime.upscale.SHARPEN_MODES: match = blur to the camera's sharpness; unsharp; espcn x2
    occlusion: str = "auto"  # realtime.occlusion.OCCLUSION_MODES: keep hands/objects in front of the face
    faces: str = "all"  # realtime.selection: which faces are swapped: all (up to max_faces), largest, N, match:IMAGE
    expression: float = 1.0  # realtime.follow: share of the camera's smile, lips and brows the swap takes on (0 = off)

    def validate(self) -> None:
        if self.colour not in COLOUR_MODES:
            raise SwapcamError(f"colour={self.colour!r}; choose from {', '.join(COLOUR_MODES)}")
        if isinstance(self.max_faces, bool) or not isinstance(self.max_faces, int) or not 1 <= self.max_faces <= 16:
            raise SwapcamError(f"max_faces={self.max_faces!r}, expected an integer in 1..16")
        if not self.min_cutoff > 0:
            raise SwapcamError(f"min_cutoff={self.min_cutoff!r}, expected > 0")
        if not self.beta >= 0:
            raise SwapcamError(f"beta={self.beta!r}, expected >= 0")
        if self.mouth not in MOUTH_MODES:
            raise SwapcamError(f"mouth={self.mouth!r}; choose from {', '.join(MOUTH_MODES)}")
        if self.coverage is not None and not 0.5 <= self.coverage <= 4.0:  # also rejects NaN
            raise SwapcamError(f"coverage={self.coverage!r}, expected a value in 0.5..4.0")
        if not 0.0 <= self.morph <= 1.0:
            raise SwapcamError(f"morph={self.morph!r}, expected a value in 0..1")
        if not 0.0 <= self.temporal <= MAX_WEIGHT:
            raise SwapcamError(f"temporal={self.temporal!r}, expected a value in 0..{MAX_WEIGHT}")
        if self.eyes not in EYES_MODES:
            raise SwapcamError(f"eyes={self.eyes!r}; choose from {', '.join(EYES_MODES)}")
        if self.blend not in BLEND_MODES:
            raise SwapcamError(f"blend={self.blend!r}; choose from {', '.join(BLEND_MODES)}")
        if self.sharpen not in SHARPEN_MODES:
            raise SwapcamError(f"sharpen={self.sharpen!r}; choose from {', '.join(SHARPEN_MODES)}")
        if not 0.0 <= self.expression <= 1.0:  # also rejects NaN
            raise SwapcamError(f"expression={self.expression!r}, expected a value in 0..1")
        if self.occlusion not in OCCLUSION_MODES:
            raise SwapcamError(f"occlusion={self.occlusion!r}; choose from {', '.join(OCCLUSION_MODES)}")
        parse_faces(self.faces)


class FaceSwapProcessor:
    """Swap every face (up to ``max_faces``) of a stream's frames. One instance per stream; ``close()`` idempotent.

    ``swapper`` is a :class:`realtime.swapper.Swapper` (shared between streams is fine); ``detector`` any
    LandmarkDetector (default: mediapipe FaceMesh in tracking mode, owned and closed by this processor, created on
    first use). Construction is cheap; :meth:`warmup` does the slow first-time work.
    """

    def __init__(self, swapper, options: PipelineOptions | None = None, detector=None) -> None:
        self.options = options or PipelineOptions()
        self.options.validate()
        self._tracker = FaceTracker()  # realtime.tracking: which face is which, for every per-face stage
        self._smoother = FaceSmoother(self.options.min_cutoff, self.options.beta)
        self._mouth = MouthGate(self.options.mouth)
        self._temporal = TemporalSmoother(self.options.temporal)
        self._sharpeners: dict[str, tuple] = {}  # mode -> (sharpen, scale), built on first use (espcn loads a model)
        self._hands = HandFinder()  # mediapipe's hand landmarker, loaded when occlusion by hands is first on
        self._drawn_detector: Any = None  # static face mesh for the drawn face's rest (first use: a face's first frame)
        self.reconfigure(swapper, self.options)
        self._owns_detector = detector is None
        self._detector = detector
        self._last_render: float | None = None
        self._fps: float | None = None
        self._closed = False
        self.last_timings: dict[str, float] = {}
        self.last_faces: list[Face] = []
        # (blend mask in crop space, crop matrix) of each face pasted into the last rendered frame (for measuring)
        self.last_pastes: list[tuple[np.ndarray, np.ndarray]] = []

    def reconfigure(self, swapper=None, options: PipelineOptions | None = None) -> None:
        """Switch the model and/or the options between two frames, keeping the landmark tracker and smoothing
        state (no re-detection). max_faces is fixed at construction (the tracker is built for it).

        Transactional: everything new is validated and built first (a sharpener that loads a model, a new model's
        size and framing), then swapped in; when anything raises, the processor is exactly as it was and the caller
        says so (realtime.slot.PendingChanges). Only what changed is rebuilt: an options message that changes the
        label keeps the colour model, the mouth gate, the sharpeners and every face's state. A new model is not
        warmed here (this is the frame thread): whoever loads it warms it (realtime.builder.warm_up)."""
        first = not hasattr(self, "swapper")  # from __init__: nothing to keep yet
        new = self.options if options is None else options
        if options is not None:
            options.validate()
            if not first and options.max_faces != self.options.max_faces:
                raise SwapcamError("max_faces cannot change on a running processor")
        # (another colour mode's or model size's history has another shape: temporal.ema starts it afresh)
        colour = colour_model(new.colour) if first or new.colour != self.options.colour else self._colour
        mouth = MouthGate(new.mouth) if first or self._mouth.mode != new.mouth else self._mouth
        sharpener = None if new.sharpen in self._sharpeners else make_sharpener(new.sharpen)
        # which faces are swapped (match: reads its reference photo; the landmarks thread reads self._selector)
        selector = FaceSelector(new.faces, new.max_faces) if first or new.faces != self.options.faces else None
        model = self.swapper if swapper is None else swapper
        size = int(model.info.size)
        coverage = float(model.info.coverage if new.coverage is None else new.coverage)
        # -- nothing below raises: swap it all in
        if swapper is not None and not first and swapper is not self.swapper:
            forget_codes([t.state for t in self._temporal.tracks])  # another encoder: another code space
            for track in self._temporal.tracks:  # ... and another model's own expression, measured again
                track.state.expression_drawn = track.state.expression_drawn_open = None
        if sharpener is not None:
            self._sharpeners[new.sharpen] = sharpener
        self.options, self.size, self.coverage, self._mouth = new, size, coverage, mouth
        self.swapper: Any = model
        self._colour: ColourModel = colour
        if selector is not None:
            previous, self._selector = getattr(self, "_selector", None), selector
            if previous is not None:
                previous.close()
        self._temporal.weight = new.temporal
        self._smoother.min_cutoff, self._smoother.beta = new.min_cutoff, new.beta

    @property
    def detector(self):
        """The landmark detector; the default one is created on first use (normally by :meth:`warmup`)."""
        if self._detector is None:
            if self._closed:
                raise RuntimeError("FaceSwapProcessor is closed")
            from realtime.landmarks import create_detector

            # as many faces as the selection needs to choose from (realtime.selection: max-faces with --faces all)
            self._detector = create_detector("mediapipe", mode="tracking", max_faces=self._selector.search)
        return self._detector

    def warmup(self) -> None:
        """The slow first-time work, done before the first real frame: the detector's warm-up (graph start, first
        face) and one inference on a blank batch (onnxruntime's first run allocates and would stall frame 1)."""
        self.detector.warmup()
        # the drawn face's rest is read on each face's first frame (realtime.follow): its face mesh is started here
        # even at --expression 0, since the strength can be raised live (keys, page) and a start then stalls a frame
        self._drawn_openness(np.zeros((self.size, self.size, 3), np.uint8))
        if self.options.occlusion in HAND_MODES:  # the hand graph's first run is slow too
            self._hands.find(np.zeros((64, 64, 3), np.uint8), True)
            self._hands.reset()
        blank = np.zeros((self.size, self.size, 3), np.uint8)
        self.swapper.swap([blank] * self.options.max_faces, morph=self.options.morph)

    # -- landmarks half -------------------------------------------------------------------------------------
    def find_faces(self, image: Image, t: float | None = None, timings: dict[str, float] | None = None) -> list[Face]:
        """Landmarks (tracking mode) -> the faces to swap (realtime.selection, ``options.faces``) -> One Euro
        smoothing. ``t``: the frame's time in seconds (for the filter). Faces not selected are not returned: they
        are left as the camera shows them."""
        if self._closed:
            raise RuntimeError("FaceSwapProcessor is closed")
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        selector = self._selector
        found = getattr(self._detector, "max_faces", selector.search)  # faces the detector looks for
        if self._owns_detector and self._detector is not None and found < selector.search:
            # a live switch (all -> largest) needs more faces to choose from: a new graph, started in this thread
            # on the next line (~0.2 s once; tracking starts over). It grows, never shrinks.
            self._detector.close()
            self._detector = None
        faces = selector.select(image, self.detector.detect(image), t0 if t is None else float(t))
        t1 = time.perf_counter()
        timings["landmarks"] = (t1 - t0) * 1e3
        now = t1 if t is None else float(t)
        faces = track_faces(self._tracker, faces, now)  # every face's track id: its state in every stage
        if self.options.smoothing:
            faces = self._smoother.smooth(faces, now)
        t2 = time.perf_counter()
        timings["smooth"] = (t2 - t1) * 1e3
        if self.options.occlusion in HAND_MODES:
            hands = self._hands.find(image, bool(faces))
            for face in faces:
                face.hands = near_box(hands, face.bbox)
        timings["hands"] = (time.perf_counter() - t2) * 1e3
        return faces

    # -- swap half --------------------------------------------------------------------------------------------
    def _crop(self, image: Image, face: Face) -> tuple[Image, np.ndarray, np.ndarray] | None:
        pts = np.asarray(face.landmarks, dtype=np.float64)
        try:
            crop, matrix = align(image, pts, self.size, self.coverage)
        except ValueError:  # not 68 finite points, or degenerate (all equal): no face to swap in this frame
            return None
        return crop, matrix, transform_points(pts, matrix)

    def render(
        self, image: Image, faces: list[Face], timings: dict[str, float] | None = None, t: float | None = None
    ) -> Image:
        """Swap ``faces`` into a copy of ``image`` (the input is never modified). No face: ``image`` itself.
        ``t``: the frame's time in seconds (how long a face has been missing; default the clock)."""
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        cropped = [(f, c) for f, c in ((f, self._crop(image, f)) for f in faces) if c is not None]
        crops = [c for _, c in cropped]
        t1 = time.perf_counter()
        timings["align"] = (t1 - t0) * 1e3
        out = image
        colour_ms = sharpen_ms = compose_ms = occlusion_ms = expression_ms = 0.0
        self.last_pastes = []
        if crops:
            ids = [f.track_id for f, _ in cropped]
            if None in ids:  # faces from elsewhere (not find_faces): tracked by their crops
                tracks = self._temporal.match([c[1] for c in crops], self.size, t)
            else:
                tracks = self._temporal.match_ids([i for i in ids if i is not None], t)
            occlusion = self.options.occlusion
            # what hides each face this frame (it needs only the camera's crop): before the expression neutral, which
            # leaves out a mouth that a hand hides
            t_match = time.perf_counter()
            visibility = []
            for (camera_face, (crop, matrix, crop_pts)), track in zip(cropped, tracks, strict=True):
                visibility.append(face_visibility(occlusion, track.state, crop, crop_pts, matrix, camera_face.hands))
            t_vis = time.perf_counter()
            seen = [mouth_seen(track.state) for track in tracks]
            resting = [observe(t.state, c[2], seen=m) for t, c, m in zip(tracks, crops, seen, strict=True)]
            t_obs = time.perf_counter()
            occlusion_ms, expression_ms = (t_vis - t_match) * 1e3, (t_obs - t_vis) * 1e3
            swapped, learned = recentred_swap(
                self.swapper,
                [c[0] for c in crops],
                [t.state for t in tracks],
                self.options.morph,
                resting if RECENTRE_RESTING_ONLY else None,
            )
            t2 = time.perf_counter()
            timings["swap"] = (t_match - t1 + t2 - t_obs) * 1e3
            out = image.copy()
            follow_eyes = self.options.eyes == "follow"
            camera_mouths = []
            sharpen, scale = self._sharpeners[self.options.sharpen]
            # once per face (its first frame with the mouth in view), all new faces in one batch: how much of an
            # expression the model draws itself, which the follower does not add again (realtime.follow)
            tp = time.perf_counter()
            which = [
                i
                for i, (t, m) in enumerate(zip(tracks, seen, strict=True))
                if self.options.expression > 0 and m and t.state.expression_drawn is None
            ]
            if which:
                drawn = drawn_expression(
                    self.swapper, [crops[i][0] for i in which], [crops[i][2] for i in which], self.options.morph
                )
                for i, value in zip(which, drawn, strict=True):
                    tracks[i].state.expression_drawn = value
            probed = {id(tracks[i]) for i in which}
            expression_ms += (time.perf_counter() - tp) * 1e3
            for (camera_face, (crop, matrix, crop_pts)), face, mask_l, track, (visible, presence) in zip(
                cropped, swapped, learned, tracks, visibility, strict=True
            ):
                ta = time.perf_counter()
                strength = self.options.expression
                if id(track) in probed:  # ... and how far apart it draws the lips (the face as swapped this frame)
                    track.state.expression_drawn_open = self._drawn_openness(face)
                strength *= 1.0 - (track.state.expression_drawn or 0.0)
                face = follow_expression(face, crop_pts, track.state, strength)
                tv = time.perf_counter()
                expression_ms += (tv - ta) * 1e3
                ta = tv
                if visible is not None:
                    mask_l = mask_l * visible
                mask = self._temporal.mask(track, blend_mask(mask_l, crop_pts))
                if follow_eyes:
                    face = close_eyes(face, crop_pts, EyeFollower.closure(track.state, camera_face.measured))
                tb = time.perf_counter()
                params = self._temporal.colour(track, self._colour.fit(face, crop, mask))
                if params is not None:
                    face = self._colour.apply(face, params)
                tc = time.perf_counter()
                if presence < 1.0:  # mostly hidden, or just found: fading between the camera's face and the swap
                    mask = mask * np.float32(presence)
                self.last_pastes.append((mask, matrix))
                if self.options.sharpen == "match":
                    face = match_sharpness(face, crop, mask, track.state, self.options.temporal)
                face = sharpen(face)
                te = time.perf_counter()
                if scale != 1:
                    mask, matrix = scale_mask(mask, scale), scale_matrix(matrix, scale)
                paste_back(out, face, mask, matrix, blend=self.options.blend)
                shown = self._mouth.amount(camera_face.landmarks, resting_openness(track.state))
                if shown > 0:
                    camera_mouths.append((camera_face.landmarks, shown))
                td = time.perf_counter()
                colour_ms += (tc - tb) * 1e3
                sharpen_ms += (te - tc) * 1e3
                compose_ms += (tb - ta + td - te) * 1e3
            tm = time.perf_counter()
            for landmarks, amount in camera_mouths:  # after every face is pasted: a box may overlap another's mouth
                paste_camera_mouth(out, image, landmarks, amount)
            timings["mouth"] = (time.perf_counter() - tm) * 1e3
        else:
            timings["swap"] = timings["mouth"] = 0.0
            self._temporal.match_ids([], t)  # no face: its track is kept a moment (realtime.tracking.MAX_AGE_S)
        for track in self._temporal.lost:  # a face not seen this frame: the swap fades back in when it returns
            fade_out(track.state)
        timings["occlusion"] = occlusion_ms
        timings["expression"] = expression_ms
        timings["colour"] = colour_ms
        timings["sharpen"] = sharpen_ms
        timings["compose"] = compose_ms
        t3 = time.perf_counter()
        if self._last_render is not None:
            dt = max(t3 - self._last_render, 1e-6)
            self._fps = 1.0 / dt if self._fps is None else 0.9 * self._fps + 0.1 / dt
        self._last_render = t3
        if self.options.hud or self.options.label:
            if out is image:
                out = image.copy()
            if self.options.hud:
                o = self.options
                switches = (
                    f"mouth {o.mouth}  eyes {o.eyes}  sharpen {o.sharpen}  blend {o.blend}  colour {o.colour}  "
                    f"occlusion {o.occlusion}  expression {o.expression:g}"
                )
                stage_ms = {k: v for k, v in timings.items() if k in STAGES}
                overlay.draw_hud(out, self._fps, stage_ms, len(faces), switches)
            if self.options.label:
                overlay.draw_label(out)
        timings["overlay"] = (time.perf_counter() - t3) * 1e3
        return out

    def process(self, image: Image, t: float | None = None) -> Image:
        """One frame, synchronously: landmarks -> smooth -> align -> swap -> colour -> compose -> overlay."""
        check_image(image, "frame")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        faces = self.find_faces(image, t, timings)
        out = self.render(image, faces, timings, t)
        timings["total"] = (time.perf_counter() - t0) * 1e3
        self.last_faces = faces
        self.last_timings = timings
        return out

    def _drawn_openness(self, face: Image) -> float | None:
        """The inner-lip gap (eye distances) of the swapped crop ``face`` as drawn, by a static face mesh on it
        (twice its size): None when no face is found there."""
        if self._drawn_detector is None:
            from realtime.landmarks import create_detector

            self._drawn_detector = create_detector("mediapipe", mode="static", max_faces=1)
        big = cv2.resize(face, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
        found = self._drawn_detector.detect(big)
        return mouth_openness(found[0].landmarks) if found else None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._owns_detector and self._detector is not None:
                self._detector.close()
            if self._drawn_detector is not None:
                self._drawn_detector.close()
            self._hands.close()
            self._selector.close()

    def __enter__(self) -> FaceSwapProcessor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
