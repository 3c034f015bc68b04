"""Issue 18's independent check of the identity measure: on the carphone clip, `swapcam eval`'s distance_to_b must
be within 0.05 of an independent dlib run on the same frames.

The live pipeline runs over the upscaled carphone clip (640x480) with the shipped demo model and default options,
frame by frame with the clock eval uses (``processor.process(frame, index / 30)``, as realtime.eval.runner.evaluate
drives it). Each camera and output frame is then measured twice:

* dlib alone, as a user of the face_recognition package would: dlib's HOG frontal detector (upsampled once, the
  largest face), a shape predictor in its box (the 5-point one, face_recognition's default, and the 68-point one),
  the ResNet descriptor (no jitter); identity B is matplotlib's grace_hopper.jpg (what ``portrait("grace_hopper")``
  loads) read by dlib's own JPEG loader and measured the same way. No mediapipe, no code of realtime.eval.identity
  but its median/share arithmetic (``identity_block``, checked on hand-made numbers in tests/test_identity.py).
* the eval way: realtime.eval.identity's ``FaceRecognizer`` with each frame's mediapipe landmarks (a static
  FaceMesh, as eval's runner detects them), and B from the same photo with its landmarks.

It prints the medians (distance_to_b, distance_to_camera, camera_to_b, frames measured) and writes them as JSON:

    python benchmarks/identity_check.py --json benchmarks/results/identity-check-carphone.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from realtime.atomic import atomic_write_json  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOLERANCE = 0.05  # the bar: eval's distance_to_b within this of dlib's own run


class DlibAlone:
    """HOG detector + a shape predictor + the ResNet descriptor, straight from dlib: face_recognition's recipe."""

    def __init__(self, predictor: str) -> None:
        import dlib

        from realtime.eval.identity import model_path

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(model_path(predictor)))
        self.net = dlib.face_recognition_model_v1(str(model_path("recognition")))

    def descriptor(self, rgb: np.ndarray) -> np.ndarray | None:
        rects = self.detector(rgb, 1)
        if not len(rects):
            return None
        face = max(rects, key=lambda r: r.area())
        return np.array(self.net.compute_face_descriptor(rgb, self.predictor(rgb, face), 0), dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/demo/demo_a2b.onnx", help="swap model (default: the demo a2b)")
    parser.add_argument("--frames", type=int, default=None, help="frames of the clip to measure (default: all)")
    parser.add_argument(
        "--json", default="benchmarks/results/identity-check-carphone.json", help="write the numbers here"
    )
    args = parser.parse_args(argv)

    import dlib
    import matplotlib.cbook as cbook

    from realtime.builder import create_processor, open_swapper
    from realtime.eval.identity import FaceRecognizer, identity_block, reference_descriptor
    from realtime.landmarks import create_detector
    from realtime.pipeline import PipelineOptions
    from realtime.samples import talking_clip

    t0 = time.perf_counter()
    model = Path(args.model)
    swapper = open_swapper(model if model.is_absolute() else REPO / model)
    frames, fps = talking_clip((640, 480))
    if args.frames is not None:
        frames = frames[: args.frames]
    outputs = []
    with create_processor(swapper, PipelineOptions()) as processor:
        for index, camera in enumerate(frames):
            outputs.append(processor.process(camera, index / 30.0).copy())
    pipeline_s = time.perf_counter() - t0

    # dlib alone: B from the JPEG as dlib reads it, every frame by dlib's own detector
    grace_path = str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    grace_rgb = dlib.load_rgb_image(grace_path)
    alone: dict[str, dict] = {}
    for predictor in ("five_point", "sixty_eight"):
        recognizer = DlibAlone(predictor)
        reference = recognizer.descriptor(grace_rgb)
        if reference is None:
            raise SystemExit(f"dlib finds no face in {grace_path}")
        out_d = [recognizer.descriptor(np.ascontiguousarray(f[:, :, ::-1])) for f in outputs]
        cam_d = [recognizer.descriptor(np.ascontiguousarray(f[:, :, ::-1])) for f in frames]
        block = identity_block(out_d, cam_d, reference)
        if predictor == "sixty_eight":  # dlib then fits the chip to the 68-point shape instead
            block["method"] = block["method"].replace("5-point", "68-point")
        alone[predictor] = block

    # the eval way: mediapipe landmarks of each frame, FaceRecognizer in their box
    eval_recognizer = FaceRecognizer()
    detector = create_detector("mediapipe", mode="static", max_faces=1)
    try:
        detector.warmup()

        def with_landmarks(image):
            found = detector.detect(image)
            return (image, found[0].landmarks if found else None)

        from realtime.samples import portrait

        grace = portrait("grace_hopper").image
        grace_faces = detector.detect(grace)
        reference = reference_descriptor(eval_recognizer, [(grace, grace_faces[0].landmarks)])

        def measured(images):
            pairs = [with_landmarks(image) for image in images]
            return [eval_recognizer.descriptor(i, lm) if lm is not None else None for i, lm in pairs]

        eval_way = identity_block(measured(outputs), measured(frames), reference)
    finally:
        detector.close()
    elapsed = time.perf_counter() - t0

    main_block = alone["five_point"]
    gaps = {
        key: (
            None if eval_way[key] is None or main_block[key] is None else round(abs(eval_way[key] - main_block[key]), 4)
        )
        for key in ("distance_to_b", "distance_to_camera", "camera_to_b")
    }
    doc = {
        "check": "identity: swapcam eval's dlib distance_to_b vs an independent dlib run on the same output frames",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": str(model),
        "source": f"carphone, upscaled to 640x480, {len(frames)} frames at {fps:g} fps",
        "reference_b": "matplotlib sample_data/grace_hopper.jpg",
        "dlib_alone": {
            "how": "dlib HOG detector (upsample 1, largest face) + shape predictor + ResNet descriptor, no jitter; "
            "B measured the same way on the JPEG as dlib.load_rgb_image reads it",
            "five_point": alone["five_point"],
            "sixty_eight": alone["sixty_eight"],
        },
        "eval_way": {
            "how": "realtime.eval.identity.FaceRecognizer in the box from each frame's mediapipe landmarks "
            "(static FaceMesh); B from the same photo with its landmarks",
            **eval_way,
        },
        "gap_eval_vs_dlib_five_point": gaps,
        "tolerance": TOLERANCE,
        "within_tolerance": gaps["distance_to_b"] is not None and gaps["distance_to_b"] <= TOLERANCE,
        "seconds": {"pipeline": round(pipeline_s, 1), "total": round(elapsed, 1)},
    }

    def line(name: str, block: dict) -> str:
        return (
            f"{name:<22} distance_to_b {block['distance_to_b']}, distance_to_camera {block['distance_to_camera']}, "
            f"camera_to_b {block['camera_to_b']}, share_b {block['share_b']}, retrieval {block['retrieval']}, "
            f"frames {block['frames']} (both {block['frames_both']})"
        )

    print(f"identity check: {doc['source']}, model {model.name}")
    print(line("dlib alone, 5-point", alone["five_point"]))
    print(line("dlib alone, 68-point", alone["sixty_eight"]))
    print(line("eval way (mediapipe)", eval_way))
    print(
        f"distance_to_b gap {gaps['distance_to_b']} (tolerance {TOLERANCE}): "
        + ("within" if doc["within_tolerance"] else "NOT within")
    )
    if args.json:
        print(f"wrote {atomic_write_json(args.json, doc, indent=2)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
