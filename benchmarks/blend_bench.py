"""Paste-back timing, feather vs multiband blend (realtime.compose.paste_back), on this machine's CPU.

A synthetic 640x480 frame and a textured SxS face crop whose blend mask (realtime.compose.blend_mask of a full
learned mask and a circular 68-point hull) lands on an upright paste box of about 150, 250 and 400 px (the box
that paste_back returns is printed, with the multiband pyramid depth). Each paste goes into a fresh copy of
the frame (the copy is not timed); the modes take turns, paste by paste, so both see the same load on a shared
machine. Prints the median milliseconds per paste and the minor page faults per paste; --json also records the
p90 and the fastest paste.

Page faults: numpy and OpenCV allocate the box-sized float buffers afresh on every paste, and glibc hands freed
memory back to the kernel (a 250 px box: ~600 faults a paste, a millisecond or more on this VM). --mallopt raises
glibc's mmap and trim thresholds first (what MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ do) to show the cost
without them.

Example: `python benchmarks/blend_bench.py --json blend.json`
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import time
from pathlib import Path

import cv2
import numpy as np

from realtime.compose import BLEND_MODES, blend_mask, multiband_levels, paste_back

FRAME_SIZE = (640, 480)
COVERAGE = 1.6  # crop side / landmark box side, as the alignment's default


def scene(box: int, crop: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(frame, face, mask, matrix): the mask's non-zero part maps to about ``box`` px in the middle of the frame."""
    rng = np.random.default_rng(seed)
    w, h = FRAME_SIZE
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    frame = cv2.GaussianBlur(frame, (0, 0), 2.0)
    face = cv2.GaussianBlur(rng.integers(0, 256, (crop, crop, 3), dtype=np.uint8), (0, 0), 1.0)
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    r = crop / COVERAGE / 2
    pts = np.c_[crop / 2 + r * np.cos(t), crop / 2 + r * np.sin(t)].astype(np.float32)
    mask = blend_mask(np.ones((crop, crop), np.float32), pts)
    xs = np.nonzero(mask.max(axis=0) > 0)[0]
    scale = (xs.max() + 1 - xs.min()) / box  # frame -> crop: the mask's support spans ``box`` frame px
    matrix = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])  # upright: the paste box is about box x box
    matrix[:, 2] = crop / 2 - matrix[:, :2] @ np.array([w / 2, h / 2])
    return frame, face, mask, matrix


def time_modes(frame, face, mask, matrix, runs: int) -> dict[str, dict]:
    """Median, p90 and min ms and minor page faults per paste, per mode; the modes take turns paste by paste, so
    both see the same machine load."""
    times: dict[str, list[float]] = {mode: [] for mode in BLEND_MODES}
    faults = dict.fromkeys(BLEND_MODES, 0)
    for i in range(runs + 5):
        for mode in BLEND_MODES:
            out = frame.copy()
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            paste_back(out, face, mask, matrix, blend=mode)
            t1 = time.perf_counter()
            if i >= 5:  # warm-up
                times[mode].append((t1 - t0) * 1e3)
                faults[mode] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    result = {}
    for mode, ts in times.items():
        ts.sort()
        result[mode] = {
            "median_ms": round(ts[len(ts) // 2], 3),
            "p90_ms": round(ts[int(len(ts) * 0.9)], 3),
            "min_ms": round(ts[0], 3),
            "page_faults": round(faults[mode] / runs, 1),
        }
    return result


def keep_freed_memory() -> None:
    """glibc: serve big buffers from the heap and keep freed memory instead of returning it to the kernel."""
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    if not (libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 256 << 20)):
        raise SystemExit("--mallopt: glibc's mallopt refused the thresholds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--boxes", type=int, nargs="+", default=[150, 250, 400], help="paste box sides in px (default 150 250 400)"
    )
    parser.add_argument("--crop", type=int, default=256, help="side of the SxS face crop (default 256)")
    parser.add_argument("--runs", type=int, default=200, help="timed pastes per mode and box (default 200)")
    parser.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's own)")
    parser.add_argument(
        "--mallopt", action="store_true", help="raise glibc's mmap/trim thresholds first (no page faults; glibc only)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if any(side < 8 or side > min(FRAME_SIZE) for side in args.boxes):
        parser.error(f"--boxes {args.boxes}: each side must be 8..{min(FRAME_SIZE)} px (a box inside the frame)")
    if args.crop < 32 or args.runs < 1:
        parser.error("--crop must be >= 32 and --runs >= 1")
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    if args.mallopt:
        keep_freed_memory()

    rows = []
    header = " ".join(f"{m + ' ms':>14} {'faults':>7}" for m in BLEND_MODES)
    print(f"{'box':>5} {'paste box':>10} {'levels':>6} {header}")
    for side in args.boxes:
        frame, face, mask, matrix = scene(side, args.crop)
        box = paste_back(frame.copy(), face, mask, matrix)
        if box is None:
            raise SystemExit(f"box {side}: the mask misses the frame")
        bw, bh = box[2] - box[0], box[3] - box[1]
        row = {"box": side, "paste_box": [bw, bh], "levels": multiband_levels(min(bw, bh))}
        row.update(time_modes(frame, face, mask, matrix, args.runs))
        rows.append(row)
        cells = " ".join(f"{row[m]['median_ms']:>14.3f} {row[m]['page_faults']:>7.0f}" for m in BLEND_MODES)
        print(f"{side:>5} {f'{bw}x{bh}':>10} {row['levels']:>6} {cells}")

    result = {
        "frame": list(FRAME_SIZE),
        "crop": args.crop,
        "runs": args.runs,
        "cv2_threads": cv2.getNumThreads(),
        "mallopt": args.mallopt,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "opencv": cv2.__version__,
        "results": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
