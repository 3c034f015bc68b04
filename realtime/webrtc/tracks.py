"""aiortc media tracks of one peer: swapped video (a worker thread runs the face-swap processor) and delayed audio.

Flow per peer (newest frame wins at every hand-off, nothing queues up):

  browser video -> RemoteStreamTrack.recv() -> reader task -> LatestSlot (thread-safe, 1 slot)
      -> worker thread: processor.process(bgr) -> loop.call_soon_threadsafe -> AsyncLatest (1 slot)
      -> SwappedVideoTrack.recv() -> aiortc encoder -> browser

  browser audio -> reader task -> FIFO stamped with arrival time
      -> DelayedAudioTrack.recv() releases each frame at arrival + (measured video latency) -> browser

The video latency is measured per frame from the moment the decoded frame reaches us to the moment the swapped
frame is handed to the encoder; the audio is held back by the median of that over the last second, so sound and
picture leave the server together (lip sync within +-45 ms, ITU-R BT.1359). pts and time_base of every video frame
are kept, so the browser's jitter buffer sees the camera's own timing.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.slot import LatestSlot, PendingChanges
from realtime.types import Image

log = logging.getLogger("swapcam.webrtc")

# Frames larger than this (longest side) are scaled down before processing: a hostile or misconfigured client
# must not be able to make one peer's worker eat the box with 4K frames.
MAX_SIDE = 1280
LATENCY_WINDOW_S = 1.0  # the audio delay follows the median video latency over this window
MAX_AUDIO_DELAY_S = 1.0  # never hold audio longer than this, whatever the video does
AUDIO_BUFFER_FRAMES = 100  # 2 s of 20 ms frames; beyond that the oldest is dropped
AUDIO_MAX_LATE_S = 0.12  # a frame this much past its due time (the sender was starved) is dropped, not sent late


class Processor(Protocol):
    """What the worker thread drives: the live pipeline's FaceSwapProcessor, or anything with the same shape."""

    last_timings: dict[str, float]
    last_faces: list  # the faces of the last processed frame (realtime.types.Face)

    def process(self, image: Image, t: float | None = None) -> Image: ...

    def close(self) -> None: ...


class AsyncLatest:
    """The event-loop side one-slot hand-off: newest item wins, ``get`` awaits, ``end`` wakes waiters with an error."""

    def __init__(self) -> None:
        self._item: Any = None
        self._full = False
        self._ended = False
        self._event = asyncio.Event()
        self.dropped = 0

    def put(self, item: Any) -> None:
        if self._ended:
            return
        if self._full:
            self.dropped += 1
        self._item, self._full = item, True
        self._event.set()

    def end(self) -> None:
        self._ended = True
        self._event.set()

    async def get(self) -> Any:
        while not self._full:
            if self._ended:
                raise MediaStreamError("track ended")
            self._event.clear()
            await self._event.wait()
        item, self._item, self._full = self._item, None, False
        return item


@dataclass
class VideoStats:
    """Counters of one peer's video path; read from the event loop, written by the loop and the worker."""

    frames_in: int = 0
    frames_out: int = 0
    errors: int = 0

    def __post_init__(self) -> None:
        self.out_times: collections.deque[float] = collections.deque(maxlen=120)
        self.latencies: collections.deque[tuple[float, float]] = collections.deque(maxlen=300)  # (t_out, seconds)
        self.arrivals: collections.deque[float] = collections.deque(maxlen=60)
        self.lags: collections.deque[tuple[float, float]] = collections.deque(maxlen=60)  # (t_in, t_in - pts s)
        self.lag_floor: float | None = None
        self.timings: dict[str, float] = {}

    def record_out(self, t_in: float, t_out: float) -> None:
        self.frames_out += 1
        self.out_times.append(t_out)
        self.latencies.append((t_out, t_out - t_in))

    def fps(self, now: float, window: float = 2.0) -> float:
        times = [t for t in self.out_times if t >= now - window]
        if len(times) < 2:
            return 0.0
        span = max(times[-1] - times[0], 1e-6)
        return (len(times) - 1) / span

    def frame_interval_s(self) -> float | None:
        """Median time between incoming frames (1/fps of the camera as it reaches us)."""
        times = list(self.arrivals)
        if len(times) < 3:
            return None
        return statistics.median(b - a for a, b in itertools.pairwise(times))

    def record_in(self, t_in: float, pts_s: float | None) -> None:
        self.frames_in += 1
        self.arrivals.append(t_in)
        if pts_s is not None:
            lag = t_in - pts_s
            self.lags.append((t_in, lag))
            self.lag_floor = lag if self.lag_floor is None else min(self.lag_floor, lag)

    def in_fps(self) -> float:
        interval = self.frame_interval_s()
        return 1.0 / interval if interval else 0.0

    def backlog_s(self, now: float, recent: float = 0.5) -> float | None:
        """How far behind the camera the incoming frames are, beyond the best ever seen on this connection:
        (arrival - pts) now minus its minimum. pts count from the first frame, so the minimum is the queue-free
        transit time plus a constant; the excess grows when frames queue before they reach us (aiortc decodes
        every frame from an unbounded queue, so an overloaded CPU shows up here as seconds of delay)."""
        latest = [lag for t, lag in self.lags if t >= now - recent]
        if len(latest) < 3 or self.lag_floor is None:
            return None
        return statistics.median(latest) - self.lag_floor

    def latency_s(self, now: float, window: float = LATENCY_WINDOW_S) -> float | None:
        """Median capture->send latency of the frames sent in the last ``window`` seconds (None before any)."""
        recent = [lat for t, lat in self.latencies if t >= now - window]
        if not recent:
            recent = [lat for _, lat in list(self.latencies)[-5:]]
        return statistics.median(recent) if recent else None


def frame_to_bgr(frame: av.VideoFrame, max_side: int = MAX_SIDE) -> Image:
    """The decoded frame as a BGR image, scaled down (aspect kept, even sides for yuv420p) when its longest side
    is over ``max_side``."""
    if max(frame.width, frame.height) > max_side:
        scale = max_side / max(frame.width, frame.height)
        frame = frame.reformat(width=int(frame.width * scale) // 2 * 2, height=int(frame.height * scale) // 2 * 2)
    # PyAV types to_ndarray() as a union over every format's dtype; bgr24 is always uint8.
    return cast(Image, frame.to_ndarray(format="bgr24"))


class VideoWorker:
    """One peer's processing thread. Owns the processor: it is built, used and closed in this thread only
    (mediapipe's tracking graph keeps per-stream state and must not be driven from two threads)."""

    def __init__(
        self,
        make_processor: Callable[[], Processor],
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[av.VideoFrame | None, float], None],  # None: the worker failed, end the track
        stats: VideoStats,
        name: str,
    ) -> None:
        self._make_processor = make_processor
        self._loop = loop
        self._deliver = deliver
        self._stats = stats
        self.inbox = LatestSlot()
        self._changes = PendingChanges()
        self.error: BaseException | None = None
        self.processor: Processor | None = None  # set by the thread; read-only for everyone else
        # sees every camera frame and its faces after the swap, in this thread (the page's "use my face" capture)
        self.observer: Callable[[Any, list], None] | None = None
        # (observer, exception) of an observer that raised: it was dropped, the stream went on; the peer reads it
        self.observer_error: tuple[Callable[[Any, list], None], Exception] | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def reconfigure(
        self, change: Callable[[Processor], None], on_error: Callable[[Exception], None] | None = None
    ) -> None:
        """Queue a change (direction, colour mode, label) to apply between two frames, in the worker thread. One
        that raises is refused and handed to ``on_error`` (in this thread); the stream goes on as before."""
        self._changes.put(change, on_error)

    def _run(self) -> None:
        processor = None
        try:
            processor = self.processor = self._make_processor()
            while not self.inbox.closed:
                item = self.inbox.get(timeout=0.25)
                if item is None or item is LatestSlot.CLOSED:
                    continue
                frame, t_in = item
                self._changes.apply(processor)
                image = frame_to_bgr(frame)
                # The frame's own time (pts) drives the landmark smoothing: camera timing, not our scheduling jitter.
                t_frame = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
                swapped = processor.process(image, t_frame)
                observer = self.observer
                if observer is not None:
                    self._observe(observer, image, processor.last_faces)
                out = av.VideoFrame.from_ndarray(swapped, format="bgr24")
                out.pts, out.time_base = frame.pts, frame.time_base
                self._stats.timings = dict(processor.last_timings)
                try:
                    self._loop.call_soon_threadsafe(self._deliver, out, t_in)
                except RuntimeError:  # the event loop is closed: the server is shutting down
                    break
        except BaseException as exc:  # noqa: BLE001 - reported to the peer and the log, then the track ends
            self.error = exc
            self._stats.errors += 1
            log.exception("swap worker %s failed", self._thread.name)
            try:
                self._loop.call_soon_threadsafe(self._deliver, None, 0.0)
            except RuntimeError:
                pass
        finally:
            if processor is not None:
                processor.close()

    def _observe(self, observer: Callable[[Any, list], None], image: Image, faces: list) -> None:
        """Show the frame to ``observer``; one that raises fails its feature, not the stream: it is dropped and
        the failure left in :attr:`observer_error` for the peer to report."""
        try:
            observer(image, faces)
        except Exception as exc:
            log.exception("swap worker %s: frame observer failed; dropped, the stream goes on", self._thread.name)
            if self.observer is observer:
                self.observer = None
            self.observer_error = (observer, exc)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and join the thread (idempotent). The processor is closed by the thread on its way out."""
        self.inbox.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive() and timeout > 0:
                log.warning("swap worker %s did not stop within %.1f s", self._thread.name, timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class SwappedVideoTrack(MediaStreamTrack):
    """The video track the server sends back: the peer's camera, face-swapped by its worker thread."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, make_processor: Callable[[], Processor], name: str) -> None:
        super().__init__()
        self.source = source
        self.stats = VideoStats()
        self.probe: Callable[[av.VideoFrame, float], None] | None = None  # sees every sent frame (tests, bench)
        self._outbox = AsyncLatest()
        loop = asyncio.get_running_loop()
        self.worker = VideoWorker(make_processor, loop, self._deliver, self.stats, name)
        self._reader = asyncio.ensure_future(self._read())

    @property
    def dropped(self) -> int:
        return self.worker.inbox.dropped + self._outbox.dropped

    def _deliver(self, frame: av.VideoFrame | None, t_in: float) -> None:
        if frame is None:  # the worker died: end the track so the peer is closed
            self._outbox.end()
            return
        self._outbox.put((frame, t_in))

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.source.recv()
                t_in = time.perf_counter()
                pts_s = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
                self.stats.record_in(t_in, pts_s)
                self.worker.inbox.put((frame, t_in))
        except (MediaStreamError, asyncio.CancelledError):
            pass
        finally:
            self.worker.inbox.close()
            self._outbox.end()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError("track stopped")
        frame, t_in = await self._outbox.get()
        t_out = time.perf_counter()
        self.stats.record_out(t_in, t_out)
        if self.probe is not None:
            self.probe(frame, t_out)
        return frame

    def latency_s(self) -> float | None:
        return self.stats.latency_s(time.perf_counter())

    def stop(self) -> None:
        """End the track, stop the reader and tell the worker thread to stop (idempotent, does not block the loop:
        the worker finishes its current frame and closes the processor; ``worker.alive`` says when it is done)."""
        super().stop()
        self._reader.cancel()
        self._outbox.end()
        self.worker.stop(timeout=0)


class DelayedAudioTrack(MediaStreamTrack):
    """The peer's microphone, sent back ``delay()`` seconds after it arrived (the measured video latency)."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, delay: Callable[[], float | None]) -> None:
        super().__init__()
        self.source = source
        self._delay = delay
        self._buffer: collections.deque[tuple[av.AudioFrame, float]] = collections.deque()
        self._arrived = asyncio.Event()
        self._ended = False
        self.frames_out = 0
        self.dropped = 0
        self.frame_duration_s = 0.02  # updated from the frames themselves (Opus in WebRTC: 20 ms)
        self.probe: Callable[[av.AudioFrame, float], None] | None = None  # sees every sent frame (tests, bench)
        # (t_out, applied delay, target delay) of the frames sent
        self.applied: collections.deque[tuple[float, float, float]] = collections.deque(maxlen=500)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.source.recv()
                # aiortc types recv() as Frame | Packet; an audio track's frames are AudioFrames.
                if not isinstance(frame, av.AudioFrame):
                    raise TypeError(f"audio track {self.source.id} delivered {type(frame).__name__}, not av.AudioFrame")
                if frame.sample_rate:
                    self.frame_duration_s = frame.samples / frame.sample_rate
                self._buffer.append((frame, time.perf_counter()))
                if len(self._buffer) > AUDIO_BUFFER_FRAMES:
                    self._buffer.popleft()
                    self.dropped += 1
                self._arrived.set()
        except (MediaStreamError, asyncio.CancelledError):
            pass
        finally:
            self._ended = True
            self._arrived.set()

    def target_delay(self) -> float:
        delay = self._delay()
        return 0.0 if delay is None else min(max(delay, 0.0), MAX_AUDIO_DELAY_S)

    async def recv(self) -> av.AudioFrame:
        while not self._buffer:
            if self._ended or self.readyState != "live":
                raise MediaStreamError("audio track ended")
            self._arrived.clear()
            await self._arrived.wait()
        target = self.target_delay()
        # When the sender falls behind (CPU starved), sending every late frame would make audio latency grow
        # without bound; skip what is long overdue, like video's newest-frame-wins, but with a tolerance.
        while len(self._buffer) > 1 and time.perf_counter() - (self._buffer[0][1] + target) > AUDIO_MAX_LATE_S:
            self._buffer.popleft()
            self.dropped += 1
        frame, t_in = self._buffer[0]
        wait = t_in + target - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        if not self._buffer or self._buffer[0][0] is not frame:  # dropped as too old while we slept
            return await self.recv()
        self._buffer.popleft()
        now = time.perf_counter()
        self.frames_out += 1
        self.applied.append((now, now - t_in, target))
        if self.probe is not None:
            self.probe(frame, now)
        return frame

    def applied_delay_s(self, window: float = LATENCY_WINDOW_S) -> float | None:
        now = time.perf_counter()
        recent = [applied for t, applied, _ in self.applied if t >= now - window]
        return statistics.median(recent) if recent else None

    def stop(self) -> None:
        super().stop()
        self._reader.cancel()
        self._ended = True
        self._arrived.set()
        self._buffer.clear()
