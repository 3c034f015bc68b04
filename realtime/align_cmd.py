"""Find faces in images, folders of images and videos; write Umeyama-aligned crops, one JSON with every face's
landmarks and matrices, and an annotated preview PNG per input (landmarks and the crop's outline drawn).

Output layout under --out: crops/<input>_f<frame>_<face>.png, previews/<input>.png, align.json.
An input that is not a readable image or video is reported on one line naming the file; the other inputs are still
processed, and the command exits 2 at the end if any input was unreadable (with one input: one line, exit 2).
An input in which no face is found is not an error: it is listed in align.json with zero faces.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from realtime.align import DEFAULT_COVERAGE, STABLE_IDX, TEMPLATE_NAME, align, invert_matrix, transform_points
from realtime.atomic import atomic_write_json, atomic_write_png
from realtime.errors import SwapcamError
from realtime.media import expand_inputs, media_kind, read_image, video_frames, video_length
from realtime.types import Face, Image

JSON_NAME = "align.json"


# ---------------------------------------------------------------- the per-image step


@dataclass
class AlignedFace:
    face_index: int
    face: Face
    crop: Image
    matrix: np.ndarray  # 2x3 frame -> crop

    def record(self, source: str, frame: int, crop_file: str) -> dict:
        return {
            "source": source,
            "frame": frame,
            "face": self.face_index,
            "crop": crop_file,
            "confidence": round(float(self.face.confidence), 4),
            "bbox": list(self.face.bbox),
            "landmarks": np.round(self.face.landmarks.astype(np.float64), 3).tolist(),
            "crop_landmarks": np.round(transform_points(self.face.landmarks, self.matrix), 3).tolist(),
            "matrix": self.matrix.tolist(),
        }


def align_faces(
    image: Image, faces: list[Face], size: int, coverage: float, stable_only: bool = True
) -> list[AlignedFace]:
    """Crop and matrix for each detected face (function first: the command is a loop around this)."""
    out = []
    for i, face in enumerate(faces):
        crop, matrix = align(image, face.landmarks, size=size, coverage=coverage, stable_only=stable_only)
        out.append(AlignedFace(i, face, crop, matrix))
    return out


def draw_preview(image: Image, aligned: list[AlignedFace], size: int) -> Image:
    """A copy of ``image`` with the 68 landmarks (stable points in green, the rest in yellow), the crop's outline
    mapped back into the frame (blue) and the face index."""
    preview = image.copy()
    radius = max(1, int(round(max(image.shape[:2]) / 400)))
    thickness = max(1, radius // 2 + 1)
    stable = np.zeros(68, bool)
    stable[STABLE_IDX] = True
    for item in aligned:
        corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float64)
        outline = transform_points(corners, invert_matrix(item.matrix))
        cv2.polylines(preview, [np.round(outline).astype(np.int32)], True, (255, 128, 0), thickness, cv2.LINE_AA)
        for k, (x, y) in enumerate(item.face.landmarks):
            colour = (0, 255, 0) if stable[k] else (0, 220, 255)
            cv2.circle(preview, (int(round(x)), int(round(y))), radius, colour, -1, cv2.LINE_AA)
        x0, y0 = np.round(outline.min(axis=0)).astype(int)
        cv2.putText(
            preview,
            f"face {item.face_index}",
            (max(0, x0), max(12, y0 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            max(0.4, image.shape[0] / 1000),
            (255, 128, 0),
            thickness,
            cv2.LINE_AA,
        )
    return preview


# ---------------------------------------------------------------- the command


@dataclass
class AlignJob:
    out: Path
    size: int = 256
    coverage: float = DEFAULT_COVERAGE
    backend: str = "mediapipe"
    every: int = 10
    max_frames: int | None = None
    max_faces: int = 1
    stable_only: bool = True
    progress: bool = True
    records: list[dict] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)

    def unique_name(self, path: Path) -> str:
        """File-name stem for an input's outputs; two inputs called face.png get face and face-2."""
        base = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem) or "input"
        name, k = base, 2
        while name in self._names:
            name, k = f"{base}-{k}", k + 1
        self._names.add(name)
        return name

    def handle_frame(self, detector, image: Image, source: str, name: str, frame: int) -> list[AlignedFace]:
        aligned = align_faces(image, detector.detect(image), self.size, self.coverage, self.stable_only)
        for item in aligned:
            crop_file = f"crops/{name}_f{frame:06d}_{item.face_index}.png"
            atomic_write_png(self.out / crop_file, item.crop)
            self.records.append(item.record(source, frame, crop_file))
        return aligned


def _probe(path: Path) -> str | None:
    """'image', 'video' or None. Trusts a known extension; an unknown one is tried as an image, then a video."""
    kind = media_kind(path)
    if kind != "video" and read_image(path) is not None:
        return "image"
    if kind != "image":
        try:
            next(video_frames(path, 1, 1))
            return "video"
        except (SwapcamError, StopIteration):
            pass
    return None


def run_align(paths: list[Path], job: AlignJob) -> None:
    from realtime.landmarks import create_detector

    # may fail: before any output is written
    detector = create_detector(job.backend, mode="static", max_faces=job.max_faces)
    detector.warmup()  # mediapipe's start-up lines go into a capture, not into the user's terminal
    job.out.mkdir(parents=True, exist_ok=True)
    try:
        for path in paths:
            source = str(path)
            if not path.exists():
                job.errors.append(f"{path}: no such file or folder")
                continue
            if not path.is_file():
                job.errors.append(f"{path}: not a regular file")
                continue
            kind = media_kind(path)
            image = None if kind == "video" else read_image(path)
            if image is None and kind == "image":
                job.errors.append(f"{path}: not a readable image")
                continue
            name = job.unique_name(path)
            if image is not None:
                aligned = job.handle_frame(detector, image, source, name, 0)
                preview = f"previews/{name}.png"
                atomic_write_png(job.out / preview, draw_preview(image, aligned, job.size))
                job.inputs.append(
                    {"source": source, "kind": "image", "frames": 1, "faces": len(aligned), "preview": preview}
                )
                continue
            try:
                n_faces, n_frames, preview = _align_video(detector, path, name, job)
            except SwapcamError as exc:
                job.errors.append(str(exc))
                continue
            job.inputs.append(
                {"source": source, "kind": "video", "frames": n_frames, "faces": n_faces, "preview": preview}
            )
    finally:
        detector.close()


def _align_video(detector, path: Path, name: str, job: AlignJob) -> tuple[int, int, str]:
    """Returns (faces, frames processed, preview path). The preview is the first processed frame with a face
    (or the first frame if none has one)."""
    from tqdm import tqdm

    total = video_length(path)
    if total is not None:
        total = -(-total // job.every)
        if job.max_frames is not None:
            total = min(total, job.max_frames)
    preview_file = f"previews/{name}.png"
    n_faces = n_frames = 0
    have_face_preview = False
    frames = video_frames(path, job.every, job.max_frames)
    first = next(frames)  # SwapcamError naming the file if it is not a video; checked before any bar is drawn
    bar = tqdm(total=total, desc=path.name, unit="frame", file=sys.stderr, disable=not job.progress, leave=False)
    try:
        for index, frame in itertools.chain([first], frames):
            aligned = job.handle_frame(detector, frame, str(path), name, index)
            n_faces += len(aligned)
            n_frames += 1
            if n_frames == 1 or (aligned and not have_face_preview):
                atomic_write_png(job.out / preview_file, draw_preview(frame, aligned, job.size))
                have_face_preview = bool(aligned)
            bar.update(1)
    finally:
        bar.close()
    return n_faces, n_frames, preview_file


def write_json(job: AlignJob) -> Path:
    doc = {
        "version": 1,
        "template": TEMPLATE_NAME,
        "size": job.size,
        "coverage": job.coverage,
        "fit": "stable" if job.stable_only else "all",
        "landmarks": job.backend,
        "matrix": "2x3, frame pixels -> crop pixels",
        "inputs": job.inputs,
        "errors": job.errors,
        "faces": job.records,
    }
    path = job.out / JSON_NAME
    atomic_write_json(path, doc)
    return path


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="IMAGE_OR_VIDEO",
        help="image files, video files or folders (their images and videos, searched recursively)",
    )
    parser.add_argument("--out", required=True, help="output folder (created): crops/, previews/, align.json")
    parser.add_argument("--size", type=int, default=256, help="side of the square aligned crops, pixels")
    parser.add_argument(
        "--coverage",
        type=float,
        default=DEFAULT_COVERAGE,
        help="crop side / landmark box side: 1.0 cuts at brows and jaw, larger holds more head",
    )
    parser.add_argument(
        "--landmarks",
        choices=("mediapipe", "fan"),
        default="mediapipe",
        help="landmark backend: mediapipe FaceMesh (bundled) or face-alignment FAN (needs weights)",
    )
    parser.add_argument("--every", type=_positive_int, default=10, help="videos: use every N-th frame")
    parser.add_argument(
        "--max-frames",
        type=_positive_int,
        default=None,
        help="videos: stop after this many used frames (default: whole video)",
    )
    parser.add_argument("--max-faces", type=_positive_int, default=1, help="most faces to find per image/frame")
    parser.add_argument(
        "--all-points",
        action="store_true",
        help="fit the alignment on all 68 points instead of the stable ones (brows, eyes, nose, "
        "mouth corners); the jaw makes crops jitter more",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar for videos")


def run(args: argparse.Namespace) -> int:
    if args.size < 8:
        raise SwapcamError(f"--size {args.size}: expected an integer >= 8")
    if not 0.5 <= args.coverage <= 4.0:
        raise SwapcamError(f"--coverage {args.coverage}: expected a value in 0.5..4.0")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SwapcamError(f"--out {out}: exists and is not a folder")
    paths = expand_inputs(args.inputs)
    if not paths:
        raise SwapcamError(f"no images or videos found in {', '.join(args.inputs)}")
    # A lone input that cannot be read: fail before creating anything, with one line naming it.
    if len(paths) == 1:
        only = paths[0]
        if not only.is_file():
            raise SwapcamError(f"{only}: no such file" if not only.exists() else f"{only}: not a regular file")
        if _probe(only) is None:
            raise SwapcamError(f"{only}: not a readable image or video")
    job = AlignJob(
        out=out,
        size=args.size,
        coverage=args.coverage,
        backend=args.landmarks,
        every=args.every,
        max_frames=args.max_frames,
        max_faces=args.max_faces,
        stable_only=not args.all_points,
        progress=not args.no_progress,
    )
    run_align(paths, job)
    json_path = write_json(job)
    n_faces = len(job.records)
    no_face = [i["source"] for i in job.inputs if i["faces"] == 0]
    print(f"{n_faces} face(s) from {len(job.inputs)} input(s) -> {out}/crops, previews in {out}/previews, {json_path}")
    for source in no_face:
        print(f"swapcam align: warning: no face found in {source}", file=sys.stderr)
    if job.errors:
        for message in job.errors[:-1]:
            print(f"swapcam align: error: {message}", file=sys.stderr)
        more = f" ({len(job.errors)} unreadable inputs, see {json_path})" if len(job.errors) > 1 else ""
        raise SwapcamError(job.errors[-1] + more)
    return 0
