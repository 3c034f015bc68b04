"""training.losses against independent implementations: SSIM/DSSIM vs scikit-image, PSNR vs scikit-image, the
weighted pixel loss vs numpy."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
metrics = pytest.importorskip("skimage.metrics")

from training.losses import dssim, psnr, reconstruction_loss, ssim_map, weighted_recon  # noqa: E402

SIZE = 48


def _pair(kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two HxWx3 float images in [0, 1] that differ in a known way."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) * 0.4 + 0.5 for c in range(3)], axis=-1)
    if kind == "noise":
        other = base + rng.normal(0, 0.08, base.shape)
    elif kind == "contrast":
        other = 0.5 + (base - 0.5) * 0.4 + 0.1
    elif kind == "shift":
        other = np.roll(base, 3, axis=1)
    else:  # unrelated images
        base, other = rng.random(base.shape), rng.random(base.shape)
    return base.astype(np.float32), np.clip(other, 0, 1).astype(np.float32)


def _nchw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.transpose(2, 0, 1)[None].copy()).double()


def _skimage_ssim(x: np.ndarray, y: np.ndarray) -> float:
    # Wang et al.'s configuration: Gaussian sigma 1.5 (skimage truncates it at 11 taps), population covariance,
    # K1 0.01, K2 0.03, data range 1; skimage averages over the region unaffected by its padding
    return float(
        metrics.structural_similarity(
            x.astype(np.float64),
            y.astype(np.float64),
            channel_axis=2,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


@pytest.mark.parametrize("kind", ["noise", "contrast", "shift", "unrelated"])
def test_ssim_matches_scikit_image(kind):
    x, y = _pair(kind)
    ours = float(ssim_map(_nchw(x), _nchw(y), window=11, sigma=1.5).mean())
    assert ours == pytest.approx(_skimage_ssim(x, y), abs=1e-6)


def test_dssim_is_half_of_one_minus_ssim():
    x, y = _pair("noise", seed=3)
    reference = _skimage_ssim(x, y)
    # dssim uses the training window (7 taps): compare it to its own SSIM map, and that map to the 11-tap reference
    got = float(dssim(_nchw(x), _nchw(y)))
    assert got == pytest.approx((1 - float(ssim_map(_nchw(x), _nchw(y)).mean())) / 2, abs=1e-9)
    assert (1 - 2 * got) == pytest.approx(reference, abs=0.05)
    assert float(dssim(_nchw(x), _nchw(x))) == pytest.approx(0.0, abs=1e-9)
    # worse images, larger DSSIM
    noisy, unrelated = _pair("noise"), _pair("unrelated")
    assert 0 < float(dssim(_nchw(noisy[0]), _nchw(noisy[1]))) < float(dssim(_nchw(unrelated[0]), _nchw(unrelated[1])))


def test_dssim_float32_gradient_is_finite():
    x, y = (torch.from_numpy(a.transpose(2, 0, 1)[None].copy()) for a in _pair("shift"))
    x.requires_grad_(True)
    dssim(x, y).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["noise", "contrast"])
def test_psnr_matches_scikit_image(kind):
    x, y = _pair(kind)
    expected = metrics.peak_signal_noise_ratio(y.astype(np.float64), x.astype(np.float64), data_range=1.0)
    assert float(psnr(_nchw(x), _nchw(y))) == pytest.approx(expected, rel=1e-6)


def test_weighted_pixel_losses_match_numpy():
    rng = np.random.default_rng(1)
    x, y = rng.random((2, 3, 8, 8)), rng.random((2, 3, 8, 8))
    weight = rng.random((2, 1, 8, 8))
    for kind, err in (("l1", np.abs(x - y)), ("mse", (x - y) ** 2)):
        expected = (err * weight).sum() / (weight.sum() * 3)
        got = float(weighted_recon(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(weight), kind))
        assert got == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="huber"):
        weighted_recon(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(weight), "huber")


def test_visible_keeps_the_face_losses_off_what_an_occluder_hides():
    rng = np.random.default_rng(5)
    face, target = (torch.from_numpy(rng.random((2, 3, 32, 32))) for _ in range(2))
    mask, target_mask = (torch.from_numpy(rng.random((2, 1, 32, 32))) for _ in range(2))
    weight = torch.from_numpy(rng.random((2, 1, 32, 32)) + 0.5)
    visible = torch.ones(2, 1, 32, 32, dtype=torch.float64)
    visible[0, :, 8:20, 10:24] = 0.0  # an occluder over part of the first sample

    def loss(tgt: torch.Tensor, tgt_mask: torch.Tensor, vis: torch.Tensor | None) -> float:
        return float(reconstruction_loss(face, mask, tgt, tgt_mask, weight, "l1", 1.0, 1.0, "bce", vis))

    # all visible: exactly the loss without it
    assert loss(target, target_mask, visible.clone().fill_(1.0)) == pytest.approx(loss(target, target_mask, None))
    # any face target under the occluder: the same loss (neither L1 nor a DSSIM window that touches it sees it)
    other = target.clone()
    other[0, :, 8:20, 10:24] = torch.from_numpy(rng.random((3, 12, 14)))
    assert loss(other, target_mask, visible) == pytest.approx(loss(target, target_mask, visible), rel=1e-12)
    assert loss(other, target_mask, None) != pytest.approx(loss(target, target_mask, None), rel=1e-6)
    # the mask loss still sees it: the mask target there changes the loss
    other_mask = target_mask.clone()
    other_mask[0, :, 8:20, 10:24] = 0.0
    assert loss(target, other_mask, visible) != pytest.approx(loss(target, target_mask, visible), rel=1e-6)
    # and where the face is visible the face target counts: a target equal to the face there lowers the loss
    moved = target.clone()
    moved[1] = face[1]
    assert loss(moved, target_mask, visible) < loss(target, target_mask, visible) - 0.1


def test_reconstruction_loss_adds_its_terms():
    rng = np.random.default_rng(2)
    face, target = (torch.from_numpy(rng.random((2, 3, 16, 16))) for _ in range(2))
    mask, target_mask = (torch.from_numpy(rng.random((2, 1, 16, 16))) for _ in range(2))
    weight = torch.ones(2, 1, 16, 16, dtype=torch.float64)
    total = reconstruction_loss(face, mask, target, target_mask, weight, "l1", dssim_weight=0.5, mask_weight=2.0)
    parts = (
        weighted_recon(face, target, weight, "l1")
        + 0.5 * dssim(face, target)
        + 2.0 * ((mask - target_mask) ** 2).mean()
    )
    assert float(total) == pytest.approx(float(parts), rel=1e-9)
