"""The one wiring place of the live pipeline: the model options every command shares, opening the swap model,
building a warmed-up per-stream processor, and running processor + threaded runner from a source to a sink.

``swapcam live``, ``bench`` and ``demo`` run through :func:`run_live`; the WebRTC server builds one processor per
peer with :func:`create_processor`. Stages never build each other: they are wired here.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from realtime.errors import SwapcamError, one_line
from realtime.native import captured_native_output
from realtime.pipeline import FaceSwapProcessor, PipelineOptions
from realtime.swapper import PROVIDER_CHOICES, Swapper
from realtime.types import Frame, Image

if TYPE_CHECKING:
    from realtime.landmarks import LandmarkDetector
    from realtime.runner import LiveRunner

log = logging.getLogger("swapcam.builder")

SUMMARY_WARMUP_FRAMES = 10  # first frames pay for mediapipe's detector and onnxruntime's first-run allocations


def add_providers_argument(parser: argparse.ArgumentParser) -> None:
    """The one ``--providers`` option (live, bench, demo, serve, bench-webrtc)."""
    parser.add_argument(
        "--providers",
        default="auto",
        choices=PROVIDER_CHOICES,
        help="onnxruntime execution provider for the swap model: auto = TensorRT/CUDA when they "
        "really run on this machine (driver and libraries present), else CPU, said in one line; "
        "cpu, cuda or tensorrt to insist (cuda/tensorrt fail with a clear error when unusable)",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --providers, --threads."""
    parser.add_argument(
        "--model",
        default=None,
        help="swap model: a swapcam .onnx (from `swapcam export`), a DeepFaceLab/DeepFaceLive .dfm, or a folder "
        "(`swapcam enroll --out DIR`): its newest model, and `swapcam live` switches to a newer one when it "
        "appears; when left out, the shipped demo model (astronaut -> Grace Hopper)",
    )
    add_providers_argument(parser)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="onnxruntime intra-op threads for the swap; when left out, onnxruntime's choice (one per core)",
    )


def open_swapper(
    model: str | os.PathLike | None = None, providers: str = "auto", threads: int | None = None, direction: str = "a2b"
) -> Swapper:
    """Load a swap model; ``model=None`` is the shipped demo model of ``direction`` ('a2b' or 'b2a').

    Says in one line (log INFO) which onnxruntime provider runs it. Raises SwapcamError for a missing file, bad
    ``threads`` or a missing demo model, ContractError for a file that breaks the model contract.
    """
    from models.contract import demo_model_path

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise SwapcamError(f"threads={threads!r}: expected an integer >= 1 (onnxruntime intra-op threads)")
    path = demo_model_path(direction) if model is None else Path(model)
    if not path.exists():
        raise SwapcamError(f"model file {path} does not exist")
    if path.is_dir():
        path = newest_model(path)
    swapper = Swapper(path, providers=providers, threads=threads)
    log.info("%s: %s", path.name, swapper.provider_report)
    return swapper


def warm_up(swapper: Swapper, faces: int = 1) -> Swapper:
    """One inference on a blank batch of one face (and of ``faces``, when more), before the model serves a frame:
    onnxruntime's first run allocates (and builds a TensorRT engine: seconds on a GPU), which would stall the first
    frame after a switch. Call it where a new model is loaded, off the frame thread (the folder watcher's thread,
    the WebRTC peer's asyncio.to_thread); the processor's own :meth:`FaceSwapProcessor.warmup` does the first
    model's at start."""
    import numpy as np

    blank = np.zeros((swapper.size, swapper.size, 3), np.uint8)
    for n in sorted({1, max(1, int(faces))}):
        swapper.swap([blank] * n)
    return swapper


MODEL_SUFFIXES = (".onnx", ".dfm")


def newest_model(folder: str | os.PathLike) -> Path:
    """The most recently written swap model (*.onnx, *.dfm) directly in ``folder``; SwapcamError when it has none.
    Ties (same mtime) go to the later name, so numbered exports (model-0002 after model-0001) order right."""
    folder = Path(folder)
    found = [p for p in folder.iterdir() if p.suffix.lower() in MODEL_SUFFIXES and p.is_file()]
    if not found:
        raise SwapcamError(f"model folder {folder} has no .onnx or .dfm model yet")
    return max(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


class ModelFolderWatcher:
    """Hot swap: polls a model folder and hands each newer model to ``on_new`` (a loaded Swapper, warmed up on a
    blank batch of 1 and ``faces`` crops: :func:`warm_up`), from its own thread, so the running stream switches
    without dropping the camera or the call and without a slow first frame. A model that fails to load or to run
    is said in one line and skipped (the stream keeps the one it has)."""

    def __init__(
        self,
        folder: str | os.PathLike,
        current: Path,
        on_new: Callable[[Swapper], None],
        providers: str = "auto",
        threads: int | None = None,
        interval_s: float = 1.0,
        faces: int = 1,
    ) -> None:
        import threading

        self.folder, self.current = Path(folder), Path(current)
        self.on_new, self.providers, self.threads, self.interval_s = on_new, providers, threads, interval_s
        self.faces = faces
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swapcam-model-watch", daemon=True)
        self.swaps = 0

    def start(self) -> ModelFolderWatcher:
        self._thread.start()
        return self

    def check(self) -> bool:
        """One poll: load and hand over a newer model. True when it switched."""
        try:
            newest = newest_model(self.folder)
        except (SwapcamError, OSError):
            return False
        if newest == self.current:
            return False
        self.current = newest  # tried once, whatever happens: a broken file is not retried every second
        try:
            swapper = warm_up(open_swapper(newest, self.providers, self.threads), self.faces)
        except SwapcamError as exc:  # ContractError is one too
            log.warning("new model %s not used: %s", newest.name, exc)
            return False
        except Exception as exc:  # onnxruntime fails its first run (a bad graph): this model only, not the stream
            log.warning("new model %s not used: it does not run (%s)", newest.name, one_line(exc))
            return False
        log.info("hot swap: now %s", swapper.describe())
        self.on_new(swapper)
        self.swaps += 1
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)


def create_processor(
    swapper: Swapper, options: PipelineOptions | None = None, detector: LandmarkDetector | None = None
) -> FaceSwapProcessor:
    """A per-stream processor, warmed up: its landmark detector has run once on a face and once on an empty frame,
    and the model once on a blank batch, so the first real frame is not the slow one. Native console output of that
    start-up (mediapipe's C++ lines, onnxruntime's first run) is captured and logged at DEBUG only.

    Safe to call from several threads (the WebRTC server builds one processor per peer in the peer's worker
    thread): the output capture takes one process-wide lock, so warm-ups run one at a time.
    """
    processor = FaceSwapProcessor(swapper, options, detector)
    try:
        with captured_native_output() as native_lines:
            processor.warmup()
    except BaseException:
        processor.close()
        raise
    for line in native_lines:
        log.debug("native: %s", line.rstrip())
    return processor


def run_live(
    swapper: Swapper,
    source,
    sink,
    options: PipelineOptions,
    max_frames: int | None = None,
    on_frame: Callable[[Frame, Image], None] | None = None,
    on_start: Callable[[LiveRunner], None] | None = None,
) -> tuple[dict, bool]:
    """Processor + threaded runner from ``source`` to ``sink`` until the source ends, ``max_frames`` are captured,
    the sink closes or Ctrl-C. Returns (summary dict, interrupted). The caller owns and closes source and sink.
    ``on_start(runner)`` is called before the first frame (to switch options or models live: runner.reconfigure)."""
    from realtime.runner import LiveRunner

    interrupted = False
    with create_processor(swapper, options) as processor:
        runner = LiveRunner(source, processor, sink, max_frames=max_frames, on_frame=on_frame)
        if on_start is not None:
            on_start(runner)
        try:
            stats = runner.run()
        except KeyboardInterrupt:
            interrupted = True
            stats = runner.stats
    return stats.summary(warmup=SUMMARY_WARMUP_FRAMES), interrupted
