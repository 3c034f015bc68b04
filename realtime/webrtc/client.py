"""A WebRTC client peer that stands in for a browser (tests and ``swapcam bench-webrtc``): it sends a clip and a tone
over real WebRTC (aiortc) to a swapcam server, receives the swapped video and the delayed audio back, and measures
what it saw.

Round trip = the moment a client frame is handed to its encoder -> the moment the swapped frame carrying the same
frame id is decoded back at the client (two encodes, two decodes, the network and the server pipeline). The frame id
is drawn into the picture as a strip of black/white blocks in the top-right corner (background, never the face),
because RTP timestamps are re-based by every hop and cannot be matched end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from realtime.errors import SwapcamError
from realtime.types import Image
from realtime.webrtc.ice import ice_addresses
from realtime.webrtc.peer import CONTROL_CHANNEL

# ------------------------------------------------------------------------------------------------- frame id code
ID_BITS = 12  # ids wrap at 4096 frames (over 2 minutes at 30 fps); only recent ids are ever matched
CHECK_BITS = 4
CODE_BLOCK = 16  # pixels; big blocks survive VP8 at low bitrates
CODE_BITS = ID_BITS + CHECK_BITS


def _checksum(value: int) -> int:
    return (value ^ (value >> 4) ^ (value >> 8) ^ 0b1010) & 0xF


def code_box(width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the id strip: top-right corner, away from the face and from the bottom-right label."""
    return width - CODE_BITS * CODE_BLOCK, 0, width, CODE_BLOCK


def stamp_id(image: Image, frame_id: int) -> Image:
    """A copy of ``image`` with ``frame_id`` (mod 4096) drawn as a 16-block strip in the top-right corner."""
    out = image.copy()
    value = frame_id % (1 << ID_BITS)
    word = (value << CHECK_BITS) | _checksum(value)
    x0, y0, _, y1 = code_box(out.shape[1])
    for bit in range(CODE_BITS):
        on = (word >> (CODE_BITS - 1 - bit)) & 1
        out[y0:y1, x0 + bit * CODE_BLOCK : x0 + (bit + 1) * CODE_BLOCK] = 235 if on else 20
    return out


def read_id(luma: np.ndarray) -> int | None:
    """The frame id from a luma (Y) or grey HxW image, or None if the strip is unreadable (checksum fails)."""
    width = luma.shape[1]
    x0, y0, _, y1 = code_box(width)
    if x0 < 0 or luma.shape[0] < y1:
        return None
    word = 0
    m = CODE_BLOCK // 4  # sample the block centre: edges are smeared by chroma subsampling and the codec
    for bit in range(CODE_BITS):
        bx = x0 + bit * CODE_BLOCK
        centre = luma[y0 + m : y1 - m, bx + m : bx + CODE_BLOCK - m]
        word = (word << 1) | int(centre.mean() > 128)
    value, check = word >> CHECK_BITS, word & 0xF
    return value if _checksum(value) == check else None


# ---------------------------------------------------------------------------------------------- client tracks
def make_clip_track(frames: list[Image], fps: float = 30.0):
    """A video track that plays ``frames`` in a loop at ``fps``, each stamped with its running frame id; it records
    when each id was handed to the encoder (``sent[id] = perf_counter()``)."""
    import av
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    class ClipTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.frames = frames
            self.fps = fps
            self.sent: dict[int, float] = {}
            self.count = 0
            self._due: float | None = None
            self._origin = 0.0
            self._last_pts = -1

        async def recv(self):
            if self.readyState != "live":
                raise MediaStreamError
            now = time.perf_counter()
            if self._due is None:
                self._origin = self._due = now
            else:
                self._due += 1.0 / self.fps  # the next frame's due time (fps may change: the server's rate hint)
                if self._due > now:
                    await asyncio.sleep(self._due - now)
                elif now - self._due > 1.0:  # far behind (a stall): restart the clock instead of bursting
                    self._due = now
            i = self.count
            self.count += 1
            image = stamp_id(self.frames[i % len(self.frames)], i)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            # pts from the capture clock, like a camera: strictly increasing whatever the frame rate does
            frame.pts = max(int(round((self._due - self._origin) * 90000)), self._last_pts + 1)
            self._last_pts = frame.pts
            frame.time_base = fractions.Fraction(1, 90000)
            self.sent[i % (1 << ID_BITS)] = time.perf_counter()
            return frame

    return ClipTrack()


def make_tone_track(frequency: float = 440.0, sample_rate: int = 48000, burst_every: int = 0):
    """A microphone stand-in: a sine tone in 20 ms frames, paced in real time. With ``burst_every`` = N, only every
    Nth frame carries the tone (a click train, silence between) and ``bursts[j]`` records when burst frame j was
    handed to the encoder, so its return can be timed against the video."""
    import av
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    class ToneTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.samples = sample_rate // 50
            self.count = 0
            self.bursts: dict[int, float] = {}
            self._start: float | None = None

        async def recv(self):
            if self.readyState != "live":
                raise MediaStreamError
            if self._start is None:
                self._start = time.perf_counter()
            else:
                wait = self._start + self.count * 0.02 - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            t = (self.count * self.samples + np.arange(self.samples)) / sample_rate
            loud = burst_every <= 0 or self.count % burst_every == 0
            pcm = (0.3 * 32767 * np.sin(2 * np.pi * frequency * t) * loud).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = self.count * self.samples
            frame.time_base = fractions.Fraction(1, sample_rate)
            if burst_every > 0 and loud:
                self.bursts[self.count] = time.perf_counter()
            self.count += 1
            return frame

    return ToneTrack()


# ------------------------------------------------------------------------------------------------ client peer
@dataclass
class PeerResult:
    """What one client saw. ``rtt_ms`` are round trips of frames whose id was read back."""

    frames: int = 0
    matched: int = 0
    audio_frames: int = 0
    rtt_ms: list[float] = field(default_factory=list)
    first_frame_t: float | None = None
    last_frame_t: float | None = None
    frame_size: tuple[int, int] | None = None  # (width, height) of the latest video frame received
    server_stats: dict = field(default_factory=dict)

    def fps(self) -> float:
        if self.first_frame_t is None or self.last_frame_t is None or self.frames < 2:
            return 0.0
        return (self.frames - 1) / max(self.last_frame_t - self.first_frame_t, 1e-6)

    def summary(self) -> dict[str, Any]:
        rtt = sorted(self.rtt_ms)
        return {
            "fps": round(self.fps(), 2),
            "frames": self.frames,
            "matched": self.matched,
            "audio_frames": self.audio_frames,
            "rtt_p50_ms": round(percentile(rtt, 50), 1) if rtt else None,
            "rtt_p95_ms": round(percentile(rtt, 95), 1) if rtt else None,
            "server": {
                k: self.server_stats.get(k) for k in ("fps", "latency_ms", "dropped", "audio_delay_ms", "timings")
            },
        }


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    k = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


class ClientPeer:
    """An in-process browser stand-in: sends a clip (and a tone), receives the swapped video and the audio back."""

    def __init__(
        self,
        frames: list[Image],
        fps: float = 30.0,
        audio: bool = True,
        keep: int = 0,
        options: dict | None = None,
        audio_burst_every: int = 0,
        ice_addresses: tuple[str, ...] | None = None,
    ) -> None:
        """``options``: the peer options sent with the offer; ``keep``: how many matched frames to keep (BGR);
        ``ice_addresses``: gather ICE candidates on these local addresses only (None: aioice's default, which
        never offers 127.0.0.1)."""
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.max_fps = fps
        self.video = make_clip_track(frames, fps)
        self.audio = make_tone_track(burst_every=audio_burst_every) if audio else None
        self.options = options
        self.result = PeerResult()
        self.kept: dict[int, np.ndarray] = {}  # frame id -> received BGR frame (the first ``keep`` matched ones)
        self.keep = keep
        self.messages: list[dict] = []
        self.answer: dict = {}
        self.ice_addresses = ice_addresses
        self._tasks: list[asyncio.Task] = []
        self.pc.addTrack(self.video)
        if self.audio is not None:
            self.pc.addTrack(self.audio)
        self.channel = self.pc.createDataChannel(CONTROL_CHANNEL)
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)

    def _on_message(self, text) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        self.messages.append(message)
        if message.get("type") == "stats":
            self.result.server_stats = message
        elif message.get("type") == "rate":  # the server is overloaded (or recovered): send what it asks for
            self.video.fps = float(message.get("max_fps") or self.max_fps)

    def _on_track(self, track) -> None:
        self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                now = time.perf_counter()
                if track.kind == "audio":
                    self.result.audio_frames += 1
                    continue
                r = self.result
                r.frames += 1
                r.first_frame_t = now if r.first_frame_t is None else r.first_frame_t
                r.last_frame_t = now
                r.frame_size = (frame.width, frame.height)
                planes = frame.to_ndarray(format="yuv420p")  # (h*3/2) x w; the first h rows are luma
                frame_id = read_id(planes[: frame.height])
                if frame_id is not None and frame_id in self.video.sent:
                    r.matched += 1
                    r.rtt_ms.append((now - self.video.sent[frame_id]) * 1000.0)
                    if len(self.kept) < self.keep:
                        self.kept[frame_id] = frame.to_ndarray(format="bgr24")
        except (MediaStreamError, asyncio.CancelledError):
            pass

    async def connect(self, base_url: str, http=None) -> dict:
        """Offer/answer through ``POST base_url/offer`` (with ``http``, an aiohttp ClientSession, or a session of
        its own); returns the answer JSON. SwapcamError if the server refuses the offer."""
        import aiohttp
        from aiortc import RTCSessionDescription

        with ice_addresses(self.ice_addresses):  # gathering happens here, so this is where the filter applies
            await self.pc.setLocalDescription(await self.pc.createOffer())
        body: dict[str, Any] = {"sdp": self.pc.localDescription.sdp, "type": "offer"}
        if self.options is not None:
            body["options"] = self.options
        async with contextlib.AsyncExitStack() as stack:
            if http is None:
                http = await stack.enter_async_context(aiohttp.ClientSession())
            async with http.post(f"{base_url}/offer", json=body) as response:
                answer = await response.json()
                if response.status != 200:
                    raise SwapcamError(f"server refused the offer: {response.status} {answer.get('error')}")
        self.answer = answer
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        return answer

    def send(self, message: dict) -> None:
        """One JSON message over the control channel (see realtime.webrtc.peer for the protocol)."""
        self.channel.send(json.dumps(message))

    def replies(self, kind: str) -> list[dict]:
        """The server's control messages of one type ("options", "error", "stats", "rate", "pong"), oldest first."""
        return [m for m in self.messages if m.get("type") == kind]

    def reset(self) -> None:
        """Forget what was measured so far (after warm-up)."""
        self.result = PeerResult(server_stats=self.result.server_stats)

    async def close(self) -> None:
        for track in (self.video, self.audio):
            if track is not None:
                track.stop()
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)


class SyncProbe:
    """Lip sync as it leaves the server: for a ClientPeer that sends a click train (``audio_burst_every=25``), the time
    from a click's capture to its departure from the server, minus the same for video frames (matched by frame id).
    Both ends run on this process's clock, so no clock sync is involved. Positive: audio leaves later than video."""

    CLICK_RMS = 1500.0  # the clicks are ~7000 RMS (0.3 full scale sine), silence ~0; Opus keeps them far apart

    def __init__(self, peer_session) -> None:
        self.video: list[tuple[int, float]] = []
        self.audio: list[tuple[float, float]] = []
        peer_session.video.probe = self._on_video
        if peer_session.audio is not None:
            peer_session.audio.probe = self._on_audio

    def _on_video(self, frame, t_out: float) -> None:
        # Runs on the event loop for every frame: read only the id strip. The server's frames are bgr24, where
        # the channel mean of the strip stands in for luma (the blocks are black or white).
        if frame.format.name == "bgr24":
            x0, _, _, y1 = code_box(frame.width)
            strip = np.zeros((y1, frame.width), np.uint8)
            strip[:, x0:] = frame.to_ndarray()[:y1, x0:].mean(axis=2)
            frame_id = read_id(strip)
        else:
            frame_id = read_id(frame.to_ndarray(format="gray"))
        if frame_id is not None and len(self.video) < 10_000:
            self.video.append((frame_id, t_out))

    def _on_audio(self, frame, t_out: float) -> None:
        if len(self.audio) < 50_000:
            pcm = frame.to_ndarray().astype(np.float32)
            self.audio.append((t_out, float(np.sqrt(np.mean(pcm * pcm)))))

    def offset(self, client: ClientPeer) -> dict[str, Any] | None:
        sent = client.video.sent
        video = [t - sent[i] for i, t in self.video if i in sent and t > sent[i]]
        bursts = sorted(client.audio.bursts.values()) if client.audio is not None else []
        clicks = []
        for (_, previous), (t, rms) in itertools.pairwise(self.audio):
            if rms > self.CLICK_RMS >= previous:
                before = [b for b in bursts if b <= t]
                if before and t - before[-1] < 0.45:  # clicks every 0.5 s (burst_every=25): the latest one
                    clicks.append(t - before[-1])
        if not video or not clicks:
            return None
        video_ms, audio_ms = statistics.median(video) * 1000, statistics.median(clicks) * 1000
        return {
            "video_ms": round(video_ms, 1),
            "audio_ms": round(audio_ms, 1),
            "offset_ms": round(audio_ms - video_ms, 1),
            "clicks": len(clicks),
            "frames": len(video),
        }
