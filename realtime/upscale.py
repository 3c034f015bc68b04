"""Sharp paste-back: the swap model's SxS face (128 px for rt128) is warped up to the face's size in the frame, often
x2, and bilinear interpolation makes it look soft. Two remedies, chosen with a mode from SHARPEN_MODES (and a third
mode, ``match``, the default, which goes the other way: it blurs a face that is crisper than the camera's to the
camera's sharpness; that stage needs the camera crop, so it lives in realtime.sharpness and the pipeline):

* ``unsharp``: a classic unsharp mask on the SxS face (about 0.1 ms); the face stays SxS.
* ``espcn``: a learned x2 sub-pixel upscaler (ESPCN, a few small convolutions then PixelShuffle; trained by
  ``training.upscaler`` on the public-domain sample portraits) turns the SxS face into a 2Sx2S one (~1.5 ms on
  one CPU core); the paste then uses the crop matrix scaled by 2 (:func:`scale_matrix`) and the mask resized to
  2Sx2S (:func:`scale_mask`).

Pipeline use::

    sharpen, scale = make_sharpener(mode)          # once, in the builder
    face = sharpen(face)                           # per face, after colour transfer
    if scale != 1:
        matrix, mask = scale_matrix(matrix, scale), scale_mask(mask, scale)
    paste_back(frame, face, mask, matrix)

The ONNX graph (``in_face`` N x 1 x H x W float32 luma in [0, 1], H and W even -> ``out_face`` N x 1 x 2H x 2W, same
range, clipped) upscales OpenCV's YCrCb luma; the chroma is resized bilinearly here (the eye reads detail in luma).
numpy + OpenCV + onnxruntime only; torch is never imported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

import models
from realtime.errors import ContractError, SwapcamError
from realtime.types import Image, Mask, check_image

SHARPEN_MODES = ("none", "unsharp", "espcn", "match")

# Shipped beside the demo model (models/demo), inside the `models` package: found wherever the package is installed.
UPSCALER_DIR = Path(models.__file__).resolve().parent / "upscaler"
DEFAULT_UPSCALER = UPSCALER_DIR / "espcn_x2.onnx"

INPUT_NAME = "in_face"
OUTPUT_NAME = "out_face"
META_PREFIX = "swapcam.upscaler."  # ONNX metadata_props keys written by training.upscaler
UNSHARP_AMOUNT = 0.6
UNSHARP_SIGMA = 1.0

Sharpener = Callable[[Image], Image]


def unsharp(face: Image, amount: float = UNSHARP_AMOUNT, sigma: float = UNSHARP_SIGMA) -> Image:
    """Unsharp mask: ``face + amount * (face - GaussianBlur(face, sigma))``, rounded and saturated to uint8.

    The added detail has zero mean, so the face keeps its mean brightness (up to clipping at 0 and 255).
    ``amount`` 0 returns a copy; 0.5-1 is a visible but natural sharpening of a 128 px face."""
    check_image(face, "face")
    if not (np.isfinite(amount) and 0.0 <= amount <= 5.0):
        raise SwapcamError(f"unsharp amount={amount!r}, expected a value in 0..5")
    if not (np.isfinite(sigma) and 0.1 <= sigma <= 20.0):
        raise SwapcamError(f"unsharp sigma={sigma!r}, expected a value in 0.1..20 (pixels)")
    if amount == 0.0:
        return face.copy()
    blurred = cv2.GaussianBlur(face, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    return cv2.addWeighted(face, 1.0 + amount, blurred, -amount, 0.0)


def scale_matrix(matrix: np.ndarray, scale: int) -> np.ndarray:
    """The frame -> crop matrix of an SxS crop turned into the one of its (scale*S)x(scale*S) upscale.

    Pixel centres, as OpenCV and the upscaler's half-pixel resize place them: crop pixel x sits at upscaled pixel
    ``scale * x + (scale - 1) / 2``, so the matrix is scaled and shifted by (scale - 1) / 2."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"matrix has shape {m.shape}, expected 2x3")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale={scale!r}, expected an integer >= 1")
    out = m * float(scale)
    out[:, 2] += (scale - 1) / 2.0
    return out


def scale_mask(mask: Mask, scale: int) -> Mask:
    """An SxS blend mask resized to (scale*S)x(scale*S), bilinear (the same half-pixel grid as the face)."""
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale={scale!r}, expected an integer >= 1")
    if scale == 1:
        return mask
    h, w = mask.shape[:2]
    return cv2.resize(mask, (w * int(scale), h * int(scale)), interpolation=cv2.INTER_LINEAR)


class Upscaler:
    """A loaded x2 face upscaler: ``upscale(face SxS BGR uint8) -> (scale*S)x(scale*S) BGR uint8``.

    Runs on the CPU by default (``providers="cpu"``): the net is under 0.1 GFLOP per 128 px face, cheaper than moving
    the face to a GPU and back. ``threads``: onnxruntime intra-op threads (1 leaves the other core to capture
    and landmarks). Thread-safe like the Swapper: no per-call state.
    """

    def __init__(self, path: str | os.PathLike | None = None, threads: int = 1, providers: str = "cpu") -> None:
        from realtime.swapper import create_session  # the one session factory (missing file -> SwapcamError)

        self.path = Path(DEFAULT_UPSCALER if path is None else path)
        if path is None and not self.path.is_file():
            raise SwapcamError(
                f"the shipped upscaler {self.path} is missing; rebuild it with "
                f"`python -m training.upscaler --out {self.path}`"
            )
        self.session, self.provider_report = create_session(self.path, providers, threads)
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]:
            raise ContractError(
                f"{self.path}: not a swapcam upscaler (inputs {[i.name for i in inputs]}, outputs "
                f"{[o.name for o in outputs]}; expected {INPUT_NAME} -> {OUTPUT_NAME})"
            )
        shape = list(inputs[0].shape)
        if len(shape) != 4 or shape[1] != 1:
            raise ContractError(f"{self.path}: {INPUT_NAME} has shape {shape}, expected N x 1 x H x W (luma)")
        meta = dict(self.session.get_modelmeta().custom_metadata_map or {})
        try:
            self.scale = int(meta.get(META_PREFIX + "scale", "2"))
            self.multiple = int(meta.get(META_PREFIX + "multiple", "1"))  # H and W must be multiples of this
        except ValueError:
            raise ContractError(f"{self.path}: unreadable {META_PREFIX}scale/multiple metadata {meta}") from None
        if self.scale < 1 or self.multiple < 1:
            raise ContractError(f"{self.path}: scale {self.scale}, multiple {self.multiple}: expected >= 1")
        self.meta = meta

    def luma_blob(self, face: Image) -> tuple[np.ndarray, np.ndarray]:
        """(1 x 1 x H' x W' float32 luma in [0, 1], the HxW YCrCb face): the net's input, H and W padded by
        reflection up to the net's ``multiple``."""
        check_image(face, "face")
        ycrcb = cv2.cvtColor(face, cv2.COLOR_BGR2YCrCb)
        y = cv2.extractChannel(ycrcb, 0)
        pad_h, pad_w = (-y.shape[0]) % self.multiple, (-y.shape[1]) % self.multiple
        if pad_h or pad_w:
            y = cv2.copyMakeBorder(y, 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT_101)
        return cv2.dnn.blobFromImage(y, 1.0 / 255.0), ycrcb

    def upscale(self, face: Image) -> Image:
        """One HxW BGR uint8 face -> (scale*H)x(scale*W) BGR uint8: the net's luma, the chroma resized bilinearly
        (chroma holds little detail; the net costs a third of the FLOPs it would on three channels)."""
        blob, ycrcb = self.luma_blob(face)
        h, w = ycrcb.shape[:2]
        s = self.scale
        out_luma = self.session.run([OUTPUT_NAME], {INPUT_NAME: blob})[0][0, 0, : s * h, : s * w]
        big = cv2.resize(ycrcb, (s * w, s * h), interpolation=cv2.INTER_LINEAR)
        # convertScaleAbs rounds and saturates; the graph clipped to [0, 1], so its abs never changes a value
        cv2.insertChannel(cv2.convertScaleAbs(out_luma, alpha=255.0), big, 0)
        return cv2.cvtColor(big, cv2.COLOR_YCrCb2BGR)

    __call__ = upscale

    def describe(self) -> str:
        steps = self.meta.get(META_PREFIX + "steps", "?")
        return f"{self.path.name}: x{self.scale} ESPCN upscaler ({steps} training steps)"


def make_sharpener(
    mode: str,
    model: str | os.PathLike | None = None,
    threads: int = 1,
    amount: float = UNSHARP_AMOUNT,
    sigma: float = UNSHARP_SIGMA,
) -> tuple[Sharpener, int]:
    """``(sharpen, scale)`` for a mode of SHARPEN_MODES: ``sharpen(face) -> face`` of ``scale`` times the size.

    'none': the face as it is (scale 1); 'unsharp': :func:`unsharp` with ``amount``/``sigma`` (scale 1); 'espcn':
    :class:`Upscaler` loaded from ``model`` (default: the shipped models/upscaler/espcn_x2.onnx) with ``threads``
    onnxruntime threads (scale 2). Bad values raise SwapcamError naming them, now rather than on the first frame."""
    if mode in ("none", "match"):  # match: the pipeline's per-face stage (realtime.sharpness), it needs the camera
        return (lambda face: face), 1
    if mode == "unsharp":
        unsharp(np.zeros((8, 8, 3), np.uint8), amount, sigma)  # checks amount and sigma at build time

        def sharpen(face: Image) -> Image:
            return unsharp(face, amount, sigma)

        return sharpen, 1
    if mode == "espcn":
        upscaler = Upscaler(model, threads=threads)
        return upscaler.upscale, upscaler.scale
    raise SwapcamError(f"sharpen mode {mode!r}; choose from {', '.join(SHARPEN_MODES)}")
