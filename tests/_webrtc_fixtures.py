"""Helpers shared by the WebRTC tests (in-process aiortc clients and the headless-Chromium test).

Everything binds 127.0.0.1 only: the HTTP server, and ICE (server and in-process clients gather on loopback only).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable

import cv2
import numpy as np

from realtime.webrtc.ice import LOOPBACK  # noqa: F401 - re-exported for the WebRTC tests


def demo_factory():
    """The real pipeline with the shipped demo models (both directions), one session per direction."""
    from realtime.webrtc.server import PipelineFactory

    return PipelineFactory.open(None, None, "cpu", None)


@contextlib.asynccontextmanager
async def serving(server) -> AsyncIterator[str]:
    """Run ``server`` (a SwapServer) on 127.0.0.1:<free port>; yields the base URL; closes every peer after."""
    from realtime.webrtc.server import start_server

    runner, base_url = await start_server(server, "127.0.0.1")
    try:
        yield base_url
    finally:
        await server.close_all()
        await runner.cleanup()


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    """Poll ``predicate`` until true; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(step)


def face_regions(landmarks: np.ndarray, shape: tuple[int, int], margin: float = 0.45) -> tuple[np.ndarray, np.ndarray]:
    """(inner_face, background) boolean masks for a frame of ``shape`` (h, w) from its 68 iBUG landmarks.

    inner_face: the convex hull of brows, eyes, nose and mouth (where any swap must change the picture).
    background: everything outside the landmark box grown by ``margin`` of its size on each side (where a
    paste-back limited to the face must change nothing)."""
    h, w = shape
    inner = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(inner, cv2.convexHull(landmarks[17:68].astype(np.int32)), 1)
    x0, y0 = landmarks.min(axis=0)
    x1, y1 = landmarks.max(axis=0)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    background = np.ones((h, w), bool)
    background[max(0, int(y0 - my)) : int(y1 + my) + 1, max(0, int(x0 - mx)) : int(x1 + mx) + 1] = False
    return inner.astype(bool), background


def region_diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute difference (0..255, over BGR) of two images inside ``mask``."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)
    return float(diff[mask].mean())


def clip_landmarks(portrait_landmarks: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """The portrait's landmarks carried into a synthetic-clip frame by the clip's ground-truth 3x3 transform."""
    pts = np.hstack([portrait_landmarks, np.ones((len(portrait_landmarks), 1))]) @ transform.T
    return (pts[:, :2] / pts[:, 2:3]).astype(np.float32)


def snapshot_threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def new_threads(before: set[threading.Thread]) -> list[str]:
    """Threads alive now that were not before, except the event loop's default executor (asyncio_N: aiortc
    encodes there via run_in_executor; pooled, idle threads that belong to the loop, not to a peer)."""
    return [
        t.name for t in threading.enumerate() if t not in before and t.is_alive() and not t.name.startswith("asyncio_")
    ]


def native_thread_count() -> int:
    """OS threads of this process (mediapipe's C++ graph threads included), Linux only."""
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else -1
