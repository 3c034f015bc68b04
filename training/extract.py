"""Build a faceset from videos, image folders, images or a camera: landmarks -> Umeyama-aligned crops + faces.json.

Frames without a face are skipped and counted; near-duplicate crops (a still camera, a paused video) are dropped;
a corrupt or unreadable input gets a warning naming it and extraction goes on. Re-running the same command resumes:
finished sources are skipped and a half-done video continues where it stopped. Every crop and faces.json is written
atomically, so an interrupted run never loses what it already extracted.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from realtime.align import DEFAULT_COVERAGE, align, transform_points
from realtime.atomic import atomic_write_json, atomic_write_png
from realtime.coverage import DEDUP_WINDOW, NearDuplicates, thumbnail
from realtime.errors import SwapcamError
from realtime.media import capture_frames, expand_inputs, media_kind, open_video, read_image
from realtime.types import Face, Image
from training.faceset import FACES_JSON, empty_index, read_index

log = logging.getLogger("swapcam.extract")

SAVE_EVERY = 25  # faces between index saves: bounds the work a crash can lose


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sources", nargs="*", metavar="SRC", help="videos, image files or folders of images (searched recursively)"
    )
    parser.add_argument("--out", required=True, help="faceset folder to create or resume (crops + faces.json)")
    parser.add_argument("--size", type=int, default=256, help="side of the aligned square crops, pixels")
    parser.add_argument(
        "--coverage",
        type=float,
        default=DEFAULT_COVERAGE,
        help="crop side / landmark box side (must match the coverage the model is used with live)",
    )
    parser.add_argument("--every", type=int, default=1, help="use every N-th video frame")
    parser.add_argument("--landmarks", choices=("mediapipe", "fan"), default="mediapipe", help="landmark backend")
    parser.add_argument("--max-faces", type=int, default=1, help="faces per frame to keep (largest first)")
    parser.add_argument(
        "--dedup",
        type=float,
        default=1.0,
        help="drop a crop whose 32x32 grey thumbnail differs from a recent crop by less than this "
        "mean absolute value (0..255); 0 keeps everything",
    )
    parser.add_argument(
        "--camera",
        type=float,
        default=None,
        metavar="SECONDS",
        help="record your own face from the camera for this many seconds (in addition to SRC)",
    )
    parser.add_argument("--camera-index", type=int, default=0, help="camera device index for --camera")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def fingerprint(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


def expand_sources(sources: list[str]) -> list[tuple[Path, str]]:
    """(path, kind) for every input; kind is 'video', 'image' or 'missing'. Folders expand (recursively) to their
    images and videos; a file named directly with an unknown extension is tried as an image."""
    return [
        (path, "missing" if not path.is_file() else "video" if media_kind(path) == "video" else "image")
        for path in expand_inputs(sources)
    ]


class Extractor:
    """Holds the detector, the faceset index and the dedup window; ``add_frame`` is the per-frame step."""

    def __init__(self, out: Path, size: int, coverage: float, backend: str, max_faces: int, dedup: float) -> None:
        self.out, self.size, self.coverage = out, size, coverage
        self.max_faces = max_faces
        out.mkdir(parents=True, exist_ok=True)
        if (out / FACES_JSON).exists():
            self.index = read_index(out)
            if int(self.index.get("size", -1)) != size or abs(float(self.index.get("coverage", -1)) - coverage) > 1e-9:
                raise SwapcamError(
                    f"faceset {out} holds {self.index.get('size')} px crops with coverage "
                    f"{self.index.get('coverage')}; cannot add --size {size} --coverage {coverage} crops "
                    "(use another --out)"
                )
        else:
            self.index = empty_index(size, coverage, backend)
        self.duplicates = NearDuplicates(dedup)
        for entry in self.index["faces"][-DEDUP_WINDOW:]:  # resume: dedup against what the last run kept
            crop = read_image(out / entry["file"])
            if crop is not None:
                self.duplicates.remember(thumbnail(crop))
        self.known_files = {entry["file"] for entry in self.index["faces"]}
        self._unsaved = 0
        from realtime.landmarks import create_detector

        self.detector = create_detector(backend, mode="static", max_faces=max_faces)
        self.detector.warmup()  # mediapipe's start-up lines go into a capture, not into the user's terminal

    def close(self) -> None:
        self.detector.close()

    def save(self) -> None:
        atomic_write_json(self.out / FACES_JSON, self.index)
        self._unsaved = 0

    def add_frame(
        self,
        frame: np.ndarray,
        source_key: str,
        frame_index: int,
        stats: dict,
        check: Callable[[Image, Face], str | None] | None = None,
    ) -> list[Face]:
        """Detect, align, dedup and write this frame's faces; returns the faces kept. ``check(frame, face)`` may
        reject a face before it is written: it returns the reason (counted in ``stats`` under that name) or None."""
        faces = self.detector.detect(frame)
        kept: list[Face] = []
        if not faces:
            stats["no_face"] += 1
            return kept
        faces.sort(key=lambda f: -np.ptp(f.landmarks[:, 0]) * np.ptp(f.landmarks[:, 1]))
        tag = hashlib.sha1(source_key.encode()).hexdigest()[:6]
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(source_key).stem)[:40] or "src"
        for k, face in enumerate(faces[: self.max_faces]):
            try:
                crop, matrix = align(frame, face.landmarks, self.size, self.coverage)
            except ValueError as exc:  # degenerate landmarks: a detector glitch, not a reason to stop
                log.debug("%s frame %d: cannot align (%s)", source_key, frame_index, exc)
                stats["no_face"] += 1
                continue
            reason = check(frame, face) if check is not None else None
            if reason:
                stats[reason] = int(stats.get(reason, 0)) + 1
                continue
            if not self.duplicates.keep(crop):
                stats["duplicates"] += 1
                continue
            name = f"{stem}_{tag}_{frame_index:06d}_{k}.png"
            atomic_write_png(self.out / name, crop)
            entry = {
                "file": name,
                "source": source_key,
                "frame": int(frame_index),
                "landmarks": np.round(transform_points(face.landmarks, matrix), 3).tolist(),
                "matrix": np.asarray(matrix).tolist(),
            }
            if name in self.known_files:  # a crash between crop and index write: replace, never duplicate
                self.index["faces"] = [e for e in self.index["faces"] if e["file"] != name]
            self.known_files.add(name)
            self.index["faces"].append(entry)
            stats["faces"] += 1
            self._unsaved += 1
            kept.append(face)
        if self._unsaved >= SAVE_EVERY:
            self.save()
        return kept


def _new_stats(fp: str) -> dict:
    return {
        "fingerprint": fp,
        "done": False,
        "next_frame": 0,
        "frames": 0,
        "faces": 0,
        "no_face": 0,
        "duplicates": 0,
        "errors": 0,
    }


def extract_video(ex: Extractor, path: Path, every: int, progress: bool) -> None:
    from tqdm import tqdm

    key = str(path.resolve())
    fp = fingerprint(path)
    stats = ex.index["sources"].get(key)
    if stats is None or stats.get("fingerprint") != fp:
        stats = ex.index["sources"][key] = _new_stats(fp)
    if stats["done"]:
        log.info("%s: already extracted (%d faces), skipped", path, stats["faces"])
        return
    cap = open_video(path)
    if not cap.isOpened():
        cap.release()
        log.warning("warning: cannot open video %s (corrupt or unsupported); skipped", path)
        stats["errors"] += 1
        stats["done"] = True
        ex.save()
        return
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    read_any = stats["next_frame"] > 0
    try:
        bar = tqdm(
            total=total or None,
            initial=stats["next_frame"],
            desc=path.name,
            unit="frame",
            file=sys.stderr,
            disable=not progress,
            leave=False,
        )
        for index, frame in capture_frames(cap, stats["next_frame"]):
            read_any = True
            if index % every == 0:
                ex.add_frame(frame, key, index, stats)
            stats["next_frame"] = index + 1
            stats["frames"] = max(stats["frames"], index + 1)
            bar.update(1)
            bar.set_postfix(faces=stats["faces"], no_face=stats["no_face"], dup=stats["duplicates"], refresh=False)
        bar.close()
    finally:
        cap.release()
    if not read_any:
        log.warning("warning: no frame could be decoded from %s (corrupt or empty video); skipped", path)
        stats["errors"] += 1
    elif total and stats["next_frame"] < total - 1:
        log.warning(
            "warning: %s stopped decoding at frame %d of %d (truncated?); kept what was read",
            path,
            stats["next_frame"],
            total,
        )
    stats["done"] = True
    ex.save()


def extract_image(ex: Extractor, path: Path) -> None:
    key = str(path.resolve())
    fp = fingerprint(path)
    stats = ex.index["sources"].get(key)
    if stats is not None and stats.get("fingerprint") == fp and stats["done"]:
        return
    stats = ex.index["sources"][key] = _new_stats(fp)
    image = read_image(path)
    if image is None:
        log.warning("warning: cannot read image %s (corrupt or unsupported); skipped", path)
        stats["errors"] += 1
    else:
        ex.add_frame(image, key, 0, stats)
        stats["frames"] = 1
    stats["next_frame"] = 1
    stats["done"] = True


def extract_camera(ex: Extractor, seconds: float, camera_index: int, every: int, progress: bool) -> None:
    from tqdm import tqdm

    cap = cv2.VideoCapture(camera_index)
    if not cap.isOpened():
        cap.release()
        raise SwapcamError(f"--camera: no camera at index {camera_index} (check `swapcam doctor`)")
    key = f"camera:{camera_index}:{time.strftime('%Y%m%dT%H%M%S')}"
    stats = ex.index["sources"][key] = _new_stats("live")
    t_end = time.monotonic() + seconds
    index = 0
    try:
        with tqdm(
            total=round(seconds), desc=f"camera {camera_index}", unit="s", file=sys.stderr, disable=not progress
        ) as bar:
            t0 = time.monotonic()
            while time.monotonic() < t_end:
                ok, frame = cap.read()
                if not ok:
                    log.warning("warning: camera %d stopped delivering frames", camera_index)
                    break
                if index % every == 0:
                    ex.add_frame(frame, key, index, stats)
                index += 1
                bar.n = min(round(seconds), int(time.monotonic() - t0))
                bar.set_postfix(faces=stats["faces"], refresh=True)
    finally:
        cap.release()
    stats.update(frames=index, next_frame=index, done=True)
    ex.save()


def extract(
    sources: list[str],
    out: str | Path,
    size: int = 256,
    coverage: float = DEFAULT_COVERAGE,
    every: int = 1,
    landmarks: str = "mediapipe",
    max_faces: int = 1,
    dedup: float = 1.0,
    camera: float | None = None,
    camera_index: int = 0,
    progress: bool = True,
) -> dict:
    """Extract faces into ``out``; returns the faceset index (also in ``out/faces.json``)."""
    if size < 32 or size > 1024:
        raise SwapcamError(f"--size {size}: expected 32..1024 pixels")
    if not 0.5 <= coverage <= 4.0:
        raise SwapcamError(f"--coverage {coverage}: expected 0.5..4.0")
    if every < 1:
        raise SwapcamError(f"--every {every}: expected >= 1")
    if max_faces < 1:
        raise SwapcamError(f"--max-faces {max_faces}: expected >= 1")
    if not sources and camera is None:
        raise SwapcamError("nothing to extract: give videos, images or folders, or --camera SECONDS")
    if camera is not None and camera <= 0:
        raise SwapcamError(f"--camera {camera}: expected a positive number of seconds")
    items = expand_sources(list(sources))
    ex = Extractor(Path(out), size, coverage, landmarks, max_faces, dedup)
    try:
        images_since_save = 0
        for path, kind in items:
            if kind == "missing":
                log.warning("warning: input %s does not exist; skipped", path)
            elif kind == "video":
                extract_video(ex, path, every, progress)
            else:
                extract_image(ex, path)
                images_since_save += 1
                if images_since_save >= SAVE_EVERY:
                    ex.save()
                    images_since_save = 0
        if camera is not None:
            extract_camera(ex, camera, camera_index, every, progress)
    finally:
        ex.save()  # also on Ctrl-C: what was extracted stays extracted
        ex.close()
    return ex.index


def summary(index: dict) -> dict:
    keys = ("frames", "faces", "no_face", "duplicates", "errors")
    return {k: sum(int(s.get(k, 0)) for s in index["sources"].values()) for k in keys} | {
        "total_faces": len(index["faces"])
    }


def run(args: argparse.Namespace) -> int:
    index = extract(
        args.sources,
        args.out,
        args.size,
        args.coverage,
        args.every,
        args.landmarks,
        args.max_faces,
        args.dedup,
        args.camera,
        args.camera_index,
        progress=not args.no_progress,
    )
    s = summary(index)
    print(
        f"{args.out}: {s['total_faces']} faces (over all its sources: {s['frames']} frames read, "
        f"{s['no_face']} without a face, {s['duplicates']} near-duplicates dropped, {s['errors']} unreadable inputs)"
    )
    return 0
