"""Colour transfer from the camera's face to the swapped face, inside the face mask, on the SxS aligned crop.

The swap model was trained on other lighting than the user's room; without this step the pasted face shows as a
patch of a different colour. Default: Reinhard colour transfer (RCT) in CIE LAB -- each LAB channel of the swapped
face is shifted and scaled so its mean and standard deviation inside the mask equal those of the camera's face in
the same region. Also histogram matching (per BGR channel, inside the mask) and ``none``.

Statistics use the pixels where ``mask > MASK_THRESHOLD`` (the solid face, not the feathered edge) and the transfer
is applied to every pixel of the crop, so the edge that compositing blends shares the new colours. Each mode is a
fit (parameters: an affine map in LAB, or per-channel lookup tables) and an apply, so that the live pipeline can
smooth the parameters over time (realtime.temporal) and the face does not pulse in brightness from frame to frame.
LAB here is OpenCV's float LAB (BGR in [0, 1] -> L in 0..100, a/b roughly -128..127, D65), i.e. true CIE LAB units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from realtime.types import Image, Mask

MASK_THRESHOLD = 0.5
MIN_PIXELS = 16  # fewer masked pixels than this: statistics are noise, leave the face alone
COLOUR_MODES = ("rct", "hist", "none")


def _check(source: Image, target: Image, mask: Mask) -> np.ndarray:
    for name, img in (("source", source), ("target", target)):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f"{name} is {getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}, "
                "expected HxWx3 uint8 BGR"
            )
    if source.shape != target.shape:
        raise ValueError(f"source has shape {source.shape} but target has shape {target.shape}")
    mask = np.asarray(mask)
    if mask.shape != source.shape[:2]:
        raise ValueError(f"mask has shape {mask.shape}, expected {source.shape[:2]}")
    return mask > MASK_THRESHOLD


def to_lab(image: Image) -> np.ndarray:
    """BGR uint8 -> float32 CIE LAB (L 0..100)."""
    return cv2.cvtColor(image.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_BGR2LAB)


def from_lab(lab: np.ndarray) -> Image:
    """float32 CIE LAB -> BGR uint8 (clipped: out-of-gamut colours saturate)."""
    bgr = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    return np.clip(bgr * 255.0 + 0.5, 0, 255).astype(np.uint8)


def fit_rct(source: Image, target: Image, mask: Mask) -> np.ndarray | None:
    """Reinhard colour transfer as a per-channel affine map in LAB: (2 x 3 float32: gain, offset) taking ``source``'s
    LAB mean/std inside ``mask`` to ``target``'s (same region); None when the mask has too few pixels."""
    region = _check(source, target, mask)
    if int(region.sum()) < MIN_PIXELS:
        return None
    src_px, dst_px = to_lab(source)[region], to_lab(target)[region]
    src_mean, src_std = src_px.mean(axis=0), src_px.std(axis=0)
    dst_mean, dst_std = dst_px.mean(axis=0), dst_px.std(axis=0)
    # A flat source channel (std ~ 0) cannot be stretched meaningfully; cap the gain so noise is not amplified.
    gain = np.minimum(dst_std / np.maximum(src_std, 1e-3), 10.0)
    return np.stack([gain, dst_mean - src_mean * gain]).astype(np.float32)


def apply_rct(source: Image, params: np.ndarray) -> Image:
    return from_lab(to_lab(source) * params[0] + params[1])


def rct(source: Image, target: Image, mask: Mask) -> Image:
    """Reinhard colour transfer: ``source``'s LAB mean/std inside ``mask`` become ``target``'s (same region)."""
    params = fit_rct(source, target, mask)
    return source if params is None else apply_rct(source, params)


def _channel_lut(src: np.ndarray, dst: np.ndarray, region: np.ndarray) -> np.ndarray:
    src_hist = np.bincount(src[region], minlength=256).astype(np.float64)
    dst_hist = np.bincount(dst[region], minlength=256).astype(np.float64)
    src_cdf = np.cumsum(src_hist) / src_hist.sum()
    dst_cdf = np.cumsum(dst_hist) / dst_hist.sum()
    return np.interp(src_cdf, dst_cdf, np.arange(256))


def fit_hist(source: Image, target: Image, mask: Mask) -> np.ndarray | None:
    """Histogram matching per BGR channel as lookup tables (3 x 256 float32) mapping ``source``'s masked histogram
    onto ``target``'s; None when the mask has too few pixels."""
    region = _check(source, target, mask)
    if int(region.sum()) < MIN_PIXELS:
        return None
    return np.stack([_channel_lut(source[..., c], target[..., c], region) for c in range(3)]).astype(np.float32)


def apply_hist(source: Image, params: np.ndarray) -> Image:
    lut = np.clip(params + 0.5, 0, 255).astype(np.uint8)
    return np.stack([lut[c][source[..., c]] for c in range(3)], axis=-1)


def hist_match(source: Image, target: Image, mask: Mask) -> Image:
    """Histogram matching per BGR channel: ``source``'s masked histogram is mapped onto ``target``'s."""
    params = fit_hist(source, target, mask)
    return source if params is None else apply_hist(source, params)


def no_transfer(source: Image, target: Image, mask: Mask) -> Image:
    _check(source, target, mask)
    return source


@dataclass(frozen=True)
class ColourModel:
    """A transfer split in two: ``fit`` measures (parameters as one float32 array, or None: leave the face alone) and
    ``apply`` maps; the live pipeline smooths the parameters over time between the two (realtime.temporal)."""

    mode: str
    fit: Callable[[Image, Image, Mask], np.ndarray | None]
    apply: Callable[[Image, np.ndarray], Image]


def _fit_none(source: Image, target: Image, mask: Mask) -> None:
    _check(source, target, mask)
    return None


MODELS: dict[str, ColourModel] = {
    "rct": ColourModel("rct", fit_rct, apply_rct),
    "hist": ColourModel("hist", fit_hist, apply_hist),
    "none": ColourModel("none", _fit_none, lambda source, params: source),
}


def colour_model(mode: str) -> ColourModel:
    """The fit/apply pair for a mode name (checked once when the pipeline is built, not per frame)."""
    if mode not in MODELS:
        from realtime.errors import SwapcamError

        raise SwapcamError(f"colour mode {mode!r}; choose from {', '.join(COLOUR_MODES)}")
    return MODELS[mode]
