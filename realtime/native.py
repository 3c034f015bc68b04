"""Native libraries' own logging: the environment variables that quiet them, and a capture of what they still print.

mediapipe (glog), OpenCV's FFmpeg backend and onnxruntime's provider loader write straight to file descriptors 1/2
from C++; Python's logging never sees those lines. ``quiet_native_logs`` is the one place that sets the environment
variables they read; ``captured_native_output`` redirects fds 1/2 around a call that still prints (a session or a
mediapipe graph starting) and keeps the text for ``--verbose``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator

# Read by the native libraries when they first log; setdefault so a user who sets them on purpose wins.
NATIVE_LOG_ENV = {
    "GLOG_minloglevel": "2",  # mediapipe / glog: errors only (no INFO/WARNING start-up lines)
    "OPENCV_FFMPEG_LOGLEVEL": "-8",  # FFmpeg through OpenCV: quiet ("moov atom not found" is said by us, in one line)
    "OPENCV_LOG_LEVEL": "ERROR",  # OpenCV's own [ WARN:0] lines (camera probing)
    # albumentations asks PyPI for a newer version on import (a network call and a warning offline): swapcam never
    # reaches the network at run time
    "NO_ALBUMENTATIONS_UPDATE": "1",
}


def quiet_native_logs() -> None:
    """Set the native loggers' environment variables (idempotent; a value already set is kept)."""
    for name, value in NATIVE_LOG_ENV.items():
        os.environ.setdefault(name, value)


_capture_lock = threading.RLock()


@contextlib.contextmanager
def captured_native_output() -> Iterator[list[str]]:
    """Capture what native code writes to fd 1/2 inside the block; the lines are in the yielded list afterwards.

    onnxruntime's C++ logger ignores set_default_logger_severity for provider-library load errors and mediapipe's
    graph start-up logs before glog's level applies to some calculators, so the file descriptors themselves are
    redirected.
    """
    lines: list[str] = []
    saved: list[tuple[int, int]] = []
    # fds 1/2 belong to the whole process: two threads redirecting at once would restore each other's temp file
    # as stdout/stderr. One capture at a time (re-entrant, so nesting in one thread still works).
    with _capture_lock, tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            for fd in (1, 2):
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
                except OSError:
                    pass
            with contextlib.redirect_stdout(None):
                yield lines
        finally:
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())
