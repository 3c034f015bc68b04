"""The live pipeline: the per-frame processor (landmarks -> smooth -> align -> swap -> colour -> compose -> overlay)
and the threaded runner that overlaps capture, landmarks and inference.

``FaceSwapProcessor`` is synchronous and per stream (tracking state, smoothing filters): ``process(image)`` does one
frame. Its two halves, ``find_faces`` (landmarks + One Euro) and ``render`` (align, swap, colour, compose, overlay),
are what the runner puts in separate threads. The runner is the one wiring place of the live command: threads
joined by one-slot hand-offs (:class:`LatestSlot`) where, for a live source, the newest frame wins and the stale
one is dropped and counted, so latency stays bounded by the slowest stage instead of growing in a queue.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from realtime import overlay
from realtime.align import align, transform_points
from realtime.colour import COLOUR_MODES, colour_transfer
from realtime.compose import blend_mask, paste_back
from realtime.errors import SwapcamError
from realtime.slot import LatestSlot
from realtime.types import Face, Frame, Image, check_image

log = logging.getLogger("swapcam.pipeline")

STAGES = ("landmarks", "smooth", "align", "swap", "colour", "compose", "overlay")


@dataclass
class PipelineOptions:
    """Per-stream options of the swap. Defaults suit a 640x480 webcam at 30 fps."""

    colour: str = "rct"  # "rct" (Reinhard in LAB, masked) | "hist" (histogram matching) | "none"
    max_faces: int = 1
    label: bool = False  # stamp the visible "synthetic video" label
    hud: bool = False  # fps + per-stage ms, top left
    smoothing: bool = True  # One Euro filter on the landmarks
    min_cutoff: float = 1.0  # One Euro: Hz at rest (lower = steadier, more lag)
    beta: float = 0.05  # One Euro: cutoff growth per px/s of speed (higher = less lag in motion)
    d_cutoff: float = 1.0
    landmarks: str = "mediapipe"  # landmark backend
    label_text: str = overlay.LABEL_TEXT

    def validate(self) -> None:
        if self.colour not in COLOUR_MODES:
            raise SwapcamError(f"colour={self.colour!r}; choose from {', '.join(COLOUR_MODES)}")
        if not isinstance(self.max_faces, int) or not 1 <= self.max_faces <= 16:
            raise SwapcamError(f"max_faces={self.max_faces!r}, expected an integer in 1..16")
        for name in ("min_cutoff", "d_cutoff"):
            if not getattr(self, name) > 0:
                raise SwapcamError(f"{name}={getattr(self, name)!r}, expected > 0")
        if not self.beta >= 0:
            raise SwapcamError(f"beta={self.beta!r}, expected >= 0")


class FaceSwapProcessor:
    """Swap every face (up to ``max_faces``) of a stream's frames. One instance per stream; ``close()`` idempotent.

    ``swapper`` is a :class:`realtime.swapper.Swapper` (shared between streams is fine); ``detector`` any
    LandmarkDetector (default: mediapipe FaceMesh in tracking mode, owned and closed by this processor).
    """

    def __init__(self, swapper, options: PipelineOptions | None = None, detector=None) -> None:
        self.reconfigure(swapper, options or PipelineOptions())
        self._owns_detector = detector is None
        self.detector = detector if detector is not None else self._create_detector()
        self._filters: list = []
        self._last_render: float | None = None
        self._fps: float | None = None
        self._closed = False
        self.last_timings: dict[str, float] = {}
        self.last_faces: list[Face] = []

    def reconfigure(self, swapper=None, options: PipelineOptions | None = None) -> None:
        """Switch the model and/or the options between two frames, keeping the landmark tracker and smoothing
        state (no re-detection). The detector's backend and max_faces are fixed at construction."""
        if options is not None:
            options.validate()
            if hasattr(self, "options") and (options.landmarks, options.max_faces) != (self.options.landmarks, self.options.max_faces):
                raise SwapcamError("landmarks backend and max_faces cannot change on a running processor")
            self.options = options
            self._transfer = colour_transfer(options.colour)
        if swapper is not None:
            self.swapper = swapper
            self.size = int(swapper.info.size)
            self.coverage = float(swapper.info.coverage)

    def _create_detector(self):
        """The stream's own tracking detector, started once on a face and then on an empty frame with its native
        console output captured: mediapipe's C++ start-up lines (XNNPACK, feedback manager, projection warnings)
        then never reach the user. The empty frame ends the warm-up track, so the first real frame starts clean."""
        from realtime.landmarks import create_detector
        from realtime.samples import portrait
        from realtime.native import captured_native_output

        with captured_native_output():
            detector = create_detector(self.options.landmarks, mode="tracking", max_faces=self.options.max_faces)
            if self.options.landmarks == "mediapipe":
                face = portrait("astronaut").image
                detector.detect(face)
                detector.detect(np.zeros_like(face))
        return detector

    def warmup(self) -> None:
        """One inference on a blank batch: onnxruntime's first run allocates and would otherwise stall frame 1."""
        blank = np.zeros((self.size, self.size, 3), np.uint8)
        self.swapper.swap([blank] * self.options.max_faces)

    # -- landmarks half -------------------------------------------------------------------------------------
    def _smooth(self, faces: list[Face], t: float) -> list[Face]:
        from realtime.landmarks.one_euro import OneEuroFilter

        # Pair each face with the filter whose last face centre is nearest (the detector's face order can change
        # between frames when there are several); a face with no filter within half its size starts a fresh one,
        # so one person's landmarks are never dragged towards another's.
        previous = self._filters  # list of (filter, centre)
        unused = list(range(len(previous)))
        kept: list = []
        out = []
        for face in faces:
            centre = face.landmarks.mean(axis=0)
            reach = 0.5 * float(np.ptp(face.landmarks[:, 0]))
            best = min(unused, key=lambda j: float(np.linalg.norm(previous[j][1] - centre)), default=None)
            if best is not None and np.linalg.norm(previous[best][1] - centre) <= reach:
                unused.remove(best)
                filt = previous[best][0]
            else:
                filt = OneEuroFilter(self.options.min_cutoff, self.options.beta, self.options.d_cutoff)
            smoothed = filt(face.landmarks, t).astype(np.float32)
            kept.append((filt, centre))
            out.append(Face(landmarks=smoothed, raw=face.raw, confidence=face.confidence, track_id=face.track_id))
        self._filters = kept
        return out

    def find_faces(self, image: Image, t: float | None = None, timings: dict[str, float] | None = None) -> list[Face]:
        """Landmarks (tracking mode) + One Euro smoothing. ``t``: the frame's time in seconds (for the filter)."""
        if self._closed:
            raise RuntimeError("FaceSwapProcessor is closed")
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        faces = self.detector.detect(image)[: self.options.max_faces]
        t1 = time.perf_counter()
        timings["landmarks"] = (t1 - t0) * 1e3
        if self.options.smoothing and faces:
            faces = self._smooth(faces, t1 if t is None else float(t))
        elif not faces:
            self._filters = []
        timings["smooth"] = (time.perf_counter() - t1) * 1e3
        return faces

    # -- swap half --------------------------------------------------------------------------------------------
    def _crop(self, image: Image, face: Face) -> tuple[Image, np.ndarray, np.ndarray] | None:
        pts = np.asarray(face.landmarks, dtype=np.float64)
        try:
            crop, matrix = align(image, pts, self.size, self.coverage)
        except ValueError:  # not 68 finite points, or degenerate (all equal): no face to swap in this frame
            return None
        return crop, matrix, transform_points(pts, matrix)

    def render(self, image: Image, faces: list[Face], timings: dict[str, float] | None = None) -> Image:
        """Swap ``faces`` into a copy of ``image`` (the input is never modified). No face: ``image`` itself."""
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        crops = [c for c in (self._crop(image, f) for f in faces) if c is not None]
        t1 = time.perf_counter()
        timings["align"] = (t1 - t0) * 1e3
        out = image
        colour_ms = compose_ms = 0.0
        if crops:
            swapped, learned = self.swapper.swap([c[0] for c in crops])
            t2 = time.perf_counter()
            timings["swap"] = (t2 - t1) * 1e3
            out = image.copy()
            for (crop, matrix, crop_pts), face, mask_l in zip(crops, swapped, learned):
                ta = time.perf_counter()
                mask = blend_mask(mask_l, crop_pts)
                tb = time.perf_counter()
                face = self._transfer(face, crop, mask)
                tc = time.perf_counter()
                paste_back(out, face, mask, matrix)
                td = time.perf_counter()
                colour_ms += (tc - tb) * 1e3
                compose_ms += (tb - ta + td - tc) * 1e3
        else:
            timings["swap"] = 0.0
        timings["colour"] = colour_ms
        timings["compose"] = compose_ms
        t3 = time.perf_counter()
        if self._last_render is not None:
            dt = max(t3 - self._last_render, 1e-6)
            self._fps = 1.0 / dt if self._fps is None else 0.9 * self._fps + 0.1 / dt
        self._last_render = t3
        if self.options.hud or self.options.label:
            if out is image:
                out = image.copy()
            if self.options.hud:
                overlay.draw_hud(out, self._fps, {k: v for k, v in timings.items() if k in STAGES}, len(faces))
            if self.options.label:
                overlay.draw_label(out, self.options.label_text)
        timings["overlay"] = (time.perf_counter() - t3) * 1e3
        return out

    def process(self, image: Image, t: float | None = None) -> Image:
        """One frame, synchronously: landmarks -> smooth -> align -> swap -> colour -> compose -> overlay."""
        check_image(image, "frame")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        faces = self.find_faces(image, t, timings)
        out = self.render(image, faces, timings)
        timings["total"] = (time.perf_counter() - t0) * 1e3
        self.last_faces = faces
        self.last_timings = timings
        return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._owns_detector:
                self.detector.close()

    def __enter__(self) -> "FaceSwapProcessor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------------------------
# Threaded runner
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class RunStats:
    """What a run measured: per-frame stage timings, end-to-end latency (capture timestamp -> sink done), drops."""

    frames_in: int = 0
    frames_out: int = 0
    faces: list[int] = field(default_factory=list)
    timings: dict[str, list[float]] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    first_out: float | None = None

    def add(self, timings: dict[str, float]) -> None:
        for name, ms in timings.items():
            self.timings.setdefault(name, []).append(ms)

    @property
    def dropped_total(self) -> int:
        return int(sum(self.dropped.values()))

    def fps(self) -> float:
        """Sustained output rate, from the first delivered frame to the last (start-up excluded)."""
        if self.frames_out < 2 or self.first_out is None:
            return 0.0
        return (self.frames_out - 1) / max(self.finished - self.first_out, 1e-9)

    def summary(self, warmup: int = 0) -> dict:
        def pct(values: list[float]) -> dict:
            arr = np.asarray(values[warmup:] if len(values) > warmup + 5 else values, dtype=np.float64)
            if arr.size == 0:
                return {"p50": None, "p95": None, "mean": None}
            return {"p50": round(float(np.percentile(arr, 50)), 3), "p95": round(float(np.percentile(arr, 95)), 3),
                    "mean": round(float(arr.mean()), 3)}

        stages = {name: pct(vals) for name, vals in self.timings.items()}
        colour_compose = [a + b for a, b in zip(self.timings.get("colour", []), self.timings.get("compose", []))]
        if colour_compose:
            stages["colour+compose"] = pct(colour_compose)
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_with_face": int(sum(1 for n in self.faces if n > 0)),
            "fps": round(self.fps(), 2),
            "wall_s": round(self.finished - self.started, 3),
            "latency_ms": pct(self.latency_ms),
            "dropped": dict(self.dropped),
            "dropped_total": self.dropped_total,
            "stages_ms": stages,
        }


def format_summary(summary: dict) -> str:
    """The human-readable bench/live summary (a few lines)."""
    lines = [f"frames: {summary['frames_in']} captured, {summary['frames_out']} delivered, "
             f"{summary['frames_with_face']} with a face, {summary['dropped_total']} dropped {summary['dropped'] or ''}".rstrip()]
    lines.append(f"sustained fps: {summary['fps']:.1f}   end-to-end latency (capture -> sink) ms: "
                 f"p50 {_fmt(summary['latency_ms']['p50'])}  p95 {_fmt(summary['latency_ms']['p95'])}")
    lines.append("stage ms        p50     p95")
    order = [*STAGES, "colour+compose", "sink", "total"]
    for name in order + [n for n in summary["stages_ms"] if n not in order]:
        if name in summary["stages_ms"]:
            st = summary["stages_ms"][name]
            lines.append(f"  {name:<13}{_fmt(st['p50']):>6}  {_fmt(st['p95']):>6}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


class LiveRunner:
    """capture thread -> landmarks thread -> inference thread -> sink (caller's thread), one-slot hand-offs.

    ``source``: a realtime.sources Source (``read()`` -> SourceFrame or None at the end, ``live`` says whether it
    runs on its own clock). ``sink``: ``send(image) -> bool`` (False: the user closed it). For a live source every
    hand-off lets the newest frame win and counts the dropped one; for a file read as fast as possible every
    hand-off waits, so every frame is processed.
    """

    def __init__(self, source, processor: FaceSwapProcessor, sink, max_frames: int | None = None,
                 on_frame: Callable[[Frame, Image], None] | None = None) -> None:
        self.source = source
        self.processor = processor
        self.sink = sink
        self.max_frames = max_frames
        self.on_frame = on_frame
        self.stats = RunStats()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._captured = LatestSlot()
        self._located = LatestSlot()
        self._rendered = LatestSlot()

    def stop(self) -> None:
        self._stop.set()
        for slot in (self._captured, self._located, self._rendered):
            slot.close()

    def _guard(self, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as exc:  # handed to the caller's thread, which re-raises it
                self._errors.append(exc)
                self.stop()
        return run

    def _capture(self) -> None:
        block = not getattr(self.source, "live", True)
        count = 0
        while not self._stop.is_set():
            if self.max_frames is not None and count >= self.max_frames:
                break
            frame = self.source.read()
            if frame is None:
                break
            count += 1
            self.stats.frames_in = count
            self._captured.put(frame, block=block)
        # End of input: let the frames in flight drain, then close the chain behind them.
        self._captured.put(_END, block=True)

    def _stage(self, inbox, outbox, work: Callable) -> None:
        """One worker thread: take a frame from ``inbox``, ``work`` on it, hand the result to ``outbox``.
        End of input is passed along; a closed hand-off or a stop request ends the thread."""
        block = not getattr(self.source, "live", True)
        while True:
            frame = inbox.get()
            if frame is LatestSlot.CLOSED or self._stop.is_set():
                return
            if frame is _END:
                outbox.put(_END, block=True)
                return
            outbox.put(work(frame), block=block)

    def _locate(self, frame: Frame) -> Frame:
        t = getattr(frame, "t_media", None)
        frame.faces = self.processor.find_faces(frame.image, frame.t_capture if t is None else t, frame.timings_ms)
        return frame

    def _render(self, frame: Frame) -> tuple[Frame, Image]:
        return frame, self.processor.render(frame.image, frame.faces, frame.timings_ms)

    def _landmarks(self) -> None:
        self._stage(self._captured, self._located, self._locate)

    def _inference(self) -> None:
        self._stage(self._located, self._rendered, self._render)

    def run(self) -> RunStats:
        """Run until the source ends, ``max_frames`` are captured, the sink closes or Ctrl-C. Returns the stats."""
        threads = [threading.Thread(target=self._guard(body), name=f"swapcam-{name}", daemon=True)
                   for name, body in (("capture", self._capture), ("landmarks", self._landmarks), ("inference", self._inference))]
        self.processor.warmup()
        self.stats.started = time.perf_counter()
        for thread in threads:
            thread.start()
        try:
            while True:
                item = self._rendered.get()
                if item is LatestSlot.CLOSED or item is _END:
                    break
                frame, out = item
                t0 = time.perf_counter()
                keep_going = self.sink.send(out)
                t1 = time.perf_counter()
                frame.timings_ms["sink"] = (t1 - t0) * 1e3
                frame.timings_ms["total"] = sum(v for k, v in frame.timings_ms.items() if k != "total")
                self.stats.latency_ms.append((t1 - frame.t_capture) * 1e3)
                self.stats.add(frame.timings_ms)
                self.stats.faces.append(len(frame.faces))
                self.stats.frames_out += 1
                if self.stats.first_out is None:
                    self.stats.first_out = t1
                self.stats.finished = t1
                if self.on_frame is not None:
                    self.on_frame(frame, out)
                if keep_going is False:
                    break
        finally:
            self.stop()
            for thread in threads:
                thread.join(timeout=5.0)
            if self.stats.finished == 0.0:
                self.stats.finished = time.perf_counter()
            self.stats.dropped = {name: slot.dropped for name, slot in
                                  (("capture->landmarks", self._captured), ("landmarks->inference", self._located),
                                   ("inference->sink", self._rendered)) if slot.dropped}
        if self._errors:
            raise self._errors[0]
        return self.stats


_END = object()
