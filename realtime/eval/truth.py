"""Expression and occlusion against known truth: the clips of `swapcam make-clip --expressions / --occluders` come
with a truth JSON of what was drawn (the schedule of blinks, squint, mouth openings and smile; the drawn face's
landmarks; for occluders, a mask per frame of the pixels the occluder covers). Eval reads it with ``--truth``.

Each number, with its method:
- ``eyes_corr``: Pearson r over the frames of the output's eye aspect ratio (mediapipe, static mode, on the output
  frame) against the drawn eye openness (1 - lid closure). ``mouth_corr``: the output's mouth openness against the
  drawn lip gap. ``camera_*`` give the same for the camera frames: the ruler's own reading of the truth, the best the
  output can score.
- ``blink_recall``: share of the frames drawn shut (closure >= 0.8) in which the output's eyes read shut: its eye
  aspect ratio lies below its own median on the frames drawn open by more than half of the drop the camera shows
  between its open and shut frames, the drop taken relative to the open level (the camera's drop / its open median,
  times the output's open median). The face mesh reads a shut eye at a share of the open one that depends on the
  face (Grace Hopper's, behind glasses, at 0.76; the astronaut's at 0.63), so an absolute drop asks a drawn face with
  narrower eyes than the camera's to close further than it can: Grace Hopper's own photo with its eyes shut by
  make-clip counted 33 % of its shut frames against the astronaut clip's absolute line, 100 % against the relative
  one (benchmarks/blink_ruler_check.py). ``blink_recall_absolute`` keeps the absolute rule, for comparison.
- ``smile_kept``: (output's mouth-corner lift in the held-smile frames - in the neutral frames) / (the same for the
  camera), medians; 1 = the swap smiles as much as the camera, 0 = a neutral mouth on a smiling person.
- ``occluder_kept``: of the pixels an occluder covers inside the drawn face (the hull of the truth landmarks), the
  share whose output stays the camera's (no channel differs by more than KEEP_TOLERANCE grey levels), pooled over
  the frames; ``occluder_psnr_db``: PSNR of output vs camera over those pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realtime.errors import SwapcamError
from realtime.eval.measures import correlation, hull_region
from realtime.landmarks.measures import eye_aspect_ratio, mouth_corner_lift, mouth_openness
from realtime.types import Image

SHUT_FROM = 0.8  # drawn lid closure from which a frame counts as a shut eye
SMILE_FROM = 0.8  # drawn smile from which a frame counts as the held smile
NEUTRAL_BELOW = 0.02  # every drawn amount below this: a neutral frame
KEEP_TOLERANCE = 12  # grey levels per channel within which an output pixel is still the camera's
CLIPS = ("expressions", "occluders")


@dataclass
class Truth:
    clip: str
    frames: int
    size: tuple[int, int]  # (width, height)
    landmarks: np.ndarray  # N x 68 x 2, frame pixels
    schedule: dict[str, np.ndarray]  # eyes / mouth / smile, N each
    events: dict[str, list[tuple[int, int]]]
    masks: np.ndarray | None  # N x H x W uint8 0/1, occluder clips only
    path: Path

    def occluder_in_face(self, index: int) -> np.ndarray | None:
        """Boolean mask of the occluder's pixels inside the drawn face in frame ``index`` (None: no occluder)."""
        if self.masks is None or index >= len(self.masks) or not self.masks[index].any():
            return None
        return self.masks[index].astype(bool) & hull_region(self.landmarks[index], self.masks[index].shape)


def load_truth(path: str | Path) -> Truth:
    """Read a make-clip truth JSON (and its masks file); a clear one-line error for anything that does not fit."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise SwapcamError(f"--truth {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise SwapcamError(f"--truth {path}: not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("clip") not in CLIPS:
        raise SwapcamError(f"--truth {path}: not a make-clip truth file (its 'clip' must be one of {', '.join(CLIPS)})")
    try:
        n = int(doc["frames"])
        landmarks = np.asarray(doc["landmarks"], np.float64)
        schedule = {k: np.asarray(doc["schedule"][k], np.float64) for k in ("eyes", "mouth", "smile")}
        events = {k: [(int(a), int(b)) for a, b in v] for k, v in doc["events"].items()}
        size = (int(doc["size"][0]), int(doc["size"][1]))
    except (KeyError, TypeError, ValueError) as exc:
        raise SwapcamError(f"--truth {path}: missing or malformed field ({exc})") from None
    if landmarks.shape != (n, 68, 2) or any(len(v) != n for v in schedule.values()):
        raise SwapcamError(f"--truth {path}: landmarks {landmarks.shape} / schedule lengths do not match {n} frames")
    masks = None
    if doc.get("masks"):
        mask_path = path.parent / doc["masks"]
        try:
            with np.load(mask_path) as data:
                masks = np.asarray(data["masks"], np.uint8)
        except (OSError, KeyError, ValueError) as exc:
            raise SwapcamError(f"--truth {path}: cannot read its masks file {mask_path} ({exc})") from None
        if masks.shape != (n, size[1], size[0]):
            raise SwapcamError(f"--truth {path}: masks {masks.shape} do not match {n} frames of {size[0]}x{size[1]}")
    return Truth(doc["clip"], n, size, landmarks, schedule, events, masks, path)


@dataclass
class OccluderPixels:
    """One frame's occluder pixels inside the face: how many, how many the output kept, summed squared error."""

    total: int
    kept: int
    squared_error: float


def occluder_pixels(truth: Truth, index: int, camera: Image, output: Image) -> OccluderPixels | None:
    region = truth.occluder_in_face(index)
    if region is None or region.shape != camera.shape[:2] or not region.any():
        return None
    diff = output[region].astype(np.int32) - camera[region].astype(np.int32)
    kept = int((np.abs(diff).max(axis=1) <= KEEP_TOLERANCE).sum())
    return OccluderPixels(int(region.sum()), kept, float((diff.astype(np.float64) ** 2).sum()))


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def expression_block(truth: Truth, camera_lm: list[np.ndarray | None], output_lm: list[np.ndarray | None]) -> dict:
    """The expression numbers of the module doc, from per-frame landmarks (None where no face was found)."""
    n = min(truth.frames, len(output_lm))
    eyes, mouth, smile = (truth.schedule[k][:n] for k in ("eyes", "mouth", "smile"))
    neutral = (eyes < NEUTRAL_BELOW) & (mouth < NEUTRAL_BELOW) & (smile < NEUTRAL_BELOW)
    shut = eyes >= SHUT_FROM
    held_smile = (smile >= SMILE_FROM) & (mouth < NEUTRAL_BELOW) & (eyes < NEUTRAL_BELOW)

    def series(landmarks: list[np.ndarray | None], measure) -> np.ndarray:
        return np.array([measure(lm) if lm is not None else np.nan for lm in landmarks[:n]], np.float64)

    def corr(values: np.ndarray, drawn: np.ndarray) -> float | None:
        ok = np.isfinite(values)
        return correlation(drawn[ok], values[ok], 0.01) if ok.sum() >= 5 else None

    def shut_share(ear: np.ndarray, drop: float | None, relative: bool = True) -> float | None:
        opened = ~shut & (eyes < NEUTRAL_BELOW) & np.isfinite(ear)
        read = shut & np.isfinite(ear)
        if drop is None or cam_open_level is None or not opened.any() or not read.any():
            return None
        open_level = float(np.median(ear[opened]))
        line = open_level * (1.0 - 0.5 * drop / cam_open_level) if relative else open_level - 0.5 * drop
        return float((ear[read] < line).mean())

    def smile_gain(lift: np.ndarray) -> float | None:
        a, b = lift[held_smile & np.isfinite(lift)], lift[neutral & np.isfinite(lift)]
        return float(np.median(a) - np.median(b)) if a.size and b.size else None

    cam_ear, out_ear = series(camera_lm, eye_aspect_ratio), series(output_lm, eye_aspect_ratio)
    cam_mouth, out_mouth = series(camera_lm, mouth_openness), series(output_lm, mouth_openness)
    cam_lift, out_lift = series(camera_lm, mouth_corner_lift), series(output_lm, mouth_corner_lift)
    cam_open = cam_ear[neutral & np.isfinite(cam_ear)]
    cam_shut = cam_ear[shut & np.isfinite(cam_ear)]
    drop = float(np.median(cam_open) - np.median(cam_shut)) if cam_open.size and cam_shut.size else None
    cam_open_level = float(np.median(cam_open)) if cam_open.size and np.median(cam_open) > 0 else None
    cam_gain, out_gain = smile_gain(cam_lift), smile_gain(out_lift)
    kept = out_gain / cam_gain if cam_gain is not None and out_gain is not None and cam_gain > 0.01 else None
    return {
        "method": "against the drawn schedule (make-clip --expressions); mediapipe static landmarks on each frame",
        "eyes_corr": _round(corr(out_ear, 1.0 - eyes)),
        "mouth_corr": _round(corr(out_mouth, mouth)),
        "camera_eyes_corr": _round(corr(cam_ear, 1.0 - eyes)),
        "camera_mouth_corr": _round(corr(cam_mouth, mouth)),
        "blink_recall": _round(shut_share(out_ear, drop)),
        "blink_recall_absolute": _round(shut_share(out_ear, drop, relative=False)),
        "camera_blink_recall": _round(shut_share(cam_ear, drop)),
        "shut_frames": int(shut.sum()),
        "smile_kept": _round(kept),
        "smile_lift_camera": _round(cam_gain),
        "smile_lift_output": _round(out_gain),
        "smile_frames": int(held_smile.sum()),
    }


def occlusion_block(pixels: list[OccluderPixels | None]) -> dict:
    """The occluder numbers of the module doc, pooled over the frames that have occluder pixels in the face."""
    found = [p for p in pixels if p is not None]
    total = sum(p.total for p in found)
    kept = sum(p.kept for p in found)
    sq = sum(p.squared_error for p in found)
    psnr = None
    if total:
        mse = sq / (3.0 * total)
        psnr = float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
    return {
        "method": f"occluder pixels inside the drawn face kept within {KEEP_TOLERANCE} grey levels of the camera",
        "occluder_kept": _round(kept / total if total else None),
        "occluder_psnr_db": _round(psnr if psnr is None or np.isfinite(psnr) else 99.0, 2),
        "occluded_frames": len(found),
        "occluder_pixels": total,
    }


def truth_summary(truth: Truth, camera_lm, output_lm, pixels) -> dict[str, Any]:
    if truth.clip == "expressions":
        return {"clip": truth.clip, "file": str(truth.path), **expression_block(truth, camera_lm, output_lm)}
    return {"clip": truth.clip, "file": str(truth.path), **occlusion_block(pixels)}
