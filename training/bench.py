"""Training benchmark: samples/s of full training steps (augmentation + forward + loss + backward + Adam) per preset,
and the forward GFLOPs per face (encoder + one decoder, what the live loop runs). Prints a table, writes JSON.

The data are random faces (uniform noise crops with the template's landmarks, hull and loss weights), so the
benchmark needs no faceset; the step (batch drawing, augmentation, forward, loss, backward, Adam) is training.step's,
the one `swapcam train` runs.
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

from realtime.atomic import atomic_write_bytes
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
    """Time ``steps`` full training steps (training.step's, as `swapcam train` runs them) of a preset."""
    import torch

    from models.autoencoder import forward_flops, get_preset
    from realtime.align import template_points
    from training.augment import Augmenter
    from training.step import LossConfig, build_train_state, identity_batch, make_identity, train_step

    config = get_preset(name)
    size = config.size
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    state = build_train_state(config, device, lr=5e-5, seed=0, amp=device.type == "cuda")
    rng = np.random.default_rng(0)
    n = 32
    landmarks = np.repeat(template_points(size).astype(np.float32)[None], n, axis=0)
    faces = [
        make_identity(key, rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), landmarks) for key in ("a", "b")
    ]
    augmenter = Augmenter() if augment else None
    losses = LossConfig()

    def one_step(step: int) -> None:
        batch_a, batch_b = (identity_batch(augmenter, faces[k], 0, step, k, batch, device) for k in (0, 1))
        train_step(state, batch_a, batch_b, losses)

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
        "preset": name,
        "size": size,
        "batch_per_identity": batch,
        "steps": steps,
        "device": str(device),
        "augment": augment,
        "samples_per_s": round(samples * steps / float(per_step_arr.sum()), 2),
        "samples_per_s_median_step": round(samples / float(np.median(per_step_arr)), 2),
        "step_ms_p50": round(1000 * float(np.median(per_step_arr)), 2),
        "step_ms_p95": round(1000 * float(np.percentile(per_step_arr, 95)), 2),
        "gflops_per_face": round(forward_flops(config) / 1e9, 4),
        "params_exported": int(
            sum(p.numel() for p in state.model.encoder.parameters())
            + sum(p.numel() for p in state.model.decoder_b.parameters())
        ),
    }


def run(args: argparse.Namespace) -> int:
    import torch

    from models.autoencoder import get_preset

    names = [p.strip() for p in args.presets.split(",") if p.strip()]
    for name in names:
        get_preset(name)
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        raise SwapcamError(
            f"--batch {args.batch} --steps {args.steps} --warmup {args.warmup}: expected positive values"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for name in names:
        res = bench_preset(name, args.batch, args.steps, args.warmup, augment=not args.no_augment)
        results.append(res)
        print(
            f"{name:<5} {res['size']:>4} px  {res['samples_per_s']:8.1f} samples/s  (median step "
            f"{res['samples_per_s_median_step']:.1f}/s, p50 {res['step_ms_p50']:.0f} ms)  "
            f"{res['gflops_per_face']:.3f} GFLOP/face forward"
        )
    report = {
        "benchmark": "swapcam bench-train",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "flop_convention": "1 multiply-add = 2 FLOP (torch.utils.flop_counter)",
        "results": results,
    }
    path = Path(args.json)
    atomic_write_bytes(path, json.dumps(report, indent=1).encode())
    print(f"wrote {path}", file=sys.stderr)
    return 0
