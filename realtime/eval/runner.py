"""The run behind `swapcam eval`: the live pipeline over every frame of a clip, each frame measured camera vs output
(see realtime.eval.cli for what each number means), plus the contact sheet and the clip / reference inputs."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.errors import SwapcamError
from realtime.eval.measures import (
    IdentityReference,
    correlation,
    grey,
    hull_region,
    identity_reference,
    identity_score,
    paste_alpha,
    region_psnr,
    region_ssim,
    seam_excess,
)
from realtime.eval.truth import OccluderPixels, Truth, occluder_pixels, truth_summary
from realtime.landmarks.measures import eye_aspect_ratio, head_pose_degrees, mouth_openness
from realtime.types import Image

log = logging.getLogger("swapcam.eval")

SHEET_ROWS = 6
SHEET_SIDE = 320  # width of each of the two columns of the contact sheet
# A camera signal that moves less than this (in its own units) has nothing to correlate with: openness ratios,
# degrees of yaw/pitch/roll.
MIN_MOTION_STD = {"mouth": 0.02, "eyes": 0.02, "yaw": 0.5, "pitch": 0.5, "roll": 0.5}


# ------------------------------------------------------------------------------------------------ the run
@dataclass
class FrameRecord:
    index: int
    swapped: bool
    camera_lm: np.ndarray | None
    output_lm: np.ndarray | None
    psnr: float | None = None
    ssim: float | None = None
    flicker: float | None = None
    seam: float | None = None
    identity: float | None = None  # the pixel score (realtime.eval.measures.identity_score)
    camera_descriptor: np.ndarray | None = None  # face-recognition descriptors (realtime.eval.identity)
    output_descriptor: np.ndarray | None = None
    occluder: OccluderPixels | None = None


@dataclass
class EvalResult:
    frames: list[FrameRecord] = field(default_factory=list)
    sheet_pairs: list[tuple[int, Image, Image]] = field(default_factory=list)
    frame_size: tuple[int, int] = (640, 480)  # (width, height), for the pose solve's camera
    reference_descriptor: np.ndarray | None = None  # identity B by the face-recognition network
    truth: Truth | None = None

    def pose(self) -> dict[str, Any]:
        """Yaw / pitch / roll in degrees (solvePnP, realtime.landmarks.measures.head_pose_degrees), camera vs
        output: correlation, median and p95 absolute error per axis."""
        pairs = []
        for f in self.frames:
            if f.camera_lm is None or f.output_lm is None:
                continue
            cam, out = head_pose_degrees(f.camera_lm, self.frame_size), head_pose_degrees(f.output_lm, self.frame_size)
            if cam is not None and out is not None:
                pairs.append((cam, out))
        cams = np.array([c for c, _ in pairs]).reshape(-1, 3)
        outs = np.array([o for _, o in pairs]).reshape(-1, 3)
        pose: dict[str, Any] = {
            "method": "solvePnP of 24 rigid landmarks against a 3-D face template",
            "unit": "degrees",
        }
        for k, axis in enumerate(("yaw", "pitch", "roll")):
            err = np.abs(cams[:, k] - outs[:, k])
            pose[axis] = {
                "corr": _round(correlation(cams[:, k], outs[:, k], MIN_MOTION_STD[axis])),
                "median_abs_error": _round(float(np.median(err)) if err.size else None, 2),
                "p95_abs_error": _round(float(np.percentile(err, 95)) if err.size else None, 2),
                "camera_range": _round(float(np.ptp(cams[:, k])) if err.size else None, 2),
            }
        return pose

    def identity(self) -> dict[str, Any] | None:
        if self.reference_descriptor is None:
            return None
        from realtime.eval.identity import identity_block

        return identity_block(
            [f.output_descriptor for f in self.frames],
            [f.camera_descriptor for f in self.frames],
            self.reference_descriptor,
        )

    def summary(self) -> dict[str, Any]:
        n = len(self.frames)
        both = [f for f in self.frames if f.camera_lm is not None and f.output_lm is not None]
        cam_mouth = [mouth_openness(f.camera_lm) for f in both]  # type: ignore[arg-type]
        out_mouth = [mouth_openness(f.output_lm) for f in both]  # type: ignore[arg-type]
        cam_eyes = [eye_aspect_ratio(f.camera_lm) for f in both]  # type: ignore[arg-type]
        out_eyes = [eye_aspect_ratio(f.output_lm) for f in both]  # type: ignore[arg-type]

        def stat(values: list[float | None], how=np.mean) -> float | None:
            vals = [v for v in values if v is not None and math.isfinite(v)]
            return _round(float(how(vals))) if vals else None

        return {
            "frames": n,
            "coverage": _round(sum(f.swapped for f in self.frames) / n if n else 0.0),
            "output_face_found": _round(len(both) / n if n else 0.0),
            "expression": {
                "mouth_corr": _round(correlation(cam_mouth, out_mouth, MIN_MOTION_STD["mouth"])),
                "eyes_corr": _round(correlation(cam_eyes, out_eyes, MIN_MOTION_STD["eyes"])),
                "camera_mouth_std": _round(float(np.std(cam_mouth)) if cam_mouth else None),
                "camera_eyes_std": _round(float(np.std(cam_eyes)) if cam_eyes else None),
            },
            "pose": self.pose(),
            "identity": self.identity(),
            "identity_towards_b": stat([f.identity for f in self.frames], np.median),
            "reconstruction": {
                "psnr_db": stat([f.psnr for f in self.frames]),
                "ssim": stat([f.ssim for f in self.frames]),
            },
            "flicker_excess": stat([f.flicker for f in self.frames]),
            "flicker_excess_still": self.still_flicker(),
            "seam_excess": stat([f.seam for f in self.frames]),
            **({"truth": self.truth_summary()} if self.truth is not None else {}),
        }

    def truth_summary(self) -> dict[str, Any]:
        assert self.truth is not None
        return truth_summary(
            self.truth,
            [f.camera_lm for f in self.frames],
            [f.output_lm for f in self.frames],
            [f.occluder for f in self.frames],
        )

    def still_flicker(self) -> float | None:
        """Mean flicker excess over the frames whose camera face moved less than the median since the last frame."""
        pairs = []
        for prev, cur in pairwise(self.frames):
            if cur.flicker is None or prev.camera_lm is None or cur.camera_lm is None:
                continue
            motion = np.linalg.norm(cur.camera_lm[17:48] - prev.camera_lm[17:48], axis=1).mean()
            pairs.append((float(motion), cur.flicker))
        if len(pairs) < 2:
            return None
        median = float(np.median([m for m, _ in pairs]))
        return _round(float(np.mean([f for m, f in pairs if m <= median])))


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


class PassThroughSwapper:
    """A perfect "model" for the reconstruction ceiling: the aligned crop comes back as it went in, mask all ones,
    with the size and framing of ``info`` (a real model's)."""

    recentres = False

    def __init__(self, info) -> None:
        self.info = info
        self.path = Path("pass-through")

    def swap(self, crops, morph: float = 0.75) -> tuple[list[Image], list[np.ndarray]]:
        return [np.ascontiguousarray(c) for c in crops], [np.ones(c.shape[:2], np.float32) for c in crops]


def evaluate(
    swapper,
    frames,
    options=None,
    reference: IdentityReference | None = None,
    n_frames: int | None = None,
    detector=None,
    sheet_rows: int = SHEET_ROWS,
    progress: bool = False,
    recognizer=None,
    reference_descriptor: np.ndarray | None = None,
    truth: Truth | None = None,
) -> EvalResult:
    """Run the pipeline over ``frames`` (an iterable of BGR images) and measure every frame (see realtime.eval.cli).
    ``recognizer`` (realtime.eval.identity.FaceRecognizer) with ``reference_descriptor``: identity by face
    recognition; ``truth``: a make-clip truth file's known expression / occluders."""
    from realtime.builder import create_processor
    from realtime.landmarks import create_detector
    from realtime.pipeline import PipelineOptions

    options = options or PipelineOptions()
    own_detector = detector is None
    if detector is None:
        detector = create_detector("mediapipe", mode="static", max_faces=1)
        detector.warmup()
    result = EvalResult(reference_descriptor=reference_descriptor if recognizer is not None else None, truth=truth)
    sheet_every = max(1, (n_frames or 0) // sheet_rows) if n_frames and sheet_rows else 1
    previous: tuple[Image, Image] | None = None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_frames, unit="frame", desc="eval", leave=False)
    try:
        with create_processor(swapper, options) as processor:
            for index, camera in enumerate(frames):
                output = processor.process(camera, index / 30.0)
                swapped = bool(processor.last_faces)
                cam_faces = detector.detect(camera)
                out_faces = detector.detect(output)
                rec = FrameRecord(
                    index,
                    swapped,
                    cam_faces[0].landmarks if cam_faces else None,
                    out_faces[0].landmarks if out_faces else None,
                )
                if index == 0:
                    result.frame_size = (camera.shape[1], camera.shape[0])
                if recognizer is not None and reference_descriptor is not None:
                    if rec.camera_lm is not None:
                        rec.camera_descriptor = recognizer.descriptor(camera, rec.camera_lm)
                    if rec.output_lm is not None:
                        rec.output_descriptor = recognizer.descriptor(output, rec.output_lm)
                if truth is not None and truth.masks is not None:
                    rec.occluder = occluder_pixels(truth, index, camera, output)
                if rec.camera_lm is not None:
                    region = hull_region(rec.camera_lm, camera.shape, erode_fraction=0.03)
                    if region.sum() >= 50:
                        rec.psnr = region_psnr(camera, output, region)
                        rec.ssim = region_ssim(camera, output, region)
                        if previous is not None:
                            g_out = np.abs(grey(output) - grey(previous[1]))[region].mean()
                            g_cam = np.abs(grey(camera) - grey(previous[0]))[region].mean()
                            rec.flicker = float(g_out - g_cam)
                    if processor.last_pastes:
                        rec.seam = seam_excess(camera, output, paste_alpha(*processor.last_pastes[0], camera.shape))
                    if reference is not None and rec.output_lm is not None:
                        rec.identity = identity_score(camera, rec.camera_lm, output, rec.output_lm, reference)
                result.frames.append(rec)
                if index % sheet_every == sheet_every // 2 and len(result.sheet_pairs) < sheet_rows:
                    result.sheet_pairs.append((index, camera.copy(), output.copy()))
                previous = (camera, output)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if own_detector:
            detector.close()
    return result


def contact_sheet(pairs: list[tuple[int, Image, Image]], title: str = "") -> Image:
    """Rows of camera | output, each column SHEET_SIDE px wide, with the frame index written on each row."""
    rows = []
    for index, camera, output in pairs:
        h, w = camera.shape[:2]
        scale = SHEET_SIDE / w
        size = (SHEET_SIDE, int(round(h * scale)))
        row = np.hstack(
            [
                cv2.resize(camera, size, interpolation=cv2.INTER_AREA),
                cv2.resize(output, size, interpolation=cv2.INTER_AREA),
            ]
        )
        cv2.putText(
            row, f"frame {index}: camera | output", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA
        )
        cv2.putText(
            row,
            f"frame {index}: camera | output",
            (6, 18),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        rows.append(row)
    if not rows:
        return np.zeros((32, 2 * SHEET_SIDE, 3), np.uint8)
    sheet = np.vstack(rows)
    if title:
        bar = np.full((28, sheet.shape[1], 3), 32, np.uint8)
        cv2.putText(bar, title[:90], (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        sheet = np.vstack([bar, sheet])
    return sheet


# ------------------------------------------------------------------------------------------------ inputs
@dataclass
class Reference:
    """Identity B as eval sees it: the pixel reference (first face) and the faces for a face-recognition
    descriptor (one image, or up to REFERENCE_FACES crops of a faceset folder), with where they came from."""

    pixels: IdentityReference
    faces: list[tuple[Image, np.ndarray]]  # (image, 68 landmarks)
    where: str


REFERENCE_FACES = 32


def load_reference(spec: str | None, swapper, detector) -> Reference | None:
    """Identity B from --ref-b (an image, or a faceset folder of .png crops), else from the model's metadata when B
    is one of the shipped sample portraits. None when there is nothing to compare with."""
    from realtime.media import read_image
    from realtime.samples import PORTRAITS, portrait

    size, coverage = int(swapper.info.size), float(swapper.info.coverage)
    images: list[tuple[Image | None, str]]
    if spec is None:
        identities: Sequence[str] = getattr(swapper.info, "identities", None) or ()
        name = identities[1] if len(identities) > 1 else None
        if name not in PORTRAITS:
            return None
        images, where = [(portrait(name).image, f"sample portrait {name}")], f"sample portrait {name}"
    else:
        path = Path(spec)
        files = [path]
        if path.is_dir():
            files = sorted(p for p in path.glob("*.png"))
            if not files:
                raise SwapcamError(f"--ref-b {path}: folder holds no .png face crops")
            picks = np.linspace(0, len(files) - 1, min(REFERENCE_FACES, len(files))).round().astype(int)
            files = [files[k] for k in sorted(set(picks.tolist()))]
        elif not path.is_file():
            raise SwapcamError(f"--ref-b {spec}: no such image or faceset folder")
        images, where = [(read_image(f), str(f)) for f in files], str(path)
    faces: list[tuple[Image, np.ndarray]] = []
    for image, name in images:
        if image is None:
            raise SwapcamError(f"--ref-b {name}: not a readable image")
        found = detector.detect(image)
        if found:
            faces.append((image, found[0].landmarks))
    if not faces:
        raise SwapcamError(f"--ref-b: no face found in {where}")
    return Reference(identity_reference(faces[0][0], faces[0][1], size, coverage), faces, where)


def source_frames(spec: str, max_frames: int | None, width: int, height: int):
    """(frames iterator, total frames or None, description) for a --source value: a video file, an image, or
    'synthetic[:portrait]' (the built-in clip, 90 frames unless --frames says otherwise)."""
    from realtime.sources import open_source

    text = str(spec)
    if text.isdigit() or text.startswith("/dev/video"):
        raise SwapcamError(f"--source {text}: eval needs a clip (video file, image or 'synthetic'), not a camera")
    n: int | None
    if text == "carphone":
        from realtime.samples import talking_clip

        n = max_frames if max_frames is not None else len(talking_clip((width, height))[0])
    else:
        n = max_frames if max_frames is not None else (90 if text.startswith("synthetic") else None)
    source = open_source(text, pace="fast", n_frames=n, width=width, height=height)
    total = n
    if total is None:
        from realtime.media import video_length

        total = video_length(text)

    def frames():
        try:
            count = 0
            while max_frames is None or count < max_frames:
                frame = source.read()
                if frame is None:
                    return
                count += 1
                yield frame.image
        finally:
            source.close()

    return frames(), total, source.describe()
