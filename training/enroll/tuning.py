"""Enrolment step 2, fine-tune: the policy (learning rates, decoder B frozen or not, clean targets late, a schedule
sized to the time budget by timing real steps) and the run itself, stopped at the budget, on a held-out PSNR plateau
or on Ctrl-C."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from realtime.errors import SwapcamError
from training.enroll.target import Target
from training.train import OCCLUDER_FACE, OCCLUDERS

if TYPE_CHECKING:
    from training.train import TrainProgress

log = logging.getLogger("swapcam.enroll")

# Clean targets for the second half of a fine-tune (swapcam train --augment-off): measured on carphone, 4 minutes
# from demo model v3, held-out PSNR 18.29 dB with augmented targets throughout vs 20.32 dB
# (benchmarks/results/enroll-v3-*-targets.json).
AUGMENT_OFF = 0.5
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
    occluder_face: str = OCCLUDER_FACE  # face loss under an occluder (train --occluder-face)
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
        occluder_face=opts.occluder_face,
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
        if p.data.held_a is None or p.step % state.every:
            return False
        held_b = None if p.data.held_b is None else evenly(p.data.held_b, HELD_B_FACES)  # a target of a few photos
        psnr = evaluate_psnr(p.model, p.data.held_a, held_b, p.device)
        state.history.append(
            {"step": p.step, "seconds": round(time.monotonic() - t0, 1), "held_a": psnr["a"], "held_b": psnr.get("b")}
        )
        if psnr["a"] > state.best + state.min_delta:
            state.best, state.best_step, state.stale = psnr["a"], p.step, 0
        else:
            state.stale += 1
        target = f", target {psnr['b']:.2f} dB" if "b" in psnr else ""
        _say(f"step {p.step}/{p.steps}: held-out PSNR you {psnr['a']:.2f} dB{target}", progress)
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


def held_out_text(psnr: dict[str, float], holdout: float) -> str:
    """The person's held-out PSNR for the final line: a number, or why there is none."""
    from training.train import MIN_HOLDOUT_FACES

    value = psnr.get("held_a")
    if value is None:
        if holdout <= 0:
            return "no held-out PSNR: this run holds no faces out (--holdout 0)"
        return f"no held-out PSNR: fewer than {MIN_HOLDOUT_FACES} faces, none held out"
    if not math.isfinite(value):
        return "held-out PSNR not a number: the model's output is not finite (training diverged)"
    return f"held out {value:.2f}"


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
    return summary | {
        "held_out": asdict(held),
        "interrupted": interrupted,
        "decoder_b_lr": cfg.decoder_b_lr,
        "holdout": cfg.holdout,
    }
