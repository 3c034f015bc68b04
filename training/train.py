"""Train the swap autoencoder (shared encoder, decoder A, decoder B) on facesets A and B.

Reads top to bottom: config -> data -> model -> loop (batch, loss, step, log, preview, checkpoint). A batch is a pure
function of (seed, step, rank), so ``--resume`` continues exactly the schedule an uninterrupted run would follow.
Checkpoints (``OUT/checkpoint.pt``) are written atomically and hold the model config, the training config, the
optimizer, the step and the RNG state. Ctrl-C saves a checkpoint before exiting.

Several GPUs: ``torchrun --nproc_per_node N -m training.train --a ... --b ...`` (DistributedDataParallel; NCCL on
CUDA, gloo on CPU). ``--batch`` is per process. Mixed precision (fp16 autocast + grad scaling) on CUDA.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from realtime.errors import SwapcamError

log = logging.getLogger("swapcam.train")

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CHECKPOINT_FORMAT = "swapcam-checkpoint-v1"


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
    mask_weight: float = 1.0
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--a", required=True, help="faceset folder of identity A (from `swapcam extract`)")
    parser.add_argument("--b", required=True, help="faceset folder of identity B")
    parser.add_argument("--out", required=True, help="run folder: checkpoint.pt, metrics.jsonl, previews/")
    parser.add_argument("--preset", default="tiny", help="model preset: tiny (64 px, CPU), lite (128 px), hd (256 px, GPU)")
    parser.add_argument("--steps", type=int, default=10000, help="total optimisation steps (a resumed run stops here too)")
    parser.add_argument("--batch", type=int, default=16, help="faces per identity per step (per process under torchrun)")
    parser.add_argument("--lr", type=float, default=5e-5, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, batches and augmentation")
    parser.add_argument("--loss", default="l1", choices=("l1", "mse"), help="pixel loss (DSSIM is added to either)")
    parser.add_argument("--dssim-weight", type=float, default=1.0, help="weight of the DSSIM term")
    parser.add_argument("--mask-weight", type=float, default=1.0, help="weight of the learned-mask loss vs the landmark hull")
    parser.add_argument("--eyes-weight", type=float, default=3.0, help="pixel-loss weight on the eyes (1 = no priority)")
    parser.add_argument("--mouth-weight", type=float, default=2.0, help="pixel-loss weight on the mouth (1 = no priority)")
    parser.add_argument("--background-weight", type=float, default=0.3, help="pixel-loss weight outside the face hull")
    parser.add_argument("--warp", type=float, default=1.0, help="random-warp strength (0 disables it)")
    parser.add_argument("--flip", type=float, default=0.5, help="horizontal-flip probability")
    parser.add_argument("--preview-every", type=int, default=250, help="write a preview PNG every N steps (0: only at the end)")
    parser.add_argument("--save-every", type=int, default=250, help="write the checkpoint every N steps (and at the end)")
    parser.add_argument("--log-every", type=int, default=10, help="append a metrics line every N steps")
    parser.add_argument("--name-a", default="", help="name of identity A in the exported metadata (default: folder name)")
    parser.add_argument("--name-b", default="", help="name of identity B in the exported metadata (default: folder name)")
    parser.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    parser.add_argument("--resume", action="store_true",
                        help="continue OUT/checkpoint.pt with its own config (only --steps and the *-every options "
                             "may change)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: cores / processes)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


# --------------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | Path, state: dict) -> Path:
    """torch.save to a temp file beside ``path``, fsync, rename: a write killed midway leaves the old file intact."""
    import torch

    from realtime.atomic import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint, raising a one-line SwapcamError when it is missing, truncated or not a swapcam checkpoint."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise SwapcamError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated/garbage files; all mean the same to a user
        raise SwapcamError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise SwapcamError(f"checkpoint {path} is not a swapcam training checkpoint")
    return state


def find_checkpoint(run: str | Path) -> Path:
    run = Path(run)
    return run / CHECKPOINT if run.is_dir() else run


# --------------------------------------------------------------------------------------------------- data
@dataclass
class Identity:
    name: str
    images: np.ndarray  # N x S x S x 3 uint8 BGR
    masks: np.ndarray  # N x S x S float32 hull
    weights: np.ndarray  # N x S x S float32 loss weight


def load_identity(folder: str, name: str, size: int, cfg: TrainConfig) -> tuple[Identity, float]:
    from training.faceset import hull_mask, load_faceset, priority_map

    faceset = load_faceset(folder, size)
    masks = np.stack([hull_mask(lm, size) for lm in faceset.landmarks])
    prio = np.stack([priority_map(lm, size, cfg.eyes_weight, cfg.mouth_weight) for lm in faceset.landmarks])
    weights = prio * (cfg.background_weight + (1.0 - cfg.background_weight) * masks)
    return Identity(name or Path(folder).resolve().name, faceset.images, masks, weights.astype(np.float32)), faceset.coverage


def batch_indices(seed: int, step: int, stream: int, n: int, batch: int) -> np.ndarray:
    rng = np.random.default_rng([seed & 0xFFFFFFFF, step, stream, 7])
    return rng.integers(0, n, size=batch)


def fixed_faces(identity: Identity, count: int) -> np.ndarray:
    """Evenly spaced, unaugmented faces (N x 3 x S x S RGB float): for previews and the reported PSNR."""
    from training.augment import to_nchw_rgb

    idx = np.unique(np.linspace(0, len(identity.images) - 1, min(count, len(identity.images))).round().astype(int))
    return to_nchw_rgb(identity.images[idx])


# --------------------------------------------------------------------------------------------------- distributed
def dist_setup() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; initialises the process group when world > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    import torch
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


class PairForward:
    """Builds the module DDP wraps: one forward for both identities, so every parameter gets a gradient each step."""

    @staticmethod
    def make(model):
        import torch
        from torch import nn

        class _Pair(nn.Module):
            def __init__(self, inner: nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, xa: torch.Tensor, xb: torch.Tensor):
                # one encoder pass over both batches: same maths, half the kernel launches
                z = self.inner.encoder(torch.cat([xa, xb]))
                za, zb = z[: xa.shape[0]], z[xa.shape[0]:]
                return self.inner.decoder_a(za), self.inner.decoder_b(zb)

        return _Pair(model)


# --------------------------------------------------------------------------------------------------- evaluation
def evaluate_psnr(model, faces_a: np.ndarray, faces_b: np.ndarray, device) -> dict[str, float]:
    """Reconstruction PSNR (A->A, B->B) on unaugmented faces, in dB."""
    import torch

    from training.losses import psnr

    model.eval()
    out = {}
    with torch.no_grad():
        for key, faces, ident in (("a", faces_a, "a"), ("b", faces_b, "b")):
            x = torch.from_numpy(faces).to(device)
            out[key] = round(float(psnr(model(x, ident)[0], x)), 3)
    model.train()
    return out


# --------------------------------------------------------------------------------------------------- training
def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, threads: int = 0) -> dict:
    """Run (or resume) training; returns a summary dict (step, psnr, run folder). Rank 0 writes all files."""
    import torch

    from models.autoencoder import ModelConfig, build_model, get_preset
    from training.augment import AugmentConfig, Augmenter
    from training.losses import psnr, reconstruction_loss
    from training.previews import preview_grid, write_preview

    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT
    state = None
    if resume:
        state = load_checkpoint(ckpt_path)
        saved = TrainConfig(**{k: v for k, v in state["train_config"].items() if k in {f.name for f in fields(TrainConfig)}})
        # the schedule is the saved one; only the stopping point and the reporting cadence may change
        for keep in ("steps", "preview_every", "save_every", "log_every", "out"):
            setattr(saved, keep, getattr(cfg, keep))
        cfg = saved
        model_config = ModelConfig.from_dict(state["model_config"])
    else:
        model_config = get_preset(cfg.preset)
        if ckpt_path.exists():
            raise SwapcamError(f"{ckpt_path} already exists; pass --resume to continue it, or choose another --out")
    if cfg.steps < 1 or cfg.batch < 1 or not cfg.lr > 0:
        raise SwapcamError(f"--steps {cfg.steps} --batch {cfg.batch} --lr {cfg.lr}: all must be positive")
    if cfg.loss not in ("l1", "mse"):
        raise SwapcamError(f"--loss {cfg.loss!r}: expected l1 or mse")

    rank, world, local_rank = dist_setup()
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    use_amp = cfg.amp and device.type == "cuda"

    size = model_config.size
    ident_a, cov_a = load_identity(cfg.a, cfg.name_a, size, cfg)
    ident_b, cov_b = load_identity(cfg.b, cfg.name_b, size, cfg)
    if abs(cov_a - cov_b) > 1e-6:
        raise SwapcamError(f"facesets {cfg.a} (coverage {cov_a}) and {cfg.b} (coverage {cov_b}) were cropped differently; "
                           "re-extract one with the other's --coverage")
    cfg.name_a, cfg.name_b = ident_a.name, ident_b.name
    augmenter = Augmenter(AugmentConfig(warp=cfg.warp, flip=cfg.flip))
    eval_a, eval_b = fixed_faces(ident_a, 64), fixed_faces(ident_b, 64)
    prev_a, prev_b = torch.from_numpy(eval_a[np.linspace(0, len(eval_a) - 1, 6).round().astype(int)]), \
        torch.from_numpy(eval_b[np.linspace(0, len(eval_b) - 1, 6).round().astype(int)])

    torch.manual_seed(cfg.seed)
    model = build_model(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if use_amp and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    pair = PairForward.make(model)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        pair = DDP(pair, device_ids=[local_rank] if device.type == "cuda" else None)
    metrics_path = out / METRICS
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _trim_metrics(metrics_path, step)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))

    def checkpoint(psnr_eval: dict | None = None) -> None:
        if rank != 0:
            return
        psnr_eval = psnr_eval or evaluate_psnr(model, eval_a, eval_b, device)
        save_checkpoint(ckpt_path, {
            "format": CHECKPOINT_FORMAT, "model_config": model_config.to_dict(), "train_config": asdict(cfg),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if use_amp else None, "step": step,
            "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
            "psnr": psnr_eval, "coverage": cov_a, "identities": [ident_a.name, ident_b.name], "world_size": world,
        })

    def preview() -> None:
        if rank == 0:
            write_preview(preview_grid(model, prev_a.to(device), prev_b.to(device)), out, step)

    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {model_config.name}", unit="step", file=sys.stderr,
               disable=not progress or rank != 0, dynamic_ncols=True)
    t_last, samples_since = time.perf_counter(), 0
    interrupted = False
    model.train()
    try:
        while step < cfg.steps:
            ba = augmenter.batch(ident_a.images, ident_a.masks, ident_a.weights,
                                 batch_indices(cfg.seed, step, 2 * rank, len(ident_a.images), cfg.batch), cfg.seed, step, 2 * rank)
            bb = augmenter.batch(ident_b.images, ident_b.masks, ident_b.weights,
                                 batch_indices(cfg.seed, step, 2 * rank + 1, len(ident_b.images), cfg.batch), cfg.seed, step,
                                 2 * rank + 1)
            ta = {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in ba.items()}
            tb = {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in bb.items()}
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                (face_a, mask_a), (face_b, mask_b) = pair(ta["input"], tb["input"])
            face_a, mask_a, face_b, mask_b = face_a.float(), mask_a.float(), face_b.float(), mask_b.float()
            loss_a = reconstruction_loss(face_a, mask_a, ta["target"], ta["mask"], ta["weight"], cfg.loss,
                                         cfg.dssim_weight, cfg.mask_weight)
            loss_b = reconstruction_loss(face_b, mask_b, tb["target"], tb["mask"], tb["weight"], cfg.loss,
                                         cfg.dssim_weight, cfg.mask_weight)
            loss = loss_a + loss_b
            if not torch.isfinite(loss):
                raise SwapcamError(f"loss became {float(loss)} at step {step}; lower --lr (now {cfg.lr})")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            samples_since += 2 * cfg.batch * world
            if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
                with torch.no_grad():
                    pa, pb = float(psnr(face_a, ta["target"])), float(psnr(face_b, tb["target"]))
                now = time.perf_counter()
                record = {"step": step, "loss": float(loss.detach()), "loss_a": float(loss_a.detach()), "loss_b": float(loss_b.detach()),
                          "psnr_a": round(pa, 3), "psnr_b": round(pb, 3), "lr": cfg.lr, "world_size": world,
                          "samples_per_s": round(samples_since / max(now - t_last, 1e-9), 2), "time": time.time()}
                t_last, samples_since = now, 0
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", psnr_a=f"{pa:.1f}", psnr_b=f"{pb:.1f}", refresh=False)
            bar.update(1)
            if cfg.preview_every and step % cfg.preview_every == 0:
                preview()
            if step % cfg.save_every == 0 and step < cfg.steps:
                checkpoint()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    final_psnr = evaluate_psnr(model, eval_a, eval_b, device) if rank == 0 else {}
    checkpoint(final_psnr)
    if not interrupted:
        preview()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    summary = {"run": str(out), "step": step, "steps": cfg.steps, "psnr": final_psnr, "interrupted": interrupted,
               "identities": [ident_a.name, ident_b.name], "world_size": world}
    if interrupted:
        raise TrainingInterrupted(summary)
    return summary


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the checkpoint was saved."""

    def __init__(self, summary: dict) -> None:
        super().__init__(f"interrupted at step {summary['step']}; checkpoint saved in {summary['run']}")
        self.summary = summary


def _trim_metrics(path: Path, step: int) -> None:
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
    from realtime.atomic import atomic_write_bytes

    atomic_write_bytes(path, ("\n".join(keep) + "\n" if keep else "").encode())


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(a=args.a, b=args.b, out=args.out, preset=args.preset, steps=args.steps, batch=args.batch,
                       lr=args.lr, seed=args.seed, loss=args.loss, dssim_weight=args.dssim_weight,
                       mask_weight=args.mask_weight, eyes_weight=args.eyes_weight, mouth_weight=args.mouth_weight,
                       background_weight=args.background_weight, warp=args.warp, flip=args.flip,
                       preview_every=args.preview_every, save_every=max(1, args.save_every),
                       log_every=max(1, args.log_every), name_a=args.name_a, name_b=args.name_b, amp=not args.no_amp)


def run(args: argparse.Namespace) -> int:
    from models.autoencoder import get_preset

    cfg = config_from_args(args)
    if not args.resume:
        get_preset(cfg.preset)  # unknown preset: one clear line before any data is loaded
    try:
        summary = train(cfg, resume=args.resume, progress=not args.no_progress, threads=args.threads)
    except TrainingInterrupted as exc:
        print(f"swapcam train: {exc}", file=sys.stderr)
        return 130
    if summary["psnr"]:
        print(f"{summary['run']}: step {summary['step']}, PSNR A->A {summary['psnr']['a']:.2f} dB, "
              f"B->B {summary['psnr']['b']:.2f} dB")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m training.train`` (what torchrun runs): same options as ``swapcam train``."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.strip(),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
