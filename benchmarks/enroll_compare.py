"""Enrolment: fine-tuning the shipped model vs training the same model from scratch, for the same time budget.

The user is the carphone talking head (realtime.samples.talking_clip, upscaled to 640x480 as `swapcam eval` does):
frames 0-89 are enrolled with `swapcam enroll`'s own capture (quality gate, faceset), frames 90-119 are never trained
on and measure the result: reconstruction PSNR (you -> you, decoder A) on their aligned faces, recorded over wall time
(every --every seconds of training), with the target's (Grace Hopper, the demo target) held-out PSNR beside it, which
says whether decoder B still reads the fine-tuned encoder. Each mode trains in its own fresh run folder.

    python benchmarks/enroll_compare.py --minutes 15 --every 30 --json benchmarks/results/enroll-compare.json
    python benchmarks/enroll_compare.py --minutes 1 --every 15 --modes finetune --decoder-b-lr 0.1

Modes: ``finetune`` (enroll's default: the demo checkpoint, decoder B at --decoder-b-lr, default enroll's policy)
and ``scratch`` (random weights, everything at full rate, the demo recipe's learning rate).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime.align import DEFAULT_COVERAGE, align  # noqa: E402
from realtime.atomic import atomic_write_json  # noqa: E402
from realtime.errors import SwapcamError  # noqa: E402

log = logging.getLogger("swapcam.enroll_compare")
MODES = ("finetune", "scratch")


def eval_faces(frames: tuple[int, int], size: int, coverage: float) -> np.ndarray:
    """Aligned faces (N x 3 x S x S RGB float) of carphone frames A..B-1, the way the faceset's are cut."""
    from realtime.landmarks import create_detector
    from realtime.samples import talking_clip
    from training.augment import to_nchw_rgb

    clip, _ = talking_clip((640, 480))
    detector = create_detector("mediapipe", mode="static")
    detector.warmup()
    crops = []
    try:
        for frame in clip[frames[0] : frames[1]]:
            faces = detector.detect(frame)
            if faces:
                crops.append(align(frame, faces[0].landmarks, size, coverage)[0])
    finally:
        detector.close()
    if not crops:
        raise SwapcamError(f"no face found in carphone frames {frames[0]}-{frames[1] - 1}")
    return to_nchw_rgb(np.stack(crops))


def run_mode(mode: str, args: argparse.Namespace, faceset: Path, target, held: np.ndarray, workdir: Path) -> dict:
    """One training run of ``mode``; PSNR on ``held`` every ``args.every`` seconds of training."""
    from training.enroll import AUGMENT_OFF, HELD_B_FACES, TuneOptions, evenly, fine_tune
    from training.train import evaluate_psnr

    run_dir = workdir / f"run-{mode}"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # each measurement starts from its own beginning
    curve: list[dict] = []
    clock = {"start": 0.0, "eval": 0.0, "last": 0.0}
    target_faces: dict[str, np.ndarray] = {}

    def measure(p) -> bool:
        now = time.monotonic()
        if not curve:  # after the first step: the run's set-up (data, probe) is not training time
            clock["start"] = now
        train_s = clock["last"] = now - clock["start"] - clock["eval"]
        if curve and train_s < len(curve) * args.every:
            return False
        t0 = time.monotonic()
        user = evaluate_psnr(p.model, held, held[:1], p.device)["a"]
        target_held = target_faces.setdefault("held_b", evenly(p.data.held_b, HELD_B_FACES))
        tgt = evaluate_psnr(p.model, held[:1], target_held, p.device)["b"]
        clock["eval"] += time.monotonic() - t0
        curve.append(
            {
                "step": p.step,
                "train_s": round(train_s, 1),
                "wall_s": round(now - clock["start"], 1),
                "psnr_user_heldout": user,
                "psnr_target_heldout": tgt,
            }
        )
        log.info(
            "%s: %5.0f s, step %d: you (frames held out) %.2f dB, target %.2f dB", mode, train_s, p.step, user, tgt
        )
        return False

    opts = TuneOptions(
        minutes=args.minutes,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        scratch=mode == "scratch",
        decoder_b_lr=None if mode == "scratch" else args.decoder_b_lr,
        augment_off=AUGMENT_OFF if args.augment_off is None else args.augment_off,
        patience=0,  # the comparison runs the whole budget
        seed=args.seed,
        threads=args.threads,
        name="carphone",
    )
    t0 = time.monotonic()
    summary = fine_tune(faceset, target, run_dir, opts, progress=not args.no_progress, callback=measure)
    wall = time.monotonic() - t0
    from models.checkpoint import load_checkpoint, model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(run_dir / "checkpoint.pt"))
    import torch

    final = evaluate_psnr(model, held, held[:1], torch.device("cpu"))["a"]
    tgt = evaluate_psnr(model, held[:1], target_faces["held_b"], torch.device("cpu"))
    curve.append(
        {
            "step": summary["step"],
            "train_s": round(clock["last"], 1),
            "wall_s": None,
            "psnr_user_heldout": final,
            "psnr_target_heldout": tgt["b"],
        }
    )
    run_config = load_checkpoint(run_dir / "checkpoint.pt")["train_config"]
    return {
        "mode": mode,
        "steps": summary["step"],
        "decoder_b_lr": summary["decoder_b_lr"],
        "augment_off": run_config["augment_off"],
        "lr": run_config["lr"],
        "seconds_with_probe_and_saves": round(wall, 1),
        "final_psnr_user_heldout": final,
        "final_psnr_train": summary["psnr"],
        "curve": curve,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget per mode")
    parser.add_argument("--steps", type=int, default=0, help="cap on steps per mode (0: the budget decides)")
    parser.add_argument("--every", type=float, default=30.0, help="seconds of training between measurements")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: finetune, scratch")
    parser.add_argument(
        "--decoder-b-lr", type=float, default=None, help="finetune: decoder B's lr fraction (default: enroll's)"
    )
    parser.add_argument("--lr", type=float, default=0.0, help="learning rate (0: enroll's, per mode)")
    parser.add_argument(
        "--augment-off", type=float, default=None, help="clean targets from this fraction of the steps (enroll's)"
    )
    parser.add_argument("--batch", type=int, default=0, help="faces per identity per step (0: enroll's default)")
    parser.add_argument("--enrol-frames", default="0:90", help="carphone frames enrolled (A:B)")
    parser.add_argument("--eval-frames", default="90:120", help="carphone frames measured, never trained on (A:B)")
    parser.add_argument("--workdir", default="runs/enroll-compare", help="faceset and run folders")
    parser.add_argument("--cache", default=None, help="demo target faceset cache (default: enroll's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from realtime.native import quiet_native_logs

    quiet_native_logs()
    try:
        return _main(args)
    except SwapcamError as exc:
        print(f"enroll_compare: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _main(args: argparse.Namespace) -> int:
    from models.checkpoint import load_checkpoint
    from training.enroll import capture, capture_report, default_cache, parse_frames, resolve_target

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise SwapcamError(f"--modes {args.modes!r}: choose from {', '.join(MODES)}")
    enrol, held_range = parse_frames(args.enrol_frames), parse_frames(args.eval_frames)
    if enrol[1] is None or held_range[1] is None:
        raise SwapcamError("--enrol-frames and --eval-frames need both ends (A:B)")
    workdir = Path(args.workdir)
    target = resolve_target("demo", Path(args.cache) if args.cache else default_cache(), not args.no_progress)
    start = load_checkpoint(target.checkpoint)
    size, coverage = int(start["model_config"]["size"]), float(start.get("coverage", DEFAULT_COVERAGE))
    cap = capture("carphone", workdir / "faceset", size, coverage, enrol, progress=not args.no_progress)
    print(capture_report(cap))
    held = eval_faces((held_range[0], held_range[1]), size, coverage)
    results = {}
    for mode in modes:
        results[mode] = run_mode(mode, args, workdir / "faceset", target, held, workdir)
    report = {
        "benchmark": "benchmarks/enroll_compare.py",
        "argv": sys.argv[1:],
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "budget_minutes": args.minutes,
        "enrol_frames": args.enrol_frames,
        "eval_frames": args.eval_frames,
        "enrolled_faces": cap.total_faces,
        "eval_faces": int(len(held)),
        "target": target.name,
        "results": results,
    }
    import torch

    report["torch"] = torch.__version__
    report["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    print(format_table(report))
    if args.json:
        atomic_write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def format_table(report: dict) -> str:
    lines = [
        f"carphone frames {report['enrol_frames']} enrolled ({report['enrolled_faces']} faces), frames "
        f"{report['eval_frames']} measured ({report['eval_faces']} faces), target {report['target']}, "
        f"{report['budget_minutes']:g} min per mode on {report['device']}:"
    ]
    for mode, res in report["results"].items():
        curve = " ".join(f"{c['train_s']:.0f}s:{c['psnr_user_heldout']:.2f}" for c in res["curve"])
        last = res["curve"][-1] if res["curve"] else {}
        lines.append(
            f"  {mode:9s} steps {res['steps']:5d}, decoder B lr x{res['decoder_b_lr']:g}: held-out PSNR you "
            f"{res['final_psnr_user_heldout']:.2f} dB, target {last.get('psnr_target_heldout', float('nan')):.2f} dB"
        )
        lines.append(f"            curve (train s: dB) {curve}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
