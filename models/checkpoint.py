"""Training checkpoints on disk: where a run keeps its checkpoint, the format tag, atomic save, checked load.

A checkpoint is a ``torch.save``'d dict tagged ``format: swapcam-checkpoint-v1`` holding at least ``model_config``
and ``model`` (the weights); a training run adds ``train_config``, the optimizer, the step and the RNG state. It lives
in models/ because both training (writes, resumes) and export (reads) need it, and models must not import training.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from realtime.atomic import atomic_write_bytes
from realtime.errors import SwapcamError

if TYPE_CHECKING:
    from models.autoencoder import SwapAutoencoder

CHECKPOINT = "checkpoint.pt"  # a run folder's checkpoint file
CHECKPOINT_FORMAT = "swapcam-checkpoint-v1"


def find_checkpoint(run: str | Path) -> Path:
    """A run folder's checkpoint file; a path that is not a folder is taken to be the checkpoint itself."""
    run = Path(run)
    return run / CHECKPOINT if run.is_dir() else run


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """torch.save to a temp file beside ``path``, fsync, rename: a write killed midway leaves the old file intact."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint, raising a one-line SwapcamError when it is missing, truncated or not a swapcam checkpoint."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise SwapcamError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated/garbage files; all mean the same to a user
        detail = f"{type(exc).__name__}: {str(exc)[:120]}"
        raise SwapcamError(f"checkpoint {path} is corrupt or truncated ({detail})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise SwapcamError(f"checkpoint {path} is not a swapcam training checkpoint")
    return state


def model_from_checkpoint(state: dict[str, Any]) -> SwapAutoencoder:
    """The autoencoder a loaded checkpoint describes, with its weights, in eval mode, on the CPU."""
    from models.autoencoder import ModelConfig, SwapAutoencoder

    model = SwapAutoencoder(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    return model.eval()
