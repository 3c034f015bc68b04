"""The threaded runner (realtime.runner) and the builder that wires the live pipeline (realtime.builder): real
mediapipe, real onnxruntime on a known colour-shift model (tests/_live_fixtures), the synthetic clip."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from _live_fixtures import colour_shift_model

from realtime.builder import create_processor, open_swapper, run_live
from realtime.errors import SwapcamError
from realtime.pipeline import FaceSwapProcessor, PipelineOptions
from realtime.runner import LiveRunner, RunStats, format_summary
from realtime.sinks.null import NullSink
from realtime.slot import LatestSlot
from realtime.sources import FramesSource

REPO = Path(__file__).resolve().parents[1]
NO_OVERLAY = dict(hud=False, label=False)


@pytest.fixture(scope="module")
def shift_model(tmp_path_factory):
    return colour_shift_model(
        tmp_path_factory.mktemp("runner") / "shift.onnx", size=64, gain=(0.7, 1.0, 1.3), offset=(0.15, -0.1, 0.05)
    )


@pytest.fixture(scope="module")
def shift_swapper(shift_model):
    return open_swapper(shift_model, threads=1)


# -- hand-offs -----------------------------------------------------------------------------------------------------
def test_latest_slot_newest_wins_and_counts_drops():
    slot = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True and slot.put(3) is True
    assert slot.get() == 3 and slot.dropped == 2
    assert slot.get(timeout=0.05) is None
    slot.close()
    assert slot.get() is LatestSlot.CLOSED


def test_latest_slot_blocking_put_waits_for_the_consumer():
    slot = LatestSlot()
    slot.put("a", block=True)
    done = threading.Event()

    def producer():
        slot.put("b", block=True)
        done.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not done.wait(0.2)  # the slot is full: the producer waits, nothing is dropped
    assert slot.get() == "a"
    assert done.wait(2.0) and slot.get() == "b" and slot.dropped == 0


# -- stats ---------------------------------------------------------------------------------------------------------
def test_run_stats_are_exact_for_a_short_run_and_bounded_for_a_long_one():
    stats = RunStats(sample_cap=100)
    for i in range(50):
        stats.record({"swap": float(i)}, delay_ms=float(i), faces=1, t_done=i / 30)
    summary = stats.summary()
    assert summary["latency_ms"]["p50"] == pytest.approx(np.percentile(np.arange(50.0), 50))
    assert summary["stages_ms"]["swap"]["p95"] == pytest.approx(np.percentile(np.arange(50.0), 95))
    for i in range(50, 10_050):
        stats.record({"swap": float(i)}, delay_ms=float(i), faces=1, t_done=i / 30)
    summary = stats.summary(warmup=10)
    assert summary["frames_out"] == 10_050 and summary["percentile_frames"] <= 100
    # a uniform sample of the whole run, not its first or last frames: the median of 0..10049 is ~5025
    assert 3500 < summary["latency_ms"]["p50"] < 6500, summary["latency_ms"]
    assert summary["latency_ms"]["p95"] > 8500


def test_run_stats_roll_windows_one_record_per_window_and_a_stall_shows():
    records: list[dict] = []
    stats = RunStats(started=0.0)
    stats.roll_windows(1.0, records.append)
    times = [0.05 + 0.1 * i for i in range(20)] + [3.5]  # 10 frames a second for 2 s, nothing until 3.5 s
    for i, t in enumerate(times):
        stats.frames_in = i + 1 + i // 2  # a third of the captured frames were dropped on the way
        stats.record({"swap": 5.0 + (t > 1.0)}, delay_ms=10.0 * (1 + (t > 1.0)), faces=1, t_done=t, dropped=i // 2)
    assert [r["window"] for r in records] == [1, 2, 3]  # the third closed when the frame at 3.5 s came
    stats.finish(3.6, dropped=10)
    windows = stats.summary()["windows"]
    assert windows == records and len(windows) == 4
    assert [w["frames_out"] for w in windows] == [10, 10, 0, 1]
    assert [w["fps"] for w in windows[:3]] == [10.0, 10.0, 0.0]  # the stall is a window at 0 fps
    assert windows[3]["seconds"] == pytest.approx(0.6) and windows[3]["t_end_s"] == pytest.approx(3.6)
    assert windows[0]["latency_ms"]["p95"] == 10.0 and windows[1]["latency_ms"]["p50"] == 20.0
    assert windows[1]["stages_ms"]["swap"]["p50"] == 6.0
    assert sum(w["dropped"] for w in windows) == 10 and windows[0]["dropped"] == 4
    assert [w["frames_in"] for w in windows[:2]] == [16, 15]  # captured by the time the window closed
    tail = RunStats(started=0.0)
    tail.roll_windows(1.0)
    for t in (0.5, 1.1):
        tail.record({}, delay_ms=20.0, faces=1, t_done=t)
    tail.finish(1.2, dropped=0)
    assert len(tail.windows) == 1 and tail.frames_out == 2  # a 0.2 s tail is no record; its frame still counts
    unpaced = RunStats(paced=False, started=0.0)
    unpaced.roll_windows(1.0)
    unpaced.record({}, delay_ms=50.0, faces=0, t_done=1.5)
    assert "queue_latency_ms" in unpaced.windows[0] and "latency_ms" not in unpaced.windows[0]


# -- runner ------------------------------------------------------------------------------------------------
def test_runner_processes_every_frame_of_a_file_like_source(shift_swapper, astronaut_clip):
    source = FramesSource(astronaut_clip.frames, 30.0, pace="fast", n_frames=40)
    sink = NullSink()
    with FaceSwapProcessor(shift_swapper, PipelineOptions(**NO_OVERLAY)) as proc:
        stats = LiveRunner(source, proc, sink).run()
    summary = stats.summary()
    assert sink.frames == 40 == summary["frames_out"] == summary["frames_in"]
    assert summary["dropped_total"] == 0 and summary["frames_with_face"] == 40
    for stage in ("landmarks", "swap", "colour", "compose", "sink"):
        assert summary["stages_ms"][stage]["p50"] is not None
    # read as fast as possible: the delay is queueing, kept under a name that says so, never as a latency
    assert summary["paced"] is False and "latency_ms" not in summary
    assert summary["queue_latency_ms"]["p50"] > 0 and summary["fps"] > 0
    text = format_summary(summary)
    assert "end-to-end latency" not in text and "throughput" in text
    assert len([line for line in text.splitlines() if "not a live latency" in line]) == 1


class SlowSink(NullSink):
    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def send(self, image) -> bool:
        time.sleep(self.delay)
        return super().send(image)


def test_live_source_drops_stale_frames_and_latency_stays_bounded(shift_swapper, astronaut_clip):
    # Camera-like source at 30 fps, a sink that needs 80 ms per frame: a queue would grow latency by ~50 ms per
    # frame (to seconds over 60 frames); newest-frame-wins keeps it to about one sink time plus the stages.
    source = FramesSource(astronaut_clip.frames, 30.0, pace="realtime", n_frames=60)
    sink = SlowSink(0.08)
    with FaceSwapProcessor(shift_swapper, PipelineOptions(**NO_OVERLAY)) as proc:
        stats = LiveRunner(source, proc, sink).run()
    summary = stats.summary()
    assert summary["dropped_total"] > 20
    assert summary["frames_out"] + summary["dropped_total"] <= 60
    assert summary["latency_ms"]["p95"] < 400
    # a paced source: capture -> sink done is the latency a viewer sees, reported as such
    assert summary["paced"] is True and "queue_latency_ms" not in summary
    text = format_summary(summary)
    assert "end-to-end latency (capture -> sink) ms: p50" in text and "not a live latency" not in text


class FailingSource(FramesSource):
    def read(self):
        if self._index == 5:
            raise SwapcamError("camera 0 stopped delivering frames and could not be reopened")
        return super().read()


def test_source_error_stops_the_run_and_reaches_the_caller(shift_swapper, astronaut_clip):
    source = FailingSource(astronaut_clip.frames, 30.0, pace="fast")
    with FaceSwapProcessor(shift_swapper, PipelineOptions(**NO_OVERLAY)) as proc:
        runner = LiveRunner(source, proc, NullSink())
        with pytest.raises(SwapcamError, match="stopped delivering"):
            runner.run()
    assert not any(t.name.startswith("swapcam-") and t.is_alive() for t in threading.enumerate())


def test_run_live_runs_the_frames_and_leaves_no_thread_behind(shift_swapper, astronaut_clip):
    source = FramesSource(astronaut_clip.frames, 30.0, pace="fast", n_frames=25)
    sink = NullSink()
    seen = []
    summary, interrupted = run_live(
        shift_swapper,
        source,
        sink,
        PipelineOptions(**NO_OVERLAY),
        max_frames=20,
        on_frame=lambda frame, image: seen.append(frame.index),
    )
    assert not interrupted
    assert summary["frames_in"] == summary["frames_out"] == sink.frames == 20 and seen == list(range(20))
    assert summary["frames_with_face"] == 20
    text = format_summary(summary)
    assert "20 delivered" in text and "throughput" in text and "end-to-end latency" not in text
    assert not any(t.name.startswith("swapcam-") and t.is_alive() for t in threading.enumerate())


# -- builder --------------------------------------------------------------------------------------------------------
def test_open_swapper_errors_are_one_line(tmp_path, shift_model):
    with pytest.raises(SwapcamError, match="missing.onnx does not exist"):
        open_swapper(tmp_path / "missing.onnx")
    for bad in (0, -2, 1.5, True):
        with pytest.raises(SwapcamError, match=r"threads=.*expected an integer >= 1"):
            open_swapper(shift_model, threads=bad)
    with pytest.raises(SwapcamError, match="direction 'c2d'"):
        open_swapper(None, direction="c2d")


def test_open_swapper_without_a_model_is_the_demo_model_of_the_direction():
    a2b, b2a = open_swapper(None, threads=1), open_swapper(None, threads=1, direction="b2a")
    assert a2b.path.name == "demo_a2b.onnx" and b2a.path.name == "demo_b2a.onnx"
    assert a2b.info.identities == tuple(reversed(b2a.info.identities))


def test_processor_construction_is_cheap_and_warmup_is_explicit(shift_swapper, astronaut_clip):
    calls = []
    real_run = shift_swapper.session.run

    def counting_run(*args, **kwargs):
        calls.append(args[1][shift_swapper.input_name].shape[0])
        return real_run(*args, **kwargs)

    shift_swapper.session.run = counting_run
    try:
        with FaceSwapProcessor(shift_swapper, PipelineOptions(max_faces=2, **NO_OVERLAY)) as proc:
            assert calls == []  # the constructor runs nothing
            proc.warmup()
            assert calls == [2]  # one blank batch of max_faces crops
        with create_processor(shift_swapper, PipelineOptions(**NO_OVERLAY)) as proc:
            assert calls == [2, 1]
            # warmed up on a face and then an empty frame: the clip's first frame starts a fresh, correct track
            proc.process(astronaut_clip.frames[0], 0.0)
            assert len(proc.last_faces) == 1
    finally:
        del shift_swapper.session.run


# A fresh process, as for a user: mediapipe's and onnxruntime's start-up lines are printed once per process, so an
# in-process check after other tests have started them would pass whatever the warm-up does.
QUIET_START = """
import sys
from realtime.builder import create_processor, open_swapper
from realtime.landmarks.mediapipe_backend import warmup_face
from realtime.pipeline import PipelineOptions
frame = warmup_face()
processor = create_processor(open_swapper(sys.argv[1]), PipelineOptions())
print("MARK", flush=True)
for i in range(3):
    processor.process(frame, i / 30)
samples = "realtime.samples" in sys.modules or "skimage" in sys.modules
print("FACES", len(processor.last_faces), "SAMPLES", samples, flush=True)
processor.close()
"""


def test_create_processor_keeps_native_start_up_lines_away_from_the_user(shift_model):
    result = subprocess.run(
        [sys.executable, "-c", QUIET_START, str(shift_model)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "FACES 1 SAMPLES False" in result.stdout  # a face was swapped; the sample portraits were not loaded
    everything = result.stdout + result.stderr
    for spew in ("XNNPACK", "W0000", "absl::InitializeLog", "landmark_projection_calculator", "feedback"):
        assert spew not in everything, everything


def test_create_processor_from_several_threads(shift_swapper, astronaut_clip, capfd):
    processors, errors = [], []

    def build():
        try:
            processors.append(create_processor(shift_swapper, PipelineOptions(**NO_OVERLAY)))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors and len(processors) == 3
        for proc in processors:
            proc.process(astronaut_clip.frames[0], 0.0)
            assert len(proc.last_faces) == 1
    finally:
        for proc in processors:
            proc.close()
    os.write(2, b"stderr still ours\n")  # every capture restored fd 2
    assert "stderr still ours" in capfd.readouterr().err
