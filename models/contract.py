"""The swap model's I/O contract, importable without torch (the live path reads it on machines with no torch).

swapcam ONNX graphs (``format = "swapcam"``):
  input  ``in_face``   N x 3 x S x S float32, RGB, values in [0, 1] (an Umeyama-aligned crop, see realtime.align)
  output ``out_face``  N x 3 x S x S float32, RGB, [0, 1] (the other identity's face)
  output ``out_mask``  N x 1 x S x S float32, [0, 1] (learned face mask)
  metadata_props: the ``swapcam.*`` keys of :class:`ModelInfo`.
  optional, together (identity re-centring, models.autoencoder.RecentredDirection):
  input  ``latent_shift`` N x L float32, added to each face's latent code before the decoder
  output ``latent``       N x L float32, each face's own latent code (before the shift)
  with metadata ``latent_target``: the mean code (L floats) of the identity the model draws. The live loop feeds
  shift = strength x (latent_target - the camera face's running mean code); zeros give the plain swap.

DeepFaceLab / DeepFaceLive DFM graphs (``format = "dfm"``):
  input  ``in_face:0``              N x S x S x 3 float32, BGR, [0, 1] (NHWC)
  output ``out_face_mask:0``        N x S x S x 1 (mask of the input face)
  output ``out_celeb_face:0``       N x S x S x 3 BGR (the swapped face)
  output ``out_celeb_face_mask:0``  N x S x S x 1 (mask of the swapped face)
  optional input ``morph_value:0``  (DeepFaceLive AMP models) morph factor, fed DFM_DEFAULT_MORPH unless told otherwise
  The blend mask of a DFM is out_celeb_face_mask x out_face_mask, as DeepFaceLive's merger makes it.

:func:`check_session` applies all of this to a loaded graph's declared tensors and metadata, without onnxruntime.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from realtime.align import DEFAULT_COVERAGE, TEMPLATE_NAME
from realtime.errors import ContractError

CONTRACT_VERSION = 1

INPUT_NAME = "in_face"
OUTPUT_FACE = "out_face"
OUTPUT_MASK = "out_mask"
INPUT_NAMES = (INPUT_NAME,)
OUTPUT_NAMES = (OUTPUT_FACE, OUTPUT_MASK)
LATENT_SHIFT_INPUT = "latent_shift"  # optional (identity re-centring), with LATENT_OUTPUT
LATENT_OUTPUT = "latent"

DFM_INPUT = "in_face:0"
DFM_OUT_MASK = "out_face_mask:0"
DFM_OUT_FACE = "out_celeb_face:0"
DFM_OUT_FACE_MASK = "out_celeb_face_mask:0"
DFM_MORPH_INPUT = "morph_value:0"  # DeepFaceLive AMP exports: how far towards the celebrity (1 = all)
DFM_DEFAULT_MORPH = 0.75  # DeepFaceLive's default morph factor for AMP models
DFM_INPUT_NAMES = (DFM_INPUT,)
DFM_OUTPUT_NAMES = (DFM_OUT_MASK, DFM_OUT_FACE, DFM_OUT_FACE_MASK)

META_PREFIX = "swapcam."

# Face framing of DeepFaceLive's aligner (68-point path): face coverage 2.2 by default, measured in its own uniform
# template, whose unit is DFL_TEMPLATE_UNIT of swapcam's (Umeyama fit of DeepFaceLive's 25-point uniform template to
# TEMPLATE_68 on the same points: scale 0.910, rotation 0, rms residual 0.026). So its default crop is swapcam coverage
# 2.2 * 0.910 = 2.0. Its crop centre is also 0.08 of its unit above its template's centre, which lands 0.054 swapcam
# units above swapcam's (TEMPLATE_Y_SHIFT is one constant of the template, not a per-model setting): a DFM without
# swapcam metadata is framed here with the face about 2.7 % of the crop lower than in DeepFaceLive.
DFL_DEFAULT_COVERAGE = 2.2
DFL_TEMPLATE_UNIT = 0.910
DFM_DEFAULT_COVERAGE = round(DFL_DEFAULT_COVERAGE * DFL_TEMPLATE_UNIT, 2)  # 2.0
# DeepFaceLive's "Y offset" that puts its crop centre where swapcam's is (same fit; its x offset would be -0.01).
DFL_Y_OFFSET_FOR_SWAPCAM = 0.06

# The shipped demo model (rt128 preset, trained by `swapcam build-demo-model`): A = astronaut, B = grace_hopper.
DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_MODELS = {"a2b": DEMO_DIR / "demo_a2b.onnx", "b2a": DEMO_DIR / "demo_b2a.onnx"}


def deepfacelive_coverage(coverage: float) -> float:
    """DeepFaceLive's "Face coverage" (its aligner's units, one decimal like its control) for a swapcam coverage."""
    return round(float(coverage) / DFL_TEMPLATE_UNIT, 1)


def demo_model_path(direction: str = "a2b") -> Path:
    """Path of the shipped demo model for a direction ('a2b': astronaut -> Grace Hopper, 'b2a': the reverse)."""
    if direction not in DEMO_MODELS:
        raise ContractError(f"demo model direction {direction!r}; choose from {', '.join(DEMO_MODELS)}")
    path = DEMO_MODELS[direction]
    if not path.exists():
        raise ContractError(f"demo model {path} is missing; rebuild it with `swapcam build-demo-model`")
    return path


@dataclass
class ModelInfo:
    """What the live loop needs to know about a swap model; stored as ONNX metadata_props (strings)."""

    size: int
    coverage: float = DEFAULT_COVERAGE
    template: str = TEMPLATE_NAME
    format: str = "swapcam"  # "swapcam" (NCHW RGB) or "dfm" (NHWC BGR)
    layout: str = "NCHW"
    colour_order: str = "RGB"
    value_range: tuple[float, float] = (0.0, 1.0)
    preset: str = "unknown"
    steps: int = 0
    psnr: dict[str, float] = field(default_factory=dict)
    identities: tuple[str, str] = ("A", "B")  # (source face the model takes, face it produces)
    direction: str = "a2b"
    contract_version: int = CONTRACT_VERSION
    latent_target: tuple[float, ...] = ()  # mean latent code of identities[1] (graphs with latent_shift / latent)
    # RMS distance of identities[1]'s training codes from latent_target (0: unknown). A camera face whose mean code
    # lies within a few spreads of latent_target already is that identity: re-centring leaves it alone.
    latent_spread: float = 0.0

    def to_metadata(self) -> dict[str, str]:
        out = {}
        for key, value in asdict(self).items():
            out[META_PREFIX + key] = value if isinstance(value, str) else json.dumps(value)
        return out

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], where: str = "model") -> ModelInfo:
        """Parse ``swapcam.*`` metadata, raising ContractError naming the bad key and value."""
        if META_PREFIX + "size" not in meta:
            raise ContractError(f"{where}: metadata has no '{META_PREFIX}size' key; not a swapcam model")
        kwargs: dict = {}
        for name in cls.__dataclass_fields__:
            key = META_PREFIX + name
            if key not in meta:
                continue
            raw = meta[key]
            value: Any  # a str, or whatever the JSON holds, converted to the field's type below
            try:
                if name in ("template", "format", "layout", "colour_order", "preset", "direction"):
                    value = raw
                else:
                    value = json.loads(raw)
                if name in ("value_range", "identities"):
                    value = tuple(value)
                if name == "latent_target":
                    value = tuple(float(v) for v in value)
                if name in ("size", "steps", "contract_version"):
                    value = int(value)
                if name in ("coverage", "latent_spread"):
                    value = float(value)
            except (ValueError, TypeError) as exc:
                raise ContractError(f"{where}: metadata {key}={raw!r} is not valid ({exc})") from None
            kwargs[name] = value
        info = cls(**kwargs)
        info.validate(where)
        return info

    def validate(self, where: str = "model") -> None:
        if not isinstance(self.size, int) or not 16 <= self.size <= 1024:
            raise ContractError(f"{where}: size={self.size!r}, expected an integer in 16..1024")
        if not 0.5 <= float(self.coverage) <= 4.0:
            raise ContractError(f"{where}: coverage={self.coverage!r}, expected 0.5..4.0")
        if not 0.0 <= float(self.latent_spread) < 1e6:  # also rejects NaN
            raise ContractError(f"{where}: latent_spread={self.latent_spread!r}, expected a finite value >= 0")
        if self.format not in ("swapcam", "dfm"):
            raise ContractError(f"{where}: format={self.format!r}, expected 'swapcam' or 'dfm'")
        if self.contract_version > CONTRACT_VERSION:
            raise ContractError(
                f"{where}: contract_version={self.contract_version} is newer than this swapcam ({CONTRACT_VERSION}); "
                "upgrade swapcam"
            )
        if self.template != TEMPLATE_NAME:
            raise ContractError(
                f"{where}: template={self.template!r}, this swapcam aligns faces with {TEMPLATE_NAME!r}"
            )


def check_io_names(inputs: Iterable[str], outputs: Iterable[str], where: str = "model") -> str:
    """Return 'swapcam' or 'dfm' from a graph's tensor names, or raise ContractError saying what is wrong."""
    inputs, outputs = list(inputs), list(outputs)
    if LATENT_SHIFT_INPUT in inputs[1:] and inputs[0] == INPUT_NAME:
        if LATENT_OUTPUT not in outputs:
            raise ContractError(
                f"{where}: input {LATENT_SHIFT_INPUT!r} without output {LATENT_OUTPUT!r} (out={outputs})"
            )
        inputs = [name for name in inputs if name != LATENT_SHIFT_INPUT]
    if inputs == list(INPUT_NAMES) and set(OUTPUT_NAMES) <= set(outputs):
        return "swapcam"
    if DFM_MORPH_INPUT in inputs and len(inputs) == 2:  # DeepFaceLive's AMP models: the runtime feeds a constant
        inputs = [name for name in inputs if name != DFM_MORPH_INPUT]
    if inputs == list(DFM_INPUT_NAMES) and set(DFM_OUTPUT_NAMES) <= set(outputs):
        return "dfm"
    raise ContractError(
        f"{where}: tensors in={inputs} out={outputs} match neither the swapcam contract "
        f"(in={list(INPUT_NAMES)} out={list(OUTPUT_NAMES)}) "
        f"nor DFM (in={list(DFM_INPUT_NAMES)} out={list(DFM_OUTPUT_NAMES)})"
    )


def _fixed(dim: object) -> int | None:
    """A declared dimension as an int, None when symbolic ('N', 'height') or unknown."""
    return dim if isinstance(dim, int) and dim > 0 else None


def check_session(
    inputs: Mapping[str, Sequence], outputs: Mapping[str, Sequence], metadata: Mapping[str, str], where: str = "model"
) -> ModelInfo:
    """Check a graph against the contract: tensor names, ranks, channels and sizes against the metadata.

    ``inputs`` / ``outputs``: tensor name -> declared shape (ints for fixed dimensions, anything else for symbolic
    ones), in the graph's order; ``metadata``: the graph's custom metadata (``swapcam.*`` keys). Returns the model's
    :class:`ModelInfo`; ``info.format`` says which contract the graph follows ('swapcam' or 'dfm'). A DFM graph
    without swapcam metadata gets its size from its input shape and ``preset='dfm'``. Raises ContractError naming
    the file and the offending tensor, shape or key.
    """
    inputs, outputs, metadata = dict(inputs), dict(outputs), dict(metadata)
    kind = check_io_names(inputs, outputs, where)  # (the optional morph / latent shift inputs are allowed there)
    shift_shape = inputs.get(LATENT_SHIFT_INPUT)
    input_name = INPUT_NAME if kind == "swapcam" else DFM_INPUT
    shape = list(inputs[input_name])
    if len(shape) != 4:
        raise ContractError(f"{where}: input {input_name!r} has shape {shape}, expected 4-D (N,C,H,W or N,H,W,C)")
    if kind == "swapcam":
        info = ModelInfo.from_metadata(metadata, where)
        if info.format != "swapcam":
            raise ContractError(
                f"{where}: tensors follow the swapcam contract but metadata says format={info.format!r}"
            )
        channels, height, width = shape[1], _fixed(shape[2]), _fixed(shape[3])
    else:
        if META_PREFIX + "size" in metadata:
            info = ModelInfo.from_metadata(metadata, where)
            if info.format != "dfm":
                raise ContractError(
                    f"{where}: tensors follow the DFM contract but metadata says format={info.format!r}"
                )
        else:
            size = _fixed(shape[1])
            if size is None:
                raise ContractError(f"{where}: DFM input {input_name!r} has shape {shape}; the face size must be fixed")
            info = ModelInfo(
                size=size,
                coverage=DFM_DEFAULT_COVERAGE,  # DeepFaceLive's default framing: what such a file was made for
                format="dfm",
                layout="NHWC",
                colour_order="BGR",
                preset="dfm",
            )
            info.validate(where)
        height, width, channels = _fixed(shape[1]), _fixed(shape[2]), shape[3]
    if isinstance(channels, int) and channels != 3:
        raise ContractError(f"{where}: input {input_name!r} has {channels} channels (shape {shape}), expected 3")
    for dim, name in ((height, "height"), (width, "width")):
        if dim is not None and dim != info.size:
            raise ContractError(f"{where}: input {name} {dim} (shape {shape}) differs from metadata size {info.size}")
    if shift_shape is not None:
        latent = _fixed(list(shift_shape)[-1]) if len(shift_shape) == 2 else None
        if latent is None or latent != len(info.latent_target):
            raise ContractError(
                f"{where}: input {LATENT_SHIFT_INPUT!r} has shape {list(shift_shape)} but metadata latent_target "
                f"has {len(info.latent_target)} values; expected N x {len(info.latent_target)}"
            )
    checked = list(zip(output_names(kind), (3, 1), strict=True)) + ([(DFM_OUT_MASK, 1)] if kind == "dfm" else [])
    for name, channels_out in checked:
        dims = list(outputs[name])
        if len(dims) != 4:
            raise ContractError(f"{where}: output {name!r} has shape {dims}, expected 4-D")
        c_out = dims[1] if kind == "swapcam" else dims[3]
        if isinstance(c_out, int) and c_out != channels_out:
            raise ContractError(
                f"{where}: output {name!r} has {c_out} channels (shape {dims}), expected {channels_out}"
            )
    return info


def output_names(kind: str) -> tuple[str, str]:
    """(swapped face, its mask): the two outputs the live path reads, for a 'swapcam' or 'dfm' graph."""
    return (OUTPUT_FACE, OUTPUT_MASK) if kind == "swapcam" else (DFM_OUT_FACE, DFM_OUT_FACE_MASK)
