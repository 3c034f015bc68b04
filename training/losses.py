"""Training losses: weighted L1/MSE reconstruction + DSSIM + mask loss (MSE or cross-entropy), and PSNR.

Tensors are N x C x H x W float in [0, 1]. ``weight`` (N x 1 x H x W) carries the eye/mouth priority and zeroes
pixels that augmentation invented (reflected borders).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM (Wang et al. 2004) with a Gaussian window; 'valid' borders (no padding bias)."""
    c = x.shape[1]
    w = _gaussian_window(window, sigma, c, x.device, x.dtype)
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = F.conv2d(x, w, groups=c), F.conv2d(y, w, groups=c)
    sxx = F.conv2d(x * x, w, groups=c) - mu_x**2
    syy = F.conv2d(y * y, w, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, w, groups=c) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def dssim(x: torch.Tensor, y: torch.Tensor, window: int = 7, where: torch.Tensor | None = None) -> torch.Tensor:
    """Structural dissimilarity (1 - SSIM) / 2, averaged: 0 for identical images. ``where`` (N x 1 x H x W in
    [0, 1]) limits the average to the windows that lie wholly where it is 1 (each window counts with its smallest
    value): the face under a pasted occluder is left out."""
    d = (1.0 - ssim_map(x, y, window)) / 2.0
    if where is None:
        return d.mean()
    inside = 1.0 - F.max_pool2d(1.0 - where, window, stride=1)  # the window's minimum, 'valid' like ssim_map
    inside = inside.expand_as(d)
    return (d * inside).sum() / inside.sum().clamp_min(1e-6)


def weighted_recon(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    if kind == "l1":
        err = (x - y).abs()
    elif kind == "mse":
        err = (x - y) ** 2
    else:
        raise ValueError(f"loss kind {kind!r}, expected 'l1' or 'mse'")
    return (err * weight).sum() / (weight.sum() * x.shape[1]).clamp_min(1e-6)


def reconstruction_loss(
    face: torch.Tensor,
    mask: torch.Tensor,
    target: torch.Tensor,
    target_mask: torch.Tensor,
    weight: torch.Tensor,
    kind: str = "l1",
    dssim_weight: float = 1.0,
    mask_weight: float = 1.0,
    mask_loss: str = "mse",
    visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss of one identity's batch: priority-weighted L1/MSE + DSSIM on the face + the learned mask's loss against
    its target (the hull, 0 under occluders): ``mask_loss`` "mse" or "bce" (binary cross-entropy). ``visible``
    (N x 1 x H x W, 1 - a pasted occluder's alpha) keeps the face losses off what the occluder hides, so the
    decoder is not taught to invent its identity's face from a hand; the mask loss still sees it all."""
    if visible is not None:
        weight = weight * visible
    loss = weighted_recon(face, target, weight, kind)
    if dssim_weight:
        loss = loss + dssim_weight * dssim(face, target, where=visible)
    if mask_weight:
        loss = loss + mask_weight * mask_error(mask, target_mask, mask_loss)
    return loss


_BCE_EPS = 1e-6  # a sigmoid saturates to exactly 0 or 1 in float32; log(0) would be -inf


def mask_error(mask: torch.Tensor, target_mask: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Mean error of a learned mask (sigmoid output in [0, 1]) against its target.

    "bce": cross-entropy, the segmentation loss (DeepFaceLab's XSeg trains with it). Its gradient with respect to the
    mask's logit is ``mask - target``; MSE's is ``2 (mask - target) mask (1 - mask)``, which vanishes where the
    sigmoid is saturated: a mask sure that a pasted hand is face (0.98 there) barely moves under MSE, 25x faster
    under cross-entropy (measured: benchmarks/occluder_finetune.md).
    """
    if kind == "mse":
        return F.mse_loss(mask, target_mask)
    if kind == "bce":
        return F.binary_cross_entropy(mask.clamp(_BCE_EPS, 1.0 - _BCE_EPS), target_mask)
    raise ValueError(f"mask loss {kind!r}, expected 'mse' or 'bce'")


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean PSNR in dB over the batch, images in [0, 1]."""
    mse = ((x.float() - y.float()) ** 2).flatten(1).mean(dim=1).clamp_min(1e-10)
    return (10.0 * torch.log10(1.0 / mse)).mean()
