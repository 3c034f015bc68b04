"""models.export: torch vs onnxruntime parity, tensor names, metadata round trip, the DFM contract, the demo model."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from _training_fixtures import build_facesets, short_run  # noqa: E402

from models.checkpoint import CHECKPOINT, load_checkpoint, model_from_checkpoint  # noqa: E402
from models.contract import (  # noqa: E402
    DEMO_MODELS,
    DFM_INPUT_NAMES,
    DFM_OUTPUT_NAMES,
    INPUT_NAMES,
    OUTPUT_NAMES,
    TEMPLATE_NAME,
    ModelInfo,
    check_io_names,
)
from models.export import export_model, read_info  # noqa: E402
from realtime.atomic import atomic_write_bytes  # noqa: E402
from realtime.cli import main as cli_main  # noqa: E402
from realtime.errors import SwapcamError  # noqa: E402


@pytest.fixture(scope="module")
def run20(tmp_path_factory):
    build_facesets(str(tmp_path_factory.getbasetemp() / "facesets"))
    return short_run(str(tmp_path_factory.getbasetemp() / "run20"))


@pytest.fixture(scope="module")
def trained(run20):
    state = load_checkpoint(run20 / CHECKPOINT)
    return model_from_checkpoint(state), state


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(sess, faces: np.ndarray, shifts: np.ndarray | None = None) -> list[np.ndarray]:
    """Run a swapcam graph; a re-centring one gets ``shifts`` (zeros when None: the plain swap)."""
    feeds = {"in_face": faces}
    for extra in sess.get_inputs()[1:]:
        feeds[extra.name] = np.zeros((len(faces), extra.shape[1]), np.float32) if shifts is None else shifts
    return sess.run(None, feeds)


def _faces(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, size, size), dtype=np.float32)


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_swapcam_export_parity_names_metadata(tmp_path, run20, trained, direction):
    model, state = trained
    out = tmp_path / f"{direction}.onnx"
    assert cli_main(["export", str(run20), "--direction", direction, "--out", str(out), "--no-recentre"]) == 0
    sess = _session(out)
    assert [i.name for i in sess.get_inputs()] == list(INPUT_NAMES)
    assert [o.name for o in sess.get_outputs()] == list(OUTPUT_NAMES)
    assert sess.get_inputs()[0].type == "tensor(float)"
    size = state["model_config"]["size"]
    x = _faces(4, size)  # batch 4: the batch axis is dynamic (the live loop batches all faces of a frame)
    face, mask = sess.run(None, {"in_face": x})
    target = "b" if direction == "a2b" else "a"
    with torch.no_grad():
        ref_face, ref_mask = model(torch.from_numpy(x), target)
    assert face.shape == (4, 3, size, size) and mask.shape == (4, 1, size, size)
    assert np.abs(face - ref_face.numpy()).max() <= 1e-4
    assert np.abs(mask - ref_mask.numpy()).max() <= 1e-4
    # the graph really is encoder + the *other* decoder
    with torch.no_grad():
        own = model(torch.from_numpy(x), "a" if target == "b" else "b")[0].numpy()
    assert np.abs(face - own).max() > 1e-3

    # metadata round trip, readable with onnx alone
    info, fmt = read_info(out)
    assert fmt == "swapcam"
    names = tuple(state["identities"])
    expected = ModelInfo(
        size=size,
        coverage=state["coverage"],
        format="swapcam",
        layout="NCHW",
        colour_order="RGB",
        value_range=(0.0, 1.0),
        preset="tiny",
        steps=state["step"],
        psnr=state["psnr"],
        identities=names if direction == "a2b" else names[::-1],
        direction=direction,
    )
    assert info == expected
    assert info.template == TEMPLATE_NAME and info.coverage == 1.6 and info.size == 64
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta == expected.to_metadata()
    assert sess.get_modelmeta().custom_metadata_map == meta  # onnxruntime reads the same props


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_recentring_export_shift_moves_the_code(tmp_path, run20, trained, direction):
    """By default the graph also takes a latent shift and returns each face's own code, with the drawn identity's
    mean code (as training stored it) in its metadata; the decoder draws from code + shift."""
    model, state = trained
    out = tmp_path / f"{direction}.onnx"
    assert cli_main(["export", str(run20), "--direction", direction, "--out", str(out)]) == 0
    sess = _session(out)
    assert [i.name for i in sess.get_inputs()] == ["in_face", "latent_shift"]
    assert [o.name for o in sess.get_outputs()] == ["out_face", "out_mask", "latent"]
    latent = state["model_config"]["latent"]
    target = "b" if direction == "a2b" else "a"
    info, _ = read_info(out)
    assert len(state["latent_means"][target]) == latent
    assert np.allclose(info.latent_target, state["latent_means"][target], atol=1e-4)
    assert info.latent_spread == state["latent_spreads"][target] > 0  # the identity gate's unit
    size = state["model_config"]["size"]
    x = _faces(2, size, seed=5)
    face0, mask0, codes = _run(sess, x)
    with torch.no_grad():
        ref_face = model(torch.from_numpy(x), target)[0].numpy()
        ref_codes = model.encoder.encode(torch.from_numpy(x)).numpy()
    assert np.abs(face0 - ref_face).max() <= 1e-4  # zero shift: the plain swap
    assert codes.shape == (2, latent) and np.abs(codes - ref_codes).max() <= 1e-3
    # shifting face 0's code onto face 1's draws face 1's output, and face 1 shifted onto face 0's draws face 0's
    swapped_codes = codes[::-1] - codes
    shifted, _, codes_again = _run(sess, x, swapped_codes.astype(np.float32))
    assert np.abs(shifted[0] - face0[1]).max() <= 1e-3 and np.abs(shifted[1] - face0[0]).max() <= 1e-3
    far = _run(sess, x, np.full((2, latent), 20.0, np.float32))[0]
    assert np.abs(far - face0).max() > 1e-2  # the shift really reaches the decoder, so the check can fail
    assert np.array_equal(codes_again, codes)  # the returned code is the face's own, before the shift


def test_recentring_needs_the_mean_codes(tmp_path, run20, trained):
    """A checkpoint from before re-centring (no stored means) gets them from the run's facesets; with neither, the
    export is the plain graph."""
    _, state = trained
    old = {k: v for k, v in state.items() if k not in ("latent_means", "latent_spreads")}
    torch.save(old, tmp_path / "old.pt")
    export_model(tmp_path / "old.pt", tmp_path / "from_facesets.onnx")
    info, _ = read_info(tmp_path / "from_facesets.onnx")
    stored = np.array(state["latent_means"]["b"])
    assert len(info.latent_target) == len(stored)
    # means of the same faceset through the same encoder: close to the stored ones (other crops of it, resized)
    assert np.linalg.norm(np.array(info.latent_target) - stored) < 0.25 * np.linalg.norm(stored) + 1e-3
    assert info.latent_spread > 0
    # means stored, spreads not (checkpoints saved before spreads were): the spreads come from the facesets,
    # measured around the stored means, which are kept as they are
    means_only = dict(old, latent_means=state["latent_means"])
    torch.save(means_only, tmp_path / "means_only.pt")
    export_model(tmp_path / "means_only.pt", tmp_path / "spread_from_facesets.onnx")
    info, _ = read_info(tmp_path / "spread_from_facesets.onnx")
    assert np.allclose(info.latent_target, stored, atol=1e-4) and info.latent_spread > 0
    gone = dict(old, train_config=dict(old["train_config"], a=str(tmp_path / "no_a"), b=str(tmp_path / "no_b")))
    torch.save(gone, tmp_path / "gone.pt")
    result = export_model(tmp_path / "gone.pt", tmp_path / "plain.onnx")
    assert result["info"].latent_target == ()
    assert [i.name for i in _session(tmp_path / "plain.onnx").get_inputs()] == list(INPUT_NAMES)
    # means but no spreads and no facesets: re-centring without the identity gate (spread 0, "unknown")
    torch.save(dict(gone, latent_means=state["latent_means"]), tmp_path / "no_spread.pt")
    result = export_model(tmp_path / "no_spread.pt", tmp_path / "no_gate.onnx")
    assert len(result["info"].latent_target) == len(stored) and result["info"].latent_spread == 0.0


def test_recentred_swap_tracks_the_camera_face_mean(tmp_path, run20, trained):
    """realtime.recentre: a new face's first code starts its running mean; the decoder then draws from
    code + strength x (target mean - running mean); strength 0 is the plain swap."""
    from realtime.facestate import FaceState
    from realtime.recentre import MEAN_FRAMES, recentred_swap, update_mean
    from realtime.swapper import Swapper

    out = tmp_path / "a2b.onnx"
    export_model(run20, out)
    swapper = Swapper(out, providers="cpu")
    assert swapper.recentres and swapper.latent_size == len(swapper.info.latent_target)
    assert "identity re-centring" in swapper.describe()
    assert swapper.latent_spread > 0
    swapper.latent_spread = 0.0  # no identity gate here (tests/test_export.py::test_identity_gate has it)
    crop = (np.random.default_rng(2).random((64, 64, 3)) * 255).astype(np.uint8)
    plain_faces, _ = swapper.swap([crop])
    _, _, code = swapper.swap_codes([crop])
    state = FaceState()
    faces, _ = recentred_swap(swapper, [crop], [state], 1.0)
    assert state.latent_count == 1 and np.allclose(state.latent_mean, code[0], atol=1e-5)  # its first code
    # the same crop every frame: mean == its code, so the decoder draws the target's mean code itself
    target = np.asarray(swapper.info.latent_target, np.float32)
    expected, _, _ = swapper.swap_codes([crop], 1.0, (target - code[0])[None])
    assert np.abs(faces[0].astype(int) - expected[0].astype(int)).max() <= 1
    assert np.abs(faces[0].astype(int) - plain_faces[0].astype(int)).max() > 3  # (a 20-step model: small)
    half, _ = recentred_swap(swapper, [crop], [state], 0.5)
    assert state.latent_count == 2
    expected_half, _, _ = swapper.swap_codes([crop], 0.5, (0.5 * (target - code[0]))[None])
    assert np.abs(half[0].astype(int) - expected_half[0].astype(int)).max() <= 1
    assert np.array_equal(recentred_swap(swapper, [crop], [FaceState()], 0.0)[0][0], plain_faces[0])
    with pytest.raises(ValueError, match="shifts has shape"):
        swapper.swap_codes([crop], 0.75, np.zeros((2, swapper.latent_size), np.float32))
    # the running mean: a plain mean for MEAN_FRAMES frames, then exponential with that time constant
    st = FaceState()
    for v in (1.0, 2.0, 3.0):
        update_mean(st, np.array([v]))
    assert st.latent_mean[0] == pytest.approx(2.0) and st.latent_count == 3
    for _ in range(MEAN_FRAMES * 3):
        update_mean(st, np.array([10.0]))
    assert st.latent_count == MEAN_FRAMES and st.latent_mean[0] == pytest.approx(10.0, abs=0.5)


def test_identity_gate(tmp_path, run20):
    """A camera face whose mean code lies within GATE_FROM spreads of the target's mean is the drawn identity
    already: no shift (the plain swap); from GATE_FULL spreads, the whole shift; linear between."""
    from realtime.facestate import FaceState
    from realtime.recentre import GATE_FROM, GATE_FULL, identity_gate, recentred_swap
    from realtime.swapper import Swapper

    assert identity_gate(1.0, 0.0) == 1.0  # unknown spread: always moved
    assert identity_gate(GATE_FROM * 5.0, 5.0) == 0.0 and identity_gate(GATE_FULL * 5.0, 5.0) == 1.0
    assert identity_gate(0.5 * (GATE_FROM + GATE_FULL) * 5.0, 5.0) == pytest.approx(0.5)
    out = tmp_path / "a2b.onnx"
    export_model(run20, out)
    swapper = Swapper(out, providers="cpu")
    crop = (np.random.default_rng(3).random((64, 64, 3)) * 255).astype(np.uint8)
    plain, _, code = swapper.swap_codes([crop])
    target = np.asarray(swapper.info.latent_target, np.float64)
    distance = float(np.linalg.norm(target - code[0]))
    for spread, expect in ((distance / (GATE_FROM - 0.5), 0.0), (distance / (GATE_FULL + 0.5), 1.0)):
        swapper.latent_spread = spread
        state = FaceState()
        faces, _ = recentred_swap(swapper, [crop], [state], 1.0)  # the same crop: its mean is its code
        assert state.latent_count == 1 and np.allclose(state.latent_mean, code[0], atol=1e-5)
        shifted, _, _ = swapper.swap_codes([crop], 1.0, (expect * (target - code[0]))[None].astype(np.float32))
        assert np.abs(faces[0].astype(int) - shifted[0].astype(int)).max() <= 1, spread
        if expect == 0.0:
            assert np.abs(faces[0].astype(int) - plain[0].astype(int)).max() <= 1  # the drawn identity: plain swap


def test_dfm_contract(tmp_path, run20, trained, capsys):
    model, state = trained
    out = tmp_path / "ab.dfm"
    assert cli_main(["export", str(run20), "--format", "dfm", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "torch vs onnxruntime max abs diff" in printed  # parity checked (and passed) at opset 12
    # DeepFaceLab's opset, which the onnxruntime 1.8-1.12 of older DeepFaceLive builds loads
    proto = onnx.load(str(out))
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 12)] and proto.ir_version <= 7  # ort 1.8
    # swapcam coverage 1.6 is 1.8 on DeepFaceLive's face template; its crops sit higher than swapcam's
    assert "DeepFaceLive: set Face aligner > Face coverage 1.8 and Y offset 0.06" in printed
    assert "warning" not in printed
    assert "Morph factor slider works" in printed
    sess = _session(out)
    ins, outs = [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()]
    # DeepFaceLive's AMP signature: the face, then morph_value:0 (shape [1]) for identity re-centring
    assert ins == list(DFM_INPUT_NAMES) + ["morph_value:0"] and outs == list(DFM_OUTPUT_NAMES)
    assert sess.get_inputs()[1].shape == [1]
    assert check_io_names(ins[:1], outs) == "dfm"
    size = state["model_config"]["size"]
    shape = sess.get_inputs()[0].shape
    assert shape[1:] == [size, size, 3]  # NHWC
    rgb = _faces(2, size, seed=4)
    bgr_nhwc = np.ascontiguousarray(rgb[:, ::-1].transpose(0, 2, 3, 1))
    src_mask, celeb, celeb_mask = sess.run(None, {"in_face:0": bgr_nhwc, "morph_value:0": np.float32([0.0])})
    assert (
        src_mask.shape == (2, size, size, 1)
        and celeb.shape == (2, size, size, 3)
        and celeb_mask.shape == (2, size, size, 1)
    )
    with torch.no_grad():
        x = torch.from_numpy(rgb)
        z = model.encoder(x)
        ref_face, ref_mask = model.decoder_b(z)
        _, ref_src_mask = model.decoder_a(z)
    # BGR out: channel 0 of out_celeb_face:0 is the blue channel of the RGB reference
    assert np.abs(celeb - ref_face.numpy()[:, ::-1].transpose(0, 2, 3, 1)).max() <= 1e-4
    assert np.abs(celeb_mask[..., 0] - ref_mask.numpy()[:, 0]).max() <= 1e-4
    assert np.abs(src_mask[..., 0] - ref_src_mask.numpy()[:, 0]).max() <= 1e-4
    # morph 1: the source identity's mean code moved to the target's; the camera face's mask stays its own
    src_mask1, celeb1, _ = sess.run(None, {"in_face:0": bgr_nhwc, "morph_value:0": np.float32([1.0])})
    delta = torch.tensor(state["latent_means"]["b"]) - torch.tensor(state["latent_means"]["a"])
    with torch.no_grad():
        moved = model.decoder_b(model.encoder.expand(model.encoder.encode(x) + delta))[0]
    assert np.abs(celeb1 - moved.numpy()[:, ::-1].transpose(0, 2, 3, 1)).max() <= 1e-4
    assert np.abs(src_mask1 - src_mask).max() <= 1e-6
    info, fmt = read_info(out)
    assert fmt == "dfm" and info.layout == "NHWC" and info.colour_order == "BGR" and info.format == "dfm"
    # --no-recentre: DeepFaceLive's plain signature
    plain = tmp_path / "plain.dfm"
    assert cli_main(["export", str(run20), "--format", "dfm", "--out", str(plain), "--no-recentre"]) == 0
    assert [i.name for i in _session(plain).get_inputs()] == list(DFM_INPUT_NAMES)


ORT_OLDEST_SCRIPT = """
import json, sys, numpy as np, onnxruntime as ort
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
size = sess.get_inputs()[0].shape[1]
feeds = {"in_face:0": np.full((1, size, size, 3), 0.5, np.float32)}
if len(sess.get_inputs()) == 2:  # as DeepFaceLive feeds an AMP model
    feeds["morph_value:0"] = np.float32([0.75])
outs = sess.run(None, feeds)
print(json.dumps([ort.__version__, [o.name for o in sess.get_outputs()], [list(o.shape) for o in outs]]))
"""


def test_dfm_loads_in_the_oldest_onnxruntime_that_installs(tmp_path, run20):
    """`make test` builds a venv with the oldest onnxruntime wheel for this Python (Makefile ORT_OLDEST) and
    points SWAPCAM_ORT_OLDEST at its python; an exported DFM must load and run there."""
    import json
    import os
    import subprocess

    python = os.environ.get("SWAPCAM_ORT_OLDEST")
    if not python:
        pytest.skip("SWAPCAM_ORT_OLDEST is not set (`make test` sets it to .venv-ort-oldest/bin/python)")
    out = tmp_path / "old.dfm"
    assert cli_main(["export", str(run20), "--format", "dfm", "--out", str(out)]) == 0
    proc = subprocess.run([python, "-c", ORT_OLDEST_SCRIPT, str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    version, names, shapes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert tuple(int(v) for v in version.split(".")[:2]) <= (1, 17), version  # really an old one
    assert names == list(DFM_OUTPUT_NAMES)
    size = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[1].dim_value
    assert shapes == [[1, size, size, 1], [1, size, size, 3], [1, size, size, 1]]


def test_dfm_export_warns_about_a_name_deepfacelive_will_not_list(tmp_path, run20, capsys):
    out = tmp_path / "ab.onnx"
    assert cli_main(["export", str(run20), "--format", "dfm", "--out", str(out), "--no-check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert out.exists() and [line for line in lines if line.startswith("warning:")] == [
        f"warning: {out} does not end in .dfm; DeepFaceLive lists only *.dfm files in its model folder"
    ]
    assert onnx.load(str(out)).opset_import[0].version == 12
    swapcam_out = tmp_path / "swapcam.onnx"
    assert cli_main(["export", str(run20), "--out", str(swapcam_out), "--no-check"]) == 0
    assert "warning" not in capsys.readouterr().out and onnx.load(str(swapcam_out)).opset_import[0].version == 17


def test_fp16_weights_keep_float32_io(tmp_path, run20, trained):
    model, state = trained
    full, half = tmp_path / "f32.onnx", tmp_path / "f16.onnx"
    export_model(run20, full, check=False)
    res = export_model(run20, half, fp16=True, check=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    sess = _session(half)
    assert sess.get_inputs()[0].type == "tensor(float)" and sess.get_outputs()[0].type == "tensor(float)"
    assert res["max_abs_diff"] < 5e-3  # float16 weight rounding only


def test_int8_export_keeps_the_contract_and_reports_its_cost(tmp_path, run20, capsys):
    out = tmp_path / "int8.onnx"
    assert cli_main(["export", str(run20), "--out", str(out), "--int8"]) == 0
    line = capsys.readouterr().out
    assert "int8" in line and "quality cost" in line and "ms int8" in line
    from realtime.swapper import Swapper

    swapper = Swapper(out, providers="cpu")  # the contract check passes: metadata and tensor names kept
    assert swapper.info.size == 64 and swapper.info.identities == ("astronaut", "grace_hopper")
    proto = onnx.load(str(out))
    assert any(node.op_type == "QuantizeLinear" for node in proto.graph.node)
    float_path = tmp_path / "float.onnx"
    export_model(run20, float_path)
    faces = _faces(4, 64, seed=3)
    float_out = _run(_session(float_path), faces)[0]
    int8_out = _run(_session(out), faces)[0]
    assert np.abs(float_out - int8_out).mean() < 0.05  # close to the float model, not equal to it
    assert not np.array_equal(float_out, int8_out)
    assert out.stat().st_size < 0.5 * float_path.stat().st_size
    assert cli_main(["export", str(run20), "--out", str(tmp_path / "x.onnx"), "--int8", "--fp16"]) == 2


def test_failed_parity_check_leaves_nothing_behind(tmp_path, run20):
    """float16 weights cannot meet a 1e-7 tolerance: the export is refused, --out is never created, and a model
    already at --out is left exactly as it was."""
    out = tmp_path / "model.onnx"
    with pytest.raises(SwapcamError, match="differ by .* the model was not written"):
        export_model(run20, out, fp16=True, tolerance=1e-7)
    assert list(tmp_path.iterdir()) == []  # neither the model nor a temp file
    export_model(run20, out)
    previous = out.read_bytes()
    with pytest.raises(SwapcamError, match="not written"):
        export_model(run20, out, direction="b2a", fp16=True, tolerance=1e-7)
    assert out.read_bytes() == previous and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_atomic_write_without_fchmod(tmp_path, monkeypatch):
    """Windows has no os.fchmod before Python 3.13; the atomic writer (models, checkpoints, crops) must not need it."""
    monkeypatch.delattr(os, "fchmod", raising=False)
    path = atomic_write_bytes(tmp_path / "sub" / "model.onnx", b"first")
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second" and [p.name for p in path.parent.iterdir()] == ["model.onnx"]
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # shareable, not mkstemp's 0600


def test_bad_export_inputs_one_line(tmp_path, run20, capsys):
    def one_line(argv, needle):
        assert cli_main(argv) == 2
        err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("swapcam export: error:") and needle in err[0], err

    one_line(["export", str(run20), "--direction", "sideways", "--out", str(tmp_path / "x.onnx")], "sideways")
    one_line(["export", str(run20), "--format", "tflite", "--out", str(tmp_path / "x.onnx")], "tflite")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / CHECKPOINT).write_bytes((run20 / CHECKPOINT).read_bytes()[:5000])
    one_line(["export", str(bad), "--out", str(tmp_path / "x.onnx")], "corrupt or truncated")
    one_line(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.onnx")], "does not exist")
    assert not (tmp_path / "x.onnx").exists()


# ------------------------------------------------------------------------------------------------ shipped demo model
def test_demo_models_follow_the_contract():
    sums = {}
    sums_file = DEMO_MODELS["a2b"].parent / "SHA256SUMS"
    for line in sums_file.read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    for direction, path in DEMO_MODELS.items():
        assert path.exists(), f"{path} missing: run `swapcam build-demo-model`"
        assert path.stat().st_size <= 15_000_000
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sums[path.name]
        info, fmt = read_info(path)
        assert fmt == "swapcam" and info.direction == direction and info.preset == "rt128" and info.size == 128
        expected = ("astronaut", "grace_hopper") if direction == "a2b" else ("grace_hopper", "astronaut")
        assert info.identities == expected
        sess = _session(path)
        assert sess.get_inputs()[0].type == "tensor(float)"
        face, mask, *_ = _run(sess, _faces(2, info.size))
        assert face.shape == (2, 3, info.size, info.size) and 0.0 <= face.min() and face.max() <= 1.0
    assert (DEMO_MODELS["a2b"].parent / "RECIPE.md").exists()


@pytest.mark.slow
def test_demo_model_turns_astronaut_into_grace_hopper(tmp_path_factory):
    """The shipped model on faces it never saw (a new clip seed): A->B lands nearer B's faces than A's, and back.

    Same metric as the training test: nearest real aligned face inside the mean landmark hull.
    """
    from _training_fixtures import faceset_faces

    from realtime.compose import hull_mask
    from training.faceset import load_faceset

    sets = build_facesets(str(tmp_path_factory.getbasetemp() / "facesets"))
    info, _ = read_info(DEMO_MODELS["a2b"])
    size = info.size
    faces = {k: faceset_faces(sets[k], size) for k in ("A", "B")}
    lms = np.concatenate([load_faceset(sets[k], size).landmarks for k in ("A", "B")])
    region = np.mean([hull_mask(lm, size) for lm in lms], axis=0) > 0.5

    def structure(x: np.ndarray) -> np.ndarray:
        """Blurred grey levels inside the face, z-normalised per face: the live pipeline matches colour and
        brightness to the camera before it pastes (RCT), so identity is the face's structure, not its palette."""
        grey = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
        grey = np.stack([cv2.GaussianBlur(g, (0, 0), max(1.0, size / 64)) for g in grey])[:, region]
        return (grey - grey.mean(1, keepdims=True)) / (grey.std(1, keepdims=True) + 1e-6)

    real = {k: structure(v) for k, v in faces.items()}

    def share_nearest(out: np.ndarray, src: str, tgt: str) -> float:
        z = structure(out)
        d_src = ((z[:, None] - real[src][None]) ** 2).mean(-1).min(1)
        d_tgt = ((z[:, None] - real[tgt][None]) ** 2).mean(-1).min(1)
        return float((d_tgt < d_src).mean())

    for direction, src, tgt in (("a2b", "A", "B"), ("b2a", "B", "A")):
        out = _run(_session(DEMO_MODELS[direction]), faces[src])[0]
        share = share_nearest(out, src, tgt)
        assert share >= 0.9, f"{direction}: only {share:.0%} of outputs are nearest to the target identity"
        # the measure can tell: the camera's own faces, recoloured towards the target's mean colour, stay the source
        recoloured = faces[src] - faces[src].mean((0, 2, 3), keepdims=True) + faces[tgt].mean((0, 2, 3), keepdims=True)
        assert share_nearest(recoloured, src, tgt) <= 0.1


@pytest.mark.slow
def test_build_demo_model_command_small(tmp_path, capsys):
    """`swapcam build-demo-model` end to end at toy scale: clips -> extract -> train -> both exports + sums + recipe."""
    out = tmp_path / "demo"
    argv = [
        "build-demo-model",
        "--workdir",
        str(tmp_path / "work"),
        "--out-dir",
        str(out),
        "--steps",
        "3",
        "--batch",
        "2",
        "--clips",
        "1",
        "--frames",
        "12",
        "--no-progress",
        "--texture",
    ]
    assert cli_main(argv) == 0
    assert "demo model: 3 steps" in capsys.readouterr().out
    sums = dict(reversed(line.split()) for line in (out / "SHA256SUMS").read_text().splitlines())
    for direction, path in DEMO_MODELS.items():
        exported = out / path.name
        assert hashlib.sha256(exported.read_bytes()).hexdigest() == sums[path.name]
        info, fmt = read_info(exported)
        assert fmt == "swapcam" and info.steps == 3 and info.direction == direction
    names = ["RECIPE.md", "SHA256SUMS", "demo_a2b.onnx", "demo_b2a.onnx", "demo_train_checkpoint.pt"]
    assert sorted(p.name for p in out.iterdir()) == names
    recipe = (out / "RECIPE.md").read_text()
    assert "| seed | 0 |" in recipe and sums["demo_a2b.onnx"] in recipe and "3 x 2 faces" in recipe
    assert "from scratch" in recipe and "| detail texture | yes" in recipe
    assert "Identity re-centring" in recipe  # training stored the mean codes, so the exports re-centre
    assert len(read_info(out / "demo_a2b.onnx")[0].latent_target) == 192  # rt128's latent code
    # the published training checkpoint: float16 weights with their textures, no optimizer state
    slim = load_checkpoint(out / "demo_train_checkpoint.pt")
    assert slim["optimizer"] is None and slim["step"] == 3
    assert slim["model"]["decoder_b.texture"].dtype == torch.float16
    # publish-only re-exports the run's checkpoint without training again
    assert cli_main(argv + ["--publish-only"]) == 0
    assert "exported step 3" in capsys.readouterr().out
    # and a new build can fine-tune it (how demo model v3 was made from v2)
    tuned = tmp_path / "tuned"
    argv2 = [a if a != str(tmp_path / "work") else str(tmp_path / "work2") for a in argv]
    argv2 = [a if a != str(out) else str(tuned) for a in argv2]
    assert cli_main(argv2 + ["--init", str(out / "demo_train_checkpoint.pt"), "--augment-off", "0"]) == 0
    recipe = (tuned / "RECIPE.md").read_text()
    assert "fine-tuned from" in recipe and "colour jitter off at 0%" in recipe


@pytest.mark.slow
def test_build_demo_model_stops_saved_on_sigterm(tmp_path):
    """`kill` (or a time limit's SIGTERM, as benchmarks/gpu.sh's machine has) stops build-demo-model like Ctrl-C:
    the training checkpoint saved, exit 130, and --resume named as the way on."""
    import signal
    import subprocess
    import sys
    import time

    from _training_fixtures import read_metrics

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "realtime.cli", "build-demo-model", "--workdir", str(work), "--out-dir"]
    cmd += [str(tmp_path / "demo"), "--preset", "tiny", "--steps", "100000", "--batch", "2", "--clips", "1"]
    cmd += ["--frames", "12", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (work / "run" / "metrics.jsonl").exists() and len(read_metrics(work / "run")) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "checkpoint saved" in err and "--resume continues" in err
    state = load_checkpoint(work / "run" / CHECKPOINT)
    assert 1 <= state["step"] < 100000 and state["latent_means"]["a"]
    assert not (tmp_path / "demo").exists()  # nothing published from a stopped build


def test_a_new_model_starts_its_own_running_means(tmp_path, run20, astronaut_clip):
    """A hot swap (another encoder: another code space) drops the tracks' running mean codes; the same model
    passed again (the WebRTC page re-sends it with every switch) keeps them."""
    from realtime.builder import create_processor
    from realtime.pipeline import PipelineOptions
    from realtime.swapper import Swapper

    export_model(run20, tmp_path / "a2b.onnx")
    export_model(run20, tmp_path / "b2a.onnx", direction="b2a")
    first, second = Swapper(tmp_path / "a2b.onnx", providers="cpu"), Swapper(tmp_path / "b2a.onnx", providers="cpu")
    options = PipelineOptions(smoothing=False)
    with create_processor(first, options) as proc:
        for i, frame in enumerate(astronaut_clip.frames[:3]):
            proc.process(frame, i / 30)
        states = [t.state for t in proc._temporal.tracks]
        assert states and all(s.latent_count == 3 for s in states)
        proc.reconfigure(swapper=first, options=options)
        assert all(s.latent_count == 3 for s in states)
        proc.reconfigure(swapper=second)
        assert all(s.latent_mean is None and s.latent_count == 0 for s in states)
        proc.process(astronaut_clip.frames[3], 0.2)
        assert all(s.latent_count == 1 for s in states)
