"""The threaded runner of the live pipeline: capture thread -> landmarks thread -> inference thread -> sink (the
caller's thread), joined by one-slot hand-offs (:class:`realtime.slot.LatestSlot`). For a live source the newest
frame wins and the stale one is dropped and counted, so latency stays bounded by the slowest stage instead of
growing in a queue; for a file read as fast as possible every hand-off waits, so every frame is processed.

:class:`RunStats` is what a run measured; :func:`format_summary` prints its summary for people.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from realtime.pipeline import STAGES, FaceSwapProcessor, PipelineOptions
from realtime.slot import LatestSlot, PendingChanges
from realtime.types import Frame, Image

_END = object()  # end of input, passed down the chain behind the last frame


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
            return {
                "p50": round(float(np.percentile(arr, 50)), 3),
                "p95": round(float(np.percentile(arr, 95)), 3),
                "mean": round(float(arr.mean()), 3),
            }

        stages = {name: pct(vals) for name, vals in self.timings.items()}
        colour_compose = [
            a + b for a, b in zip(self.timings.get("colour", []), self.timings.get("compose", []), strict=True)
        ]
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
    lines = [
        f"frames: {summary['frames_in']} captured, {summary['frames_out']} delivered, "
        f"{summary['frames_with_face']} with a face, "
        f"{summary['dropped_total']} dropped {summary['dropped'] or ''}".rstrip()
    ]
    lines.append(
        f"sustained fps: {summary['fps']:.1f}   end-to-end latency (capture -> sink) ms: "
        f"p50 {_fmt(summary['latency_ms']['p50'])}  p95 {_fmt(summary['latency_ms']['p95'])}"
    )
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

    ``processor``: a :class:`FaceSwapProcessor`, warmed up by whoever built it (``realtime.builder``), closed by
    its owner, not here. ``source``: a realtime.sources Source (``read()`` -> SourceFrame or None at the end, ``live``
    says whether it runs on its own clock). ``sink``: ``send(image) -> bool`` (False: the user closed it). For a live
    source every hand-off lets the newest frame win and counts the dropped one; for a file read as fast as possible
    every hand-off waits, so every frame is processed.
    """

    def __init__(
        self,
        source,
        processor: FaceSwapProcessor,
        sink,
        max_frames: int | None = None,
        on_frame: Callable[[Frame, Image], None] | None = None,
    ) -> None:
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
        self._changes = PendingChanges()  # model / option switches for the inference thread

    @property
    def reconfigured(self) -> int:
        """Switches applied so far."""
        return self._changes.applied

    def reconfigure(self, swapper=None, options: PipelineOptions | None = None) -> None:
        """Switch the model and/or the pipeline options of the running stream (any thread). The inference thread
        applies it between two frames: the source, the landmark tracker and the sink keep running, and the next
        frames use the new model. The caller owns the old swapper (close it, or let it go, afterwards)."""
        self._changes.put(lambda processor: processor.reconfigure(swapper, options))

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

    @staticmethod
    def _frame_time(frame: Frame) -> float:
        """The frame's time for the per-face filters and tracks: its media time when it has one, else capture."""
        t = getattr(frame, "t_media", None)
        return frame.t_capture if t is None else t

    def _locate(self, frame: Frame) -> Frame:
        frame.faces = self.processor.find_faces(frame.image, self._frame_time(frame), frame.timings_ms)
        return frame

    def _render(self, frame: Frame) -> tuple[Frame, Image]:
        self._changes.apply(self.processor)
        return frame, self.processor.render(frame.image, frame.faces, frame.timings_ms, self._frame_time(frame))

    def _landmarks(self) -> None:
        self._stage(self._captured, self._located, self._locate)

    def _inference(self) -> None:
        self._stage(self._located, self._rendered, self._render)

    def run(self) -> RunStats:
        """Run until the source ends, ``max_frames`` are captured, the sink closes or Ctrl-C. Returns the stats."""
        threads = [
            threading.Thread(target=self._guard(body), name=f"swapcam-{name}", daemon=True)
            for name, body in (
                ("capture", self._capture),
                ("landmarks", self._landmarks),
                ("inference", self._inference),
            )
        ]
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
            self.stats.dropped = {
                name: slot.dropped
                for name, slot in (
                    ("capture->landmarks", self._captured),
                    ("landmarks->inference", self._located),
                    ("inference->sink", self._rendered),
                )
                if slot.dropped
            }
        if self._errors:
            raise self._errors[0]
        return self.stats
