"""Export a trained run to ONNX: the encoder + the other identity's decoder as one graph, parity-checked before it
is written (a temp file beside --out replaces --out only when torch and onnxruntime agree).

``--format swapcam`` (default): ``in_face`` N x 3 x S x S float32 RGB [0, 1] -> ``out_face``, ``out_mask`` (see
models/contract.py). ``--format dfm``: the DeepFaceLab/DeepFaceLive contract (NHWC, BGR, ``in_face:0`` ->
``out_face_mask:0``, ``out_celeb_face:0``, ``out_celeb_face_mask:0``; ONNX opset 12, as DeepFaceLab writes). Either
way the ``swapcam.*`` metadata (size, coverage, template, colour order, value range, preset, steps, PSNR, identities)
goes into the ONNX ``metadata_props``, readable with ``onnx`` or onnxruntime alone. ``--fp16`` stores the weights as
float16 (half the file) while the graph still takes and computes float32, so callers need not change.
"""

from __future__ import annotations

import argparse
import io
import warnings
from pathlib import Path

import numpy as np

from models.checkpoint import find_checkpoint, load_checkpoint, model_from_checkpoint
from models.contract import (
    DFL_Y_OFFSET_FOR_SWAPCAM,
    DFM_INPUT,
    DFM_MORPH_INPUT,
    DFM_OUT_FACE,
    DFM_OUT_FACE_MASK,
    DFM_OUT_MASK,
    INPUT_NAME,
    LATENT_OUTPUT,
    LATENT_SHIFT_INPUT,
    OUTPUT_FACE,
    OUTPUT_MASK,
    ModelInfo,
    check_io_names,
    deepfacelive_coverage,
)
from realtime.align import DEFAULT_COVERAGE
from realtime.atomic import atomic_replace
from realtime.errors import SwapcamError

OPSET = 17
# DeepFaceLab exports DFMs at opset 12, and older DeepFaceLive builds ship onnxruntime 1.8-1.12, which cannot load newer
# opsets; every op of the autoencoder (PixelShuffle as DepthToSpace CRD since opset 11) exports at 12.
DFM_OPSET = 12
OPSETS = {"swapcam": OPSET, "dfm": DFM_OPSET}
DIRECTIONS = ("a2b", "b2a")
FORMATS = ("swapcam", "dfm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="training run folder (holding checkpoint.pt) or a checkpoint file")
    parser.add_argument("--direction", default="a2b", help="a2b: the graph turns face A into B; b2a: the reverse")
    parser.add_argument("--out", required=True, help="output .onnx (or .dfm with --format dfm)")
    parser.add_argument(
        "--format",
        default="swapcam",
        help="swapcam (NCHW RGB, in_face/out_face/out_mask) or dfm (DeepFaceLive: NHWC BGR, in_face:0 ...)",
    )
    parser.add_argument("--fp16", action="store_true", help="store weights as float16 (compute and I/O stay float32)")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="static int8 quantisation calibrated on face crops of the input identity; prints what it costs (PSNR "
        "vs the float model) and gains (ms per face here), and whether it is worth using on this CPU",
    )
    parser.add_argument(
        "--calibration",
        default=None,
        help="--int8: faceset of the identity the model is fed (a2b: A); when left out, the run's own faceset",
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip the torch vs onnxruntime parity check (with it, a model that fails is not written)",
    )
    parser.add_argument(
        "--no-recentre",
        action="store_true",
        help="leave out identity re-centring: by default a swapcam graph also takes a latent shift and returns each "
        "face's latent code, with the drawn identity's mean code in its metadata, so the live loop can move the "
        "camera person's code to the drawn identity's (README 'Identity re-centring'); a DFM gets DeepFaceLive's "
        "morph_value input instead (code + morph x (target mean - source mean)). Needs the identities' mean codes, "
        "which checkpoints hold since then, or the run's facesets",
    )


# --------------------------------------------------------------------------------------------------- graphs
def _graph_module(model, direction: str, fmt: str, means: dict[str, list[float]] | None = None):
    """The nn.Module to export for a direction and format (built lazily: torch only imported here). With the
    identities' mean codes (``means``), a swapcam graph re-centres through a latent shift input, and a DFM through
    DeepFaceLive's ``morph_value:0``: code + morph x (target mean - source mean), as its AMP models morph."""
    import torch
    from torch import nn

    from models.autoencoder import RecentredDirection, SwapDirection

    source, target = ("a", "b") if direction == "a2b" else ("b", "a")
    if fmt == "swapcam":
        return (RecentredDirection if means else SwapDirection)(model, target).eval()

    class DfmGraph(nn.Module):
        """NHWC BGR in and out. The mask of the input face comes from the source identity's own decoder, fed the
        face's own code."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = model.encoder
            self.src_decoder = model.decoder(source)
            self.dst_decoder = model.decoder(target)
            delta = None
            if means:
                delta = (torch.tensor(means[target], dtype=torch.float32) - torch.tensor(means[source]))[None]
            self.register_buffer("delta", delta)  # 1 x latent, or None: no morph input

        def forward(self, in_face: torch.Tensor, morph_value: torch.Tensor | None = None):
            rgb = in_face.permute(0, 3, 1, 2).flip(1)
            z = self.encoder.encode(rgb)
            _, src_mask = self.src_decoder(self.encoder.expand(z))
            if isinstance(self.delta, torch.Tensor) and morph_value is not None:
                z = z + morph_value.reshape(1, 1) * self.delta
            face, mask = self.dst_decoder(self.encoder.expand(z))
            return src_mask.permute(0, 2, 3, 1), face.flip(1).permute(0, 2, 3, 1), mask.permute(0, 2, 3, 1)

    return DfmGraph().eval()


def _io(fmt: str, size: int, recentre: bool = False):
    if fmt == "swapcam" and recentre:
        return [INPUT_NAME, LATENT_SHIFT_INPUT], [OUTPUT_FACE, OUTPUT_MASK, LATENT_OUTPUT], (1, 3, size, size)
    if fmt == "swapcam":
        return [INPUT_NAME], [OUTPUT_FACE, OUTPUT_MASK], (1, 3, size, size)
    dfm_inputs = [DFM_INPUT, DFM_MORPH_INPUT] if recentre else [DFM_INPUT]
    return dfm_inputs, [DFM_OUT_MASK, DFM_OUT_FACE, DFM_OUT_FACE_MASK], (1, size, size, 3)


def latent_codes(state: dict, model) -> tuple[dict[str, list[float]], dict[str, float] | None] | None:
    """Each identity's mean latent code and spread (models.autoencoder.identity_codes): from the checkpoint (training
    stores them with every save), else computed from the run's facesets when they are still where training read
    them (the spreads alone, around stored means, for checkpoints saved before spreads were stored). None when no
    means are at hand (the export is then a plain swap graph); spreads None when only the means are."""
    stored, spreads = state.get("latent_means"), state.get("latent_spreads")
    means = {k: list(stored[k]) for k in ("a", "b")} if stored and {"a", "b"} <= set(stored) else None
    if means is not None and spreads and {"a", "b"} <= set(spreads):
        return means, {k: float(spreads[k]) for k in ("a", "b")}
    tcfg = state.get("train_config") or {}
    folders = [str(tcfg.get(k) or "") for k in ("a", "b")]
    if not all(f and (Path(f) / "faces.json").is_file() for f in folders):
        return None if means is None else (means, None)
    from models.autoencoder import identity_codes
    from models.quantize import faceset_crops

    faces = {key: faceset_crops(folder, model.config.size) for key, folder in zip("ab", folders, strict=True)}
    return identity_codes(model, faces, means)


def _weights_to_fp16(proto) -> None:
    """Store float32 initializers as float16 followed by a Cast back to float32: half the bytes, float32 compute."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    casts = []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT or init.name.startswith("_"):
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < 16:  # scalars/shape constants: not worth a Cast
            continue
        half_name = init.name + "__fp16"
        graph.initializer.remove(init)
        graph.initializer.append(numpy_helper.from_array(arr.astype(np.float16), half_name))
        cast = helper.make_node("Cast", [half_name], [init.name], to=TensorProto.FLOAT, name=init.name + "__cast")
        casts.append(cast)
    for node in reversed(casts):
        graph.node.insert(0, node)
    onnx.checker.check_model(proto)


def parity_tolerance(fp16: bool) -> float:
    """Largest |torch - onnxruntime| an export may show: float16 weights round by ~1e-3, float32 only reorders sums."""
    return 2e-3 if fp16 else 1e-4


def export_model(
    checkpoint: str | Path,
    out: str | Path,
    direction: str = "a2b",
    fmt: str = "swapcam",
    fp16: bool = False,
    check: bool = True,
    tolerance: float | None = None,
    recentre: bool = True,
) -> dict:
    """Export; returns {"path", "info", "max_abs_diff", "bytes"}.

    ``recentre`` (swapcam format): add identity re-centring (input ``latent_shift``, output ``latent``, metadata
    ``latent_target``; see models.autoencoder.RecentredDirection) when the identities' mean codes are known
    (:func:`latent_codes`), with the drawn identity's spread as ``latent_spread`` (0 when unknown);
    ``info.latent_target`` is empty when the graph has none.

    The model is written to a temp file beside ``out``, parity-checked there (``check``) and only then renamed over
    ``out``: an export that fails the check raises SwapcamError and leaves ``out`` as it was (absent, or the older
    model). ``tolerance`` defaults to :func:`parity_tolerance`. SwapcamError also for a bad direction, format or
    checkpoint.
    """
    if direction not in DIRECTIONS:
        raise SwapcamError(f"--direction {direction!r}: choose a2b or b2a")
    if fmt not in FORMATS:
        raise SwapcamError(f"--format {fmt!r}: choose swapcam or dfm")
    state = load_checkpoint(find_checkpoint(checkpoint))
    model = model_from_checkpoint(state)
    codes = latent_codes(state, model) if recentre else None
    means, spreads = codes if codes is not None else (None, None)
    graph = _graph_module(model, direction, fmt, means)
    inputs, outputs, shape = _io(fmt, model.config.size, recentre=means is not None)
    info = _model_info(state, model.config, fmt, direction)
    if means is not None and fmt == "swapcam":
        target = "b" if direction == "a2b" else "a"
        info.latent_target = tuple(round(float(v), 5) for v in means[target])
        info.latent_spread = float(spreads[target]) if spreads else 0.0
    info.validate(str(out))
    data = _onnx_bytes(graph, info, inputs, outputs, shape, fp16, OPSETS[fmt], model.config.latent)
    out = Path(out)
    max_abs_diff = None
    with atomic_replace(out) as tmp:
        tmp.write_bytes(data)
        if check:
            max_abs_diff = parity(graph, tmp, shape, inputs, model.config.latent)
            limit = parity_tolerance(fp16) if tolerance is None else tolerance
            if not max_abs_diff <= limit:  # also catches NaN
                raise SwapcamError(
                    f"{out}: torch and onnxruntime outputs differ by {max_abs_diff:.2e} (tolerance "
                    f"{limit:.0e}); the model was not written"
                )
    return {
        "path": str(out),
        "info": info,
        "max_abs_diff": max_abs_diff,
        "bytes": len(data),
        "recentred": means is not None,
    }


def _model_info(state: dict, config, fmt: str, direction: str) -> ModelInfo:
    """The contract metadata of one export of a checkpoint."""
    names = list(state.get("identities") or ["A", "B"])
    return ModelInfo(
        size=config.size,
        coverage=float(state.get("coverage", DEFAULT_COVERAGE)),
        format=fmt,
        layout="NCHW" if fmt == "swapcam" else "NHWC",
        colour_order="RGB" if fmt == "swapcam" else "BGR",
        value_range=(0.0, 1.0),
        preset=config.name,
        steps=int(state["step"]),
        psnr={k: float(v) for k, v in (state.get("psnr") or {}).items()},
        identities=tuple(names) if direction == "a2b" else tuple(reversed(names)),
        direction=direction,
    )


def _onnx_bytes(
    graph,
    info: ModelInfo,
    inputs: list[str],
    outputs: list[str],
    shape: tuple[int, ...],
    fp16: bool,
    opset: int = OPSET,
    latent: int = 0,
) -> bytes:
    """The serialised ONNX model at ``opset``: traced graph, optional float16 weights, the swapcam metadata, checked."""
    import onnx
    import torch

    example = _example_inputs(shape, inputs, latent, torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    dynamic = {name: {0: "batch"} for name in inputs + outputs if name != DFM_MORPH_INPUT}
    # The TorchScript exporter (dynamo=False) gives a plain static graph with stable names; PixelShuffle becomes
    # DepthToSpace(CRD), which every onnxruntime provider runs.
    with warnings.catch_warnings():  # the TorchScript exporter announces its own deprecation on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        # the TorchScript exporter writes to a file object as well; torch's annotation only lists paths
        torch.onnx.export(
            graph,
            example,
            buf,  # type: ignore[arg-type]
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    if fp16:
        _weights_to_fp16(proto)
    del proto.metadata_props[:]
    for key, value in info.to_metadata().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "swapcam"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _example_inputs(shape: tuple[int, ...], inputs: list[str], latent: int, generator, batch: int | None = None):
    """Random faces, and for the optional second input: random latent shifts of the codes' own scale (a re-centring
    swapcam graph) or a morph factor (a DFM's ``morph_value:0``); for tracing and the parity check."""
    import torch

    n = shape[0] if batch is None else batch
    faces = torch.rand((n,) + tuple(shape[1:]), generator=generator)
    if LATENT_SHIFT_INPUT in inputs:
        return faces, torch.randn((n, latent), generator=generator) * 5.0
    if DFM_MORPH_INPUT in inputs:
        return faces, torch.rand((1,), generator=generator)
    return (faces,)


def parity(
    graph, path: str | Path, shape: tuple[int, ...], inputs: list[str], latent: int, batch: int = 3, seed: int = 1
) -> float:
    """Max |torch - onnxruntime| over all outputs for a random batch (also proves the dynamic batch axis works)."""
    import onnxruntime as ort
    import torch

    example = _example_inputs(shape, inputs, latent, torch.Generator().manual_seed(seed), batch)
    with torch.no_grad():
        expected = [t.numpy() for t in graph(*example)]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), example, strict=True)}
    got = sess.run(None, feeds)
    return max(float(np.abs(e - g).max()) for e, g in zip(expected, got, strict=True))


def read_info(path: str | Path) -> tuple[ModelInfo, str]:
    """(ModelInfo, format) of an exported model, using onnx only (no torch): what the live loop does."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    fmt = check_io_names([i.name for i in proto.graph.input], [o.name for o in proto.graph.output], str(path))
    return ModelInfo.from_metadata(meta, str(path)), fmt


def _run_int8(args: argparse.Namespace) -> int:
    """Float export (parity-checked) to a temp file, then int8 into --out, with the cost/gain report."""
    import tempfile

    from models.quantize import faceset_crops, quantize_int8

    state = load_checkpoint(find_checkpoint(args.run))
    tcfg, size = state.get("train_config") or {}, int(state["model_config"]["size"])
    fed, drawn = ("a", "b") if args.direction == "a2b" else ("b", "a")
    folder = args.calibration or tcfg.get(fed)
    if not folder:
        raise SwapcamError("--int8: no faceset to calibrate on; pass --calibration FACESET (the input identity's)")
    faces = faceset_crops(folder, size)
    own = faceset_crops(tcfg[drawn], size) if tcfg.get(drawn) and Path(tcfg[drawn]).is_dir() else None
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx"
        export_model(
            args.run, float_path, args.direction, "swapcam", check=not args.no_check, recentre=not args.no_recentre
        )
        report = quantize_int8(float_path, args.out, faces, own)
    verdict = "worth using here" if report["recommended"] else "not worth using here (keep the float model)"
    cost = "n/a" if report["cost_db"] is None else f"{report['cost_db']:.2f} dB"
    print(
        f"wrote {report['path']} ({report['bytes'] / 1e6:.1f} MB, int8): output vs float model "
        f"{report['psnr_vs_float_db']:.1f} dB PSNR; quality cost {cost}; one face "
        f"{report['float_ms']:.1f} ms float vs {report['int8_ms']:.1f} ms int8 on this CPU: {verdict}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.int8 and (args.fp16 or args.format != "swapcam"):
        raise SwapcamError("--int8 applies to a float32 swapcam-format export (not with --fp16 or --format dfm)")
    if args.int8:
        return _run_int8(args)
    result = export_model(
        args.run,
        args.out,
        args.direction,
        args.format,
        args.fp16,
        check=not args.no_check,
        recentre=not args.no_recentre,
    )
    info = result["info"]
    recentring = "identity re-centring" if result["recentred"] else "no identity re-centring"
    line = (
        f"wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB, {args.format}, {info.direction}: "
        f"{info.identities[0]} -> {info.identities[1]}, {info.size} px, coverage {info.coverage}, "
        f"step {info.steps}, {recentring})"
    )
    if result["max_abs_diff"] is not None:
        line += f"; torch vs onnxruntime max abs diff {result['max_abs_diff']:.2e}"
    print(line)
    if args.format == "dfm" and result["recentred"]:
        print(
            "DeepFaceLive: its Morph factor slider works on this model (identity re-centring: 0 = the plain swap, "
            "1 = the source identity's mean code moved all the way to the target's; 0.75 by default)"
        )
    if args.format == "dfm":
        # DeepFaceLive measures coverage on its own face template and frames faces higher than swapcam does.
        print(
            f"DeepFaceLive: set Face aligner > Face coverage {deepfacelive_coverage(info.coverage):.1f} and "
            f"Y offset {DFL_Y_OFFSET_FOR_SWAPCAM:.2f} (this model's framing: swapcam coverage {info.coverage:g})"
        )
        if Path(args.out).suffix.lower() != ".dfm":
            print(f"warning: {args.out} does not end in .dfm; DeepFaceLive lists only *.dfm files in its model folder")
    return 0
