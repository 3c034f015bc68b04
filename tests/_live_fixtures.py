"""Small real ONNX graphs (built with onnx.helper) for the live-engine tests: a real onnxruntime session runs them.

``colour_shift_model``: follows the swapcam contract; returns the input face with a per-channel gain/offset (a
known, checkable "swap") and a constant elliptical mask. Variants break the contract in one named way each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.contract import ModelInfo


def _ellipse_mask(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    r = ((xx - c) / (0.45 * size)) ** 2 + ((yy - c) / (0.48 * size)) ** 2
    return (r <= 1.0).astype(np.float32)


def colour_shift_model(
    path: Path,
    size: int = 64,
    gain=(1.0, 1.0, 1.0),
    offset=(0.2, -0.1, 0.0),
    *,
    layout: str = "swapcam",
    input_name: str | None = None,
    channels: int = 3,
    meta: dict | None = None,
    with_meta: bool = True,
    mask: np.ndarray | None = None,
    morph_input: bool = False,
    source_mask: np.ndarray | None = None,
) -> Path:
    """Write a tiny swap graph. layout 'swapcam' (NCHW RGB) or 'dfm' (NHWC BGR). ``gain``/``offset`` per channel in
    the model's own channel order; the face output is clip(x * gain + offset, 0, 1). ``mask``: the swapped face's
    mask (default an ellipse); ``source_mask`` (dfm): the constant ``out_face_mask:0``, default the same as ``mask``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    mask = _ellipse_mask(size) if mask is None else mask.astype(np.float32)
    if layout == "swapcam":
        in_name = input_name or "in_face"
        x = helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["N", channels, size, size])
        outs = [
            helper.make_tensor_value_info("out_face", TensorProto.FLOAT, ["N", channels, size, size]),
            helper.make_tensor_value_info("out_mask", TensorProto.FLOAT, ["N", 1, size, size]),
        ]
        cshape = [1, channels, 1, 1]
        mask_t = mask.reshape(1, 1, size, size)
        reduce_axis, face_name, mask_name = 1, "out_face", "out_mask"
        extra = []
    else:
        in_name = input_name or "in_face:0"
        x = helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["N", size, size, channels])
        outs = [
            helper.make_tensor_value_info("out_face_mask:0", TensorProto.FLOAT, ["N", size, size, 1]),
            helper.make_tensor_value_info("out_celeb_face:0", TensorProto.FLOAT, ["N", size, size, channels]),
            helper.make_tensor_value_info("out_celeb_face_mask:0", TensorProto.FLOAT, ["N", size, size, 1]),
        ]
        cshape = [1, 1, 1, channels]
        mask_t = mask.reshape(1, size, size, 1)
        reduce_axis, face_name, mask_name = 3, "out_celeb_face:0", "out_celeb_face_mask:0"
        if source_mask is None:
            extra = [helper.make_node("Identity", [mask_name], ["out_face_mask:0"])]
        else:
            extra = [helper.make_node("Add", ["zeros", "source_mask_const"], ["out_face_mask:0"])]
    g = np.resize(np.asarray(gain, np.float32), channels).reshape(cshape)
    o = np.resize(np.asarray(offset, np.float32), channels).reshape(cshape)
    inits = [
        numpy_helper.from_array(g, "gain"),
        numpy_helper.from_array(o, "offset"),
        numpy_helper.from_array(mask_t, "mask_const"),
        numpy_helper.from_array(np.float32(0), "zero"),
        numpy_helper.from_array(np.float32(1), "one"),
    ]
    if layout != "swapcam" and source_mask is not None:
        inits.append(
            numpy_helper.from_array(source_mask.astype(np.float32).reshape(1, size, size, 1), "source_mask_const")
        )
    inputs = [x]
    offset_name = "offset"
    if morph_input:  # DeepFaceLive SAEHD style: the offset is scaled by the scalar 'morph_value:0'
        inputs.append(helper.make_tensor_value_info("morph_value:0", TensorProto.FLOAT, [1]))
        offset_name = "morphed_offset"
    nodes = [
        *([helper.make_node("Mul", ["offset", "morph_value:0"], ["morphed_offset"])] if morph_input else []),
        helper.make_node("Mul", [in_name, "gain"], ["scaled"]),
        helper.make_node("Add", ["scaled", offset_name], ["shifted"]),
        helper.make_node("Clip", ["shifted", "zero", "one"], [face_name]),
        # mask = 0 * mean(x) + const: depends on the batch size N, constant in content.
        helper.make_node("ReduceMean", [in_name], ["mean"], axes=[reduce_axis], keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "mask_const"], [mask_name]),
        *extra,
    ]
    graph = helper.make_graph(nodes, "colour_shift", inputs, outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if with_meta:
        info = ModelInfo(
            size=size,
            format="swapcam" if layout == "swapcam" else "dfm",
            preset="test",
            layout="NCHW" if layout == "swapcam" else "NHWC",
            colour_order="RGB" if layout == "swapcam" else "BGR",
        )
        props = info.to_metadata()
        props.update(meta or {})
        for key, value in props.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def frozen_model(path, face_rgb: np.ndarray):
    """A contract-valid model that ignores its input and always draws ``face_rgb`` (S x S x 3 float RGB [0, 1])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    size = face_rgb.shape[0]
    const = face_rgb.transpose(2, 0, 1)[None].astype(np.float32)
    mask = np.ones((1, 1, size, size), np.float32)
    x = helper.make_tensor_value_info("in_face", TensorProto.FLOAT, ["N", 3, size, size])
    outs = [
        helper.make_tensor_value_info("out_face", TensorProto.FLOAT, ["N", 3, size, size]),
        helper.make_tensor_value_info("out_mask", TensorProto.FLOAT, ["N", 1, size, size]),
    ]
    inits = [
        numpy_helper.from_array(const, "face"),
        numpy_helper.from_array(mask, "mask"),
        numpy_helper.from_array(np.float32(0), "zero"),
    ]
    nodes = [
        helper.make_node("Mul", ["in_face", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "face"], ["out_face"]),
        helper.make_node("ReduceMean", ["zeros"], ["z1"], axes=[1], keepdims=1),
        helper.make_node("Add", ["z1", "mask"], ["out_mask"]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "frozen", [x], outs, initializer=inits), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    for key, value in ModelInfo(size=size, format="swapcam", preset="test").to_metadata().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


# Two faces side by side at two sizes, for face selection (realtime.selection): Grace Hopper's portrait cropped
# around her face on the left (landmark box ~187 px), the astronaut's on the right (~93 px), on grey. mediapipe's
# short-range detector finds both at this size; shrink the astronaut to 0.6 x and it no longer does.
TWO_FACES_SIZE = (640, 360)  # width, height
BIG_REGION = (slice(10, 350), slice(20, 360))  # rows, columns of Grace Hopper's crop
SMALL_REGION = (slice(60, 300), slice(400, 640))  # rows, columns of the astronaut's crop


def two_faces_frame() -> np.ndarray:
    """A 640x360 BGR frame with two faces: Grace Hopper large (left), the astronaut small (right)."""
    from realtime.samples import portrait

    grace, astronaut = portrait("grace_hopper").image, portrait("astronaut").image
    frame = np.full((TWO_FACES_SIZE[1], TWO_FACES_SIZE[0], 3), 90, np.uint8)
    frame[BIG_REGION] = grace[240 - 170 : 240 + 170, 266 - 170 : 266 + 170]
    frame[SMALL_REGION] = astronaut[150 - 120 : 150 + 120, 224 - 120 : 224 + 120]
    return frame
