"""WebRTC benchmark: N in-process client peers send the synthetic 640x480 clip to a swapcam server over real WebRTC
(aiortc both sides, loopback) and measure, per peer, the fps that comes back, the round-trip latency p50/p95 and lip
sync at the server's output. The client side is realtime.webrtc.client.
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
from typing import Any

from realtime.atomic import atomic_write_json
from realtime.builder import add_model_arguments
from realtime.errors import SwapcamError
from realtime.types import Image
from realtime.webrtc.ice import LOOPBACK


async def bench_peers(
    server, frames: list[Image], peers: int, seconds: float, warmup: float = 3.0, fps: float = 30.0
) -> dict[str, Any]:
    """Connect ``peers`` clients to ``server`` (a SwapServer) at once, measure for ``seconds`` after ``warmup``."""
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
        await asyncio.sleep(seconds)
        results = [client.result.summary() for client in clients]
        for result, client, probe in zip(results, clients, probes, strict=True):
            result["lip_sync"] = probe.offset(client)
    finally:
        for client in clients:
            await client.close()
        deadline = time.perf_counter() + 10
        while server.peers and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        await runner.cleanup()  # closes whatever peer is left (the app's shutdown hook)
    fps_values = [r["fps"] for r in results]
    return {
        "peers": peers,
        "seconds": seconds,
        "per_peer": results,
        "fps_mean": round(statistics.mean(fps_values), 2),
        "fps_min": round(min(fps_values), 2),
        "rtt_p95_ms_max": max((r["rtt_p95_ms"] or math.inf) for r in results),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--peers", default="1", help="number of concurrent client peers, or a list like 1,2,3 (one run each)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run (after the warm-up)")
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
    if args.seconds <= 0 or args.warmup < 0:
        raise SwapcamError(f"--seconds {args.seconds} / --warmup {args.warmup}: expected seconds > 0 and warm-up >= 0")
    clip = synthetic_clip(args.portrait, n_frames=90, size=(640, 480), fps=30.0, seed=0)
    factory = PipelineFactory.open(args.model, None, args.providers, args.threads)
    runs = []
    for n in counts:
        server = SwapServer(factory, ServeConfig(max_peers=max(counts), ice_addresses=LOOPBACK))
        result = asyncio.run(bench_peers(server, clip.frames, n, args.seconds, args.warmup))
        runs.append(result)
        for i, peer in enumerate(result["per_peer"]):
            sync = peer["lip_sync"] or {}
            print(
                f"peers={n} peer{i}: {peer['fps']:5.1f} fps  round trip p50 {peer['rtt_p50_ms']} ms  "
                f"p95 {peer['rtt_p95_ms']} ms  (server pipeline {peer['server'].get('latency_ms')} ms, "
                f"audio held {peer['server'].get('audio_delay_ms')} ms, lip sync at the server's output "
                f"{sync.get('offset_ms')} ms, {peer['audio_frames']} audio frames back)"
            )
        print(f"peers={n}: mean {result['fps_mean']} fps per peer, worst p95 {result['rtt_p95_ms_max']} ms", flush=True)
    report = {
        "benchmark": "webrtc",
        "size": [640, 480],
        "clip_fps": 30,
        "cpu_count": os.cpu_count(),
        "model": str(args.model or "demo"),
        "runs": runs,
    }
    if args.json:
        path = atomic_write_json(args.json, report, indent=2)
        print(f"wrote {path}", file=sys.stderr)
    return 0
