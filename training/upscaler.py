"""Train the x2 face upscaler (ESPCN) for sharp paste-back and export it to ONNX (realtime.upscale loads it).

The net works on luma (Y of OpenCV's YCrCb; realtime.upscale resizes the chroma bilinearly), all at half the input
resolution: a 6x6 stride-2 conv (= PixelUnshuffle(2) + 3x3 conv) + ReLU -> 3x3 convs + ReLU -> a 3x3 conv to 16
planes, plus a linear 6x6 stride-2 conv to 16 planes beside them, initialised to exact bicubic x2 -> PixelShuffle(4)
(sub-pixel convolution, never a transposed one) -> clip [0, 1]. The ReLU path's last conv starts at zero, so training
starts from bicubic; with the default --channels 16,16 it is 0.047 GFLOP and ~6k weights for a 128 px face.

Data, public domain only: the two sample portraits (realtime.samples: astronaut, grace_hopper). High-resolution
aligned crops are cut two ways: 256 px crops of synthetic camera clips (what the live loop aligns; landmarks found
once per portrait by mediapipe and carried into each frame by the clip's known transform) and crops at the
portrait's own resolution (its sharpest detail; random zoom 0.7-1 and rotation). Each step degrades random crops the
way a swap model's 128 px output looks (x2 INTER_AREA downscale, random mild Gaussian blur before and/or after,
sometimes JPEG) and the net learns to restore random patches (L1 loss, Adam, warm-up + cosine decay over the budget).

Held out: the clips with seeds 0 and 1 (seeds `swapcam eval` and the tests use; training clips start at 2000), or a
whole portrait (--holdout). The report: PSNR of bilinear, bicubic, unsharp (then bilinear) and the exported ESPCN on
the held-out crops under three degradations, and ms per 128 px face with 1 and 2 onnxruntime threads. The ONNX file is
written atomically, only after it matches torch (parity check).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from realtime.atomic import atomic_replace
from realtime.errors import SwapcamError
from realtime.samples import PORTRAITS
from realtime.types import Image
from realtime.upscale import DEFAULT_UPSCALER, INPUT_NAME, META_PREFIX, OUTPUT_NAME, Upscaler, unsharp

log = logging.getLogger("swapcam.upscaler")

OPSET = 17
SCALE = 2
CROP_SIZE = 256  # high-resolution aligned crop; the swap model's 128 px face is its x2 downscale
TRAIN_CLIP_BASE = 2000  # training clip seeds start here, far above the held-out ones
EVAL_CLIP_SEEDS = (0, 1)
MOTIONS = (1.0, 1.3, 1.6)
HOLDOUTS = ("clips", *PORTRAITS)
# name -> (Gaussian sigma before the downscale in HR px, sigma after it in LR px, JPEG quality or 0)
EVAL_DEGRADATIONS = {"area": (0.0, 0.0, 0), "area+blur0.7": (0.0, 0.7, 0), "area+jpeg80": (0.0, 0.0, 80)}
PATCH_MARGIN = 6  # LR px around a training patch that are degraded with it: > 3 sigma of the widest blur
METHODS = ("bilinear", "bicubic", "unsharp", "espcn")
PARITY_TOL = 1e-4


@dataclass
class UpscalerConfig:
    out: str = str(DEFAULT_UPSCALER)
    minutes: float = 4.0
    steps: int = 0
    seed: int = 0
    batch: int = 32
    patch: int = 48
    lr: float = 2e-3
    channels: tuple[int, ...] = (16, 16)
    threads: int = 2
    clips: int = 4
    frames: int = 24
    native: int = 32
    holdout: str = "clips"
    eval_frames: int = 12
    bench_runs: int = 200


# --------------------------------------------------------------------------------------------------- the net
def cubic_kernel(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution kernel with OpenCV's a = -0.75 (INTER_CUBIC)."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


class ESPCN(nn.Module):
    """x2 sub-pixel upscaler of luma: N x 1 x H x W in [0, 1] -> N x 1 x 2H x 2W in [0, 1] (H, W even).

    Everything runs at half the input resolution, 4x4 output sub-pixels per position: a 6x6 stride-2 conv reads the
    luma (edge-padded by 2), ``channels`` 3x3 convs + ReLU follow, a last 3x3 conv gives 16 planes; a linear 6x6
    stride-2 conv beside them, initialised to exact bicubic x2, gives 16 more; their sum -> PixelShuffle(4).
    A 6x6 stride-2 conv is PixelUnshuffle(2) + a 3x3 conv in one op (no transpose), and half resolution costs a
    quarter of the FLOPs of full resolution for the same field of view.
    """

    def __init__(self, channels: tuple[int, ...] = (16, 16), scale: int = SCALE) -> None:
        super().__init__()
        if len(channels) < 1 or min(channels) < 1 or scale != SCALE:
            raise SwapcamError(f"ESPCN channels={channels}, scale={scale}: expected >= 1 channels, scale {SCALE}")
        self.channels, self.scale, self.stride = tuple(channels), scale, 2
        out_planes = (scale * self.stride) ** 2
        layers: list[nn.Module] = [nn.Conv2d(1, self.channels[0], 6, stride=self.stride), nn.ReLU(inplace=True)]
        for cin, cout in zip(self.channels, self.channels[1:], strict=False):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
        last = nn.Conv2d(self.channels[-1], out_planes, 3, padding=1)
        nn.init.zeros_(last.weight)  # the ReLU path starts silent: the net starts as exact bicubic
        if last.bias is not None:
            nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*layers, last)
        # The linear path: onnxruntime's cubic Resize costs ~20 ms and its bilinear one 0.3-0.6 ms, this conv ~0.15 ms.
        self.linear = nn.Conv2d(1, out_planes, 6, stride=self.stride)
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(self.bicubic_weights()))
            if self.linear.bias is not None:
                self.linear.bias.zero_()
        self.shuffle = nn.PixelShuffle(scale * self.stride)

    def bicubic_weights(self) -> np.ndarray:
        """16 x 1 x 6 x 6 weights of the stride-2 conv that, after PixelShuffle(4), is OpenCV's INTER_CUBIC x2.

        Output plane ``4 * ay + ax`` at position i is HR pixel 4i + a, whose source in LR pixels is
        (4i + a + 0.5) / 2 - 0.5; tap k of the conv (input edge-padded by 2) reads LR pixel 2i - 2 + k."""
        r = self.scale * self.stride
        k = np.arange(6)
        taps = np.stack([cubic_kernel(a / 2 - 0.25 + 2 - k) for a in range(r)])  # r x 6, one 1-D filter per phase
        weights = np.einsum("yi,xj->yxij", taps, taps).reshape(r * r, 1, 6, 6)
        return weights.astype(np.float32)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        padded = F.pad(y, (2, 2, 2, 2), mode="replicate")
        return self.shuffle(self.body(padded) + self.linear(padded)).clamp(0.0, 1.0)

    def gflops(self, size: int = 128) -> float:
        """Forward GFLOP (1 multiply-add = 2 FLOP) of the convolutions for one size x size face."""
        pixels = (size // self.stride) ** 2
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        macs = sum(m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] for m in convs) * pixels
        return 2.0 * macs / 1e9

    def describe(self) -> str:
        hidden = " -> ".join(f"conv3x3 {c}+ReLU" for c in self.channels[1:])
        r = self.scale * self.stride
        return (
            f"luma -> [conv6x6/2 {self.channels[0]}+ReLU{' -> ' + hidden if hidden else ''} -> conv3x3 {r * r}] "
            f"+ [linear conv6x6/2 {r * r}, bicubic init] -> PixelShuffle({r}) -> clip [0,1]"
        )


# --------------------------------------------------------------------------------------------------- data
def portrait_landmarks(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """68 iBUG landmarks of each sample portrait (mediapipe FaceMesh, static mode)."""
    from realtime.landmarks import create_detector
    from realtime.samples import portrait

    detector = create_detector("mediapipe", mode="static")
    try:
        detector.warmup()
        found = {}
        for name in names:
            faces = detector.detect(portrait(name).image)
            if not faces:
                raise SwapcamError(f"no face found in the sample portrait {name!r}")
            found[name] = faces[0].landmarks.astype(np.float64)
        return found
    finally:
        detector.close()


def clip_crops(name: str, landmarks: np.ndarray, seeds: list[int], frames: int) -> list[Image]:
    """Aligned CROP_SIZE crops of synthetic camera clips of a portrait (one clip per seed)."""
    from realtime.align import align
    from realtime.samples import synthetic_clip

    crops = []
    for seed in seeds:
        clip = synthetic_clip(name, frames, seed=seed, motion=MOTIONS[seed % len(MOTIONS)], noise=2.0)
        for frame, transform in zip(clip.frames, clip.transforms, strict=True):
            points = cv2.perspectiveTransform(landmarks[None], transform)[0]
            crop, _ = align(frame, points, CROP_SIZE)
            crops.append(crop)
    return crops


def native_crops(name: str, landmarks: np.ndarray, count: int, rng: np.random.Generator) -> list[Image]:
    """Aligned crops at the portrait's own resolution or below (zoom 0.7-1), rotated up to +-12 degrees: the
    sharpest faces these sources hold (a 256 px crop of the astronaut is a 1.8x upsample)."""
    from realtime.align import alignment_matrix
    from realtime.samples import portrait

    image = portrait(name).image
    m256 = alignment_matrix(landmarks, CROP_SIZE)
    native = CROP_SIZE / math.sqrt(abs(np.linalg.det(m256[:, :2])))  # crop side at 1 crop px per portrait px
    crops = []
    for _ in range(count):
        size = int(min(CROP_SIZE, native * rng.uniform(0.7, 1.0))) // 2 * 2
        matrix = np.vstack([alignment_matrix(landmarks, size), [0.0, 0.0, 1.0]])
        centre = (size / 2 + rng.uniform(-1, 1), size / 2 + rng.uniform(-1, 1))
        rotation = np.vstack([cv2.getRotationMatrix2D(centre, rng.uniform(-12, 12), 1.0), [0.0, 0.0, 1.0]])
        crops.append(
            cv2.warpAffine(
                image, (rotation @ matrix)[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
        )
    return crops


def degrade(hr: Image, pre_blur: float, post_blur: float, jpeg: int) -> Image:
    """What a swap model's face looks like next to the sharp crop: optional blur, x2 INTER_AREA downscale, optional
    blur, optional JPEG round trip. ``hr`` sides must be even."""
    img = cv2.GaussianBlur(hr, (0, 0), pre_blur) if pre_blur > 0 else hr
    h, w = img.shape[:2]
    lr = cv2.resize(img, (w // SCALE, h // SCALE), interpolation=cv2.INTER_AREA)
    if post_blur > 0:
        lr = cv2.GaussianBlur(lr, (0, 0), post_blur)
    if jpeg:
        ok, buf = cv2.imencode(".jpg", lr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg)])
        lr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else lr
    return lr


def random_degradation(rng: np.random.Generator) -> tuple[float, float, int]:
    pre = float(rng.uniform(0.3, 1.0)) if rng.random() < 0.35 else 0.0
    post = float(rng.uniform(0.3, 0.9)) if rng.random() < 0.5 else 0.0
    jpeg = int(rng.integers(70, 96)) if rng.random() < 0.15 else 0
    return pre, post, jpeg


def luma(image: Image) -> np.ndarray:
    """OpenCV's 8-bit luma (Y of YCrCb, BT.601) of a BGR image: what realtime.upscale feeds the net."""
    return cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)[..., 0]


def to_tensor(images: list[Image]) -> torch.Tensor:
    """BGR uint8 HxWx3 list -> N x 1 x H x W float luma in [0, 1]."""
    batch = np.stack([luma(np.ascontiguousarray(image)) for image in images])[:, None].astype(np.float32) / 255.0
    return torch.from_numpy(batch)


def sample_batch(
    images: list[Image], rng: np.random.Generator, batch: int, patch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(degraded LR patches, their HR targets) from random crops, flips, gains and degradations. Only a window of
    the crop around the patch is degraded (a margin of PATCH_MARGIN LR px holds the blurs' reach): 4x less work."""
    lows, highs = [], []
    for _ in range(batch):
        hr = images[int(rng.integers(len(images)))]
        h, w = hr.shape[0] // SCALE, hr.shape[1] // SCALE  # LR size
        y, x = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
        y0, x0 = max(0, y - PATCH_MARGIN), max(0, x - PATCH_MARGIN)
        y1, x1 = min(h, y + patch + PATCH_MARGIN), min(w, x + patch + PATCH_MARGIN)
        window = hr[SCALE * y0 : SCALE * y1, SCALE * x0 : SCALE * x1]
        if rng.random() < 0.5:  # lighting: the clips' gain drift, wider
            window = cv2.convertScaleAbs(window, alpha=float(rng.uniform(0.75, 1.2)), beta=float(rng.uniform(-10, 10)))
        window = np.ascontiguousarray(window)
        lr = degrade(window, *random_degradation(rng))
        low = lr[y - y0 : y - y0 + patch, x - x0 : x - x0 + patch]
        high = window[SCALE * (y - y0) : SCALE * (y - y0 + patch), SCALE * (x - x0) : SCALE * (x - x0 + patch)]
        if rng.random() < 0.5:
            low, high = low[:, ::-1], high[:, ::-1]
        lows.append(low)
        highs.append(high)
    return to_tensor(lows), to_tensor(highs)


def build_data(cfg: UpscalerConfig, progress: bool) -> tuple[list[Image], list[Image], dict]:
    """(training HR crops, held-out HR crops, a description of both)."""
    if cfg.holdout == "clips":
        train_names, eval_names = tuple(PORTRAITS), tuple(PORTRAITS)
    else:
        train_names, eval_names = tuple(p for p in PORTRAITS if p != cfg.holdout), (cfg.holdout,)
    landmarks = portrait_landmarks(tuple(dict.fromkeys(train_names + eval_names)))
    rng = np.random.default_rng(cfg.seed)
    train: list[Image] = []
    train_seeds = [cfg.seed * 1000 + TRAIN_CLIP_BASE + k for k in range(cfg.clips)]
    from tqdm import tqdm

    for name in tqdm(train_names, desc="training crops", disable=not progress, leave=False):
        train += clip_crops(name, landmarks[name], train_seeds, cfg.frames)
        train += native_crops(name, landmarks[name], cfg.native, rng)
    held_out: list[Image] = []
    for name in eval_names:
        held_out += clip_crops(name, landmarks[name], list(EVAL_CLIP_SEEDS), cfg.eval_frames)
    data = {
        "train_portraits": list(train_names),
        "train_clip_seeds": train_seeds,
        "train_crops": len(train),
        "eval_portraits": list(eval_names),
        "eval_clip_seeds": list(EVAL_CLIP_SEEDS),
        "eval_crops": len(held_out),
    }
    return train, held_out, data


# --------------------------------------------------------------------------------------------------- training
def learning_rate(cfg: UpscalerConfig, progress: float, step: int) -> float:
    """Linear warm-up over 50 steps, then cosine decay to 5 % over the budget (``progress`` 0..1)."""
    warm = min(1.0, (step + 1) / 50)
    return cfg.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train_model(cfg: UpscalerConfig, images: list[Image], progress: bool) -> tuple[ESPCN, dict]:
    """Train for ``cfg.steps`` steps, or for ``cfg.minutes`` when steps is 0. Returns (model in eval mode, stats)."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    model = ESPCN(cfg.channels)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    budget_s = cfg.minutes * 60.0
    t0 = time.perf_counter()
    step, losses = 0, []
    bar = tqdm(total=cfg.steps or None, unit="step", desc="train upscaler", disable=not progress)
    while True:
        elapsed = time.perf_counter() - t0
        done = step / cfg.steps if cfg.steps else elapsed / budget_s
        if done >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, done, step)
        low, high = sample_batch(images, rng, cfg.batch, cfg.patch)
        loss = F.l1_loss(model(low), high)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        bar.update(1)
        if step % 20 == 0:
            left = "" if cfg.steps else f", {max(0.0, budget_s - elapsed) / 60:.1f} min left"
            bar.set_postfix_str(f"L1 {np.mean(losses[-20:]):.4f}{left}")
    bar.close()
    model.eval()
    minutes = (time.perf_counter() - t0) / 60.0
    return model, {"steps": step, "minutes": round(minutes, 2), "final_l1": float(np.mean(losses[-50:]))}


# --------------------------------------------------------------------------------------------------- export
def onnx_bytes(model: ESPCN, meta: dict[str, str]) -> bytes:
    """The traced graph (dynamic batch, height and width) with the swapcam.upscaler.* metadata, checked."""
    import onnx

    buf = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():  # the TorchScript exporter announces its own deprecation on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)  # "constant folding ... Slice": the edge pad's constants, folded
        torch.onnx.export(
            model,
            (torch.rand(1, 1, 128, 128),),
            buf,  # type: ignore[arg-type]
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_PREFIX + key, value
    proto.producer_name = "swapcam"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def parity(model: ESPCN, path: str | Path) -> float:
    """Max |torch - onnxruntime| on random faces of two shapes (batch 2 at 64x96, batch 1 at 128x128)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    worst = 0.0
    for shape in ((2, 1, 64, 96), (1, 1, 128, 128)):
        x = rng.random(shape, dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        if got.shape != expected.shape:
            raise SwapcamError(f"{path}: onnxruntime gives {got.shape} for {shape}, torch {expected.shape}")
        worst = max(worst, float(np.abs(expected - got).max()))
    return worst


def export_onnx(model: ESPCN, out: str | Path, meta: dict[str, str]) -> float:
    """Write ``out`` atomically, only if onnxruntime matches torch within PARITY_TOL. Returns the max difference."""
    data = onnx_bytes(model, meta)
    with atomic_replace(out) as tmp:
        tmp.write_bytes(data)
        diff = parity(model, tmp)
        if not diff <= PARITY_TOL:
            raise SwapcamError(f"{out}: onnxruntime differs from torch by {diff:.2e} (> {PARITY_TOL}); not written")
    return diff


# --------------------------------------------------------------------------------------------------- report
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def evaluate(upscaler: Upscaler, crops: list[Image]) -> dict[str, dict[str, float]]:
    """Mean PSNR (dB, 8-bit BGR, whole crop) of each method's x2 restoration of each degraded held-out crop."""
    table: dict[str, dict[str, float]] = {}
    for name, params in EVAL_DEGRADATIONS.items():
        scores: dict[str, list[float]] = {m: [] for m in METHODS}
        for hr in crops:
            lr = degrade(hr, *params)
            size = (hr.shape[1], hr.shape[0])
            outputs = {
                "bilinear": cv2.resize(lr, size, interpolation=cv2.INTER_LINEAR),
                "bicubic": cv2.resize(lr, size, interpolation=cv2.INTER_CUBIC),
                "unsharp": cv2.resize(unsharp(lr), size, interpolation=cv2.INTER_LINEAR),
                "espcn": upscaler.upscale(lr),
            }
            for method, out in outputs.items():
                scores[method].append(psnr(out, hr))
        table[name] = {m: round(float(np.mean(v)), 2) for m, v in scores.items()}
    return table


def time_upscaler(path: str | Path, face: Image, runs: int) -> dict[str, dict[str, float]]:
    """Median and p90 ms of ``session.run`` alone and of the whole ``upscale`` (with uint8 <-> float), per threads."""
    result = {}
    for threads in (1, 2):
        up = Upscaler(path, threads=threads)
        blob, _ = up.luma_blob(face)
        for _ in range(10):
            up.upscale(face)
        net, full = [], []
        for _ in range(runs):
            t = time.perf_counter()
            up.session.run([OUTPUT_NAME], {INPUT_NAME: blob})
            net.append(time.perf_counter() - t)
            t = time.perf_counter()
            up.upscale(face)
            full.append(time.perf_counter() - t)
        result[f"{threads}_thread{'s' if threads > 1 else ''}"] = {
            "net_ms_p50": round(float(np.median(net)) * 1e3, 2),
            "net_ms_p90": round(float(np.percentile(net, 90)) * 1e3, 2),
            "upscale_ms_p50": round(float(np.median(full)) * 1e3, 2),
        }
    return result


def format_table(table: dict[str, dict[str, float]]) -> str:
    names = list(table)
    lines = [f"{'PSNR dB':<10}" + "".join(f"{n:>14}" for n in names)]
    for method in METHODS:
        lines.append(f"{method:<10}" + "".join(f"{table[n][method]:>14.2f}" for n in names))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=str(DEFAULT_UPSCALER), help="ONNX file to write (atomically, parity-checked)")
    parser.add_argument("--minutes", type=float, default=4.0, help="training time budget in minutes (CPU)")
    parser.add_argument("--steps", type=int, default=0, help="train exactly this many steps instead of --minutes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training clips, crops, batches and weights")
    parser.add_argument("--batch", type=int, default=32, help="patches per step")
    parser.add_argument("--patch", type=int, default=48, help="side of a low-resolution training patch (even, px)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak Adam learning rate (warm-up, then cosine decay)")
    parser.add_argument(
        "--channels",
        default="16,16",
        help="widths of the ReLU convs at half resolution (first: the 6x6 stride-2 conv); 16,16: 0.047 GFLOP per "
        "128 px face; 24,24: 0.083 GFLOP, slower and no sharper in a few minutes of training",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads for training")
    parser.add_argument("--clips", type=int, default=4, help="synthetic training clips per portrait")
    parser.add_argument("--frames", type=int, default=24, help="frames per training clip")
    parser.add_argument("--native", type=int, default=32, help="crops per portrait at the portrait's own resolution")
    parser.add_argument(
        "--holdout",
        default="clips",
        help="what the PSNR report is measured on: 'clips' (clip seeds 0 and 1 of both portraits, never trained "
        "on) or a portrait name (astronaut, grace_hopper: train on the other portrait only)",
    )
    parser.add_argument("--eval-frames", type=int, default=12, help="frames per held-out clip (2 clips per portrait)")
    parser.add_argument(
        "--bench-runs", type=int, default=200, help="timed runs per onnxruntime thread count (0: skip the timing)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def config_from_args(args: argparse.Namespace) -> UpscalerConfig:
    try:
        channels = tuple(int(c) for c in str(args.channels).split(",") if c.strip())
    except ValueError:
        raise SwapcamError(f"--channels {args.channels!r}: expected comma-separated integers, e.g. 24,24") from None
    cfg = UpscalerConfig(
        out=str(args.out),
        minutes=float(args.minutes),
        steps=int(args.steps),
        seed=int(args.seed),
        batch=int(args.batch),
        patch=int(args.patch),
        lr=float(args.lr),
        channels=channels,
        threads=int(args.threads),
        clips=int(args.clips),
        frames=int(args.frames),
        native=int(args.native),
        holdout=str(args.holdout),
        eval_frames=int(args.eval_frames),
        bench_runs=int(args.bench_runs),
    )
    if cfg.holdout not in HOLDOUTS:
        raise SwapcamError(f"--holdout {cfg.holdout!r}; choose from {', '.join(HOLDOUTS)}")
    if not channels or min(channels) < 1 or max(channels) > 256:
        raise SwapcamError(f"--channels {args.channels!r}: expected 1 to 256 per layer")
    if cfg.steps < 0 or (cfg.steps == 0 and not cfg.minutes > 0):
        raise SwapcamError(f"--steps {cfg.steps} --minutes {cfg.minutes}: give a positive step count or minutes")
    if cfg.patch < 8 or cfg.patch % 2 or cfg.patch > CROP_SIZE // 4:
        raise SwapcamError(f"--patch {cfg.patch}: expected an even side in 8..{CROP_SIZE // 4}")
    for name in ("batch", "threads", "clips", "frames", "eval_frames"):
        if getattr(cfg, name) < 1:
            raise SwapcamError(f"--{name.replace('_', '-')} {getattr(cfg, name)}: expected >= 1")
    if cfg.native < 0 or cfg.bench_runs < 0 or not cfg.lr > 0:
        raise SwapcamError(f"--native {cfg.native} --bench-runs {cfg.bench_runs} --lr {cfg.lr}: expected >= 0, > 0")
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    progress = not args.no_progress
    torch.set_num_threads(cfg.threads)
    train_crops, held_out, data = build_data(cfg, progress)
    log.info("data: %s", data)
    model, stats = train_model(cfg, train_crops, progress)
    meta = {
        "scale": str(model.scale),
        "multiple": str(model.stride),
        "input": "luma",
        "value_range": "0,1",
        "arch": model.describe(),
        "gflops_128": f"{model.gflops(128):.4f}",
        "steps": str(stats["steps"]),
        "minutes": str(stats["minutes"]),
        "config": json.dumps(asdict(cfg)),
        "data": "public-domain sample portraits astronaut + grace_hopper (realtime.samples): " + json.dumps(data),
    }
    diff = export_onnx(model, cfg.out, meta)
    upscaler = Upscaler(cfg.out, threads=cfg.threads)
    table = evaluate(upscaler, held_out)
    params = sum(p.numel() for p in model.parameters())
    print(f"\n{cfg.out}: {Path(cfg.out).stat().st_size / 1024:.1f} KiB, {params} parameters, parity {diff:.1e}")
    print(f"net: {model.describe()}; {model.gflops(128):.3f} GFLOP per 128 px face")
    print(
        f"trained {stats['steps']} steps in {stats['minutes']:.1f} min on {data['train_crops']} crops of "
        f"{', '.join(data['train_portraits'])}; final L1 {stats['final_l1']:.4f}"
    )
    print(
        f"held-out: {data['eval_crops']} crops of {', '.join(data['eval_portraits'])} (clip seeds "
        f"{', '.join(map(str, EVAL_CLIP_SEEDS))}), 256 px -> x2 downscale (+ degradation) -> x2 restored"
    )
    print(format_table(table))
    if cfg.bench_runs:
        face = degrade(held_out[0], 0.0, 0.0, 0)
        for name, t in time_upscaler(cfg.out, face, cfg.bench_runs).items():
            print(
                f"128 -> 256 px, onnxruntime {name.replace('_', ' ')}: net {t['net_ms_p50']:.2f} ms p50 "
                f"({t['net_ms_p90']:.2f} p90), whole upscale() with uint8 conversions {t['upscale_ms_p50']:.2f} ms"
            )
    return 0


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module doc as written, and each option's default."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.upscaler",
        description=(__doc__ or "").strip(),
        formatter_class=_HelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return run(args)
    except SwapcamError as exc:
        print(f"training.upscaler: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
