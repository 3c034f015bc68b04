"""Colour transfer from the camera's face to the swapped face, inside the face mask, on the SxS aligned crop.

The swap model was trained on other lighting than the user's room; without this step the pasted face shows as a
patch of a different colour. Default: Reinhard colour transfer (RCT) in CIE LAB -- each LAB channel of the swapped
face is shifted and scaled so its mean and standard deviation inside the mask equal those of the camera's face in
the same region. Also histogram matching (per BGR channel, inside the mask) and ``none``.

Statistics use the pixels where ``mask > MASK_THRESHOLD`` (the solid face, not the feathered edge) and the transfer
is applied to every pixel of the crop, so the edge that compositing blends shares the new colours. LAB here is
OpenCV's float LAB (BGR in [0, 1] -> L in 0..100, a/b roughly -128..127, D65), i.e. true CIE LAB units.
"""

from __future__ import annotations

from collections.abc import Callable

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


def rct(source: Image, target: Image, mask: Mask) -> Image:
    """Reinhard colour transfer: ``source``'s LAB mean/std inside ``mask`` become ``target``'s (same region)."""
    region = _check(source, target, mask)
    if int(region.sum()) < MIN_PIXELS:
        return source
    src_lab, dst_lab = to_lab(source), to_lab(target)
    src_px, dst_px = src_lab[region], dst_lab[region]
    src_mean, src_std = src_px.mean(axis=0), src_px.std(axis=0)
    dst_mean, dst_std = dst_px.mean(axis=0), dst_px.std(axis=0)
    # A flat source channel (std ~ 0) cannot be stretched meaningfully; cap the gain so noise is not amplified.
    gain = np.minimum(dst_std / np.maximum(src_std, 1e-3), 10.0).astype(np.float32)
    out = (src_lab - src_mean.astype(np.float32)) * gain + dst_mean.astype(np.float32)
    return from_lab(out)


def _match_channel(src: np.ndarray, dst: np.ndarray, src_region: np.ndarray, dst_region: np.ndarray) -> np.ndarray:
    src_hist = np.bincount(src[src_region], minlength=256).astype(np.float64)
    dst_hist = np.bincount(dst[dst_region], minlength=256).astype(np.float64)
    src_cdf = np.cumsum(src_hist) / src_hist.sum()
    dst_cdf = np.cumsum(dst_hist) / dst_hist.sum()
    lut = np.interp(src_cdf, dst_cdf, np.arange(256))
    return np.clip(lut + 0.5, 0, 255).astype(np.uint8)[src]


def hist_match(source: Image, target: Image, mask: Mask) -> Image:
    """Histogram matching per BGR channel: ``source``'s masked histogram is mapped onto ``target``'s."""
    region = _check(source, target, mask)
    if int(region.sum()) < MIN_PIXELS:
        return source
    channels = [_match_channel(source[..., c], target[..., c], region, region) for c in range(3)]
    return np.stack(channels, axis=-1)


def no_transfer(source: Image, target: Image, mask: Mask) -> Image:
    _check(source, target, mask)
    return source


TRANSFERS: dict[str, Callable[[Image, Image, Mask], Image]] = {"rct": rct, "hist": hist_match, "none": no_transfer}


def colour_transfer(mode: str) -> Callable[[Image, Image, Mask], Image]:
    """The transfer function for a mode name (checked once when the pipeline is built, not per frame)."""
    if mode not in TRANSFERS:
        from realtime.errors import SwapcamError

        raise SwapcamError(f"colour mode {mode!r}; choose from {', '.join(COLOUR_MODES)}")
    return TRANSFERS[mode]
