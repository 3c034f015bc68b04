"""realtime.eval.truth on hand-made cases whose answers are known: landmark series that follow the drawn schedule
(or do not), outputs that keep or paint over an occluder, and truth files that are broken in the ways a user's
would be."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from realtime.errors import SwapcamError
from realtime.eval import truth as tr
from realtime.expressions import moved_landmarks
from realtime.landmarks.measures import eye_distance


def _schedule(n: int = 60) -> dict[str, np.ndarray]:
    eyes, mouth, smile = np.zeros(n), np.zeros(n), np.zeros(n)
    eyes[5:8] = 1.0  # two blinks
    eyes[30:33] = 1.0
    mouth[12:20] = np.sin(np.linspace(0, np.pi, 8)) * 0.3
    smile[40:52] = 1.0
    return {"eyes": eyes, "mouth": mouth, "smile": smile}


def _smiled(lm: np.ndarray, amount: float) -> np.ndarray:
    """Mouth corners lifted by ``amount`` x 0.1 eye distances (image y up)."""
    out = lm.copy()
    out[[48, 54], 1] -= amount * 0.1 * eye_distance(lm)
    return out


def _series(lm: np.ndarray, schedule: dict[str, np.ndarray], follow: float = 1.0) -> list[np.ndarray]:
    return [
        _smiled(moved_landmarks(lm, mouth=follow * m, eyes=follow * 0.9 * e), follow * s)
        for e, m, s in zip(schedule["eyes"], schedule["mouth"], schedule["smile"], strict=True)
    ]


def _truth(schedule, landmarks, masks=None) -> tr.Truth:
    n = len(schedule["eyes"])
    return tr.Truth(
        "expressions" if masks is None else "occluders",
        n,
        (200, 200),
        np.asarray(landmarks, np.float64),
        schedule,
        {},
        masks,
        Path("truth.json"),
    )


def test_an_output_that_follows_the_schedule_scores_like_the_camera(portrait_landmarks):
    lm = portrait_landmarks["grace_hopper"].astype(np.float64)
    schedule = _schedule()
    camera = _series(lm, schedule)
    block = tr.expression_block(_truth(schedule, camera), camera, camera)
    assert block["eyes_corr"] > 0.95 and block["mouth_corr"] > 0.95
    assert block["blink_recall"] == 1.0 and block["shut_frames"] == 6
    assert block["smile_kept"] == pytest.approx(1.0)
    assert block["smile_lift_camera"] == pytest.approx(0.1, abs=0.02)
    assert block["smile_frames"] == 12


def test_a_neutral_output_keeps_no_smile_and_misses_the_blinks(portrait_landmarks):
    lm = portrait_landmarks["grace_hopper"].astype(np.float64)
    schedule = _schedule()
    camera = _series(lm, schedule)
    frozen = [lm.copy() for _ in camera]
    block = tr.expression_block(_truth(schedule, camera), camera, frozen)
    assert block["smile_kept"] == pytest.approx(0.0, abs=1e-6)
    assert block["blink_recall"] == 0.0
    assert block["eyes_corr"] == 0.0 and block["mouth_corr"] == 0.0  # a frozen output follows nothing
    half = _series(lm, schedule, follow=0.5)
    assert tr.expression_block(_truth(schedule, camera), camera, half)["smile_kept"] == pytest.approx(0.5, abs=0.02)
    # frames where the output has no face are left out, not counted as neutral
    missing = [None if 40 <= i < 46 else f for i, f in enumerate(camera)]
    assert tr.expression_block(_truth(schedule, camera), camera, missing)["smile_kept"] == pytest.approx(1.0)


def _narrow_eyes(lm: np.ndarray, k: float) -> np.ndarray:
    """The eyes' height scaled by k about each eye's middle: a face with narrower eyes (EAR x k, open and shut)."""
    out = lm.copy()
    for eye in (slice(36, 42), slice(42, 48)):
        middle = out[eye, 1].mean()
        out[eye, 1] = middle + k * (out[eye, 1] - middle)
    return out


def test_blink_recall_asks_each_face_for_the_same_share_of_its_own_open_eye(portrait_landmarks):
    """A drawn face with narrower eyes than the camera's (its eyes 0.3 as tall, open and shut alike) blinking
    exactly when the camera does: it closes by the same share of its open eye, so the relative rule counts every shut
    frame; the absolute rule (the camera's drop in EAR units, kept as blink_recall_absolute) counts none, since the
    narrow eye cannot drop that far. A half-hearted blink (the lids a third of the way) counts under neither."""
    lm = portrait_landmarks["astronaut"].astype(np.float64)
    schedule = _schedule()
    camera = _series(lm, schedule)
    narrow = [_narrow_eyes(f, 0.3) for f in camera]
    block = tr.expression_block(_truth(schedule, camera), camera, narrow)
    assert block["blink_recall"] == 1.0 and block["blink_recall_absolute"] == 0.0
    assert block["camera_blink_recall"] == 1.0
    weak = [
        _narrow_eyes(moved_landmarks(lm, mouth=m, eyes=0.3 * e), 0.3)
        for e, m in zip(schedule["eyes"], schedule["mouth"], strict=True)
    ]
    weak_block = tr.expression_block(_truth(schedule, camera), camera, weak)
    assert weak_block["blink_recall"] == 0.0 and weak_block["blink_recall_absolute"] == 0.0


def test_occluder_kept_counts_only_the_pixels_inside_the_face(portrait_landmarks):
    rng = np.random.default_rng(0)
    lm = portrait_landmarks["astronaut"].astype(np.float64)
    lm = (lm - lm.min(0)) / np.ptp(lm, 0).max() * 120 + 40  # a face in a 200 x 200 frame
    camera = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    masks = np.zeros((3, 200, 200), np.uint8)
    masks[1, 100:160, 60:140] = 1  # over the lower face
    masks[1, 0:20, 0:20] = 1  # outside the face: never counted
    truth = _truth({k: np.zeros(3) for k in ("eyes", "mouth", "smile")}, [lm] * 3, masks)
    kept = tr.occluder_pixels(truth, 1, camera, camera.copy())
    assert kept is not None and kept.kept == kept.total > 0
    assert tr.occluder_pixels(truth, 0, camera, camera) is None  # no occluder in frame 0
    assert kept.total == int((masks[1].astype(bool) & tr.hull_region(lm, (200, 200))).sum())
    painted = camera.copy()
    painted[100:130, 60:140] = 255 - painted[100:130, 60:140]  # the swap paints over the top half of the occluder
    half = tr.occluder_pixels(truth, 1, camera, painted)
    block = tr.occlusion_block([None, half, None])
    assert 0.3 < block["occluder_kept"] < 0.7
    assert block["occluder_psnr_db"] < 15
    full = tr.occlusion_block([None, kept, None])
    assert full["occluder_kept"] == 1.0 and full["occluder_psnr_db"] == 99.0  # identical: capped, not infinite
    slightly = np.clip(camera.astype(int) + tr.KEEP_TOLERANCE, 0, 255).astype(np.uint8)
    assert tr.occlusion_block([tr.occluder_pixels(truth, 1, camera, slightly)])["occluder_kept"] == 1.0


def test_load_truth_reads_a_file_and_names_what_is_wrong(tmp_path, portrait_landmarks):
    lm = portrait_landmarks["astronaut"].astype(np.float64)
    n = 4
    doc = {
        "clip": "occluders",
        "portrait": "astronaut",
        "frames": n,
        "fps": 30.0,
        "size": [200, 100],
        "seed": 0,
        "video": "clip.mp4",
        "landmarks": [lm.tolist()] * n,
        "schedule": {k: [0.0] * n for k in ("eyes", "mouth", "smile")},
        "events": {"hand": [[1, 3]], "bar": []},
        "masks": "clip.masks.npz",
        "occluded": [False, True, True, False],
    }
    masks = np.zeros((n, 100, 200), np.uint8)
    masks[1:3, 10:20, 10:20] = 1
    np.savez_compressed(tmp_path / "clip.masks.npz", masks=masks)
    path = tmp_path / "clip.truth.json"
    path.write_text(json.dumps(doc))
    truth = tr.load_truth(path)
    assert truth.clip == "occluders" and truth.size == (200, 100) and truth.events["hand"] == [(1, 3)]
    np.testing.assert_array_equal(truth.masks, masks)

    def broken(change: dict, words: str) -> None:
        bad = tmp_path / "bad.truth.json"
        bad.write_text(json.dumps({**doc, **change}))
        with pytest.raises(SwapcamError, match=words):
            tr.load_truth(bad)

    broken({"clip": "cats"}, "not a make-clip truth file")
    broken({"landmarks": [lm.tolist()] * 3}, "do not match 4 frames")
    broken({"masks": "missing.npz"}, "cannot read its masks file")
    broken({"size": [100, 100]}, "masks .* do not match")
    broken({"schedule": {}}, "missing or malformed field")
    with pytest.raises(SwapcamError, match="no such file"):
        tr.load_truth(tmp_path / "nope.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(SwapcamError, match="not a readable JSON"):
        tr.load_truth(tmp_path / "junk.json")
