"""Training augmentation: the classic deepfakes random warp plus an albumentations pipeline. Seeded, deterministic.

One sample is built in four steps:

1. ``geometry_colour`` (albumentations: horizontal flip, small affine, colour jitter) applied to the face *and* its
   masks (landmark hull, loss-priority map), so masks follow their faces. Its output is the training **target**.
2. :func:`random_warp`: a smooth random displacement field (a coarse grid of Gaussian offsets, interpolated) applied to
   the target only. The model sees the warped face and must draw the unwarped one; this is what stops the shared
   encoder from learning an identity map and makes it describe the face instead.
3. With probability ``occluders``: an occluder (training.occluders: a hand, a bar, a cup, a piece of another crop)
   pasted over the warped input, in target coordinates (after the warp, so the same pixels are covered in input and
   target), and the **mask target** multiplied by ``1 - alpha`` there: the learned mask leaves out what is in front
   of the face. The face target and its loss weight are unchanged: the decoder keeps drawing the face behind it.
4. ``degrade`` (albumentations: blur, noise) on the **input** only: the live camera is blurrier and noisier than
   the training crops (and blurs an occluder's edge as it blurs the face), and the model should not learn to paint
   noise.

Every sample has its own seed (from the run seed, the step and the sample's position), so a batch is a pure function
of ``(seed, step)``: a resumed run draws exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The expression warps (training data with expressions, issue 20) and their default shares of the expression samples:
# speech (the open mouth, with blinks) keeps the largest share; the four kinds a single portrait never shows share
# the rest.
EXPRESSION_KINDS = ("mouth", "smile", "lip_press", "brow_raise", "squint")
EXPRESSION_MIX = (0.4, 0.15, 0.15, 0.15, 0.15)
# each kind's amount (uniform in this range; the mouth's is 0 .. mouth_max): smile and lip press / brow raise as
# fractions of realtime.expressions' full move, the squint as how far the upper lids close (0 open .. 1 shut)
EXPRESSION_RANGES = {"smile": (0.3, 1.0), "lip_press": (0.4, 1.0), "brow_raise": (0.4, 1.0), "squint": (0.3, 0.5)}


@dataclass(frozen=True)
class AugmentConfig:
    warp: float = 1.0  # random-warp strength; 1.0 ~ classic deepfakes (offsets ~ 2.5 % of the crop side)
    flip: float = 0.5  # probability of a horizontal flip
    rotate: float = 10.0  # degrees, +-
    scale: float = 0.05  # +- fraction
    shift: float = 0.05  # +- fraction of the crop side
    colour: float = 0.8  # probability of colour jitter
    blur: float = 0.15  # probability of a small blur on the input
    noise: float = 0.25  # probability of sensor-like noise on the input
    # Expression coverage from stills (realtime.expressions): with this probability a sample first gets one
    # expression, of the kinds EXPRESSION_KINDS in the shares expression_mix: its mouth opened (0 .. mouth_max eye
    # distances), a smile, pressed lips, raised brows or a squint (lids partly closed, not painted); in eyes_share
    # of those but the squint, its eyes also closed (a blink). Input and target both show it, so decoders learn to
    # draw expressions a one-photo faceset never had. expression_mix (1, 0, 0, 0, 0): the mouth-open warps alone,
    # exactly the samples made before the other kinds existed.
    expressions: float = 0.0
    mouth_max: float = 0.45
    eyes_share: float = 0.3
    expression_mix: tuple[float, ...] = EXPRESSION_MIX
    # Probability that a sample's lips are first closed (realtime.expressions.lip_close_warp, amount 1), before any
    # expression: for an identity whose every photo shows parted lips (the astronaut's toothy smile), so that its
    # decoder learns a closed resting mouth and draws one for a camera person whose lips are closed (the expression
    # warps, mouth-open included, then start from the closed lips). 0: off, samples exactly as before (its own
    # random stream).
    rest_close: float = 0.0
    # Probability of an occluder over the input (training.occluders); the mask target is 0 under it. 0: off, and
    # samples are exactly what they were before occluders existed (their random draws are a stream of their own).
    occluders: float = 0.0
    # "skip": a batch with occluders also carries "visible" (1 - the occluder's alpha), where the face losses may look
    # (training.losses.reconstruction_loss); "learn" (train's default) builds no such array
    occluder_face: str = "learn"


def sample_seed(seed: int, step: int, stream: int, index: int) -> int:
    """A 32-bit seed unique to (run seed, step, stream, sample index); SeedSequence mixes them well."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, step, stream, index]).generate_state(1)[0])


def random_warp(image: np.ndarray, rng: np.random.Generator, amount: float = 1.0, grid: int = 5) -> np.ndarray:
    """Warp ``image`` (HxWxC) by a smooth random field: Gaussian offsets on a ``grid`` x ``grid`` lattice, bicubically
    interpolated to every pixel, border reflected. ``amount`` 0 returns a copy.
    """
    h, w = image.shape[:2]
    if amount <= 0:
        return image.copy()
    sigma = 0.025 * amount * min(h, w)
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid)).astype(np.float32)
    dx = cv2.resize(coarse[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(coarse[1], (w, h), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, xs + dx, ys + dy, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


@dataclass(frozen=True)
class Sample:
    """One training sample: input and target HxWx3 uint8 BGR, mask and weight targets HxW float32, and the alpha
    (HxW float32 in [0, 1]) of the occluder pasted over the input, None when there is none."""

    input: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    weight: np.ndarray
    occluder: np.ndarray | None = None

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.input, self.target, self.mask, self.weight


class Augmenter:
    """Builds (input, target, mask, weight) samples.

    The albumentations pipelines keep their random state inside, so one Augmenter serves one thread or process
    (training.prefetch gives each worker process its own); every sample has its own seed, so a batch is the same
    whoever builds it.
    """

    def __init__(self, config: AugmentConfig = AugmentConfig()) -> None:
        self.config = config
        self._pipes = None

    def _pipelines(self):  # (geometry_colour, degrade), built on first use (worker processes build their own)
        if self._pipes is None:
            self._pipes = self._build_pipelines()
        return self._pipes

    def _build_pipelines(self):
        from realtime.native import quiet_native_logs

        quiet_native_logs()  # before the import: albumentations' update check would reach for the network
        import albumentations as A

        c = self.config
        geometry_colour = A.Compose(
            [
                A.HorizontalFlip(p=c.flip),
                A.Affine(
                    scale=(1 - c.scale, 1 + c.scale),
                    translate_percent=(-c.shift, c.shift),
                    rotate=(-c.rotate, c.rotate),
                    interpolation=cv2.INTER_LINEAR,
                    mask_interpolation=cv2.INTER_LINEAR,
                    border_mode=cv2.BORDER_REFLECT_101,
                    fill_mask=0,
                    p=1.0 if c.rotate or c.scale or c.shift else 0.0,
                ),
                A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=c.colour),
            ],
            seed=0,
        )
        degrade = A.Compose(
            [
                A.GaussianBlur(blur_limit=(3, 3), sigma_limit=(0.3, 0.9), p=c.blur),
                A.GaussNoise(std_range=(0.01, 0.04), p=c.noise),
            ],
            seed=0,
        )
        return geometry_colour, degrade

    def sample(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        weight: np.ndarray,
        seed: int,
        warp: float | None = None,
        landmarks: np.ndarray | None = None,
        clean: bool = False,
        others: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One sample from a BGR uint8 crop and its float32 masks: (input, target) HxWx3 uint8 BGR, mask, weight HxW.

        ``warp`` overrides the configured random-warp strength (the training schedule fades it out); ``landmarks``
        (the crop's 68 points) enable the expression warps. The reflected border that the affine invents gets
        weight 0: it is not face, so the loss ignores it. ``clean`` skips step 1 (no flip, affine or colour jitter):
        the target is the aligned crop as it is, where a decoder's detail texture (models.autoencoder) is registered.
        ``others`` (N x H x W x 3 uint8, e.g. the whole faceset) are where patch occluders cut their texture.
        """
        return self.sample_parts(image, mask, weight, seed, warp, landmarks, clean, others).as_tuple()

    def sample_parts(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        weight: np.ndarray,
        seed: int,
        warp: float | None = None,
        landmarks: np.ndarray | None = None,
        clean: bool = False,
        others: np.ndarray | None = None,
    ) -> Sample:
        """:meth:`sample` with the occluder's alpha (target coordinates; None when this sample has none)."""
        c = self.config
        if landmarks is not None and c.rest_close > 0 and np.random.default_rng([seed, 31]).random() < c.rest_close:
            from realtime.expressions import lip_close_warp

            image, landmarks, (mask, weight) = lip_close_warp(image, landmarks, 1.0, extra=(mask, weight))
        if landmarks is not None and c.expressions > 0:
            image, mask, weight = expression_sample(image, mask, weight, landmarks, seed, c)
        geometry_colour, degrade = self._pipelines()
        valid = np.ones(mask.shape, np.float32)
        if clean:
            target, mask_t, weight_t, valid_t = image, mask, weight, valid
        else:
            geometry_colour.set_random_seed(seed)
            out = geometry_colour(image=image, masks=[mask, weight, valid])
            target = out["image"]
            mask_t, weight_t, valid_t = out["masks"]
        rng = np.random.default_rng(seed)
        warped = random_warp(target, rng, c.warp if warp is None else warp)
        mask_t = np.asarray(mask_t, np.float32)
        alpha = None
        if c.occluders > 0:
            rng_o = np.random.default_rng([seed, 23])  # its own stream: the other draws stay as they were
            if rng_o.random() < c.occluders:
                from training.occluders import paste_occluder

                # after the warp: the model sees the occluder at the same pixels where its mask must say 0
                warped, alpha = paste_occluder(warped, rng_o, others, face_mask=mask_t)
                mask_t = mask_t * (1.0 - alpha)
        degrade.set_random_seed(seed ^ 0x5A5A5A5A)
        warped = degrade(image=warped)["image"]
        weight_t = np.asarray(weight_t, np.float32) * (np.asarray(valid_t, np.float32) > 0.5)
        return Sample(warped, target, mask_t, weight_t, alpha)

    def batch(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        weights: np.ndarray,
        indices: np.ndarray,
        seed: int,
        step: int,
        stream: int,
        warp: float | None = None,
        landmarks: np.ndarray | None = None,
        clean: bool = False,
    ) -> dict[str, np.ndarray]:
        """A batch as float32 NCHW arrays, RGB in [0, 1] (the model's contract): input, target, mask, weight.
        ``landmarks`` (N x 68 x 2 crop points of ``images``) enable the expression warps; ``clean``: see
        :meth:`sample`; patch occluders cut their texture from any of ``images``."""

        def one(k: int) -> Sample:
            i = int(indices[k])
            lm = None if landmarks is None else landmarks[i]
            return self.sample_parts(
                images[i], masks[i], weights[i], sample_seed(seed, step, stream, k), warp, lm, clean, images
            )

        samples = [one(k) for k in range(len(indices))]
        arrays = {
            "input": to_nchw_rgb(np.stack([s.input for s in samples])),
            "target": to_nchw_rgb(np.stack([s.target for s in samples])),
            "mask": np.stack([s.mask for s in samples])[:, None].astype(np.float32),
            "weight": np.stack([s.weight for s in samples])[:, None].astype(np.float32),
        }
        if self.config.occluders > 0 and self.config.occluder_face == "skip":
            ones = np.ones(samples[0].mask.shape, np.float32)
            visible = [ones if s.occluder is None else 1.0 - s.occluder for s in samples]
            arrays["visible"] = np.stack(visible)[:, None].astype(np.float32)
        return arrays


def expression_kind(seed: int, mix: tuple[float, ...]) -> str:
    """Which expression a sample of ``seed`` gets, drawn from the shares ``mix`` (one per EXPRESSION_KINDS) on a
    stream of its own: the mouth-only mix draws nothing, so its samples are what they were before the kinds."""
    if len(mix) != len(EXPRESSION_KINDS) or min(mix) < 0 or sum(mix) <= 0:
        raise ValueError(f"expression mix {mix}: expected {len(EXPRESSION_KINDS)} shares >= 0, not all 0")
    weights = np.asarray(mix, np.float64)
    if np.count_nonzero(weights) == 1:
        return EXPRESSION_KINDS[int(np.flatnonzero(weights)[0])]
    rng = np.random.default_rng([seed, 13])
    return EXPRESSION_KINDS[int(rng.choice(len(weights), p=weights / weights.sum()))]


def expression_sample(
    image: np.ndarray, mask: np.ndarray, weight: np.ndarray, landmarks: np.ndarray, seed: int, c: AugmentConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """With probability ``c.expressions`` one expression warp of the crop (:func:`expression_kind` says which), its
    masks moved with it; else the crop as it is. Seeded by ``seed`` alone."""
    from realtime import expressions as ex

    rng_e = np.random.default_rng([seed, 11])
    if rng_e.random() >= c.expressions:
        return image, mask, weight
    kind = expression_kind(seed, c.expression_mix)
    extra: tuple[np.ndarray, ...] = (mask, weight)
    if kind == "mouth":  # the draws of the mouth-only augmentation, in its order
        mouth = float(rng_e.uniform(0.0, c.mouth_max))
        eyes = float(rng_e.uniform(0.5, 1.0)) if rng_e.random() < c.eyes_share else 0.0
        image, _, extra = ex.expression_warp(image, landmarks, mouth, eyes, extra=extra)
        return image, extra[0], extra[1]
    amount = float(rng_e.uniform(*EXPRESSION_RANGES[kind]))
    if kind == "squint":
        image, _, extra = ex.expression_warp(image, landmarks, eyes=amount, extra=extra, paint_lids=False)
        return image, extra[0], extra[1]
    if kind == "smile":
        image, moved, extra = ex.expression_warp(image, landmarks, smile=amount, extra=extra)
    elif kind == "lip_press":
        image, moved, extra = ex.lip_press_warp(image, landmarks, amount, extra=extra)
    else:
        image, moved, extra = ex.brow_raise_warp(image, landmarks, amount, extra=extra)
    if rng_e.random() < c.eyes_share:  # a blink on top
        image, _, extra = ex.expression_warp(image, moved, eyes=float(rng_e.uniform(0.5, 1.0)), extra=extra)
    return image, extra[0], extra[1]


def to_nchw_rgb(images_bgr: np.ndarray) -> np.ndarray:
    """N x H x W x 3 uint8 BGR -> N x 3 x H x W float32 RGB in [0, 1]."""
    return np.ascontiguousarray(images_bgr[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def to_bgr_uint8(faces_rgb: np.ndarray) -> np.ndarray:
    """N x 3 x H x W float RGB [0, 1] -> N x H x W x 3 uint8 BGR."""
    return np.clip(np.asarray(faces_rgb).transpose(0, 2, 3, 1)[..., ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8)
