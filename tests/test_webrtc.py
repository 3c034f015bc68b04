"""The WebRTC service with real aiortc peers in-process (loopback only) and the real pipeline + shipped demo model.

What must hold: swapped frames come back (face changed, background not), audio comes back delayed by the measured
video latency (lip sync), per-peer options change the picture, bad requests get the right 4xx/503 while other
peers keep being served, peers that never connect are dropped, and after a peer leaves nothing of it is left
(asyncio tasks, threads, OS threads, peer entries).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time

import numpy as np
import pytest

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from realtime.errors import SwapcamError  # noqa: E402
from realtime.webrtc import client as wc  # noqa: E402
from realtime.webrtc import peer as wp
from realtime.webrtc import server as srv
from realtime.webrtc.ice import ice_addresses  # noqa: E402
from tests._webrtc_fixtures import (  # noqa: E402
    LOOPBACK,
    clip_landmarks,
    demo_factory,
    face_regions,
    native_thread_count,
    new_threads,
    region_diff,
    serving,
    snapshot_threads,
    wait_for,
)

CLIP_FRAMES = 60


# ------------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def clip():
    from realtime.samples import synthetic_clip

    return synthetic_clip("astronaut", n_frames=CLIP_FRAMES, size=(640, 480), fps=30.0, seed=3)


@pytest.fixture(scope="module")
def factory(clip):
    factory = demo_factory()
    # One frame through the pipeline first: onnxruntime and mediapipe start process-wide thread pools on first use;
    # those are not a peer's to free, so the leak checks below must start after them.
    processor = factory.create(wp.PeerOptions())
    processor.process(clip.frames[0])
    processor.close()
    return factory


def make_server(factory, **config) -> srv.SwapServer:
    config.setdefault("ice_addresses", LOOPBACK)
    config.setdefault("stats_interval_s", 0.25)
    return srv.SwapServer(factory, srv.ServeConfig(**config))


async def connect(base_url: str, frames, **kwargs) -> wc.ClientPeer:
    client = wc.ClientPeer(frames, ice_addresses=LOOPBACK, **kwargs)
    await client.connect(base_url)
    return client


def label_box(shape) -> tuple[slice, slice]:
    """Bottom-right corner where realtime.overlay.draw_label puts the 'synthetic video' label."""
    h, w = shape[:2]
    return slice(h - 40, h), slice(w - 190, w)


# ------------------------------------------------------------------------------------------------ fast unit tests
def test_frame_id_code_round_trip_and_checksum():
    import cv2

    image = np.full((480, 640, 3), 90, np.uint8)
    for frame_id in (0, 1, 77, 4095, 4096 + 5):
        stamp = wc.stamp_id(image, frame_id)
        luma = cv2.cvtColor(stamp, cv2.COLOR_BGR2GRAY)
        assert wc.read_id(luma) == frame_id % 4096
    assert not np.shares_memory(stamp, image) and image.max() == 90  # the input is not drawn on
    assert wc.read_id(np.full((480, 640), 90, np.uint8)) is None  # no strip: checksum fails
    corrupted = cv2.cvtColor(wc.stamp_id(image, 1234), cv2.COLOR_BGR2GRAY)
    x0, y0, _, y1 = wc.code_box(640)
    corrupted[y0:y1, x0 : x0 + wc.CODE_BLOCK] = 255 - corrupted[y0:y1, x0 : x0 + wc.CODE_BLOCK]
    assert wc.read_id(corrupted) is None


def test_parse_options_validates_every_field():
    base = wp.PeerOptions()
    assert base.label is True  # the visible label is on by default
    raw = {"direction": "b2a", "colour": "none", "label": False, "mouth": "keep", "eyes": "swap", "morph": 0.4}
    got = wp.parse_options(raw, base, ("a2b", "b2a"))
    assert got == wp.PeerOptions(direction="b2a", colour="none", label=False, mouth="keep", eyes="swap", morph=0.4)
    assert wp.parse_options(None, base, ("a2b",)) is base
    for bad, word in [
        ({"direction": "b2a"}, "direction"),
        ({"colour": "sepia"}, "colour"),
        ({"label": "yes"}, "label"),
        ({"mouth": "open"}, "mouth"),
        ({"sharpen": "max"}, "sharpen"),
        ({"morph": 1.5}, "morph"),
        ({"morph": True}, "morph"),
        ({"volume": 3}, "volume"),
        ([1], "object"),
    ]:
        with pytest.raises(ValueError, match=word):
            wp.parse_options(bad, base, ("a2b",))


def test_backlog_is_measured_from_arrival_minus_pts():
    from realtime.webrtc.tracks import VideoStats

    stats = VideoStats()
    t0 = 1000.0
    for i in range(60):  # 2 s at 30 fps arriving 20 ms after capture: no backlog
        stats.record_in(t0 + i / 30 + 0.020, i / 30)
    assert stats.backlog_s(t0 + 2.0) == pytest.approx(0.0, abs=1e-6)
    assert stats.in_fps() == pytest.approx(30.0, rel=1e-3)
    for i in range(60, 690):  # then each frame arrives 2 ms later than the one before: a queue builds for 21 s
        stats.record_in(t0 + i / 30 + 0.020 + (i - 59) * 0.002, i / 30)
    # measured against the best lag ever seen, not a recent window that the backlog itself fills
    assert 1.2 < stats.backlog_s(t0 + 690 / 30 + 1.28) < 1.3


def test_rate_hint_policy_lowers_under_backlog_and_recovers():
    nxt = wp.next_max_fps
    assert nxt(None, 30, None, 10) is None  # nothing measured: no limit
    assert nxt(0.01, 30, None, 10) is None  # no backlog: no limit
    assert nxt(0.5, 30, None, 10) == 22  # backlog: 25 % fewer frames
    assert nxt(0.9, 30, None, 10) == 15  # a long one: half
    assert nxt(0.5, 30, 22, 1.0) == 22  # ... but give the last change time to work
    assert nxt(0.5, 20, 22, 3.0) == 15
    assert nxt(0.5, 8, 8, 3.0) == 8  # never below MIN_FPS
    assert nxt(0.1, 20, 15, 30) == 15  # between the thresholds: keep
    assert nxt(0.01, 15, 15, 2.0) == 15  # recovered, but not for long enough
    assert nxt(0.01, 15, 15, 6.0) == 20
    assert nxt(0.01, 25, 25, 6.0) is None  # back to the camera's own rate


def test_serve_arguments_fail_with_one_line(tmp_path):
    parser = argparse.ArgumentParser()
    srv.add_arguments(parser)
    for argv, word in [
        (["--port", "0"], "--port"),
        (["--max-peers", "0"], "--max-peers"),
        (["--ice-address", "eth0"], "--ice-address"),
        (["--stun", "google.com"], "--stun"),
    ]:
        with pytest.raises(SwapcamError, match=word):
            srv.config_from_args(parser.parse_args(argv))
    with pytest.raises(SwapcamError, match="go together"):
        srv._ssl_context(str(tmp_path / "c.pem"), None)
    with pytest.raises(SwapcamError, match="does not exist"):
        srv._ssl_context(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    config = srv.config_from_args(parser.parse_args([]))
    assert config.host == "127.0.0.1" and config.max_peers == 4 and config.default_options.label is True


def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_https_with_cert_and_key(tmp_path):
    """--cert/--key: the page and the API are served over TLS (what browsers need for a camera off localhost)."""
    import aiohttp
    from aiohttp import web

    cert, key = _self_signed(tmp_path)
    context = srv._ssl_context(cert, key)
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(SwapcamError, match="cannot load TLS"):
        srv._ssl_context(str(tmp_path / "bad.pem"), key)

    class NoModels:
        directions = ("a2b",)

    async def scenario():
        runner = web.AppRunner(srv.SwapServer(NoModels()).app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"https://127.0.0.1:{port}/health", ssl=False) as r:
                    assert r.status == 200 and (await r.json())["status"] == "ok"
                with pytest.raises(aiohttp.ClientError):  # plain http to the TLS port gets nowhere
                    async with http.get(f"http://127.0.0.1:{port}/health") as r:
                        await r.read()
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_cli_serve_bad_model_is_one_line(capsys, tmp_path):
    from realtime.cli import main

    assert main(["serve", "--model", str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.onnx" in err[0] and err[0].startswith("swapcam serve: error:")


def test_webrtc_path_never_imports_torch():
    """serve/bench-webrtc run on machines without torch: the server, the tracks, the pipeline and the page."""
    import subprocess
    import sys

    code = (
        "import sys, realtime.webrtc.server as s\n"
        "import realtime.webrtc.bench, realtime.webrtc.client, realtime.webrtc.tracks\n"
        "f = s.PipelineFactory.open(None, None, 'cpu', None)\n"
        "p = f.create(s.PeerOptions()); p.close()\n"
        "print('TORCH', 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(srv.STATIC_DIR.parents[2])
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "TORCH False" in out.stdout, out.stdout


def test_static_table_is_the_package_folder_only():
    files = srv.load_static(srv.STATIC_DIR)
    assert {"index.html", "app.js", "style.css"} <= set(files)
    assert all("/" not in name and not name.startswith(".") for name in files)
    assert files["app.js"][1].startswith("text/javascript")


# ------------------------------------------------------------------------------------------ in-process real peers
@pytest.mark.slow
def test_peer_gets_swapped_video_and_synced_audio_then_everything_is_freed(factory, clip, portrait_landmarks):
    frames = clip.frames
    landmarks = [clip_landmarks(portrait_landmarks["astronaut"], t) for t in clip.transforms]

    async def scenario():
        gc.collect()
        threads_before = snapshot_threads()
        native_before = native_thread_count()
        tasks_before = asyncio.all_tasks()
        server = make_server(factory)
        async with serving(server) as url:
            client = await connect(url, frames, keep=40, audio_burst_every=25)  # default options: label on
            probe = wc.SyncProbe(next(iter(server.peers.values())))
            await wait_for(
                lambda: len(client.kept) >= 12 and client.result.audio_frames >= 50,
                40,
                "12 swapped frames with readable ids and 50 audio frames back",
            )
            with_label = dict(client.kept)
            assert len(server.peers) == 1
            peer = next(iter(server.peers.values()))
            assert peer.pc.connectionState == "connected"

            # Options over the data channel: label off, colour none. The reply echoes what the server applied.
            client.send({"type": "options", "label": False, "colour": "none"})
            await wait_for(lambda: any(m.get("type") == "options" for m in client.messages), 5, "options reply")
            reply = [m for m in client.messages if m.get("type") == "options"][-1]
            assert reply["options"] == {**wp.PeerOptions().to_json(), "colour": "none", "label": False}
            client.send({"type": "options", "colour": "sepia"})
            await wait_for(lambda: any(m.get("type") == "error" for m in client.messages), 5, "error reply")
            assert "sepia" in [m for m in client.messages if m.get("type") == "error"][-1]["message"]
            await asyncio.sleep(0.5)  # frames already in flight still carry the label
            client.kept.clear()
            await wait_for(lambda: len(client.kept) >= 12, 30, "12 frames after the options change")
            without_label = dict(client.kept)

            # Lip sync: each audio frame was held for the target delay, and the target follows the video latency.
            await wait_for(lambda: len(peer.audio.applied) >= 100, 10, "100 delayed audio frames")
            recent = list(peer.audio.applied)[-50:]
            errors_ms = [abs(applied - target) * 1000 for _, applied, target in recent]
            # Within the lip-sync tolerance (ITU-R BT.1359, +-45 ms): a broken hold (none, or a stale target) is off by
            # the whole video latency (~100 ms); scheduling jitter on a loaded 2-core machine reaches tens of ms.
            assert statistics.median(errors_ms) < 45, f"audio held {errors_ms} ms off its target"
            video_latency = peer.video.latency_s()
            expected = peer.audio_delay_s()
            assert video_latency is not None and 0 < video_latency < 1.0
            assert abs(max(expected, 0.0) - peer.audio.target_delay()) < 0.045
            # the delay applied over the last second against the targets of that second (not against this instant's
            # target: the video latency moves, and one CI run saw 0.107 s applied vs 0.059 s expected a moment later)
            applied_now = statistics.median(a for _, a, _ in recent)
            targets_then = statistics.median(t for _, _, t in recent)
            assert abs(applied_now - targets_then) < 0.045, (applied_now, targets_then, expected, video_latency)
            # ... and the result: a click and the video frame captured with it leave the server together.
            await wait_for(lambda: (probe.offset(client) or {}).get("clicks", 0) >= 6, 20, "6 clicks timed")
            sync = probe.offset(client)
            assert abs(sync["offset_ms"]) <= 45, f"lip sync off by {sync} (ITU-R BT.1359: +-45 ms)"
            stats = peer.stats()
            assert stats["fps"] > 0 and stats["frames_out"] > 20 and stats["audio_frames"] > 50
            assert client.result.server_stats.get("type") == "stats"  # pushed over the data channel

            # Close from the client side (like a closed tab): the server frees the peer on its own.
            await client.close()
            await wait_for(lambda: not server.peers, 15, "the server to drop the closed peer")
            assert not peer.video.worker.alive
            assert peer.video.worker.processor._closed  # mediapipe graph released
        await asyncio.sleep(0.2)
        leftover = [t for t in asyncio.all_tasks() - tasks_before if t is not asyncio.current_task()]
        assert not leftover, f"tasks left behind: {leftover}"
        assert not new_threads(threads_before), f"threads left behind: {new_threads(threads_before)}"
        return with_label, without_label, native_before

    with_label, without_label, native_before = asyncio.run(scenario())
    # OS threads (mediapipe's C++ graph, libvpx, opus) are gone too; the loop's executor threads went with the loop.
    # Native threads that were told to stop may take a moment to leave /proc: poll, bounded.
    deadline = time.perf_counter() + 3.0
    while native_thread_count() > native_before and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert native_thread_count() <= native_before, f"{native_thread_count()} OS threads now, {native_before} before"

    # Swapped frames: the face changed, the background did not (paste-back touches only the face box).
    shape = frames[0].shape[:2]
    face_d, back_d = [], []
    for frame_id, received in without_label.items():
        sent = wc.stamp_id(frames[frame_id % len(frames)], frame_id)
        inner, background = face_regions(landmarks[frame_id % len(frames)], shape)
        face_d.append(region_diff(received, sent, inner))
        back_d.append(region_diff(received, sent, background))
    assert statistics.median(face_d) > 3 * statistics.median(back_d), (face_d, back_d)
    assert statistics.median(face_d) > 12, face_d
    assert statistics.median(back_d) < 8, back_d
    # The visible label was there by default and went away when the page turned it off.
    rows, cols = label_box(shape)
    on = [
        region_diff(
            img[rows, cols],
            wc.stamp_id(frames[i % len(frames)], i)[rows, cols],
            np.ones((rows.stop - rows.start, cols.stop - cols.start), bool),
        )
        for i, img in with_label.items()
    ]
    off = [
        region_diff(
            img[rows, cols],
            wc.stamp_id(frames[i % len(frames)], i)[rows, cols],
            np.ones((rows.stop - rows.start, cols.stop - cols.start), bool),
        )
        for i, img in without_label.items()
    ]
    assert statistics.median(on) > 20 > 6 > statistics.median(off), (on, off)


@pytest.mark.slow
def test_bad_requests_get_4xx_and_other_peers_keep_being_served(factory, clip):
    import aiohttp

    frames = clip.frames

    async def scenario():
        server = make_server(factory, max_peers=2, max_body_bytes=64 * 1024)
        async with serving(server) as url:
            first = await connect(url, frames)
            await wait_for(lambda: first.result.matched >= 5, 40, "the first peer to be served")

            async with aiohttp.ClientSession() as http:

                async def post(data=None, json_body=None, headers=None):
                    async with http.post(f"{url}/offer", data=data, json=json_body, headers=headers) as r:
                        assert r.content_type == "application/json", r.content_type
                        body = await r.json()
                        assert isinstance(body.get("error"), str) and body["error"], body
                        return r.status, body["error"]

                offer = first.pc.localDescription.sdp
                status, msg = await post(json_body={"sdp": "v=0\r\nthis is not an sdp\r\n", "type": "offer"})
                assert status == 400 and "SDP" in msg
                status, msg = await post(json_body={"sdp": "v=0\r\nm=video x y z\r\na=rtpmap:zz\r\n", "type": "offer"})
                assert status == 400 and "SDP" in msg
                status, msg = await post(json_body={"sdp": offer.replace("a=ice-ufrag", "a=ice-uf"), "type": "offer"})
                assert status == 400 and "SDP" in msg
                status, msg = await post(json_body={"sdp": "hello", "type": "offer"})
                assert status == 400 and "sdp" in msg
                status, msg = await post(data=b"{not json", headers={"Content-Type": "application/json"})
                assert status == 400 and "JSON" in msg
                status, msg = await post(json_body=[1, 2])
                assert status == 400 and "object" in msg
                status, msg = await post(json_body={"sdp": offer, "type": "answer"})
                assert status == 400 and "offer" in msg
                status, msg = await post(json_body={"sdp": offer, "type": "offer", "options": {"colour": "x"}})
                assert status == 400 and "colour" in msg
                status, msg = await post(data=offer.encode(), headers={"Content-Type": "application/sdp"})
                assert status == 415 and "application/json" in msg
                huge = json.dumps({"sdp": "v=0" + "a" * 70_000, "type": "offer"}).encode()
                status, msg = await post(data=huge, headers={"Content-Type": "application/json"})
                assert status == 413 and "limit" in msg

                async def chunks():  # no Content-Length: the limit must hold while reading
                    for _ in range(20):
                        yield b"a" * 8192

                status, msg = await post(data=chunks(), headers={"Content-Type": "application/json"})
                assert status == 413, msg

                # No directory listing, nothing outside the package table.
                for path in ("/static/", "/static/..%2Fserver.py", "/static/../server.py", "/server.py", "/static"):
                    async with http.get(url + path) as r:
                        assert r.status == 404, path
                async with http.get(f"{url}/") as r:
                    page = await r.text()
                    assert r.status == 200 and "swapcam" in page and "Content-Security-Policy" in r.headers
                async with http.get(f"{url}/health") as r:
                    assert (await r.json())["peers"] == 1  # no bad request kept a slot

            # The served peer never noticed, and a good peer after all that is served too.
            served = first.result.matched
            await wait_for(lambda: first.result.matched >= served + 10, 20, "the first peer to keep receiving frames")
            second = await connect(url, frames)
            await wait_for(lambda: second.result.matched >= 5, 40, "a second peer after the bad requests")
            # One onnxruntime session per direction, shared by all peers (each has its own tracker).
            processors = [p.video.worker.processor for p in server.peers.values()]
            assert len(processors) == 2 and processors[0] is not processors[1]
            assert processors[0].swapper is processors[1].swapper is factory.swappers["a2b"]
            # Full: the next offer gets 503 with a message; nobody is dropped for it.
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/offer", json={"sdp": first.pc.localDescription.sdp, "type": "offer"}) as r:
                    assert r.status == 503 and "full" in (await r.json())["error"]
            assert len(server.peers) == 2

            # Room is made by closing a peer; an audio-only offer is refused (nothing to swap); a new peer is served.
            await second.close()
            await wait_for(lambda: len(server.peers) == 1, 15, "the closed peer to be dropped")
            from aiortc import RTCConfiguration, RTCPeerConnection

            with ice_addresses(LOOPBACK):
                audio_only = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                audio_only.addTrack(wc.make_tone_track())
                await audio_only.setLocalDescription(await audio_only.createOffer())
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{url}/offer", json={"sdp": audio_only.localDescription.sdp, "type": "offer"}
                ) as r:
                    assert r.status == 400 and "video" in (await r.json())["error"]
            await audio_only.close()
            assert len(server.peers) == 1
            third = await connect(url, frames)
            await wait_for(lambda: third.result.matched >= 5, 30, "a new peer after the bad requests")
            for client in (first, third):
                await client.close()
            await wait_for(lambda: not server.peers, 15, "all peers dropped")

    asyncio.run(scenario())


@pytest.mark.slow
def test_peers_arriving_together_are_all_served_and_the_console_survives(factory, clip):
    """Three offers at once: each gets its own tracker (built one at a time: their start-up redirects fds 1/2)
    and frames; stdout/stderr still point where they did (a race there silences the server for good)."""
    import os

    def fds():
        return [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)]

    async def scenario():
        before = fds()
        server = make_server(factory, max_peers=3)
        async with serving(server) as url:
            clients = await asyncio.gather(*(connect(url, clip.frames, audio=False) for _ in range(3)))
            await wait_for(lambda: all(c.result.matched >= 3 for c in clients), 60, "frames for all three peers")
            assert len(server.peers) == 3
            assert fds() == before, "stdout/stderr were left redirected"
            for client in clients:
                await client.close()
            await wait_for(lambda: not server.peers, 15, "all peers dropped")
        assert fds() == before

    asyncio.run(scenario())


@pytest.mark.slow
def test_peer_that_never_connects_is_dropped_after_the_ice_timeout(factory):
    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection

    async def scenario():
        threads_before = snapshot_threads()
        server = make_server(factory, connect_timeout_s=1.5)
        async with serving(server) as url:
            with ice_addresses(LOOPBACK):
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                pc.addTrack(wc.make_clip_track([np.zeros((480, 640, 3), np.uint8)]))
                await pc.setLocalDescription(await pc.createOffer())
            await pc.close()  # the browser vanished right after sending its offer
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}) as r:
                    assert r.status == 200
            assert len(server.peers) == 1
            peer = next(iter(server.peers.values()))
            await wait_for(lambda: not server.peers, 10, "the unconnected peer to time out")
            assert "did not connect" in peer.close_reason
            assert not peer.video.worker.alive
        await asyncio.sleep(0.1)
        assert not new_threads(threads_before), new_threads(threads_before)

    start = time.perf_counter()
    asyncio.run(scenario())
    assert time.perf_counter() - start < 15


@pytest.mark.slow
def test_a_failing_swap_ends_the_peer_with_a_message_not_a_hang(clip):
    """If the processor raises (a bug, a bad model), the peer is told why and everything it held is freed."""

    class Broken:
        last_timings: dict = {}

        def process(self, image, t=None):
            raise RuntimeError("model exploded")

        def close(self):
            self.closed = True

    class BrokenFactory:
        directions = ("a2b",)

        def create(self, options):
            return Broken()

        def configure(self, processor, options, swapper=None):
            pass

    async def scenario():
        threads_before = snapshot_threads()
        server = make_server(BrokenFactory())
        async with serving(server) as url:
            client = await connect(url, clip.frames)
            peer = next(iter(server.peers.values()))
            await wait_for(lambda: not server.peers, 20, "the failed peer to be closed")
            assert peer.close_reason == "swap worker failed"
            assert peer.video.worker.processor.closed
            errors = [m["message"] for m in client.messages if m.get("type") == "error"]
            assert errors and "model exploded" in errors[0], client.messages
            await client.close()
        await asyncio.sleep(0.1)
        assert not new_threads(threads_before), new_threads(threads_before)

    asyncio.run(scenario())


@pytest.mark.slow
def test_serve_hot_swaps_a_newer_model_from_its_folder_mid_call(tmp_path, clip):
    """`swapcam serve --model DIR`: a newer model written into DIR (what `swapcam enroll` does) reaches a connected
    peer between two frames; the call goes on (no renegotiation) and the page is told."""
    import os
    import shutil

    from tests._live_fixtures import colour_shift_model

    folder = tmp_path / "models"
    folder.mkdir()
    red = colour_shift_model(tmp_path / "red.onnx", size=64, offset=(0.3, -0.2, -0.2))
    blue = colour_shift_model(tmp_path / "blue.onnx", size=64, offset=(-0.2, -0.2, 0.3))
    shutil.copy(red, folder / "me-0001.onnx")
    factory = srv.PipelineFactory.open(folder, None, "cpu", 1)
    assert factory.swappers["a2b"].path == folder / "me-0001.onnx"
    server = srv.SwapServer(
        factory, srv.ServeConfig(ice_addresses=LOOPBACK, stats_interval_s=0.25), model_folder=str(folder)
    )

    async def scenario():
        async with serving(server) as url:
            client = await connect(url, clip.frames)
            await wait_for(lambda: client.result.frames >= 5, 40, "5 swapped frames back")
            peer = next(iter(server.peers.values()))
            newer = folder / "me-0002.onnx"
            shutil.copy(blue, newer)
            later = newer.stat().st_mtime + 5
            os.utime(newer, (later, later))
            await wait_for(
                lambda: peer.video.worker.processor is not None and peer.video.worker.processor.swapper.path == newer,
                20,
                "the peer's processor to use the newer model",
            )
            before = client.result.frames
            await wait_for(lambda: client.result.frames >= before + 5, 20, "frames after the hot swap")
            assert peer.pc.connectionState == "connected" and len(server.peers) == 1
            assert any(m.get("type") == "model" and m.get("model") == "me-0002.onnx" for m in client.messages)
            await client.close()

    asyncio.run(scenario())


def test_web_enrolment_gates_faces_and_reports_a_failed_training(tmp_path, clip, portrait_landmarks):
    """realtime.webrtc.enrol without a browser: rejected faces are counted by reason, a capture with no usable face
    is an error the page can show, and a failing `swapcam enroll` subprocess surfaces its one-line error."""
    import time as _time

    from realtime.types import Face
    from realtime.webrtc.enrol import TRAINING_LOCK, WebEnrolment

    lm = [clip_landmarks(portrait_landmarks["astronaut"], t) for t in clip.transforms]
    empty = WebEnrolment(tmp_path / "empty", capture_seconds=60)
    dark = (clip.frames[0] * 0.1).astype(np.uint8)
    empty.observe(dark, [Face(lm[0], lm[0])])
    empty.observe(clip.frames[1], [])
    assert empty.poll()["rejected"] == {"too dark": 1, "no face": 1} and empty.state == "capturing"
    empty.train()
    assert empty.state == "error" and "no usable face" in empty.poll()["message"]

    bad = WebEnrolment(tmp_path / "bad", capture_seconds=60, enroll_args=("--target", str(tmp_path / "nobody")))
    for frame, points in zip(clip.frames, lm, strict=True):
        bad.observe(frame, [Face(points, points)])
    assert bad.accepted >= 50 and bad.written >= 5
    bad.train()
    assert bad.state == "training" and TRAINING_LOCK.locked()
    deadline = _time.monotonic() + 120
    while bad.poll()["state"] == "training" and _time.monotonic() < deadline:
        _time.sleep(0.2)
    message = bad.poll()
    assert message["state"] == "error" and "nobody" in message["message"], message
    assert not TRAINING_LOCK.locked()  # the next enrolment may train


def test_web_enrolment_full_meter_still_waits_for_enough_faces(tmp_path, clip, portrait_landmarks):
    """A head that fills the coverage meter at once must not end the capture before MIN_ACCEPTED faces: fewer
    leave `swapcam enroll` short of usable faces after de-duplication (a quick mover's enrolment used to fail)."""
    import itertools

    from realtime.types import Face
    from realtime.webrtc.enrol import MIN_ACCEPTED, WebEnrolment

    lm = [clip_landmarks(portrait_landmarks["astronaut"], t) for t in clip.transforms]
    enrolment = WebEnrolment(tmp_path / "quick", capture_seconds=600)
    enrolment.meter.fraction = lambda: 1.0  # type: ignore[method-assign]  # every pose and expression seen
    started: list[int] = []
    enrolment.train = lambda: started.append(enrolment.accepted)  # type: ignore[method-assign]
    for frame, points in itertools.islice(itertools.cycle(zip(clip.frames, lm, strict=True)), 4 * MIN_ACCEPTED):
        enrolment.observe(frame, [Face(points, points)])
        if started:
            break
    assert started and started[0] == MIN_ACCEPTED, (started, enrolment.accepted, enrolment.poll()["rejected"])


def test_web_enrolment_writes_only_faces_the_faceset_will_keep(tmp_path, clip, portrait_landmarks):
    """A still head (or a fake camera looping a short clip) gives near-duplicates, which `swapcam enroll`'s faceset
    drops (a CI run captured 16 frames and enroll kept 9): the capture counts and writes only distinct faces, by the
    faceset's own rule (realtime.coverage.NearDuplicates), so `written` is what enroll will have."""
    from realtime.coverage import NearDuplicates
    from realtime.types import Face
    from realtime.webrtc.enrol import WRITE_EVERY, WebEnrolment

    lm = [clip_landmarks(portrait_landmarks["astronaut"], t) for t in clip.transforms]
    still = WebEnrolment(tmp_path / "still", capture_seconds=600)
    for _ in range(10 * WRITE_EVERY):
        still.observe(clip.frames[0], [Face(lm[0], lm[0])])
    assert still.accepted == 10 * WRITE_EVERY and still.written == 1
    assert still.poll()["rejected"] == {"near-duplicate": 10 - 1}
    moving = WebEnrolment(tmp_path / "moving", capture_seconds=600)  # a slowly turning head: 2 frames apart at 30 fps
    for frame, points in zip(clip.frames, lm, strict=True):
        moving.observe(frame, [Face(points, points)])
    candidates = len(clip.frames) // WRITE_EVERY
    assert 8 <= moving.written < candidates, moving.poll()["rejected"]  # measured: 13 of 30
    assert moving.poll()["rejected"] == {"near-duplicate": candidates - moving.written}
    # the rule itself: a crop equal to one of the last DEDUP_WINDOW kept is a duplicate, a changed one is not
    rule = NearDuplicates()
    crop = clip.frames[0][100:228, 200:328]
    assert rule.keep(crop) and not rule.keep(crop.copy())
    assert rule.keep(255 - crop) and NearDuplicates(threshold=0).keep(crop)


def test_web_enrolment_runs_over_time_until_it_has_enough_faces(tmp_path, clip, portrait_landmarks):
    """capture_seconds up with fewer faces written than `swapcam enroll` needs (a slow worker: a CI run once wrote 8
    in 8 s): the capture goes on until MIN_WRITTEN, or until OVERTIME x capture_seconds with whatever it has."""
    import itertools
    import time as _time

    from realtime.types import Face
    from realtime.webrtc.enrol import MIN_WRITTEN, OVERTIME, WRITE_EVERY, WebEnrolment

    lm = [clip_landmarks(portrait_landmarks["astronaut"], t) for t in clip.transforms]
    # every 2nd frame, looped (as a fake camera loops its clip): 15 candidates a loop, more than the near-duplicate
    # window, so each loop writes again
    faces = itertools.cycle(list(zip(clip.frames, lm, strict=True))[::2])
    slow = WebEnrolment(tmp_path / "slow", capture_seconds=1.0)  # overtime until 3 s
    started: list[int] = []
    slow.train = lambda: started.append(slow.written)  # type: ignore[method-assign]
    _time.sleep(1.01)  # the capture time is up before the first face
    for frame, points in itertools.islice(faces, 4 * WRITE_EVERY * MIN_WRITTEN):
        slow.observe(frame, [Face(points, points)])
        if started:
            break
    assert started == [MIN_WRITTEN], (started, slow.written, slow.poll()["rejected"])

    stalled = WebEnrolment(tmp_path / "stalled", capture_seconds=0.05)
    started.clear()
    stalled.train = lambda: started.append(stalled.written)  # type: ignore[method-assign]
    frame, points = next(faces)
    stalled.observe(frame, [Face(points, points)])
    assert started == []  # time is up but one face is not enough: still capturing
    _time.sleep(OVERTIME * 0.05)
    frame, points = next(faces)
    stalled.observe(frame, [Face(points, points)])
    assert started == [1]  # ... until the overtime is up too: enroll then says what is missing
