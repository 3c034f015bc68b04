"""One training step and what it consumes, shared by ``swapcam train`` and ``swapcam bench-train`` so the benchmark
times exactly the work a real run does.

An :class:`Identity` is one side's faces with their hull masks and loss weights; :func:`identity_batch` draws an
augmented batch from it as a pure function of (seed, step, stream); :func:`train_step` runs forward (one encoder pass
for both identities), the reconstruction losses, backward and the Adam update on a :class:`TrainState`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.autoencoder import ModelConfig, SwapAutoencoder, build_model
from realtime.compose import hull_mask
from realtime.errors import SwapcamError
from training.augment import Augmenter, to_nchw_rgb
from training.distributed import PairForward
from training.faceset import priority_map
from training.losses import mask_error, reconstruction_loss

Batch = dict[str, torch.Tensor]  # input, target (N x 3 x S x S RGB [0, 1]), mask, weight (N x 1 x S x S)


# --------------------------------------------------------------------------------------------------- data
@dataclass
class Identity:
    name: str
    images: np.ndarray  # N x S x S x 3 uint8 BGR
    masks: np.ndarray  # N x S x S float32 landmark hull
    weights: np.ndarray  # N x S x S float32 loss weight
    landmarks: np.ndarray | None = None  # N x 68 x 2 crop landmarks (expression warps need them)


def make_identity(
    name: str,
    images: np.ndarray,
    landmarks: np.ndarray,
    eyes_weight: float = 3.0,
    mouth_weight: float = 2.0,
    background_weight: float = 0.3,
) -> Identity:
    """Faces (N x S x S x 3) and their crop landmarks (N x 68 x 2) with the hull mask the model learns and the
    per-pixel loss weight: eye/mouth priority, times ``background_weight`` outside the hull (the compositor only
    pastes the face, so the background matters less)."""
    size = images.shape[1]
    masks = np.stack([hull_mask(lm, size) for lm in landmarks])
    priority = np.stack([priority_map(lm, size, eyes_weight, mouth_weight) for lm in landmarks])
    weights = priority * (background_weight + (1.0 - background_weight) * masks)
    return Identity(name, images, masks, weights.astype(np.float32), np.asarray(landmarks, np.float32))


def batch_indices(seed: int, step: int, stream: int, n: int, batch: int) -> np.ndarray:
    rng = np.random.default_rng([seed & 0xFFFFFFFF, step, stream, 7])
    return rng.integers(0, n, size=batch)


def identity_arrays(
    augmenter: Augmenter | None,
    identity: Identity,
    seed: int,
    step: int,
    stream: int,
    batch: int,
    warp: float | None = None,
    clean: bool = False,
) -> dict[str, np.ndarray]:
    """The batch of (seed, step, stream) as float32 NCHW numpy arrays; a resumed run draws the same one, and so does
    a worker process (training.prefetch). ``augmenter`` None gives the faces unaugmented (input = target), which
    bench-train uses to time the model alone. ``warp`` is the random-warp strength of this step (the schedule's;
    None: the augmenter's own); ``clean``: no flip, affine or colour jitter this step (training.augment)."""
    idx = batch_indices(seed, step, stream, len(identity.images), batch)
    if augmenter is not None:
        return augmenter.batch(
            identity.images, identity.masks, identity.weights, idx, seed, step, stream, warp, identity.landmarks, clean
        )
    faces = to_nchw_rgb(identity.images[idx])
    return {
        "input": faces,
        "target": faces,
        "mask": identity.masks[idx][:, None],
        "weight": identity.weights[idx][:, None],
    }


def to_device(arrays: dict[str, np.ndarray], device: torch.device) -> Batch:
    return {
        k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(device, non_blocking=True)
        for k, v in arrays.items()
    }


def identity_batch(
    augmenter: Augmenter | None,
    identity: Identity,
    seed: int,
    step: int,
    stream: int,
    batch: int,
    device: torch.device,
    warp: float | None = None,
) -> Batch:
    """:func:`identity_arrays` on ``device``."""
    return to_device(identity_arrays(augmenter, identity, seed, step, stream, batch, warp), device)


# --------------------------------------------------------------------------------------------------- the step
@dataclass(frozen=True)
class LossConfig:
    kind: str = "l1"  # pixel loss: l1 or mse
    dssim_weight: float = 1.0
    mask_weight: float = 1.0
    mask_loss: str = "mse"  # learned mask vs its target: mse or bce (training.losses.mask_error)
    # weight of the cross-identity mask loss: each decoder's mask also learns the other identity's faces (decoder B
    # on A's inputs against A's mask target); the face of that pass has no loss. 0 = off (no extra pass)
    cross_mask: float = 0.0
    # under a pasted occluder: "learn" the face target there too (the first occluder runs), or "skip" it (no face
    # loss where the occluder is; only the mask learns it). Measured: benchmarks/occluder_finetune.md
    occluder_face: str = "learn"


@dataclass
class TrainState:
    """What a step changes: the weights, the optimizer and grad-scaler state, the step count."""

    model: SwapAutoencoder
    pair: nn.Module  # PairForward over ``model``; DistributedDataParallel-wrapped under torchrun
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp: bool  # fp16 autocast + grad scaling (CUDA only)
    step: int = 0
    fresh_optimizer_at: int | None = None  # resumed without Adam's state (a weights-only copy): warm up again here


def build_train_state(config: ModelConfig, device: torch.device, lr: float, seed: int, amp: bool) -> TrainState:
    """Fresh weights from ``seed`` and an Adam optimizer (beta1 0.5, the deepfakes autoencoders' choice)."""
    torch.manual_seed(seed)
    model = build_model(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    return TrainState(model, PairForward(model), optimizer, scaler, amp)


def restore_train_state(state: TrainState, saved: dict, device: torch.device) -> None:
    """Continue a checkpoint: weights, optimizer, grad scaler, step and the RNG, so the run goes on as if never
    stopped."""
    state.model.load_state_dict(saved["model"])
    if saved.get("optimizer") is not None:
        state.optimizer.load_state_dict(saved["optimizer"])
    else:  # a weights-only copy (carried back from a GPU lease): Adam starts afresh, so the lr warms up again
        state.fresh_optimizer_at = int(saved["step"])
    if state.amp and saved.get("scaler"):
        state.scaler.load_state_dict(saved["scaler"])
    state.step = int(saved["step"])
    torch.set_rng_state(saved["rng"]["torch"])
    if device.type == "cuda" and saved["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(saved["rng"]["cuda"], device)


@dataclass
class StepOutput:
    """Detached results of one step, for logging."""

    loss: torch.Tensor
    loss_a: torch.Tensor
    loss_b: torch.Tensor
    face_a: torch.Tensor  # the reconstructions (float32), to compare with the batches' targets
    face_b: torch.Tensor


def cross_mask_loss(
    mask_b_on_a: torch.Tensor,
    mask_a_on_b: torch.Tensor,
    target_a: torch.Tensor,
    target_b: torch.Tensor,
    losses: LossConfig,
) -> torch.Tensor:
    """``--cross-mask``: decoder B's mask on A's faces against A's mask target (hull x (1 - occluder alpha)), and
    decoder A's on B's. The mask is geometry, not identity: trained on its own identity only, decoder B's mask read
    a stranger's face (the swap's input) partly as "not face" (benchmarks/occluder_finetune.md)."""
    return losses.cross_mask * (
        mask_error(mask_b_on_a, target_a, losses.mask_loss) + mask_error(mask_a_on_b, target_b, losses.mask_loss)
    )


def train_step(state: TrainState, batch_a: Batch, batch_b: Batch, losses: LossConfig) -> StepOutput:
    """Forward both identities, loss, backward, Adam update; ``state.step`` advances by one.

    Raises SwapcamError before touching the weights when the loss is not finite (a learning rate too high).
    """
    device_type = batch_a["input"].device.type
    with torch.autocast(device_type, dtype=torch.float16, enabled=state.amp):
        if losses.cross_mask:
            (face_a, mask_a), (face_b, mask_b), (mask_ba, mask_ab) = state.pair(
                batch_a["input"], batch_b["input"], cross=True
            )
        else:
            (face_a, mask_a), (face_b, mask_b) = state.pair(batch_a["input"], batch_b["input"])
    # autocast hands back float16; the losses (batch sums, DSSIM's small variances) are computed in float32
    face_a, mask_a, face_b, mask_b = face_a.float(), mask_a.float(), face_b.float(), mask_b.float()
    loss_a = reconstruction_loss(
        face_a,
        mask_a,
        batch_a["target"],
        batch_a["mask"],
        batch_a["weight"],
        losses.kind,
        losses.dssim_weight,
        losses.mask_weight,
        losses.mask_loss,
        batch_a.get("visible") if losses.occluder_face == "skip" else None,
    )
    loss_b = reconstruction_loss(
        face_b,
        mask_b,
        batch_b["target"],
        batch_b["mask"],
        batch_b["weight"],
        losses.kind,
        losses.dssim_weight,
        losses.mask_weight,
        losses.mask_loss,
        batch_b.get("visible") if losses.occluder_face == "skip" else None,
    )
    loss = loss_a + loss_b
    if losses.cross_mask:
        loss = loss + cross_mask_loss(mask_ba.float(), mask_ab.float(), batch_a["mask"], batch_b["mask"], losses)
    if not torch.isfinite(loss):
        lr = state.optimizer.param_groups[0]["lr"]
        raise SwapcamError(f"loss became {float(loss.detach())} at step {state.step}; lower --lr (now {lr})")
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.step += 1
    return StepOutput(loss.detach(), loss_a.detach(), loss_b.detach(), face_a.detach(), face_b.detach())
