"""Does eval's blink ruler count a real blink of the face the swap draws? No model involved: the camera frames of
one expression clip (its portrait's eyes shut by make-clip, the truth the ruler trusts) stand in as the "output"
against another clip's camera, whose schedule is the same (make-clip's seed): a perfect swap to that portrait would
blink exactly so. The blink recall is printed under the relative rule (eval's ``blink_recall``) and the absolute one
(``blink_recall_absolute``), with each face's open and shut eye aspect ratio. JSON to --json.

    .venv/bin/python benchmarks/blink_ruler_check.py build/clips/expressions300.mp4 \\
        build/clips/expressions300-grace.mp4 --json benchmarks/results/blink-ruler-check.json

(the clips: `swapcam make-clip --expressions --frames 300 --portrait astronaut|grace_hopper`, or
benchmarks/eval_demo.sh, which makes them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.atomic import atomic_write_json  # noqa: E402
from realtime.errors import SwapcamError  # noqa: E402
from realtime.eval.truth import NEUTRAL_BELOW, SHUT_FROM, Truth, expression_block, load_truth  # noqa: E402
from realtime.landmarks import create_detector  # noqa: E402
from realtime.landmarks.measures import eye_aspect_ratio  # noqa: E402
from realtime.media import video_frames  # noqa: E402


def camera_landmarks(clip: Path) -> list[np.ndarray | None]:
    """Static face mesh landmarks (68 points) of each frame, as eval reads its frames; None where none is found."""
    detector = create_detector("mediapipe", mode="static")
    out: list[np.ndarray | None] = []
    try:
        for _, frame in video_frames(clip):
            faces = detector.detect(frame)
            out.append(faces[0].landmarks.astype(np.float64) if faces else None)
    finally:
        detector.close()
    return out


def ear_levels(truth: Truth, landmarks: list[np.ndarray | None]) -> dict[str, float]:
    eyes = truth.schedule["eyes"][: len(landmarks)]
    ear = np.array([eye_aspect_ratio(lm) if lm is not None else np.nan for lm in landmarks])
    opened, shut = ear[(eyes < NEUTRAL_BELOW) & np.isfinite(ear)], ear[(eyes >= SHUT_FROM) & np.isfinite(ear)]
    return {"open": round(float(np.median(opened)), 4), "shut": round(float(np.median(shut)), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+", help="make-clip --expressions videos, each with its .truth.json beside it")
    parser.add_argument("--json", required=True, help="where to write the results")
    args = parser.parse_args()
    clips = []
    for name in args.clips:
        path = Path(name)
        truth_path = path.with_suffix(".truth.json")
        if not path.is_file() or not truth_path.is_file():
            raise SystemExit(
                f"blink_ruler_check: {path}: no such clip with its {truth_path.name} (make-clip makes both)"
            )
        truth = load_truth(truth_path)
        if truth.clip != "expressions":
            raise SystemExit(f"blink_ruler_check: {truth_path}: a {truth.clip} clip, expected an expressions one")
        print(f"reading {path} ...", flush=True)
        portrait = json.loads(truth_path.read_text()).get("portrait", path.stem)
        clips.append((path, truth, portrait, camera_landmarks(path)))
    rows = []
    for ruler_path, ruler_truth, ruler_name, ruler_lm in clips:
        for face_path, face_truth, face_name, face_lm in clips:
            if not np.array_equal(ruler_truth.schedule["eyes"], face_truth.schedule["eyes"]):
                raise SystemExit(f"blink_ruler_check: {face_path} and {ruler_path} have different schedules")
            block = expression_block(ruler_truth, ruler_lm, face_lm)
            rows.append(
                {
                    "ruler_from": f"{ruler_name} ({ruler_path.name})",
                    "blinking_face": f"{face_name} ({face_path.name})",
                    "ruler_ear": ear_levels(ruler_truth, ruler_lm),
                    "face_ear": ear_levels(face_truth, face_lm),
                    "blink_recall": block["blink_recall"],
                    "blink_recall_absolute": block["blink_recall_absolute"],
                    "shut_frames": block["shut_frames"],
                }
            )
            r = rows[-1]
            print(
                f"{face_name} blinking (EAR open {r['face_ear']['open']:.3f}, shut "
                f"{r['face_ear']['shut']:.3f}) against {ruler_name}'s camera (open "
                f"{r['ruler_ear']['open']:.3f}, shut {r['ruler_ear']['shut']:.3f}): blink recall relative "
                f"{r['blink_recall']:.0%}, absolute {r['blink_recall_absolute']:.0%} of {r['shut_frames']}"
            )
    atomic_write_json(
        args.json,
        {
            "method": "camera frames of one make-clip --expressions clip as the output of another with the same "
            "schedule (no model); realtime.eval.truth.expression_block; mediapipe static landmarks per frame",
            "rows": rows,
        },
        indent=2,
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except SwapcamError as exc:
        raise SystemExit(f"blink_ruler_check: {exc}") from None
