"""Where issue 10's eye-openness bar stands: how well the live loop can know the camera's eye openness, and how well
the output follows when it does know it. On the upscaled carphone clip (176x144 -> 640x480, eyes about 10 px tall in
the source), with the demo model.

``swapcam eval`` measures eye following as the Pearson r, over the clip, of the eye aspect ratio (EAR) that
mediapipe's FaceMesh reads in static mode (a fresh face detection per frame) on the camera frame and on the output.
This script prints and writes (JSON):

* ``signals``: r of that ruler (static EAR of the camera frames) against what the live loop can measure: the
  tracking-mode FaceMesh EAR it runs on (raw, and after its One Euro smoothing), and a second static pass on the
  aligned face crop (the only cheaper way to a static reading; its cost per frame is given). The tracking and static
  modes frame the face differently for the same landmark model, and at this size their eye readings disagree;
* ``following``: ``swapcam eval``'s eyes r with the live eye follower as shipped, and with an oracle that feeds the
  follower the ruler's own reading of each camera frame (what no live loop has): how far the output side (the lid
  warp and paint on the swapped face, read back by the same ruler) can follow when the signal is as good as the
  ruler. The oracle replaces ``realtime.eyes.EyeFollower.closure`` in this process only.

    python benchmarks/eye_signal.py --json benchmarks/results/eye-signal-carphone.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from realtime.atomic import atomic_write_json  # noqa: E402


def correlation(a, b) -> float:
    return round(float(np.corrcoef(np.asarray(a, float), np.asarray(b, float))[0, 1]), 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="swap model (default: the shipped demo a2b)")
    parser.add_argument("--source", default="carphone", help="eval source (default: carphone)")
    parser.add_argument("--json", default=None, help="write the numbers here")
    args = parser.parse_args(argv)

    import realtime.pipeline as pipeline
    from models.contract import demo_model_path
    from realtime.align import align
    from realtime.builder import open_swapper
    from realtime.eval.runner import evaluate, source_frames
    from realtime.eyes import SHUT_RATIO, EyeFollower
    from realtime.landmarks import create_detector
    from realtime.landmarks.measures import eye_aspect_ratio
    from realtime.landmarks.smoothing import FaceSmoother
    from realtime.pipeline import PipelineOptions

    frames, total, described = source_frames(args.source, None, 640, 480)
    frames = list(frames)
    static = create_detector("mediapipe", mode="static", max_faces=1)
    crop_static = create_detector("mediapipe", mode="static", max_faces=1)
    tracking = create_detector("mediapipe", mode="tracking", max_faces=1)
    for d in (static, crop_static, tracking):
        d.warmup()
    smoother = FaceSmoother()
    ruler, raw, smoothed, on_crop, crop_ms = [], [], [], [], []
    try:
        for i, frame in enumerate(frames):
            ruler.append(eye_aspect_ratio(static.detect(frame)[0].landmarks))
            faces = tracking.detect(frame)
            raw.append(eye_aspect_ratio(faces[0].landmarks))
            smoothed.append(eye_aspect_ratio(smoother.smooth(faces, i / 30.0)[0].landmarks))
            crop, _ = align(frame, faces[0].landmarks, 256, 2.2)
            t0 = time.perf_counter()
            found = crop_static.detect(crop)
            crop_ms.append((time.perf_counter() - t0) * 1e3)
            on_crop.append(eye_aspect_ratio(found[0].landmarks) if found else np.nan)
    finally:
        for d in (static, crop_static, tracking):
            d.close()
    crop_ok = ~np.isnan(on_crop)
    signals = {
        "tracking_raw": correlation(ruler, raw),
        "tracking_smoothed": correlation(ruler, smoothed),
        "static_on_aligned_crop": correlation(np.array(ruler)[crop_ok], np.array(on_crop)[crop_ok]),
        "static_on_aligned_crop_ms": round(float(np.median(crop_ms)), 2),
    }

    swapper = open_swapper(args.model or demo_model_path("a2b"))

    def eyes_r() -> float | None:
        result = evaluate(swapper, iter(frames), PipelineOptions(), None, n_frames=len(frames))
        return result.summary()["expression"]["eyes_corr"]

    shipped = eyes_r()
    baseline = float(np.percentile(ruler, 90))
    frame_index = {"next": 0}

    def oracle_closure(state: dict, landmarks: np.ndarray) -> float:  # the ruler's reading of this camera frame
        ear = ruler[min(frame_index["next"], len(ruler) - 1)]
        frame_index["next"] += 1
        return float(np.clip((baseline - ear) / (baseline * (1.0 - SHUT_RATIO)), 0.0, 1.0))

    original = pipeline.EyeFollower.closure
    pipeline.EyeFollower.closure = staticmethod(oracle_closure)  # type: ignore[method-assign]
    try:
        oracle = eyes_r()
    finally:
        pipeline.EyeFollower.closure = original  # type: ignore[method-assign]
    assert EyeFollower.closure is original
    doc = {
        "benchmark": "eye signal",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": described,
        "frames": len(frames),
        "model": str(swapper.path),
        "ruler": "static-mode FaceMesh EAR of the camera frames (swapcam eval's eye measure)",
        "ruler_std": round(float(np.std(ruler)), 4),
        "signals_r_with_ruler": signals,
        "following_eyes_r": {"shipped_follower": shipped, "oracle_follower": oracle},
    }
    print(f"eye signal on {described}, {len(frames)} frames (ruler std {doc['ruler_std']})")
    print(
        f"live signals vs the ruler: tracking raw r {signals['tracking_raw']}, smoothed r "
        f"{signals['tracking_smoothed']}, static pass on the aligned crop r {signals['static_on_aligned_crop']} "
        f"(+{signals['static_on_aligned_crop_ms']} ms per frame)"
    )
    print(f"eval eyes r: shipped follower {shipped}, oracle follower (the ruler's own reading) {oracle}")
    if args.json:
        print(f"wrote {atomic_write_json(args.json, doc, indent=2)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
