"""Enrolment step 1, capture: the person's faces from a camera (a window with the coverage meter and prompts, or
prompts in the log without a display), a video file or a built-in clip, quality-gated and de-duplicated into the
enrolment's faceset (the `swapcam extract` format), resumably."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.align import DEFAULT_COVERAGE
from realtime.coverage import DEDUP_THRESHOLD, REJECT_REASONS, CoverageMeter, QualityGate, draw_coverage
from realtime.errors import SwapcamError
from realtime.types import Image

log = logging.getLogger("swapcam.enroll")

MIN_FACES = 16  # fewer usable faces than this cannot teach a face


@dataclass
class CaptureResult:
    faceset: Path
    total_faces: int  # in the faceset, earlier runs included
    stats: dict[str, int]  # this run: frames, faces (kept), no_face, duplicates, and one count per reject reason
    meter: CoverageMeter


def parse_frames(text: str | None) -> tuple[int, int | None]:
    """``A:B`` -> (A, B) frames A..B-1 (either side may be left out); None -> (0, None)."""
    if text is None:
        return 0, None
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        a = int(start) if start.strip() else 0
        b = int(stop) if stop.strip() else None
    except ValueError:
        raise SwapcamError(f"--frames {text!r}: expected A:B (frames A to B-1, e.g. 0:90)") from None
    if a < 0 or (b is not None and b <= a):
        raise SwapcamError(f"--frames {text!r}: expected 0 <= A < B")
    return a, b


def is_camera(spec: str) -> bool:
    return spec.strip().isdigit() or spec.startswith("/dev/video")


def _is_clip_name(spec: str) -> bool:
    return spec == "carphone" or spec == "synthetic" or spec.startswith("synthetic:")


def check_source(spec: str) -> None:
    """A one-line SwapcamError for a --source that cannot be a camera, a built-in clip or a video file."""
    from realtime.media import media_kind

    if is_camera(spec) or _is_clip_name(spec):
        return
    path = Path(spec)
    if not path.exists():
        raise SwapcamError(f"--source {spec}: no such file (a video file, a camera index such as 0, or 'carphone')")
    if path.is_dir() or media_kind(path) != "video":
        raise SwapcamError(
            f"--source {spec}: not a video file (for photos, build DIR/faceset with `swapcam extract`, then run "
            "enroll without --source)"
        )


def _new_source_stats(fingerprint: str) -> dict:
    from training.extract import _new_stats

    return _new_stats(fingerprint) | {reason: 0 for reason in REJECT_REASONS}


def _file_frames(path: Path, start: int, stop: int | None) -> Iterator[tuple[int, Image]]:
    from realtime.media import capture_frames, open_video

    cap = open_video(path)
    if not cap.isOpened():
        cap.release()
        raise SwapcamError(f"--source {path}: cannot open the video (corrupt or unsupported)")
    try:
        for index, frame in capture_frames(cap, start):
            if stop is not None and index >= stop:
                return
            yield index, frame
    finally:
        cap.release()


def _clip_images(spec: str) -> list[Image]:
    """The frames of a built-in clip as `swapcam live --source` plays them once: carphone upscaled to 640x480, or
    the 90-frame synthetic clip of a portrait."""
    from realtime.samples import PORTRAITS, synthetic_clip, talking_clip

    if spec == "carphone":
        return talking_clip((640, 480))[0]
    portrait = spec.partition(":")[2] or "astronaut"
    if portrait not in PORTRAITS:
        raise SwapcamError(f"--source {spec}: unknown portrait {portrait!r}; choose from {', '.join(PORTRAITS)}")
    return synthetic_clip(portrait, 90).frames


def capture(
    source: str,
    faceset: str | Path,
    size: int,
    coverage: float = DEFAULT_COVERAGE,
    frames: tuple[int, int | None] = (0, None),
    seconds: float = 60.0,
    progress: bool = True,
    show: bool | None = None,
) -> CaptureResult:
    """Faces of ``source`` (a camera index/device, a video file, 'carphone' or 'synthetic[:portrait]') into the
    faceset folder, quality-gated, deduplicated, written atomically (training.extract.Extractor). A file or clip
    resumes where an earlier run stopped; a camera adds a new session for up to ``seconds`` (ended early when the
    coverage meter is full, or with q / Esc in the window). ``show``: a preview window with prompts (default: when
    the source is a camera and a display exists)."""
    from training.extract import Extractor, fingerprint

    check_source(source)
    camera = is_camera(source)
    if camera and frames != (0, None):
        raise SwapcamError("--frames applies to a video file or a built-in clip, not to a camera")
    if seconds <= 0:
        raise SwapcamError(f"--capture-seconds {seconds}: expected a positive number of seconds")
    gate = QualityGate(size, coverage)
    meter = CoverageMeter()
    ex = Extractor(Path(faceset), size, coverage, "mediapipe", max_faces=1, dedup=DEDUP_THRESHOLD)
    for entry in ex.index["faces"]:  # an earlier run's faces count towards the meter
        meter.update(np.asarray(entry["landmarks"], np.float64))
    totals = {k: 0 for k in ("frames", "faces", "no_face", "duplicates", *REJECT_REASONS)}
    try:
        if camera:
            _capture_camera(ex, source, gate, meter, totals, seconds, progress, show)
        else:
            start, stop = frames
            clip = _is_clip_name(source)
            key = source if clip else str(Path(source).resolve())
            fp = "builtin" if clip else fingerprint(Path(source))
            if frames != (0, None):  # another range of the same video is another source
                key += f"#frames={start}:{'' if stop is None else stop}"
            stats = ex.index["sources"].get(key)
            if stats is None or stats.get("fingerprint") != fp:
                stats = ex.index["sources"][key] = _new_source_stats(fp)
            if stats["done"]:
                log.info("%s: already captured (%d faces), skipped", source, stats["faces"])
            else:
                first = max(start, int(stats["next_frame"]))
                if clip:
                    images = _clip_images(source)
                    total: int | None = len(images) if stop is None else min(stop, len(images))
                    stream: Iterator[tuple[int, Image]] = ((i, images[i]) for i in range(first, total or 0))
                else:
                    from realtime.media import video_length

                    stream = _file_frames(Path(source), first, stop)
                    total = stop if stop is not None else video_length(source)
                _capture_stream(ex, key, stats, stream, gate, meter, totals, total, first, progress)
                stats["done"] = True
    finally:
        ex.save()  # also on Ctrl-C: what was captured stays captured
        ex.close()
    return CaptureResult(Path(faceset), len(ex.index["faces"]), totals, meter)


def _count(stats: dict, totals: dict, before: dict) -> None:
    for k in totals:
        totals[k] += int(stats.get(k, 0)) - int(before.get(k, 0))


def _capture_stream(
    ex,
    key: str,
    stats: dict,
    frames: Iterator[tuple[int, Image]],
    gate: QualityGate,
    meter: CoverageMeter,
    totals: dict,
    total: int | None,
    first: int,
    progress: bool,
) -> None:
    from tqdm import tqdm

    before = dict(stats)
    bar = tqdm(
        total=total, initial=first, desc="capture", unit="frame", file=sys.stderr, disable=not progress, leave=False
    )
    try:
        for index, frame in frames:
            for face in ex.add_frame(frame, key, index, stats, check=gate):
                meter.update(face.landmarks)
            stats["next_frame"] = index + 1
            stats["frames"] = int(stats.get("frames", 0)) + 1
            bar.update(1)
            rejected = sum(int(stats.get(r, 0)) for r in REJECT_REASONS)
            bar.set_postfix(kept=stats["faces"], rejected=rejected, coverage=f"{meter.fraction():.0%}", refresh=False)
    finally:
        bar.close()
        _count(stats, totals, before)


def _capture_camera(
    ex,
    spec: str,
    gate: QualityGate,
    meter: CoverageMeter,
    totals: dict,
    seconds: float,
    progress: bool,
    show: bool | None,
) -> None:
    from tqdm import tqdm

    from realtime.sinks.window import WindowSink, display_available
    from realtime.sources import open_source

    show = display_available() if show is None else show
    source = open_source(spec)
    key = f"camera:{spec}:{time.strftime('%Y%m%dT%H%M%S')}"
    stats = ex.index["sources"][key] = _new_source_stats("live")
    window = WindowSink("swapcam enroll (q: done)") if show else None
    last_prompt: str | None = ""
    last_log = 0.0
    t0 = time.monotonic()
    index = 0
    bar = tqdm(total=round(seconds), desc="capture", unit="s", file=sys.stderr, disable=not progress, leave=False)
    try:
        while time.monotonic() - t0 < seconds:
            frame = source.read()
            if frame is None:
                log.warning("camera %s stopped delivering frames", spec)
                break
            for face in ex.add_frame(frame.image, key, index, stats, check=gate):
                meter.update(face.landmarks)
            index += 1
            stats["frames"] = stats["next_frame"] = index
            prompt = meter.prompt()
            if window is not None:
                preview = cv2.flip(frame.image, 1)
                draw_coverage(preview, meter, mirrored=True)
                if not window.send(preview):
                    break
            elif prompt != last_prompt or time.monotonic() - last_log > 5.0:
                log.info("coverage %3.0f%%: %s", 100 * meter.fraction(), prompt or "done")
                last_prompt, last_log = prompt, time.monotonic()
            bar.n = min(round(seconds), int(time.monotonic() - t0))
            bar.set_postfix(kept=stats["faces"], coverage=f"{meter.fraction():.0%}", refresh=True)
            if prompt is None and len(meter) >= 4 * MIN_FACES:
                log.info("coverage meter full: capture done")
                break
    finally:
        bar.close()
        if window is not None:
            window.close()
        source.close()
        stats["done"] = True
        _count(stats, totals, {})


def capture_report(result: CaptureResult) -> str:
    s = result.stats
    rejected = ", ".join(f"{r} {s[r]}" for r in REJECT_REASONS if s.get(r)) or "none"
    missing = result.meter.missing()
    line = (
        f"{result.faceset}: {result.total_faces} faces ({s['faces']} new from {s['frames']} frames; rejected: "
        f"{rejected}; no face {s['no_face']}, near-duplicates {s['duplicates']}); coverage "
        f"{result.meter.fraction():.0%}"
    )
    return line + (f" (missing: {'; '.join(missing[:4])}{' ...' if len(missing) > 4 else ''})" if missing else "")
