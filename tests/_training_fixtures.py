"""Facesets and a short training run for the training/export tests, built once per test process with the real tools.

Faceset A = astronaut, B = grace_hopper: synthetic camera clips written as MP4, then ``training.extract.extract``
(real mediapipe FaceMesh) at 128 px crops. Import the helpers and wrap them in module fixtures; the work is cached by
output folder, so several test modules share it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

FACESET_SIZE = 128
CLIP_FRAMES = 48


@functools.cache
def build_facesets(root: str) -> dict[str, Path]:
    """{"A": folder, "B": folder, "clips": {name: mp4}} under ``root`` (created once per process)."""
    from realtime.samples import synthetic_clip, write_mp4
    from training.extract import extract

    root_path = Path(root)
    (root_path / "clips").mkdir(parents=True, exist_ok=True)
    out: dict = {"clips": {}}
    for key, name, seed in (("A", "astronaut", 11), ("B", "grace_hopper", 12)):
        clip = synthetic_clip(name, CLIP_FRAMES, seed=seed, motion=1.2)
        mp4 = write_mp4(clip.frames, root_path / "clips" / f"{name}.mp4", clip.fps)
        extract([str(mp4)], root_path / key, size=FACESET_SIZE, progress=False)
        out[key] = root_path / key
        out["clips"][name] = mp4
    return out


@functools.cache
def short_run(root: str, steps: int = 20) -> Path:
    """A tiny-preset run trained for a few steps on the shared facesets (for export and resume tests)."""
    from training.train import TrainConfig, train

    sets = build_facesets(str(Path(root).parent / "facesets"))
    run = Path(root)
    train(
        TrainConfig(
            a=str(sets["A"]),
            b=str(sets["B"]),
            out=str(run),
            steps=steps,
            batch=4,
            lr=5e-4,
            seed=3,
            preview_every=0,
            save_every=1000,
            log_every=1,
            name_a="astronaut",
            name_b="grace_hopper",
        ),
        progress=False,
    )
    return run


def faceset_faces(folder: Path, size: int) -> np.ndarray:
    """All crops of a faceset as N x 3 x size x size float32 RGB [0, 1] (unaugmented, as the model sees them)."""
    from training.augment import to_nchw_rgb
    from training.faceset import load_faceset

    return to_nchw_rgb(load_faceset(folder, size).images)


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
