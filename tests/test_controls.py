"""Switching a running stream: the live switches (realtime.controls), window keys, hot swap of the model mid-stream
(LiveRunner.reconfigure) and a model folder that gets a newer export (realtime.builder.ModelFolderWatcher). Real
onnxruntime on known colour-shift models, real mediapipe, the synthetic clip.

Failures stay local: a switch that raises (the learned upscaler's model does not load) is refused in one line and
the stream goes on with what it had; a reconfigure that raises changes nothing; an unrelated option keeps the
colour model, the mouth gate and every face's state; a hot-swapped model has run once before its first frame, and
not in the frame thread."""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import numpy as np
import pytest
from _live_fixtures import colour_shift_model

from realtime import cli, upscale
from realtime.builder import ModelFolderWatcher, create_processor, newest_model, open_swapper, run_live
from realtime.controls import SWITCHES, Switchboard, apply_changes, current, describe, key_change, key_help
from realtime.errors import SwapcamError
from realtime.pipeline import PipelineOptions
from realtime.sinks.null import NullSink
from realtime.sources import FramesSource
from realtime.swapper import Swapper

NO_OVERLAY = dict(hud=False, label=False)


# -- the switch table -----------------------------------------------------------------------------------------------
def test_apply_changes_validates_names_and_values():
    base = PipelineOptions()
    got = apply_changes(
        base, {"mouth": "keep", "eyes": "swap", "morph": 0.3, "hud": True, "sharpen": "unsharp", "occlusion": "off"}
    )
    assert (got.mouth, got.eyes, got.morph, got.hud, got.sharpen, got.occlusion) == (
        "keep",
        "swap",
        0.3,
        True,
        "unsharp",
        "off",
    )
    assert base.mouth == "auto"  # a new object: the old options are untouched
    got.validate()
    for bad, word in [
        ({"mouth": "open"}, "mouth"),
        ({"morph": 2}, "morph"),
        ({"morph": "0.5"}, "morph"),
        ({"hud": 1}, "hud"),
        ({"coverage": 2.0}, "unknown option"),  # not switchable live: the tracker's framing
        ({"blend": "poisson"}, "blend"),
    ]:
        with pytest.raises(ValueError, match=word):
            apply_changes(base, bad)


def test_every_switch_is_a_pipeline_option_and_describes_itself():
    fields = set(PipelineOptions.__dataclass_fields__)
    assert set(SWITCHES) <= fields
    table = describe()
    assert table["mouth"]["kind"] == "choice" and table["mouth"]["choices"] == ["auto", "keep", "swap"]
    assert table["morph"]["kind"] == "number" and table["morph"]["low"] == 0.0 and table["morph"]["high"] == 1.0
    assert table["label"]["kind"] == "bool"
    assert set(current(PipelineOptions())) == set(SWITCHES)
    assert "m mouth" in key_help() and "q quit" in key_help()


def test_keys_cycle_choices_step_numbers_and_toggle():
    options = PipelineOptions()
    seen = []
    for _ in range(3):
        options, text = key_change(options, "m")  # type: ignore[misc]
        seen.append(options.mouth)
    assert seen == ["keep", "swap", "auto"] and text == "mouth: auto"
    options, text = key_change(options, "]")  # type: ignore[misc]
    assert options.morph == pytest.approx(0.8) and text == "morph: 0.8"
    for _ in range(10):
        options, _ = key_change(options, "]")  # type: ignore[misc]
    assert options.morph == 1.0  # clamped
    options, text = key_change(options, "h")  # type: ignore[misc]
    assert options.hud is True and text == "hud: on"
    assert key_change(options, "z") is None


# -- a running stream ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("controls")
    red = colour_shift_model(folder / "red.onnx", size=64, gain=(1.0, 1.0, 1.0), offset=(0.35, -0.2, -0.2))
    blue = colour_shift_model(folder / "blue.onnx", size=64, gain=(1.0, 1.0, 1.0), offset=(-0.2, -0.2, 0.35))
    return red, blue


def face_red_minus_blue(image: np.ndarray, centre: tuple[int, int]) -> float:
    x, y = centre
    patch = image[y - 20 : y + 20, x - 20 : x + 20].astype(np.float64)  # BGR
    return float(patch[..., 2].mean() - patch[..., 0].mean())


def test_model_switches_mid_stream_without_restarting_the_source(models, astronaut_clip):
    red, blue = models
    n, switch_at = 40, 15
    source = FramesSource(astronaut_clip.frames, 30.0, pace="fast", n_frames=n)
    sink = NullSink()
    blue_swapper = open_swapper(blue, threads=1)
    colours: dict[int, float] = {}
    holder = {}

    def on_frame(frame, image):
        if frame.faces:
            lm = frame.faces[0].landmarks
            centre = tuple(int(v) for v in lm[27:36].mean(axis=0))  # the nose: inside every mask
            colours[frame.index] = face_red_minus_blue(image, centre) - face_red_minus_blue(frame.image, centre)
        if frame.index == switch_at:
            holder["runner"].reconfigure(swapper=blue_swapper)

    # colour none: the colour shift itself must reach the frame (no transfer back to the camera's colours)
    options = PipelineOptions(colour="none", mouth="swap", eyes="swap", **NO_OVERLAY)
    summary, interrupted = run_live(
        open_swapper(red, threads=1),
        source,
        sink,
        options,
        on_frame=on_frame,
        on_start=lambda runner: holder.setdefault("runner", runner),
    )
    assert not interrupted
    # every frame went through, read once from the one source: no restart, no drop
    assert summary["frames_in"] == n == summary["frames_out"] == sink.frames and summary["dropped_total"] == 0
    assert holder["runner"].reconfigured == 1
    before = [v for i, v in colours.items() if i <= switch_at]
    after = [v for i, v in colours.items() if i > switch_at + 1]  # the change lands between two frames
    assert len(before) > 10 and len(after) > 10
    assert min(before) > 40 and max(after) < -40, (before, after)  # red face, then blue face


def test_switchboard_turns_keys_into_live_changes(models, astronaut_clip):
    red, _ = models
    source = FramesSource(astronaut_clip.frames, 30.0, pace="fast", n_frames=12)
    board = Switchboard(PipelineOptions(**NO_OVERLAY))
    said = []

    def on_frame(frame, image):
        if frame.index == 3:
            said.append(board.key("m"))
            said.append(board.key("x"))  # not a switch: nothing happens

    summary, _ = run_live(
        open_swapper(red, threads=1),
        source,
        NullSink(),
        PipelineOptions(**NO_OVERLAY),
        on_frame=on_frame,
        on_start=board.attach,
    )
    assert said == ["mouth: keep", None]
    assert board.runner.processor.options.mouth == "keep"  # type: ignore[attr-defined]
    assert summary["frames_out"] == 12


# -- a model folder ----------------------------------------------------------------------------------------------
def test_newest_model_and_the_folder_watcher(models, tmp_path, caplog):
    red, blue = models
    with pytest.raises(SwapcamError, match="has no .onnx"):
        newest_model(tmp_path)
    first = tmp_path / "me-0001.onnx"
    first.write_bytes(red.read_bytes())
    assert newest_model(tmp_path) == first
    got = []
    watcher = ModelFolderWatcher(tmp_path, first, got.append, threads=1)
    assert watcher.check() is False and not got
    second = tmp_path / "me-0002.onnx"
    second.write_bytes(blue.read_bytes())
    later = time.time() + 5
    os.utime(second, (later, later))
    assert watcher.check() is True and len(got) == 1 and got[0].path == second
    broken = tmp_path / "me-0003.onnx"
    broken.write_bytes(b"not a model")
    os.utime(broken, (later + 5, later + 5))
    with caplog.at_level("WARNING", logger="swapcam.builder"):
        assert watcher.check() is False
    assert "me-0003.onnx not used" in caplog.text and len(got) == 1
    assert watcher.check() is False  # tried once, not every poll


def test_live_takes_a_folder_as_the_model(models, tmp_path, capsys):
    red, _ = models
    (tmp_path / "old.onnx").write_bytes(red.read_bytes())
    rc = cli.main(
        ["live", "--model", str(tmp_path), "--source", "synthetic", "--sink", "null", "--frames", "8", "--pace", "fast"]
    )
    assert rc == 0
    assert "frames" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["live", "--model", str(empty), "--source", "synthetic", "--sink", "null", "--frames", "2"]) == 2
    assert "has no .onnx or .dfm model yet" in capsys.readouterr().err


# -- failures stay local ---------------------------------------------------------------------------------------------
@pytest.fixture
def broken_upscaler(tmp_path, monkeypatch):
    """The shipped learned upscaler (sharpen espcn) replaced by a file onnxruntime cannot read."""
    broken = tmp_path / "espcn_x2.onnx"
    broken.write_bytes(b"not a model")
    monkeypatch.setattr(upscale, "DEFAULT_UPSCALER", broken)
    return broken


def test_a_switch_that_raises_is_refused_and_the_stream_goes_on(models, astronaut_clip, broken_upscaler, caplog):
    red, _ = models
    n = 14
    source = FramesSource(astronaut_clip.frames, 30.0, pace="fast", n_frames=n)
    options = PipelineOptions(sharpen="unsharp", **NO_OVERLAY)
    notices: list[str] = []
    board = Switchboard(options, notice=notices.append)
    said = []

    def on_frame(frame, image):
        if frame.index == 3:
            said.append(board.key("s"))  # unsharp -> espcn, whose model does not load
        if frame.index == 8:
            said.append(board.key("m"))  # the keys go on, from the options in force

    with caplog.at_level("WARNING", logger="swapcam.runner"):
        summary, interrupted = run_live(
            open_swapper(red, threads=1), source, NullSink(), options, on_frame=on_frame, on_start=board.attach
        )
    assert not interrupted and summary["frames_out"] == n  # every frame came out: the stream went on
    runner = board.runner
    assert said == ["sharpen: espcn", "mouth: keep"]
    assert runner.refused == 1 and runner.reconfigured == 1  # type: ignore[attr-defined]
    in_force = runner.processor.options  # type: ignore[attr-defined]
    assert (in_force.sharpen, in_force.mouth) == ("unsharp", "keep") and board.options == in_force
    (notice,) = notices  # one clear line on the window ...
    assert notice.startswith("sharpen: espcn: not applied") and "\n" not in notice, notice
    assert broken_upscaler.name in notice
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "not applied" in warnings[0]  # ... and in the log


def test_reconfigure_changes_nothing_when_it_raises_and_only_what_changed_otherwise(
    models, astronaut_clip, broken_upscaler
):
    red, _ = models
    options = PipelineOptions(colour="rct", **NO_OVERLAY)
    with create_processor(open_swapper(red, threads=1), options) as processor:
        for frame in astronaut_clip.frames[:6]:
            processor.process(frame)
        (track,) = processor._temporal.tracks
        kept = (processor._colour, processor._mouth, processor.swapper, dict(processor._sharpeners))
        state, colour_history = track.state, track.colour
        assert colour_history is not None and state

        # an unrelated switch (the label): the colour model, the mouth gate and the face's state stay as they are
        processor.reconfigure(options=dataclasses.replace(options, label=True))
        assert processor.options.label is True
        assert (processor._colour, processor._mouth, processor.swapper, processor._sharpeners) == kept
        assert processor._colour is kept[0] and processor._mouth is kept[1]
        assert processor._temporal.tracks == [track] and track.state is state and track.colour is colour_history

        # a change that raises (colour, mouth and a sharpener that does not load): nothing of it is applied
        before = processor.options
        bad = dataclasses.replace(before, colour="hist", mouth="keep", sharpen="espcn")
        with pytest.raises(SwapcamError, match=broken_upscaler.name):
            processor.reconfigure(options=bad)
        assert processor.options is before
        assert processor._colour is kept[0] and processor._mouth is kept[1] and "espcn" not in processor._sharpeners
        out = processor.process(astronaut_clip.frames[6])  # and frames still render
        assert out.shape == astronaut_clip.frames[6].shape and processor._temporal.tracks == [track]


def test_a_hot_swapped_model_runs_once_before_its_first_frame_off_the_frame_thread(
    models, astronaut_clip, tmp_path, monkeypatch
):
    red, blue = models
    first = tmp_path / "me-0001.onnx"
    first.write_bytes(red.read_bytes())
    runs: list[tuple[str, str]] = []  # (model file, thread) of every inference, in order
    real_run = Swapper._run

    def recorded(self, *args, **kwargs):
        runs.append((self.path.name, threading.current_thread().name))
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(Swapper, "_run", recorded)
    holder: dict = {}

    def on_start(runner):
        holder["watcher"] = ModelFolderWatcher(tmp_path, first, lambda new: runner.reconfigure(swapper=new), threads=1)

    def on_frame(frame, image):
        if frame.index == 4:
            second = tmp_path / "me-0002.onnx"
            second.write_bytes(blue.read_bytes())
            later = time.time() + 5
            os.utime(second, (later, later))
            assert holder["watcher"].check()  # the watcher's poll, here in the sink's thread

    source = FramesSource(astronaut_clip.frames, 30.0, pace="fast", n_frames=12)
    summary, _ = run_live(
        open_swapper(first, threads=1),
        source,
        NullSink(),
        PipelineOptions(**NO_OVERLAY),
        on_frame=on_frame,
        on_start=on_start,
    )
    assert summary["frames_out"] == 12
    second_runs = [thread for name, thread in runs if name == "me-0002.onnx"]
    assert len(second_runs) >= 2, runs
    assert second_runs[0] != "swapcam-inference", runs  # warmed where it was loaded ...
    assert "swapcam-inference" in second_runs[1:], runs  # ... then it swapped frames
