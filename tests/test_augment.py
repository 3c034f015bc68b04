"""training.augment: seeded determinism, random warp only on the input, masks follow their faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("albumentations")

from training.augment import AugmentConfig, Augmenter, random_warp, sample_seed, to_bgr_uint8, to_nchw_rgb  # noqa: E402

SIZE = 64


def _blob_face(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured background with a bright off-centre ellipse (the 'face'); its mask; a weight map on one corner of it.

    Off-centre and asymmetric on purpose: a flip or rotation applied to the image but not to the mask would show.
    """
    rng = np.random.default_rng(seed)
    image = (rng.random((SIZE, SIZE, 3)) * 60).astype(np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.ellipse(mask, (22, 28), (12, 18), 20, 0, 360, 1, -1)
    image[mask > 0] = (200, 220, 240)
    weight = np.ones((SIZE, SIZE), np.float32)
    weight[14:22, 16:26] = 3.0
    return image, mask.astype(np.float32), weight


def test_same_seed_same_batch_other_seed_other_batch():
    aug = Augmenter()
    images, masks, weights = map(np.stack, zip(*[_blob_face(i) for i in range(6)], strict=True))
    idx = np.array([0, 1, 2, 3, 4, 5])
    b1 = aug.batch(images, masks, weights, idx, seed=7, step=3, stream=0)
    b2 = Augmenter().batch(images, masks, weights, idx, seed=7, step=3, stream=0)  # a fresh pipeline: no hidden state
    for key in b1:
        assert np.array_equal(b1[key], b2[key]), key
    b3 = aug.batch(images, masks, weights, idx, seed=7, step=4, stream=0)
    assert not np.array_equal(b1["input"], b3["input"])
    assert not np.array_equal(b1["target"], b3["target"])
    assert b1["input"].shape == (6, 3, SIZE, SIZE) and b1["mask"].shape == (6, 1, SIZE, SIZE)
    assert b1["input"].dtype == np.float32 and 0.0 <= b1["input"].min() and b1["input"].max() <= 1.0
    assert sample_seed(0, 1, 0, 0) != sample_seed(0, 1, 1, 0) != sample_seed(0, 2, 0, 0)


def test_masks_follow_faces_through_flip_and_affine():
    # no warp, no input degradation: the geometric pipeline alone, run many times with flips and rotations
    aug = Augmenter(AugmentConfig(warp=0.0, blur=0.0, noise=0.0, colour=0.0, flip=0.5, rotate=15.0))
    image, mask, weight = _blob_face(0)
    flipped_seen = False
    for seed in range(24):
        _, target, mask_t, weight_t = aug.sample(image, mask, weight, seed)
        bright = target.astype(np.float32).mean(axis=2) > 130
        inside = mask_t > 0.5
        iou = (bright & inside).sum() / max(1, (bright | inside).sum())
        assert iou > 0.85, f"seed {seed}: mask drifted off the face (IoU {iou:.2f})"
        cx = np.nonzero(inside)[1].mean()
        flipped_seen |= cx > SIZE / 2  # the blob starts on the left; a flip moves it right
        # the priority region moved with the face: its centre stays inside the face mask
        ys, xs = np.nonzero(weight_t > 2.0)
        assert len(xs) and inside[int(round(ys.mean())), int(round(xs.mean()))]
    assert flipped_seen, "no flip in 24 seeds at p=0.5"


def test_random_warp_changes_input_not_target():
    aug = Augmenter(
        AugmentConfig(warp=1.0, blur=0.0, noise=0.0, colour=0.0, flip=0.0, rotate=0.0, scale=0.0, shift=0.0)
    )
    image, mask, weight = _blob_face(1)
    warped, target, _, _ = aug.sample(image, mask, weight, 5)
    assert np.array_equal(target, image), "with no affine/colour, the target must be the untouched face"
    diff = np.abs(warped.astype(np.int16) - target.astype(np.int16))
    assert diff.mean() > 2.0, "the input was not warped"
    # a smooth warp moves pixels a little, it does not scramble them: the blob still overlaps itself
    bright_in = warped.mean(axis=2) > 130
    bright_t = target.mean(axis=2) > 130
    assert (bright_in & bright_t).sum() / (bright_in | bright_t).sum() > 0.6


def test_random_warp_amount_zero_is_identity_and_deterministic():
    image, _, _ = _blob_face(2)
    assert np.array_equal(random_warp(image, np.random.default_rng(0), 0.0), image)
    w1 = random_warp(image, np.random.default_rng(3), 1.0)
    w2 = random_warp(image, np.random.default_rng(3), 1.0)
    assert np.array_equal(w1, w2) and not np.array_equal(w1, image)


def test_colour_layout_round_trip():
    image, _, _ = _blob_face(3)
    nchw = to_nchw_rgb(image[None])
    assert nchw.shape == (1, 3, SIZE, SIZE)
    # channel 0 is red: BGR's last channel
    assert np.allclose(nchw[0, 0], image[..., 2] / 255.0)
    assert np.array_equal(to_bgr_uint8(nchw)[0], image)


def test_clean_samples_keep_the_aligned_crop_as_target():
    # every geometric and colour change forced on: a clean sample still has the crop itself as target
    aug = Augmenter(AugmentConfig(warp=0.0, blur=0.0, noise=0.0, flip=1.0, rotate=15.0, colour=1.0))
    image, mask, weight = _blob_face(3)
    warped, target, mask_t, weight_t = aug.sample(image, mask, weight, seed=5, clean=True)
    assert np.array_equal(target, image) and np.array_equal(warped, image)
    assert np.array_equal(mask_t, mask) and np.array_equal(weight_t, weight)
    _, dirty, _, _ = aug.sample(image, mask, weight, seed=5)
    assert not np.array_equal(dirty, image)
    # the random warp and the degradations still reach the input of a clean sample
    warped, target, _, _ = Augmenter(AugmentConfig(warp=1.0)).sample(image, mask, weight, seed=5, clean=True)
    assert np.array_equal(target, image) and not np.array_equal(warped, image)
    batch = aug.batch(image[None], mask[None], weight[None], np.array([0, 0]), seed=1, step=0, stream=0, clean=True)
    assert np.array_equal(batch["target"], to_nchw_rgb(np.stack([image, image])))
