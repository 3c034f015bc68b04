"""The README's quality table, from the JSON of `benchmarks/eval_demo.sh PREFIX` (default prefix: quality).

    python benchmarks/quality_table.py [--prefix quality] [--readme README.md] [--check]

Reads benchmarks/results/PREFIX-{a2b-carphone,a2b-expressions,b2a-expressions,a2b-occluders,a2b-swap,a2b-self,
b2a-self}.json and rewrites the block between the README's quality-table markers (``--check``: exit 1 if the
README's block differs from what the JSON gives, without writing). `benchmarks/quality.sh` runs the evals and then this.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- quality-table:begin -->", "<!-- quality-table:end -->"
RUNS = (
    ("a2b-carphone", "carphone (real man talking)"),
    ("a2b-expressions", "expression clip (astronaut, truth)"),
    ("b2a-expressions", "expression clip (Grace -> astronaut, truth)"),
    ("a2b-occluders", "occluder clip (astronaut, truth)"),
    ("a2b-swap", "astronaut -> Grace (synthetic)"),
    ("a2b-self", "Grace -> Grace (self)"),
    ("b2a-self", "astronaut -> astronaut (self)"),
)
DASH = "–"


def _get(doc: dict[str, Any] | None, *keys: str) -> Any:
    value: Any = doc
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    return DASH if value is None else fmt.format(value)


def rows(docs: dict[str, dict[str, Any] | None]) -> list[tuple[str, list[str], str]]:
    """(measure, one cell per run, how it is measured)."""

    def cells(fn) -> list[str]:
        return [fn(docs.get(run)) if docs.get(run) else DASH for run, _ in RUNS]

    def pose(d: dict[str, Any]) -> str:
        axes = [_get(d, "pose", axis, "median_abs_error") for axis in ("yaw", "pitch", "roll")]
        p95 = max(
            (v for v in (_get(d, "pose", a, "p95_abs_error") for a in ("yaw", "pitch", "roll")) if v), default=None
        )
        return " / ".join(_num(v, "{:.1f}") for v in axes) + f" ({_num(p95, '{:.1f}')})"

    return [
        (
            "identity: distance output -> B (lower = more B)",
            cells(lambda d: _num(_get(d, "identity", "distance_to_b"))),
            "dlib ResNet face descriptor, median L2 over frames; same person < 0.6",
        ),
        (
            "identity: output -> camera face / camera -> B",
            cells(
                lambda d: (
                    f"{_num(_get(d, 'identity', 'distance_to_camera'))} / {_num(_get(d, 'identity', 'camera_to_b'))}"
                )
            ),
            "the same descriptor: how far the output moved from the camera person, and how far apart the two are",
        ),
        (
            "identity: frames within 0.6 of B / closer to B than to camera",
            cells(
                lambda d: (
                    f"{_num(_get(d, 'identity', 'share_b'), '{:.0%}')} / "
                    f"{_num(_get(d, 'identity', 'retrieval'), '{:.0%}')}"
                )
            ),
            "share of frames (retrieval: output nearer B's reference than that frame's camera face)",
        ),
        (
            "mouth r / eyes r, output vs camera",
            cells(
                lambda d: f"{_num(_get(d, 'expression', 'mouth_corr'))} / {_num(_get(d, 'expression', 'eyes_corr'))}"
            ),
            "Pearson r over frames of mouth openness / eye aspect ratio, mediapipe static landmarks on both",
        ),
        (
            "against the drawn truth: eyes r / mouth r",
            cells(
                lambda d: (
                    f"{_num(_get(d, 'truth', 'eyes_corr'))} / {_num(_get(d, 'truth', 'mouth_corr'))}"
                    if _get(d, "truth", "clip") == "expressions"
                    else DASH
                )
            ),
            "output's eye aspect ratio vs drawn openness, mouth openness vs drawn lip gap",
        ),
        (
            "blink recall / smile kept",
            cells(
                lambda d: (
                    f"{_num(_get(d, 'truth', 'blink_recall'), '{:.0%}')} / {_num(_get(d, 'truth', 'smile_kept'))}"
                    if _get(d, "truth", "clip") == "expressions"
                    else DASH
                )
            ),
            "drawn-shut frames that read shut on the output; output's corner lift gain / camera's in the held smile",
        ),
        (
            "occluder kept / PSNR over it",
            cells(
                lambda d: (
                    f"{_num(_get(d, 'truth', 'occluder_kept'), '{:.0%}')} / "
                    f"{_num(_get(d, 'truth', 'occluder_psnr_db'), '{:.1f}')} dB"
                    if _get(d, "truth", "clip") == "occluders"
                    else DASH
                )
            ),
            "occluder pixels over the drawn face left as the camera's (within 12 grey levels)",
        ),
        (
            "pose error yaw / pitch / roll, median (worst p95), degrees",
            cells(pose),
            "solvePnP of 24 rigid landmarks on a 3-D template, camera vs output",
        ),
        (
            "self-reconstruction PSNR / SSIM (ceiling)",
            cells(
                lambda d: (
                    f"{_num(_get(d, 'reconstruction', 'psnr_db'), '{:.1f}')} dB / "
                    f"{_num(_get(d, 'reconstruction', 'ssim'))} "
                    f"({_num(_get(d, 'reconstruction', 'ceiling_psnr_db'), '{:.1f}')})"
                    if _get(d, "reconstruction", "ceiling_psnr_db") is not None
                    else DASH
                )
            ),
            "inside the face at frame resolution; ceiling: a perfect model of the same crop size",
        ),
        (
            "flicker (head still) / seams",
            cells(
                lambda d: (
                    f"{_num(d.get('flicker_excess'))} ({_num(d.get('flicker_excess_still'))}) / "
                    f"{_num(d.get('seam_excess'))}"
                )
            ),
            "grey levels the output changes per frame beyond the camera; Sobel edge added in the blend band",
        ),
    ]


def table(docs: dict[str, dict[str, Any] | None], prefix: str) -> str:
    head = "| measure | " + " | ".join(name for _, name in RUNS) + " | how |"
    lines = [BEGIN, head, "|" + "---|" * (len(RUNS) + 2)]
    for measure, values, how in rows(docs):
        lines.append(f"| {measure} | " + " | ".join(values) + f" | {how} |")
    lines.append("")
    lines.append(
        f"`benchmarks/quality.sh` regenerates this table (`benchmarks/results/{prefix}-*.json` and contact sheets "
        f"`{prefix}-*.jpg`)."
    )
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", default="quality", help="result file prefix given to eval_demo.sh")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="folder of the JSON files")
    parser.add_argument("--readme", default=str(ROOT / "README.md"), help="the README whose table block is rewritten")
    parser.add_argument("--check", action="store_true", help="only check that the README's table is up to date")
    args = parser.parse_args(argv)
    docs: dict[str, dict[str, Any] | None] = {}
    for run, _ in RUNS:
        path = Path(args.results) / f"{args.prefix}-{run}.json"
        docs[run] = json.loads(path.read_text()) if path.is_file() else None
    if not any(docs.values()):
        print(f"quality_table: no {args.prefix}-*.json in {args.results}; run benchmarks/quality.sh", file=sys.stderr)
        return 2
    readme = Path(args.readme)
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print(f"quality_table: {readme} has no {BEGIN} ... {END} block", file=sys.stderr)
        return 2
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + table(docs, args.prefix) + text[stop:]
    if args.check:
        if new != text:
            print(f"quality_table: {readme}'s table differs from {args.prefix}-*.json", file=sys.stderr)
            return 1
        print("quality_table: up to date")
        return 0
    tmp = readme.with_name(readme.name + ".part")
    tmp.write_text(new)
    tmp.replace(readme)
    print(f"quality_table: wrote the table into {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
