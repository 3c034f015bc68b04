"""Run the live face swap: a camera, video file, image or the synthetic clip in; a virtual camera, window, MP4 file
or nothing out. Stages run in threads with one-slot hand-offs (newest frame wins). Ctrl-C stops cleanly.
Example: `swapcam live --model ab.onnx --source 0 --sink vcam --label`; a file: `--source talk.mp4 --sink
file:out.mp4 --pace fast`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from models.contract import DFM_DEFAULT_COVERAGE
from realtime.builder import ModelFolderWatcher, add_model_arguments, open_swapper, run_live
from realtime.colour import COLOUR_MODES
from realtime.compose import BLEND_MODES
from realtime.controls import Switchboard
from realtime.errors import SwapcamError
from realtime.eyes import EYES_MODES
from realtime.mouth import MOUTH_MODES
from realtime.occlusion import OCCLUSION_MODES
from realtime.pipeline import PipelineOptions
from realtime.runner import format_summary
from realtime.sources import PACES
from realtime.temporal import MAX_WEIGHT
from realtime.upscale import SHARPEN_MODES

log = logging.getLogger("swapcam.live")


def add_compositing_arguments(parser: argparse.ArgumentParser) -> None:
    """How the swapped face is put into the frame (live, bench, demo and eval share these). The window's keys and
    the WebRTC page switch the same options while running (realtime.controls)."""
    parser.add_argument(
        "--colour",
        default=PipelineOptions.colour,
        choices=COLOUR_MODES,
        help="colour transfer to the camera's face: rct = Reinhard in LAB inside the mask, "
        "hist = histogram matching, none",
    )
    parser.add_argument(
        "--mouth",
        default=PipelineOptions.mouth,
        choices=MOUTH_MODES,
        help="the inside of the mouth: auto = the camera's own (lips, teeth, tongue) fading in as the mouth opens, all "
        "of it when wide open, the swap's lips when closed; keep = always the camera's; swap = always the model's",
    )
    parser.add_argument(
        "--eyes",
        default=PipelineOptions.eyes,
        choices=EYES_MODES,
        help="follow = the swap's eyelids close as far as the camera's (blinks, squints; a landmark-driven lid warp "
        "of the swapped face); swap = the model's own eyes, always",
    )
    parser.add_argument(
        "--expression",
        type=float,
        default=PipelineOptions.expression,
        help="0..1: how much of the camera's expression the swapped face takes on: its mouth corners (a smile), "
        "lips and brows are warped from the person's resting face towards where the camera has them this frame "
        "(1 = all of it, the default; 0 = the model's own expression). A model that draws the camera's expression "
        "itself (measured on each face's first frame) gets correspondingly less, so nothing is drawn twice "
        "(README 'Expression')",
    )
    parser.add_argument(
        "--blend",
        default=PipelineOptions.blend,
        choices=BLEND_MODES,
        help="the seam at the face's edge: feather = one soft alpha edge; multiband = Laplacian-pyramid blend "
        "(skin tone blends over a wide band, detail over a narrow one)",
    )
    parser.add_argument(
        "--sharpen",
        default=PipelineOptions.sharpen,
        choices=SHARPEN_MODES,
        help="paste-back sharpness of the model's face: match = blurred to the camera's own sharpness when it is "
        "crisper than the camera (a soft or low-resolution camera), never sharpened; none = as the model draws it; "
        "unsharp = unsharp mask; espcn = the shipped learned x2 sub-pixel upscaler (models/upscaler)",
    )
    parser.add_argument(
        "--occlusion",
        default=PipelineOptions.occlusion,
        choices=OCCLUSION_MODES,
        help="what is in front of the face (a hand, a cup, a microphone) stays in front: appearance = where the "
        "camera crop departs from the face's own learned look; hands = mediapipe's hand landmarks (every other "
        "frame); auto = both; off = only the model's own mask. A face mostly hidden fades to the camera's",
    )
    parser.add_argument(
        "--temporal",
        type=float,
        default=PipelineOptions.temporal,
        help=f"weight of the previous frames in each face's colour statistics and blend mask, 0..{MAX_WEIGHT} "
        "(0 = every frame on its own; reset when a face is lost or jumps)",
    )
    parser.add_argument(
        "--coverage",
        type=float,
        default=None,
        help="face framing of the crop fed to the model (crop side / landmark box side, 0.5..4.0): larger shows "
        "the model more forehead and cheeks; when left out, the model's own (swapcam metadata; "
        f"{DFM_DEFAULT_COVERAGE:g} for a .dfm without it, DeepFaceLive's default framing)",
    )
    parser.add_argument(
        "--morph",
        type=float,
        default=PipelineOptions.morph,
        help="how far towards the model's face, 0..1 (1 = all the way; the default is DeepFaceLive's): for swapcam "
        "models with identity re-centring, the share of the camera person's mean latent code replaced by the drawn "
        "identity's (0 = the plain swap; README 'Identity re-centring'); for DeepFaceLive AMP .dfm models, their "
        "morph_value; other models ignore it",
    )


def compositing_options(args: argparse.Namespace) -> dict:
    """The PipelineOptions fields that add_compositing_arguments sets."""
    names = ("colour", "mouth", "eyes", "expression", "blend", "sharpen", "occlusion", "temporal", "coverage", "morph")
    return {name: getattr(args, name) for name in names}


def add_pipeline_arguments(parser: argparse.ArgumentParser, label_default: bool = False) -> None:
    """The per-stream swap options. ``label_default=True`` (the demo): the label is on unless --no-label."""
    parser.add_argument(
        "--max-faces",
        type=int,
        default=1,
        help="with --faces all: swap up to this many faces per frame; with the other --faces choices: look for at "
        "least this many (and 4) to choose from",
    )
    parser.add_argument(
        "--faces",
        default=PipelineOptions.faces,
        metavar="all|largest|N|match:IMAGE",
        help="which faces are swapped, the others left as the camera shows them: all = every face up to "
        "--max-faces; largest = the largest only; N = the N largest; match:IMAGE = the one face closest to the "
        "person in the photo IMAGE (by face descriptor with the eval extra, else by landmark geometry). The window's "
        "key f switches all/largest live",
    )
    add_compositing_arguments(parser)
    parser.add_argument("--hud", action="store_true", help="draw fps and per-stage milliseconds on the output")
    if label_default:
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--label",
            dest="label",
            action="store_true",
            default=True,
            help="stamp the visible 'synthetic video' label on the output (the default here)",
        )
        group.add_argument(
            "--no-label", dest="label", action="store_false", help="leave out the visible 'synthetic video' label"
        )
    else:
        parser.add_argument(
            "--label", action="store_true", help="stamp a visible 'synthetic video' label on the output"
        )
    parser.add_argument("--no-smoothing", action="store_true", help="turn off One Euro smoothing of the landmarks")
    parser.add_argument(
        "--min-cutoff",
        type=float,
        default=PipelineOptions.min_cutoff,
        help="One Euro min cutoff in Hz (lower = steadier face at rest, more lag)",
    )
    parser.add_argument(
        "--beta",
        type=float,
        default=PipelineOptions.beta,
        help="One Euro speed coefficient per px/s (higher = less lag when the head moves)",
    )


def add_source_arguments(parser: argparse.ArgumentParser, default_source: str) -> None:
    parser.add_argument(
        "--source",
        default=default_source,
        help="camera index (0), device path (/dev/video0), video file, image, or 'synthetic' / "
        "'synthetic:grace_hopper' (the built-in clip)",
    )
    parser.add_argument("--width", type=int, default=640, help="capture width (camera) / synthetic clip width")
    parser.add_argument("--height", type=int, default=480, help="capture height (camera) / synthetic clip height")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frame rate to request")
    parser.add_argument(
        "--mjpg", action="store_true", help="ask the camera for MJPG (more fps over USB 2 at high resolutions)"
    )
    parser.add_argument(
        "--camera-retry",
        type=float,
        default=3.0,
        help="seconds to keep retrying an absent or unplugged camera before giving up",
    )
    parser.add_argument("--loop", action="store_true", help="loop a video file source")


def options_from_args(args: argparse.Namespace) -> PipelineOptions:
    options = PipelineOptions(
        max_faces=args.max_faces,
        faces=args.faces,
        label=args.label,
        hud=args.hud,
        smoothing=not args.no_smoothing,
        min_cutoff=args.min_cutoff,
        beta=args.beta,
        **compositing_options(args),
    )
    options.validate()
    return options


def open_source_from_args(args: argparse.Namespace, pace: str, n_frames: int | None = None):
    from realtime.sources import open_source

    if args.width < 64 or args.height < 64:
        raise SwapcamError(f"--width/--height {args.width}x{args.height}: expected at least 64x64")
    return open_source(
        args.source,
        pace=pace,
        n_frames=n_frames,
        width=args.width,
        height=args.height,
        fps=args.fps,
        mjpg=args.mjpg,
        retry_s=args.camera_retry,
        loop=args.loop,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_source_arguments(parser, default_source="0")
    parser.add_argument(
        "--sink",
        default="vcam",
        help="vcam (virtual camera; vcam:/dev/videoN for a given device), window, file:PATH.mp4, null",
    )
    parser.add_argument(
        "--vcam-backend",
        default=None,
        help="pyvirtualcam backend name; when left out, the platform's (v4l2loopback on Linux, obs elsewhere)",
    )
    parser.add_argument(
        "--pace",
        default="realtime",
        choices=PACES,
        help="video/image/synthetic sources: realtime = play at the file's fps like a camera, "
        "fast = as fast as possible, every frame processed",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        help="stop after this many frames; when left out, run until the source ends or Ctrl-C",
    )
    add_pipeline_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from realtime.sinks import check_sink_spec, open_sink

    check_sink_spec(args.sink)
    if args.frames is not None and args.frames < 1:
        raise SwapcamError(f"--frames {args.frames}: expected >= 1")
    options = options_from_args(args)
    swapper = open_swapper(args.model, args.providers, args.threads)
    log.info("model %s", swapper.describe())
    if options.coverage is not None:
        log.info("face coverage %g (--coverage; the model's is %g)", options.coverage, swapper.info.coverage)
    if swapper.has_morph:
        log.info("morph %g (--morph)", options.morph)
    source = open_source_from_args(args, args.pace)
    watcher: ModelFolderWatcher | None = None
    try:
        log.info("source %s", source.describe())
        sink = open_sink(args.sink, source.width, source.height, source.fps, vcam_backend=args.vcam_backend)
        board = Switchboard(options, notice=getattr(sink, "notice", None))  # a refused switch, on the window

        def on_start(runner) -> None:
            nonlocal watcher
            if hasattr(sink, "on_key"):  # the window: keys switch mouth, eyes, sharpen, ... live
                sink.on_key = board.key
                board.attach(runner)
            if args.model is not None and Path(args.model).is_dir():
                watcher = ModelFolderWatcher(
                    args.model,
                    swapper.path,
                    lambda new: runner.reconfigure(swapper=new),
                    args.providers,
                    args.threads,
                    faces=options.max_faces,
                ).start()
                log.info("watching %s: a newer model there is used as soon as it is written", args.model)

        try:
            log.info("sink %s (Ctrl-C to stop)", args.sink)
            summary, interrupted = run_live(swapper, source, sink, options, args.frames, on_start=on_start)
        finally:
            if watcher is not None:
                watcher.stop()
            sink.close()
    finally:
        source.close()
    if interrupted:
        print("stopped (Ctrl-C)")
    print(format_summary(summary))
    if args.sink.startswith("file:"):
        print(f"wrote {Path(args.sink[5:])} ({summary['frames_out']} frames)")
    return 0
