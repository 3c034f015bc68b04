"""WebRTC server and demo page: a browser sends its camera and microphone, gets the face-swapped video back with the
microphone delayed by the measured video latency (lip sync). The swap models run here, so the browser can be on any
machine and the models on a GPU box. Binds 127.0.0.1 by default; see --cert/--key to serve https on a network.

Endpoints: GET / (demo page), GET /static/NAME (the page's files, from the package only), POST /offer (JSON
{"sdp", "type": "offer", "options"?} -> answer), GET /health. Per-peer options and live stats travel over the
peer's "control" data channel.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import dataclasses
import ipaddress
import json
import logging
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

from realtime.errors import SwapcamError

log = logging.getLogger("swapcam.webrtc")

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml", ".ico": "image/x-icon"}
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
COLOURS = ("rct", "hist", "none")
CONTROL_CHANNEL = "control"
AIORTC_AUDIO_PREFETCH = 4  # aiortc's audio JitterBuffer(prefetch=4) in RTCRtpReceiver (1.x)


# --------------------------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class PeerOptions:
    """What a viewer may change at run time. ``label`` draws the visible "synthetic video" label (on by default)."""

    direction: str = "a2b"
    colour: str = "rct"
    label: bool = True

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_options(raw: object, base: PeerOptions, directions: tuple[str, ...]) -> PeerOptions:
    """Validate a JSON options object against ``base``; raise ValueError naming the bad key or value."""
    if raw is None:
        return base
    if not isinstance(raw, dict):
        raise ValueError(f"options must be a JSON object, got {type(raw).__name__}")
    unknown = set(raw) - {f.name for f in dataclasses.fields(PeerOptions)} - {"type"}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}; known: direction, colour, label")
    changes: dict[str, Any] = {}
    if "direction" in raw:
        if raw["direction"] not in directions:
            raise ValueError(f"direction={raw['direction']!r}; this server has {list(directions)}")
        changes["direction"] = raw["direction"]
    if "colour" in raw:
        if raw["colour"] not in COLOURS:
            raise ValueError(f"colour={raw['colour']!r}; choose from {list(COLOURS)}")
        changes["colour"] = raw["colour"]
    if "label" in raw:
        if not isinstance(raw["label"], bool):
            raise ValueError(f"label={raw['label']!r}; expected true or false")
        changes["label"] = raw["label"]
    return dataclasses.replace(base, **changes)


# ------------------------------------------------------------------------------------------------------ overload
BACKLOG_HIGH_S = 0.15  # incoming frames this much later than usual: frames are queueing (CPU overload)
BACKLOG_LOW_S = 0.04
MIN_FPS, MAX_FPS = 8, 30  # below ~8 fps aiortc's receive hold (one frame interval per hop) costs more latency than it saves


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
    """Builds one processor per peer (in the peer's worker thread) and applies option changes to it."""

    directions: tuple[str, ...]

    def create(self, options: PeerOptions) -> Any: ...

    def configure(self, processor: Any, options: PeerOptions) -> None: ...


class PipelineFactory:
    """The real thing: ONE shared onnxruntime session per swap direction, one FaceSwapProcessor per peer."""

    def __init__(self, models: dict[str, Path], providers: str = "auto", threads: int | None = None) -> None:
        from realtime.swapper import Swapper

        if not models:
            raise SwapcamError("no swap model given")
        self.swappers = {direction: Swapper(path, providers=providers, threads=threads) for direction, path in models.items()}
        self.directions = tuple(self.swappers)
        self._create_lock = threading.Lock()

    def direction_names(self) -> dict[str, str]:
        """'a2b' -> 'astronaut -> grace_hopper', from each model's metadata (what the page shows)."""
        names = {}
        for direction, swapper in self.swappers.items():
            source, target = swapper.info.identities
            names[direction] = f"{source} → {target}"
        return names

    @classmethod
    def from_args(cls, model: str | None, model_b2a: str | None, providers: str, threads: int | None) -> "PipelineFactory":
        from models.contract import demo_model_path

        models: dict[str, Path] = {}
        if model is None:
            models["a2b"] = demo_model_path("a2b")
            models["b2a"] = Path(model_b2a) if model_b2a else demo_model_path("b2a")
        else:
            models["a2b"] = Path(model)
            if model_b2a:
                models["b2a"] = Path(model_b2a)
        for direction, path in models.items():
            if not path.is_file():
                raise SwapcamError(f"model file {path} ({direction}) does not exist")
        return cls(models, providers, threads)

    def _pipeline_options(self, options: PeerOptions):
        from realtime.pipeline import PipelineOptions

        return PipelineOptions(colour=options.colour, label=options.label)

    def create(self, options: PeerOptions):
        from realtime.pipeline import FaceSwapProcessor

        # One at a time: FaceSwapProcessor starts its mediapipe tracker with fds 1/2 redirected to a temp file
        # (realtime.native.captured_native_output). Two peers' workers doing that at once restore each other's
        # temp file as stdout/stderr and the server goes silent for good.
        with self._create_lock:
            return FaceSwapProcessor(self.swappers[options.direction], options=self._pipeline_options(options))

    def configure(self, processor, options: PeerOptions) -> None:
        """Apply new options to a live processor, keeping its landmark tracker (no re-detection, no new graph).
        Runs in the peer's worker thread, between two frames."""
        processor.reconfigure(self.swappers[options.direction], self._pipeline_options(options))


# --------------------------------------------------------------------------------------------- ICE address filter
# aiortc offers no way to choose the interfaces ICE gathers on, and aioice never offers 127.0.0.1. We wrap aioice's
# one lookup and consult a context variable: unset (the default) keeps aioice's behaviour; set, ICE gathers on
# exactly those addresses (e.g. 127.0.0.1 for tests and for a machine-local service). A ContextVar, not a global,
# so each server or client picks its own addresses in its own tasks.
_ICE_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("swapcam_ice_addresses", default=None)


def _install_ice_filter() -> None:
    import aioice.ice

    if getattr(aioice.ice.get_host_addresses, "_swapcam_filter", False):
        return
    original = aioice.ice.get_host_addresses

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = _ICE_ADDRESSES.get()
        if chosen is None:
            return original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    get_host_addresses._swapcam_filter = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = get_host_addresses


@contextlib.contextmanager
def ice_addresses(addresses: tuple[str, ...] | None) -> Iterator[None]:
    """Within this block (and tasks started from it), ICE gathers host candidates on ``addresses`` only."""
    _install_ice_filter()
    token = _ICE_ADDRESSES.set(tuple(addresses) if addresses else None)
    try:
        yield
    finally:
        _ICE_ADDRESSES.reset(token)


# --------------------------------------------------------------------------------------------------------- config
@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_peers: int = 4
    max_body_bytes: int = 64 * 1024  # a browser offer is 3-10 KB; anything near this is not an SDP offer
    connect_timeout_s: float = 20.0  # a peer whose ICE has not connected by then is dropped
    stats_interval_s: float = 1.0
    ice_addresses: tuple[str, ...] | None = None  # None: every interface (aiortc's default)
    stun_servers: tuple[str, ...] = ()  # none by default: no traffic to third parties unless asked
    default_options: PeerOptions = field(default_factory=PeerOptions)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------------------ one peer
# The "control" data channel (JSON text, one object per message, at most 4 KiB):
#   page -> server  {"type": "options", "direction"?, "colour"?, "label"?}   {"type": "ping", "t"}   {"type": "bye"}
#   server -> page  {"type": "options", "options": {...}} (what was applied)   {"type": "stats", ...} (every second)
#                   {"type": "rate", "max_fps": N | null} (overloaded: send fewer frames)   {"type": "error", "message"}
#                   {"type": "pong", "t"}
class PeerSession:
    """Everything one browser holds on the server: peer connection, tracks, worker thread, data channel, tasks.
    ``close()`` frees all of it (idempotent) and removes the peer from the server."""

    def __init__(self, server: "SwapServer", options: PeerOptions) -> None:
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

        self.server = server
        self.id = uuid.uuid4().hex[:12]
        self.options = options
        self.created = time.perf_counter()
        ice_servers = [RTCIceServer(url) for url in server.config.stun_servers]
        # iceServers=[] explicitly: aiortc's default would contact a public STUN server on every offer.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers))
        self.video = None  # SwappedVideoTrack
        self.audio = None  # DelayedAudioTrack
        self.channel = None
        self.close_reason = ""
        self.max_fps: int | None = None  # the frame rate the browser was asked to keep to (overload), None: any
        self._max_fps_changed = time.perf_counter()
        self._closing: asyncio.Future | None = None
        self._tasks: set[asyncio.Task] = set()
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_state)

    # -- aiortc events
    def _on_track(self, track) -> None:
        from realtime.webrtc.tracks import DelayedAudioTrack, SwappedVideoTrack

        if track.kind == "video" and self.video is None:
            factory, options = self.server.factory, self.options
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

    def spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        self.spawn(self._watch_connect())
        self.spawn(self._send_stats())

    async def _watch_connect(self) -> None:
        await asyncio.sleep(self.server.config.connect_timeout_s)
        if self.pc.connectionState != "connected":
            self.close_soon(f"ICE did not connect within {self.server.config.connect_timeout_s:g} s")

    # -- control channel
    def _send(self, message: dict) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(json.dumps(message))

    def _on_message(self, message) -> None:
        try:
            if not isinstance(message, str) or len(message) > 4096:
                raise ValueError("control messages are JSON text under 4 KiB")
            data = json.loads(message)
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                raise ValueError('control messages are JSON objects with a "type"')
            kind = data["type"]
            if kind == "options":
                self.set_options(parse_options(data, self.options, self.server.factory.directions))
                self._send({"type": "options", "options": self.options.to_json()})
            elif kind == "ping":
                self._send({"type": "pong", "t": data.get("t")})
            elif kind == "bye":
                self.close_soon("peer said bye")
            else:
                raise ValueError(f"unknown message type {kind!r}; expected options, ping or bye")
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            self._send({"type": "error", "message": str(exc)})

    def set_options(self, options: PeerOptions) -> None:
        self.options = options
        if self.video is not None:
            factory = self.server.factory
            self.video.worker.reconfigure(lambda processor: factory.configure(processor, options))

    def stats(self) -> dict[str, Any]:
        now = time.perf_counter()
        out: dict[str, Any] = {"type": "stats", "peer": self.id, "state": self.pc.connectionState,
                               "options": self.options.to_json(), "peers": len(self.server.peers)}
        if self.video is not None:
            vs = self.video.stats
            latency = self.video.latency_s()
            backlog = vs.backlog_s(now)
            out.update(fps=round(vs.fps(now), 2), frames_in=vs.frames_in, frames_out=vs.frames_out,
                       backlog_ms=None if backlog is None else round(backlog * 1000, 1), max_fps=self.max_fps,
                       dropped=self.video.dropped, errors=vs.errors,
                       latency_ms=None if latency is None else round(latency * 1000, 1),
                       timings={k: round(float(v), 2) for k, v in vs.timings.items()})
        if self.audio is not None:
            applied = self.audio.applied_delay_s()
            out.update(audio_frames=self.audio.frames_out, audio_dropped=self.audio.dropped,
                       audio_delay_ms=None if applied is None else round(applied * 1000, 1),
                       audio_target_ms=round(self.audio.target_delay() * 1000, 1))
        return out

    def _adapt_rate(self) -> None:
        now = time.perf_counter()
        stats = self.video.stats
        wanted = next_max_fps(stats.backlog_s(now), stats.in_fps(), self.max_fps, now - self._max_fps_changed)
        if wanted != self.max_fps:
            log.info("peer %s: asking the browser for %s fps (incoming backlog %.0f ms)", self.id,
                     wanted or "any", 1000 * (stats.backlog_s(now) or 0))
            self.max_fps, self._max_fps_changed = wanted, now
            self._send({"type": "rate", "max_fps": wanted})

    async def _send_stats(self) -> None:
        while True:
            await asyncio.sleep(self.server.config.stats_interval_s)
            if self.video is not None:
                self._adapt_rate()
            self._send(self.stats())
            if self.video is not None and self.video.worker.error is not None:
                self._send({"type": "error", "message": f"swap failed: {self.video.worker.error}"})
                self.close_soon("swap worker failed")
                return

    # -- teardown
    def close_soon(self, reason: str) -> None:
        if self._closing is None and not self.close_reason:
            self.close_reason = reason
            task = asyncio.ensure_future(self.close(reason))
            self.server.closing.add(task)  # a strong reference until done: the loop only keeps weak ones
            task.add_done_callback(self.server.closing.discard)

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
            self.server.peers.pop(self.id, None)
            self.channel = None
            self._closing.set_result(None)


# ---------------------------------------------------------------------------------------------------- the server
class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SwapServer:
    """The HTTP side (signalling, page, health) and the set of live peers."""

    def __init__(self, factory: ProcessorFactory, config: ServeConfig | None = None) -> None:
        self.factory = factory
        self.config = config or ServeConfig()
        self.peers: dict[str, PeerSession] = {}
        self.closing: set[asyncio.Task] = set()
        self.static = load_static(STATIC_DIR)
        if self.config.default_options.direction not in factory.directions:
            self.config.default_options = dataclasses.replace(self.config.default_options, direction=factory.directions[0])

    def app(self):
        from aiohttp import web

        app = web.Application(client_max_size=self.config.max_body_bytes, middlewares=[web.middleware(_json_errors)])
        app.router.add_get("/", self.handle_index)
        app.router.add_get("/static/{name}", self.handle_static)
        app.router.add_post("/offer", self.handle_offer)
        app.router.add_get("/health", self.handle_health)
        app.on_response_prepare.append(_security_headers)
        app.on_shutdown.append(lambda _app: self.close_all())
        return app

    async def close_all(self) -> None:
        await asyncio.gather(*(peer.close("server shutting down") for peer in list(self.peers.values())))

    # -- handlers
    async def handle_index(self, request):
        return self._static_response("index.html")

    async def handle_static(self, request):
        return self._static_response(request.match_info["name"])

    def _static_response(self, name: str):
        from aiohttp import web

        if name not in self.static:
            raise web.HTTPNotFound(reason=f"no file {name!r}")
        body, content_type = self.static[name]
        return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})

    async def handle_health(self, request):
        from aiohttp import web

        return web.json_response({"status": "ok", "peers": len(self.peers), "max_peers": self.config.max_peers,
                                  "directions": list(self.factory.directions)})

    async def handle_offer(self, request):
        from aiohttp import web

        try:
            offer, options = await self._read_offer(request)
        except HttpError as exc:
            return _error(exc.status, str(exc))
        if len(self.peers) >= self.config.max_peers:
            return _error(503, f"server is full: {len(self.peers)} of {self.config.max_peers} peers connected; try again later")
        peer = PeerSession(self, options)
        self.peers[peer.id] = peer  # reserved before the first await, so concurrent offers cannot overfill
        try:
            with ice_addresses(self.config.ice_addresses):
                answer = await self._negotiate(peer, offer)
        except HttpError as exc:
            await peer.close(f"bad offer: {exc}")
            return _error(exc.status, str(exc))
        except Exception:
            await peer.close("negotiation failed")
            raise
        peer.start()
        log.info("peer %s: connected signalling (%d/%d peers)", peer.id, len(self.peers), self.config.max_peers)
        return web.json_response({"sdp": answer.sdp, "type": answer.type, "peer_id": peer.id,
                                  "options": peer.options.to_json(), "directions": list(self.factory.directions),
                                  "direction_names": self._direction_names(),
                                  "colours": list(COLOURS)})

    def _direction_names(self) -> dict[str, str]:
        names = getattr(self.factory, "direction_names", None)
        return names() if callable(names) else {d: d for d in self.factory.directions}

    async def _read_offer(self, request) -> tuple[Any, PeerOptions]:
        from aiohttp import web
        from aiortc import RTCSessionDescription

        if request.content_type != "application/json":
            raise HttpError(415, f"Content-Type must be application/json, got {request.content_type or 'none'!r}")
        if request.content_length is not None and request.content_length > self.config.max_body_bytes:
            raise HttpError(413, f"body of {request.content_length} bytes is over the {self.config.max_body_bytes}-byte limit")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise HttpError(413, f"body is over the {self.config.max_body_bytes}-byte limit") from None
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"body is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise HttpError(400, f"body must be a JSON object with 'sdp' and 'type', got {type(data).__name__}")
        if data.get("type") != "offer":
            raise HttpError(400, f"'type' must be \"offer\", got {data.get('type')!r}")
        sdp = data.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise HttpError(400, "'sdp' must be an SDP offer string starting with 'v=0'")
        try:
            options = parse_options(data.get("options"), self.config.default_options, self.factory.directions)
        except ValueError as exc:
            raise HttpError(400, f"bad options: {exc}") from None
        return RTCSessionDescription(sdp=sdp, type="offer"), options

    async def _negotiate(self, peer: PeerSession, offer) -> Any:
        try:
            await peer.pc.setRemoteDescription(offer)
        except Exception as exc:  # aiortc's SDP parser raises ValueError, KeyError, IndexError... on garbage
            raise HttpError(400, f"could not use the SDP offer: {type(exc).__name__}: {exc}") from None
        if peer.video is None:
            raise HttpError(400, "the SDP offer has no video track to swap (send the camera with addTrack, sendrecv)")
        await peer.pc.setLocalDescription(await peer.pc.createAnswer())
        return peer.pc.localDescription


def _error(status: int, message: str):
    from aiohttp import web

    return web.json_response({"error": message, "status": status}, status=status)


async def _json_errors(request, handler):
    """aiohttp's own errors (404, 405, 413...) as JSON with a message, like ours."""
    from aiohttp import web

    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason or exc.text or "error")
    except Exception as exc:  # a bug, not the client's fault: log it in full, tell the client in one line
        log.exception("%s %s failed", request.method, request.path)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")


async def _security_headers(request, response) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    if response.content_type == "application/json":
        response.headers.setdefault("Cache-Control", "no-store")


def load_static(folder: Path) -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the package folder: a fixed name -> (bytes, type) table, so no request can
    reach any other file and there is nothing to list."""
    files = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_file() and not path.name.startswith(".") and path.suffix in CONTENT_TYPES:
            files[path.name] = (path.read_bytes(), CONTENT_TYPES[path.suffix])
    if "index.html" not in files:
        raise SwapcamError(f"demo page {folder / 'index.html'} is missing from the package; reinstall swapcam")
    return files


# ---------------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="swap model (.onnx, swapcam or DFM) for direction a2b; unset: the shipped demo model "
                             "(astronaut <-> Grace Hopper, both directions)")
    parser.add_argument("--model-b2a", default=None, help="model for the reverse direction (enables the page's swap-direction toggle)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 127.0.0.1 keeps it on this machine. Use 0.0.0.0 with --cert/--key "
                             "(browsers allow cameras only on https or localhost)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port")
    parser.add_argument("--max-peers", type=int, default=4, help="most browsers served at once (503 beyond)")
    parser.add_argument("--cert", default=None, help="TLS certificate (PEM) to serve https")
    parser.add_argument("--key", default=None, help="TLS private key (PEM) for --cert")
    parser.add_argument("--providers", default="auto", help="onnxruntime providers: auto, cpu, cuda, tensorrt")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (unset: onnxruntime's choice)")
    parser.add_argument("--connect-timeout", type=float, default=20.0, help="seconds a peer may take to connect (ICE) before it is dropped")
    parser.add_argument("--ice-address", action="append", default=None,
                        help="gather ICE candidates only on this local address (repeatable; default: all interfaces)")
    parser.add_argument("--stun", action="append", default=None,
                        help="STUN server URL, e.g. stun:stun.example.org:3478 (repeatable; default: none)")
    parser.add_argument("--colour", choices=COLOURS, default="rct", help="initial colour transfer mode of each peer")
    parser.add_argument("--no-label", action="store_true", help="start peers with the 'synthetic video' label off")


def _ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert and not key:
        return None
    if not (cert and key):
        raise SwapcamError("--cert and --key go together (certificate and its private key, PEM)")
    for what, path in (("--cert", cert), ("--key", key)):
        if not Path(path).is_file():
            raise SwapcamError(f"{what} {path} does not exist")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise SwapcamError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from None
    return context


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    if not 1 <= args.port <= 65535:
        raise SwapcamError(f"--port {args.port}: expected 1..65535")
    if args.max_peers < 1:
        raise SwapcamError(f"--max-peers {args.max_peers}: expected >= 1")
    if args.connect_timeout <= 0:
        raise SwapcamError(f"--connect-timeout {args.connect_timeout}: expected > 0 seconds")
    for address in args.ice_address or []:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise SwapcamError(f"--ice-address {address!r} is not an IP address") from None
    for url in args.stun or []:
        if not url.startswith(("stun:", "stuns:")):
            raise SwapcamError(f"--stun {url!r}: expected a URL like stun:host:port")
    return ServeConfig(host=args.host, port=args.port, max_peers=args.max_peers, connect_timeout_s=args.connect_timeout,
                       ice_addresses=tuple(args.ice_address) if args.ice_address else None,
                       stun_servers=tuple(args.stun or ()),
                       default_options=PeerOptions(colour=args.colour, label=not args.no_label))


def quiet_libraries(verbose: bool) -> None:
    """aioice/aiortc log every ICE check at INFO; the user needs them only with --verbose."""
    if not verbose:
        for name in ("aioice", "aiortc"):
            logging.getLogger(name).setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    quiet_libraries(getattr(args, "verbose", False))
    try:
        from aiohttp import web
    except ImportError:
        raise SwapcamError("swapcam serve needs aiohttp and aiortc: pip install 'swapcam[webrtc]'") from None
    config = config_from_args(args)
    context = _ssl_context(args.cert, args.key)
    if not is_loopback(config.host) and context is None:
        log.warning("listening on %s without TLS: browsers on other machines will refuse the camera on plain http; "
                    "use --cert/--key or a TLS reverse proxy", config.host)
    factory = PipelineFactory.from_args(args.model, args.model_b2a, args.providers, args.threads)
    server = SwapServer(factory, config)
    scheme = "https" if context else "http"
    shown = f"[{config.host}]" if ":" in config.host else config.host
    print(f"swapcam serve: open {scheme}://{shown}:{config.port}/ ({len(factory.directions)} direction(s), "
          f"up to {config.max_peers} peers; Ctrl+C stops)", flush=True)
    try:
        web.run_app(server.app(), host=config.host, port=config.port, ssl_context=context, print=None,
                    access_log=None, handle_signals=True)
    except OSError as exc:
        raise SwapcamError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    return 0
