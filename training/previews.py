"""Preview grids while training: rows A, A->A, A->B, B, B->B, B->A; one column per fixed sample face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from models.autoencoder import SwapAutoencoder
from realtime.atomic import atomic_write_png
from training.augment import to_bgr_uint8

ROWS = ("A", "A->A", "A->B", "B", "B->B", "B->A")


@torch.no_grad()
def preview_grid(model: SwapAutoencoder, faces_a: torch.Tensor, faces_b: torch.Tensor, cell: int = 128) -> np.ndarray:
    """BGR uint8 grid; faces_* are N x 3 x S x S RGB [0, 1] (unaugmented). Cells upscaled to ``cell`` px to be seen."""
    was_training = model.training
    model.eval()
    za, zb = model.encoder(faces_a), model.encoder(faces_b)
    rows = [
        faces_a,
        model.decoder_a(za)[0],
        model.decoder_b(za)[0],
        faces_b,
        model.decoder_b(zb)[0],
        model.decoder_a(zb)[0],
    ]
    model.train(was_training)
    lines = []
    for label, row in zip(ROWS, rows, strict=True):
        images = to_bgr_uint8(row.float().cpu().numpy())
        cells = [
            cv2.resize(im, (cell, cell), interpolation=cv2.INTER_NEAREST if im.shape[0] < cell else cv2.INTER_AREA)
            for im in images
        ]
        tag = np.full((cell, 72, 3), 32, np.uint8)
        cv2.putText(tag, label, (4, cell // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA)
        lines.append(np.hstack([tag] + cells))
    return np.vstack(lines)


def write_preview(grid: np.ndarray, out_dir: Path, step: int) -> Path:
    """Write previews/step_NNNNNNN.png and preview.png (the latest), atomically."""
    path = atomic_write_png(out_dir / "previews" / f"step_{step:07d}.png", grid)
    atomic_write_png(out_dir / "preview.png", grid)
    return path
