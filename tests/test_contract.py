"""models.contract: torch-free import, metadata round trip, validation errors that name the key and value, and the
load-time checks of a graph's declared tensors (check_session)."""

import re
import subprocess
import sys

import pytest

from models import contract
from models.contract import ModelInfo, check_io_names
from realtime.errors import ContractError


def test_contract_imports_without_torch():
    code = "import sys, models.contract, realtime.align, realtime.landmarks; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_metadata_round_trip_keeps_every_field():
    info = ModelInfo(
        size=64,
        coverage=1.45,
        preset="tiny",
        steps=1234,
        psnr={"a": 27.5, "b": 26.25},
        identities=("astronaut", "grace_hopper"),
        direction="a2b",
    )
    meta = info.to_metadata()
    assert all(k.startswith(contract.META_PREFIX) and isinstance(v, str) for k, v in meta.items())
    assert ModelInfo.from_metadata(meta) == info


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("size", "8", "size=8"),
        ("size", "abc", "swapcam.size='abc'"),
        ("coverage", "9.0", "coverage=9.0"),
        ("format", "tflite", "format='tflite'"),
        ("template", "other", "template='other'"),
        ("contract_version", "99", "contract_version=99"),
    ],
)
def test_bad_metadata_names_key_and_value(key, value, needle):
    meta = ModelInfo(size=64).to_metadata()
    meta[contract.META_PREFIX + key] = value
    with pytest.raises(ContractError, match=__import__("re").escape(needle)):
        ModelInfo.from_metadata(meta, where="m.onnx")


def test_missing_size_says_not_a_swapcam_model():
    with pytest.raises(ContractError, match="not a swapcam model"):
        ModelInfo.from_metadata({"producer": "x"}, where="m.onnx")


def test_io_names_detect_both_formats_and_reject_others():
    assert check_io_names(["in_face"], ["out_face", "out_mask"]) == "swapcam"
    assert check_io_names(["in_face:0"], ["out_face_mask:0", "out_celeb_face:0", "out_celeb_face_mask:0"]) == "dfm"
    dfm_out = ["out_face_mask:0", "out_celeb_face:0", "out_celeb_face_mask:0"]
    assert check_io_names(["in_face:0", "morph_value:0"], dfm_out) == "dfm"  # DeepFaceLive's AMP signature
    with pytest.raises(ContractError, match=r"in=\['input'\]"):
        check_io_names(["input"], ["output"], where="m.onnx")
    with pytest.raises(ContractError, match="match neither"):
        check_io_names(["in_face"], ["out_face"])  # mask missing


# -- check_session: the load-time checks on a graph's declared tensors (no onnxruntime needed) ------------------------
SWAPCAM_OUT = {"out_face": ["N", 3, 64, 64], "out_mask": ["N", 1, 64, 64]}
DFM_OUT = {
    "out_face_mask:0": ["N", 96, 96, 1],
    "out_celeb_face:0": ["N", 96, 96, 3],
    "out_celeb_face_mask:0": ["N", 96, 96, 1],
}


def test_check_session_accepts_both_contracts():
    meta = ModelInfo(size=64, preset="tiny").to_metadata()
    info = contract.check_session({"in_face": ["N", 3, 64, 64]}, SWAPCAM_OUT, meta, "m.onnx")
    assert info.format == "swapcam" and info.size == 64 and info.preset == "tiny"
    # A DFM without swapcam metadata: size from the input shape; the DeepFaceLive morph input is not the face input.
    info = contract.check_session({"in_face:0": ["N", 96, 96, 3], "morph_value:0": [1]}, DFM_OUT, {}, "m.dfm")
    assert (info.format, info.size, info.layout, info.colour_order, info.preset) == ("dfm", 96, "NHWC", "BGR", "dfm")
    assert contract.output_names("dfm") == ("out_celeb_face:0", "out_celeb_face_mask:0")
    # ... and DeepFaceLive's default framing, not swapcam's: coverage 2.2 on DeepFaceLive's template is 2.0 on ours
    assert info.coverage == contract.DFM_DEFAULT_COVERAGE == 2.0
    assert contract.deepfacelive_coverage(info.coverage) == contract.DFL_DEFAULT_COVERAGE == 2.2
    assert contract.deepfacelive_coverage(1.6) == 1.8


def test_recentring_tensors_come_as_a_pair_sized_by_the_metadata():
    """Identity re-centring: ``latent_shift`` in and ``latent`` out together, N x len(latent_target)."""
    assert check_io_names(["in_face", "latent_shift"], ["out_face", "out_mask", "latent"]) == "swapcam"
    with pytest.raises(ContractError, match="without output 'latent'"):
        check_io_names(["in_face", "latent_shift"], ["out_face", "out_mask"], where="m.onnx")
    with pytest.raises(ContractError, match="match neither"):
        check_io_names(["latent_shift", "in_face"], ["out_face", "out_mask", "latent"])  # the face comes first
    meta = ModelInfo(size=64, latent_target=(0.5, -1.0, 2.0), latent_spread=1.25).to_metadata()
    outs = {**SWAPCAM_OUT, "latent": ["N", 3]}
    info = contract.check_session({"in_face": ["N", 3, 64, 64], "latent_shift": ["N", 3]}, outs, meta, "m.onnx")
    assert info.latent_target == (0.5, -1.0, 2.0) and info.latent_spread == 1.25
    bad = dict(meta, **{"swapcam.latent_spread": "-1"})
    with pytest.raises(ContractError, match="latent_spread=-1.0"):
        contract.check_session({"in_face": ["N", 3, 64, 64], "latent_shift": ["N", 3]}, outs, bad, "m.onnx")
    with pytest.raises(ContractError, match="latent_target has 3 values"):
        contract.check_session({"in_face": ["N", 3, 64, 64], "latent_shift": ["N", 4]}, outs, meta, "m.onnx")
    plain = ModelInfo(size=64).to_metadata()
    with pytest.raises(ContractError, match="latent_target has 0 values"):
        contract.check_session({"in_face": ["N", 3, 64, 64], "latent_shift": ["N", 3]}, outs, plain, "m.onnx")


def test_dfm_metadata_coverage_wins_over_the_deepfacelive_default():
    meta = ModelInfo(size=96, coverage=1.6, format="dfm", layout="NHWC", colour_order="BGR").to_metadata()
    info = contract.check_session({"in_face:0": ["N", 96, 96, 3]}, DFM_OUT, meta, "m.dfm")
    assert info.coverage == 1.6


GOOD_META = ModelInfo(size=64).to_metadata()


@pytest.mark.parametrize(
    "inputs, outputs, meta, needle",
    [
        ({"in_face": ["N", 3, 64]}, SWAPCAM_OUT, GOOD_META, "expected 4-D"),
        ({"in_face": ["N", 4, 64, 64]}, SWAPCAM_OUT, GOOD_META, "4 channels"),
        (
            {"in_face": ["N", 3, 32, 32]},
            SWAPCAM_OUT,
            GOOD_META,
            "height 32 (shape ['N', 3, 32, 32]) differs from metadata",
        ),
        (
            {"in_face": ["N", 3, 64, 64]},
            {**SWAPCAM_OUT, "out_mask": ["N", 2, 64, 64]},
            GOOD_META,
            "'out_mask' has 2 channels",
        ),
        ({"in_face": ["N", 3, 64, 64]}, {**SWAPCAM_OUT, "out_face": ["N", 3, 64]}, GOOD_META, "'out_face' has shape"),
        ({"in_face": ["N", 3, 64, 64]}, SWAPCAM_OUT, {"producer": "x"}, "not a swapcam model"),
        (
            {"in_face": ["N", 3, 64, 64]},
            SWAPCAM_OUT,
            {**GOOD_META, "swapcam.format": "dfm"},
            "metadata says format='dfm'",
        ),
        ({"in_face:0": ["N", "S", "S", 3]}, DFM_OUT, {}, "the face size must be fixed"),
        (
            {"in_face:0": ["N", 96, 96, 3]},
            {**DFM_OUT, "out_face_mask:0": ["N", 96, 96, 3]},
            {},
            "'out_face_mask:0' has 3 channels",
        ),
        ({"image": ["N", 3, 64, 64]}, SWAPCAM_OUT, GOOD_META, "match neither"),
    ],
)
def test_check_session_names_what_is_wrong(inputs, outputs, meta, needle):
    with pytest.raises(ContractError, match=re.escape(needle)) as info:
        contract.check_session(inputs, outputs, meta, "m.onnx")
    assert str(info.value).startswith("m.onnx: ")
