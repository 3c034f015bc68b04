"""A before/after contact sheet of the expression follower on a clip whose truth is known (`swapcam make-clip
--expressions`): the moments that matter -- a neutral frame, the middle of the held smile, the widest mouth opening
and a shut blink -- each as camera | output at every ``--expression`` strength asked for, cropped to the face.
`swapcam eval`'s own sheet takes evenly spaced frames and so can miss the one-second held smile.

    .venv/bin/python benchmarks/expression_sheet.py --model models/demo/demo_a2b.onnx \
        --clip build/clips/expressions300.mp4 --out benchmarks/results/expression-sheet-a2b-astronaut300.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime.atomic import atomic_write_image  # noqa: E402
from realtime.errors import SwapcamError  # noqa: E402
from realtime.eval.truth import load_truth  # noqa: E402

CELL = 200  # pixels per face cell


def moments(truth) -> list[tuple[str, int]]:
    """(label, frame) of the neutral, held-smile, open-mouth and blink moments of a truth schedule."""
    eyes, mouth, smile = (truth.schedule[k] for k in ("eyes", "mouth", "smile"))
    quiet = (eyes < 0.02) & (mouth < 0.02) & (smile < 0.02)
    held = np.flatnonzero((smile >= 0.99) & (mouth < 0.02) & (eyes < 0.02))
    picks = []
    if quiet.any():
        picks.append(("neutral", int(np.flatnonzero(quiet)[len(np.flatnonzero(quiet)) // 2])))
    if held.size:
        picks.append(("held smile", int(held[held.size // 2])))
    if mouth.max() > 0.05:
        picks.append(("mouth open", int(np.argmax(mouth))))
    if eyes.max() >= 0.99:
        picks.append(("blink", int(np.flatnonzero(eyes >= 0.99)[0])))
    return picks


def face_box(landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A square box around the landmarks, grown by half, clipped to the frame: (x0, y0, x1, y1)."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    centre, side = (lo + hi) / 2, float((hi - lo).max()) * 1.5
    x0, y0 = (centre - side / 2).astype(int)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(shape[1], x0 + int(side)), min(shape[0], y0 + int(side))
    return x0, y0, x1, y1


def label(cell: np.ndarray, text: str) -> None:
    for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(cell, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, width, cv2.LINE_AA)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="swap model (.onnx / .dfm) to run")
    parser.add_argument("--clip", required=True, help="a make-clip --expressions video; its .truth.json beside it")
    parser.add_argument("--out", required=True, help="the sheet to write (.jpg, at most 300 KB, or .png)")
    parser.add_argument(
        "--expression", type=float, nargs="+", default=[0.0, 1.0], help="follower strengths, one column each"
    )
    args = parser.parse_args(argv)
    from realtime.builder import create_processor, open_swapper
    from realtime.pipeline import PipelineOptions

    try:
        truth = load_truth(Path(args.clip).with_suffix("").as_posix() + ".truth.json")
        picks = moments(truth)
        capture = cv2.VideoCapture(args.clip)
        frames = []
        while len(frames) < truth.frames:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        if not frames:
            raise SwapcamError(f"--clip {args.clip}: no frames could be read")
        swapper = open_swapper(args.model)
        outputs: dict[float, dict[int, np.ndarray]] = {}
        wanted = {index for _, index in picks}
        for strength in args.expression:
            outputs[strength] = {}
            with create_processor(swapper, PipelineOptions(expression=strength, hud=False, label=False)) as proc:
                for index, frame in enumerate(frames[: max(wanted) + 1]):
                    out = proc.process(frame, index / 30.0)
                    if index in wanted:
                        outputs[strength][index] = out
    except SwapcamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for name, index in picks:
        x0, y0, x1, y1 = face_box(truth.landmarks[index], frames[index].shape[:2])
        cells = [(f"camera: {name} @{index}", frames[index])]
        cells += [(f"--expression {s:g}", outputs[s][index]) for s in args.expression]
        row = []
        for text, image in cells:
            cell = cv2.resize(image[y0:y1, x0:x1], (CELL, CELL), interpolation=cv2.INTER_AREA)
            label(cell, text)
            row.append(cell)
        rows.append(np.hstack(row))
    print(f"wrote {atomic_write_image(args.out, np.vstack(rows))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
