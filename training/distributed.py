"""Several processes under torchrun: process-group setup and teardown, and the module DistributedDataParallel wraps.

One process (no torchrun) is world size 1: nothing is initialised and the model is not wrapped.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from models.autoencoder import SwapAutoencoder


def dist_setup() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; initialises the process group when world > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def dist_teardown(world: int) -> None:
    """Wait for every rank (rank 0 may still be writing the checkpoint), then leave the process group."""
    if world <= 1:
        return
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()


class PairForward(nn.Module):
    """One forward for both identities, so DDP sees every parameter get a gradient each step (a forward per
    identity would leave a decoder unused in each, which DDP's reducer rejects)."""

    def __init__(self, model: SwapAutoencoder) -> None:
        super().__init__()
        self.inner = model

    def forward(self, xa: torch.Tensor, xb: torch.Tensor, cross: bool = False) -> tuple[tuple[torch.Tensor, ...], ...]:
        """((face_a, mask_a), (face_b, mask_b)); with ``cross`` a third pair, (decoder B's mask on A's faces,
        decoder A's mask on B's faces), from the encoder's codes detached (the cross-identity mask loss,
        ``--cross-mask``, trains only the decoders)."""
        # one encoder pass over both batches: same maths, half the kernel launches
        z = self.inner.encoder(torch.cat([xa, xb]))
        za, zb = z[: xa.shape[0]], z[xa.shape[0] :]
        out_a, out_b = self.inner.decoder_a(za), self.inner.decoder_b(zb)
        if not cross:
            return out_a, out_b
        mask_b_on_a = self.inner.decoder_b(za.detach())[1]
        mask_a_on_b = self.inner.decoder_a(zb.detach())[1]
        return out_a, out_b, (mask_b_on_a, mask_a_on_b)


def wrap_ddp(pair: nn.Module, device: torch.device, local_rank: int, world: int) -> nn.Module:
    """``pair`` wrapped in DistributedDataParallel when several processes train; itself otherwise."""
    if world <= 1:
        return pair
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(pair, device_ids=[local_rank] if device.type == "cuda" else None)
