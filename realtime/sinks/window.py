"""An OpenCV window. ``send`` returns False when the user presses q / Esc or closes the window; other keys go to
``on_key`` (a character), which `swapcam live` uses to switch the swap's options live (realtime.controls);
``notice(text)`` shows one line at the bottom of the window for a few seconds (a switch that was refused)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import cv2

from realtime.errors import SwapcamError
from realtime.overlay import draw_notice
from realtime.types import Image, check_image

NOTICE_S = 4.0  # how long a notice stays on the window


def display_available() -> bool:
    """Whether a window can open: on Linux that needs an X11/Wayland display."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class WindowSink:
    def __init__(self, title: str = "swapcam") -> None:
        if not display_available():
            raise SwapcamError(
                "sink 'window' needs a display (DISPLAY/WAYLAND_DISPLAY is not set); "
                "use --sink file:out.mp4 or --sink vcam instead"
            )
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise SwapcamError(f"sink 'window': OpenCV cannot open a window ({str(exc).strip()[:120]})") from None
        self._closed = False
        self._shown = False
        self.on_key: Callable[[str], None] | None = None
        self._notice: tuple[str, float] | None = None  # (text, until: time.monotonic())

    def notice(self, text: str) -> None:
        """Show ``text`` at the bottom of the window for NOTICE_S seconds (any thread)."""
        self._notice = (text, time.monotonic() + NOTICE_S)

    def send(self, image: Image) -> bool:
        check_image(image, "frame sent to the window")
        if self._closed:
            return False
        notice = self._notice
        if notice is not None and time.monotonic() < notice[1]:
            image = image.copy()  # the frame may be the camera's own: never drawn on in place
            draw_notice(image, notice[0])
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        if self._shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            return False  # the user closed the window
        self._shown = True
        if key in (ord("q"), 27):
            return False
        if key != 255 and self.on_key is not None:  # 255: no key this time
            self.on_key(chr(key))
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass

    def __enter__(self) -> WindowSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
