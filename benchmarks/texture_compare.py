"""Clean targets and the decoders' detail texture, measured: held-out reconstruction PSNR of a model as it is, with
detail textures started from the facesets (no training), and after the same short fine-tune in four variants: with or
without a texture, on augmented or clean targets (``swapcam train --texture``, ``--augment-off``).

Held-out faces are the 5 % of each faceset that training never sees (``swapcam train --holdout 0.05``). PSNR is
given over the whole crop and inside the face (the mean landmark hull, what the live loop pastes).

    git show d8f40f3:models/demo/demo_train_checkpoint.pt > /tmp/demo-v2.pt     # the v2 demo model (no texture)
    python benchmarks/texture_compare.py --checkpoint /tmp/demo-v2.pt --facesets runs/demo-build/faceset \\
        --steps 100 --json benchmarks/results/texture-compare.json

The facesets are build-demo-model's (``WORKDIR/faceset/A`` and ``B``). Each fine-tune starts from the checkpoint with
demo model v3's settings (batch 8, lr 3e-5, no random warp, expression warps on 30 %) and differs only in
``--texture`` and ``--augment-off``: 1 keeps flip, affine and colour jitter on the targets (how v2 was trained), 0
leaves the targets as aligned.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime.atomic import atomic_write_json  # noqa: E402


def held_out_psnr(model, data) -> dict[str, float]:
    """Held-out PSNR (dB) per identity, whole crop and inside the mean face hull."""
    import torch

    out = {}
    model.eval()
    with torch.no_grad():
        for key, identity, held in (("a", data.a, data.held_a), ("b", data.b, data.held_b)):
            x = torch.from_numpy(held)
            err = (model(x, key)[0] - x) ** 2
            hull = torch.from_numpy(identity.masks.mean(0) > 0.5).float()[None, None]
            full = err.flatten(1).mean(1)
            face = (err * hull).sum((1, 2, 3)) / (hull.sum() * 3)
            out[f"{key}_full"] = round(float((10 * torch.log10(1 / full)).mean()), 2)
            out[f"{key}_face"] = round(float((10 * torch.log10(1 / face)).mean()), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="training checkpoint to start from")
    parser.add_argument("--facesets", default="runs/demo-build/faceset", help="folder holding faceset A/ and B/")
    parser.add_argument("--steps", type=int, default=100, help="fine-tune steps per variant (0: no fine-tunes)")
    parser.add_argument("--lr", type=float, default=3e-5, help="fine-tune learning rate")
    parser.add_argument("--json", default="", help="write the results here")
    args = parser.parse_args(argv)

    import torch

    from models.autoencoder import ModelConfig, build_model
    from models.checkpoint import load_checkpoint, model_from_checkpoint
    from training.train import TrainConfig, init_textures, load_data, load_init_weights, train

    saved = load_checkpoint(args.checkpoint)
    config = ModelConfig.from_dict(saved["model_config"])
    base = dict(a=f"{args.facesets}/A", b=f"{args.facesets}/B", holdout=0.05, preset=config.name)
    data = load_data(TrainConfig(out="", **base), config.size)
    device = torch.device("cpu")
    results: dict = {"checkpoint": args.checkpoint, "step": int(saved["step"]), "texture_before": config.texture}

    results["as_is"] = held_out_psnr(model_from_checkpoint(saved), data)
    textured = build_model(replace(config, texture=True))
    load_init_weights(textured, saved["model"])
    init_textures(textured, data, device)
    results["textures_initialised"] = held_out_psnr(textured, data)
    print(f"as is: {results['as_is']}\ntextures initialised: {results['textures_initialised']}", flush=True)

    variants = (
        ("finetune_augmented_targets", False, 1.0),
        ("finetune_clean_targets", False, 0.0),
        ("texture_finetune_augmented_targets", True, 1.0),
        ("texture_finetune_clean_targets", True, 0.0),
    )
    for name, texture, augment_off in variants:
        if args.steps < 1:
            break
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(
                out=f"{tmp}/run",
                init=args.checkpoint,
                steps=args.steps,
                batch=8,
                lr=args.lr,
                warmup=20,
                warp=0.0,
                expressions=0.3,
                augment_off=augment_off,
                texture=texture,
                preview_every=0,
                save_every=10**9,
                log_every=10**9,
                name_a="A",
                name_b="B",
                **base,
            )
            t0 = time.time()
            train(cfg, progress=False)
            tuned = model_from_checkpoint(load_checkpoint(f"{tmp}/run/checkpoint.pt"))
            results[name] = held_out_psnr(tuned, data) | {"seconds": round(time.time() - t0, 1)}
        print(f"{name} ({args.steps} steps): {results[name]}", flush=True)

    results["settings"] = {"steps": args.steps, "lr": args.lr, "batch": 8, "warp": 0.0, "expressions": 0.3}
    results["machine"] = {"cpu_count": os.cpu_count(), "python": platform.python_version()}
    if args.json:
        atomic_write_json(args.json, results)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
