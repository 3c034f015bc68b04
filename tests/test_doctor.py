"""`swapcam doctor`: one clean line per check, real onnxruntime provider probes, exit 1 when a required item is
missing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from realtime import doctor
from realtime.cli import main

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(ok|warn|missing) +\S+ +\S")


def _name(line: str) -> str:
    return line[9:35].strip()  # Check.line(): status in 8 columns, a space, the name in 26 columns


@pytest.fixture(scope="module")
def doctor_run():
    """The real command in a fresh process (so onnxruntime/mediapipe start cold, as for a user)."""
    return subprocess.run(
        [sys.executable, "-m", "realtime.cli", "doctor"], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_doctor_lines_are_clean(doctor_run):
    assert doctor_run.returncode == 0, doctor_run.stdout + doctor_run.stderr  # everything required is installed here
    lines = doctor_run.stdout.strip().splitlines()
    assert lines[-1].startswith("ready: 0 required item(s) missing")
    for line in lines[:-1]:
        assert LINE.match(line), line
    names = [_name(line) for line in lines[:-1]]
    for required in ("python", "numpy", "cv2", "onnxruntime", "mediapipe", "CPUExecutionProvider", "mediapipe models"):
        assert required in names
    assert len(names) == len(set(names))  # each check once
    # no log spew from onnxruntime's provider loading or mediapipe's C++ logger, on either stream
    everything = doctor_run.stdout + doctor_run.stderr
    for spew in ("EP Error", "[E:onnxruntime", "Falling back", "absl::InitializeLog", "XNNPACK", "W0000"):
        assert spew not in everything
    assert doctor_run.stderr.strip() == ""


def test_provider_lines_say_what_really_runs(doctor_run):
    import onnxruntime as ort

    from realtime.swapper import nvidia_device_count

    lines = {_name(line): line for line in doctor_run.stdout.splitlines() if LINE.match(line)}
    assert lines["CPUExecutionProvider"].startswith("ok") and "tiny session runs" in lines["CPUExecutionProvider"]
    for provider in ort.get_available_providers():
        assert provider in lines
    if "CUDAExecutionProvider" in ort.get_available_providers() and nvidia_device_count() == 0:
        assert lines["CUDAExecutionProvider"].startswith("warn")
        assert "CUDAExecutionProvider      listed but not usable (falls back to CPU)" in lines["CUDAExecutionProvider"]


def test_tiny_model_bytes_match_onnx_helper():
    onnx = pytest.importorskip("onnx")
    model = onnx.load_from_string(doctor.TINY_ONNX)
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Add"]
    assert doctor.tiny_onnx_model() == doctor.TINY_ONNX


def test_probe_provider():
    usable, detail = doctor.probe_provider("CPUExecutionProvider", doctor.TINY_ONNX)
    assert usable and "tiny session runs" in detail
    usable, detail = doctor.probe_provider("NoSuchExecutionProvider", doctor.TINY_ONNX)
    assert not usable and detail
    usable, detail = doctor.probe_provider("CPUExecutionProvider", b"not an onnx model")
    assert not usable and "cannot create a session" in detail and "\n" not in detail


def test_missing_required_package_exits_1(monkeypatch, capsys):
    monkeypatch.setattr(
        doctor,
        "REQUIRED_PACKAGES",
        doctor.REQUIRED_PACKAGES + [("swapcam_no_such_module", "swapcam-no-such", "testing")],
    )
    assert main(["doctor", "--quick"]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "swapcam_no_such_module" in line)
    assert line.startswith("missing") and "ModuleNotFoundError" in line
    assert "FAILED: 1 required item(s) missing (swapcam_no_such_module)" in out


def test_missing_optional_package_only_warns():
    checks = doctor.check_packages(required=[], optional=[("swapcam_no_such_module", "x", "testing")])
    assert [(c.status, c.required) for c in checks] == [("warn", False)]


def test_json_output(capsys):
    assert main(["doctor", "--json", "--quick"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True
    assert {c["status"] for c in doc["checks"]} <= {"ok", "warn", "missing"}
    assert any(c["name"] == "CPUExecutionProvider" and c["status"] == "ok" for c in doc["checks"])


def test_mediapipe_models_missing(tmp_path):
    [check] = doctor.check_mediapipe_models(tmp_path)
    assert check.status == "missing" and check.required and "face_detection_short_range.tflite" in check.detail
    for rel in doctor.MEDIAPIPE_MODELS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    [check] = doctor.check_mediapipe_models(tmp_path, run_sample=False)
    assert check.status == "ok"


def test_mediapipe_models_really_run():
    [check] = doctor.check_mediapipe_models()
    assert check.status == "ok" and "found the face" in check.detail


def test_loopback_and_cameras_from_sysfs(tmp_path):
    sysfs, dev = tmp_path / "video4linux", tmp_path / "dev"
    assert doctor.check_v4l2loopback(sysfs)[0].status == "warn"
    (sysfs / "video7").mkdir(parents=True)
    (sysfs / "video7" / "name").write_text("swapcam\n")
    dev.mkdir()
    for name in ("video0", "video7"):
        (dev / name).touch()
    [loop] = doctor.check_v4l2loopback(sysfs)
    assert loop.status == "ok" and "/dev/video7 (swapcam)" in loop.detail
    [cams] = doctor.check_cameras(dev, sysfs)
    assert cams.status == "ok" and cams.detail == str(dev / "video0")  # the loopback is not a camera
    (dev / "video0").unlink()
    assert doctor.check_cameras(dev, sysfs)[0].status == "warn"


def test_chromium_check():
    [check] = doctor.check_chromium(names=("swapcam-no-such-browser",))
    assert check.status == "warn" and not check.required
    import shutil

    if shutil.which("chromium"):
        [check] = doctor.check_chromium(names=("chromium",))
        assert check.status == "ok" and re.search(r"\d+\.\d+", check.detail)
