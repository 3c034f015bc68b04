"""models.autoencoder: shapes, value ranges, sub-pixel upscaling only, presets and their compute budget."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from models.autoencoder import (  # noqa: E402
    PRESETS,
    Decoder,
    Encoder,
    ModelConfig,
    SwapAutoencoder,
    SwapDirection,
    build_model,
    forward_flops,
    get_preset,
)
from realtime.errors import SwapcamError  # noqa: E402


def _macs_by_hooks(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Independent multiply-add count from layer shapes (conv: out pixels x k*k*cin/groups x cout; linear: in x out)."""
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
        total += out.numel() * k

    def linear_hook(m, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return total


@torch.no_grad()
def test_tiny_forward_shapes_and_ranges():
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    x = torch.rand(3, 3, 64, 64)
    for identity in ("a", "b"):
        face, mask = model(x, identity)
        assert face.shape == (3, 3, 64, 64) and mask.shape == (3, 1, 64, 64)
        assert face.dtype == torch.float32
        assert 0.0 <= float(face.min()) and float(face.max()) <= 1.0
        assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0
    # decoders are separate parameters: same latent, different faces
    fa, _ = model(x, "a")
    fb, _ = model(x, "b")
    assert not torch.allclose(fa, fb)
    assert model.decoder_a is not model.decoder_b
    pairs = zip(model.decoder_a.parameters(), model.decoder_b.parameters(), strict=True)
    assert all(p_a.data_ptr() != p_b.data_ptr() for p_a, p_b in pairs)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_no_transposed_convolution_and_pixelshuffle_upscales(preset):
    model = build_model(preset)
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.ConvTranspose2d not in kinds and torch.nn.ConvTranspose1d not in kinds
    shuffles = [m for m in model.modules() if isinstance(m, torch.nn.PixelShuffle)]
    # one upscale in the encoder + one per decoder stage (+ the sub-pixel output head), in each of the two decoders
    cfg = get_preset(preset)
    assert len(shuffles) == 1 + 2 * (len(cfg.dec_channels) + int(cfg.subpixel_head))
    assert isinstance(model.encoder, Encoder) and isinstance(model.decoder_a, Decoder)
    assert any(isinstance(m, torch.nn.Linear) for m in model.encoder.modules())  # dense bottleneck


def test_lite_forward_shape():
    model = build_model("lite").eval()
    with torch.no_grad():
        face, mask = model(torch.rand(1, 3, 128, 128), "b")
    assert face.shape == (1, 3, 128, 128) and mask.shape == (1, 1, 128, 128)


def test_tiny_compute_budget_two_independent_counts():
    cfg = get_preset("tiny")
    flops = forward_flops(cfg)
    macs = _macs_by_hooks(SwapDirection(SwapAutoencoder(cfg), "b").eval(), torch.zeros(1, 3, 64, 64))
    # torch's FlopCounterMode and a shape-based count must agree (within bias/activation noise)
    assert abs(flops - 2 * macs) / flops < 0.02
    assert flops <= 0.3e9, f"tiny preset costs {flops / 1e9:.3f} GFLOP per face, budget 0.3"
    assert forward_flops(get_preset("hd")) > forward_flops(get_preset("lite")) > flops


def test_bad_inputs():
    with pytest.raises(SwapcamError, match="unknown preset 'huge'"):
        get_preset("huge")
    model = build_model("tiny")
    with pytest.raises(ValueError, match=r"expected N x 3 x 64 x 64"):
        model(torch.rand(1, 3, 96, 96))
    with pytest.raises(ValueError, match="identity"):
        model(torch.rand(1, 3, 64, 64), "c")
    with pytest.raises(SwapcamError, match="not divisible"):
        ModelConfig("bad", 60, (8, 16, 32, 64), 16, 16, (8, 8, 8))


def test_config_round_trip():
    cfg = get_preset("lite")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_detail_texture_is_a_full_size_bias_on_the_face_only():
    from dataclasses import replace

    assert build_model("tiny").decoder_b.texture is None  # opt-in
    model = build_model(replace(get_preset("tiny"), texture=True)).eval()
    decoder = model.decoder_b
    assert decoder.texture is not None
    assert tuple(decoder.texture.shape) == (1, 3, 64, 64)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        face0, mask0 = model(x, "b")
        decoder.texture[:, 0] = 12.0  # red forced on, green and blue pushed off
        decoder.texture[:, 1:] = -12.0
        face1, mask1 = model(x, "b")
        other, _ = model(x, "a")  # decoder A's texture is its own
    assert face1[:, 0].min() > 0.99 and face1[:, 1:].max() < 0.01
    assert torch.equal(mask0, mask1)  # the mask does not see the texture
    assert not torch.allclose(face0, face1)
    assert other[:, 0].max() < 0.99


def test_checkpoints_from_before_the_texture_load_without_one():
    saved = get_preset("lite").to_dict()
    saved["texture"] = True
    assert build_model(ModelConfig.from_dict(saved)).decoder_a.texture is not None
    del saved["texture"]  # what a checkpoint written before the texture existed holds
    old = ModelConfig.from_dict(saved)
    assert old.texture is False
    model = build_model(old)
    assert model.decoder_a.texture is None and not any(k.endswith("texture") for k in model.state_dict())
