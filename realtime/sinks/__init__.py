"""Where swapped frames go: virtual camera (pyvirtualcam), window (OpenCV), video file (MP4 via PyAV), null.

Every sink: ``send(image) -> bool`` (False: the user closed it, stop), idempotent ``close()``, context manager.
``open_sink(spec, width, height, fps)`` turns a ``--sink`` value into one: ``vcam`` / ``vcam:/dev/video7``,
``window``, ``file:out.mp4``, ``null``.
"""

from __future__ import annotations

from realtime.errors import SwapcamError

SINK_KINDS = ("vcam", "window", "file", "null")


def open_sink(spec: str, width: int, height: int, fps: float = 30.0, **options):
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
        if not arg:
            raise SwapcamError("sink 'file' needs a path: file:out.mp4")
        from realtime.sinks.file import FileSink

        return FileSink(arg, width, height, fps)
    raise SwapcamError(f"sink {spec!r} is not supported; use one of vcam, window, file:PATH.mp4, null")


__all__ = ["open_sink", "SINK_KINDS"]
