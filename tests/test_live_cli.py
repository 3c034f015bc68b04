"""`swapcam live` / `bench` / `demo` end to end: bad input -> one line + exit 2, vcam via pyvirtualcam's backend hook,
file output, JSON bench output, Ctrl-C. Bad-input and Ctrl-C cases run the real CLI in a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import pyvirtualcam
from _live_fixtures import colour_shift_model

from realtime.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_models")
    corrupt = d / "corrupt.onnx"
    corrupt.write_bytes(b"\x0a\x03abc garbage" * 50)
    return {
        "good": colour_shift_model(d / "good.onnx"),
        "corrupt": corrupt,
        "wrong": colour_shift_model(d / "wrong.onnx", input_name="input_image"),
        "missing": d / "missing.onnx",
    }


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "realtime.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


@pytest.mark.parametrize(
    "case, extra, message",
    [
        ("missing", [], "missing.onnx does not exist"),
        ("corrupt", [], "corrupt.onnx: not a readable ONNX/DFM model"),
        ("wrong", [], "match neither the swapcam contract"),
        ("good", ["--source", "movie.xyz"], "source 'movie.xyz' is not supported"),
        ("good", ["--source", "7", "--camera-retry", "0.5"], "camera 7 could not be opened"),
        ("good", ["--sink", "rtmp"], "sink 'rtmp' is not supported"),
        ("good", ["--threads", "0"], "threads=0: expected an integer >= 1"),
        ("good", ["--morph", "1.5"], "morph=1.5, expected a value in 0..1"),
        ("good", ["--coverage", "9"], "coverage=9.0, expected a value in 0.5..4.0"),
    ],
)
def test_bad_input_one_line_exit_2(models, case, extra, message):
    if "7" in extra and Path("/dev/video7").exists():
        pytest.skip("this machine has a /dev/video7")
    args = ["live", "--model", str(models[case]), "--source", "synthetic", "--sink", "null", *extra]
    result = _cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1 and errors[0].startswith("swapcam live: error: ") and message in errors[0], result.stderr


@pytest.fixture
def recorder():
    frames: list[np.ndarray] = []

    class Recorder:
        def __init__(self, *, width, height, fps, fourcc, device, **kw):
            self.shape = (height, width, 3)

        def send(self, frame):
            frames.append(frame.reshape(self.shape).copy())

        def close(self):
            pass

        def device(self):
            return "recorder"

        def native_fourcc(self):
            return None

    pyvirtualcam.register_backend("swapcam-cli-recorder", Recorder)
    yield frames
    pyvirtualcam.camera.BACKENDS.pop("swapcam-cli-recorder", None)


def test_live_to_virtual_camera(models, recorder, capsys):
    rc = main(
        [
            "live",
            "--model",
            str(models["good"]),
            "--source",
            "synthetic",
            "--pace",
            "fast",
            "--frames",
            "20",
            "--sink",
            "vcam",
            "--vcam-backend",
            "swapcam-cli-recorder",
        ]
    )
    assert rc == 0
    assert len(recorder) == 20 and all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for f in recorder)
    assert "20 delivered" in capsys.readouterr().out


def test_live_to_file(models, tmp_path):
    out = tmp_path / "live.mp4"
    rc = main(
        [
            "live",
            "--model",
            str(models["good"]),
            "--source",
            "synthetic:grace_hopper",
            "--pace",
            "fast",
            "--frames",
            "15",
            "--sink",
            f"file:{out}",
            "--label",
        ]
    )
    assert rc == 0
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 15
        assert "synthetic" in c.metadata.get("comment", "")


@pytest.fixture(scope="module")
def short_video(tmp_path_factory):
    from realtime.samples import write_mp4

    frames = [np.full((120, 160, 3), 30 + 20 * i, np.uint8) for i in range(8)]  # no face: frames pass through
    return write_mp4(frames, tmp_path_factory.mktemp("loop") / "short.mp4", fps=30.0)


@pytest.mark.parametrize("loop, delivered", [(False, 8), (True, 20)])
def test_live_loop_plays_a_video_file_past_its_end(models, short_video, tmp_path, capsys, loop, delivered):
    out = tmp_path / "looped.mp4"
    rc = main(
        [
            "live",
            "--model",
            str(models["good"]),
            "--source",
            str(short_video),
            "--pace",
            "fast",
            "--frames",
            "20",
            "--sink",
            f"file:{out}",
            *(["--loop"] if loop else []),
        ]
    )
    assert rc == 0
    assert f"{delivered} delivered" in capsys.readouterr().out
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == delivered


def test_demo_label_and_no_label_conflict_is_one_error_line():
    from realtime.cli import build_parser

    parser, _ = build_parser("demo")
    assert parser.parse_args([]).label is True and parser.parse_args(["--no-label"]).label is False  # on by default
    result = _cli("demo", "--label", "--no-label", "--frames", "2")
    assert result.returncode == 2
    errors = _error_lines(result.stderr)
    assert len(errors) == 1 and "--no-label: not allowed with argument --label" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bench_json(models, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--model", str(models["good"]), "--frames", "40", "--pace", "fast", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["frames_out"] == 40 and data["dropped_total"] == 0 and data["resolution"] == [640, 480]
    # --pace fast: throughput and stage cost; the capture -> sink delay is queueing, named so, not a latency
    assert data["pace"] == "fast" and data["paced"] is False and "latency_ms" not in data
    assert data["fps"] > 0 and data["queue_latency_ms"]["p95"] >= data["queue_latency_ms"]["p50"] > 0
    for stage in ("landmarks", "swap", "colour", "compose", "colour+compose", "sink"):
        assert data["stages_ms"][stage]["p95"] >= data["stages_ms"][stage]["p50"] >= 0
    printed = capsys.readouterr().out
    assert "throughput" in printed and "p95" in printed and "end-to-end latency" not in printed
    assert "is not a live latency" in printed


def test_bench_soak_prints_a_record_per_window_and_a_verdict(models, tmp_path, capsys):
    # --minutes 0.05 (3 s) in 1 s windows: the real pipeline paced at 30 fps, as the 20-minute soak runs it
    out = tmp_path / "soak.json"
    argv = ["bench", "--model", str(models["good"]), "--minutes", "0.05", "--every", "1", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("window ")]
    assert len(lines) == 3, printed
    assert all("MB" in line and "threads" in line and "fps" in line and "p95" in line for line in lines), lines
    verdict_lines = [line for line in printed.splitlines() if line.startswith("verdict, window 3 vs window 2: RSS ")]
    assert len(verdict_lines) == 1, printed
    data = json.loads(out.read_text())
    assert data["pace"] == "realtime" and data["paced"] is True and data["window_s"] == 1.0
    windows = data["windows"]
    assert [w["window"] for w in windows] == [1, 2, 3] and not data["interrupted"]
    for w in windows:
        assert w["rss_mb"] > 50 and w["threads"] >= 4 and w["python_threads"] >= 4  # capture, landmarks, inference
        assert w["seconds"] == pytest.approx(1.0, abs=0.05) and w["frames_out"] > 10 and w["fps"] > 10
        assert w["latency_ms"]["p95"] >= w["latency_ms"]["p50"] > 0 and w["dropped"] >= 0
        assert w["stages_ms"]["swap"]["p50"] > 0
    assert sum(w["frames_out"] for w in windows) <= data["frames_out"] <= data["frames_in"]
    verdict = data["soak"]["verdict"]
    assert verdict["baseline_window"] == 2 and verdict["last_window"] == 3
    assert verdict["rss"] in ("flat", "grows") and verdict["p95"] in ("flat", "grows") and "flat" in verdict
    assert verdict["rss_change_pct"] == pytest.approx(100 * (windows[2]["rss_mb"] / windows[1]["rss_mb"] - 1), abs=0.1)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--frames", "100", "--minutes", "1"], "argument --minutes: not allowed with argument --frames"),
        (["--minutes", "1", "--pace", "fast"], "--minutes soaks paced like a camera: leave out --pace fast"),
        (["--minutes", "0"], "--minutes 0.0: expected a length > 0"),
        (["--minutes", "0.01", "--every", "60"], "--every 60 s is longer than the soak"),
    ],
)
def test_bench_soak_mistakes_are_one_line(models, extra, message):
    result = _cli("bench", "--model", str(models["good"]), *extra)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1 and errors[0].startswith("swapcam bench: error: ") and message in errors[0], result.stderr


def test_ctrl_c_stops_cleanly(models, tmp_path):
    out = tmp_path / "ctrlc.mp4"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "realtime.cli",
            "live",
            "--model",
            str(models["good"]),
            "--source",
            "synthetic",
            "--sink",
            f"file:{out}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job ignores SIGINT; make sure the child gets Python's default Ctrl-C behaviour
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.with_name("ctrlc.part.mp4").exists()):
        time.sleep(0.2)
    time.sleep(2.0)  # let some frames through
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "stopped (Ctrl-C)" in stdout and "sustained fps" in stdout
    with av.open(str(out)) as c:  # the file was finished and moved into place
        assert sum(1 for _ in c.decode(video=0)) > 5


@pytest.mark.slow
def test_demo_writes_video_preview_and_summary(tmp_path, capsys):
    import cv2

    out = tmp_path / "demo" / "swapped.mp4"
    rc = main(["demo", "--frames", "40", "--out", str(out), "--json", str(tmp_path / "demo.json")])
    assert rc == 0
    printed = capsys.readouterr().out
    # written to a file, the clip is read as fast as possible: throughput, and no queueing passed off as latency
    assert "throughput" in printed and "is not a live latency" in printed and "end-to-end latency" not in printed
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 40
        assert "synthetic" in c.metadata.get("comment", "")
    preview = cv2.imread(str(tmp_path / "demo" / "swapped_preview.png"))
    assert preview.shape == (480, 1280, 3)
    camera, swapped = preview[:, :640], preview[:, 640:]
    assert np.any(camera != swapped)
    data = json.loads((tmp_path / "demo.json").read_text())
    assert data["frames_out"] == 40 and data["frames_with_face"] >= 38
    assert data["paced"] is False and "latency_ms" not in data and data["queue_latency_ms"]["p50"] > 0


def test_live_path_never_imports_torch(models):
    code = (
        "import sys; from realtime.cli import main; "
        f"rc = main(['bench', '--model', {str(models['good'])!r}, '--frames', '20', '--pace', 'fast']); "
        "print('RC', rc, 'TORCH', 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "RC 0 TORCH False" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("command", ["live", "bench", "demo"])
def test_coverage_and_morph_options(command, capsys):
    from realtime.cli import build_parser
    from realtime.live import options_from_args

    parser, _ = build_parser(command)
    defaults = options_from_args(parser.parse_args([]))
    assert defaults.coverage is None and defaults.morph == 0.75  # the model's framing; DeepFaceLive's morph
    options = options_from_args(parser.parse_args(["--coverage", "2.2", "--morph", "0.3"]))
    assert options.coverage == 2.2 and options.morph == 0.3
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    assert "--coverage COVERAGE face framing of the crop fed to the model" in text
    assert "DeepFaceLive's default framing" in text
    assert "--morph MORPH how far towards the model's face" in text and "(default: 0.75)" in text
    assert "identity re-centring" in text and "DeepFaceLive AMP .dfm models, their morph_value" in text
