"""WebRTC benchmark: N in-process client peers send the synthetic 640x480 clip to a swapcam server over real WebRTC
(aiortc both sides, loopback) and measure, per peer, the fps that comes back, the round-trip latency p50/p95 and lip
sync at the server's output. The client side is realtime.webrtc.client.

--minutes M is a soak (one peer count, usually --peers 1): the call runs M minutes and every --every seconds prints
and records the process's RSS and thread count (server and clients share this process), the fps received, the round
trip p50/p95 and the server's drops; at the end a verdict: RSS, round trip p95 and threads of the last full window
against the second, flat or grows (realtime.bench.soak_verdict). A leak per frame or per call shows there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from realtime.atomic import atomic_write_json
from realtime.bench import check_soak_arguments, process_usage, soak_verdict, window_name
from realtime.builder import add_model_arguments
from realtime.errors import SwapcamError
from realtime.types import Image
from realtime.webrtc.ice import LOOPBACK


async def bench_peers(
    server,
    frames: list[Image],
    peers: int,
    seconds: float,
    warmup: float = 3.0,
    fps: float = 30.0,
    every: float | None = None,
    on_window: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Connect ``peers`` clients to ``server`` (a SwapServer) at once, measure for ``seconds`` after ``warmup``.
    With ``every`` (a soak), the measurement is cut into windows of that many seconds: each becomes a record
    (``windows``; ``on_window`` gets it as it closes) and is forgotten, so memory stays bounded; ``per_peer`` is
    then the last window's."""
    import aiohttp

    from realtime.webrtc.client import ClientPeer, SyncProbe
    from realtime.webrtc.server import start_server

    runner, base_url = await start_server(server)
    clients: list[ClientPeer] = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(peers):
                client = ClientPeer(frames, fps=fps, audio_burst_every=25, ice_addresses=LOOPBACK)
                clients.append(client)
                await client.connect(base_url, http)
        probes = [SyncProbe(server.peers[client.answer["peer_id"]]) for client in clients]
        await asyncio.sleep(warmup)
        for client, probe in zip(clients, probes, strict=True):
            client.reset()
            probe.video.clear()
            probe.audio.clear()
        windows: list[dict] = []
        if every is None:
            await asyncio.sleep(seconds)
            results = _measured(clients, probes)
        else:
            windows = await _measure_windows(clients, probes, seconds, every, on_window)
            results = windows[-1]["per_peer"]
    finally:
        for client in clients:
            await client.close()
        deadline = time.perf_counter() + 10
        while server.peers and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        await runner.cleanup()  # closes whatever peer is left (the app's shutdown hook)
    fps_values = [r["fps"] for r in results]
    report = {
        "peers": peers,
        "seconds": seconds,
        "per_peer": results,
        "fps_mean": round(statistics.mean(fps_values), 2),
        "fps_min": round(min(fps_values), 2),
        "rtt_p95_ms_max": max((r["rtt_p95_ms"] or math.inf) for r in results),
    }
    if every is not None:
        report.update(every_s=every, windows=windows)
    return report


def _measured(clients, probes) -> list[dict]:
    """Each client's summary since its last reset, with lip sync at the server's output."""
    results = [client.result.summary() for client in clients]
    for result, client, probe in zip(results, clients, probes, strict=True):
        result["lip_sync"] = probe.offset(client)
    return results


async def _measure_windows(
    clients, probes, seconds: float, every: float, on_window: Callable[[dict], None] | None
) -> list[dict]:
    """``seconds`` cut into windows of ``every``: per window the process's RSS and threads, the fps received and the
    round trip (mean fps and worst p95 over the peers), frames sent and received, the server's drops; then each
    client and probe forgets the window's frames."""
    start = opened = time.perf_counter()
    sent = [client.video.count for client in clients]
    server_dropped = [client.result.server_stats.get("dropped") or 0 for client in clients]
    windows: list[dict] = []
    for k in range(1, math.ceil(seconds / every - 1e-9) + 1):
        await asyncio.sleep(max(0.0, start + min(k * every, seconds) - time.perf_counter()))
        now = time.perf_counter()
        per_peer = _measured(clients, probes)
        sent_now = [client.video.count for client in clients]
        dropped_now = [client.result.server_stats.get("dropped") or 0 for client in clients]
        for client, probe in zip(clients, probes, strict=True):
            client.reset()
            probe.video.clear()
            probe.audio.clear()
        rtt_p95 = [r["rtt_p95_ms"] for r in per_peer if r["rtt_p95_ms"] is not None]
        rtt_p50 = [r["rtt_p50_ms"] for r in per_peer if r["rtt_p50_ms"] is not None]
        record = {
            "window": k,
            "t_end_s": round(now - start, 2),
            "seconds": round(now - opened, 2),
            **process_usage(),
            "fps": round(statistics.mean(r["fps"] for r in per_peer), 2),
            "rtt_p50_ms": max(rtt_p50) if rtt_p50 else None,
            "rtt_p95_ms": max(rtt_p95) if rtt_p95 else None,
            "frames_sent": sum(sent_now) - sum(sent),
            "frames_received": sum(r["frames"] for r in per_peer),
            "server_dropped": sum(dropped_now) - sum(server_dropped),
            "per_peer": per_peer,
        }
        windows.append(record)
        sent, server_dropped, opened = sent_now, dropped_now, now
        if on_window is not None:
            on_window(record)
    return windows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--peers", default="1", help="number of concurrent client peers, or a list like 1,2,3 (one run each)"
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run (after the warm-up)")
    length.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="soak instead of --seconds: one call of this many minutes (one peer count, e.g. --peers 1), a line of "
        "RSS, threads, fps received, round trip p50/p95 and server drops every --every seconds, then a verdict: "
        "RSS, round trip p95 and threads of the last full window against the second, flat or grows",
    )
    parser.add_argument(
        "--every",
        type=float,
        default=60.0,
        help="with --minutes: seconds per soak record (one printed line and one JSON record each)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=8.0,
        help="seconds before measuring (ICE, first keyframes; an overloaded server needs a few "
        "seconds to settle its rate)",
    )
    add_model_arguments(parser)  # --model (direction a2b), --providers, --threads: the same as swapcam live
    parser.add_argument(
        "--portrait", default="astronaut", help="face in the synthetic clip (astronaut or grace_hopper)"
    )
    parser.add_argument("--json", default=None, help="write the results to this JSON file")


def _soak_line(record: dict, every: float) -> str:
    rss = "?" if record.get("rss_mb") is None else f"{record['rss_mb']:.1f}"
    return (
        f"{window_name(record, every)}: RSS {rss} MB, {record.get('threads')} threads, {record['fps']:5.1f} fps "
        f"received, round trip p50 {record['rtt_p50_ms']} / p95 {record['rtt_p95_ms']} ms, "
        f"{record['server_dropped']} dropped by the server"
    )


def parse_peers(text: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise SwapcamError(f"--peers {text!r}: expected a number or a list like 1,2,3") from None
    if not values or any(v < 1 or v > 16 for v in values):
        raise SwapcamError(f"--peers {text!r}: each count must be 1..16")
    return values


def run(args: argparse.Namespace) -> int:
    from realtime.samples import synthetic_clip
    from realtime.webrtc.server import PipelineFactory, ServeConfig, SwapServer, quiet_libraries

    quiet_libraries(getattr(args, "verbose", False))
    if not getattr(args, "verbose", False):
        logging.getLogger("swapcam.webrtc").setLevel(logging.WARNING)  # per-peer connect/close lines
    counts = parse_peers(args.peers)
    soak = args.minutes is not None
    if soak:
        check_soak_arguments(args.minutes, args.every)
        if len(counts) != 1:
            raise SwapcamError(f"--minutes with --peers {args.peers}: a soak runs one peer count (e.g. --peers 1)")
    seconds = args.minutes * 60 if soak else args.seconds
    if seconds <= 0 or args.warmup < 0:
        raise SwapcamError(f"--seconds {args.seconds} / --warmup {args.warmup}: expected seconds > 0 and warm-up >= 0")
    clip = synthetic_clip(args.portrait, n_frames=90, size=(640, 480), fps=30.0, seed=0)
    factory = PipelineFactory.open(args.model, None, args.providers, args.threads)
    runs = []
    for n in counts:
        server = SwapServer(factory, ServeConfig(max_peers=max(counts), ice_addresses=LOOPBACK))
        if soak:
            print(f"soak: {n} peer(s), {seconds:g} s in records of {args.every:g} s, then a verdict", flush=True)
        on_window = (lambda record: print(_soak_line(record, args.every), flush=True)) if soak else None
        every = args.every if soak else None
        result = asyncio.run(
            bench_peers(server, clip.frames, n, seconds, args.warmup, every=every, on_window=on_window)
        )
        runs.append(result)
        if soak:
            result["verdict"] = soak_verdict(result["windows"], args.every, lambda w: w["rtt_p95_ms"], "round trip")
        for i, peer in enumerate(result["per_peer"]):
            sync = peer["lip_sync"] or {}
            print(
                f"peers={n} peer{i}: {peer['fps']:5.1f} fps  round trip p50 {peer['rtt_p50_ms']} ms  "
                f"p95 {peer['rtt_p95_ms']} ms  (server pipeline {peer['server'].get('latency_ms')} ms, "
                f"audio held {peer['server'].get('audio_delay_ms')} ms, lip sync at the server's output "
                f"{sync.get('offset_ms')} ms, {peer['audio_frames']} audio frames back)"
            )
        print(f"peers={n}: mean {result['fps_mean']} fps per peer, worst p95 {result['rtt_p95_ms_max']} ms", flush=True)
        if soak:
            print(result["verdict"]["text"], flush=True)
    report = {
        "benchmark": "webrtc",
        "size": [640, 480],
        "clip_fps": 30,
        "cpu_count": os.cpu_count(),
        "model": str(args.model or "demo"),
        "runs": runs,
    }
    if soak:
        report["soak"] = {"minutes": args.minutes, "every_s": args.every, "verdict": runs[0]["verdict"]}
    if args.json:
        path = atomic_write_json(args.json, report, indent=2)
        print(f"wrote {path}", file=sys.stderr)
    return 0
