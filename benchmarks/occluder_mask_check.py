"""Did the model learn to cut occluders out of its mask? A cheap check on exported ONNX swap models.

Held-out faceset crops (the 5 % that build-demo-model's training never sees) get occluders pasted with a fixed seed:
each of training.occluders' kinds (hand, bar, round, patch), and one kind training never draws ("photo": pieces of
scikit-image's sample photographs (coffee, cat, rocket, Hubble field, tissue) cut in the silhouette of its horse or
in a random polygon). Each model runs on the occluded crops and on the same crops clean, and the script reports
the mean ``out_mask``

- ``under_occluder``: where the occluder covers the face (alpha >= 0.99, inside the landmark hull), occluded input;
- ``face_visible``: on the face the occluder leaves visible (alpha 0, inside the hull), occluded input;
- ``clean_under``: the same pixels as ``under_occluder``, clean input (what the model paints there without it);
- ``cut``: the share of occluded face pixels whose mask is below 0.5 (the compositor then mostly keeps the camera's).

A model that ignores occluders has ``under_occluder`` ~ ``clean_under`` ~ ``face_visible`` ~ 1.

    python benchmarks/occluder_mask_check.py --model shipped=models/demo/demo_ \\
        --model occluders=runs/demo-occ/demo_ --json benchmarks/results/occluder-mask-check.json

``--model LABEL=PREFIX`` reads PREFIXa2b.onnx (fed astronaut crops, faceset A) and PREFIXb2a.onnx (grace_hopper
crops, faceset B), whichever exist. The facesets are build-demo-model's (``--faceset``, default runs/demo-occ/faceset).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from realtime.compose import hull_mask  # noqa: E402
from training.faceset import load_faceset  # noqa: E402
from training.occluders import KINDS, paste_occluder  # noqa: E402

HOLDOUT = 0.05  # build-demo-model's: every 20th face, from the 10th, never trained on (training.train.load_identity)
PHOTO = "photo"


def held_out(folder: Path, size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The faceset's held-out crops (the ones training leaves out at --holdout 0.05) and their hull masks."""
    faceset = load_faceset(str(folder), size)
    every = max(2, int(round(1.0 / HOLDOUT)))
    idx = np.arange(every // 2, len(faceset.images), every)[:count]
    masks = np.stack([hull_mask(faceset.landmarks[i], size) for i in idx])
    return faceset.images[idx], masks


def photo_sources() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Textures (BGR) and silhouettes (uint8 0/255) for the unseen kind, all bundled with scikit-image."""
    from skimage import data

    photos = [data.coffee(), data.chelsea(), data.rocket(), data.hubble_deep_field(), data.immunohistochemistry()]
    textures = [cv2.cvtColor(p, cv2.COLOR_RGB2BGR) for p in photos]
    horse = (~data.horse()).astype(np.uint8) * 255  # the horse is False on a True background
    ys, xs = np.nonzero(horse)
    return textures, [horse[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]]


def paste_photo(
    face: np.ndarray, face_mask: np.ndarray, rng: np.random.Generator, textures: list, shapes: list
) -> tuple[np.ndarray, np.ndarray]:
    """A piece of a photograph in a silhouette or a random polygon, 10-30 % of the face's area, over the lower face or
    anywhere on it, any rotation, edge blurred: an occluder of a kind training never draws."""
    h, w = face.shape[:2]
    ys, xs = np.nonzero(face_mask > 0.5)
    area = rng.uniform(0.1, 0.3) * len(xs)
    if rng.random() < 0.5:
        shape = shapes[int(rng.integers(len(shapes)))]
    else:
        t = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
        r = rng.uniform(0.5, 1.0, len(t))
        pts = np.stack([50 + 48 * r * np.cos(t), 50 + 48 * r * np.sin(t)], 1).round().astype(np.int32)
        shape = np.zeros((100, 100), np.uint8)
        cv2.fillPoly(shape, [pts], 255, cv2.LINE_AA)
    scale = np.sqrt(area / max(float((shape > 127).sum()), 1.0))
    lower = rng.random() < 0.6
    cx = rng.uniform(xs.min(), xs.max())
    cy = rng.uniform(ys.min() + 0.55 * (ys.max() - ys.min()), ys.max()) if lower else rng.uniform(ys.min(), ys.max())
    m = cv2.getRotationMatrix2D((shape.shape[1] / 2, shape.shape[0] / 2), float(rng.uniform(-180, 180)), scale)
    m[:, 2] += (cx - shape.shape[1] / 2, cy - shape.shape[0] / 2)
    alpha = cv2.warpAffine(shape, m, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.7)
    alpha = np.round(np.clip(alpha, 0, 1) * 255) / 255
    tex = textures[int(rng.integers(len(textures)))]
    th, tw = tex.shape[:2]
    side = int(rng.integers(min(th, tw) // 4, min(th, tw) // 2))
    y0, x0 = int(rng.integers(0, th - side)), int(rng.integers(0, tw - side))
    colour = cv2.resize(tex[y0 : y0 + side, x0 : x0 + side], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    a = alpha[..., None]
    out = np.where(a > 0, np.clip(face * (1 - a) + colour * a + 0.5, 0, 255).astype(np.uint8), face)
    return out, alpha.astype(np.float32)


def occluded_set(faces: np.ndarray, masks: np.ndarray, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per kind: the occluded crops and their alphas, from a fixed seed (the same for every model)."""
    textures, shapes = photo_sources()
    out = {}
    for k, kind in enumerate((*KINDS, PHOTO)):
        pasted, alphas = [], []
        for i, (face, mask) in enumerate(zip(faces, masks, strict=True)):
            rng = np.random.default_rng([seed, k, i])
            others = np.delete(faces, i, axis=0)  # patches: another held-out crop's texture
            if kind == PHOTO:
                img, alpha = paste_photo(face, mask, rng, textures, shapes)
            else:
                img, alpha = paste_occluder(face, rng, others, mask, kind=kind)
            pasted.append(img)
            alphas.append(alpha)
        out[kind] = (np.stack(pasted), np.stack(alphas))
    return out


def run_masks(path: Path, crops: np.ndarray) -> np.ndarray:
    """out_mask (N x S x S) of an exported swapcam ONNX model on BGR uint8 crops (latent_shift, if any, zero)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    feeds: dict[str, np.ndarray] = {"in_face": x}
    for inp in session.get_inputs():
        if inp.name == "latent_shift":
            feeds[inp.name] = np.zeros((len(x), int(inp.shape[1])), np.float32)
    names = [o.name for o in session.get_outputs()]
    masks = []
    for start in range(0, len(x), 16):
        chunk = {k: v[start : start + 16] for k, v in feeds.items()}
        masks.append(session.run(["out_mask"], chunk)[0][:, 0])
    assert "out_mask" in names
    return np.concatenate(masks)


def measure(mask_occ: np.ndarray, mask_clean: np.ndarray, alphas: np.ndarray, hulls: np.ndarray) -> dict[str, float]:
    under = (alphas >= 0.99) & (hulls > 0.5)
    visible = (alphas == 0) & (hulls > 0.5)
    return {
        "under_occluder": round(float(mask_occ[under].mean()), 4),
        "face_visible": round(float(mask_occ[visible].mean()), 4),
        "clean_under": round(float(mask_clean[under].mean()), 4),
        "clean_face": round(float(mask_clean[hulls > 0.5].mean()), 4),
        "cut": round(float((mask_occ[under] < 0.5).mean()), 4),
        "occluded_pixels": int(under.sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=PREFIX", help="PREFIX{a2b,b2a}.onnx")
    parser.add_argument("--faceset", default="runs/demo-occ/faceset", help="build-demo-model's faceset folder (A, B)")
    parser.add_argument("--crops", type=int, default=30, help="held-out crops per identity")
    parser.add_argument("--seed", type=int, default=0, help="seed of the occluders (the same for every model)")
    parser.add_argument("--size", type=int, default=128, help="crop size (the models' input)")
    parser.add_argument("--json", default="benchmarks/results/occluder-mask-check.json", help="where the result goes")
    args = parser.parse_args(argv)
    t0 = time.time()
    data = {}
    for direction, key in (("a2b", "A"), ("b2a", "B")):
        faces, hulls = held_out(Path(args.faceset) / key, args.size, args.crops)
        data[direction] = (faces, hulls, occluded_set(faces, hulls, args.seed))
    result: dict = {
        "crops_per_direction": args.crops,
        "seed": args.seed,
        "faceset": args.faceset,
        "kinds": [*KINDS, PHOTO],
        "unseen_kind": PHOTO,
        "models": {},
    }
    for spec in args.model:
        label, _, prefix = spec.partition("=")
        per_model: dict = {}
        for direction, (faces, hulls, sets) in data.items():
            path = Path(f"{prefix}{direction}.onnx")
            if not path.exists():
                continue
            clean = run_masks(path, faces)
            rows = {}
            occ_all, clean_all, alpha_all, hull_all = [], [], [], []
            for kind, (crops, alphas) in sets.items():
                m = run_masks(path, crops)
                rows[kind] = measure(m, clean, alphas, hulls)
                occ_all.append(m)
                clean_all.append(clean)
                alpha_all.append(alphas)
                hull_all.append(hulls)
            trained = [k for k in sets if k != PHOTO]
            pick = [i for i, k in enumerate(sets) if k in trained]
            rows["trained_kinds"] = measure(
                *(np.concatenate([part[i] for i in pick]) for part in (occ_all, clean_all, alpha_all, hull_all))
            )
            per_model[direction] = {"model": str(path), **rows}
        result["models"][label] = per_model
        for direction, rows in per_model.items():
            for kind in (*sets, "trained_kinds"):
                r = rows[kind]
                print(
                    f"{label:>12} {direction} {kind:>13}: mask under occluder {r['under_occluder']:.3f} "
                    f"(clean {r['clean_under']:.3f}), visible face {r['face_visible']:.3f}, cut {r['cut']:.2f}"
                )
    result["seconds"] = round(time.time() - t0, 1)
    result["machine"] = f"{platform.machine()}, Python {platform.python_version()}"
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
