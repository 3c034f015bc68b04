"""Which identity ruler sees blur: a model that draws Grace Hopper's photo (B) on every face of the astronaut clip,
sharp and blurred (Gaussian sigma 0-4 px of its 128 px crop), measured by eval's older pixel score
(identity_towards_b: +1 = B) and by the face-recognition network (dlib's descriptor: distance to B, lower = B).

    .venv/bin/python benchmarks/identity_vs_blur.py [--json benchmarks/results/identity-vs-blur.json]

A ruler that a blurry swap cannot fool must lose B as the face loses detail.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SIGMAS = (0.0, 1.0, 1.5, 2.5, 4.0)


def main(argv: list[str] | None = None) -> int:
    from _live_fixtures import frozen_model

    from realtime.align import align
    from realtime.atomic import atomic_write_json
    from realtime.builder import open_swapper
    from realtime.eval import measures, runner
    from realtime.eval.identity import FaceRecognizer, reference_descriptor
    from realtime.landmarks import create_detector
    from realtime.pipeline import PipelineOptions
    from realtime.samples import portrait, synthetic_clip

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "identity-vs-blur.json"))
    args = parser.parse_args(argv)
    grace = portrait("grace_hopper").image
    detector = create_detector("mediapipe", mode="static")
    detector.warmup()
    landmarks = detector.detect(grace)[0].landmarks
    detector.close()
    recognizer = FaceRecognizer()
    descriptor = reference_descriptor(recognizer, [(grace, landmarks)])
    pixels = measures.identity_reference(grace, landmarks, 128, 1.6)
    frames = synthetic_clip("astronaut", n_frames=40, size=(640, 480), fps=10.0, seed=3, motion=1.5).frames[::2]
    crop, _ = align(grace, landmarks, 128, 1.6)
    rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sigma in SIGMAS:
            face = cv2.GaussianBlur(rgb, (0, 0), sigma) if sigma else rgb
            model = frozen_model(Path(tmp) / f"b-{sigma}.onnx", face)
            summary = runner.evaluate(
                open_swapper(model, providers="cpu"),
                frames,
                PipelineOptions(colour="none", mouth="swap"),
                pixels,
                n_frames=len(frames),
                recognizer=recognizer,
                reference_descriptor=descriptor,
            ).summary()
            row = {"blur_sigma_px": sigma, "pixel_towards_b": summary["identity_towards_b"], **summary["identity"]}
            rows.append(row)
            print(
                f"blur {sigma:.1f} px: pixel score towards B {row['pixel_towards_b']:+.3f}; face recognition: "
                f"distance to B {row['distance_to_b']:.3f}, closer to B than to camera {row['retrieval']:.0%}"
            )
    doc = {"study": "identity ruler vs blur", "clip": "synthetic astronaut, 20 frames", "runs": rows}
    print(f"wrote {atomic_write_json(args.json, doc, indent=2)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
