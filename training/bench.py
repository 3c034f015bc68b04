"""Training benchmark: samples/s of full training steps (augmentation + forward + loss + backward + Adam) per preset,
and the forward GFLOPs per face (encoder + one decoder, what the live loop runs). Prints a table, writes JSON.

The data are random faces (uniform noise crops with a synthetic hull and landmarks), so the benchmark needs no
faceset and measures the same work a real run does per step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from realtime.errors import SwapcamError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", default="tiny", help="comma-separated presets to time (tiny,lite,hd)")
    parser.add_argument("--batch", type=int, default=16, help="faces per identity per step")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per preset (after --warmup)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (allocator, oneDNN kernel choice)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    parser.add_argument("--no-augment", action="store_true", help="time the model step only, without augmentation")
    parser.add_argument("--json", default="bench-train.json", help="output JSON file")


def bench_preset(name: str, batch: int, steps: int, warmup: int, augment: bool = True) -> dict:
    import torch

    from models.autoencoder import build_model, forward_flops, get_preset
    from realtime.align import template_points
    from training.augment import Augmenter
    from training.faceset import hull_mask, priority_map
    from training.losses import reconstruction_loss
    from training.train import PairForward

    config = get_preset(name)
    size = config.size
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(config).to(device)
    pair = PairForward.make(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-5, betas=(0.5, 0.999))
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    rng = np.random.default_rng(0)
    n = 32
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    lm = template_points(size).astype(np.float32)
    masks = np.stack([hull_mask(lm, size)] * n)
    weights = np.stack([priority_map(lm, size)] * n)
    augmenter = Augmenter()

    def make_batch(step: int, stream: int) -> dict:
        idx = rng.integers(0, n, batch)
        if augment:
            b = augmenter.batch(images, masks, weights, idx, 0, step, stream)
        else:
            from training.augment import to_nchw_rgb

            x = to_nchw_rgb(images[idx])
            b = {"input": x, "target": x, "mask": masks[idx][:, None], "weight": weights[idx][:, None]}
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(device) for k, v in b.items()}

    def one_step(step: int) -> None:
        ta, tb = make_batch(step, 0), make_batch(step, 1)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            (fa, ma), (fb, mb) = pair(ta["input"], tb["input"])
        loss = reconstruction_loss(fa.float(), ma.float(), ta["target"], ta["mask"], ta["weight"]) + \
            reconstruction_loss(fb.float(), mb.float(), tb["target"], tb["mask"], tb["weight"])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for i in range(warmup):
        one_step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_step = []
    for i in range(steps):
        t0 = time.perf_counter()
        one_step(warmup + i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        per_step.append(time.perf_counter() - t0)
    per_step_arr = np.array(per_step)
    samples = 2 * batch
    return {
        "preset": name, "size": size, "batch_per_identity": batch, "steps": steps, "device": str(device),
        "augment": augment,
        "samples_per_s": round(samples * steps / float(per_step_arr.sum()), 2),
        "samples_per_s_median_step": round(samples / float(np.median(per_step_arr)), 2),
        "step_ms_p50": round(1000 * float(np.median(per_step_arr)), 2),
        "step_ms_p95": round(1000 * float(np.percentile(per_step_arr, 95)), 2),
        "gflops_per_face": round(forward_flops(config) / 1e9, 4),
        "params_exported": int(sum(p.numel() for p in model.encoder.parameters()) +
                               sum(p.numel() for p in model.decoder_b.parameters())),
    }


def run(args: argparse.Namespace) -> int:
    import torch

    from models.autoencoder import get_preset

    names = [p.strip() for p in args.presets.split(",") if p.strip()]
    for name in names:
        get_preset(name)
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        raise SwapcamError(f"--batch {args.batch} --steps {args.steps} --warmup {args.warmup}: expected positive values")
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for name in names:
        res = bench_preset(name, args.batch, args.steps, args.warmup, augment=not args.no_augment)
        results.append(res)
        print(f"{name:<5} {res['size']:>4} px  {res['samples_per_s']:8.1f} samples/s  (median step "
              f"{res['samples_per_s_median_step']:.1f}/s, p50 {res['step_ms_p50']:.0f} ms)  "
              f"{res['gflops_per_face']:.3f} GFLOP/face forward")
    report = {"benchmark": "swapcam bench-train", "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
              "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
              "flop_convention": "1 multiply-add = 2 FLOP (torch.utils.flop_counter)", "results": results}
    path = Path(args.json)
    from realtime.atomic import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(report, indent=1).encode())
    print(f"wrote {path}", file=sys.stderr)
    return 0
