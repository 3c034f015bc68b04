"""The soak's parts (realtime.bench): the process measure against the kernel's own counters, the verdict on records
with known answers, and the WebRTC soak end to end (real aiortc peer against the real server and the shipped demo
model, seconds instead of minutes). The live soak end to end is in test_live_cli."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from realtime.bench import process_usage, soak_verdict

REPO = Path(__file__).resolve().parents[1]


def test_process_usage_matches_the_kernel_counters():
    empty = process_usage()
    # 256 MB, touched: resident. The kernel's RSS counter is summed per thread and folded in every few dozen page
    # faults, which with transparent huge pages (2 MB a fault) can hide ~100 MB: a 64 MB ballast once read +0
    ballast = np.ones(256 * 2**20 // 8)
    before = process_usage()
    assert before["rss_mb"] > empty["rss_mb"] + 100  # RSS sees it
    statm_rss_mb = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    assert before["rss_mb"] == pytest.approx(statm_rss_mb, rel=0.05)
    assert before["threads"] == len(os.listdir("/proc/self/task"))
    del ballast
    stop = threading.Event()
    extra = [threading.Thread(target=stop.wait) for _ in range(3)]
    for thread in extra:
        thread.start()
    try:
        during = process_usage()
        assert during["threads"] == before["threads"] + 3 and during["python_threads"] == before["python_threads"] + 3
        # (whether the freed ballast leaves RSS depends on the allocator's state: in the full suite it stayed)
    finally:
        stop.set()
        for thread in extra:
            thread.join()


def _window(k: int, rss: float, p95: float | None, threads: int, seconds: float = 60.0) -> dict:
    return {"window": k, "t_end_s": 60.0 * k, "seconds": seconds, "rss_mb": rss, "threads": threads, "fps": 30.0,
            "latency_ms": {"p50": 20.0, "p95": p95}}  # fmt: skip


def latency_p95(record: dict) -> float | None:
    return record["latency_ms"]["p95"]


def test_soak_verdict_last_full_window_against_the_second():
    # the first window (start-up) is off the chart and the last is a tail: both left out of the comparison
    flat = [_window(1, 900, 400, 40), _window(2, 400, 30, 20), _window(3, 410, 31, 21), _window(4, 438, 32.9, 22)]
    flat.append(_window(5, 900, 400, 60, seconds=20))
    verdict = soak_verdict(flat, 60, latency_p95, "latency")
    assert (verdict["baseline_window"], verdict["last_window"]) == (2, 4) and verdict["flat"] is True
    assert verdict["rss_change_pct"] == 9.5 and verdict["p95_change_pct"] == 9.7 and verdict["threads_change"] == 2
    assert verdict["text"].startswith("verdict, minute 4 vs minute 2: RSS +9.5 %: flat; latency p95 +9.7 %: flat")
    grows = [_window(1, 400, 30, 20), _window(2, 400, 30, 20), _window(3, 441, 30, 20)]
    verdict = soak_verdict(grows, 60, latency_p95, "latency")
    assert verdict["rss"] == "grows" and verdict["p95"] == "flat" and verdict["flat"] is False
    assert soak_verdict(grows[:2] + [_window(3, 400, 34, 20)], 60, latency_p95, "latency")["p95"] == "grows"
    assert soak_verdict(grows[:2] + [_window(3, 400, 30, 23)], 60, latency_p95, "latency")["threads"] == "grows"
    two = soak_verdict(grows[:2], 60, latency_p95, "latency")  # only two full windows: against the first
    assert (two["baseline_window"], two["last_window"]) == (1, 2) and two["flat"] is True
    unknown = soak_verdict([_window(1, 400, None, 20), _window(2, 400, None, 20)], 60, latency_p95, "latency")
    assert unknown["p95"] == "unknown" and unknown["flat"] is False
    none = soak_verdict([_window(1, 400, 30, 20), _window(2, 400, 30, 20, seconds=20)], 60, latency_p95, "latency")
    assert none["flat"] is None and none["text"].startswith("verdict: none (1 full window(s)")


@pytest.mark.slow
def test_webrtc_soak_records_each_window_and_a_verdict(tmp_path, capsys):
    pytest.importorskip("aiortc")
    from realtime.cli import main

    out = tmp_path / "webrtc-soak.json"
    argv = ["bench-webrtc", "--peers", "1", "--minutes", "0.1", "--every", "2", "--warmup", "3", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("window ")]
    assert len(lines) == 3 and all("MB" in line and "fps received" in line for line in lines), printed
    assert sum(line.startswith("verdict, window 3 vs window 2: RSS ") for line in printed.splitlines()) == 1, printed
    data = json.loads(out.read_text())
    run = data["runs"][0]
    assert run["peers"] == 1 and run["every_s"] == 2.0 and [w["window"] for w in run["windows"]] == [1, 2, 3]
    for w in run["windows"]:
        assert w["seconds"] == pytest.approx(2.0, abs=0.2) and w["rss_mb"] > 100 and w["threads"] > 4
        assert 10 <= w["frames_sent"] <= 70  # the clip at 30 fps, or at the lower rate an overloaded server asks for
        assert 0 < w["frames_received"] <= w["frames_sent"] + 5 and w["fps"] > 1
        assert w["rtt_p95_ms"] >= w["rtt_p50_ms"] > 0 and w["server_dropped"] >= 0
        assert len(w["per_peer"]) == 1 and w["per_peer"][0]["frames"] == w["frames_received"]
    assert data["soak"]["verdict"] == run["verdict"] and run["verdict"]["last_window"] == 3
    assert run["per_peer"] == run["windows"][-1]["per_peer"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seconds", "5", "--minutes", "1"], "argument --minutes: not allowed with argument --seconds"),
        (["--peers", "1,2", "--minutes", "1"], "--minutes with --peers 1,2: a soak runs one peer count"),
        (["--minutes", "-1"], "--minutes -1.0: expected a length > 0"),
        (["--minutes", "1", "--every", "0"], "--every 0.0: expected seconds > 0"),
    ],
)
def test_webrtc_soak_mistakes_are_one_line(extra, message):
    result = subprocess.run(
        [sys.executable, "-m", "realtime.cli", "bench-webrtc", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("swapcam bench-webrtc: error: ") and message in errors[0], (
        result.stderr
    )
