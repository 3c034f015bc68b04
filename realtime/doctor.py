"""Check this machine for swapcam: Python, packages, which onnxruntime providers really run, the bundled mediapipe
face models, face-alignment weights, dlib's face recognition (for eval), cameras, v4l2loopback virtual cameras and a
Chromium browser.

One line per check: "ok", "warn" (optional, swapcam works without it) or "missing" (required). Exits 1 when a
required item is missing, 0 otherwise. onnxruntime providers are tried with a tiny real session each; a provider that
is listed but cannot run (e.g. CUDA without a driver) is reported in one line and the live path falls back to CPU.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

OK, WARN, MISSING = "ok", "warn", "missing"


@dataclass
class Check:
    name: str
    status: str  # ok | warn | missing
    detail: str
    required: bool = False

    def line(self) -> str:
        return f"{self.status:<8} {self.name:<26} {self.detail}"


# (import name, distribution name, why it is needed)
REQUIRED_PACKAGES = [
    ("numpy", "numpy", "arrays everywhere"),
    ("cv2", "opencv-python", "image I/O, warps"),
    ("onnxruntime", "onnxruntime-gpu", "runs the swap model"),
    ("mediapipe", "mediapipe", "FaceMesh landmarks"),
]
OPTIONAL_PACKAGES = [
    ("torch", "torch", "training (train extra)"),
    ("face_alignment", "face-alignment", "FAN landmarks (train extra)"),
    ("onnx", "onnx", "ONNX export (train extra)"),
    ("albumentations", "albumentations", "augmentation (train extra)"),
    ("aiortc", "aiortc", "WebRTC serving (webrtc extra)"),
    ("aiohttp", "aiohttp", "WebRTC serving (webrtc extra)"),
    ("pyvirtualcam", "pyvirtualcam", "virtual camera output (vcam extra)"),
    ("playwright", "playwright", "browser tests (dev extra)"),
]

MEDIAPIPE_MODELS = [
    "modules/face_detection/face_detection_short_range.tflite",
    "modules/face_landmark/face_landmark.tflite",
]

# A one-node ONNX graph y = x + x (float32[1], opset 13, IR 8), serialised: used to probe providers when the `onnx`
# package (train extra) is not installed. tests/test_doctor.py checks these bytes against onnx.helper's output.
TINY_ONNX = bytes.fromhex(
    "08083a350a0e0a01780a017812017922034164641201745a0f0a0178120a0a08"
    "080112040a020801620f0a0179120a0a08080112040a02080142040a00100d"
)


def _dist_version(dist: str, module: str) -> str | None:
    for name in (dist, module, dist.replace("-gpu", "")):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check_python() -> list[Check]:
    version = platform.python_version()
    good = (3, 10) <= sys.version_info[:2] <= (3, 12)
    return [
        Check(
            "python",
            OK if good else MISSING,
            f"{version} ({sys.executable})" if good else f"{version}: swapcam needs Python 3.10-3.12",
            required=True,
        )
    ]


def check_packages(required=None, optional=None) -> list[Check]:
    """Required packages are imported (a broken install fails here); optional ones are only looked up, so the
    doctor does not spend seconds importing torch."""
    required = REQUIRED_PACKAGES if required is None else required
    optional = OPTIONAL_PACKAGES if optional is None else optional
    checks = []
    for module, dist, why in required:
        try:
            importlib.import_module(module)
            version = _dist_version(dist, module) or getattr(sys.modules[module], "__version__", "?")
            checks.append(Check(module, OK, f"{version}", required=True))
        except Exception as exc:  # ImportError, or a broken native library: either way it is missing
            checks.append(
                Check(module, MISSING, f"cannot import ({type(exc).__name__}: {exc}); needed for {why}", required=True)
            )
    for module, dist, why in optional:
        found = importlib.util.find_spec(module) is not None
        version = _dist_version(dist, module) if found else None
        checks.append(Check(module, OK if found else WARN, version or "?" if found else f"not installed ({why})"))
    return checks


def tiny_onnx_model() -> bytes:
    try:
        from onnx import TensorProto, helper
    except ImportError:
        return TINY_ONNX
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # old enough for every onnxruntime >= 1.17
    return model.SerializeToString()


def probe_provider(provider: str, model: bytes) -> tuple[bool, str]:
    """Build a session with ``provider`` alone and run it. (usable, detail). onnxruntime's own console output is
    captured: it prints several lines when a GPU provider cannot load."""
    import numpy as np
    import onnxruntime as ort

    from realtime.native import captured_native_output

    ort.set_default_logger_severity(3)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    start = time.perf_counter()
    try:
        with captured_native_output(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "provider not in available providers": we report it ourselves
            session = ort.InferenceSession(model, sess_options=options, providers=[provider])
            out = session.run(None, {"x": np.array([1.5], np.float32)})[0]
            used = session.get_providers()
    except Exception as exc:
        return False, f"cannot create a session ({str(exc).splitlines()[0][:120]})"
    ms = (time.perf_counter() - start) * 1000
    if not used or used[0] != provider:
        fallback = {"CPUExecutionProvider": "CPU"}.get(used[0], used[0]) if used else "nothing"
        return False, f"listed but not usable (falls back to {fallback})"
    if not np.allclose(out, [3.0]):
        return False, f"runs but computes 1.5+1.5 = {out.tolist()}"
    return True, f"tiny session runs ({ms:.0f} ms to build and run)"


def check_onnxruntime() -> list[Check]:
    try:
        import onnxruntime as ort
    except Exception:
        return []  # already reported as a missing package
    model = tiny_onnx_model()
    checks = []
    from realtime.swapper import nvidia_device_count

    gpus = nvidia_device_count()
    checks.append(
        Check(
            "nvidia driver",
            OK if gpus else WARN,
            f"{gpus} CUDA device(s)" if gpus else "no NVIDIA driver/GPU: the swap model runs on CPU",
        )
    )
    for provider in ort.get_available_providers():
        usable, detail = probe_provider(provider, model)
        required = provider == "CPUExecutionProvider"
        status = OK if usable else (MISSING if required else WARN)
        checks.append(Check(provider, status, detail, required=required))
    if "CPUExecutionProvider" not in ort.get_available_providers():
        checks.append(Check("CPUExecutionProvider", MISSING, "not in this onnxruntime build", required=True))
    return checks


def check_mediapipe_models(package_dir: str | os.PathLike | None = None, run_sample: bool = True) -> list[Check]:
    """The face detector and FaceMesh models must ship inside the mediapipe wheel (0.10.21 does); optionally start
    FaceMesh (its own warm-up, native output captured) and run it on a sample portrait to prove they load."""
    if package_dir is None:
        spec = importlib.util.find_spec("mediapipe")
        if spec is None or not spec.submodule_search_locations:
            return [Check("mediapipe models", MISSING, "mediapipe is not installed", required=True)]
        package_dir = list(spec.submodule_search_locations)[0]
    root = Path(package_dir)
    absent = [rel for rel in MEDIAPIPE_MODELS if not (root / rel).is_file()]
    if absent:
        return [
            Check(
                "mediapipe models",
                MISSING,
                f"not in {root}: {', '.join(absent)} (swapcam pins mediapipe==0.10.21, "
                "the last release that bundles them)",
                required=True,
            )
        ]
    if not run_sample:
        return [Check("mediapipe models", OK, f"present in {root}", required=True)]
    try:
        from realtime.landmarks import create_detector
        from realtime.landmarks.mediapipe_backend import warmup_face

        image, sample = warmup_face(), "Grace Hopper"
        if image is None:  # matplotlib's sample missing: the other built-in portrait (a slower import)
            from realtime.samples import portrait

            image, sample = portrait("astronaut").image, "astronaut"
        start = time.perf_counter()
        detector = create_detector("mediapipe", mode="static")
        try:
            detector.warmup()
            faces = detector.detect(image)
        finally:
            detector.close()
        ms = (time.perf_counter() - start) * 1000
    except Exception as exc:
        return [
            Check(
                "mediapipe models", MISSING, f"present but FaceMesh failed: {type(exc).__name__}: {exc}", required=True
            )
        ]
    if len(faces) != 1:
        return [
            Check(
                "mediapipe models",
                MISSING,
                f"FaceMesh found {len(faces)} faces in the {sample} sample, expected 1",
                required=True,
            )
        ]
    return [
        Check(
            "mediapipe models",
            OK,
            f"FaceMesh found the face in the {sample} sample ({ms:.0f} ms incl. load)",
            required=True,
        )
    ]


def check_fan_weights() -> list[Check]:
    if importlib.util.find_spec("face_alignment") is None:
        return []  # reported with the optional packages
    try:
        from realtime.landmarks.fan_backend import fan_weight_files
    except Exception as exc:
        return [Check("face-alignment weights", WARN, f"cannot inspect ({type(exc).__name__}: {exc})")]
    files = fan_weight_files()
    absent = [str(p) for p in files.values() if not p.is_file()]
    if absent:
        return [
            Check("face-alignment weights", WARN, f"not found: {', '.join(absent)} (only needed for --landmarks fan)")
        ]
    return [Check("face-alignment weights", OK, ", ".join(str(p) for p in files.values()))]


def check_eval_extra() -> list[Check]:
    """dlib and its face-recognition model files (the eval extra): `swapcam eval`'s identity measure only."""
    from realtime.eval.identity import missing, model_folder

    problem = missing()
    if problem is not None:
        return [Check("face recognition", WARN, f"{problem} (only needed for `swapcam eval`)")]
    return [
        Check(
            "face recognition",
            OK,
            f"dlib {_dist_version('dlib-bin', 'dlib') or '?'}, models in {model_folder()} (eval extra)",
        )
    ]


def loopback_devices(sysfs: str | os.PathLike = "/sys/devices/virtual/video4linux") -> list[tuple[str, str]]:
    """(device, card name) of v4l2loopback devices: they live under the virtual video4linux class in sysfs."""
    found = []
    for name_file in sorted(glob.glob(os.path.join(str(sysfs), "video*", "name"))):
        try:
            label = Path(name_file).read_text().strip()
        except OSError:
            continue
        found.append(("/dev/" + Path(name_file).parent.name, label))
    return found


def check_cameras(
    dev: str | os.PathLike = "/dev", sysfs: str | os.PathLike = "/sys/devices/virtual/video4linux"
) -> list[Check]:
    loopbacks = {d for d, _ in loopback_devices(sysfs)}
    nodes = sorted(glob.glob(os.path.join(str(dev), "video*")))
    cameras = [n for n in nodes if "/dev/" + Path(n).name not in loopbacks]
    if cameras:
        return [Check("cameras", OK, ", ".join(cameras))]
    return [Check("cameras", WARN, f"no {dev}/video* camera; use --source synthetic or a video file")]


def check_v4l2loopback(sysfs: str | os.PathLike = "/sys/devices/virtual/video4linux") -> list[Check]:
    devices = loopback_devices(sysfs)
    if devices:
        return [Check("v4l2loopback", OK, ", ".join(f"{d} ({label})" for d, label in devices))]
    if sys.platform != "linux":
        return [Check("v4l2loopback", WARN, "Linux only; pyvirtualcam uses OBS on Windows/macOS")]
    return [
        Check(
            "v4l2loopback",
            WARN,
            "no loopback device; for the virtual camera sink: "
            "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=swapcam",
        )
    ]


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def check_chromium(names=CHROMIUM_NAMES) -> list[Check]:
    for name in names:
        path = shutil.which(name)
        if not path:
            continue
        try:
            proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
            version = (proc.stdout.strip() or proc.stderr.strip()).splitlines()[0] if proc.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired, IndexError):
            version = ""
        if version:
            return [Check("chromium", OK, f"{version} ({path})")]
        return [Check("chromium", WARN, f"{path} found but `--version` failed")]
    return [Check("chromium", WARN, "no Chromium/Chrome on PATH (needed only for the WebRTC browser demo/tests)")]


def run_checks(sample: bool = True) -> list[Check]:
    checks = check_python() + check_packages()
    checks += check_onnxruntime()
    checks += check_mediapipe_models(run_sample=sample)
    checks += check_fan_weights() + check_eval_extra()
    checks += check_cameras() + check_v4l2loopback() + check_chromium()
    return checks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the checks as a JSON list instead of lines")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only look for the mediapipe model files instead of running FaceMesh on a sample",
    )


def run(args: argparse.Namespace) -> int:
    checks = run_checks(sample=not args.quick)
    failed = [c for c in checks if c.required and c.status == MISSING]
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=1))
    else:
        for check in checks:
            print(check.line())
        print(
            f"{'FAILED' if failed else 'ready'}: {len(failed)} required item(s) missing"
            + (f" ({', '.join(c.name for c in failed)})" if failed else "")
            + f", {sum(c.status == WARN for c in checks)} warning(s)"
        )
    return 1 if failed else 0
