"""training.augment: seeded determinism, random warp only on the input, masks follow their faces."""

from __future__ import annotations

from typing import Any

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


# --------------------------------------------------------------------------------------------------- occluders
from training.occluders import KINDS, choose_kind, paste_occluder  # noqa: E402

_NO_DEGRADE = dict(blur=0.0, noise=0.0)


def _occluded_pair(seed: int, **config) -> tuple:
    """The same sample without and with an occluder (every other setting alike)."""
    image, mask, weight = _blob_face(seed)
    others = np.stack([_blob_face(seed + k)[0] for k in range(1, 4)])
    plain = Augmenter(AugmentConfig(occluders=0.0, **config)).sample_parts(image, mask, weight, seed, others=others)
    occluded = Augmenter(AugmentConfig(occluders=1.0, **config)).sample_parts(image, mask, weight, seed, others=others)
    return plain, occluded


def test_occluder_zeroes_the_mask_target_exactly_where_it_pasted():
    overlapped = 0
    for seed in range(12):
        plain, occ = _occluded_pair(seed, **_NO_DEGRADE)
        alpha = occ.occluder
        assert plain.occluder is None and alpha is not None and alpha.dtype == np.float32
        assert alpha.shape == (SIZE, SIZE) and 0.0 <= alpha.min() and alpha.max() <= 1.0 and alpha.max() > 0.5
        # the mask target: 1 - alpha times the hull, so 0 where the occluder is opaque, untouched where it is absent
        assert np.array_equal(occ.mask, plain.mask * (1.0 - alpha))
        assert np.all(occ.mask[alpha == 1.0] == 0.0)
        assert np.array_equal(occ.mask[alpha == 0], plain.mask[alpha == 0])
        # the face target and its loss weight are the whole face, as without the occluder
        assert np.array_equal(occ.target, plain.target) and np.array_equal(occ.weight, plain.weight)
        # the input changed only under the occluder, and there it did change
        assert np.array_equal(occ.input[alpha == 0], plain.input[alpha == 0])
        assert np.any(occ.input[alpha >= 0.5] != plain.input[alpha >= 0.5])
        overlapped += bool(((alpha > 0.5) & (plain.mask > 0.5)).any())
    assert overlapped >= 10, f"occluders over the face in only {overlapped} of 12 samples"


def test_occluder_follows_the_warp_and_survives_degradation():
    # random warp and the input's blur/noise on: the occluder is pasted after the warp (the same pixels in input and
    # mask target), and degradation reaches it as it reaches the face: outside a 1 px rim of it, input unchanged
    for seed in range(6):
        plain, occ = _occluded_pair(seed, warp=1.0, blur=1.0, noise=0.0)
        alpha = occ.occluder
        assert np.array_equal(occ.mask, plain.mask * (1.0 - alpha))
        rim = cv2.dilate((alpha > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert np.array_equal(occ.input[~rim], plain.input[~rim])
        assert np.array_equal(occ.target, plain.target)


def test_occluders_are_deterministic_and_off_means_unchanged():
    image, mask, weight = _blob_face(4)
    images, masks, weights = map(np.stack, zip(*[_blob_face(i) for i in range(6)], strict=True))
    idx = np.arange(6)
    aug = Augmenter(AugmentConfig(occluders=0.5))
    b1 = aug.batch(images, masks, weights, idx, seed=3, step=2, stream=1)
    b2 = Augmenter(AugmentConfig(occluders=0.5)).batch(images, masks, weights, idx, seed=3, step=2, stream=1)
    assert all(np.array_equal(b1[k], b2[k]) for k in b1)
    b0 = Augmenter(AugmentConfig(occluders=0.0)).batch(images, masks, weights, idx, seed=3, step=2, stream=1)
    # occluders draw from their own stream: targets and weights are those of the run without them, and the samples
    # that drew no occluder are identical in every part
    assert np.array_equal(b1["target"], b0["target"]) and np.array_equal(b1["weight"], b0["weight"])
    hit = [not np.array_equal(b1["mask"][k], b0["mask"][k]) for k in range(6)]
    assert 0 < sum(hit) < 6, "p=0.5 over 6 samples: some with, some without"
    for k in range(6):
        if not hit[k]:
            assert np.array_equal(b1["input"][k], b0["input"][k])
    # probability 0 never pastes one: the samples are the ones built before occluders existed (same code path)
    for seed in range(8):
        assert Augmenter(AugmentConfig()).sample_parts(image, mask, weight, seed).occluder is None
    s1 = Augmenter(AugmentConfig(occluders=1.0)).sample_parts(image, mask, weight, 9).occluder
    s2 = Augmenter(AugmentConfig(occluders=1.0)).sample_parts(image, mask, weight, 10).occluder
    assert s1 is not None and s2 is not None and not np.array_equal(s1, s2)


def test_a_batch_with_occluders_says_where_the_face_is_visible():
    images, masks, weights = map(np.stack, zip(*[_blob_face(i) for i in range(6)], strict=True))
    idx = np.arange(6)
    aug = Augmenter(AugmentConfig(occluders=0.5, occluder_face="skip", **_NO_DEGRADE))
    batch = aug.batch(images, masks, weights, idx, seed=3, step=2, stream=1)
    visible = batch["visible"]
    assert visible.shape == (6, 1, SIZE, SIZE) and visible.dtype == np.float32
    for k in range(6):
        alpha = aug.sample_parts(images[k], masks[k], weights[k], sample_seed(3, 2, 1, k), others=images).occluder
        if alpha is None:
            assert np.all(visible[k] == 1.0)
        else:  # 1 - alpha exactly: 0 where the occluder is opaque
            assert np.array_equal(visible[k, 0], 1.0 - alpha) and np.any(visible[k] == 0.0)
    assert 0 < sum(np.any(visible[k] < 1.0) for k in range(6)) < 6
    # without occluders there is no such key: the batch is what it was before occluders existed
    assert "visible" not in Augmenter(AugmentConfig(occluders=0.0)).batch(images, masks, weights, idx, 3, 2, 1)
    # ... nor when the face loss learns under occluders (nothing would read it)
    learn = Augmenter(AugmentConfig(occluders=0.5, **_NO_DEGRADE)).batch(images, masks, weights, idx, 3, 2, 1)
    assert "visible" not in learn and all(np.array_equal(learn[k], batch[k]) for k in learn)


def test_every_occluder_kind_is_drawn_and_pasted_exactly():
    image, mask, _ = _blob_face(5)
    assert {choose_kind(np.random.default_rng(s)) for s in range(200)} == set(KINDS)
    grey = np.full((2, SIZE, SIZE, 3), (10, 200, 30), np.uint8)  # patches must cut their texture from `others`
    for kind in KINDS:
        for seed in range(5):
            out, alpha = paste_occluder(image, np.random.default_rng(seed), grey, mask, kind=kind)
            area = float((alpha > 0.5).sum())
            assert 0.02 * mask.sum() < area, f"{kind}: nothing drawn"
            assert np.array_equal(out[alpha == 0], image[alpha == 0])  # untouched outside it
            assert np.allclose(alpha * 255, np.round(alpha * 255), atol=1e-3)  # 1/255 steps: exact 1 - alpha
            if kind == "patch":
                assert np.all(np.abs(out[alpha == 1.0].astype(int) - (10, 200, 30)) <= 1)
    with pytest.raises(ValueError, match="occluder kind"):
        paste_occluder(image, np.random.default_rng(0), kind="cat")
    with pytest.raises(ValueError, match="uint8"):
        paste_occluder(image.astype(np.float32), np.random.default_rng(0))


def test_occluder_and_mask_loss_switches_in_train_enroll_and_demo_build():
    import argparse

    from training import demo_model, enroll, train

    def parse(module, *argv):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        return train.occluders_from_args(parser.parse_args(list(argv)))

    base = ("--a", "A", "--b", "B", "--out", "O")
    assert parse(train, *base) == train.OCCLUDERS == 0.3
    assert parse(train, *base, "--occluders", "0.5") == 0.5 and parse(train, *base, "--no-occluders") == 0.0
    assert parse(enroll, "--out", "me") == 0.3 and parse(enroll, "--out", "me", "--no-occluders") == 0.0
    assert parse(demo_model, "--occluders", "0.2") == 0.2 and demo_model.Recipe().occluders == 0.3
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    assert train.config_from_args(parser.parse_args([*base, "--no-occluders"])).occluders == 0.0
    # a checkpoint saved before occluders existed resumes as it was trained: without them
    cfg = train.TrainConfig(a="A", b="B", out="O")
    older = {k: v for k, v in vars(cfg).items() if k not in ("occluders", "mask_loss")}
    saved = {"train_config": older, "model_config": _tiny_config()}
    assert train.resolve_config(cfg, saved)[0].occluders == 0.0
    with pytest.raises(train.SwapcamError, match="--occluders 1.5"):
        train.resolve_config(train.TrainConfig(a="A", b="B", out="O", occluders=1.5), None)
    # ... and with the mask loss it had (MSE); new runs learn the mask with cross-entropy
    assert train.resolve_config(cfg, saved)[0].mask_loss == "mse" and cfg.mask_loss == "bce"
    assert train.config_from_args(parser.parse_args([*base, "--mask-loss", "mse"])).mask_loss == "mse"
    # the face loss under an occluder: the default, a switch in train and enroll, and the old runs' "learn"
    assert train.config_from_args(parser.parse_args(base)).occluder_face == train.OCCLUDER_FACE
    assert train.config_from_args(parser.parse_args([*base, "--occluder-face", "skip"])).occluder_face == "skip"
    enroll_parser = argparse.ArgumentParser()
    enroll.add_arguments(enroll_parser)
    assert enroll_parser.parse_args(["--out", "me", "--occluder-face", "learn"]).occluder_face == "learn"
    assert train.resolve_config(cfg, saved)[0].occluder_face == "learn"
    with pytest.raises(train.SwapcamError, match="--occluder-face 'all'"):
        train.resolve_config(train.TrainConfig(a="A", b="B", out="O", occluder_face="all"), None)


def _tiny_config() -> dict:
    pytest.importorskip("torch")
    from models.autoencoder import get_preset

    return get_preset("tiny").to_dict()


def test_cross_entropy_mask_loss_pushes_a_sure_wrong_mask_harder():
    torch = pytest.importorskip("torch")
    from training.losses import mask_error, reconstruction_loss

    target = torch.tensor([[0.0, 1.0, 1.0, 0.25]])  # 0 under an opaque occluder, 0.25 under a soft edge
    mask = torch.tensor([[0.98, 0.99, 1.0, 0.6]])  # 1.0: a saturated sigmoid, and still no log(0)
    bce = mask_error(mask, target, "bce")
    expected = -(target * torch.log(mask.clamp(1e-6, 1 - 1e-6)) + (1 - target) * torch.log((1 - mask).clamp(1e-6)))
    assert float(bce) == pytest.approx(float(expected.mean()), rel=1e-5) and torch.isfinite(bce)
    logit = torch.logit(torch.tensor([0.98]), eps=1e-6).requires_grad_(True)
    grads = {}
    for kind in ("bce", "mse"):
        (g,) = torch.autograd.grad(mask_error(torch.sigmoid(logit), torch.zeros(1), kind), logit)
        grads[kind] = float(g)
    assert grads["bce"] > 20 * grads["mse"] > 0  # where MSE's gradient vanishes in the saturated sigmoid
    face = torch.rand(1, 3, 16, 16)
    m, t = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    w = torch.ones(1, 1, 16, 16)
    with_bce = reconstruction_loss(face, m, face, t, w, mask_weight=2.0, mask_loss="bce")
    assert float(with_bce) == pytest.approx(2.0 * float(mask_error(m, t, "bce")) + 0.0, abs=1e-6)
    with pytest.raises(ValueError, match="mask loss"):
        mask_error(m, t, "l1")


# --------------------------------------------------------------------------------------------------- expressions
from training.augment import EXPRESSION_KINDS, EXPRESSION_MIX, expression_kind  # noqa: E402

_PLAIN: dict[str, Any] = dict(warp=0.0, flip=0.0, rotate=0.0, scale=0.0, shift=0.0, colour=0.0, blur=0.0, noise=0.0)


def _one_hot(kind: str) -> tuple[float, ...]:
    return tuple(1.0 if k == kind else 0.0 for k in EXPRESSION_KINDS)


def test_expression_kinds_split_the_expression_share():
    """The default mix draws every kind at its share; a one-kind mix draws only that kind; a bad mix is refused.
    The share of samples with an expression stays what it was (build-demo-model 0.3, train off)."""
    from training.demo_model import Recipe
    from training.train import TrainConfig

    assert Recipe().expressions == 0.3 and TrainConfig(a="", b="", out="").expressions == 0.0
    drawn = [expression_kind(seed, EXPRESSION_MIX) for seed in range(4000)]
    for kind, share in zip(EXPRESSION_KINDS, EXPRESSION_MIX, strict=True):
        assert drawn.count(kind) / len(drawn) == pytest.approx(share, abs=0.03), kind
    for kind in EXPRESSION_KINDS:
        assert {expression_kind(seed, _one_hot(kind)) for seed in range(50)} == {kind}
    for bad in ((1.0, 0.0), (0.0,) * 5, (1.0, -0.5, 0.5, 0.0, 0.0)):
        with pytest.raises(ValueError, match="expression mix"):
            expression_kind(0, bad)


@pytest.mark.parametrize("kind", EXPRESSION_KINDS)
def test_each_expression_kind_reaches_input_target_and_masks(portraits, portrait_landmarks, kind):
    """A sample of each kind shows its expression in input and target alike, and its mask and weight targets are
    moved by the same field as the face (here made from the face's own channels, so they must stay equal to them)."""
    image, lm = portraits["grace_hopper"].image, portrait_landmarks["grace_hopper"]
    mask, weight = image[..., 0].astype(np.float32), image[..., 2].astype(np.float32)
    aug = Augmenter(AugmentConfig(expressions=1.0, eyes_share=0.0, expression_mix=_one_hot(kind), **_PLAIN))
    warped, target, mask_t, weight_t = aug.sample(image, mask, weight, seed=4, landmarks=lm, clean=True)
    assert np.array_equal(warped, target)
    assert np.abs(target.astype(int) - image).mean() > 0.05, kind
    assert not np.array_equal(mask_t, mask) and not np.array_equal(weight_t, weight)
    same = np.ones(mask.shape, bool)
    if kind == "mouth":  # the opened mouth is painted (a dark cavity) in the face only
        (x0, y0), (x1, y1) = lm[48:68].min(axis=0) - 20, lm[48:68].max(axis=0) + 40
        same[int(y0) : int(y1), int(x0) : int(x1)] = False
    assert np.abs(mask_t - target[..., 0])[same].max() <= 1.0 and np.abs(weight_t - target[..., 2])[same].max() <= 1.0
    off = Augmenter(AugmentConfig(expressions=0.0, expression_mix=_one_hot(kind), **_PLAIN))
    assert np.array_equal(off.sample(image, mask, weight, seed=4, landmarks=lm, clean=True)[1], image)


def test_expression_samples_are_seeded_and_the_mouth_only_mix_is_the_old_augmentation(portraits, portrait_landmarks):
    """Same seed, same sample (whichever kind it drew); another seed, another; and the mouth-only mix gives exactly
    the samples of the augmentation before the kinds (mouth opened, eyes closed in eyes_share, same draws)."""
    from realtime.expressions import expression_warp

    image, lm = portraits["astronaut"].image, portrait_landmarks["astronaut"]
    mask, weight = _blob_face(0)[1:]
    mask, weight = cv2.resize(mask, image.shape[1::-1]), cv2.resize(weight, image.shape[1::-1])
    config = AugmentConfig(expressions=1.0, **_PLAIN)
    seeds = range(6)
    first = [Augmenter(config).sample(image, mask, weight, seed=s, landmarks=lm, clean=True) for s in seeds]
    again = [Augmenter(config).sample(image, mask, weight, seed=s, landmarks=lm, clean=True) for s in seeds]
    for a, b in zip(first, again, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert len({expression_kind(s, EXPRESSION_MIX) for s in seeds}) > 1
    assert not np.array_equal(first[0][1], first[1][1])

    old = AugmentConfig(expressions=0.7, expression_mix=_one_hot("mouth"), **_PLAIN)
    for seed in range(8):
        rng = np.random.default_rng([seed, 11])
        expected = image
        if rng.random() < old.expressions:
            mouth = float(rng.uniform(0.0, old.mouth_max))
            eyes = float(rng.uniform(0.5, 1.0)) if rng.random() < old.eyes_share else 0.0
            expected = expression_warp(image, lm, mouth, eyes)[0]
        got = Augmenter(old).sample(image, mask, weight, seed=seed, landmarks=lm, clean=True)[1]
        assert np.array_equal(got, expected), seed


def test_closing_the_lips_first_reaches_input_target_and_masks_and_off_is_unchanged(portraits, portrait_landmarks):
    """rest_close: the sample's lips are closed before anything else (input and target alike, the masks moved with
    them, and an expression warp then starts from the closed lips); 0 gives exactly the samples of before, and a
    share draws on a stream of its own (the other draws unchanged)."""
    from realtime.expressions import lip_close_warp

    image, lm = portraits["astronaut"].image, portrait_landmarks["astronaut"].astype(np.float64)
    mask, weight = image[..., 0].astype(np.float32), image[..., 2].astype(np.float32)
    closed = lip_close_warp(image, lm, 1.0)[0]
    aug = Augmenter(AugmentConfig(rest_close=1.0, **_PLAIN))
    warped, target, mask_t, weight_t = aug.sample(image, mask, weight, seed=3, landmarks=lm, clean=True)
    assert np.array_equal(target, closed) and np.array_equal(warped, closed)
    assert np.abs(mask_t - target[..., 0]).max() <= 1.0 and np.abs(weight_t - target[..., 2]).max() <= 1.0
    plain = AugmentConfig(expressions=0.5, **_PLAIN)
    for seed in range(6):
        before = Augmenter(plain).sample(image, mask, weight, seed=seed, landmarks=lm, clean=True)
        off = Augmenter(AugmentConfig(expressions=0.5, rest_close=0.0, **_PLAIN))
        assert all(
            np.array_equal(x, y)
            for x, y in zip(before, off.sample(image, mask, weight, seed=seed, landmarks=lm, clean=True), strict=True)
        )
    opened = Augmenter(AugmentConfig(rest_close=1.0, expressions=1.0, expression_mix=_one_hot("mouth"), **_PLAIN))
    sample = opened.sample(image, mask, weight, seed=1, landmarks=lm, clean=True)[1]
    assert not np.array_equal(sample, closed)  # a mouth opened from the closed lips
    shares = [np.random.default_rng([s, 31]).random() < 0.5 for s in range(40)]
    half = Augmenter(AugmentConfig(rest_close=0.5, **_PLAIN))
    got = [
        np.array_equal(half.sample(image, mask, weight, seed=s, landmarks=lm, clean=True)[1], closed) for s in range(40)
    ]
    assert got == shares and 10 < sum(got) < 30


def test_close_lips_switches_in_train_and_demo_build():
    import argparse

    from training import demo_model, train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    base = ["--a", "A", "--b", "B", "--out", "O"]
    cfg = train.config_from_args(parser.parse_args([*base, "--close-lips-a", "0.8"]))
    assert (cfg.close_lips_a, cfg.close_lips_b) == (0.8, 0.0)
    assert train.config_from_args(parser.parse_args(base)).close_lips_a == 0.0
    with pytest.raises(train.SwapcamError, match="--close-lips-b 1.5"):
        train.resolve_config(train.TrainConfig(a="A", b="B", out="O", close_lips_b=1.5), None)
    demo_parser = argparse.ArgumentParser()
    demo_model.add_arguments(demo_parser)
    assert demo_model.Recipe().close_lips_a == 0.0
    assert demo_parser.parse_args(["--close-lips-a", "1"]).close_lips_a == 1.0
