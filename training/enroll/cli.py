"""`swapcam enroll`: its arguments and the command, capture -> fine-tune -> export, each step resumable."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from realtime.align import DEFAULT_COVERAGE
from realtime.atomic import atomic_write_json
from realtime.errors import SwapcamError
from training.enroll.capturing import MIN_FACES, capture, capture_report, check_source, parse_frames
from training.enroll.export import export_enrolled, live_command
from training.enroll.status import StatusFile
from training.enroll.target import default_cache, resolve_target
from training.enroll.tuning import AUGMENT_OFF, FINE_TUNE_LR, SCRATCH_LR, TuneOptions, fine_tune, held_out_text
from training.train import add_occluder_arguments, occluders_from_args

FACESET_DIR = "faceset"
RUN_DIR = "run"
SUMMARY_JSON = "enroll.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        default=None,
        help="you: a camera (0, /dev/video0), a video file, or 'carphone' / 'synthetic[:PORTRAIT]' (built-in clips); "
        "leave out to reuse DIR/faceset as it is",
    )
    parser.add_argument("--out", required=True, help="enrolment folder DIR: faceset/, run/, swap-*.onnx, enroll.json")
    parser.add_argument(
        "--target",
        default="demo",
        help="who you become: demo (Grace Hopper, the shipped demo model's face), a faceset folder, or a training "
        "run folder whose checkpoint fine-tuning starts from",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget (0: only --steps)")
    parser.add_argument(
        "--capture-seconds", type=float, default=60.0, help="camera: capture for at most this long (q ends it early)"
    )
    parser.add_argument("--frames", default=None, metavar="A:B", help="video or clip: use frames A..B-1 only")
    parser.add_argument(
        "--scratch", action="store_true", help="train from random weights instead of the shipped ones (to compare)"
    )
    parser.add_argument("--steps", type=int, default=0, help="cap on training steps (0: what --minutes allows)")
    parser.add_argument("--batch", type=int, default=0, help="faces per identity per step (0: 8 on a CPU, 32 on a GPU)")
    parser.add_argument(
        "--lr", type=float, default=0.0, help=f"learning rate (0: {FINE_TUNE_LR:g}; {SCRATCH_LR:g} with --scratch)"
    )
    parser.add_argument(
        "--decoder-b-lr",
        type=float,
        default=None,
        help="decoder B's learning rate as a fraction of --lr (default: frozen (0) when the starting checkpoint "
        "already draws the target, i.e. demo or RUN; 1 for a new FACESET target or --scratch)",
    )
    parser.add_argument(
        "--augment-off",
        type=float,
        default=AUGMENT_OFF,
        help="fraction of the steps from which the targets are your aligned faces as they are: no flip, affine or "
        "colour jitter (swapcam train --augment-off; +2 dB on held-out frames in 4 minutes, README). 1: never",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=6,
        help="stop when held-out PSNR has not improved for this many of the run's 25 evaluations (0: never)",
    )
    add_occluder_arguments(parser)
    parser.add_argument("--name", default="me", help="your name in the exported model's metadata")
    parser.add_argument(
        "--cache", default=str(default_cache()), help="where the demo target's faceset is built once (then reused)"
    )
    parser.add_argument("--capture-only", action="store_true", help="stop after the capture")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, batches and augmentation")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument(
        "--status",
        default=None,
        metavar="FILE",
        help="keep a JSON status here, rewritten atomically as it goes (stage capture/train/export/done/error, "
        "step, steps, seconds, eta, model): what `swapcam serve`'s 'use my face' page shows",
    )


def enroll(args: argparse.Namespace) -> dict:
    """The whole command; returns what it did (also written to DIR/enroll.json)."""
    out = Path(args.out)
    progress = not args.no_progress
    status = StatusFile(getattr(args, "status", None))
    try:
        return _enroll(args, out, progress, status)
    except BaseException as exc:
        status.write("error", message=str(exc) or type(exc).__name__)
        raise


def _enroll(args: argparse.Namespace, out: Path, progress: bool, status: StatusFile) -> dict:
    from models.checkpoint import load_checkpoint
    from training.faceset import FACES_JSON, read_index

    frames = parse_frames(args.frames)
    if args.source is not None:
        check_source(args.source)  # before any slow step: a typo costs nothing
    elif not (out / FACESET_DIR / FACES_JSON).is_file():
        raise SwapcamError(f"--source is needed: {out / FACESET_DIR} holds no faceset yet")
    if args.minutes < 0 or args.steps < 0 or args.batch < 0:
        raise SwapcamError(f"--minutes {args.minutes}, --steps {args.steps}, --batch {args.batch}: must be >= 0")
    if not args.capture_only and args.minutes == 0 and args.steps == 0:
        raise SwapcamError("--minutes 0 needs --steps N (a budget of some kind)")
    cache = Path(args.cache)
    target = resolve_target(args.target, cache, progress)
    start = load_checkpoint(target.checkpoint)
    size, coverage = int(start["model_config"]["size"]), float(start.get("coverage", DEFAULT_COVERAGE))
    target_coverage = float(read_index(target.faceset).get("coverage", DEFAULT_COVERAGE))
    if abs(target_coverage - coverage) > 1e-6:
        raise SwapcamError(
            f"--target {args.target}: faceset {target.faceset} has coverage {target_coverage}, the model {coverage}; "
            f"re-extract it with --coverage {coverage}"
        )
    faceset = out / FACESET_DIR
    result: dict[str, Any] = {"target": {"kind": target.kind, "name": target.name, "faceset": str(target.faceset)}}
    if args.source is not None:
        status.write("capture")
        cap = capture(args.source, faceset, size, coverage, frames, args.capture_seconds, progress)
        print(capture_report(cap))
        result["capture"] = cap.stats | {"total_faces": cap.total_faces, "coverage": cap.meter.state()}
    n_faces = len(read_index(faceset)["faces"])
    if n_faces < MIN_FACES:
        raise SwapcamError(
            f"{faceset} holds {n_faces} usable faces, fewer than {MIN_FACES}: capture longer, closer, in better light"
        )
    if args.capture_only:
        return result
    opts = TuneOptions(
        minutes=args.minutes,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        scratch=args.scratch,
        decoder_b_lr=args.decoder_b_lr,
        augment_off=args.augment_off,
        occluders=occluders_from_args(args),
        occluder_face=args.occluder_face,
        patience=args.patience,
        seed=args.seed,
        threads=args.threads,
        name=args.name,
    )
    status.write("train", step=0, steps=None)
    summary = fine_tune(faceset, target, out / RUN_DIR, opts, progress, callback=status.training)
    status.write("export")
    exported = export_enrolled(out / RUN_DIR, out)
    model = Path(exported["path"])
    psnr = summary["psnr"]
    why = (
        "Ctrl-C"
        if summary["interrupted"]
        else "held-out PSNR plateau"
        if summary["held_out"]["plateau"]
        else "time budget"
        if summary["out_of_time"]
        else "steps done"
    )
    print(
        f"{out / RUN_DIR}: step {summary['step']} ({why}; {'from scratch' if args.scratch else 'fine-tuned'}, "
        f"decoder B lr x{summary['decoder_b_lr']:g}); PSNR you {psnr.get('a', math.nan):.2f} dB "
        f"({held_out_text(psnr, summary['holdout'])}), {target.name} {psnr.get('b', math.nan):.2f} dB"
    )
    print(f"wrote {model} (you -> {target.name}, {exported['info'].size} px)")
    print(f"go live: {live_command(model)}")
    result |= {
        "train": {k: v for k, v in summary.items() if k != "identities"},
        "model": str(model),
        "live": live_command(model),
    }
    atomic_write_json(out / SUMMARY_JSON, result)
    status.write("done", model=str(model))
    return result


def run(args: argparse.Namespace) -> int:
    enroll(args)
    return 0
