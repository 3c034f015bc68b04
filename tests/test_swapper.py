"""Session factory + Swapper: real onnxruntime sessions on small onnx.helper graphs (tests/_live_fixtures)."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
from _live_fixtures import _ellipse_mask, colour_shift_model

from models.contract import DFM_DEFAULT_COVERAGE, DFM_DEFAULT_MORPH
from realtime.errors import ContractError, SwapcamError
from realtime.swapper import Swapper, create_session, nvidia_device_count

GAIN = (1.0, 0.8, 1.2)  # RGB order (the swapcam contract)
OFFSET = (0.1, -0.05, 0.0)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("swapper_models")


@pytest.fixture(scope="module")
def swapcam_model(model_dir):
    return colour_shift_model(model_dir / "shift.onnx", size=64, gain=GAIN, offset=OFFSET)


@pytest.fixture(scope="module")
def swapper(swapcam_model):
    return Swapper(swapcam_model)


def _crops(n: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def _reference_shift_bgr(crop: np.ndarray, gain, offset) -> np.ndarray:
    """Independent numpy version of the test graph on a BGR crop (gain/offset given in RGB order)."""
    rgb = crop[..., ::-1].astype(np.float64) / 255.0
    out = np.clip(rgb * np.array(gain) + np.array(offset), 0, 1)
    return np.round(out[..., ::-1] * 255.0)


def test_swap_matches_reference_and_returns_contract_types(swapper):
    assert swapper.info.size == 64 and swapper.info.format == "swapcam"
    crops = _crops(3)
    faces, masks = swapper.swap(crops)
    assert len(faces) == len(masks) == 3
    for crop, face, mask in zip(crops, faces, masks, strict=True):
        assert face.shape == (64, 64, 3) and face.dtype == np.uint8
        assert mask.shape == (64, 64) and mask.dtype == np.float32
        assert 0.0 <= mask.min() and mask.max() <= 1.0
        np.testing.assert_allclose(face, _reference_shift_bgr(crop, GAIN, OFFSET), atol=1)
        np.testing.assert_array_equal(mask, _ellipse_mask(64))
    assert swapper.swap([]) == ([], [])


def test_all_crops_in_one_session_run(swapper):
    calls = []
    real_run = swapper.session.run

    def counting_run(*args, **kwargs):
        calls.append(args[1][swapper.input_name].shape)
        return real_run(*args, **kwargs)

    swapper.session.run = counting_run
    try:
        faces, _ = swapper.swap(_crops(4, seed=1))
    finally:
        del swapper.session.run
    assert calls == [(4, 3, 64, 64)]
    singles = [swapper.swap([c])[0][0] for c in _crops(4, seed=1)]
    for batched, single in zip(faces, singles, strict=True):
        np.testing.assert_array_equal(batched, single)


def test_swapper_is_thread_safe(swapper):
    crops = _crops(2, seed=2)
    expected = swapper.swap(crops)[0]
    errors, results = [], []

    def worker():
        try:
            for _ in range(20):
                results.append(swapper.swap(crops)[0])
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 80
    for faces in results:
        for got, want in zip(faces, expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_bad_crops_raise_naming_the_problem(swapper):
    with pytest.raises(ValueError, match="crop 1 .*64x64x3 uint8"):
        swapper.swap([_crops(1)[0], np.zeros((32, 32, 3), np.uint8)])
    with pytest.raises(ValueError, match="crop 0"):
        swapper.swap([np.zeros((64, 64, 3), np.float32)])


def test_dfm_without_metadata_loads_with_size_from_shape(model_dir, caplog):
    # DFM: NHWC, BGR order, so gain/offset apply to B, G, R.
    path = colour_shift_model(
        model_dir / "plain.dfm", size=48, gain=(1.0, 1.0, 1.0), offset=(0.3, 0.0, 0.0), layout="dfm", with_meta=False
    )
    with caplog.at_level(logging.WARNING, logger="swapcam.swapper"):
        sw = Swapper(path)
    assert sw.kind == "dfm" and sw.info.size == 48 and sw.info.coverage == DFM_DEFAULT_COVERAGE  # DeepFaceLive's
    assert any("DFM without swapcam metadata" in r.getMessage() for r in caplog.records)
    crop = _crops(1, size=48, seed=3)[0]
    face, mask = sw.swap([crop])
    expected = np.clip(crop.astype(np.float64) / 255 + np.array([0.3, 0, 0]), 0, 1) * 255
    np.testing.assert_allclose(face[0], np.round(expected), atol=1)
    assert mask[0].shape == (48, 48)


def test_dfm_morph_input_gets_deepfacelives_default_unless_told(model_dir):
    path = colour_shift_model(
        model_dir / "morph.dfm", size=32, offset=(0.0, 0.0, 0.4), layout="dfm", with_meta=False, morph_input=True
    )
    sw = Swapper(path)
    assert sw.has_morph and DFM_DEFAULT_MORPH == 0.75
    crop = np.full((32, 32, 3), 100, np.uint8)

    def red(**kwargs) -> int:  # the graph adds morph_value * 0.4 to the red (last, BGR) channel
        return int(sw.swap([crop], **kwargs)[0][0][0, 0, 2])

    assert abs(red() - (100 + 0.75 * 0.4 * 255)) <= 1  # the default: 0.75, as DeepFaceLive feeds
    assert red(morph=1.0) == round(100 + 0.4 * 255)
    assert red(morph=0.0) == 100
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="morph="):
            sw.swap([crop], morph=bad)


def test_morph_is_ignored_by_models_without_the_input(swapper):
    assert not swapper.has_morph
    crops = _crops(1, seed=5)
    np.testing.assert_array_equal(swapper.swap(crops, morph=0.0)[0][0], swapper.swap(crops)[0][0])


def test_dfm_blend_mask_is_celeb_mask_times_camera_face_mask(model_dir):
    """DeepFaceLive's merger: out_celeb_face_mask x out_face_mask. The camera face's mask here keeps the left half."""
    size = 32
    left = np.zeros((size, size), np.float32)
    left[:, : size // 2] = 1.0
    path = colour_shift_model(
        model_dir / "masks.dfm", size=size, layout="dfm", mask=np.full((size, size), 0.5), source_mask=left
    )
    sw = Swapper(path)
    _, masks = sw.swap(_crops(2, size=size, seed=6))
    for mask in masks:
        np.testing.assert_array_equal(mask, 0.5 * left)


def test_missing_file(model_dir):
    with pytest.raises(SwapcamError, match="does not exist"):
        Swapper(model_dir / "nope.onnx")


def test_corrupt_file(model_dir):
    bad = model_dir / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07this is not a protobuf at all" * 10)
    with pytest.raises(ContractError, match="corrupt.onnx"):
        Swapper(bad)


def test_wrong_tensor_names(model_dir):
    path = colour_shift_model(model_dir / "names.onnx", input_name="image")
    with pytest.raises(ContractError, match=r"in=\['image'\].*match neither"):
        Swapper(path)


def test_wrong_channel_count(model_dir):
    path = colour_shift_model(model_dir / "rgba.onnx", channels=4)
    with pytest.raises(ContractError, match="4 channels"):
        Swapper(path)


def test_metadata_size_differs_from_graph(model_dir):
    path = colour_shift_model(model_dir / "size.onnx", size=64, meta={"swapcam.size": "128"})
    with pytest.raises(ContractError, match="differs from metadata size 128"):
        Swapper(path)


def test_swapcam_graph_without_metadata(model_dir):
    path = colour_shift_model(model_dir / "nometa.onnx", with_meta=False)
    with pytest.raises(ContractError, match="swapcam.size"):
        Swapper(path)


def test_wrong_template_in_metadata(model_dir):
    path = colour_shift_model(model_dir / "tmpl.onnx", meta={"swapcam.template": "dlib-5pt"})
    with pytest.raises(ContractError, match="template='dlib-5pt'"):
        Swapper(path)


def test_format_metadata_contradicts_tensors(model_dir):
    path = colour_shift_model(model_dir / "fmt.onnx", meta={"swapcam.format": "dfm"})
    with pytest.raises(ContractError, match="metadata says format='dfm'"):
        Swapper(path)


def test_provider_report_is_one_line_and_said_by_the_caller(swapcam_model, caplog):
    from realtime.builder import open_swapper

    with caplog.at_level(logging.INFO):
        swapper = Swapper(swapcam_model, threads=1)
    assert not [r for r in caplog.records if "onnxruntime" in r.getMessage()]  # the factory itself says nothing
    report = swapper.provider_report
    assert "\n" not in report and report.startswith("onnxruntime ")
    if nvidia_device_count() == 0:
        assert "running on CPU (1 threads)" in report
    with caplog.at_level(logging.INFO, logger="swapcam.builder"):
        open_swapper(swapcam_model, threads=1)
    lines = [r.getMessage() for r in caplog.records if "onnxruntime" in r.getMessage()]
    assert lines == [f"{swapcam_model.name}: {report}"]


@pytest.mark.skipif(nvidia_device_count() > 0, reason="checks the fallback on a machine without an NVIDIA GPU")
def test_gpu_request_falls_back_quietly_without_gpu(swapcam_model, capfd):
    # An explicit list makes the factory really try CUDA: onnxruntime-gpu then prints red errors and falls back.
    session, report = create_session(swapcam_model, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert session.get_providers() == ["CPUExecutionProvider"]
    captured = capfd.readouterr()
    assert "onnxruntime:" not in captured.err and "EP Error" not in captured.out + captured.err
    assert "running on CPU" in report and "could not start" in report and "\n" not in report
    with pytest.raises(SwapcamError, match="no NVIDIA driver"):
        create_session(swapcam_model, providers="cuda")


def test_bad_provider_and_threads(swapcam_model):
    with pytest.raises(SwapcamError, match="providers='gpu'"):
        create_session(swapcam_model, providers="gpu")
    with pytest.raises(SwapcamError, match="threads=0"):
        create_session(swapcam_model, threads=0)


def test_native_output_capture_is_safe_from_several_threads(capfd):
    import os

    from realtime.native import captured_native_output

    def worker(i):
        with captured_native_output():
            os.write(2, f"hidden {i}\n".encode())
            threading.Event().wait(0.02)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.write(2, b"visible after\n")
    err = capfd.readouterr().err
    assert "hidden" not in err and "visible after" in err
