"""One browser's session on the server: its peer connection and tracks, the "control" data channel, the overload
policy (ask the browser for fewer frames), the lip-sync delay of its microphone, and teardown.

The "control" data channel (JSON text, one object per message, at most 4 KiB):
  page -> server  {"type": "options", "direction"?, and any of realtime.controls.SWITCHES: "mouth"?, "eyes"?,
                  "sharpen"?, "blend"?, "occlusion"?, "colour"?, "faces"?, "morph"?, "temporal"?, "hud"?, "label"?}
                  {"type": "ping", "t"}   {"type": "bye"}
                  {"type": "enroll", "action": "start" | "train" | "cancel"} ("use my face", realtime.webrtc.enrol)
  server -> page  {"type": "options", "options": {...}} (what was applied)   {"type": "stats", ...} (every second)
                  {"type": "rate", "max_fps": N | null} (overloaded: send fewer frames)   {"type": "error", "message"}
                  {"type": "pong", "t"}   {"type": "model", "direction", "model"} (hot swap: a new model is in use)
                  {"type": "enroll", "state": capturing|training|ready|error|cancelled, ...} (every second while
                  enrolling: coverage, prompt, faces, rejected; step, steps; model; message)

"Use my face" on a peer: a new enrolment replaces a running one; when one is ready its model replaces the previous
one's (a2b only, this peer only). Every enrolment this peer made is closed (its subprocess stopped, its folder
deleted unless --keep-enrolments) when it is cancelled, fails, is replaced, or the peer leaves; always in a thread,
since `swapcam enroll` may take seconds to stop and the event loop carries every peer's media.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from realtime.controls import SWITCHES
from realtime.errors import one_line
from realtime.pipeline import PipelineOptions

if TYPE_CHECKING:  # imported at run time only when a track arrives (tracks.py needs aiortc and PyAV)
    from realtime.webrtc.enrol import WebEnrolment
    from realtime.webrtc.tracks import DelayedAudioTrack, SwappedVideoTrack

log = logging.getLogger("swapcam.webrtc")

CONTROL_CHANNEL = "control"
MAX_MESSAGE_CHARS = 4096
AIORTC_AUDIO_PREFETCH = 4  # aiortc's audio JitterBuffer(prefetch=4) in RTCRtpReceiver (1.x)
OWN_MODEL_THREADS = 1  # onnxruntime intra-op threads of a peer's own ("use my face") model


# --------------------------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class PeerOptions:
    """What a viewer may change at run time: the swap direction and the live switches of realtime.controls.
    ``label`` draws the visible "synthetic video" label (on by default on the page)."""

    direction: str = "a2b"
    mouth: str = PipelineOptions.mouth
    eyes: str = PipelineOptions.eyes
    sharpen: str = PipelineOptions.sharpen
    blend: str = PipelineOptions.blend
    occlusion: str = PipelineOptions.occlusion
    colour: str = PipelineOptions.colour
    faces: str = PipelineOptions.faces
    morph: float = PipelineOptions.morph
    expression: float = PipelineOptions.expression
    temporal: float = PipelineOptions.temporal
    hud: bool = False
    label: bool = True

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def switches(self) -> dict[str, Any]:
        """The realtime.controls switches (everything but the direction)."""
        return {name: getattr(self, name) for name in SWITCHES}


def parse_options(raw: object, base: PeerOptions, directions: tuple[str, ...]) -> PeerOptions:
    """Validate a JSON options object against ``base``; raise ValueError naming the bad key or value."""
    if raw is None:
        return base
    if not isinstance(raw, dict):
        raise ValueError(f"options must be a JSON object, got {type(raw).__name__}")
    known = [f.name for f in dataclasses.fields(PeerOptions)]
    unknown = set(raw) - set(known) - {"type"}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}; known: {', '.join(known)}")
    changes: dict[str, Any] = {}
    if "direction" in raw:
        if raw["direction"] not in directions:
            raise ValueError(f"direction={raw['direction']!r}; this server has {list(directions)}")
        changes["direction"] = raw["direction"]
    for name in SWITCHES:
        if name in raw:
            changes[name] = SWITCHES[name].check(raw[name])
    return dataclasses.replace(base, **changes)


# ------------------------------------------------------------------------------------------------------ overload
BACKLOG_HIGH_S = 0.15  # incoming frames this much later than usual: frames are queueing (CPU overload)
BACKLOG_LOW_S = 0.04
# Below ~8 fps aiortc's receive hold (one frame interval per hop) costs more latency than it saves.
MIN_FPS, MAX_FPS = 8, 30


def next_max_fps(backlog_s: float | None, fps_in: float, current: int | None, since_change_s: float) -> int | None:
    """The frame rate to ask the browser for (None: no limit). Newest-frame-wins inside the server cannot help
    when frames queue before they reach it (aiortc decodes every frame, in order), so the only lever is the
    sender: ask for 25 % fewer frames while a backlog builds (half when it is over 0.5 s: draining it takes
    spare capacity), give 5 fps back after 5 s without one."""
    if backlog_s is None:
        return current
    if backlog_s > BACKLOG_HIGH_S and since_change_s > 2.0:
        base = min(fps_in, current) if current else fps_in
        factor = 0.5 if backlog_s > 0.5 else 0.75
        lowered = max(MIN_FPS, int(base * factor)) if base > 0 else MIN_FPS
        return lowered if current is None or lowered < current else current
    if backlog_s < BACKLOG_LOW_S and current is not None and since_change_s > 5.0:
        raised = current + 5
        return None if raised >= MAX_FPS else raised
    return current


# ------------------------------------------------------------------------------------------------ processor factory
class ProcessorFactory(Protocol):
    """Builds one processor per peer (in the peer's worker thread) and applies option changes to it; ``swapper``
    (a peer's own enrolled model) replaces the factory's model for that processor."""

    directions: tuple[str, ...]

    def create(self, options: PeerOptions) -> Any: ...

    def configure(self, processor: Any, options: PeerOptions, swapper: Any = None) -> None: ...


class BadOffer(ValueError):
    """The client's SDP offer cannot be used (the client's fault: the server answers 400 with this message)."""


# ------------------------------------------------------------------------------------------------------ one peer
class PeerSession:
    """Everything one browser holds on the server: peer connection, tracks, worker thread, data channel, tasks.

    ``peers`` is the server's table of live sessions: this one counts it in its stats and leaves it when closed.
    ``close()`` frees everything (idempotent)."""

    def __init__(
        self,
        factory: ProcessorFactory,
        options: PeerOptions,
        peers: dict[str, PeerSession],
        *,
        stun_servers: tuple[str, ...] = (),
        connect_timeout_s: float = 20.0,
        stats_interval_s: float = 1.0,
        enrolment: Callable[[str], WebEnrolment] | None = None,
    ) -> None:
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

        self.factory = factory
        self.peers = peers
        self.id = uuid.uuid4().hex[:12]
        self.options = options
        self.connect_timeout_s = connect_timeout_s
        self.stats_interval_s = stats_interval_s
        self._new_enrolment = enrolment  # peer id -> a WebEnrolment; None: this server does not enrol
        self.enrolment: WebEnrolment | None = None  # the one capturing or training
        self.own_enrolment: WebEnrolment | None = None  # the one whose model this peer swaps with (a2b)
        self.own_swapper: Any = None  # that model, loaded
        self._enrolments: list[WebEnrolment] = []  # every one not closed yet: closed when the peer leaves
        # iceServers=[] explicitly: aiortc's default would contact a public STUN server on every offer.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(url) for url in stun_servers]))
        self.video: SwappedVideoTrack | None = None
        self.audio: DelayedAudioTrack | None = None
        self.channel = None
        self.close_reason = ""
        self.max_fps: int | None = None  # the frame rate the browser was asked to keep to (overload), None: any
        self._max_fps_changed = time.perf_counter()
        self._closing: asyncio.Future | None = None
        self._close_task: asyncio.Task | None = None  # a strong reference: the loop keeps only weak ones
        self._tasks: set[asyncio.Task] = set()
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_state)

    async def negotiate(self, offer) -> Any:
        """Take the client's offer (an RTCSessionDescription) and return the answer; BadOffer if it is unusable."""
        try:
            await self.pc.setRemoteDescription(offer)
        except Exception as exc:  # aiortc's SDP parser raises ValueError, KeyError, IndexError... on garbage
            raise BadOffer(f"could not use the SDP offer: {type(exc).__name__}: {exc}") from None
        if self.video is None:
            raise BadOffer("the SDP offer has no video track to swap (send the camera with addTrack, sendrecv)")
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription

    # -- aiortc events
    def _on_track(self, track) -> None:
        from realtime.webrtc.tracks import DelayedAudioTrack, SwappedVideoTrack

        if track.kind == "video" and self.video is None:
            factory, options = self.factory, self.options
            self.video = SwappedVideoTrack(track, lambda: factory.create(options), name=f"swap-{self.id}")
            self.pc.addTrack(self.video)
        elif track.kind == "audio" and self.audio is None:
            self.audio = DelayedAudioTrack(track, self.audio_delay_s)
            self.pc.addTrack(self.audio)

    def audio_delay_s(self) -> float | None:
        """How long to hold the microphone so it leaves with the video frame captured at the same moment.

        The measured video pipeline latency (frame received -> swapped frame handed to the encoder), corrected for
        what aiortc's receivers already hold before either track reaches us: a video frame is released when the
        first packet of the NEXT frame arrives (one frame interval), audio after AIORTC_AUDIO_PREFETCH further
        packets. Without the correction audio would leave ~50 ms late at 30 fps (outside +-45 ms)."""
        if self.video is None:
            return None
        latency = self.video.latency_s()
        if latency is None:
            return None
        video_hold = self.video.stats.frame_interval_s() or 0.0
        audio_hold = AIORTC_AUDIO_PREFETCH * self.audio.frame_duration_s if self.audio is not None else 0.0
        return latency + video_hold - audio_hold

    def _on_datachannel(self, channel) -> None:
        if channel.label != CONTROL_CHANNEL or self.channel is not None:
            return
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self.close_soon("data channel closed"))

    def _on_state(self) -> None:
        state = self.pc.connectionState
        log.debug("peer %s: connection %s", self.id, state)
        if state in ("failed", "closed"):
            self.close_soon(f"connection {state}")

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        """Start the connect watchdog and the stats pushes (after the answer went out)."""
        self._spawn(self._watch_connect())
        self._spawn(self._send_stats())

    async def _watch_connect(self) -> None:
        await asyncio.sleep(self.connect_timeout_s)
        if self.pc.connectionState != "connected":
            self.close_soon(f"ICE did not connect within {self.connect_timeout_s:g} s")

    # -- control channel
    def send(self, message: dict) -> None:
        """One JSON message to the page over the control channel (dropped when the channel is not open)."""
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(json.dumps(message))

    def _on_message(self, message) -> None:
        try:
            if not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS:
                raise ValueError("control messages are JSON text under 4 KiB")
            data = json.loads(message)
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                raise ValueError('control messages are JSON objects with a "type"')
            kind = data["type"]
            if kind == "options":
                self.set_options(parse_options(data, self.options, self.factory.directions))
                self.send({"type": "options", "options": self.options.to_json()})
            elif kind == "ping":
                self.send({"type": "pong", "t": data.get("t")})
            elif kind == "bye":
                self.close_soon("peer said bye")
            elif kind == "enroll":
                self._on_enroll(data.get("action"))
            else:
                raise ValueError(f"unknown message type {kind!r}; expected options, ping, enroll or bye")
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            self.send({"type": "error", "message": str(exc)})

    def uses_own_model(self, direction: str) -> bool:
        """Whether this peer swaps ``direction`` with its own enrolled model (which replaces a2b for it)."""
        return self.own_swapper is not None and direction == "a2b"

    def set_options(self, options: PeerOptions) -> None:
        """Apply ``options`` between two frames: one reconfigure, with the model this peer uses for the direction
        (a processor keeps its per-face state, re-centring means included, when the model stays the same).

        A change the worker refuses (it raised: a sharpener whose model does not load) leaves the processor as it
        was; the page is told in one line and gets the options still in force back, and the call goes on."""
        previous, self.options = self.options, options
        if self.video is not None:
            factory, loop = self.factory, asyncio.get_running_loop()
            swapper = self.own_swapper if self.uses_own_model(options.direction) else None

            def refused(exc: Exception) -> None:  # the worker thread
                loop.call_soon_threadsafe(self._refused, options, previous, exc)

            self.video.worker.reconfigure(lambda processor: factory.configure(processor, options, swapper), refused)

    def _refused(self, options: PeerOptions, previous: PeerOptions, exc: Exception) -> None:
        changed = {k: v for k, v in options.to_json().items() if previous.to_json().get(k) != v}
        what = ", ".join(f"{k}={v}" for k, v in changed.items()) or "the change"
        line = f"{what} not applied, going on as before: {one_line(exc)}"
        log.warning("peer %s: %s", self.id, line)
        if self.options is options:  # nothing newer was asked for since: back to what the processor still runs
            self.options = previous
        self.send({"type": "error", "message": line})
        self.send({"type": "options", "options": self.options.to_json()})

    # -- "use my face"
    def _on_enroll(self, action: object) -> None:
        if action == "start":
            if self._new_enrolment is None:
                raise ValueError("this server does not enrol (swapcam serve --no-enroll)")
            if self.video is None:
                raise ValueError("no camera track yet")
            if self.enrolment is not None:
                self._discard(self.enrolment)
            self.enrolment = self._new_enrolment(self.id)
            self._enrolments.append(self.enrolment)
            self.video.worker.observer = self.enrolment.observe
        elif action in ("train", "cancel"):
            if self.enrolment is None:
                raise ValueError(f"enroll {action}: no enrolment is running; start one first")
            if action == "train":
                self.enrolment.train()
            else:
                self._discard(self.enrolment)
        else:
            raise ValueError(f"enroll action={action!r}; expected start, train or cancel")
        self.send(self.enrolment.poll())

    def _discard(self, enrolment: WebEnrolment) -> None:
        """Stop ``enrolment`` now and close it (wait for its subprocess, delete its data) in a thread."""
        enrolment.cancel()
        if self.video is not None and self.video.worker.observer == enrolment.observe:
            self.video.worker.observer = None
        self._spawn(self._close_enrolment(enrolment))

    async def _close_enrolment(self, enrolment: WebEnrolment) -> None:
        await asyncio.to_thread(enrolment.close)
        if enrolment in self._enrolments:
            self._enrolments.remove(enrolment)

    def _capture_failure(self, enrolment: WebEnrolment) -> None:
        """An enrolment whose capture (the worker's frame observer) raised fails; the call goes on."""
        worker = self.video.worker if self.video is not None else None
        failure = worker.observer_error if worker is not None else None
        if worker is None or failure is None:
            return
        worker.observer_error = None
        observer, exc = failure
        if observer == enrolment.observe:
            enrolment.fail(f"the capture failed: {one_line(exc)}")

    async def _enrolment_tick(self) -> None:
        """Every stats tick while enrolling: progress to the page; when the model is ready, switch to it."""
        enrolment = self.enrolment
        if enrolment is None:
            return
        self._capture_failure(enrolment)
        message = enrolment.poll()
        if enrolment.state != "capturing" and self.video is not None:
            if self.video.worker.observer == enrolment.observe:
                self.video.worker.observer = None
        if enrolment.state == "ready" and enrolment.model is not None:
            try:
                swapper = await asyncio.to_thread(open_own_model, enrolment.model)
            except Exception as exc:  # a model that does not load: say so, keep the call on the model it has
                enrolment.fail(f"{enrolment.model.name}: {one_line(exc)}")
                message = enrolment.poll()
            else:
                previous, self.own_enrolment, self.own_swapper = self.own_enrolment, enrolment, swapper
                self.set_options(self.options)
                message["switched"] = True
                if previous is not None:  # its model is no longer used
                    self._discard(previous)
        self.send(message)
        if enrolment.state in ("ready", "error", "cancelled") and self.enrolment is enrolment:
            self.enrolment = None
            if enrolment.state != "ready":
                self._discard(enrolment)

    def stats(self) -> dict[str, Any]:
        now = time.perf_counter()
        out: dict[str, Any] = {
            "type": "stats",
            "peer": self.id,
            "state": self.pc.connectionState,
            "options": self.options.to_json(),
            "peers": len(self.peers),
        }
        if self.video is not None:
            vs = self.video.stats
            latency = self.video.latency_s()
            backlog = vs.backlog_s(now)
            out.update(
                fps=round(vs.fps(now), 2),
                frames_in=vs.frames_in,
                frames_out=vs.frames_out,
                backlog_ms=None if backlog is None else round(backlog * 1000, 1),
                max_fps=self.max_fps,
                dropped=self.video.dropped,
                errors=vs.errors,
                latency_ms=None if latency is None else round(latency * 1000, 1),
                timings={k: round(float(v), 2) for k, v in vs.timings.items()},
            )
        if self.audio is not None:
            applied = self.audio.applied_delay_s()
            out.update(
                audio_frames=self.audio.frames_out,
                audio_dropped=self.audio.dropped,
                audio_delay_ms=None if applied is None else round(applied * 1000, 1),
                audio_target_ms=round(self.audio.target_delay() * 1000, 1),
            )
        return out

    def _adapt_rate(self, video: SwappedVideoTrack) -> None:
        now = time.perf_counter()
        stats = video.stats
        wanted = next_max_fps(stats.backlog_s(now), stats.in_fps(), self.max_fps, now - self._max_fps_changed)
        if wanted != self.max_fps:
            log.info(
                "peer %s: asking the browser for %s fps (incoming backlog %.0f ms)",
                self.id,
                wanted or "any",
                1000 * (stats.backlog_s(now) or 0),
            )
            self.max_fps, self._max_fps_changed = wanted, now
            self.send({"type": "rate", "max_fps": wanted})

    async def _send_stats(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval_s)
            if self.video is not None:
                self._adapt_rate(self.video)
            self.send(self.stats())
            await self._enrolment_tick()
            if self.video is not None and self.video.worker.error is not None:
                self.send({"type": "error", "message": f"swap failed: {self.video.worker.error}"})
                self.close_soon("swap worker failed")
                return

    # -- teardown
    def close_soon(self, reason: str) -> None:
        """Close from an event handler (which cannot await); the first reason given is the one kept."""
        if self._closing is None and not self.close_reason:
            self.close_reason = reason
            self._close_task = asyncio.ensure_future(self.close(reason))

    async def close(self, reason: str = "closed") -> None:
        """Free everything this peer holds; safe to call many times and from any event handler."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = asyncio.get_running_loop().create_future()
        self.close_reason = self.close_reason or reason
        try:
            log.info("peer %s: closing (%s)", self.id, self.close_reason)
            current = asyncio.current_task()
            for task in list(self._tasks):
                if task is not current:
                    task.cancel()
            for enrolment in list(self._enrolments):  # stop its subprocess, delete its data (unless --keep-enrolments)
                await asyncio.to_thread(enrolment.close)
            for track in (self.video, self.audio):
                if track is not None:
                    track.stop()
            await self.pc.close()
            if self.video is not None:
                # Join the worker without blocking the loop (and without borrowing an executor thread).
                deadline = time.perf_counter() + 5.0
                while self.video.worker.alive and time.perf_counter() < deadline:
                    await asyncio.sleep(0.01)
                if self.video.worker.alive:
                    log.warning("peer %s: worker thread still running after 5 s", self.id)
            pending = [t for t in self._tasks if t is not current]
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        finally:
            self.peers.pop(self.id, None)
            self.channel = None
            self._closing.set_result(None)


# ------------------------------------------------------------------------------------------------- "use my face"
def open_own_model(path) -> Any:
    """Load a peer's enrolled model and run it once, off the event loop and off the frame path: the first inference
    allocates, and would otherwise stall the first frame after the switch. One onnxruntime thread on the CPU: the
    server's own models and every peer's frames share the cores (a user's model is small)."""
    from realtime.builder import open_swapper, warm_up

    return warm_up(open_swapper(path, "cpu", OWN_MODEL_THREADS))
