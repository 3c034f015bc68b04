"""WebRTC server and demo page: a browser sends its camera and microphone, gets the face-swapped video back with the
microphone delayed by the measured video latency (lip sync). The swap models run here, so the browser can be on any
machine and the models on a GPU box. Binds 127.0.0.1 by default; see --cert/--key to serve https on a network.

Endpoints: GET / (demo page), GET /static/NAME (the page's files, from the package only), POST /offer (JSON
{"sdp", "type": "offer", "options"?} -> answer), GET /health. Per-peer options and live stats travel over the
peer's "control" data channel (see realtime.webrtc.peer).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import itertools
import json
import logging
import os
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from realtime.builder import add_model_arguments, create_processor, open_swapper, warm_up
from realtime.controls import SWITCHES, apply_changes, describe
from realtime.errors import SwapcamError
from realtime.live import add_compositing_arguments, compositing_options
from realtime.pipeline import FaceSwapProcessor, PipelineOptions
from realtime.swapper import Swapper
from realtime.webrtc.ice import ice_addresses
from realtime.webrtc.peer import BadOffer, PeerOptions, PeerSession, ProcessorFactory, parse_options

log = logging.getLogger("swapcam.webrtc")

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


# ------------------------------------------------------------------------------------------------ processor factory
class PipelineFactory:
    """The real thing: ONE shared onnxruntime session per swap direction, one warmed-up FaceSwapProcessor per peer."""

    def __init__(self, swappers: dict[str, Swapper], base: PipelineOptions | None = None) -> None:
        if not swappers:
            raise SwapcamError("no swap model given")
        self.swappers = dict(swappers)
        self.directions = tuple(self.swappers)
        self.base = base or PipelineOptions()  # what a peer cannot switch (coverage, smoothing) comes from here

    @classmethod
    def open(
        cls,
        model: str | os.PathLike | None = None,
        model_b2a: str | os.PathLike | None = None,
        providers: str = "auto",
        threads: int | None = None,
        base: PipelineOptions | None = None,
    ) -> PipelineFactory:
        """Without ``model``: the shipped demo model both ways (``model_b2a`` replaces its reverse). With ``model``:
        that model, and a reverse direction only when ``model_b2a`` is given. Each is warmed up here, at start: a
        peer's first switch to the other direction must not pay for onnxruntime's first run in its frame thread."""
        paths: dict[str, str | os.PathLike | None] = {"a2b": model}
        if model is None or model_b2a is not None:
            paths["b2a"] = model_b2a  # None: open_swapper's demo model of that direction
        return cls(
            {
                direction: warm_up(open_swapper(path, providers, threads, direction=direction))
                for direction, path in paths.items()
            },
            base,
        )

    def replace(self, direction: str, swapper: Swapper) -> None:
        """Use ``swapper`` for ``direction`` from now on (new peers, and old ones at their next reconfigure)."""
        if direction not in self.swappers:
            raise SwapcamError(f"direction {direction!r}; this server has {list(self.swappers)}")
        self.swappers[direction] = swapper

    def direction_names(self) -> dict[str, str]:
        """'a2b' -> 'astronaut → grace_hopper', from each model's metadata (what the page shows)."""
        names = {}
        for direction, swapper in self.swappers.items():
            source, target = swapper.info.identities
            names[direction] = f"{source} → {target}"
        return names

    def _pipeline_options(self, options: PeerOptions) -> PipelineOptions:
        return apply_changes(self.base, options.switches())

    def create(self, options: PeerOptions) -> FaceSwapProcessor:
        """Runs in the peer's worker thread. No lock of our own: create_processor is safe from several threads
        (its native-output capture, the one process-wide thing a start-up touches, takes its own lock), and the
        shared sessions are only read (onnxruntime's run() is thread-safe)."""
        return create_processor(self.swappers[options.direction], self._pipeline_options(options))

    def configure(self, processor: FaceSwapProcessor, options: PeerOptions, swapper: Swapper | None = None) -> None:
        """Apply new options to a live processor, keeping its landmark tracker (no re-detection, no new graph) and,
        when the model stays the same, its per-face state. ``swapper``: the peer's own model instead of the
        direction's. Runs in the peer's worker thread, between two frames."""
        processor.reconfigure(swapper or self.swappers[options.direction], self._pipeline_options(options))


# --------------------------------------------------------------------------------------------------------- config
@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_peers: int = 4
    max_body_bytes: int = 64 * 1024  # a browser offer is 3-10 KB; anything near this is not an SDP offer
    connect_timeout_s: float = 20.0  # a peer whose ICE has not connected by then is dropped
    stats_interval_s: float = 1.0
    ice_addresses: tuple[str, ...] | None = None  # None: every interface (aiortc's default), aioice untouched
    stun_servers: tuple[str, ...] = ()  # none by default: no traffic to third parties unless asked
    default_options: PeerOptions = field(default_factory=PeerOptions)
    # "use my face": where each enrolment's capture, run and model go (None: the page cannot enrol), how long the
    # capture may take, and more `swapcam enroll` options (--minutes, --target, ...)
    enroll_dir: str | None = None
    enroll_capture_s: float = 60.0
    enroll_args: tuple[str, ...] = ()
    keep_enrolments: bool = False  # keep each enrolment's capture video, training run and model (else deleted)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------------- the server
class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SwapServer:
    """The HTTP side (signalling, page, health) and the set of live peers."""

    def __init__(
        self, factory: ProcessorFactory, config: ServeConfig | None = None, model_folder: str | None = None
    ) -> None:
        self.factory = factory
        self.model_folder = model_folder  # `--model DIR`: a newer model there is hot-swapped into every peer
        config = config or ServeConfig()
        if config.default_options.direction not in factory.directions:
            # A copy, not a change to the caller's config (it may serve another factory too).
            config = dataclasses.replace(
                config, default_options=dataclasses.replace(config.default_options, direction=factory.directions[0])
            )
        self.config = config
        self.peers: dict[str, PeerSession] = {}
        self.static = load_static(STATIC_DIR)
        self._enrolment_numbers = itertools.count(1)

    def app(self):
        from aiohttp import web

        app = web.Application(client_max_size=self.config.max_body_bytes, middlewares=[web.middleware(_json_errors)])
        app.router.add_get("/", self.handle_index)
        app.router.add_get("/static/{name}", self.handle_static)
        app.router.add_post("/offer", self.handle_offer)
        app.router.add_get("/health", self.handle_health)
        app.router.add_get("/switches", self.handle_switches)
        app.on_response_prepare.append(_security_headers)
        app.on_shutdown.append(lambda _app: self.close_all())
        if self.model_folder is not None:
            app.on_startup.append(self._watch_models)
        if self.config.enroll_dir is not None and not self.config.keep_enrolments:
            app.on_startup.append(self._sweep_enrolments)
        return app

    async def _sweep_enrolments(self, app) -> None:
        """What a previous server left in --enroll-dir (it crashed before closing its peers' enrolments) goes."""
        from realtime.webrtc.enrol import sweep_enrolments

        assert self.config.enroll_dir is not None
        await asyncio.to_thread(sweep_enrolments, self.config.enroll_dir)

    def _enrolment_factory(self):
        config = self.config
        if config.enroll_dir is None:
            return None

        def new(peer_id: str):
            from realtime.webrtc.enrol import WebEnrolment

            # numbered: two enrolments of one peer in the same second must not share (and delete) one folder
            name = time.strftime(f"%Y%m%d-%H%M%S-{peer_id}-{next(self._enrolment_numbers)}")
            folder = Path(config.enroll_dir) / name  # type: ignore[arg-type]
            return WebEnrolment(folder, config.enroll_capture_s, config.enroll_args, keep=config.keep_enrolments)

        return new

    def replace_model(self, direction: str, swapper: Swapper) -> None:
        """Hot swap, on the event loop: the factory's model for ``direction`` becomes ``swapper`` and every peer
        on that direction switches between two frames (no renegotiation, the call goes on)."""
        self.factory.replace(direction, swapper)  # type: ignore[attr-defined]
        for peer in list(self.peers.values()):
            if peer.options.direction == direction and not peer.uses_own_model(direction):
                peer.set_options(peer.options)
                peer.send({"type": "model", "direction": direction, "model": swapper.path.name})

    async def _watch_models(self, app) -> None:
        from realtime.builder import ModelFolderWatcher

        loop = asyncio.get_running_loop()
        current = self.factory.swappers["a2b"].path  # type: ignore[attr-defined]

        def on_new(swapper: Swapper) -> None:  # the watcher's thread -> the event loop
            loop.call_soon_threadsafe(self.replace_model, "a2b", swapper)

        assert self.model_folder is not None
        watcher = ModelFolderWatcher(self.model_folder, current, on_new).start()
        app.on_cleanup.append(lambda _app: asyncio.to_thread(watcher.stop))
        log.info("watching %s: a newer model there is swapped into every peer", self.model_folder)

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

        return web.json_response(
            {
                "status": "ok",
                "peers": len(self.peers),
                "max_peers": self.config.max_peers,
                "directions": list(self.factory.directions),
            }
        )

    async def handle_switches(self, request):
        """The live switches (realtime.controls) with their values and a new peer's start options: the page builds
        its controls from this, so the choices are written once, in Python."""
        from aiohttp import web

        return web.json_response({"switches": describe(), "options": self.config.default_options.to_json()})

    async def handle_offer(self, request):
        from aiohttp import web

        try:
            offer, options = await self._read_offer(request)
        except HttpError as exc:
            return _error(exc.status, str(exc))
        if len(self.peers) >= self.config.max_peers:
            return _error(
                503, f"server is full: {len(self.peers)} of {self.config.max_peers} peers connected; try again later"
            )
        config = self.config
        peer = PeerSession(
            self.factory,
            options,
            self.peers,
            stun_servers=config.stun_servers,
            connect_timeout_s=config.connect_timeout_s,
            stats_interval_s=config.stats_interval_s,
            enrolment=self._enrolment_factory(),
        )
        self.peers[peer.id] = peer  # reserved before the first await, so concurrent offers cannot overfill
        try:
            # aioice reads the host addresses while the answer is made (ICE gathering), so that is the only time
            # this server's address filter needs to be in place; without --ice-address aioice is left alone.
            with ice_addresses(config.ice_addresses):
                answer = await peer.negotiate(offer)
        except BadOffer as exc:
            await peer.close(f"bad offer: {exc}")
            return _error(400, str(exc))
        except Exception:
            await peer.close("negotiation failed")
            raise
        peer.start()
        log.info("peer %s: connected signalling (%d/%d peers)", peer.id, len(self.peers), self.config.max_peers)
        return web.json_response(
            {
                "sdp": answer.sdp,
                "type": answer.type,
                "peer_id": peer.id,
                "options": peer.options.to_json(),
                "directions": list(self.factory.directions),
                "direction_names": self._direction_names(),
            }
        )

    def _direction_names(self) -> dict[str, str]:
        names = getattr(self.factory, "direction_names", None)
        return names() if callable(names) else {d: d for d in self.factory.directions}

    async def _read_offer(self, request) -> tuple[Any, PeerOptions]:
        from aiohttp import web
        from aiortc import RTCSessionDescription

        if request.content_type != "application/json":
            raise HttpError(415, f"Content-Type must be application/json, got {request.content_type or 'none'!r}")
        if request.content_length is not None and request.content_length > self.config.max_body_bytes:
            raise HttpError(
                413, f"body of {request.content_length} bytes is over the {self.config.max_body_bytes}-byte limit"
            )
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


async def start_server(server: SwapServer, host: str = "127.0.0.1", port: int = 0) -> tuple[Any, str]:
    """Serve ``server`` on ``host``:``port`` (0: a free port) from the running event loop, for tests and the
    benchmark; returns (aiohttp AppRunner, base URL). ``await runner.cleanup()`` stops it and closes every peer."""
    from aiohttp import web

    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]  # the one site's first socket: (host, port) or (host, port, flow, scope)
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{bound}"


# ---------------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)  # --model (direction a2b), --providers, --threads: the same as swapcam live
    parser.add_argument(
        "--model-b2a",
        default=None,
        help="model for the reverse direction (the page's swap-direction toggle); when left out: the "
        "demo model's reverse (Grace Hopper -> astronaut) without --model, none with --model",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 127.0.0.1 keeps it on this machine. Use 0.0.0.0 with --cert/--key "
        "(browsers allow cameras only on https or localhost)",
    )
    parser.add_argument("--port", type=int, default=8080, help="TCP port")
    parser.add_argument("--max-peers", type=int, default=4, help="most browsers served at once (503 beyond)")
    parser.add_argument("--cert", default=None, help="TLS certificate (PEM) to serve https")
    parser.add_argument("--key", default=None, help="TLS private key (PEM) for --cert")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=20.0,
        help="seconds a peer may take to connect (ICE) before it is dropped",
    )
    parser.add_argument(
        "--ice-address",
        action="append",
        default=None,
        help="gather ICE candidates only on this local address (repeatable; default: all interfaces)",
    )
    parser.add_argument(
        "--stun",
        action="append",
        default=None,
        help="STUN server URL, e.g. stun:stun.example.org:3478 (repeatable; default: none)",
    )
    add_compositing_arguments(parser)  # each peer's start values; the page switches them live
    parser.add_argument("--no-label", action="store_true", help="start peers with the 'synthetic video' label off")
    parser.add_argument(
        "--enroll-dir",
        default=str(Path.home() / ".cache" / "swapcam" / "web-enroll"),
        help="the page's 'use my face': each enrolment's capture, training run and model go in a folder here",
    )
    parser.add_argument("--no-enroll", action="store_true", help="turn the page's 'use my face' off")
    parser.add_argument(
        "--keep-enrolments",
        action="store_true",
        help="'use my face': keep each enrolment's capture video, training run and model in --enroll-dir (by "
        "default the video and run are deleted once the model is built, the model when the peer leaves, and "
        "enrolment folders a crashed server left when the next one starts)",
    )
    parser.add_argument(
        "--enroll-seconds", type=float, default=60.0, help="'use my face': the longest capture, in seconds"
    )
    parser.add_argument(
        "--enroll-minutes", type=float, default=10.0, help="'use my face': the training budget, in minutes"
    )
    parser.add_argument(
        "--enroll-target",
        default="demo",
        help="'use my face': who the person becomes (swapcam enroll --target: demo, a faceset or a run folder)",
    )


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
    return ServeConfig(
        host=args.host,
        port=args.port,
        max_peers=args.max_peers,
        connect_timeout_s=args.connect_timeout,
        ice_addresses=tuple(args.ice_address) if args.ice_address else None,
        stun_servers=tuple(args.stun or ()),
        default_options=PeerOptions(
            label=not args.no_label, **{k: v for k, v in compositing_options(args).items() if k in SWITCHES}
        ),
        enroll_dir=None if args.no_enroll else args.enroll_dir,
        enroll_capture_s=args.enroll_seconds,
        enroll_args=("--minutes", f"{args.enroll_minutes:g}", "--target", args.enroll_target),
        keep_enrolments=args.keep_enrolments,
    )


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
        log.warning(
            "listening on %s without TLS: browsers on other machines will refuse the camera on plain http; "
            "use --cert/--key or a TLS reverse proxy",
            config.host,
        )
    base = PipelineOptions(**compositing_options(args))
    base.validate()
    factory = PipelineFactory.open(args.model, args.model_b2a, args.providers, args.threads, base)
    folder = args.model if args.model is not None and Path(args.model).is_dir() else None
    server = SwapServer(factory, config, model_folder=folder)
    scheme = "https" if context else "http"
    shown = f"[{config.host}]" if ":" in config.host else config.host
    print(
        f"swapcam serve: open {scheme}://{shown}:{config.port}/ ({len(factory.directions)} direction(s), "
        f"up to {config.max_peers} peers; Ctrl+C stops)",
        flush=True,
    )
    try:
        web.run_app(
            server.app(),
            host=config.host,
            port=config.port,
            ssl_context=context,
            print=None,
            access_log=None,
            handle_signals=True,
        )
    except OSError as exc:
        raise SwapcamError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    return 0
