"""The page's "use my face" (realtime.webrtc.enrol) with real aiortc peers over loopback and the real pipeline.

What must hold: a second enrolment switches this peer to its new model; control messages on an enrolled peer keep
its running means (no model swap when the model did not change); a capture (observer) that raises fails the
enrolment, not the call; cancel does not stall the event loop (every peer's media) while `swapcam enroll` stops;
a training that cannot start, or a capture video that cannot be written, is one line on the page; the user's face
video and training run are removed once the model is built and everything when the peer leaves, and what a crashed
server left is swept when the next one starts, unless --keep-enrolments.

`swapcam enroll` itself (minutes of training; tested in test_enroll.py and, through a browser, in
test_webrtc_browser.py) is stood in for by a small Python subprocess that leaves what a finished run leaves: its
faceset and run folders, a model, the status file that says "done".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from models.contract import demo_model_path  # noqa: E402
from realtime.types import Face  # noqa: E402
from realtime.webrtc import client as wc  # noqa: E402
from realtime.webrtc import enrol  # noqa: E402
from realtime.webrtc import peer as wp  # noqa: E402
from realtime.webrtc import server as srv  # noqa: E402
from realtime.webrtc.enrol import WebEnrolment  # noqa: E402
from tests._webrtc_fixtures import LOOPBACK, clip_landmarks, demo_factory, serving, wait_for  # noqa: E402

# `swapcam enroll` as far as the server can see it: the run's folders, a model, "done" in the status file
FINISHED_TRAINER = """
import json, pathlib, shutil, sys
model, out, status = map(pathlib.Path, sys.argv[1:4])
for part in ("faceset", "run"):
    (out / part).mkdir(exist_ok=True)
    (out / part / "face.png").write_bytes(b"not really")
target = out / ("swap-" + model.stem + ".onnx")
shutil.copy(model, target)
status.write_text(json.dumps({"stage": "done", "model": str(target)}))
"""
# a `swapcam enroll` that takes its time to stop (the real one saves a checkpoint and exports on SIGTERM)
SLOW_TO_STOP = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("training", flush=True)
time.sleep(60)
"""


@pytest.fixture(scope="module")
def clip():
    from realtime.samples import synthetic_clip

    return synthetic_clip("astronaut", n_frames=40, size=(640, 480), fps=30.0, seed=3)


@pytest.fixture(scope="module")
def factory(clip):
    factory = demo_factory()
    processor = factory.create(wp.PeerOptions())  # process-wide thread pools start here, not in a test
    processor.process(clip.frames[0])
    processor.close()
    return factory


@pytest.fixture
def models(tmp_path) -> tuple[Path, Path]:
    """Two models a user's enrolment could produce (copies of the shipped ones: re-centring rt128, as enroll's)."""
    folder = tmp_path / "models"
    folder.mkdir()
    return (
        Path(shutil.copy(demo_model_path("a2b"), folder / "first.onnx")),
        Path(shutil.copy(demo_model_path("b2a"), folder / "second.onnx")),
    )


def trainer(monkeypatch, *commands: list[str]) -> None:
    """Each enrolment's training subprocess, in turn (instead of `swapcam enroll`); FOLDER and STATUS filled in."""
    queue = list(commands)

    def command(self, status: Path) -> list[str]:
        fill = {"FOLDER": str(self.folder), "STATUS": str(status)}
        return [fill.get(part, part) for part in queue.pop(0)]

    monkeypatch.setattr(WebEnrolment, "enroll_command", command)


def finished(model: Path) -> list[str]:
    return [sys.executable, "-c", FINISHED_TRAINER, str(model), "FOLDER", "STATUS"]


def make_server(factory, enroll_dir: Path, **config) -> srv.SwapServer:
    return srv.SwapServer(
        factory, srv.ServeConfig(ice_addresses=LOOPBACK, stats_interval_s=0.2, enroll_dir=str(enroll_dir), **config)
    )


@contextlib.asynccontextmanager
async def one_peer(server, clip):
    """The server serving, one client peer connected with ``clip`` as its camera: (client, the server's peer)."""
    async with serving(server) as url:
        client = await connect(url, clip)
        try:
            yield client, next(iter(server.peers.values()))
        finally:
            await client.close()


async def connect(url: str, clip) -> wc.ClientPeer:
    # there and back: no jump where the clip loops (a jump starts a new face track, and a new running mean)
    client = wc.ClientPeer(
        clip.frames + clip.frames[::-1], fps=15.0, audio=False, options={"label": False}, ice_addresses=LOOPBACK
    )
    await client.connect(url)
    await wait_for(lambda: client.result.frames >= 3, 40, "3 swapped frames back")
    return client


async def capture_and_train(client: wc.ClientPeer, peer: wp.PeerSession) -> WebEnrolment:
    """The page's "use my face", then "train now" as soon as a face is in the capture."""
    client.send({"type": "enroll", "action": "start"})
    await wait_for(lambda: peer.enrolment is not None and peer.enrolment.written >= 1, 30, "a face captured")
    enrolment = peer.enrolment
    assert enrolment is not None
    client.send({"type": "enroll", "action": "train"})
    return enrolment


def states(client: wc.ClientPeer) -> list[dict]:
    return client.replies("enroll")


def swapper_path(peer: wp.PeerSession) -> Path | None:
    processor = peer.video.worker.processor if peer.video is not None else None
    return None if processor is None else processor.swapper.path


def mean_counts(peer: wp.PeerSession) -> list[int]:
    """Frames in each tracked face's running mean code (realtime.recentre)."""
    processor = peer.video.worker.processor
    return [track.state.latent_count for track in processor._temporal.tracks]


# ------------------------------------------------------------------------------------------- the model it uses
@pytest.mark.slow
def test_a_second_enrolment_switches_to_its_model(factory, clip, models, tmp_path, monkeypatch):
    """Enrol, then enrol again: the peer swaps with the second model (it used to say "ready" and keep the first),
    and the first enrolment's folder, whose model is no longer used, is removed."""
    first, second = models
    trainer(monkeypatch, finished(first), finished(second))
    server = make_server(factory, tmp_path / "enrol")

    async def scenario():
        async with serving(server) as url:
            client = await connect(url, clip)
            peer = next(iter(server.peers.values()))
            try:
                done = []
                for model in (first, second):
                    enrolment = await capture_and_train(client, peer)
                    name = f"swap-{model.stem}.onnx"
                    await wait_for(lambda n=name: any(m.get("model") == n for m in states(client)), 20, f"{name} ready")
                    await wait_for(
                        lambda n=name: swapper_path(peer) is not None and swapper_path(peer).name == n,
                        10,
                        f"the peer to swap with {name}",
                    )
                    done.append(enrolment)
                ready = [m for m in states(client) if m["state"] == "ready"]
                assert [m["model"] for m in ready] == ["swap-first.onnx", "swap-second.onnx"]
                assert all(m.get("switched") for m in ready), ready
                # its model was replaced: nothing of it is kept (deleted in a thread)
                await wait_for(lambda: not done[0].folder.exists(), 5, "the first enrolment's folder to go")
                assert done[1].folder.exists()  # the model in use
                before = client.result.frames
                await wait_for(lambda: client.result.frames >= before + 3, 20, "frames after the second switch")
            finally:
                await client.close()
            await wait_for(lambda: not server.peers, 10, "the peer to leave")
            assert not done[1].folder.exists()  # the peer left: its enrolment went with it

    asyncio.run(scenario())


@pytest.mark.slow
def test_control_messages_keep_an_enrolled_peers_means(factory, clip, models, tmp_path, monkeypatch):
    """An options message on an enrolled peer applies the switch without swapping the model out and back in: the
    face's running mean code (re-centring) goes on counting instead of starting over at every message."""
    first, _ = models
    trainer(monkeypatch, finished(first))
    server = make_server(factory, tmp_path / "enrol")

    async def scenario():
        async with one_peer(server, clip) as (client, peer):
            await capture_and_train(client, peer)
            await wait_for(
                lambda: swapper_path(peer) is not None and swapper_path(peer).name == "swap-first.onnx",
                30,
                "the peer to swap with its own model",
            )
            own = peer.video.worker.processor.swapper
            await wait_for(lambda: max(mean_counts(peer), default=0) >= 8, 30, "8 frames in the running mean")
            for sharpen in ("none", "match"):
                counted = max(mean_counts(peer))
                client.send({"type": "options", "sharpen": sharpen})
                await wait_for(
                    lambda s=sharpen: peer.video.worker.processor.options.sharpen == s, 10, f"sharpen={sharpen}"
                )
                assert peer.video.worker.processor.swapper is own
                assert max(mean_counts(peer), default=0) >= counted, "the running mean started over"

    asyncio.run(scenario())


# ------------------------------------------------------------------------------------------- failures stay local
@pytest.mark.slow
def test_a_capture_that_raises_fails_the_enrolment_not_the_call(factory, clip, tmp_path, monkeypatch):
    def broken(self, image, faces):
        raise RuntimeError("capture exploded")

    monkeypatch.setattr(WebEnrolment, "observe", broken)
    server = make_server(factory, tmp_path / "enrol")

    async def scenario():
        async with one_peer(server, clip) as (client, peer):
            client.send({"type": "enroll", "action": "start"})
            await wait_for(lambda: any(m["state"] == "error" for m in states(client)), 20, "the enrolment error")
            (error,) = [m for m in states(client) if m["state"] == "error"]
            assert "capture exploded" in error["message"] and "\n" not in error["message"], error
            before = client.result.frames
            await wait_for(lambda: client.result.frames >= before + 5, 20, "frames after the failed capture")
            assert peer.pc.connectionState == "connected" and peer.id in server.peers
            assert peer.video.worker.error is None and peer.video.worker.observer is None
            assert not any(m.get("type") == "error" for m in client.messages), client.messages

    asyncio.run(scenario())


@pytest.mark.slow
def test_a_training_that_cannot_start_is_one_line_on_the_page(factory, clip, tmp_path, monkeypatch):
    """An OSError starting `swapcam enroll` (no such program, no permission, no processes left) is said on the
    page; the call goes on and the training lock is free for the next enrolment."""
    trainer(monkeypatch, [str(tmp_path / "no-such-python"), "-m", "realtime.cli", "enroll"])
    server = make_server(factory, tmp_path / "enrol")

    async def scenario():
        async with one_peer(server, clip) as (client, peer):
            await capture_and_train(client, peer)
            await wait_for(lambda: any(m["state"] == "error" for m in states(client)), 10, "the enrolment error")
            (error,) = [m for m in states(client) if m["state"] == "error"]
            assert "could not start" in error["message"] and "no-such-python" in error["message"], error
            assert "\n" not in error["message"]
            assert not enrol.TRAINING_LOCK.locked()
            before = client.result.frames
            await wait_for(lambda: client.result.frames >= before + 3, 20, "frames after the failed start")
            assert peer.id in server.peers

    asyncio.run(scenario())


@pytest.mark.slow
def test_cancel_does_not_stall_the_event_loop(factory, clip, tmp_path, monkeypatch):
    """Cancel while `swapcam enroll` takes seconds to stop: the event loop, which carries every peer's media, is
    never held for more than 100 ms (it used to wait for the subprocess, up to 10 s); the process is still stopped
    (killed after STOP_TIMEOUT_S) and the training lock freed."""
    monkeypatch.setattr(enrol, "STOP_TIMEOUT_S", 1.5)
    trainer(monkeypatch, [sys.executable, "-c", SLOW_TO_STOP])
    server = make_server(factory, tmp_path / "enrol")

    async def probe(lags: list[float]) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    async def scenario():
        async with one_peer(server, clip) as (client, peer):
            enrolment = await capture_and_train(client, peer)
            log_file = enrolment.folder / enrol.LOG_FILE
            await wait_for(lambda: log_file.is_file() and "training" in log_file.read_text(), 20, "training")
            process = enrolment._proc
            lags: list[float] = []
            ticker = asyncio.ensure_future(probe(lags))
            before = client.result.frames
            client.send({"type": "enroll", "action": "cancel"})
            await wait_for(lambda: any(m["state"] == "cancelled" for m in states(client)), 5, "cancelled")
            await asyncio.sleep(2.5)  # the process stops meanwhile (killed after STOP_TIMEOUT_S)
            ticker.cancel()
            assert max(lags) < 0.1, f"the event loop was held for {1000 * max(lags):.0f} ms"
            assert client.result.frames > before  # media went on
            assert process.poll() is not None and not enrol.TRAINING_LOCK.locked()

    asyncio.run(scenario())


# ------------------------------------------------------------------------------------------- without a peer
def test_a_capture_video_that_cannot_be_written_is_an_error(tmp_path, clip, portrait_landmarks):
    folder = tmp_path / "enrolment"
    (folder / enrol.CAPTURE_FILE).mkdir(parents=True)  # a folder where the video should go: the writer cannot open
    enrolment = WebEnrolment(folder, capture_seconds=60)
    for frame, transform in zip(clip.frames[:4], clip.transforms[:4], strict=True):
        points = clip_landmarks(portrait_landmarks["astronaut"], transform)
        enrolment.observe(frame, [Face(points, points)])
    message = enrolment.poll()
    assert message["state"] == "error" and enrolment.written == 0, message
    assert enrol.CAPTURE_FILE in message["message"] and "\n" not in message["message"]


def test_enrol_data_is_removed_once_the_model_is_built_unless_kept(
    tmp_path, clip, portrait_landmarks, models, monkeypatch
):
    """Once the model is built the face video and the training run go (the model stays while the peer uses it);
    close (the peer leaves) removes the rest. With keep (--keep-enrolments) all of it stays."""
    first, _ = models
    trainer(monkeypatch, finished(first), finished(first))
    points = clip_landmarks(portrait_landmarks["astronaut"], clip.transforms[0])
    for keep in (False, True):
        enrolment = WebEnrolment(tmp_path / f"keep-{keep}", capture_seconds=60, keep=keep)
        enrolment.observe(clip.frames[0], [Face(points, points)])
        assert enrolment.written == 1 and (enrolment.folder / enrol.CAPTURE_FILE).exists()
        enrolment.train()
        deadline = time.monotonic() + 20
        while enrolment.poll()["state"] == "training" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert enrolment.state == "ready" and enrolment.model is not None, enrolment.poll()
        left = {p.name for p in enrolment.folder.iterdir()}
        if keep:
            assert {enrol.CAPTURE_FILE, "faceset", "run", "swap-first.onnx"} <= left, left
        else:
            assert left == {"swap-first.onnx"}, left
        enrolment.close()
        assert enrolment.folder.exists() == keep


def test_serve_keep_enrolments_flag_reaches_each_enrolment(tmp_path):
    parser = argparse.ArgumentParser()
    srv.add_arguments(parser)
    for extra, keep in (([], False), (["--keep-enrolments"], True)):
        args = parser.parse_args(["--enroll-dir", str(tmp_path / "enrol"), *extra])
        config = srv.config_from_args(args)
        assert config.keep_enrolments is keep
        new = srv.SwapServer(_NoModels(), config)._enrolment_factory()
        assert new is not None and new("peer1").keep is keep


class _NoModels:
    directions = ("a2b",)

    def create(self, options):
        raise AssertionError("no peer here")

    def configure(self, processor, options, swapper=None):
        raise AssertionError("no peer here")


def test_enrolments_a_crashed_server_left_are_swept_at_start_unless_kept(tmp_path):
    """A server killed mid-enrolment leaves a folder with someone's face video; the next server start removes it (only
    folders named as the server names enrolments: anything else in --enroll-dir stays)."""
    from aiohttp import web

    enroll_dir = tmp_path / "enrol"
    left = enroll_dir / "20261205-170301-0123456789ab-1"  # as SwapServer names them: time, peer id, number
    mine = enroll_dir / "my-notes"
    for keep in (True, False):
        for folder in (left, mine):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / enrol.CAPTURE_FILE).write_bytes(b"a face")

        async def start_and_stop(keep=keep):
            server = srv.SwapServer(_NoModels(), srv.ServeConfig(enroll_dir=str(enroll_dir), keep_enrolments=keep))
            runner = web.AppRunner(server.app())
            await runner.setup()  # the app's start-up
            await runner.cleanup()

        asyncio.run(start_and_stop())
        assert left.exists() == keep and mine.exists(), keep
