"""Train the swap autoencoder (shared encoder, decoder A, decoder B) on facesets A and B.

``train()`` reads top to bottom as named steps: resume (config) -> device -> data -> model state -> loop (batch, step,
log, preview, checkpoint); the helpers follow it in that order. The step itself is training.step's, shared with
``swapcam bench-train``. A batch is a pure function of (seed, step, rank), so ``--resume`` continues exactly the
schedule an uninterrupted run would follow.
Checkpoints (``OUT/checkpoint.pt``) are written atomically and hold the model config, the training config, the
optimizer, the step and the RNG state. Ctrl-C saves a checkpoint before exiting.
Fine-tuning: ``--init CHECKPOINT`` starts a fresh run (step 0, its own schedule) from another run's weights and model
config; ``--decoder-b-lr`` trains decoder B slower (0 freezes it; B's loss still trains the shared encoder, which
keeps the encoder's code readable by the decoder B it already has).

Several GPUs: ``torchrun --nproc_per_node N -m training.train --a ... --b ...`` (DistributedDataParallel; NCCL on
CUDA, gloo on CPU). ``--batch`` is per process. Mixed precision (fp16 autocast + grad scaling) on CUDA.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models.checkpoint import CHECKPOINT, CHECKPOINT_FORMAT, find_checkpoint, load_checkpoint, save_checkpoint
from realtime.atomic import atomic_write_bytes, atomic_write_json
from realtime.errors import SwapcamError
from training.augment import EXPRESSION_MIX
from training.schedule import LR_SCHEDULES, learning_rate

if TYPE_CHECKING:  # torch is imported where it is used: `swapcam train --help` should not wait for it
    import torch

    from models.autoencoder import ModelConfig, SwapAutoencoder
    from training.augment import Augmenter
    from training.step import Identity, StepOutput, TrainState

METRICS = "metrics.jsonl"
# Share of training samples with an occluder (a hand, a cup, a phone; training.occluders) pasted over the input and
# cut out of the mask target, so the learned mask leaves out what is in front of the face (swapcam train, enroll,
# build-demo-model). A checkpoint saved before occluders existed resumes with 0, as it was trained.
OCCLUDERS = 0.3
# What the face loss does under a pasted occluder: "learn" (the face target there is still the identity's face: the
# first occluder runs) or "skip" (no face loss under it; only the mask learns that it is not face). Chosen by
# measurement (benchmarks/occluder_finetune.md, "Mask only").
OCCLUDER_FACE = "learn"
OCCLUDER_FACES = ("learn", "skip")
MASK_LOSSES = ("mse", "bce")  # training.losses.mask_error
# Parts of the model --freeze can hold still (SwapAutoencoder's attributes): a frozen part gets no gradient and no
# optimizer state, and its weights stay bit-identical. Freezing the encoder keeps the shared code a fine-tune started
# from (the identity the live swap reads), while the decoders learn new drawing (occluders, expressions).
# "faces" holds everything that draws the face (the encoder, both decoders' trunks, face heads and textures): only
# the two mask heads learn, so the swapped face stays bit-identical and a fine-tune can change nothing but the mask.
FREEZABLE = ("encoder", "decoder_a", "decoder_b", "faces")
MIN_HOLDOUT_FACES = 4  # a faceset with fewer faces holds none out (--holdout): it needs them all to train


@dataclass
class TrainConfig:
    a: str
    b: str
    out: str
    preset: str = "tiny"
    steps: int = 10000
    batch: int = 16
    lr: float = 5e-5
    seed: int = 0
    loss: str = "l1"
    dssim_weight: float = 1.0
    # 0.5 with cross-entropy: 1.0 cuts occluders a little sooner in a fine-tune but slows a fresh model's faces
    # (benchmarks/occluder_finetune.md); runs made with the MSE mask loss used 1.0
    mask_weight: float = 0.5
    eyes_weight: float = 3.0
    mouth_weight: float = 2.0
    background_weight: float = 0.3  # loss weight outside the landmark hull: the compositor only pastes the face
    warp: float = 1.0
    flip: float = 0.5
    preview_every: int = 250
    save_every: int = 250
    log_every: int = 10
    name_a: str = ""
    name_b: str = ""
    amp: bool = True  # only used on CUDA
    # schedules (training.schedule): lr warm-up then constant or cosine decay; random warp faded out late
    warmup: int = 0
    lr_schedule: str = "constant"
    lr_final: float = 0.1
    warp_off: float = 1.0
    expressions: float = 0.0  # probability of an expression warp per sample (training.augment)
    # shares of the expression kinds (training.augment.EXPRESSION_KINDS); checkpoints saved before the kinds existed
    # resume with the mouth-open warps alone
    expression_mix: tuple[float, ...] = EXPRESSION_MIX
    # share of A's / B's samples whose parted lips are closed first (training.augment's rest_close): a decoder that
    # learns a closed resting mouth from photos that all smile with teeth
    close_lips_a: float = 0.0
    close_lips_b: float = 0.0
    holdout: float = 0.0  # share of each faceset never trained on: the held-out PSNR
    max_minutes: float = 0.0  # stop (and save) after this much wall time; 0 = no limit
    workers: int = 0  # augmentation worker processes (training.prefetch)
    init: str = ""  # fine-tune: a fresh run starts from this checkpoint's weights (and model config), not at random
    decoder_b_lr: float = 1.0  # decoder B's learning rate as a fraction of lr; 0 freezes it
    augment_off: float = 1.0  # from this fraction of steps on: no flip, affine or colour jitter (clean targets)
    texture: bool = False  # decoders learn a detail texture (models.autoencoder.ModelConfig.texture); --init adds it
    occluders: float = OCCLUDERS  # probability per sample of an occluder over the input, mask target 0 under it
    occluder_face: str = OCCLUDER_FACE  # face loss under an occluder: learn or skip (see OCCLUDER_FACE)
    mask_loss: str = "bce"  # learned mask vs its target (training.losses.mask_error); older checkpoints: mse
    cross_mask: float = 0.0  # weight of the cross-identity mask loss (training.step.cross_mask_loss); 0 = off
    freeze: tuple[str, ...] = ()  # parts of the model (FREEZABLE) that do not train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--a", required=True, help="faceset folder of identity A (from `swapcam extract`)")
    parser.add_argument("--b", required=True, help="faceset folder of identity B")
    parser.add_argument("--out", required=True, help="run folder: checkpoint.pt, metrics.jsonl, previews/")
    parser.add_argument(
        "--preset", default="tiny", help="model preset: tiny (64 px, CPU), lite (128 px), hd (256 px, GPU)"
    )
    parser.add_argument(
        "--steps", type=int, default=10000, help="total optimisation steps (a resumed run stops here too)"
    )
    parser.add_argument(
        "--batch", type=int, default=16, help="faces per identity per step (per process under torchrun)"
    )
    parser.add_argument("--lr", type=float, default=5e-5, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, batches and augmentation")
    parser.add_argument("--loss", default="l1", choices=("l1", "mse"), help="pixel loss (DSSIM is added to either)")
    parser.add_argument("--dssim-weight", type=float, default=1.0, help="weight of the DSSIM term")
    parser.add_argument(
        "--mask-weight",
        type=float,
        default=0.5,
        help="weight of the learned-mask loss (vs the landmark hull, 0 under occluders); runs with --mask-loss mse "
        "used 1.0",
    )
    parser.add_argument(
        "--mask-loss",
        default="bce",
        choices=MASK_LOSSES,
        help="learned mask's loss: bce (cross-entropy; learns occluders many times faster) or mse (before occluders)",
    )
    add_cross_mask_argument(parser)
    parser.add_argument(
        "--eyes-weight", type=float, default=3.0, help="pixel-loss weight on the eyes (1 = no priority)"
    )
    parser.add_argument(
        "--mouth-weight", type=float, default=2.0, help="pixel-loss weight on the mouth (1 = no priority)"
    )
    parser.add_argument("--background-weight", type=float, default=0.3, help="pixel-loss weight outside the face hull")
    parser.add_argument("--warp", type=float, default=1.0, help="random-warp strength (0 disables it)")
    parser.add_argument("--flip", type=float, default=0.5, help="horizontal-flip probability")
    parser.add_argument(
        "--preview-every", type=int, default=250, help="write a preview PNG every N steps (0: only at the end)"
    )
    parser.add_argument(
        "--save-every", type=int, default=250, help="write the checkpoint every N steps (and at the end)"
    )
    parser.add_argument("--log-every", type=int, default=10, help="append a metrics line every N steps")
    parser.add_argument(
        "--name-a", default="", help="name of identity A in the exported metadata (default: folder name)"
    )
    parser.add_argument(
        "--name-b", default="", help="name of identity B in the exported metadata (default: folder name)"
    )
    parser.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    parser.add_argument("--warmup", type=int, default=0, help="steps of linear learning-rate warm-up from lr/N to lr")
    parser.add_argument(
        "--lr-schedule",
        default="constant",
        choices=LR_SCHEDULES,
        help="after the warm-up: constant, or cosine decay to --lr-final x lr at the last step",
    )
    parser.add_argument("--lr-final", type=float, default=0.1, help="cosine schedule: final lr as a fraction of --lr")
    parser.add_argument(
        "--warp-off",
        type=float,
        default=1.0,
        help="fraction of --steps at which random warp is off (faded out over the 25%% of the run before); "
        "1 keeps it on throughout. Clean late steps sharpen what warped early steps taught",
    )
    parser.add_argument(
        "--expressions",
        type=float,
        default=0.0,
        help="probability per sample of a landmark-driven expression warp: mouth open (with blinks), smile, "
        "pressed lips, raised brows or a squint (stills-only facesets then teach more than one expression)",
    )
    parser.add_argument(
        "--close-lips-a",
        type=float,
        default=0.0,
        help="share of A's samples (0..1) whose parted lips are closed first, before any expression warp: for "
        "photos that all smile with teeth, so that A's decoder learns a closed resting mouth and draws one for a "
        "camera person whose lips are closed (realtime.expressions.lip_close_warp)",
    )
    parser.add_argument("--close-lips-b", type=float, default=0.0, help="the same for B's samples")
    parser.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        help="share of each faceset never trained on (evenly spread); its PSNR is reported as held-out PSNR",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="stop after this many minutes of training, saved (0: no limit); --resume continues the same schedule",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="augmentation worker processes building batches ahead (0: inline); same batches either way",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT/checkpoint.pt with its own config (only --steps, the *-every options, --max-minutes "
        "and --workers may change)",
    )
    parser.add_argument(
        "--init",
        default="",
        help="fine-tune: start from this run folder's (or checkpoint file's) weights and model config instead of "
        "random ones (--preset is then ignored); the new run has its own steps and schedule",
    )
    parser.add_argument(
        "--decoder-b-lr",
        type=float,
        default=1.0,
        help="decoder B's learning rate as a fraction of --lr (0 freezes decoder B; its loss still trains the "
        "encoder): keeps a target face already learned while a new face A is fine-tuned",
    )
    parser.add_argument(
        "--augment-off",
        type=float,
        default=1.0,
        help="fraction of --steps from which flip, the small affine and colour jitter stop (expression warps, blur "
        "and noise stay): targets are then the aligned crops as they are, which the decoders' detail textures need "
        "to stay sharp; 0 for a whole fine-tune, 1 (default) keeps them on throughout",
    )
    parser.add_argument(
        "--texture",
        action="store_true",
        help="each decoder learns a full-size detail texture (a bias image, started at the faceset's mean residual): "
        "static fine detail such as glasses and wrinkles at no inference cost, also when --init's model had none. "
        "Sharper on faces like the training faces; on other faces the static detail can show as a ghost, and "
        "target-side augmentation blurs it (pair it with --augment-off). See README 'Detail texture, measured'",
    )
    add_occluder_arguments(parser)
    add_freeze_argument(parser)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: cores / processes)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_occluder_arguments(parser: argparse.ArgumentParser) -> None:
    """``--occluders P`` / ``--no-occluders``, shared by train, enroll and build-demo-model (read with
    :func:`occluders_from_args`)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--occluders",
        type=float,
        default=OCCLUDERS,
        metavar="P",
        help="share of training samples with a synthetic occluder (a hand, a cup, a phone, a bar, a piece of another "
        "crop) pasted over the input face; the mask target is 0 under it (the face target is not), so the learned "
        "mask leaves a hand in front of the face in front of it (training.occluders)",
    )
    group.add_argument("--no-occluders", action="store_true", help="no occluders (same as --occluders 0)")
    parser.add_argument(
        "--occluder-face",
        choices=OCCLUDER_FACES,
        default=OCCLUDER_FACE,
        help="the face loss under a pasted occluder: learn (the decoder is taught its identity's face there too) or "
        "skip (no face loss there; only the mask learns the occluder, so the decoder is never taught to invent a "
        f"face from a hand). Default {OCCLUDER_FACE}",
    )


def add_cross_mask_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cross-mask",
        type=float,
        default=0.0,
        help="weight of the cross-identity mask loss: each decoder's mask also learns the other identity's faces "
        "(their hull, 0 under occluders; no face loss on that pass). 0 (default) = off",
    )


def add_freeze_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--freeze",
        action="append",
        choices=FREEZABLE,
        default=[],
        help="hold this part of the model still (repeat for several): no gradient, no optimizer state, weights "
        "unchanged. --freeze encoder fine-tunes the decoders only and keeps the shared code (and identity) as it was; "
        "--freeze faces trains the two mask heads alone (the swapped face stays bit-identical)",
    )


def occluders_from_args(args: argparse.Namespace) -> float:
    if getattr(args, "no_occluders", False):
        return 0.0
    return float(getattr(args, "occluders", OCCLUDERS))


# --------------------------------------------------------------------------------------------------- training
@dataclass
class TrainProgress:
    """What a ``train(callback=...)`` sees after each step (the model is in training mode; evaluate_psnr switches it
    to eval and back)."""

    step: int
    steps: int
    model: torch.nn.Module
    data: TrainingData
    device: torch.device


def train(
    cfg: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    threads: int = 0,
    callback: Callable[[TrainProgress], bool] | None = None,
) -> dict:
    """Run (or resume) training; returns a summary dict (step, psnr, run folder). Rank 0 writes all files.

    ``callback`` (single-process runs) is called after every step; returning True stops training there, saved, as
    the time budget does (``stopped_early`` in the summary): held-out plateau stopping, progress on another clock."""
    from training.distributed import dist_setup, dist_teardown

    out = Path(cfg.out)
    saved = load_checkpoint(out / CHECKPOINT) if resume else None
    cfg, model_config = resolve_config(cfg, saved)
    rank, world, local_rank = dist_setup()
    device = choose_device(local_rank, world, threads)
    data = load_data(cfg, model_config.size)
    state = model_state(cfg, model_config, data, saved, device, local_rank, world)
    run = RunFolder(out, cfg, model_config, state, data, device, rank, world)
    run.prepare()
    ending = train_loop(cfg, state, data, device, run, progress, callback)
    final_psnr = evaluate_all(state.model, data, device) if rank == 0 else {}
    run.checkpoint(final_psnr)
    if not ending.interrupted:
        run.preview()
    dist_teardown(world)
    summary = {
        "run": str(out),
        "step": state.step,
        "steps": cfg.steps,
        "psnr": final_psnr,
        "interrupted": ending.interrupted,
        "out_of_time": ending.out_of_time,
        "stopped_early": ending.stopped_early,
        "identities": [data.a.name, data.b.name],
        "world_size": world,
    }
    if ending.interrupted:
        raise TrainingInterrupted(summary)
    return summary


def model_state(
    cfg: TrainConfig,
    model_config: ModelConfig,
    data: TrainingData,
    saved: dict | None,
    device: torch.device,
    local_rank: int,
    world: int,
) -> TrainState:
    """Model and optimizer: resumed from ``saved``, or fresh (from --init's weights, or at random) with its detail
    textures started from the data; decoder B at its own rate; wrapped for DDP when there are several processes."""
    from training.distributed import wrap_ddp
    from training.step import build_train_state, restore_train_state

    state = build_train_state(model_config, device, cfg.lr, cfg.seed, amp=cfg.amp and device.type == "cuda")
    if cfg.decoder_b_lr != 1.0 or cfg.freeze:
        set_trainable(state, cfg.freeze, cfg.decoder_b_lr)
    if saved is not None:
        restore_train_state(state, saved, device)
    elif cfg.init:
        load_init_weights(state.model, load_checkpoint(find_checkpoint(cfg.init))["model"])
    if saved is None:
        init_textures(state.model, data, device)
    state.pair = wrap_ddp(state.pair, device, local_rank, world)
    return state


@dataclass
class RunFolder:
    """The run's files, written by rank 0 only: the folder and its config, checkpoints, previews."""

    out: Path
    cfg: TrainConfig
    model_config: ModelConfig
    state: TrainState
    data: TrainingData
    device: torch.device
    rank: int
    world: int

    def prepare(self) -> None:
        if self.rank == 0:
            prepare_run_folder(self.out, self.cfg, self.state.step)

    def checkpoint(self, psnr_eval: dict | None = None) -> None:
        if self.rank == 0:
            psnr_eval = psnr_eval or evaluate_all(self.state.model, self.data, self.device)
            contents = checkpoint_contents(
                self.cfg, self.model_config, self.state, self.data, self.world, psnr_eval, self.device
            )
            save_checkpoint(self.out / CHECKPOINT, contents)

    def preview(self) -> None:
        if self.rank == 0:
            write_run_preview(self.out, self.state, self.data, self.device)


@dataclass
class LoopEnding:
    """Why the training loop ended before ``cfg.steps`` (all False: it ran them all)."""

    interrupted: bool = False  # Ctrl-C (or SIGTERM, see stop_on_sigterm)
    out_of_time: bool = False  # --max-minutes
    stopped_early: bool = False  # the callback said stop


def train_loop(
    cfg: TrainConfig,
    state: TrainState,
    data: TrainingData,
    device: torch.device,
    run: RunFolder,
    progress: bool,
    callback: Callable[[TrainProgress], bool] | None,
) -> LoopEnding:
    """The steps from ``state.step`` to ``cfg.steps``: batch, step, log, preview, checkpoint; stops on the time
    budget, the callback or Ctrl-C, and says which."""
    from training.prefetch import BatchStream
    from training.step import LossConfig, to_device, train_step

    losses = LossConfig(cfg.loss, cfg.dssim_weight, cfg.mask_weight, cfg.mask_loss, cfg.cross_mask, cfg.occluder_face)
    metrics = MetricsLog(run.out / METRICS, run.world)
    bar = progress_bar(cfg, run.model_config.name, state.step, enabled=progress and run.rank == 0)
    ending = LoopEnding()
    deadline = time.monotonic() + 60.0 * cfg.max_minutes if cfg.max_minutes > 0 else None
    state.model.train()
    batches = BatchStream(partial(step_arrays, data, cfg, run.rank), state.step, cfg.steps, cfg.workers)
    try:
        for _, arrays_a, arrays_b in batches:
            lr = set_learning_rate(state, cfg)
            batch_a, batch_b = to_device(arrays_a, device), to_device(arrays_b, device)
            result = train_step(state, batch_a, batch_b, losses)
            metrics.count(2 * cfg.batch * run.world)
            if run.rank == 0 and (state.step % cfg.log_every == 0 or state.step == cfg.steps):
                record = metrics.write(state.step, result, batch_a["target"], batch_b["target"], lr)
                bar.set_postfix(
                    loss=f"{record['loss']:.4f}",
                    psnr_a=f"{record['psnr_a']:.1f}",
                    psnr_b=f"{record['psnr_b']:.1f}",
                    refresh=False,
                )
            bar.update(1)
            if cfg.preview_every and state.step % cfg.preview_every == 0:
                run.preview()
            if state.step % cfg.save_every == 0 and state.step < cfg.steps:
                run.checkpoint()
            if deadline is not None and time.monotonic() > deadline:
                ending.out_of_time = True  # a short GPU lease: stop here, saved; --resume continues the same schedule
                break
            if callback is not None and callback(TrainProgress(state.step, cfg.steps, state.model, data, device)):
                ending.stopped_early = True
                break
    except KeyboardInterrupt:
        ending.interrupted = True
    finally:
        batches.close()
        bar.close()
    return ending


# --------------------------------------------------------------------------------------------------- resume
def resolve_config(cfg: TrainConfig, saved: dict | None) -> tuple[TrainConfig, ModelConfig]:
    """The run's config and model config: a fresh run's own (refusing to overwrite a checkpoint), or on resume the
    saved ones, of which only the stopping point and the reporting cadence may change."""
    from models.autoencoder import ModelConfig, get_preset

    if saved is not None:
        known = {f.name for f in fields(TrainConfig)}
        # a checkpoint saved before these options existed resumes as it was trained: no occluders, MSE mask loss
        old = {
            "occluders": 0.0,
            "mask_loss": "mse",
            "expression_mix": (1.0, 0.0, 0.0, 0.0, 0.0),
            "occluder_face": "learn",
        }
        saved_config = old | saved["train_config"]
        resumed = TrainConfig(**{k: v for k, v in saved_config.items() if k in known})
        resumed.expression_mix, resumed.freeze = tuple(resumed.expression_mix), tuple(resumed.freeze)
        for keep in ("steps", "preview_every", "save_every", "log_every", "out", "max_minutes", "workers"):
            setattr(resumed, keep, getattr(cfg, keep))
        cfg, model_config = resumed, ModelConfig.from_dict(saved["model_config"])
    else:
        if cfg.init:  # fine-tuning: the architecture is the starting checkpoint's (+ a texture: --texture)
            model_config = ModelConfig.from_dict(load_checkpoint(find_checkpoint(cfg.init))["model_config"])
            cfg.preset = model_config.name
        else:
            model_config = get_preset(cfg.preset)
        model_config = replace(model_config, texture=cfg.texture or model_config.texture)
        ckpt_path = Path(cfg.out) / CHECKPOINT
        if ckpt_path.exists():
            raise SwapcamError(f"{ckpt_path} already exists; pass --resume to continue it, or choose another --out")
    if not 0.0 <= cfg.augment_off <= 1.0:
        raise SwapcamError(f"--augment-off {cfg.augment_off}: expected 0..1 (a fraction of --steps)")
    if not 0.0 <= cfg.occluders <= 1.0:
        raise SwapcamError(f"--occluders {cfg.occluders}: expected 0..1 (a probability per sample)")
    if not 0.0 <= cfg.decoder_b_lr <= 1.0:
        raise SwapcamError(f"--decoder-b-lr {cfg.decoder_b_lr}: expected 0..1 (a fraction of --lr; 0 freezes it)")
    if cfg.steps < 1 or cfg.batch < 1 or not cfg.lr > 0:
        raise SwapcamError(f"--steps {cfg.steps} --batch {cfg.batch} --lr {cfg.lr}: all must be positive")
    if cfg.loss not in ("l1", "mse"):
        raise SwapcamError(f"--loss {cfg.loss!r}: expected l1 or mse")
    unknown = [part for part in cfg.freeze if part not in FREEZABLE]
    if unknown:
        raise SwapcamError(f"--freeze {' '.join(unknown)}: choose from {', '.join(FREEZABLE)}")
    if cfg.cross_mask < 0:
        raise SwapcamError(f"--cross-mask {cfg.cross_mask}: expected >= 0 (a loss weight; 0 = off)")
    if cfg.occluder_face not in OCCLUDER_FACES:
        raise SwapcamError(f"--occluder-face {cfg.occluder_face!r}: expected {' or '.join(OCCLUDER_FACES)}")
    if cfg.mask_loss not in MASK_LOSSES:
        raise SwapcamError(f"--mask-loss {cfg.mask_loss!r}: expected {' or '.join(MASK_LOSSES)}")
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise SwapcamError(f"--lr-schedule {cfg.lr_schedule!r}: choose from {', '.join(LR_SCHEDULES)}")
    if not 0.0 <= cfg.holdout < 0.5 or not 0.0 <= cfg.expressions <= 1.0 or cfg.warmup < 0 or cfg.max_minutes < 0:
        raise SwapcamError(
            f"--holdout {cfg.holdout} (0..0.5), --expressions {cfg.expressions} (0..1), --warmup {cfg.warmup} and "
            f"--max-minutes {cfg.max_minutes} (>= 0): out of range"
        )
    for name, value in (("--close-lips-a", cfg.close_lips_a), ("--close-lips-b", cfg.close_lips_b)):
        if not 0.0 <= value <= 1.0:
            raise SwapcamError(f"{name} {value}: out of range (a share of samples, 0..1)")
    return cfg, model_config


def load_init_weights(model: torch.nn.Module, weights: dict) -> None:
    """A fine-tune's starting weights: all of the checkpoint's; the decoders' textures may be new (--init from a
    model made before them), and anything else missing or extra is an error."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith(".texture")]
    if missing or unexpected:
        raise SwapcamError(
            f"--init weights do not fit the model: missing {', '.join(missing) or 'none'}; "
            f"unexpected {', '.join(unexpected) or 'none'}"
        )


def init_textures(model: SwapAutoencoder, data: TrainingData, device: torch.device, count: int = 256) -> None:
    """Start each decoder's detail texture (models.autoencoder.ModelConfig.texture) at the mean, over up to ``count``
    unaugmented faces of its identity, of the pre-sigmoid residual the decoder leaves: logit(face) - its output. A
    fresh decoder then starts from the identity's mean face, a fine-tuned one from its own output plus the detail it
    misses; only textures still all zero are set (a resumed run keeps what it learned)."""
    import torch

    model.eval()
    with torch.no_grad():
        for key, identity in (("a", data.a), ("b", data.b)):
            decoder = model.decoder(key)
            if decoder.texture is None or bool(decoder.texture.abs().sum() > 0):
                continue
            faces_all = fixed_faces(identity, count)
            total = torch.zeros_like(decoder.texture)
            for start in range(0, len(faces_all), 32):
                faces = torch.from_numpy(faces_all[start : start + 32]).to(device)
                face_logits, _ = decoder.logits(model.encoder(faces))
                total += (torch.logit(faces.clamp(1e-3, 1 - 1e-3)) - face_logits).sum(0, keepdim=True)
            decoder.texture.copy_(total / len(faces_all))
    model.train()


# --------------------------------------------------------------------------------------------------- device
def choose_device(local_rank: int, world: int, threads: int = 0) -> torch.device:
    """This process's GPU under torchrun (or the only one); else the CPU, its cores shared among the processes."""
    import torch

    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        return device
    per_process = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))
    torch.set_num_threads(threads or max(1, per_process))
    return torch.device("cpu")


# --------------------------------------------------------------------------------------------------- data
@dataclass
class TrainingData:
    a: Identity
    b: Identity
    coverage: float  # of both facesets' crops (they must agree)
    augmenter: Augmenter
    eval_a: np.ndarray  # fixed unaugmented faces (N x 3 x S x S RGB float): the reported PSNR
    eval_b: np.ndarray
    held_a: np.ndarray | None  # faces held out of training (--holdout): the held-out PSNR
    held_b: np.ndarray | None
    preview_a: np.ndarray  # six of them, one preview column each
    preview_b: np.ndarray
    augmenter_b: Augmenter | None = None  # B's, where it differs from A's (close_lips_b != close_lips_a)


def load_identity(folder: str, name: str, size: int, cfg: TrainConfig) -> tuple[Identity, float, np.ndarray | None]:
    """A faceset folder as training data at the model's size; also returns the faceset's coverage and, with
    ``cfg.holdout``, the held-out faces (N x 3 x S x S RGB float; evenly spread through the faceset, so a video's
    neighbouring frames are on both sides only as much as the faceset's own sampling allows)."""
    from training.augment import to_nchw_rgb
    from training.faceset import load_faceset
    from training.step import make_identity

    faceset = load_faceset(folder, size)
    images, landmarks = faceset.images, faceset.landmarks
    held = None
    if cfg.holdout > 0 and len(images) >= MIN_HOLDOUT_FACES:
        every = max(2, int(round(1.0 / cfg.holdout)))
        mask = np.zeros(len(images), bool)
        mask[min(every // 2, len(images) - 1) :: every] = True  # never none: an empty set's PSNR is nan
        held = to_nchw_rgb(images[mask])
        images, landmarks = images[~mask], landmarks[~mask]
    identity = make_identity(
        name or Path(folder).resolve().name,
        images,
        landmarks,
        cfg.eyes_weight,
        cfg.mouth_weight,
        cfg.background_weight,
    )
    return identity, faceset.coverage, held


def fixed_faces(identity: Identity, count: int) -> np.ndarray:
    """Evenly spaced, unaugmented faces (N x 3 x S x S RGB float): for previews and the reported PSNR."""
    from training.augment import to_nchw_rgb

    idx = np.unique(np.linspace(0, len(identity.images) - 1, min(count, len(identity.images))).round().astype(int))
    return to_nchw_rgb(identity.images[idx])


def load_data(cfg: TrainConfig, size: int) -> TrainingData:
    """Both facesets (same coverage), the augmenter, the evaluation and preview faces. Sets cfg.name_a/name_b."""
    from training.augment import AugmentConfig, Augmenter

    ident_a, cov_a, held_a = load_identity(cfg.a, cfg.name_a, size, cfg)
    ident_b, cov_b, held_b = load_identity(cfg.b, cfg.name_b, size, cfg)
    if abs(cov_a - cov_b) > 1e-6:
        raise SwapcamError(
            f"facesets {cfg.a} (coverage {cov_a}) and {cfg.b} (coverage {cov_b}) were cropped "
            "differently; re-extract one with the other's --coverage"
        )
    cfg.name_a, cfg.name_b = ident_a.name, ident_b.name
    eval_a, eval_b = fixed_faces(ident_a, 64), fixed_faces(ident_b, 64)

    def six(faces: np.ndarray) -> np.ndarray:
        return faces[np.linspace(0, len(faces) - 1, 6).round().astype(int)]

    def augmenter(rest_close: float) -> Augmenter:
        return Augmenter(
            AugmentConfig(
                warp=cfg.warp,
                flip=cfg.flip,
                expressions=cfg.expressions,
                occluders=cfg.occluders,
                occluder_face=cfg.occluder_face,
                expression_mix=tuple(cfg.expression_mix),
                rest_close=rest_close,
            )
        )

    return TrainingData(
        ident_a,
        ident_b,
        cov_a,
        augmenter(cfg.close_lips_a),
        eval_a,
        eval_b,
        held_a,
        held_b,
        six(eval_a),
        six(eval_b),
        augmenter_b=augmenter(cfg.close_lips_b) if cfg.close_lips_b != cfg.close_lips_a else None,
    )


def step_arrays(data: TrainingData, cfg: TrainConfig, rank: int, step: int) -> tuple[dict, dict]:
    """This rank's batches of A and B for ``step`` as numpy arrays: every (rank, identity) pair has its own stream
    of samples; the random-warp strength follows the schedule. Runs in a prefetch worker or inline."""
    from training.schedule import warp_strength
    from training.step import identity_arrays

    warp = warp_strength(step, cfg.steps, cfg.warp, cfg.warp_off)
    clean = step >= cfg.augment_off * cfg.steps
    return (
        identity_arrays(data.augmenter, data.a, cfg.seed, step, 2 * rank, cfg.batch, warp, clean),
        identity_arrays(
            data.augmenter_b or data.augmenter, data.b, cfg.seed, step, 2 * rank + 1, cfg.batch, warp, clean
        ),
    )


def set_learning_rate(state: TrainState, cfg: TrainConfig) -> float:
    """This step's learning rate (training.schedule), written into the optimizer (times each parameter group's
    ``lr_scale``, see :func:`set_trainable`); returned for the log."""
    lr = learning_rate(state.step, cfg.steps, cfg.lr, cfg.warmup, cfg.lr_schedule, cfg.lr_final)
    if state.fresh_optimizer_at is not None and cfg.warmup > 0:
        lr *= min(1.0, (state.step - state.fresh_optimizer_at + 1) / cfg.warmup)
    for group in state.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr


def frozen_parameters(model: SwapAutoencoder, part: str) -> list:
    """The parameters --freeze ``part`` holds still (FREEZABLE)."""
    if part == "faces":
        masks = {id(p) for d in (model.decoder_a, model.decoder_b) for p in d.to_mask.parameters()}
        return [p for p in model.parameters() if id(p) not in masks]
    return list(getattr(model, part).parameters())


def set_trainable(state: TrainState, freeze: tuple[str, ...] | list[str] = (), decoder_b_lr: float = 1.0) -> None:
    """Hold the ``freeze`` parts (FREEZABLE) still: no gradient for their weights and not in the optimizer (so no
    Adam state either); the losses still flow through them into the parts that train. Decoder B gets its own Adam
    parameter group at ``decoder_b_lr`` of the learning rate (0 freezes it too). Called before a resume restores the
    optimizer, so the saved state has the same groups."""
    import torch

    model = state.model
    frozen = set(freeze) | ({"decoder_b"} if decoder_b_lr <= 0 else set())
    for part in frozen:
        for p in frozen_parameters(model, part):
            p.requires_grad_(False)
    decoder_b = [p for p in model.decoder_b.parameters() if p.requires_grad]
    own = {id(p) for p in model.decoder_b.parameters()}
    rest = [p for p in model.parameters() if id(p) not in own and p.requires_grad]
    groups: list[dict] = [{"params": rest, "lr_scale": 1.0}] if rest else []
    if decoder_b:
        groups.append({"params": decoder_b, "lr_scale": decoder_b_lr})
    if not groups:
        raise SwapcamError(f"--freeze {' '.join(sorted(frozen))}: nothing left to train")
    old = state.optimizer
    state.optimizer = torch.optim.Adam(groups, lr=old.defaults["lr"], betas=old.defaults["betas"])


# --------------------------------------------------------------------------------------------------- log
def evaluate_all(model: torch.nn.Module, data: TrainingData, device: torch.device) -> dict[str, float]:
    """PSNR on the fixed training faces ('a', 'b') and, with --holdout, on faces never trained on ('held_a',
    'held_b'): the number that says whether the model learned the face or memorised its crops. Each identity's
    held-out PSNR is there when it has held-out faces (a faceset under MIN_HOLDOUT_FACES has none), whatever the
    other's."""
    result = evaluate_psnr(model, data.eval_a, data.eval_b, device)
    held = evaluate_psnr(model, data.held_a, data.held_b, device)
    result.update({f"held_{key}": value for key, value in held.items()})
    return result


def held_out_line(psnr: dict[str, float]) -> str:
    """'A 25.10 dB, B 22.40 dB': the held-out PSNRs :func:`evaluate_all` measured ('' when none)."""
    return ", ".join(f"{key.upper()} {psnr[f'held_{key}']:.2f} dB" for key in ("a", "b") if f"held_{key}" in psnr)


def evaluate_psnr(
    model: torch.nn.Module, faces_a: np.ndarray | None, faces_b: np.ndarray | None, device: torch.device
) -> dict[str, float]:
    """Reconstruction PSNR (A->A, B->B) on unaugmented faces, in dB; an identity given no faces (None) is left out."""
    import torch

    from training.losses import psnr

    model.eval()
    out = {}
    with torch.no_grad():
        for key, faces in (("a", faces_a), ("b", faces_b)):
            if faces is None:
                continue
            x = torch.from_numpy(faces).to(device)
            out[key] = round(float(psnr(model(x, key)[0], x)), 3)
    model.train()
    return out


class MetricsLog:
    """Appends one JSON line per logged step to metrics.jsonl: losses, per-identity PSNR of the batch, throughput."""

    def __init__(self, path: Path, world: int) -> None:
        self.path, self.world = path, world
        self._t_last, self._samples = time.perf_counter(), 0

    def count(self, samples: int) -> None:
        self._samples += samples

    def write(self, step: int, result: StepOutput, target_a: torch.Tensor, target_b: torch.Tensor, lr: float) -> dict:
        import torch

        from training.losses import psnr

        with torch.no_grad():
            psnr_a, psnr_b = float(psnr(result.face_a, target_a)), float(psnr(result.face_b, target_b))
        now = time.perf_counter()
        record = {
            "step": step,
            "loss": float(result.loss),
            "loss_a": float(result.loss_a),
            "loss_b": float(result.loss_b),
            "psnr_a": round(psnr_a, 3),
            "psnr_b": round(psnr_b, 3),
            "lr": lr,
            "world_size": self.world,
            "samples_per_s": round(self._samples / max(now - self._t_last, 1e-9), 2),
            "time": time.time(),
        }
        self._t_last, self._samples = now, 0
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        return record


def progress_bar(cfg: TrainConfig, preset: str, step: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=cfg.steps,
        initial=step,
        desc=f"train {preset}",
        unit="step",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
    )


def write_run_preview(out: Path, state: TrainState, data: TrainingData, device: torch.device) -> None:
    import torch

    from training.previews import preview_grid, write_preview

    grid = preview_grid(
        state.model, torch.from_numpy(data.preview_a).to(device), torch.from_numpy(data.preview_b).to(device)
    )
    write_preview(grid, out, state.step)


# --------------------------------------------------------------------------------------------------- checkpoint
def prepare_run_folder(out: Path, cfg: TrainConfig, step: int) -> None:
    """Create the run folder, drop metric lines a resumed run will log again, save the config as JSON."""
    out.mkdir(parents=True, exist_ok=True)
    trim_metrics(out / METRICS, step)
    atomic_write_json(out / "train_config.json", asdict(cfg))


def checkpoint_contents(
    cfg: TrainConfig,
    model_config: ModelConfig,
    state: TrainState,
    data: TrainingData,
    world: int,
    psnr_eval: dict,
    device: torch.device,
) -> dict:
    """Everything a resume or an export needs, both configs included (see models.checkpoint)."""
    import torch

    from models.autoencoder import identity_codes

    means, spreads = identity_codes(state.model, {"a": data.eval_a, "b": data.eval_b})
    return {
        "format": CHECKPOINT_FORMAT,
        "model_config": model_config.to_dict(),
        "train_config": asdict(cfg),
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scaler": state.scaler.state_dict() if state.amp else None,
        "step": state.step,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        },
        "psnr": psnr_eval,
        "coverage": data.coverage,
        "identities": [data.a.name, data.b.name],
        "world_size": world,
        # each identity's mean latent code and spread, for identity re-centring at export (models.export.latent_codes)
        "latent_means": means,
        "latent_spreads": spreads,
    }


def trim_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines past the checkpoint's step (they were logged, then lost with the process)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError):
            continue
    atomic_write_bytes(path, ("\n".join(keep) + "\n" if keep else "").encode())


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the checkpoint was saved."""

    def __init__(self, summary: dict) -> None:
        super().__init__(f"interrupted at step {summary['step']}; checkpoint saved in {summary['run']}")
        self.summary = summary


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        a=args.a,
        b=args.b,
        out=args.out,
        preset=args.preset,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        loss=args.loss,
        dssim_weight=args.dssim_weight,
        mask_weight=args.mask_weight,
        mask_loss=args.mask_loss,
        cross_mask=args.cross_mask,
        eyes_weight=args.eyes_weight,
        mouth_weight=args.mouth_weight,
        background_weight=args.background_weight,
        warp=args.warp,
        flip=args.flip,
        preview_every=args.preview_every,
        save_every=max(1, args.save_every),
        log_every=max(1, args.log_every),
        name_a=args.name_a,
        name_b=args.name_b,
        amp=not args.no_amp,
        warmup=args.warmup,
        lr_schedule=args.lr_schedule,
        lr_final=args.lr_final,
        warp_off=args.warp_off,
        expressions=args.expressions,
        close_lips_a=args.close_lips_a,
        close_lips_b=args.close_lips_b,
        holdout=args.holdout,
        max_minutes=args.max_minutes,
        workers=args.workers,
        init=args.init,
        decoder_b_lr=args.decoder_b_lr,
        texture=args.texture,
        augment_off=args.augment_off,
        occluders=occluders_from_args(args),
        occluder_face=args.occluder_face,
        freeze=tuple(args.freeze),
    )


@contextmanager
def stop_on_sigterm():
    """SIGTERM (`kill PID`) stops training like Ctrl-C: saved, then exit 130. A run started in the background
    (`nohup swapcam train ... &`) ignores SIGINT, so `kill` is how it is stopped without losing its last steps."""
    import signal

    def interrupt(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    from models.autoencoder import get_preset

    cfg = config_from_args(args)
    if not args.resume:
        get_preset(cfg.preset)  # unknown preset: one clear line before any data is loaded
    try:
        with stop_on_sigterm():
            summary = train(cfg, resume=args.resume, progress=not args.no_progress, threads=args.threads)
    except TrainingInterrupted as exc:
        print(f"swapcam train: {exc}", file=sys.stderr)
        return 130
    psnr = summary["psnr"]
    if psnr:
        held = f" (held out: {held_out_line(psnr)})" if held_out_line(psnr) else ""
        stopped = f" of {summary['steps']}, time budget reached: --resume continues" if summary["out_of_time"] else ""
        print(
            f"{summary['run']}: step {summary['step']}{stopped}, PSNR A->A {psnr['a']:.2f} dB, "
            f"B->B {psnr['b']:.2f} dB{held}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m training.train`` (what torchrun runs): same options as ``swapcam train``."""
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=__doc__.strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return run(args)
    except SwapcamError as exc:
        print(f"swapcam train: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
