"""Who the person becomes: ``demo`` (the shipped model's Grace Hopper; her faceset rebuilt offline once and cached), a
faceset folder, or a training run folder, as a checkpoint to fine-tune from and the faceset decoder B trains on."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from realtime.atomic import atomic_write_json
from realtime.errors import SwapcamError
from training.demo_model import DEMO_CHECKPOINT

log = logging.getLogger("swapcam.enroll")


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
