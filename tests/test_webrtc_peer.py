"""One peer's media path with real aiortc peers over loopback (no browser): overdue audio is dropped rather than sent
late, frames over MAX_SIDE are scaled down before the swap, the swap direction switches over the control channel
(realtime.webrtc.client against a real server with the shipped demo models), and a switch that raises in the frame
thread is refused in one line while the call goes on; a peer's own model runs on one CPU thread.
"""

from __future__ import annotations

import asyncio
import statistics

import numpy as np
import pytest

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from realtime import upscale  # noqa: E402
from realtime.webrtc import client as wc  # noqa: E402
from realtime.webrtc.ice import ice_addresses  # noqa: E402
from realtime.webrtc.peer import OWN_MODEL_THREADS, PeerOptions, open_own_model  # noqa: E402
from realtime.webrtc.server import ServeConfig, SwapServer  # noqa: E402
from realtime.webrtc.tracks import AUDIO_MAX_LATE_S, MAX_SIDE, DelayedAudioTrack, frame_to_bgr  # noqa: E402
from tests._webrtc_fixtures import (  # noqa: E402
    LOOPBACK,
    clip_landmarks,
    demo_factory,
    face_regions,
    region_diff,
    serving,
    wait_for,
)


@pytest.fixture(scope="module")
def factory():
    factory = demo_factory()
    assert set(factory.directions) == {"a2b", "b2a"}  # the shipped demo model, both ways
    return factory


def make_server(factory, **config) -> SwapServer:
    return SwapServer(factory, ServeConfig(ice_addresses=LOOPBACK, stats_interval_s=0.25, **config))


async def loopback_pair(track):
    """A sender peer connection with ``track`` and a receiving one, connected over loopback; returns
    (sender, receiver, the receiver's remote track)."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    received: list = []
    receiver.on("track", received.append)
    sender.addTrack(track)
    with ice_addresses(LOOPBACK):
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)
    assert received, "the receiver got no track"
    return sender, receiver, received[0]


# ----------------------------------------------------------------------------------------------------- audio
@pytest.mark.slow
def test_overdue_audio_is_dropped_not_sent_late():
    """A sender that stalls (CPU starved) finds a backlog of microphone frames. Sending them all would make the
    audio late for good; what is more than AUDIO_MAX_LATE_S past its due time is dropped, and the frame it gets
    is due (within the tolerance), so sound stays with the picture."""
    target = 0.05

    async def scenario():
        sender, receiver, remote = await loopback_pair(wc.make_tone_track())
        delayed = DelayedAudioTrack(remote, lambda: target)
        try:
            for _ in range(50):  # 1 s taken as it comes: every frame leaves on time, none is dropped
                await asyncio.wait_for(delayed.recv(), 5)
            paced = [applied - due for _, applied, due in delayed.applied]
            assert statistics.median(paced) == pytest.approx(0.0, abs=0.01), paced
            dropped_paced = delayed.dropped
            assert dropped_paced <= 2  # a scheduling hiccup on a busy machine, at most

            await asyncio.sleep(0.6)  # the stall: ~30 frames arrive meanwhile, the oldest 0.6 s ago
            await delayed.recv()
            _, applied, due = delayed.applied[-1]
            assert applied - due <= AUDIO_MAX_LATE_S + 0.03, f"sent {1000 * (applied - due):.0f} ms late"
            # (0.6 - 0.05 - 0.12) s of overdue frames at 20 ms each: ~21 dropped
            assert delayed.dropped - dropped_paced >= 15, delayed.dropped

            for _ in range(25):  # and afterwards the frames leave on time again
                await asyncio.wait_for(delayed.recv(), 5)
            late = [applied - due for _, applied, due in list(delayed.applied)[-20:]]
            assert max(late) <= AUDIO_MAX_LATE_S, late
        finally:
            delayed.stop()
            await sender.close()
            await receiver.close()

    asyncio.run(scenario())


# ------------------------------------------------------------------------------------------------- frame size
def test_frame_to_bgr_scales_frames_over_max_side_down():
    import av

    def frame(width, height):
        return av.VideoFrame.from_ndarray(np.full((height, width, 3), 128, np.uint8), format="bgr24")

    assert frame_to_bgr(frame(1920, 1080)).shape == (720, 1280, 3)
    assert frame_to_bgr(frame(1080, 1920)).shape == (1280, 720, 3)  # portrait: the longest side counts
    assert frame_to_bgr(frame(2000, 1002)).shape == (640, 1280, 3)  # even sides (yuv420p), aspect kept
    assert frame_to_bgr(frame(MAX_SIDE, 720)).shape == (720, MAX_SIDE, 3)  # at the limit: untouched
    assert frame_to_bgr(frame(640, 480)).shape == (480, 640, 3)


@pytest.mark.slow
def test_a_frame_over_max_side_is_scaled_down_before_the_swap(factory):
    """A client sending 1920x1080 gets 1280x720 back: the processor worked on the smaller frame (its output is its
    input's size), and found and swapped the face in it."""
    from realtime.samples import synthetic_clip

    clip = synthetic_clip("astronaut", n_frames=10, size=(1920, 1080), fps=30.0, seed=1)

    async def scenario():
        server = make_server(factory)
        async with serving(server) as url:
            client = wc.ClientPeer(clip.frames, fps=5.0, audio=False, ice_addresses=LOOPBACK)
            await client.connect(url)
            try:
                peer = next(iter(server.peers.values()))
                await wait_for(lambda: client.result.frames >= 3, 60, "3 frames back from 1920x1080 input")
                assert client.result.frame_size == (1280, 720)
                processor = peer.video.worker.processor
                assert processor.last_faces, "no face found in the scaled-down frame"
                # The landmarks are in the scaled frame's pixels: all inside 1280x720.
                assert processor.last_faces[0].landmarks[:, 0].max() < 1280
                assert processor.last_faces[0].landmarks[:, 1].max() < 720
                assert peer.video.stats.errors == 0
            finally:
                await client.close()

    asyncio.run(scenario())


# -------------------------------------------------------------------------------------------- swap direction
@pytest.mark.slow
def test_swap_direction_switches_over_the_control_channel(factory, portrait_landmarks):
    from realtime.samples import synthetic_clip

    clip = synthetic_clip("astronaut", n_frames=30, size=(640, 480), fps=30.0, seed=2)

    async def scenario():
        server = make_server(factory)
        async with serving(server) as url:
            client = wc.ClientPeer(clip.frames, audio=False, keep=200, options={"label": False}, ice_addresses=LOOPBACK)
            answer = await client.connect(url)
            try:
                assert answer["directions"] == ["a2b", "b2a"] and answer["options"]["direction"] == "a2b"
                peer = server.peers[answer["peer_id"]]
                await wait_for(lambda: len(client.kept) >= 30, 40, "30 a2b frames")
                assert peer.video.worker.processor.swapper is factory.swappers["a2b"]
                a2b_frames = dict(client.kept)

                client.send({"type": "options", "direction": "x2y"})  # not a direction this server has
                await wait_for(lambda: client.replies("error"), 5, "an error reply")
                assert "x2y" in client.replies("error")[-1]["message"]
                assert peer.options.direction == "a2b"

                client.send({"type": "options", "direction": "b2a"})
                await wait_for(lambda: client.replies("options"), 5, "the options reply")
                assert client.replies("options")[-1]["options"] == {
                    **PeerOptions().to_json(),
                    "direction": "b2a",
                    "label": False,
                }
                assert peer.options == PeerOptions(direction="b2a", label=False)
                await wait_for(
                    lambda: peer.video.worker.processor.swapper is factory.swappers["b2a"],
                    5,
                    "the peer's processor to use the b2a model",
                )
                await asyncio.sleep(0.5)  # frames in flight were swapped a2b
                client.kept.clear()
                await wait_for(lambda: len(client.kept) >= 30, 40, "30 b2a frames")
                return a2b_frames, dict(client.kept)
            finally:
                await client.close()

    a2b_frames, b2a_frames = asyncio.run(scenario())
    # The picture changed with the model: the face differs between the two directions, the background does not.
    landmarks = [clip_landmarks(portrait_landmarks["astronaut"], t) for t in clip.transforms]
    by_index_a2b = {i % len(clip.frames): image for i, image in a2b_frames.items()}
    face_d, back_d = [], []
    for frame_id, image in b2a_frames.items():
        index = frame_id % len(clip.frames)
        before = by_index_a2b.get(index)
        if before is None:
            continue
        inner, background = face_regions(landmarks[index], image.shape[:2])
        face_d.append(region_diff(image, before, inner))
        back_d.append(region_diff(image, before, background))
    assert len(face_d) >= 3, "too few frames of the same clip index before and after"
    assert statistics.median(face_d) > 3 * statistics.median(back_d) and statistics.median(face_d) > 8, (face_d, back_d)


# ----------------------------------------------------------------------------------------------- failures stay local
@pytest.mark.slow
def test_a_switch_that_raises_is_refused_and_the_call_goes_on(factory, tmp_path, monkeypatch):
    from realtime.samples import synthetic_clip

    broken = tmp_path / "espcn_x2.onnx"  # the learned upscaler (sharpen espcn) does not load
    broken.write_bytes(b"not a model")
    monkeypatch.setattr(upscale, "DEFAULT_UPSCALER", broken)
    clip = synthetic_clip("astronaut", n_frames=30, size=(640, 480), fps=30.0, seed=2)

    async def scenario():
        server = make_server(factory)
        async with serving(server) as url:
            client = wc.ClientPeer(clip.frames, audio=False, options={"label": False}, ice_addresses=LOOPBACK)
            answer = await client.connect(url)
            try:
                peer = server.peers[answer["peer_id"]]
                await wait_for(lambda: client.result.frames >= 5, 40, "5 swapped frames")
                client.send({"type": "options", "sharpen": "espcn"})
                await wait_for(lambda: client.replies("error"), 20, "the error reply")
                (error,) = client.replies("error")
                assert error["message"].startswith("sharpen=espcn not applied") and "\n" not in error["message"]
                assert broken.name in error["message"], error
                await wait_for(lambda: len(client.replies("options")) >= 2, 5, "the options in force")
                assert client.replies("options")[-1]["options"]["sharpen"] == PeerOptions().sharpen
                before = client.result.frames
                await wait_for(lambda: client.result.frames >= before + 5, 20, "frames after the refused switch")
                worker = peer.video.worker
                assert worker.error is None and worker.processor.options.sharpen == PeerOptions().sharpen
                assert peer.options.sharpen == PeerOptions().sharpen and peer.pc.connectionState == "connected"
                client.send({"type": "options", "sharpen": "unsharp"})  # the next switch works
                await wait_for(lambda: worker.processor.options.sharpen == "unsharp", 10, "sharpen=unsharp")
                assert len(client.replies("error")) == 1
            finally:
                await client.close()

    asyncio.run(scenario())


def test_a_peers_own_model_runs_on_one_cpu_thread():
    """ "Use my face": the peer's own model shares the server's cores with every peer's frames: one onnxruntime
    intra-op thread, on the CPU, warmed up before it is handed over."""
    from models.contract import demo_model_path

    swapper = open_own_model(demo_model_path("a2b"))
    opts = swapper.session.get_session_options()
    assert OWN_MODEL_THREADS == 1 and opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert swapper.session.get_providers() == ["CPUExecutionProvider"]
