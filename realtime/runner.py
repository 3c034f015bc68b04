"""The threaded runner of the live pipeline: capture thread -> landmarks thread -> inference thread -> sink (the
caller's thread), joined by one-slot hand-offs (:class:`realtime.slot.LatestSlot`). For a live source the newest
frame wins and the stale one is dropped and counted, so latency stays bounded by the slowest stage instead of
growing in a queue; for a file read as fast as possible every hand-off waits, so every frame is processed.

:class:`RunStats` is what a run measured, in bounded memory; :func:`format_summary` prints its summary for people.
Whether the source is paced (``source.live``: a camera, or a file paced in real time) decides what the delay from
capture to sink means: end-to-end latency when paced, queueing in front of the slowest stage when not.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from realtime.errors import one_line
from realtime.pipeline import STAGES, FaceSwapProcessor, PipelineOptions
from realtime.slot import LatestSlot, PendingChanges
from realtime.types import Frame, Image

log = logging.getLogger("swapcam.runner")

_END = object()  # end of input, passed down the chain behind the last frame


SAMPLE_CAP = 3000  # frames kept for a run's percentiles: all of a short run, a uniform sample of a long one


@dataclass
class _Sample:
    """One delivered frame, as the percentiles need it."""

    index: int  # order of delivery (0 = first frame out), to leave the warm-up out
    delay_ms: float  # capture -> sink done
    timings: dict[str, float]


@dataclass
class RunStats:
    """What a run measured: per-stage timings, the delay from capture to sink done, frames dropped.

    ``paced``: the source runs on its own clock (a camera, or a file or clip paced in real time). Only then is
    capture -> sink done the end-to-end latency a viewer sees (``latency_ms``). An unpaced source, read as fast as the
    pipeline takes frames, keeps every hand-off full, so the same delay is queueing in front of the slowest stage: it
    is kept as ``queue_latency_ms`` and the run is judged by throughput (fps) and stage cost instead.

    Memory stays bounded however long the run (``swapcam live`` for hours, a soak): the percentiles come from every
    frame of a short run and from a uniform sample of ``sample_cap`` frames of a longer one (reservoir sampling,
    seeded). :meth:`roll_windows` also folds the frames into one record per window (``windows``).
    """

    paced: bool = True
    frames_in: int = 0
    frames_out: int = 0
    frames_with_face: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    first_out: float | None = None
    windows: list[dict] = field(default_factory=list)
    sample_cap: int = SAMPLE_CAP
    _samples: list[_Sample] = field(init=False, default_factory=list, repr=False)
    _rng: random.Random = field(init=False, default_factory=lambda: random.Random(0), repr=False)
    _window_s: float | None = field(init=False, default=None, repr=False)
    _on_window: Callable[[dict], None] | None = field(init=False, default=None, repr=False)
    _window: list[_Sample] = field(init=False, default_factory=list, repr=False)
    _window_end: float | None = field(init=False, default=None, repr=False)
    _window_counts: tuple[int, int] = field(
        init=False, default=(0, 0), repr=False
    )  # (frames_in, dropped) when it opened
    _dropped_seen: int = field(init=False, default=0, repr=False)

    @property
    def delay_key(self) -> str:
        """The summary's name for capture -> sink done: a latency only when the source is paced."""
        return "latency_ms" if self.paced else "queue_latency_ms"

    def roll_windows(self, seconds: float, on_window: Callable[[dict], None] | None = None) -> None:
        """From now on, close a window every ``seconds`` of the run (from ``started``): its frames become one record
        (fps, delay p50/p95, stage p50/p95, frames dropped) appended to ``windows`` and passed to ``on_window`` (in
        the sink's thread, so keep it short), and are then forgotten. A window without a frame is a record with
        0 fps: a stall shows. The first window includes start-up."""
        if seconds <= 0:
            raise ValueError(f"window of {seconds} s: expected > 0")
        self._window_s, self._on_window = float(seconds), on_window

    def record(self, timings: dict[str, float], delay_ms: float, faces: int, t_done: float, dropped: int = 0) -> None:
        """One frame delivered at ``t_done`` (perf_counter): its stage timings, capture -> sink done delay, number
        of faces; ``dropped``: frames dropped by the hand-offs so far in the run."""
        if self._window_s is not None:
            if self._window_end is None:
                self._window_end = self.started + self._window_s
            while t_done >= self._window_end:
                self._close_window(self._window_end, self._window_s)
        sample = _Sample(self.frames_out, delay_ms, dict(timings))
        self.frames_out += 1
        self.frames_with_face += faces > 0
        self._dropped_seen = dropped
        if self.first_out is None:
            self.first_out = t_done
        self.finished = t_done
        if len(self._samples) < self.sample_cap:
            self._samples.append(sample)
        else:  # reservoir sampling: every frame so far has the same chance to be kept
            slot = self._rng.randrange(self.frames_out)
            if slot < self.sample_cap:
                self._samples[slot] = sample
        if self._window_s is not None:
            self._window.append(sample)

    def finish(self, t_end: float, dropped: int) -> None:
        """The run ended at ``t_end``: close the last, partial window if it lasted half a window or more (a shorter
        tail, a few frames after a soak's last window, would be a record of noise; its frames stay in the summary)."""
        self._dropped_seen = dropped
        if self._window_s is None or self._window_end is None or not self._window:
            return
        seconds = t_end - (self._window_end - self._window_s)
        if seconds >= self._window_s / 2:
            self._close_window(t_end, seconds)
        self._window = []

    def _close_window(self, t_end: float, seconds: float) -> None:
        frames_in0, dropped0 = self._window_counts
        samples, self._window = self._window, []
        record = {
            "window": len(self.windows) + 1,
            "t_end_s": round(t_end - self.started, 2),
            "seconds": round(seconds, 2),
            "frames_in": self.frames_in - frames_in0,
            "frames_out": len(samples),
            "fps": round(len(samples) / max(seconds, 1e-9), 2),
            self.delay_key: _percentiles([s.delay_ms for s in samples]),
            "dropped": self._dropped_seen - dropped0,
            "stages_ms": _stage_percentiles(samples),
        }
        self.windows.append(record)
        self._window_counts = (self.frames_in, self._dropped_seen)
        self._window_end = t_end + (self._window_s or 0.0)
        if self._on_window is not None:
            self._on_window(record)

    @property
    def dropped_total(self) -> int:
        return int(sum(self.dropped.values()))

    def fps(self) -> float:
        """Sustained output rate, from the first delivered frame to the last (start-up excluded)."""
        if self.frames_out < 2 or self.first_out is None:
            return 0.0
        return (self.frames_out - 1) / max(self.finished - self.first_out, 1e-9)

    def summary(self, warmup: int = 0) -> dict:
        """The run in one dict; the first ``warmup`` frames out are left out of the percentiles (when enough are
        left). ``paced`` says whether the delay is ``latency_ms`` (paced) or ``queue_latency_ms`` (unpaced)."""
        after = [s for s in self._samples if s.index >= warmup]
        samples = after if len(after) > 5 else self._samples
        result = {
            "paced": self.paced,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_with_face": self.frames_with_face,
            "fps": round(self.fps(), 2),
            "wall_s": round(self.finished - self.started, 3),
            self.delay_key: _percentiles([s.delay_ms for s in samples]),
            "dropped": dict(self.dropped),
            "dropped_total": self.dropped_total,
            "stages_ms": _stage_percentiles(samples),
            "percentile_frames": len(samples),
        }
        if self._window_s is not None:
            result["window_s"] = self._window_s
            result["windows"] = list(self.windows)
        return result


def _percentiles(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {"p50": None, "p95": None, "mean": None}
    return {
        "p50": round(float(np.percentile(arr, 50)), 3),
        "p95": round(float(np.percentile(arr, 95)), 3),
        "mean": round(float(arr.mean()), 3),
    }


def _stage_percentiles(samples: list[_Sample]) -> dict[str, dict]:
    series: dict[str, list[float]] = {}
    for sample in samples:
        for name, ms in sample.timings.items():
            series.setdefault(name, []).append(ms)
        if "colour" in sample.timings and "compose" in sample.timings:
            series.setdefault("colour+compose", []).append(sample.timings["colour"] + sample.timings["compose"])
    return {name: _percentiles(values) for name, values in series.items()}


def format_summary(summary: dict) -> str:
    """The human-readable bench/live summary (a few lines). A paced run (camera, or pace realtime) reports its
    end-to-end latency; an unpaced one its throughput, and says in one line why its delay is not a latency."""
    lines = [
        f"frames: {summary['frames_in']} captured, {summary['frames_out']} delivered, "
        f"{summary['frames_with_face']} with a face, "
        f"{summary['dropped_total']} dropped {summary['dropped'] or ''}".rstrip()
    ]
    if summary.get("paced", True):
        latency = summary["latency_ms"]
        lines.append(
            f"sustained fps: {summary['fps']:.1f}   end-to-end latency (capture -> sink) ms: "
            f"p50 {_fmt(latency['p50'])}  p95 {_fmt(latency['p95'])}"
        )
    else:
        queue = summary["queue_latency_ms"]
        lines.append(
            f"throughput: {summary['fps']:.1f} fps (unpaced source: read as fast as the pipeline takes frames)"
        )
        lines.append(
            f"queueing delay p50 {_fmt(queue['p50'])} ms / p95 {_fmt(queue['p95'])} ms is not a live latency: unpaced "
            "frames wait in full hand-offs; pace the source like a camera (bench --pace realtime) to measure latency"
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
        self.stats = RunStats(paced=bool(getattr(source, "live", True)))
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

    @property
    def refused(self) -> int:
        """Switches refused so far (they raised; the stream went on as before)."""
        return self._changes.refused

    def reconfigure(
        self,
        swapper=None,
        options: PipelineOptions | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        """Switch the model and/or the pipeline options of the running stream (any thread). The inference thread
        applies it between two frames: the source, the landmark tracker and the sink keep running, and the next
        frames use the new model. The caller owns the old swapper (close it, or let it go, afterwards), and warms a
        new one first (realtime.builder.warm_up): this is the frame thread.

        A change that raises (a sharpener whose model does not load, a bad value) is refused: the stream goes on
        with what it had, the log says so in one line, and so does ``on_refused(line)`` (in the inference thread)."""

        def refused(exc: Exception) -> None:
            line = f"not applied, going on as before: {one_line(exc)}"
            log.warning("%s", line)
            if on_refused is not None:
                on_refused(line)

        self._changes.put(lambda processor: processor.reconfigure(swapper, options), on_error=refused)

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

    def _hand_offs(self) -> tuple[tuple[str, LatestSlot], ...]:
        return (
            ("capture->landmarks", self._captured),
            ("landmarks->inference", self._located),
            ("inference->sink", self._rendered),
        )

    def _dropped_total(self) -> int:
        return sum(slot.dropped for _, slot in self._hand_offs())

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
                delay_ms = (t1 - frame.t_capture) * 1e3
                self.stats.record(frame.timings_ms, delay_ms, len(frame.faces), t1, self._dropped_total())
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
            self.stats.dropped = {name: slot.dropped for name, slot in self._hand_offs() if slot.dropped}
            self.stats.finish(self.stats.finished, self.stats.dropped_total)
        if self._errors:
            raise self._errors[0]
        return self.stats
