"""models.contract: torch-free import, metadata round trip, validation errors that name the key and value."""

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
    info = ModelInfo(size=64, coverage=1.45, preset="tiny", steps=1234, psnr={"a": 27.5, "b": 26.25},
                     identities=("astronaut", "grace_hopper"), direction="a2b")
    meta = info.to_metadata()
    assert all(k.startswith(contract.META_PREFIX) and isinstance(v, str) for k, v in meta.items())
    assert ModelInfo.from_metadata(meta) == info


@pytest.mark.parametrize(
    "key, value, needle",
    [("size", "8", "size=8"), ("size", "abc", "swapcam.size='abc'"), ("coverage", "9.0", "coverage=9.0"),
     ("format", "tflite", "format='tflite'"), ("template", "other", "template='other'"),
     ("contract_version", "99", "contract_version=99")],
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
    with pytest.raises(ContractError, match=r"in=\['input'\]"):
        check_io_names(["input"], ["output"], where="m.onnx")
    with pytest.raises(ContractError, match="match neither"):
        check_io_names(["in_face"], ["out_face"])  # mask missing
