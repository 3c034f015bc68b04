"""Swap-model inference timings on whatever this machine has (run by benchmarks/gpu.sh; works on CPU too).

Per preset, a randomly initialised model (timing does not depend on the weights) is exported to ONNX with the
swapcam contract and timed at batch 1 (one face):
- onnxruntime with each execution provider that really loads (the session's first provider is checked, not just
  the list onnxruntime advertises), plain ``run`` and, for CUDA, IO binding with the input already on the device;
- the same network in torch, eager fp32 and autocast fp16, on CUDA when present (a reference for what the GPU can
  do when onnxruntime's CUDA libraries are missing);
- the live pipeline (``swapcam bench``) at 1280x720 with that model, when mediapipe imports.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np


def timed(fn, runs: int) -> dict:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {
        "p50_ms": round(times[len(times) // 2], 3),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 3),
        "runs": runs,
    }


def export(preset: str, path: Path) -> Path:
    import onnx
    import torch

    from models.autoencoder import SwapDirection, build_model, get_preset
    from models.contract import INPUT_NAME, OUTPUT_FACE, OUTPUT_MASK, ModelInfo

    model = SwapDirection(build_model(preset), "b").eval()
    size = get_preset(preset).size
    x = torch.rand(1, 3, size, size)
    torch.onnx.export(
        model,
        x,
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_FACE, OUTPUT_MASK],
        dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_FACE: {0: "N"}, OUTPUT_MASK: {0: "N"}},
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(str(path))
    for key, value in ModelInfo(size=size, format="swapcam", preset=preset).to_metadata().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path


def ort_timings(path: Path, size: int, runs: int) -> dict:
    import onnxruntime as ort

    out: dict = {"onnxruntime": ort.__version__, "advertised": ort.get_available_providers()}
    x = np.random.rand(1, 3, size, size).astype(np.float32)
    for provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"):
        if provider not in out["advertised"]:
            continue
        try:
            session = ort.InferenceSession(str(path), providers=[provider, "CPUExecutionProvider"])
        except Exception as exc:  # a provider library that cannot load: record why, go on
            out[provider] = {"error": str(exc).splitlines()[0][:200]}
            continue
        if session.get_providers()[0] != provider:
            out[provider] = {"error": f"fell back to {session.get_providers()[0]} (libraries missing)"}
            continue
        name = session.get_inputs()[0].name
        entry = {"run": timed(partial(session.run, None, {name: x}), runs)}
        if provider != "CPUExecutionProvider":
            binding = session.io_binding()
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
            for output in session.get_outputs():
                binding.bind_output(output.name, "cuda")
            entry["io_binding"] = timed(partial(session.run_with_iobinding, binding), runs)
        out[provider] = entry
    return out


def torch_timings(preset: str, size: int, runs: int) -> dict:
    import torch

    from models.autoencoder import SwapDirection, build_model

    if not torch.cuda.is_available():
        return {"error": "no CUDA device"}
    model = SwapDirection(build_model(preset), "b").eval().cuda()
    x = torch.rand(1, 3, size, size, device="cuda")

    def fp32():
        with torch.no_grad():
            model(x)
        torch.cuda.synchronize()

    def fp16():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
            model(x)
        torch.cuda.synchronize()

    return {"device": torch.cuda.get_device_name(0), "fp32": timed(fp32, runs), "fp16_autocast": timed(fp16, runs)}


def live_bench(path: Path, frames: int, json_path: Path) -> dict:
    try:
        import mediapipe  # noqa: F401
    except Exception as exc:
        return {"skipped": f"mediapipe does not import here ({type(exc).__name__}: {str(exc)[:120]})"}
    cmd = [
        sys.executable,
        "-m",
        "realtime.cli",
        "bench",
        "--model",
        str(path),
        "--source",
        "synthetic",
        "--width",
        "1280",
        "--height",
        "720",
        "--pace",
        "fast",
        "--frames",
        str(frames),
        "--json",
        str(json_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
    return json.loads(json_path.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="rt128,hd", help="comma-separated presets (tiny, rt128, lite, hd)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per measurement")
    parser.add_argument("--frames", type=int, default=300, help="frames of the live bench")
    parser.add_argument("--json", required=True, help="output JSON")
    args = parser.parse_args()
    from models.autoencoder import get_preset

    result: dict = {
        "benchmark": "swapcam swap-model inference",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "presets": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for preset in [p for p in args.presets.split(",") if p]:
            size = get_preset(preset).size
            path = export(preset, Path(tmp) / f"{preset}.onnx")
            entry = {
                "size": size,
                "onnxruntime": ort_timings(path, size, args.runs),
                "torch": torch_timings(preset, size, args.runs),
                "live_1280x720": live_bench(path, args.frames, Path(tmp) / f"live-{preset}.json"),
            }
            result["presets"][preset] = entry
            print(f"{preset} ({size} px):")
            for provider, value in entry["onnxruntime"].items():
                if isinstance(value, dict):
                    print(
                        f"  ort {provider}: "
                        + ", ".join(
                            f"{k} {v['p50_ms']} ms" if isinstance(v, dict) and "p50_ms" in v else f"{k}: {v}"
                            for k, v in value.items()
                        )
                    )
            t = entry["torch"]
            if "fp32" in t:
                print(f"  torch {t['device']}: fp32 {t['fp32']['p50_ms']} ms, fp16 {t['fp16_autocast']['p50_ms']} ms")
            live = entry["live_1280x720"]
            print("  live 1280x720: " + (f"{live.get('fps')} fps" if "fps" in live else json.dumps(live)[:200]))
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
