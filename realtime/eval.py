"""Measure how good a swap looks: run the live pipeline on every frame of a clip and measure camera vs output.

The output frames get their own landmark pass (a separate mediapipe FaceMesh in static mode, the same detector on
camera and output frames, independent of the pipeline's tracker), so what is measured is what a viewer sees.
Per clip, with the method of each:

- coverage: share of frames in which the pipeline swapped a face.
- expression: Pearson correlation over time, camera vs output, of mouth openness (mean inner-lip gap, 68-point
  61-67, 62-66, 63-65, over the eye-centre distance) and of eye openness (eye aspect ratio, both eyes averaged).
  Undefined (null) when the camera's own value barely moves (std < 0.02, landmark jitter): nothing to follow.
- pose: yaw, pitch, roll from the landmarks, camera vs output: roll = eye-line angle (degrees); yaw = asin of the
  nose tip's offset from the jaw's middle over half the jaw width (degrees); pitch = where the nose tip sits between
  the eye line (0) and the mouth (1), a ratio. Correlation and median absolute error per axis.
- identity: both faces aligned to the model's crop (pose and scale removed), blurred grey levels z-normalised
  (brightness and contrast removed); d = mean |z_x - z_y| inside both landmark hulls. Score = (d(out, camera) -
  d(out, B)) / d(camera, B): about -1 when the output is still the camera's person, +1 when it is B's reference.
- reconstruction (meaningful when the source IS identity B, so an a2b model should give it back): PSNR and SSIM,
  output vs camera, at frame resolution inside the camera face's landmark hull. ``--ceiling`` also runs the clip
  through a pass-through "model" of the same size and framing (it returns its input crop, mask all ones) with the
  same compositing: the best any model of that crop size can score here, since the crop's resolution and the
  paste-back resampling already lose detail the frame has.
- flicker: mean absolute grey-level change from the previous frame inside the face hull, output minus camera
  (0 = the swap adds no flicker of its own). Head motion counts too (a sharper face than the camera's, or one that
  lags the head, changes more when the head moves), so it is also given over the still half of the frames alone
  (``flicker_excess_still``: those whose camera landmarks moved less than the median, eyes-to-brows points): the
  jitter the swap adds when nothing moves.
- seams: where the blend mask is in its feathered band (0.05..0.95), the mean of the Sobel gradient magnitude the
  output adds over the camera's (only increases count; 0 = no edge added at the mask boundary).
- a contact sheet PNG (camera | output) of evenly spaced frames.

Example: `swapcam eval --source synthetic:grace_hopper --json eval.json --sheet eval.png` (the demo model, which
gives Grace Hopper back from a clip of Grace Hopper).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike

from realtime.align import alignment_matrix, invert_matrix, transform_points
from realtime.errors import SwapcamError
from realtime.eyes import eye_aspect_ratio as eye_openness
from realtime.mouth import LEFT_EYE, RIGHT_EYE, mouth_openness
from realtime.types import Image

log = logging.getLogger("swapcam.eval")

SHEET_ROWS = 6
SHEET_SIDE = 320  # width of each of the two columns of the contact sheet
# A camera signal that moves less than this (in its own units) has nothing to correlate with: openness ratios,
# degrees of yaw/roll, the pitch ratio.
MIN_MOTION_STD = {"mouth": 0.02, "eyes": 0.02, "yaw": 0.5, "pitch": 0.005, "roll": 0.5}

# 68-point (iBUG) indices; the eyes and the mouth measure live with the compositor's mouth gate (one definition)
NOSE_TIP = 30
JAW_LEFT, JAW_RIGHT = 0, 16
MOUTH_CORNERS = (48, 54)


# ------------------------------------------------------------------------------------------------ landmark measures
def _eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lm[list(LEFT_EYE)].mean(axis=0), lm[list(RIGHT_EYE)].mean(axis=0)


def head_pose(lm: np.ndarray) -> tuple[float, float, float]:
    """(yaw degrees, pitch ratio, roll degrees) from 68 landmarks; see the module doc for the method."""
    left, right = _eye_centres(lm)
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


def correlation(camera: ArrayLike, output: ArrayLike, min_std: float = 0.01) -> float | None:
    """Pearson r of two series; None when the camera series barely moves (std < ``min_std``: nothing to follow) or
    has < 5 samples. A series that moves on the camera side but not at all on the output side (frozen) scores 0."""
    a, b = np.asarray(camera, np.float64), np.asarray(output, np.float64)
    if a.size < 5 or a.std() < min_std:
        return None
    if b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


# ------------------------------------------------------------------------------------------------ image measures
def hull_region(landmarks: np.ndarray, shape: tuple[int, ...], erode_fraction: float = 0.0) -> np.ndarray:
    """Boolean mask of the landmarks' convex hull in an image of ``shape``, optionally eroded by a fraction of the
    hull's width (keeps measurements off the hair line and the background)."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks).astype(np.int32)), 1)
    if erode_fraction > 0:
        k = max(1, int(round(erode_fraction * float(np.ptp(landmarks[:, 0])))))
        mask = cv2.erode(mask, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    return mask.astype(bool)


def region_psnr(a: Image, b: Image, region: np.ndarray) -> float:
    diff = a[region].astype(np.float64) - b[region].astype(np.float64)
    mse = float(np.mean(diff * diff)) if diff.size else 0.0
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def region_ssim(a: Image, b: Image, region: np.ndarray) -> float:
    """Mean of skimage's SSIM map (grey, Gaussian window, the paper's constants) over the region's pixels."""
    from skimage.metrics import structural_similarity

    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return float("nan")
    pad = 6
    y0, y1 = max(0, ys.min() - pad), min(region.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(region.shape[1], xs.max() + pad + 1)
    ga = cv2.cvtColor(a[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.float64)
    gb = cv2.cvtColor(b[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.float64)
    _, smap = structural_similarity(
        ga, gb, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True
    )
    return float(smap[region[y0:y1, x0:x1]].mean())


def grey(image: Image) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def gradient_magnitude(image: Image) -> np.ndarray:
    g = grey(image)
    return cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))


def seam_excess(camera: Image, output: Image, alpha: np.ndarray) -> float | None:
    """Edges the swap adds in the blend mask's feathered band: mean of max(0, |grad out| - |grad camera|) over the
    band (Sobel, grey levels per pixel). Only added edges count: a blurrier output (less gradient) scores 0, not
    a negative number that would hide a seam elsewhere in the band."""
    band = (alpha > 0.05) & (alpha < 0.95)
    if band.sum() < 20:
        return None
    added = gradient_magnitude(output)[band] - gradient_magnitude(camera)[band]
    return float(np.maximum(added, 0.0).mean())


@dataclass
class IdentityReference:
    """Identity B as the metric sees it: its face aligned to the model's crop, blurred grey, and its hull there."""

    grey: np.ndarray
    hull: np.ndarray
    size: int
    coverage: float


def _aligned_grey(image: Image, landmarks: np.ndarray, size: int, coverage: float) -> tuple[np.ndarray, np.ndarray]:
    matrix = alignment_matrix(landmarks, size, coverage)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(grey(crop), (0, 0), max(1.0, size / 32.0))
    hull = hull_region(transform_points(landmarks, matrix), (size, size), erode_fraction=0.05)
    return blurred, hull


def identity_reference(image: Image, landmarks: np.ndarray, size: int, coverage: float) -> IdentityReference:
    blurred, hull = _aligned_grey(image, landmarks, size, coverage)
    return IdentityReference(blurred, hull, size, coverage)


def _z(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-6)


def identity_score(
    camera: Image, camera_lm: np.ndarray, output: Image, output_lm: np.ndarray, reference: IdentityReference
) -> float | None:
    """(d(out, camera) - d(out, B)) / d(camera, B); each face aligned with its own landmarks (pose removed)."""
    cam, cam_hull = _aligned_grey(camera, camera_lm, reference.size, reference.coverage)
    out, out_hull = _aligned_grey(output, output_lm, reference.size, reference.coverage)
    region = cam_hull & out_hull & reference.hull
    if region.sum() < 0.05 * reference.size**2:
        return None
    zc, zo, zb = _z(cam[region]), _z(out[region]), _z(reference.grey[region])
    d_cb = float(np.abs(zc - zb).mean())
    if d_cb < 1e-6:
        return None
    return (float(np.abs(zo - zc).mean()) - float(np.abs(zo - zb).mean())) / d_cb


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
    identity: float | None = None


@dataclass
class EvalResult:
    frames: list[FrameRecord] = field(default_factory=list)
    sheet_pairs: list[tuple[int, Image, Image]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        n = len(self.frames)
        both = [f for f in self.frames if f.camera_lm is not None and f.output_lm is not None]
        cam_mouth = [mouth_openness(f.camera_lm) for f in both]  # type: ignore[arg-type]
        out_mouth = [mouth_openness(f.output_lm) for f in both]  # type: ignore[arg-type]
        cam_eyes = [eye_openness(f.camera_lm) for f in both]  # type: ignore[arg-type]
        out_eyes = [eye_openness(f.output_lm) for f in both]  # type: ignore[arg-type]
        cam_pose = np.array([head_pose(f.camera_lm) for f in both]).reshape(-1, 3)  # type: ignore[arg-type]
        out_pose = np.array([head_pose(f.output_lm) for f in both]).reshape(-1, 3)  # type: ignore[arg-type]
        pose = {}
        for k, axis in enumerate(("yaw", "pitch", "roll")):
            pose[axis] = {
                "corr": _round(correlation(cam_pose[:, k], out_pose[:, k], MIN_MOTION_STD[axis])),
                "median_abs_error": _round(
                    float(np.median(np.abs(cam_pose[:, k] - out_pose[:, k]))) if len(both) else None
                ),
                "unit": "ratio" if axis == "pitch" else "degrees",
            }

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
            "pose": pose,
            "identity_towards_b": stat([f.identity for f in self.frames], np.median),
            "reconstruction": {
                "psnr_db": stat([f.psnr for f in self.frames]),
                "ssim": stat([f.ssim for f in self.frames]),
            },
            "flicker_excess": stat([f.flicker for f in self.frames]),
            "flicker_excess_still": self.still_flicker(),
            "seam_excess": stat([f.seam for f in self.frames]),
        }

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


def paste_alpha(mask: np.ndarray, matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A blend mask the compositor used (crop space, see FaceSwapProcessor.last_pastes) in frame coordinates."""
    h, w = shape[:2]
    return cv2.warpAffine(mask.astype(np.float32), invert_matrix(matrix), (w, h), flags=cv2.INTER_LINEAR)


def evaluate(
    swapper,
    frames,
    options=None,
    reference: IdentityReference | None = None,
    n_frames: int | None = None,
    detector=None,
    sheet_rows: int = SHEET_ROWS,
    progress: bool = False,
) -> EvalResult:
    """Run the pipeline over ``frames`` (an iterable of BGR images) and measure every frame; see the module doc."""
    from realtime.builder import create_processor
    from realtime.landmarks import create_detector
    from realtime.pipeline import PipelineOptions

    options = options or PipelineOptions()
    own_detector = detector is None
    if detector is None:
        detector = create_detector("mediapipe", mode="static", max_faces=1)
        detector.warmup()
    result = EvalResult()
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
def load_reference(spec: str | None, swapper, detector) -> tuple[IdentityReference | None, str | None]:
    """Identity B from --ref-b (an image, or a faceset folder: its first face), else from the model's metadata when
    B is one of the shipped sample portraits. (None, None) when there is nothing to compare with."""
    from realtime.media import read_image
    from realtime.samples import PORTRAITS, portrait

    size, coverage = int(swapper.info.size), float(swapper.info.coverage)
    image: Image | None
    if spec is None:
        identities: Sequence[str] = getattr(swapper.info, "identities", None) or ()
        name = identities[1] if len(identities) > 1 else None
        if name not in PORTRAITS:
            return None, None
        image, where = portrait(name).image, f"sample portrait {name}"
    else:
        path = Path(spec)
        if path.is_dir():
            files = sorted(p for p in path.glob("*.png"))
            if not files:
                raise SwapcamError(f"--ref-b {path}: folder holds no .png face crops")
            path = files[0]
        image = read_image(path)
        if image is None:
            raise SwapcamError(f"--ref-b {spec}: not a readable image or faceset folder")
        where = str(path)
    faces = detector.detect(image)
    if not faces:
        raise SwapcamError(f"--ref-b: no face found in {where}")
    return identity_reference(image, faces[0].landmarks, size, coverage), where


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


# ------------------------------------------------------------------------------------------------ the command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from realtime.builder import add_model_arguments
    from realtime.live import add_compositing_arguments

    add_model_arguments(parser)
    parser.add_argument(
        "--source",
        default="synthetic:grace_hopper",
        help="the clip: a video file, an image, or 'synthetic[:astronaut|grace_hopper]' (the built-in "
        "camera-like clip; with the default demo model, synthetic:grace_hopper is identity B "
        "itself, so the a2b model must give it back: the self-reconstruction case)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        help="frames to evaluate; when left out, the whole video (90 for a synthetic clip)",
    )
    parser.add_argument(
        "--ref-b",
        default=None,
        help="identity B for the identity score: an image or a faceset folder (its first crop); when "
        "left out, the model's B identity if it is a shipped sample portrait, else no identity score",
    )
    add_compositing_arguments(parser)  # the pipeline's options, as `swapcam live` has them
    parser.add_argument("--width", type=int, default=640, help="synthetic clip width")
    parser.add_argument("--height", type=int, default=480, help="synthetic clip height")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    parser.add_argument(
        "--sheet", default=None, help="write a contact sheet PNG (camera | output, evenly spaced frames)"
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also run the clip through a pass-through model of the same crop size and framing (its input crop "
        "back, mask all ones) with the same compositing, and report its reconstruction PSNR/SSIM: the best any "
        "model of that size can score on this clip (twice the run time)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def format_report(summary: dict[str, Any]) -> str:
    def f(v: Any, fmt: str = "{:.3f}") -> str:
        return "n/a" if v is None else fmt.format(v)

    e, p, r = summary["expression"], summary["pose"], summary["reconstruction"]
    lines = [
        f"frames {summary['frames']}, coverage {f(summary['coverage'], '{:.1%}')}, "
        f"output face found {f(summary['output_face_found'], '{:.1%}')}",
        f"expression: mouth r {f(e['mouth_corr'])}, eyes r {f(e['eyes_corr'])}",
        "pose: "
        + ", ".join(f"{axis} r {f(v['corr'])} err {f(v['median_abs_error'], '{:.2f}')}" for axis, v in p.items()),
        f"identity towards B: {f(summary['identity_towards_b'])}",
        f"reconstruction: PSNR {f(r['psnr_db'], '{:.2f}')} dB, SSIM {f(r['ssim'])}"
        + (
            f" (ceiling at this crop size: {f(r['ceiling_psnr_db'], '{:.2f}')} dB, {f(r['ceiling_ssim'])})"
            if "ceiling_psnr_db" in r
            else ""
        ),
        f"flicker excess {f(summary['flicker_excess'], '{:.2f}')} grey levels "
        f"(head still: {f(summary.get('flicker_excess_still'), '{:.2f}')}), "
        f"seam excess {f(summary['seam_excess'], '{:.2f}')} grey levels/px",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from realtime.atomic import atomic_write_json, atomic_write_png
    from realtime.builder import open_swapper
    from realtime.landmarks import create_detector
    from realtime.live import compositing_options
    from realtime.pipeline import PipelineOptions

    if args.frames is not None and args.frames < 2:
        raise SwapcamError(f"--frames {args.frames}: expected >= 2")
    options = PipelineOptions(**compositing_options(args))
    options.validate()
    swapper = open_swapper(args.model, providers=args.providers, threads=args.threads)
    frames, total, described = source_frames(args.source, args.frames, args.width, args.height)
    detector = create_detector("mediapipe", mode="static", max_faces=1)
    try:
        detector.warmup()
        reference, reference_where = load_reference(args.ref_b, swapper, detector)
        t0 = time.perf_counter()
        result = evaluate(
            swapper,
            frames,
            options,
            reference,
            n_frames=total,
            detector=detector,
            progress=not args.no_progress,
        )
        ceiling = None
        if args.ceiling:
            frames, total, _ = source_frames(args.source, args.frames, args.width, args.height)
            ceiling = evaluate(
                PassThroughSwapper(swapper.info),
                frames,
                options,
                None,
                n_frames=total,
                detector=detector,
                sheet_rows=0,
                progress=not args.no_progress,
            ).summary()["reconstruction"]
        elapsed = time.perf_counter() - t0
    finally:
        detector.close()
    if not result.frames:
        raise SwapcamError(f"--source {args.source}: no frame could be read")
    summary = result.summary()
    if ceiling is not None:
        summary["reconstruction"].update(ceiling_psnr_db=ceiling["psnr_db"], ceiling_ssim=ceiling["ssim"])
    doc = {
        "eval": "swapcam quality",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {
            "path": str(swapper.path),
            "size": swapper.info.size,
            "preset": swapper.info.preset,
            "coverage": swapper.info.coverage,
            "identities": list(getattr(swapper.info, "identities", []) or []),
        },
        "source": described,
        "reference_b": reference_where,
        "options": compositing_options(args),
        "seconds": round(elapsed, 1),
        **summary,
    }
    print(f"swapcam eval: {described}, model {Path(swapper.path).name} ({swapper.info.size} px)")
    print(format_report(summary))
    if args.json:
        print(f"wrote {atomic_write_json(args.json, doc, indent=2)}")
    if args.sheet:
        title = f"{Path(swapper.path).name} on {described}"
        print(f"wrote {atomic_write_png(args.sheet, contact_sheet(result.sheet_pairs, title))}")
    return 0
