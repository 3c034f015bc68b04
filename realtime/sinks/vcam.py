"""Virtual camera sink through pyvirtualcam: v4l2loopback on Linux, OBS Virtual Camera on Windows / macOS.

Frames go out as BGR (pyvirtualcam converts to the device's format). The source paces the stream (a camera's own
clock, or the file/synthetic pacer), so ``send`` never sleeps: sleeping here too would add a frame of latency.
"""

from __future__ import annotations

import sys

from realtime.errors import SwapcamError
from realtime.types import Image, check_image

SETUP_HELP = {
    "linux": "load a v4l2loopback device: sudo apt install v4l2loopback-dkms && "
    "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=swapcam",
    "other": "install OBS Studio and start its Virtual Camera once (Tools > Start Virtual Camera)",
}


def setup_help() -> str:
    return SETUP_HELP["linux"] if sys.platform.startswith("linux") else SETUP_HELP["other"]


class VirtualCameraSink:
    def __init__(
        self, width: int, height: int, fps: float = 30.0, device: str | None = None, backend: str | None = None
    ) -> None:
        try:
            import pyvirtualcam
        except ImportError:
            raise SwapcamError(
                "sink 'vcam' needs pyvirtualcam: pip install 'swapcam[vcam]'; then " + setup_help()
            ) from None
        try:
            self._camera = pyvirtualcam.Camera(
                width=int(width),
                height=int(height),
                fps=float(fps),
                fmt=pyvirtualcam.PixelFormat.BGR,
                device=device,
                backend=backend,
            )
        except Exception as exc:  # pyvirtualcam raises RuntimeError/ValueError with the backend's own text
            detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise SwapcamError(f"no virtual camera ({detail}); {setup_help()}") from None
        self.width, self.height = int(width), int(height)
        self.device = self._camera.device
        self.frames = 0
        self._closed = False

    def send(self, image: Image) -> bool:
        check_image(image, "frame sent to the virtual camera")
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"frame has shape {image.shape}, the virtual camera was opened for {self.width}x{self.height}"
            )
        self._camera.send(image)
        self.frames += 1
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._camera.close()

    def __enter__(self) -> VirtualCameraSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
