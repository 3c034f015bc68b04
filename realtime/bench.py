"""Benchmark the live pipeline (the same threads and hand-offs as `swapcam live`) on the built-in synthetic clip or
a given source: per-stage p50/p95 ms, sustained fps, end-to-end latency p50/p95 (capture timestamp -> sink done)
and frames dropped. Prints a summary; --json writes every number.

--pace realtime (default) feeds frames at 30 fps like a camera: fps shows whether the pipeline keeps up, latency
and drops are what a user sees. --pace fast feeds frames as fast as the pipeline takes them: fps is the ceiling.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import time
from pathlib import Path

from realtime.atomic import atomic_write_json
from realtime.builder import SUMMARY_WARMUP_FRAMES as WARMUP_FRAMES
from realtime.builder import add_model_arguments, open_swapper, run_live
from realtime.errors import SwapcamError
from realtime.live import add_pipeline_arguments, add_source_arguments, open_source_from_args, options_from_args
from realtime.runner import format_summary
from realtime.sources import PACES

log = logging.getLogger("swapcam.bench")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_source_arguments(parser, default_source="synthetic")
    parser.add_argument(
        "--frames",
        type=int,
        default=300,
        help=f"frames to run (the first {WARMUP_FRAMES} are warm-up, left out of the percentiles)",
    )
    parser.add_argument(
        "--pace",
        default="realtime",
        choices=PACES,
        help="realtime = feed at the source's fps like a camera (latency, drops); "
        "fast = as fast as possible (ceiling fps)",
    )
    parser.add_argument(
        "--sink", default="null", help="where frames go while measuring: null, file:PATH.mp4, vcam, window"
    )
    parser.add_argument("--json", default=None, help="write the full results to this JSON file")
    add_pipeline_arguments(parser)


def headroom_fps(summary: dict) -> float | None:
    """fps the slowest thread could sustain from its p50 busy time (landmarks thread, inference thread, sink)."""
    st = summary["stages_ms"]

    def p50(*names: str) -> float:
        return sum((st.get(n) or {}).get("p50") or 0.0 for n in names)

    inference = p50("align", "swap", "colour", "sharpen", "compose", "mouth", "overlay")
    busiest = max(p50("landmarks", "smooth"), inference, p50("sink"))
    return round(1000.0 / busiest, 1) if busiest > 0 else None


def run(args: argparse.Namespace) -> int:
    from realtime.sinks import check_sink_spec, open_sink

    check_sink_spec(args.sink)
    if args.frames < WARMUP_FRAMES + 10:
        raise SwapcamError(f"--frames {args.frames}: expected at least {WARMUP_FRAMES + 10}")
    options = options_from_args(args)
    swapper = open_swapper(args.model, args.providers, args.threads)
    log.info("model %s", swapper.describe())
    source = open_source_from_args(args, args.pace, n_frames=args.frames)
    try:
        sink = open_sink(args.sink, source.width, source.height, source.fps)
        try:
            summary, interrupted = run_live(swapper, source, sink, options, max_frames=args.frames)
        finally:
            sink.close()
    finally:
        source.close()
    summary["headroom_fps"] = headroom_fps(summary)
    result = {
        "benchmark": "swapcam live pipeline",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source.describe(),
        "resolution": [source.width, source.height],
        "pace": args.pace,
        "sink": args.sink,
        "model": {
            "path": str(swapper.path),
            "size": swapper.info.size,
            "preset": swapper.info.preset,
            "coverage": swapper.info.coverage,
            "format": swapper.info.format,
        },
        "provider": swapper.provider,
        "threads": args.threads,
        "options": dataclasses.asdict(options),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "warmup_frames": WARMUP_FRAMES,
        "interrupted": interrupted,
        **summary,
    }
    print(
        f"swapcam bench: {result['source']}, model {Path(swapper.path).name} ({swapper.info.size}px), "
        f"{swapper.provider}, pace {args.pace}"
    )
    print(format_summary(summary))
    print(f"headroom: slowest thread p50 allows {summary['headroom_fps']} fps")
    if args.json:
        out = atomic_write_json(args.json, result, indent=2)
        print(f"wrote {out}")
    return 0
