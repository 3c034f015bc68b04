"""Static int8 quantisation of an exported swap model, calibrated on real face crops, with its cost measured.

onnxruntime's static quantiser (QDQ format: int8 weights per output channel, uint8 activations) needs activation
ranges: they come from the model running on face crops of the identity it will see (a2b: faceset A). Half of the
crops calibrate, the other half measure what quantisation cost: PSNR of the int8 model's face against the float
model's, and both models' time for one face on this CPU. int8 only pays where the CPU has fast int8 dot products
(VNNI / AMX); elsewhere it can be slower than float, which the report says.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from realtime.atomic import atomic_replace
from realtime.errors import SwapcamError

MAX_PSNR_COST_DB = 0.5  # int8 is worth recommending only within this much of the float model, and faster


def faceset_crops(folder: str | Path, size: int, limit: int = 64) -> np.ndarray:
    """Up to ``limit`` evenly spaced crops of a faceset (faces.json + images) as N x 3 x size x size float32 RGB."""
    import json

    import cv2

    from realtime.media import read_image

    folder = Path(folder)
    try:
        entries = json.loads((folder / "faces.json").read_text())["faces"]
    except (OSError, ValueError, KeyError) as exc:
        raise SwapcamError(f"{folder}: not a faceset (faces.json unreadable: {exc})") from None
    picks = np.unique(np.linspace(0, len(entries) - 1, min(limit, len(entries))).round().astype(int))
    crops = []
    for i in picks:
        image = read_image(folder / entries[i]["file"])
        if image is not None:
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            crops.append(image[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0)
    if len(crops) < 4:
        raise SwapcamError(f"{folder}: fewer than 4 readable face crops for int8 calibration")
    return np.stack(crops)


def _session(path: Path, threads: int = 2):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _median_ms(session, feeds: dict[str, np.ndarray], runs: int = 40) -> float:
    for _ in range(5):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def quantize_int8(
    float_model: str | Path, out: str | Path, faces: np.ndarray, own_faces: np.ndarray | None = None
) -> dict[str, Any]:
    """Quantise ``float_model`` (a swapcam-contract ONNX file) into ``out``.

    ``faces``: N x 3 x S x S float32 RGB [0, 1] crops of the identity the model will be fed (a2b: A), N >= 4; even
    ones calibrate, odd ones compare int8 with float output. ``own_faces``: crops of the identity the model draws
    (a2b: B); the model should give them back, so PSNR against them is the model's quality, float and int8: their
    difference is what int8 costs. Returns {"path", "psnr_vs_float_db", "quality_float_db", "quality_int8_db",
    "cost_db", "float_ms", "int8_ms", "recommended", "bytes"}: recommended when int8 is faster and costs <= 0.5 dB.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    faces = np.ascontiguousarray(faces, dtype=np.float32)
    if faces.ndim != 4 or faces.shape[1] != 3 or len(faces) < 4:
        raise SwapcamError(f"int8 calibration needs at least 4 faces N x 3 x S x S, got {faces.shape}")
    float_model, out = Path(float_model), Path(out)
    float_session = _session(float_model)
    name = float_session.get_inputs()[0].name
    calibrate, held = faces[0::2], faces[1::2]
    # a re-centring graph's latent shift: zeros (the plain swap; the shift only moves the decoder's input code)
    extra = {i.name: np.zeros((1, i.shape[1]), np.float32) for i in float_session.get_inputs()[1:]}

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(calibrate)

        def get_next(self) -> dict[str, np.ndarray] | None:
            face = next(self._items, None)
            return None if face is None else {name: face[None], **extra}

    with tempfile.TemporaryDirectory() as tmp, atomic_replace(out) as target:
        raw = Path(tmp) / "int8.onnx"
        logging.disable(logging.WARNING)  # the quantiser's "consider pre-processing" advice, through the root logger
        try:
            quantize_static(
                str(float_model),
                str(raw),
                Faces(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
            )
        finally:
            logging.disable(logging.NOTSET)
        proto = onnx.load(str(raw))
        source = onnx.load(str(float_model), load_external_data=False)
        del proto.metadata_props[:]  # the contract's metadata, as the float model states it
        for entry in source.metadata_props:
            proto.metadata_props.add(key=entry.key, value=entry.value)
        proto.metadata_props.add(key="swapcam.weights", value="int8 (static, QDQ, calibrated on face crops)")
        data = proto.SerializeToString()
        target.write_bytes(data)
        int8_session = _session(target)

        def run(session, batch: np.ndarray) -> np.ndarray:
            return np.concatenate([session.run(None, {name: f[None], **extra})[0] for f in batch])

        psnr_vs_float = _psnr(run(float_session, held), run(int8_session, held))
        quality: dict[str, float | None] = {"float": None, "int8": None}
        if own_faces is not None and len(own_faces):
            own = np.ascontiguousarray(own_faces[:32], dtype=np.float32)
            quality = {"float": _psnr(run(float_session, own), own), "int8": _psnr(run(int8_session, own), own)}
        float_ms = _median_ms(float_session, {name: held[:1], **extra})
        int8_ms = _median_ms(int8_session, {name: held[:1], **extra})
    cost = None if quality["float"] is None or quality["int8"] is None else quality["float"] - quality["int8"]
    return {
        "path": str(out),
        "psnr_vs_float_db": round(psnr_vs_float, 2),
        "quality_float_db": None if quality["float"] is None else round(quality["float"], 2),
        "quality_int8_db": None if quality["int8"] is None else round(quality["int8"], 2),
        "cost_db": None if cost is None else round(cost, 2),
        "float_ms": round(float_ms, 2),
        "int8_ms": round(int8_ms, 2),
        "recommended": bool(int8_ms < float_ms and cost is not None and cost <= MAX_PSNR_COST_DB),
        "bytes": len(data),
    }
