"""The main demo: the live pipeline (same threads as `swapcam live`) on the built-in synthetic camera clip of the
astronaut portrait, with the shipped demo model (astronaut -> Grace Hopper). Needs no camera and no downloads.

Writes the swapped video (MP4 with a metadata note that it is synthetic) and a side-by-side preview PNG (camera |
swapped), then prints the benchmark summary. --window / --vcam also show it live when a display / virtual camera
is there (the demo goes on without them otherwise).

Written to a file only, the clip is read as fast as the pipeline takes it (every frame counts), so the summary gives
throughput and stage cost, and says that the frames' queueing delay is not a live latency; shown live (--window,
--vcam) the clip plays at 30 fps like a camera and the summary gives the end-to-end latency (`swapcam bench` too).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from realtime.atomic import atomic_write_json, atomic_write_png
from realtime.builder import add_model_arguments, open_swapper, run_live
from realtime.errors import SwapcamError
from realtime.live import add_pipeline_arguments, options_from_args
from realtime.runner import format_summary
from realtime.samples import PORTRAITS

log = logging.getLogger("swapcam.demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default="demo-out/swapped.mp4", help="output video (a preview PNG is written beside it)"
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--direction",
        default="a2b",
        choices=("a2b", "b2a"),
        help="shipped demo model used when --model is left out: a2b = astronaut -> Grace Hopper "
        "(clip of the astronaut), b2a = the reverse",
    )
    parser.add_argument("--frames", type=int, default=150, help="frames of the synthetic clip to swap (30 fps)")
    parser.add_argument(
        "--window", action="store_true", help="also show the output in a window (when a display is available)"
    )
    parser.add_argument(
        "--vcam", action="store_true", help="also send the output to the virtual camera (when one is set up)"
    )
    parser.add_argument("--json", default=None, help="also write the benchmark summary as JSON")
    add_pipeline_arguments(parser, label_default=True)


def _optional_sink(kind: str, width: int, height: int, fps: float):
    from realtime.sinks import open_sink

    try:
        return open_sink(kind, width, height, fps)
    except SwapcamError as exc:
        print(f"(skipping --{'vcam' if kind == 'vcam' else 'window'}: {exc})")
        return None


def run(args: argparse.Namespace) -> int:
    from realtime.sinks import TeeSink
    from realtime.sinks.file import FileSink
    from realtime.sources import synthetic_source

    if args.frames < 2:
        raise SwapcamError(f"--frames {args.frames}: expected >= 2")
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise SwapcamError(f"--out {out}: use an .mp4 file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    swapper = open_swapper(args.model, args.providers, args.threads, direction=args.direction)
    portrait = "astronaut" if args.direction == "a2b" else "grace_hopper"
    if args.model is None:
        portrait = swapper.info.identities[0] if swapper.info.identities[0] in PORTRAITS else portrait
    print(f"model {swapper.describe()}")
    options = options_from_args(args)
    width, height, fps = 640, 480, 30.0
    sinks = [FileSink(out, width, height, fps)]
    if args.window:
        sinks.append(_optional_sink("window", width, height, fps))
    if args.vcam:
        sinks.append(_optional_sink("vcam", width, height, fps))
    sinks = [s for s in sinks if s is not None]
    # Written to a file only, every frame counts (fast pace); shown live, the clip plays at 30 fps like a camera.
    live_view = len(sinks) > 1
    source = synthetic_source(
        portrait, pace="realtime" if live_view else "fast", n_frames=args.frames, size=(width, height)
    )
    sink = TeeSink(sinks)
    preview: dict[str, np.ndarray] = {}
    middle = args.frames // 2

    def keep_preview(frame, image) -> None:
        # The first frame with a face at or after the clip's middle: a representative pose, not the start-up.
        if "swapped" not in preview and frame.index >= middle and frame.faces:
            preview["camera"], preview["swapped"] = frame.image, image

    try:
        summary, interrupted = run_live(swapper, source, sink, options, max_frames=args.frames, on_frame=keep_preview)
    finally:
        sink.close()
        source.close()
    preview_path = out.with_name(out.stem + "_preview.png")
    if preview:
        atomic_write_png(preview_path, np.hstack([preview["camera"], preview["swapped"]]))
    print(format_summary(summary))
    print(f"wrote {out} ({summary['frames_out']} frames, metadata note: synthetic)")
    if preview:
        print(f"wrote {preview_path} (camera | swapped)")
    else:
        print("no frame with a face after the clip's middle: no preview written")
    if args.json:
        path = atomic_write_json(
            args.json, {"model": str(swapper.path), "source": source.describe(), **summary}, indent=2
        )
        print(f"wrote {path}")
    return 130 if interrupted else 0
