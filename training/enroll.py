"""Your own face in minutes: capture yourself, fine-tune the shipped model on your face, export it, go live.

You are the camera side of the swap (identity A: the shared encoder and decoder A learn your face); the target is
the face you are turned into (identity B). Three steps, each resumable (run the same command again to continue):

1. capture (DIR/faceset, the `swapcam extract` faceset format): faces from the camera or a video, rejected when
   blurry, too dark, over-exposed, cut by the frame edge or too small (each reason counted and shown). A coverage
   meter over head poses (yaw x pitch, 3 x 3) and expressions (neutral, mouth open, smile, eyes closed) says what
   is still missing; from a camera it prompts you ("turn your head a little to your left") in a window, or in the
   log without a display, until the meter is full or --capture-seconds pass (q / Esc ends it early).
2. fine-tune (DIR/run): from the shipped demo model's training checkpoint (or --target RUN's; --scratch: random
   weights), A = your faceset, B = the target's. The encoder and decoder A learn your face; decoder B is frozen when
   it already draws the target (demo, RUN; B's loss still keeps the shared encoder's code readable by it), and
   trains at full rate for a FACESET target it has never seen. Held-out PSNR on your faces never trained on is
   printed as it goes; training stops at --minutes, when that PSNR stops improving (--patience), or on Ctrl-C
   (what was learned is kept and exported).
3. export: DIR/swap-YYYYMMDD-HHMMSS.onnx (your face -> target, the swapcam ONNX contract, parity-checked, written
   atomically), then the command that goes live with it.

Targets: ``demo`` (Grace Hopper, the shipped demo model's B; its faceset is rebuilt offline once and cached in
--cache), a faceset folder (faces.json), or a training run folder (checkpoint.pt; its faceset B must exist).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from realtime.align import DEFAULT_COVERAGE
from realtime.atomic import atomic_write_json
from realtime.coverage import DEDUP_THRESHOLD, REJECT_REASONS, CoverageMeter, QualityGate, draw_coverage
from realtime.errors import SwapcamError
from realtime.types import Image
from training.demo_model import DEMO_CHECKPOINT
from training.train import OCCLUDERS, add_occluder_arguments, occluders_from_args

if TYPE_CHECKING:
    from training.train import TrainProgress

log = logging.getLogger("swapcam.enroll")

FACESET_DIR = "faceset"
RUN_DIR = "run"
SUMMARY_JSON = "enroll.json"
EXPORT_PREFIX = "swap-"  # DIR/swap-YYYYMMDD-HHMMSS[-N].onnx; the newest is realtime.builder.newest_model's pick
MIN_FACES = 16  # fewer usable faces than this cannot teach a face
# Clean targets for the second half of a fine-tune (swapcam train --augment-off): measured on carphone, 4 minutes
# from demo model v3, held-out PSNR 18.29 dB with augmented targets throughout vs 20.32 dB
# (benchmarks/results/enroll-v3-*-targets.json).
AUGMENT_OFF = 0.5


# ================================================================================================ capture
@dataclass
class CaptureResult:
    faceset: Path
    total_faces: int  # in the faceset, earlier runs included
    stats: dict[str, int]  # this run: frames, faces (kept), no_face, duplicates, and one count per reject reason
    meter: CoverageMeter


def parse_frames(text: str | None) -> tuple[int, int | None]:
    """``A:B`` -> (A, B) frames A..B-1 (either side may be left out); None -> (0, None)."""
    if text is None:
        return 0, None
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        a = int(start) if start.strip() else 0
        b = int(stop) if stop.strip() else None
    except ValueError:
        raise SwapcamError(f"--frames {text!r}: expected A:B (frames A to B-1, e.g. 0:90)") from None
    if a < 0 or (b is not None and b <= a):
        raise SwapcamError(f"--frames {text!r}: expected 0 <= A < B")
    return a, b


def is_camera(spec: str) -> bool:
    return spec.strip().isdigit() or spec.startswith("/dev/video")


def _is_clip_name(spec: str) -> bool:
    return spec == "carphone" or spec == "synthetic" or spec.startswith("synthetic:")


def check_source(spec: str) -> None:
    """A one-line SwapcamError for a --source that cannot be a camera, a built-in clip or a video file."""
    from realtime.media import media_kind

    if is_camera(spec) or _is_clip_name(spec):
        return
    path = Path(spec)
    if not path.exists():
        raise SwapcamError(f"--source {spec}: no such file (a video file, a camera index such as 0, or 'carphone')")
    if path.is_dir() or media_kind(path) != "video":
        raise SwapcamError(
            f"--source {spec}: not a video file (for photos, build DIR/faceset with `swapcam extract`, then run "
            "enroll without --source)"
        )


def _new_source_stats(fingerprint: str) -> dict:
    from training.extract import _new_stats

    return _new_stats(fingerprint) | {reason: 0 for reason in REJECT_REASONS}


def _file_frames(path: Path, start: int, stop: int | None) -> Iterator[tuple[int, Image]]:
    from realtime.media import capture_frames, open_video

    cap = open_video(path)
    if not cap.isOpened():
        cap.release()
        raise SwapcamError(f"--source {path}: cannot open the video (corrupt or unsupported)")
    try:
        for index, frame in capture_frames(cap, start):
            if stop is not None and index >= stop:
                return
            yield index, frame
    finally:
        cap.release()


def _clip_images(spec: str) -> list[Image]:
    """The frames of a built-in clip as `swapcam live --source` plays them once: carphone upscaled to 640x480, or
    the 90-frame synthetic clip of a portrait."""
    from realtime.samples import PORTRAITS, synthetic_clip, talking_clip

    if spec == "carphone":
        return talking_clip((640, 480))[0]
    portrait = spec.partition(":")[2] or "astronaut"
    if portrait not in PORTRAITS:
        raise SwapcamError(f"--source {spec}: unknown portrait {portrait!r}; choose from {', '.join(PORTRAITS)}")
    return synthetic_clip(portrait, 90).frames


def capture(
    source: str,
    faceset: str | Path,
    size: int,
    coverage: float = DEFAULT_COVERAGE,
    frames: tuple[int, int | None] = (0, None),
    seconds: float = 60.0,
    progress: bool = True,
    show: bool | None = None,
) -> CaptureResult:
    """Faces of ``source`` (a camera index/device, a video file, 'carphone' or 'synthetic[:portrait]') into the
    faceset folder, quality-gated, deduplicated, written atomically (training.extract.Extractor). A file or clip
    resumes where an earlier run stopped; a camera adds a new session for up to ``seconds`` (ended early when the
    coverage meter is full, or with q / Esc in the window). ``show``: a preview window with prompts (default: when
    the source is a camera and a display exists)."""
    from training.extract import Extractor, fingerprint

    check_source(source)
    camera = is_camera(source)
    if camera and frames != (0, None):
        raise SwapcamError("--frames applies to a video file or a built-in clip, not to a camera")
    if seconds <= 0:
        raise SwapcamError(f"--capture-seconds {seconds}: expected a positive number of seconds")
    gate = QualityGate(size, coverage)
    meter = CoverageMeter()
    ex = Extractor(Path(faceset), size, coverage, "mediapipe", max_faces=1, dedup=DEDUP_THRESHOLD)
    for entry in ex.index["faces"]:  # an earlier run's faces count towards the meter
        meter.update(np.asarray(entry["landmarks"], np.float64))
    totals = {k: 0 for k in ("frames", "faces", "no_face", "duplicates", *REJECT_REASONS)}
    try:
        if camera:
            _capture_camera(ex, source, gate, meter, totals, seconds, progress, show)
        else:
            start, stop = frames
            clip = _is_clip_name(source)
            key = source if clip else str(Path(source).resolve())
            fp = "builtin" if clip else fingerprint(Path(source))
            if frames != (0, None):  # another range of the same video is another source
                key += f"#frames={start}:{'' if stop is None else stop}"
            stats = ex.index["sources"].get(key)
            if stats is None or stats.get("fingerprint") != fp:
                stats = ex.index["sources"][key] = _new_source_stats(fp)
            if stats["done"]:
                log.info("%s: already captured (%d faces), skipped", source, stats["faces"])
            else:
                first = max(start, int(stats["next_frame"]))
                if clip:
                    images = _clip_images(source)
                    total: int | None = len(images) if stop is None else min(stop, len(images))
                    stream: Iterator[tuple[int, Image]] = ((i, images[i]) for i in range(first, total or 0))
                else:
                    from realtime.media import video_length

                    stream = _file_frames(Path(source), first, stop)
                    total = stop if stop is not None else video_length(source)
                _capture_stream(ex, key, stats, stream, gate, meter, totals, total, first, progress)
                stats["done"] = True
    finally:
        ex.save()  # also on Ctrl-C: what was captured stays captured
        ex.close()
    return CaptureResult(Path(faceset), len(ex.index["faces"]), totals, meter)


def _count(stats: dict, totals: dict, before: dict) -> None:
    for k in totals:
        totals[k] += int(stats.get(k, 0)) - int(before.get(k, 0))


def _capture_stream(
    ex,
    key: str,
    stats: dict,
    frames: Iterator[tuple[int, Image]],
    gate: QualityGate,
    meter: CoverageMeter,
    totals: dict,
    total: int | None,
    first: int,
    progress: bool,
) -> None:
    from tqdm import tqdm

    before = dict(stats)
    bar = tqdm(
        total=total, initial=first, desc="capture", unit="frame", file=sys.stderr, disable=not progress, leave=False
    )
    try:
        for index, frame in frames:
            for face in ex.add_frame(frame, key, index, stats, check=gate):
                meter.update(face.landmarks)
            stats["next_frame"] = index + 1
            stats["frames"] = int(stats.get("frames", 0)) + 1
            bar.update(1)
            rejected = sum(int(stats.get(r, 0)) for r in REJECT_REASONS)
            bar.set_postfix(kept=stats["faces"], rejected=rejected, coverage=f"{meter.fraction():.0%}", refresh=False)
    finally:
        bar.close()
        _count(stats, totals, before)


def _capture_camera(
    ex,
    spec: str,
    gate: QualityGate,
    meter: CoverageMeter,
    totals: dict,
    seconds: float,
    progress: bool,
    show: bool | None,
) -> None:
    from tqdm import tqdm

    from realtime.sinks.window import WindowSink, display_available
    from realtime.sources import open_source

    show = display_available() if show is None else show
    source = open_source(spec)
    key = f"camera:{spec}:{time.strftime('%Y%m%dT%H%M%S')}"
    stats = ex.index["sources"][key] = _new_source_stats("live")
    window = WindowSink("swapcam enroll (q: done)") if show else None
    last_prompt: str | None = ""
    last_log = 0.0
    t0 = time.monotonic()
    index = 0
    bar = tqdm(total=round(seconds), desc="capture", unit="s", file=sys.stderr, disable=not progress, leave=False)
    try:
        while time.monotonic() - t0 < seconds:
            frame = source.read()
            if frame is None:
                log.warning("camera %s stopped delivering frames", spec)
                break
            for face in ex.add_frame(frame.image, key, index, stats, check=gate):
                meter.update(face.landmarks)
            index += 1
            stats["frames"] = stats["next_frame"] = index
            prompt = meter.prompt()
            if window is not None:
                preview = cv2.flip(frame.image, 1)
                draw_coverage(preview, meter, mirrored=True)
                if not window.send(preview):
                    break
            elif prompt != last_prompt or time.monotonic() - last_log > 5.0:
                log.info("coverage %3.0f%%: %s", 100 * meter.fraction(), prompt or "done")
                last_prompt, last_log = prompt, time.monotonic()
            bar.n = min(round(seconds), int(time.monotonic() - t0))
            bar.set_postfix(kept=stats["faces"], coverage=f"{meter.fraction():.0%}", refresh=True)
            if prompt is None and len(meter) >= 4 * MIN_FACES:
                log.info("coverage meter full: capture done")
                break
    finally:
        bar.close()
        if window is not None:
            window.close()
        source.close()
        stats["done"] = True
        _count(stats, totals, {})


def capture_report(result: CaptureResult) -> str:
    s = result.stats
    rejected = ", ".join(f"{r} {s[r]}" for r in REJECT_REASONS if s.get(r)) or "none"
    missing = result.meter.missing()
    line = (
        f"{result.faceset}: {result.total_faces} faces ({s['faces']} new from {s['frames']} frames; rejected: "
        f"{rejected}; no face {s['no_face']}, near-duplicates {s['duplicates']}); coverage "
        f"{result.meter.fraction():.0%}"
    )
    return line + (f" (missing: {'; '.join(missing[:4])}{' ...' if len(missing) > 4 else ''})" if missing else "")


# ================================================================================================ target
@dataclass
class Target:
    """What the user is turned into: a checkpoint to start from and the faceset decoder B trains on."""

    kind: str  # demo | faceset | run
    checkpoint: Path  # the weights fine-tuning starts from (and the architecture --scratch builds afresh)
    faceset: Path
    name: str
    same_identity: bool  # the checkpoint's decoder B already draws this face


def default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "swapcam" / "demo-target"


def demo_checkpoint() -> Path:
    from models.contract import DEMO_DIR

    path = DEMO_DIR / DEMO_CHECKPOINT
    if not path.is_file():
        raise SwapcamError(f"the demo training checkpoint {path} is missing (reinstall swapcam)")
    return path


def demo_target_faceset(cache: str | Path, size: int, clips: int = 8, frames: int = 90, progress: bool = True) -> Path:
    """The demo model's faceset B (Grace Hopper), rebuilt offline by build-demo-model's own first step (same clips,
    seeds and extraction), once: later calls find it in ``cache``."""
    from training.demo_model import Recipe, make_facesets
    from training.faceset import read_index

    cache = Path(cache)
    folder = cache / "faceset" / "B"
    marker = cache / "done.json"
    want = {"clips": clips, "frames": frames, "size": size}
    if marker.is_file() and (folder / "faces.json").is_file():
        import json

        try:
            if json.loads(marker.read_text()) == want:
                return folder
        except ValueError:
            pass
    log.info("building the demo target's faceset once (synthetic clips of Grace Hopper -> faces), cached in %s", cache)
    make_facesets(cache, Recipe(clips=clips, frames=frames), size, progress)
    if not read_index(folder)["faces"]:
        raise SwapcamError(f"the demo target faceset {folder} came out empty")
    atomic_write_json(marker, want)
    return folder


def resolve_target(spec: str, cache: str | Path, progress: bool = True, demo_clips: int = 8) -> Target:
    """--target demo | FACESET | RUN as a Target (the demo faceset is built on first use)."""
    from models.checkpoint import CHECKPOINT, find_checkpoint, load_checkpoint
    from training.faceset import FACES_JSON

    if spec == "demo":
        ckpt = demo_checkpoint()
        state = load_checkpoint(ckpt)
        size = int(state["model_config"]["size"])
        faceset = demo_target_faceset(cache, size, clips=demo_clips, progress=progress)
        return Target("demo", ckpt, faceset, str(state["identities"][1]), True)
    path = Path(spec)
    if path.is_dir() and (path / FACES_JSON).is_file():
        return Target("faceset", demo_checkpoint(), path, path.resolve().name, False)
    if (path.is_dir() and (path / CHECKPOINT).is_file()) or (path.is_file() and path.suffix == ".pt"):
        ckpt = find_checkpoint(path)
        state = load_checkpoint(ckpt)
        folder = Path(str((state.get("train_config") or {}).get("b", "")))
        if not str(folder) or not (folder / FACES_JSON).is_file():
            raise SwapcamError(
                f"--target {spec}: its faceset B {folder} is not there; pass that faceset as --target instead"
            )
        names = state.get("identities") or ["A", folder.name]
        return Target("run", ckpt, folder, str(names[1]), True)
    raise SwapcamError(
        f"--target {spec}: not 'demo', a faceset folder (with {FACES_JSON}) or a training run (with {CHECKPOINT})"
    )


# ================================================================================================ fine-tune
# Measured with benchmarks/enroll_compare.py (carphone frames 0-89 enrolled, 90-119 held out, the demo target, 40
# steps x batch 8 on a shared 2-core CPU; PSNR you held out / Grace Hopper held out): decoder B frozen 18.09 / 21.41
# dB, at 0.1 x lr 18.08 / 21.39, at full rate 18.08 / 21.35 -- the same within noise, so frozen: it is cheaper (no
# weight gradients or Adam state for decoder B) and the shipped target stays exactly as shipped. Learning rate (frozen
# B): 1e-4 17.89 / 21.46, 2e-4 18.09 / 21.41, 5e-4 18.15 / 21.22 -- 2e-4 trades the least target for the user.
# Longer budgets may separate them: the lead's 15-minute enroll_compare runs with --decoder-b-lr 0 / 0.1 / 1 decide.
DECODER_B_SAME_TARGET = 0.0  # decoder B frozen when it already draws the target (its loss still trains the encoder)
FINE_TUNE_LR = 2e-4
SCRATCH_LR = 4e-4  # the demo recipe's
HOLDOUT = 0.1
PLATEAU_FROM = 0.4  # share of the run's steps before which a held-out plateau does not stop it
HELD_B_FACES = 16  # the target's held-out faces evaluated during training (all of them at the end)


@dataclass
class TuneOptions:
    minutes: float = 10.0  # wall-time budget of the training (0: none; then --steps must be given)
    steps: int = 0  # cap on the steps of this session (0: as many as the budget allows, from a timing probe)
    batch: int = 0  # faces per identity per step (0: 8 on a CPU, 32 on a GPU)
    lr: float = 0.0  # 0: FINE_TUNE_LR, or SCRATCH_LR with scratch
    scratch: bool = False
    decoder_b_lr: float | None = None  # None: the policy (frozen for the checkpoint's own target, else full rate)
    augment_off: float = AUGMENT_OFF  # fraction of the steps from which targets are clean (train --augment-off)
    occluders: float = OCCLUDERS  # share of samples with an occluder over the input (train --occluders)
    patience: int = 6  # held-out evaluations without improvement before stopping (0: never)
    evals: int = 25  # held-out evaluations over the run
    min_delta: float = 0.05  # dB that count as an improvement
    seed: int = 0
    threads: int = 0
    name: str = "me"


@dataclass
class HeldOut:
    """Held-out PSNR history of a run: the user's faces never trained on ('a') and the target's ('b')."""

    every: int
    patience: int
    min_delta: float
    history: list[dict] = field(default_factory=list)
    best: float = -math.inf
    best_step: int = 0
    stale: int = 0
    plateau: bool = False


def _device_batch() -> int:
    import torch

    return 32 if torch.cuda.is_available() else 8


def train_config_for(faceset_a: Path, target: Target, run_dir: Path, opts: TuneOptions, steps: int, model_name: str):
    from training.train import TrainConfig

    decoder_b = opts.decoder_b_lr
    if decoder_b is None:
        decoder_b = DECODER_B_SAME_TARGET if target.same_identity and not opts.scratch else 1.0
    lr = opts.lr or (SCRATCH_LR if opts.scratch else FINE_TUNE_LR)
    return TrainConfig(
        a=str(faceset_a),
        b=str(target.faceset),
        out=str(run_dir),
        preset=model_name,
        steps=steps,
        batch=opts.batch or _device_batch(),
        lr=lr,
        seed=opts.seed,
        preview_every=0,
        save_every=max(25, steps // 10),
        log_every=10,
        name_a=opts.name,
        name_b=target.name,
        warmup=min(300, max(1, steps // 10)) if opts.scratch else min(50, max(1, steps // 10)),
        lr_schedule="cosine",
        lr_final=0.1,
        warp_off=0.8,
        expressions=0.3,  # the demo recipe's: decoder B keeps opening a mouth it saw only in stills
        holdout=HOLDOUT,
        max_minutes=opts.minutes,
        init="" if opts.scratch else str(target.checkpoint),
        decoder_b_lr=decoder_b,
        augment_off=opts.augment_off,
        occluders=opts.occluders,
    )


def seconds_per_step(cfg, probe_steps: int = 3, threads: int = 0) -> float:
    """Time a few real training steps (augmentation included) of ``cfg`` on this machine: sizes the schedule to
    the time budget."""
    import torch

    from models.autoencoder import ModelConfig, get_preset
    from models.checkpoint import find_checkpoint, load_checkpoint
    from training.step import LossConfig, build_train_state, to_device, train_step
    from training.train import choose_device, load_data, step_arrays

    model_config = (
        ModelConfig.from_dict(load_checkpoint(find_checkpoint(cfg.init))["model_config"])
        if cfg.init
        else get_preset(cfg.preset)
    )
    device = choose_device(0, 1, threads)
    data = load_data(cfg, model_config.size)
    state = build_train_state(model_config, device, cfg.lr * 1e-3, cfg.seed, amp=cfg.amp and device.type == "cuda")
    times = []
    for step in range(probe_steps + 1):
        t0 = time.perf_counter()
        arrays_a, arrays_b = step_arrays(data, cfg, 0, step)
        train_step(state, to_device(arrays_a, device), to_device(arrays_b, device), LossConfig())
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))  # the first step pays one-time set-up


def held_out_callback(state: HeldOut, progress: bool) -> Callable[[TrainProgress], bool]:
    """A train() callback: held-out PSNR every ``state.every`` steps, logged; True (stop) once it has not improved
    by ``min_delta`` for ``patience`` evaluations."""
    from training.train import evaluate_psnr

    t0 = time.monotonic()

    def callback(p: TrainProgress) -> bool:
        if p.data.held_a is None or p.data.held_b is None or p.step % state.every:
            return False
        psnr = evaluate_psnr(p.model, p.data.held_a, evenly(p.data.held_b, HELD_B_FACES), p.device)
        state.history.append(
            {"step": p.step, "seconds": round(time.monotonic() - t0, 1), "held_a": psnr["a"], "held_b": psnr["b"]}
        )
        if psnr["a"] > state.best + state.min_delta:
            state.best, state.best_step, state.stale = psnr["a"], p.step, 0
        else:
            state.stale += 1
        _say(f"step {p.step}/{p.steps}: held-out PSNR you {psnr['a']:.2f} dB, target {psnr['b']:.2f} dB", progress)
        # random warp fades out late in the schedule and sharpens what it taught: not judged a plateau too early
        if state.patience and state.stale >= state.patience and p.step >= PLATEAU_FROM * p.steps:
            state.plateau = True
            _say(
                f"held-out PSNR stopped improving (best {state.best:.2f} dB at step {state.best_step}): stopping",
                progress,
            )
            return True
        return False

    return callback


def evenly(faces: np.ndarray, count: int) -> np.ndarray:
    """At most ``count`` of ``faces``, evenly spread."""
    if len(faces) <= count:
        return faces
    return faces[np.linspace(0, len(faces) - 1, count).round().astype(int)]


def _say(text: str, progress: bool) -> None:
    if progress:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)
    else:
        log.info("%s", text)


def fine_tune(
    faceset_a: str | Path,
    target: Target,
    run_dir: str | Path,
    opts: TuneOptions,
    progress: bool = True,
    callback: Callable[[TrainProgress], bool] | None = None,
) -> dict:
    """Train (or continue) DIR/run; returns train()'s summary plus 'held_out' (history, plateau) and
    'interrupted'. A run folder that already holds a checkpoint is continued for another budget."""
    from models.autoencoder import ModelConfig
    from models.checkpoint import CHECKPOINT, load_checkpoint
    from training.train import TrainingInterrupted, train

    run_dir = Path(run_dir)
    if opts.minutes <= 0 and opts.steps <= 0:
        raise SwapcamError("give a time budget (--minutes) or a number of steps (--steps)")
    saved = load_checkpoint(run_dir / CHECKPOINT) if (run_dir / CHECKPOINT).exists() else None
    done = int(saved["step"]) if saved else 0
    model_name = ModelConfig.from_dict(load_checkpoint(target.checkpoint)["model_config"]).name
    if saved is not None:
        log.info("%s: continuing the run from step %d", run_dir, done)
        from training.train import TrainConfig

        known = {f.name for f in fields(TrainConfig)}
        cfg = TrainConfig(**{k: v for k, v in saved["train_config"].items() if k in known})
        if Path(cfg.b).resolve() != Path(target.faceset).resolve():
            raise SwapcamError(
                f"{run_dir} was trained towards the target faceset {cfg.b}, not {target.faceset}: use another --out "
                f"for another target (or remove {run_dir} to start over)"
            )
        cfg.max_minutes = opts.minutes
    else:
        cfg = train_config_for(Path(faceset_a), target, run_dir, opts, 1, model_name)
    steps = opts.steps
    if opts.minutes > 0:
        per_step = seconds_per_step(cfg, threads=opts.threads)
        budget_steps = max(1, int(0.95 * 60.0 * opts.minutes / per_step))
        log.info("%.2f s per step here: about %d steps in %g min", per_step, budget_steps, opts.minutes)
        steps = min(steps, budget_steps) if steps > 0 else budget_steps
    if saved is None:
        cfg = train_config_for(Path(faceset_a), target, run_dir, opts, steps, model_name)
    cfg.steps = done + steps
    held = HeldOut(max(1, steps // max(1, opts.evals)), opts.patience, opts.min_delta)
    plateau = held_out_callback(held, progress)

    def both(p: TrainProgress) -> bool:
        stop = plateau(p)
        extra = bool(callback(p)) if callback is not None else False
        return stop or extra

    interrupted = False
    try:
        summary = train(cfg, resume=saved is not None, progress=progress, threads=opts.threads, callback=both)
    except TrainingInterrupted as exc:  # the checkpoint was saved: export what was learned
        summary, interrupted = exc.summary, True
    return summary | {"held_out": asdict(held), "interrupted": interrupted, "decoder_b_lr": cfg.decoder_b_lr}


# ================================================================================================ export
def export_name(out_dir: Path, now: float | None = None) -> Path:
    """DIR/swap-YYYYMMDD-HHMMSS.onnx (local time), -2, -3 ... when that second is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path = out_dir / f"{EXPORT_PREFIX}{stamp}.onnx"
    n = 2
    while path.exists():
        path = out_dir / f"{EXPORT_PREFIX}{stamp}-{n}.onnx"
        n += 1
    return path


def export_enrolled(run_dir: str | Path, out_dir: str | Path) -> dict:
    """Export the run A -> B (you -> target) into a new DIR/swap-*.onnx; returns models.export's result."""
    from models.export import export_model

    return export_model(run_dir, export_name(Path(out_dir)), "a2b", "swapcam", fp16=False, check=True)


def live_command(model: Path) -> str:
    """The folder, not the file: `swapcam live --model DIR` uses DIR's newest model and switches to a newer one
    when a later enrolment writes it."""
    return f"swapcam live --model {model.parent}"


# ================================================================================================ the command
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


class StatusFile:
    """``--status FILE``: the enrolment's stage and progress as JSON, for another process to poll."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.t0 = time.monotonic()
        self._last = 0.0

    def write(self, stage: str, **fields: Any) -> None:
        if self.path is not None:
            doc = {"stage": stage, "seconds": round(time.monotonic() - self.t0, 1), **fields}
            atomic_write_json(self.path, doc)

    def training(self, p: TrainProgress) -> bool:
        """A train() callback: the step and an ETA, at most twice a second. Never stops the run."""
        now = time.monotonic()
        if now - self._last >= 0.5 or p.step >= p.steps:
            self._last = now
            self.write("train", step=p.step, steps=p.steps)
        return False


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
        f"decoder B lr x{summary['decoder_b_lr']:g}); PSNR you {psnr.get('a', float('nan')):.2f} dB (held out "
        f"{psnr.get('held_a', float('nan')):.2f}), {target.name} {psnr.get('b', float('nan')):.2f} dB"
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
