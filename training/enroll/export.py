"""Enrolment step 3, export: the run as a new, numbered DIR/swap-*.onnx (the newest is what `--model DIR` runs)."""

from __future__ import annotations

import time
from pathlib import Path

EXPORT_PREFIX = "swap-"  # DIR/swap-YYYYMMDD-HHMMSS[-N].onnx; the newest is realtime.builder.newest_model's pick


def export_name(out_dir: Path, now: float | None = None) -> Path:
    """DIR/swap-YYYYMMDD-HHMMSS.onnx (local time), -2, -3 ... when that second is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path = out_dir / f"{EXPORT_PREFIX}{stamp}.onnx"
    n = 2
    while path.exists():
        path = out_dir / f"{EXPORT_PREFIX}{stamp}-{n}.onnx"
        n += 1
    return path


def export_enrolled(run_dir: str | Path, out_dir: str | Path) -> dict:
    """Export the run A -> B (you -> target) into a new DIR/swap-*.onnx; returns models.export's result."""
    from models.export import export_model

    return export_model(run_dir, export_name(Path(out_dir)), "a2b", "swapcam", fp16=False, check=True)


def live_command(model: Path) -> str:
    """The folder, not the file: `swapcam live --model DIR` uses DIR's newest model and switches to a newer one
    when a later enrolment writes it."""
    return f"swapcam live --model {model.parent}"
