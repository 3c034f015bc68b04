"""How far dlib's face descriptor moves when only the mouth changes, on the real photos (no model involved): each
sample portrait against itself with its lips closed by realtime.expressions.lip_close_warp (amount 0.5 and 1;
the astronaut smiles with her teeth, Grace Hopper's lips are already closed and only thin). The identity guard of
`swapcam eval` (distance to B) uses B's one photo as the reference, so a swap that follows a closed-mouth camera
person is measured against a toothy smile. JSON to --json; needs the eval extra (dlib).

    .venv/bin/python benchmarks/lip_close_identity.py --json benchmarks/results/lip-close-identity.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.atomic import atomic_write_json  # noqa: E402
from realtime.errors import SwapcamError  # noqa: E402
from realtime.eval.identity import FaceRecognizer, distance  # noqa: E402
from realtime.expressions import lip_close_warp  # noqa: E402
from realtime.landmarks import create_detector  # noqa: E402
from realtime.landmarks.measures import mouth_openness  # noqa: E402
from realtime.samples import portrait  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", required=True, help="where to write the measurements")
    args = parser.parse_args()
    detector, recognizer = create_detector("mediapipe", mode="static"), FaceRecognizer()
    rows = []
    for name in ("astronaut", "grace_hopper"):
        image = portrait(name).image
        lm = detector.detect(image)[0].landmarks.astype(np.float64)
        reference = recognizer.descriptor(image, lm)
        assert reference is not None, name
        for amount in (0.5, 1.0):
            closed = lip_close_warp(image, lm, amount)[0]
            seen = detector.detect(closed)[0].landmarks
            found = recognizer.descriptor(closed, seen)
            assert found is not None, (name, amount)
            rows.append(
                {
                    "portrait": name,
                    "close_amount": amount,
                    "mouth_open_before": round(mouth_openness(lm), 4),
                    "mouth_open_after": round(mouth_openness(seen), 4),
                    "distance_to_own_photo": round(distance(reference, found), 4),
                }
            )
            print(
                f"{name} lips closed {amount:.1f}: mouth {rows[-1]['mouth_open_before']:.3f} -> "
                f"{rows[-1]['mouth_open_after']:.3f}, dlib distance to the unwarped photo "
                f"{rows[-1]['distance_to_own_photo']:.3f}"
            )
    detector.close()
    result = {
        "method": "dlib ResNet descriptor (as swapcam eval), photo vs the same photo with its lips closed by "
        "realtime.expressions.lip_close_warp; mouth openness read by a static mediapipe face mesh",
        "rows": rows,
    }
    atomic_write_json(args.json, result, indent=2)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except SwapcamError as exc:  # the eval extra (dlib) missing, said in one line
        raise SystemExit(f"lip_close_identity: {exc}") from None
