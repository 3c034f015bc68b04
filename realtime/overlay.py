"""Drawn on the output frame after compositing: the optional HUD (fps, per-stage ms) and the visible
"synthetic video" label that tells viewers the face they see was generated."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from realtime.types import Image

LABEL_TEXT = "synthetic video"
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text_box(
    frame: Image, lines: list[str], origin: tuple[int, int], scale: float, anchor_bottom_right: bool = False
) -> None:
    thickness = max(1, int(round(scale * 2)))
    sizes = [cv2.getTextSize(line, _FONT, scale, thickness) for line in lines]
    line_h = max(s[0][1] + s[1] for s in sizes) + 4
    width = max(s[0][0] for s in sizes) + 10
    height = line_h * len(lines) + 6
    h, w = frame.shape[:2]
    x, y = origin
    if anchor_bottom_right:
        x, y = w - width - origin[0], h - height - origin[1]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + width), min(h, y + height)
    if x1 <= x0 or y1 <= y0:
        return
    # Darken only the text box (readable on any background, and cheaper than a full-frame addWeighted).
    frame[y0:y1, x0:x1] = (frame[y0:y1, x0:x1] * np.float32(0.35)).astype(np.uint8)
    for i, line in enumerate(lines):
        baseline_y = y + 3 + line_h * (i + 1) - 4
        cv2.putText(frame, line, (x + 5, baseline_y), _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def draw_notice(frame: Image, text: str) -> None:
    """One line for the person at the window (a switch that was refused), bottom left (IN PLACE)."""
    scale = max(0.4, frame.shape[0] / 1100.0)
    h = frame.shape[0]
    _text_box(frame, [text], (6, h - int(40 * scale) - 12), scale)


def draw_label(frame: Image, text: str = LABEL_TEXT) -> None:
    """The visible disclosure, bottom right, scaled with the frame (IN PLACE)."""
    scale = max(0.4, frame.shape[0] / 900.0)
    _text_box(frame, [text], (8, 8), scale, anchor_bottom_right=True)


def draw_hud(frame: Image, fps: float | None, timings_ms: Mapping[str, float], faces: int, switches: str = "") -> None:
    """fps, face count, per-stage milliseconds and the live switches' values, top left (IN PLACE)."""
    head = f"{fps:5.1f} fps  faces {faces}" if fps is not None else f"faces {faces}"
    stages = "  ".join(f"{name} {ms:.1f}" for name, ms in timings_ms.items() if name != "total")
    lines = [head] + ([stages] if stages else []) + ([switches] if switches else [])
    scale = max(0.4, frame.shape[0] / 1100.0)
    _text_box(frame, lines, (6, 6), scale)
