"""Rebuild the shipped demo model (A = astronaut -> B = Grace Hopper, and back) from scratch, offline.

Steps, all with the real tools: synthetic camera clips of the two public-domain portraits (several seeds) written as
MP4 -> ``swapcam extract`` -> ``swapcam train`` (rt128 by default) -> ``swapcam export`` of both directions into
models/demo/, plus SHA256SUMS and RECIPE.md (the command, seed, steps, PSNR reached, checksums).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from models.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from models.contract import DEMO_DIR, DEMO_MODELS
from realtime.atomic import atomic_write_bytes
from realtime.errors import SwapcamError
from training.train import (
    OCCLUDER_FACE,
    OCCLUDERS,
    add_cross_mask_argument,
    add_freeze_argument,
    add_occluder_arguments,
    held_out_line,
    occluders_from_args,
)

log = logging.getLogger("swapcam.demo_model")
MAX_BYTES = 15_000_000
DEMO_CHECKPOINT = "demo_train_checkpoint.pt"  # the weights-only training checkpoint published beside the models
SUMS = "SHA256SUMS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default="runs/demo-build", help="scratch folder: clips, facesets, training run")
    parser.add_argument(
        "--out-dir", default=str(DEMO_DIR), help="where demo_a2b.onnx, demo_b2a.onnx, SHA256SUMS and RECIPE.md go"
    )
    parser.add_argument("--preset", default="rt128", help="model preset (rt128: 128 px, real time on a 2-core CPU)")
    parser.add_argument("--steps", type=int, default=8000, help="training steps (the schedules below scale with it)")
    parser.add_argument("--batch", type=int, default=32, help="faces per identity per step")
    parser.add_argument(
        "--lr",
        type=float,
        default=4e-4,
        help="Adam learning rate (higher than train's 5e-5 default: two fixed faces, short budget)",
    )
    parser.add_argument("--warmup", type=int, default=300, help="learning-rate warm-up steps")
    parser.add_argument("--warp-off", type=float, default=0.8, help="random warp fades out by this fraction of --steps")
    parser.add_argument(
        "--expressions",
        type=float,
        default=0.3,
        help="share of samples with an expression warp (mouth open, smile, pressed lips, raised brows, squint)",
    )
    parser.add_argument(
        "--close-lips-a",
        type=float,
        default=0.0,
        help="share of A's samples whose parted lips are closed first (the astronaut smiles with teeth in every "
        "photo: her decoder then learns a closed resting mouth; see swapcam train --close-lips-a)",
    )
    parser.add_argument(
        "--augment-off",
        type=float,
        default=1.0,
        help="flip, small affine and colour jitter stop at this fraction of --steps (1: never): with --texture, "
        "clean late steps keep the decoders' detail textures registered (see swapcam train --augment-off)",
    )
    parser.add_argument(
        "--texture",
        action="store_true",
        help="decoders with a learned detail texture (see swapcam train --texture; measured in the README)",
    )
    parser.add_argument(
        "--init",
        default="",
        help="fine-tune this checkpoint (e.g. models/demo/demo_train_checkpoint.pt) instead of training from "
        "scratch; a model without detail textures gets them, started from the facesets",
    )
    add_occluder_arguments(parser)
    add_cross_mask_argument(parser)
    add_freeze_argument(parser)
    parser.add_argument("--holdout", type=float, default=0.05, help="share of each faceset held out for held-out PSNR")
    parser.add_argument("--seed", type=int, default=0, help="seed of clips, weights, batches and augmentation")
    parser.add_argument("--clips", type=int, default=8, help="synthetic clips per identity (different seeds)")
    parser.add_argument("--frames", type=int, default=90, help="frames per clip")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted build's training run")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="stop training after this many minutes, saved (a short GPU lease); --resume continues it",
    )
    parser.add_argument("--workers", type=int, default=0, help="augmentation worker processes (a GPU needs several)")
    parser.add_argument(
        "--fp16",
        action="store_true",
        help="store weights as float16 (compute stays float32); chosen automatically when float32 exceeds 15 MB",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="skip clips and extraction: train (or with --resume continue) on WORKDIR/faceset/A and B as they are "
        "(e.g. on a GPU machine without mediapipe), then stop; publish later with --publish-only",
    )
    parser.add_argument(
        "--publish-only",
        action="store_true",
        help="skip clips, extraction and training: export WORKDIR/run's current checkpoint",
    )


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Recipe:
    """What build-demo-model trains: the model, the schedule and the data. Saved in the run's config."""

    preset: str = "rt128"
    steps: int = 8000
    batch: int = 32
    lr: float = 4e-4
    warmup: int = 300
    warp_off: float = 0.8
    expressions: float = 0.3
    close_lips_a: float = 0.0  # share of A's samples whose parted lips are closed first (training.train)
    holdout: float = 0.05
    seed: int = 0
    clips: int = 8
    frames: int = 90
    augment_off: float = 1.0
    init: str = ""
    texture: bool = False
    occluders: float = OCCLUDERS
    occluder_face: str = OCCLUDER_FACE  # face loss under an occluder (training.train.OCCLUDER_FACE)
    cross_mask: float = 0.0  # weight of the cross-identity mask loss (training.step.cross_mask_loss)
    freeze: tuple[str, ...] = ()  # parts of the model that do not train (training.train.FREEZABLE)


# Clip seeds start above the seeds `swapcam eval` and the tests use for their synthetic clips (0..9), so the
# shipped model is always measured on clips it never trained on.
CLIP_SEEDS = {"A": 100, "B": 600}
MOTIONS = (1.0, 1.3, 1.6)  # more motion than the default clip: the live loop meets bigger head turns


def make_facesets(workdir: Path, recipe: Recipe, size: int, progress: bool) -> dict:
    """Synthetic clips of both portraits -> `swapcam extract` (resumable) -> facesets at the model's crop size."""
    from realtime.samples import synthetic_clip, write_mp4
    from training.extract import extract, summary

    facesets = {}
    for key, portrait in (("A", "astronaut"), ("B", "grace_hopper")):
        paths = []
        for k in range(recipe.clips):
            clip_seed = recipe.seed * 1000 + CLIP_SEEDS[key] + k
            path = workdir / "clips" / f"{portrait}_{clip_seed}.mp4"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                clip = synthetic_clip(portrait, recipe.frames, seed=clip_seed, motion=MOTIONS[k % 3], noise=2.0)
                write_mp4(clip.frames, path, clip.fps)
            paths.append(str(path))
        index = extract(paths, workdir / "faceset" / key, size=size, progress=progress)
        facesets[key] = summary(index)
        log.info("faceset %s (%s): %s", key, portrait, facesets[key])
    return facesets


def train_config(workdir: Path, recipe: Recipe, max_minutes: float = 0.0, workers: int = 0):
    from training.train import TrainConfig

    return TrainConfig(
        a=str(workdir / "faceset" / "A"),
        b=str(workdir / "faceset" / "B"),
        out=str(workdir / "run"),
        preset=recipe.preset,
        steps=recipe.steps,
        batch=recipe.batch,
        lr=recipe.lr,
        seed=recipe.seed,
        name_a="astronaut",
        name_b="grace_hopper",
        preview_every=500,
        save_every=250,
        log_every=25,
        warmup=recipe.warmup,
        lr_schedule="cosine",
        lr_final=0.05,
        warp_off=recipe.warp_off,
        expressions=recipe.expressions,
        close_lips_a=recipe.close_lips_a,
        holdout=recipe.holdout,
        max_minutes=max_minutes,
        workers=workers,
        augment_off=recipe.augment_off,
        init=recipe.init,
        texture=recipe.texture,
        occluders=recipe.occluders,
        occluder_face=recipe.occluder_face,
        cross_mask=recipe.cross_mask,
        freeze=tuple(recipe.freeze),
    )


def build(
    workdir: Path,
    out_dir: Path,
    recipe: Recipe,
    resume: bool = False,
    fp16: bool = False,
    progress: bool = True,
    command: str = "",
    max_minutes: float = 0.0,
    workers: int = 0,
    train_only: bool = False,
) -> dict:
    """Clips -> facesets -> training -> publish. With ``train_only`` the facesets must exist and nothing is
    published; with ``max_minutes`` training may stop early (saved), and nothing is published until it is done."""
    from models.autoencoder import get_preset
    from training.train import train

    t0 = time.time()
    workdir.mkdir(parents=True, exist_ok=True)
    size = get_preset(recipe.preset).size
    facesets = None if train_only else make_facesets(workdir, recipe, size, progress)
    run_dir = workdir / "run"
    if not resume and (run_dir / CHECKPOINT).exists():
        raise SwapcamError(f"{run_dir} already holds a training run; pass --resume or remove {workdir}")
    t_train = time.time()
    summary = train(train_config(workdir, recipe, max_minutes, workers), resume=resume, progress=progress)
    train_s = time.time() - t_train
    if train_only or summary.get("out_of_time"):
        return {"psnr": summary["psnr"], "steps": summary["step"], "train_s": train_s, "published": False}
    res = publish(
        run_dir,
        out_dir,
        fp16=fp16,
        command=command,
        clips=recipe.clips,
        frames=recipe.frames,
        facesets=facesets,
        train_s=train_s,
    )
    return res | {"total_s": time.time() - t0, "published": True}


def publish(
    run_dir: Path,
    out_dir: Path,
    fp16: bool = False,
    command: str = "",
    clips: int = 0,
    frames: int = 0,
    facesets: dict | None = None,
    train_s: float = float("nan"),
    note: str = "",
) -> dict:
    """Export both directions of a run's checkpoint into ``out_dir`` with SHA256SUMS and RECIPE.md.

    The models and SHA256SUMS must never disagree: everything is first written into a staging folder inside
    ``out_dir`` (same file system, so the final renames are atomic), the sums are computed from the bytes written
    there, then the files are renamed into place (SHA256SUMS last) and the sums are checked against the files in
    ``out_dir``. An export that fails its parity or size check leaves ``out_dir`` as it was.
    """
    from models.export import export_model

    state = load_checkpoint(run_dir / CHECKPOINT)
    tcfg = state["train_config"]
    result = {"step": int(state["step"]), "psnr": state["psnr"], "texture": state["model_config"].get("texture", False)}
    if facesets is None:
        from training.extract import summary
        from training.faceset import read_index

        facesets = {
            k: summary(read_index(run_dir.parent / "faceset" / k))
            for k in ("A", "B")
            if (run_dir.parent / "faceset" / k / "faces.json").exists()
        }
    n_faces = (facesets.get("A", {}).get("total_faces", "?"), facesets.get("B", {}).get("total_faces", "?"))
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".publish-", dir=out_dir))
    try:
        exported = {}
        for direction in ("a2b", "b2a"):
            name = DEMO_MODELS[direction].name
            res = export_model(run_dir, staging / name, direction, "swapcam", fp16=fp16, check=True)
            if res["bytes"] > MAX_BYTES and not fp16:  # a 128 px model's dense layers: store weights as float16
                log.info("%s: %.1f MB as float32, exporting float16 weights", name, res["bytes"] / 1e6)
                fp16 = True
                res = export_model(run_dir, staging / name, direction, "swapcam", fp16=True, check=True)
            if res["bytes"] > MAX_BYTES:
                raise SwapcamError(
                    f"{out_dir / name} would be {res['bytes'] / 1e6:.1f} MB (> 15 MB); rebuild with --fp16"
                )
            exported[direction] = res
        sums = {DEMO_MODELS[d].name: sha256(staging / DEMO_MODELS[d].name) for d in exported}
        recipe = _recipe(result, tcfg, exported, sums, fp16, command, clips, frames, n_faces, train_s) + note
        atomic_write_bytes(staging / "RECIPE.md", recipe.encode())
        save_checkpoint(staging / DEMO_CHECKPOINT, weights_only_copy(state))
        atomic_write_bytes(staging / SUMS, "".join(f"{h}  {name}\n" for name, h in sums.items()).encode())
        for name in [*sums, "RECIPE.md", DEMO_CHECKPOINT, SUMS]:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    wrong = [name for name, digest in sums.items() if sha256(out_dir / name) != digest]
    if wrong:  # another writer between our rename and now; say so rather than ship a mismatch silently
        raise SwapcamError(f"{', '.join(wrong)} in {out_dir} do not match {SUMS} after publishing; run it again")
    return {"psnr": result["psnr"], "steps": result["step"], "sha256": sums, "train_s": train_s}


def weights_only_copy(state: dict) -> dict:
    """What ships as DEMO_CHECKPOINT: the run's checkpoint with float16 weights and no optimizer or grad-scaler
    state (a third of the bytes); ``swapcam train --resume`` or ``--init`` continues it, Adam starting afresh."""
    import torch

    slim = dict(state)
    slim["model"] = {k: v.half() if torch.is_floating_point(v) else v for k, v in state["model"].items()}
    slim["optimizer"] = None
    slim["scaler"] = None
    return slim


def _recipe(
    result: dict,
    tcfg: dict,
    exported: dict,
    sums: dict[str, str],
    fp16: bool,
    command: str,
    clips: int,
    frames: int,
    n_faces: tuple[object, object],
    train_s: float,
) -> str:
    """RECIPE.md: how the shipped models were built, what they reached, their checksums."""
    seed, batch, lr = tcfg["seed"], tcfg["batch"], tcfg["lr"]
    n_a, n_b = n_faces
    psnr_a, psnr_b = result["psnr"].get("a", float("nan")), result["psnr"].get("b", float("nan"))
    wall = "not measured (exported from a checkpoint)" if train_s != train_s else f"{train_s / 60:.1f} min"
    info = exported["a2b"]["info"]
    size = info.size
    schedule = (
        f"lr warm-up {tcfg.get('warmup', 0)} steps, then {tcfg.get('lr_schedule', 'constant')} to "
        f"{tcfg.get('lr_final', 1)} x lr; random warp off at {tcfg.get('warp_off', 1.0):.0%} of the steps; "
        f"expression warps on {tcfg.get('expressions', 0):.0%} of samples"
    )
    origin = f"fine-tuned from `{tcfg['init']}`" if tcfg.get("init") else "from scratch"
    schedule += f"; flip, affine and colour jitter off at {tcfg.get('augment_off', 1.0):.0%} of the steps"
    schedule += f"; occluders over the input on {tcfg.get('occluders', 0.0):.0%} of samples"
    if tcfg.get("close_lips_a"):
        schedule += f"; A's lips closed first on {tcfg['close_lips_a']:.0%} of its samples"
    if tcfg.get("freeze"):
        schedule += f"; {', '.join(tcfg['freeze'])} frozen"
    texture = "yes (a learned full-size bias image per decoder)" if result["texture"] else "no"
    psnr = result["psnr"]
    held = held_out_line(psnr) or "not measured"
    latent = len(info.latent_target)
    recentring = (
        f" Identity re-centring (README 'Identity re-centring'): input `latent_shift` (N x {latent}) and output "
        f"`latent` (N x {latent}), the drawn identity's mean code in `swapcam.latent_target`."
        if latent
        else ""
    )
    recipe = (
        f"""# Demo model recipe

The shipped demo models swap the two public-domain sample portraits: A = astronaut (Eileen Collins, NASA portrait,
`skimage.data.astronaut`) and B = grace_hopper (Grace Hopper, US Navy photograph, matplotlib sample data).
They were built offline, {origin}, by one command:

```
{command or "swapcam build-demo-model"}
```

| | |
|---|---|
| preset | {tcfg["preset"]} ({size} px, coverage {info.coverage}, template {info.template}) |
| seed | {seed} |
| steps x batch | {result["step"]} x {batch} faces per identity, Adam lr {lr} |
| schedule | {schedule} |
| clips | {clips} synthetic clips x {frames} frames per identity (realtime.samples.synthetic_clip) |
| faces | A {n_a}, B {n_b} (after near-duplicate removal) |
| reconstruction PSNR (unaugmented faceset crops) | A->A {psnr_a:.2f} dB, B->B {psnr_b:.2f} dB |
| held-out PSNR ({tcfg.get("holdout", 0):.0%} of each faceset, never trained on) | {held} |
| training wall time | {wall} on {platform.machine()} ({platform.python_version()}) |
| detail texture | {texture} |
| weights | {"float16 (compute float32)" if fp16 else "float32"} |

Files (`sha256sum -c SHA256SUMS` checks them):

| file | direction | bytes | sha256 |
|---|---|---|---|
"""
        + "".join(
            f"| {DEMO_MODELS[d].name} | {exported[d]['info'].identities[0]} -> {exported[d]['info'].identities[1]} "
            f"| {exported[d]['bytes']} | `{sums[DEMO_MODELS[d].name]}` |\n"
            for d in exported
        )
        + f"""
Contract: input `in_face` N x 3 x {size} x {size} float32 RGB [0, 1]; outputs `out_face` (N x 3 x {size} x {size})
and `out_mask` (N x 1 x {size} x {size}); metadata in the ONNX `metadata_props` (`swapcam.*` keys, see
models/contract.py).{recentring}
Training is deterministic on one machine for a given seed and thread count, but float results differ slightly across
CPUs and torch versions, so a rebuild gives a model of the same quality, not the same bytes.
"""
    )
    return recipe


def run(args: argparse.Namespace) -> int:
    argv = sys.argv[1:]
    command = "swapcam " + " ".join(argv[argv.index("build-demo-model") :]) if "build-demo-model" in argv else ""
    if args.publish_only:
        res = publish(
            Path(args.workdir) / "run",
            Path(args.out_dir),
            fp16=args.fp16,
            command=command,
            clips=args.clips,
            frames=args.frames,
        )
        print(
            f"demo model: exported step {res['steps']} (PSNR A {res['psnr']['a']:.2f} dB, B {res['psnr']['b']:.2f} dB)"
        )
        return 0
    recipe = Recipe(
        preset=args.preset,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        warmup=args.warmup,
        warp_off=args.warp_off,
        expressions=args.expressions,
        close_lips_a=args.close_lips_a,
        holdout=args.holdout,
        seed=args.seed,
        clips=args.clips,
        frames=args.frames,
        augment_off=args.augment_off,
        init=args.init,
        texture=args.texture,
        occluders=occluders_from_args(args),
        occluder_face=args.occluder_face,
        cross_mask=args.cross_mask,
        freeze=tuple(args.freeze),
    )
    from training.train import TrainingInterrupted, stop_on_sigterm

    try:
        with stop_on_sigterm():  # `kill` (or a time limit's SIGTERM) stops it saved, like Ctrl-C
            res = build(
                Path(args.workdir),
                Path(args.out_dir),
                recipe,
                args.resume,
                args.fp16,
                progress=not args.no_progress,
                command=command,
                max_minutes=args.max_minutes,
                workers=args.workers,
                train_only=args.train_only,
            )
    except TrainingInterrupted as exc:
        print(f"swapcam build-demo-model: {exc}; --resume continues", file=sys.stderr)
        return 130
    psnr = res["psnr"]
    held = f" (held out {held_out_line(psnr)})" if held_out_line(psnr) else ""
    line = f"demo model: {res['steps']} steps, PSNR A {psnr['a']:.2f} dB, B {psnr['b']:.2f} dB{held}, "
    line += f"{res['train_s'] / 60:.1f} min training; "
    if res["published"]:
        print(line + f"wrote {', '.join(res['sha256'])}")
    else:
        print(line + "not published yet (--resume to continue, --publish-only to export)")
    return 0
