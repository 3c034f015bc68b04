"""Measure how good a swap looks: run the live pipeline on every frame of a clip and measure camera vs output.

The output frames get their own landmark pass (a separate mediapipe FaceMesh in static mode, the same detector on
camera and output frames, independent of the pipeline's tracker), so what is measured is what a viewer sees.
Per clip, with the method of each:

- coverage: share of frames in which the pipeline swapped a face.
- expression: Pearson correlation over time, camera vs output, of mouth openness (mean inner-lip gap, 68-point
  61-67, 62-66, 63-65, over the eye-centre distance) and of eye openness (eye aspect ratio, both eyes averaged).
  Undefined (null) when the camera's own value barely moves (std < 0.02, landmark jitter): nothing to follow.
- pose: yaw, pitch, roll in degrees, camera vs output, from a perspective-n-point solve (OpenCV solvePnP) of 24
  rigid landmarks against a 3-D face template, taken against the line of sight to the face
  (realtime.landmarks.measures.head_pose_degrees). Correlation, median and p95 absolute error per axis.
- identity (the field's ruler): dlib's ResNet face descriptor (the ``eval`` extra: dlib-bin, face-recognition-models;
  a network no one here trained), Euclidean distances, dlib's same-person line 0.6. With B's reference (``--ref-b``,
  an image or a faceset's crops; by default the model's B when it is a sample portrait): ``distance_to_b`` (median,
  output to B), ``distance_to_camera`` (output to the camera face of the same frame), ``camera_to_b`` (how far apart
  the two people are to begin with), ``share_b`` (frames within 0.6 of B) and ``retrieval`` (frames where the output
  is closer to B than to the camera person). Without the extra, eval says how to install it and goes on.
- identity_towards_b (the older pixel score): both faces aligned to the model's crop, blurred grey levels
  z-normalised; d = mean |z_x - z_y| inside both hulls; (d(out, camera) - d(out, B)) / d(camera, B), -1 = the
  camera's person, +1 = B's picture. Blur fools it (see the README); kept for comparison with older runs.
- reconstruction (meaningful when the source IS identity B, so an a2b model should give it back): PSNR and SSIM,
  output vs camera, at frame resolution inside the camera face's landmark hull. ``--ceiling`` also runs the clip
  through a pass-through "model" of the same size and framing (it returns its input crop, mask all ones) with the
  same compositing: the best any model of that crop size can score here, since the crop's resolution and the
  paste-back resampling already lose detail the frame has.
- flicker: mean absolute grey-level change from the previous frame inside the face hull, output minus camera
  (0 = the swap adds no flicker of its own). Head motion counts too (a sharper face than the camera's, or one that
  lags the head, changes more when the head moves), so it is also given over the still half of the frames alone
  (``flicker_excess_still``: those whose camera landmarks moved less than the median, eyes-to-brows points): the
  jitter the swap adds when nothing moves.
- seams: where the blend mask is in its feathered band (0.05..0.95), the mean of the Sobel gradient magnitude the
  output adds over the camera's (only increases count; 0 = no edge added at the mask boundary).
- against known truth (``--truth``, a `swapcam make-clip --expressions/--occluders` clip's truth JSON, found beside
  the video by default): eyes / mouth r against the drawn schedule, blink recall, smile kept, occluder kept and the
  PSNR over the occluder (realtime.eval.truth says how each is measured).
- a contact sheet (camera | output) of evenly spaced frames, JPEG (at most 300 KB) or PNG by the file's suffix.

Example: `swapcam eval --source synthetic:grace_hopper --json eval.json --sheet eval.jpg` (the demo model, which
gives Grace Hopper back from a clip of Grace Hopper).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from realtime.errors import SwapcamError
from realtime.eval.runner import (
    PassThroughSwapper,
    Reference,
    contact_sheet,
    evaluate,
    load_reference,
    source_frames,
)
from realtime.eval.truth import Truth, load_truth


# ------------------------------------------------------------------------------------------------ the command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from realtime.builder import add_model_arguments
    from realtime.live import add_compositing_arguments

    add_model_arguments(parser)
    parser.add_argument(
        "--source",
        default="synthetic:grace_hopper",
        help="the clip: a video file, an image, or 'synthetic[:astronaut|grace_hopper]' (the built-in "
        "camera-like clip; with the default demo model, synthetic:grace_hopper is identity B "
        "itself, so the a2b model must give it back: the self-reconstruction case)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        help="frames to evaluate; when left out, the whole video (90 for a synthetic clip)",
    )
    parser.add_argument(
        "--ref-b",
        default=None,
        help="identity B for the identity measures: an image or a faceset folder (up to 32 of its crops, "
        "evenly picked); when left out, the model's B identity if it is a shipped sample portrait, else no "
        "identity measures",
    )
    parser.add_argument(
        "--truth",
        default=None,
        help="the truth JSON of a `swapcam make-clip --expressions/--occluders` clip (what was drawn: blinks, "
        "squint, mouth, smile, occluder masks); when left out, SOURCE's own <stem>.truth.json if it lies beside "
        "the video",
    )
    parser.add_argument(
        "--no-face-recognition",
        action="store_true",
        help="skip identity by the face-recognition network (dlib's ResNet descriptor, the eval extra) even "
        "when it is installed; the pixel identity score is still given",
    )
    add_compositing_arguments(parser)  # the pipeline's options, as `swapcam live` has them
    parser.add_argument("--width", type=int, default=640, help="synthetic clip width")
    parser.add_argument("--height", type=int, default=480, help="synthetic clip height")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    parser.add_argument(
        "--sheet",
        default=None,
        help="write a contact sheet (camera | output, evenly spaced frames): .jpg (at most 300 KB) or .png",
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also run the clip through a pass-through model of the same crop size and framing (its input crop "
        "back, mask all ones) with the same compositing, and report its reconstruction PSNR/SSIM: the best any "
        "model of that size can score on this clip (twice the run time)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def f(v: Any, fmt: str = "{:.3f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def format_report(summary: dict[str, Any]) -> str:
    e, p, r = summary["expression"], summary["pose"], summary["reconstruction"]
    lines = [
        f"frames {summary['frames']}, coverage {f(summary['coverage'], '{:.1%}')}, "
        f"output face found {f(summary['output_face_found'], '{:.1%}')}",
        f"expression: mouth r {f(e['mouth_corr'])}, eyes r {f(e['eyes_corr'])}",
        "pose (degrees, error median / p95): "
        + ", ".join(
            f"{axis} r {f(p[axis]['corr'])} err {f(p[axis]['median_abs_error'], '{:.1f}')} / "
            f"{f(p[axis]['p95_abs_error'], '{:.1f}')}"
            for axis in ("yaw", "pitch", "roll")
        ),
        identity_line(summary.get("identity")),
        f"identity towards B (pixel score): {f(summary['identity_towards_b'])}",
        f"reconstruction: PSNR {f(r['psnr_db'], '{:.2f}')} dB, SSIM {f(r['ssim'])}"
        + (
            f" (ceiling at this crop size: {f(r['ceiling_psnr_db'], '{:.2f}')} dB, {f(r['ceiling_ssim'])})"
            if "ceiling_psnr_db" in r
            else ""
        ),
        f"flicker excess {f(summary['flicker_excess'], '{:.2f}')} grey levels "
        f"(head still: {f(summary.get('flicker_excess_still'), '{:.2f}')}), "
        f"seam excess {f(summary['seam_excess'], '{:.2f}')} grey levels/px",
    ]
    t = summary.get("truth")
    if t and t["clip"] == "expressions":
        lines.append(
            f"against the drawn truth: eyes r {f(t['eyes_corr'])} (camera {f(t['camera_eyes_corr'])}), "
            f"mouth r {f(t['mouth_corr'])} (camera {f(t['camera_mouth_corr'])}), blink recall "
            f"{f(t['blink_recall'], '{:.0%}')} of {t['shut_frames']} shut frames "
            f"(absolute rule {f(t.get('blink_recall_absolute'), '{:.0%}')}), "
            f"smile kept {f(t['smile_kept'], '{:.2f}')}"
        )
    elif t:
        lines.append(
            f"against the drawn truth: occluder kept {f(t['occluder_kept'], '{:.1%}')} of {t['occluder_pixels']} "
            f"pixels over the face in {t['occluded_frames']} frames, PSNR there {f(t['occluder_psnr_db'], '{:.1f}')} dB"
        )
    return "\n".join(lines)


def identity_line(block: dict[str, Any] | None) -> str:
    if not block:
        return "identity (face recognition): not measured"
    return (
        f"identity (face recognition, L2, same person < {block['threshold']}): "
        f"output to B {f(block['distance_to_b'])}, "
        f"to camera {f(block['distance_to_camera'])}, camera to B {f(block['camera_to_b'])}; "
        f"within {block['threshold']} of B {f(block['share_b'], '{:.0%}')}, closer to B than to camera "
        f"{f(block['retrieval'], '{:.0%}')} of {block['frames']} frames"
    )


def face_recognition(reference: Reference | None, skip: bool):
    """(recognizer, B's descriptor), or (None, None) with one line saying why when it cannot be measured."""
    if reference is None or skip:
        return None, None
    from realtime.eval.identity import FaceRecognizer, missing, reference_descriptor

    why = missing()
    if why is not None:
        print(f"swapcam eval: identity by face recognition skipped: {why}")
        return None, None
    recognizer = FaceRecognizer()
    descriptor = reference_descriptor(recognizer, reference.faces)
    if descriptor is None:
        print(f"swapcam eval: identity by face recognition skipped: no face descriptor from {reference.where}")
        return None, None
    return recognizer, descriptor


def find_truth(spec: str | None, source: str) -> Truth | None:
    """--truth, else SOURCE's <stem>.truth.json when it lies beside a video file."""
    if spec is not None:
        return load_truth(spec)
    beside = Path(source).with_suffix(".truth.json")
    if Path(source).is_file() and beside.is_file():
        print(f"swapcam eval: truth from {beside}")
        return load_truth(beside)
    return None


def run(args: argparse.Namespace) -> int:
    from realtime.atomic import atomic_write_image, atomic_write_json
    from realtime.builder import open_swapper
    from realtime.landmarks import create_detector
    from realtime.live import compositing_options
    from realtime.pipeline import PipelineOptions

    if args.frames is not None and args.frames < 2:
        raise SwapcamError(f"--frames {args.frames}: expected >= 2")
    options = PipelineOptions(**compositing_options(args))
    options.validate()
    swapper = open_swapper(args.model, providers=args.providers, threads=args.threads)
    frames, total, described = source_frames(args.source, args.frames, args.width, args.height)
    detector = create_detector("mediapipe", mode="static", max_faces=1)
    try:
        detector.warmup()
        reference = load_reference(args.ref_b, swapper, detector)
        recognizer, reference_descriptor = face_recognition(reference, args.no_face_recognition)
        truth = find_truth(args.truth, args.source)
        t0 = time.perf_counter()
        result = evaluate(
            swapper,
            frames,
            options,
            reference.pixels if reference else None,
            n_frames=total,
            detector=detector,
            progress=not args.no_progress,
            recognizer=recognizer,
            reference_descriptor=reference_descriptor,
            truth=truth,
        )
        ceiling = None
        if args.ceiling:
            frames, total, _ = source_frames(args.source, args.frames, args.width, args.height)
            ceiling = evaluate(
                PassThroughSwapper(swapper.info),
                frames,
                options,
                None,
                n_frames=total,
                detector=detector,
                sheet_rows=0,
                progress=not args.no_progress,
            ).summary()["reconstruction"]
        elapsed = time.perf_counter() - t0
    finally:
        detector.close()
    if not result.frames:
        raise SwapcamError(f"--source {args.source}: no frame could be read")
    summary = result.summary()
    if ceiling is not None:
        summary["reconstruction"].update(ceiling_psnr_db=ceiling["psnr_db"], ceiling_ssim=ceiling["ssim"])
    doc = {
        "eval": "swapcam quality",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {
            "path": str(swapper.path),
            "size": swapper.info.size,
            "preset": swapper.info.preset,
            "coverage": swapper.info.coverage,
            "identities": list(getattr(swapper.info, "identities", []) or []),
        },
        "source": described,
        "reference_b": reference.where if reference else None,
        "options": compositing_options(args),
        "seconds": round(elapsed, 1),
        **summary,
    }
    print(f"swapcam eval: {described}, model {Path(swapper.path).name} ({swapper.info.size} px)")
    print(format_report(summary))
    if args.json:
        print(f"wrote {atomic_write_json(args.json, doc, indent=2)}")
    if args.sheet:
        title = f"{Path(swapper.path).name} on {described}"
        print(f"wrote {atomic_write_image(args.sheet, contact_sheet(result.sheet_pairs, title))}")
    return 0
