"""Where swapped frames go: virtual camera (pyvirtualcam), window (OpenCV), video file (MP4 via PyAV), null.

Every sink: ``send(image) -> bool`` (False: the user closed it, stop), idempotent ``close()``, context manager.
``open_sink(spec, width, height, fps)`` turns a ``--sink`` value into one: ``vcam`` / ``vcam:/dev/video7``,
``window``, ``file:out.mp4``, ``null``.
"""

from __future__ import annotations

from realtime.errors import SwapcamError

SINK_KINDS = ("vcam", "window", "file", "null")


def check_sink_spec(spec: str) -> None:
    """Reject a malformed ``--sink`` before the (slow) model and source are opened."""
    kind, _, arg = str(spec).partition(":")
    if kind not in SINK_KINDS:
        raise SwapcamError(f"sink {spec!r} is not supported; use one of vcam, window, file:PATH.mp4, null")
    if kind == "file" and not arg:
        raise SwapcamError("sink 'file' needs a path: file:out.mp4")
    if kind == "file" and not arg.lower().endswith((".mp4", ".mov", ".m4v")):
        raise SwapcamError(f"sink {spec!r}: the file sink writes MP4; use a name ending in .mp4")


def open_sink(spec: str, width: int, height: int, fps: float = 30.0, **options):
    check_sink_spec(spec)
    kind, _, arg = str(spec).partition(":")
    if kind == "null":
        from realtime.sinks.null import NullSink

        return NullSink()
    if kind == "vcam":
        from realtime.sinks.vcam import VirtualCameraSink

        return VirtualCameraSink(width, height, fps, device=arg or None, backend=options.get("vcam_backend"))
    if kind == "window":
        from realtime.sinks.window import WindowSink

        return WindowSink(arg or "swapcam")
    if kind == "file":
        from realtime.sinks.file import FileSink

        return FileSink(arg, width, height, fps)
    raise SwapcamError(f"sink {spec!r} is not supported; use one of vcam, window, file:PATH.mp4, null")


class TeeSink:
    """Sends every frame to several sinks (e.g. the demo's file + window); stops when any of them says stop."""

    def __init__(self, sinks: list) -> None:
        self.sinks = list(sinks)

    def send(self, image) -> bool:
        keep = True
        for sink in self.sinks:
            keep = (sink.send(image) is not False) and keep
        return keep

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def __enter__(self) -> TeeSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["open_sink", "check_sink_spec", "SINK_KINDS", "TeeSink"]
