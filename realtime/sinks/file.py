"""MP4 file sink (PyAV, H.264 or MPEG-4 Part 2), written atomically, with a container note that it is synthetic.

The note goes into the MP4 ``comment`` and ``description`` tags (``ffprobe out.mp4`` shows them), so a file that
leaves the machine still says what it is. Frames get consecutive timestamps at the source's fps (constant frame
rate: every player handles it; a dropped frame shortens the video instead of freezing it).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from realtime.errors import SwapcamError
from realtime.types import Image, check_image

SYNTHETIC_NOTE = "synthetic video made with swapcam (face swap); not a real recording of the person shown"


class FileSink:
    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: float = 30.0,
        codec: str | None = None,
        note: str = SYNTHETIC_NOTE,
    ) -> None:
        import av
        from av.video.stream import VideoStream

        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".mov", ".m4v"):
            raise SwapcamError(f"file sink {self.path}: use an .mp4 file name")
        if not self.path.parent.exists():
            raise SwapcamError(f"file sink {self.path}: folder {self.path.parent} does not exist")
        if width < 2 or height < 2:
            raise SwapcamError(f"file sink {self.path}: frame size {width}x{height} is too small")
        self.width, self.height = int(width), int(height)
        # yuv420p needs even sides; an odd camera size loses its last row/column in the file.
        self._enc_w, self._enc_h = self.width - self.width % 2, self.height - self.height % 2
        self._tmp = self.path.with_name(self.path.stem + ".part" + self.path.suffix)
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        self._container.metadata["comment"] = note
        self._container.metadata["description"] = note
        if codec is None:
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        rate = Fraction(fps).limit_denominator(1001)
        stream = self._container.add_stream(codec, rate=rate)
        if not isinstance(stream, VideoStream):
            self._container.close()
            self._tmp.unlink(missing_ok=True)
            raise SwapcamError(f"file sink {self.path}: codec {codec!r} is not a video codec")
        self._stream = stream
        self._stream.width, self._stream.height = self._enc_w, self._enc_h
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            # ultrafast: the encoder shares the CPU with the swap; quality stays fine at crf 20 for 640x480.
            self._stream.options = {"preset": "ultrafast", "crf": "20", "tune": "zerolatency"}
        self.frames = 0
        self._closed = False

    def send(self, image: Image) -> bool:
        import av

        check_image(image, "frame sent to the file sink")
        if self._closed:
            raise RuntimeError(f"file sink {self.path} is closed")
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"frame has shape {image.shape}, file sink {self.path} was opened for {self.width}x{self.height}"
            )
        if (self._enc_w, self._enc_h) != (self.width, self.height):
            image = image[: self._enc_h, : self._enc_w]
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1
        return True

    def close(self) -> None:
        """Flush and move the finished file into place (a crash leaves only the .part file, never a broken out.mp4)."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
        if self.frames:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_note(path: str | os.PathLike) -> str | None:
    """The synthetic-content note of a video written by this sink (None if absent)."""
    import av

    with av.open(str(path)) as container:
        return container.metadata.get("comment")
