"""The classic deepfakes swap autoencoder: one shared encoder, one decoder per identity.

Training reconstructs A through decoder A and B through decoder B; because the encoder is shared, its latent code
describes pose, expression and lighting in a way both decoders understand, so ``decoder_b(encoder(face_a))`` draws
B with A's pose and expression. Every upscale is sub-pixel (conv -> PixelShuffle): transposed convolutions leave
checkerboard artefacts that the live compositor would paste right into the face.

Shapes: faces are N x 3 x S x S float RGB in [0, 1]; decoders return (face N x 3 x S x S, mask N x 1 x S x S), both
through a sigmoid so they stay in [0, 1] (the contract's value range) without clamping in the exported graph.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from realtime.errors import SwapcamError


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters. Saved inside every checkpoint so a run rebuilds its own model exactly."""

    name: str
    size: int  # face crop side the model sees, pixels
    enc_channels: tuple[int, ...]  # one strided 5x5 conv per entry: size -> size / 2**len
    latent: int  # dense bottleneck width
    bottleneck_channels: int  # channels of the reshaped dense output (at size / 2**len)
    dec_channels: tuple[int, ...]  # one sub-pixel upscale per entry after the encoder's own upscale
    res_blocks: int = 0  # residual blocks after each decoder upscale (capacity for hd)
    # CPU real time: depthwise-separable convs (a k x k per-channel conv, then a 1x1 mix) cost about 1/k^2 of a
    # plain conv's MACs. ``separable_encoder`` applies them to every encoder stage after the first (the first sees
    # only 3 channels, where a plain conv is already cheap); ``separable_decoder`` to the last N decoder upscales
    # (and their residual blocks), the high-resolution stages where plain 3x3 convs would dominate the budget.
    separable_encoder: bool = False
    separable_decoder: int = 0
    # ESPCN-style output: the last x2 is the output conv itself (conv to 4x the face/mask channels -> PixelShuffle),
    # so no feature map ever exists at full resolution. At 128 px that removes the costliest tensors of the graph.
    subpixel_head: bool = False
    separable_res: bool = (
        False  # residual blocks depthwise-separable at every stage (plain 3x3 at 32 px costs ~0.3 GFLOP)
    )
    # A learned full-resolution detail texture per decoder (3 x size x size, added to the face's pre-sigmoid
    # output): the identity's aligned face is nearly the same image in every frame, so its static fine detail
    # (glasses, wrinkles, hair) can live in one bias image at no FLOP cost, and the decoder draws only what moves.
    # Training initialises it from the faceset (training.train.init_textures). Opt-in (`swapcam train --texture`):
    # measured sharper on the identities' own faces, but on a face unlike the training faces the static detail does
    # not follow the drawn face (README "Detail texture, measured").
    texture: bool = False

    def __post_init__(self) -> None:
        down = 2 ** len(self.enc_channels)
        if self.size % down:
            raise SwapcamError(f"preset {self.name!r}: size {self.size} is not divisible by {down}")
        # encoder upscales once, then one decoder upscale per entry (+ the sub-pixel head) must bring us back to `size`
        if 2 * 2 ** (len(self.dec_channels) + int(self.subpixel_head)) != down:
            raise SwapcamError(
                f"preset {self.name!r}: {len(self.dec_channels)} decoder upscales cannot undo "
                f"{len(self.enc_channels)} downscales"
            )
        if not 0 <= self.separable_decoder <= len(self.dec_channels):
            raise SwapcamError(
                f"preset {self.name!r}: separable_decoder={self.separable_decoder}, "
                f"expected 0..{len(self.dec_channels)}"
            )

    @property
    def bottleneck_side(self) -> int:
        return self.size // 2 ** len(self.enc_channels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        data = dict(data)
        for key in ("enc_channels", "dec_channels"):
            data[key] = tuple(data[key])
        return cls(**data)


PRESETS: dict[str, ModelConfig] = {
    # 64 px, ~0.27 GFLOP per face (encoder + one decoder, 1 MAC = 2 FLOP): trains on a 2-core CPU; ~8 MB as ONNX.
    "tiny": ModelConfig("tiny", 64, (32, 64, 128, 256), latent=128, bottleneck_channels=128, dec_channels=(96, 48, 16)),
    # 128 px: a laptop GPU or a patient CPU.
    "lite": ModelConfig(
        "lite", 128, (48, 96, 192, 384), latent=256, bottleneck_channels=384, dec_channels=(192, 96, 48), res_blocks=1
    ),
    # 256 px: for GPUs.
    "hd": ModelConfig(
        "hd",
        256,
        (64, 128, 256, 512, 512),
        latent=512,
        bottleneck_channels=512,
        dec_channels=(512, 256, 128, 64),
        res_blocks=1,
    ),
    # 128 px for CPU real time (0.65 GFLOP per face, ~10 ms in onnxruntime on 2 cores): separable encoder stages,
    # one plain sub-pixel upscale at 16 px, separable upscale + residual blocks at 32-64 px, and an ESPCN head that
    # draws the 128 px face straight from 64 px features. The shipped demo model's preset.
    "rt128": ModelConfig(
        "rt128",
        128,
        (32, 64, 128, 256),
        latent=192,
        bottleneck_channels=192,
        dec_channels=(128, 64),
        res_blocks=1,
        separable_encoder=True,
        separable_decoder=1,
        subpixel_head=True,
        separable_res=True,
    ),
}


def get_preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise SwapcamError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def conv(cin: int, cout: int, kernel: int, stride: int = 1, separable: bool = False) -> nn.Module:
    """A k x k conv, or its depthwise-separable form (per-channel k x k, then a 1x1 mix) when ``separable``."""
    if not separable:
        return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cin, kernel, stride=stride, padding=kernel // 2, groups=cin), nn.Conv2d(cin, cout, 1)
    )


class Upscale(nn.Module):
    """Sub-pixel upscale x2: 3x3 conv to 4x channels, then PixelShuffle (depth-to-space in ONNX)."""

    def __init__(self, cin: int, cout: int, separable: bool = False) -> None:
        super().__init__()
        self.conv = conv(cin, cout * 4, 3, separable=separable)
        self.act = nn.LeakyReLU(0.1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.act(self.conv(x)))


class ResBlock(nn.Module):
    def __init__(self, channels: int, separable: bool = False) -> None:
        super().__init__()
        self.conv1 = conv(channels, channels, 3, separable=separable)
        self.conv2 = conv(channels, channels, 3, separable=separable)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))


class Encoder(nn.Module):
    """Strided 5x5 convs -> flatten -> dense latent -> dense -> reshape -> one sub-pixel upscale."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i, cout in enumerate(config.enc_channels):
            layers += [conv(cin, cout, 5, stride=2, separable=config.separable_encoder and i > 0), nn.LeakyReLU(0.1)]
            cin = cout
        self.convs = nn.Sequential(*layers)
        side = config.bottleneck_side
        self.side, self.bc = side, config.bottleneck_channels
        self.to_latent = nn.Linear(cin * side * side, config.latent)
        self.from_latent = nn.Linear(config.latent, config.bottleneck_channels * side * side)
        self.upscale = Upscale(config.bottleneck_channels, config.bottleneck_channels // 2)
        self.out_channels = config.bottleneck_channels // 2

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The dense latent code (N x latent) of a batch of faces."""
        return self.to_latent(torch.flatten(self.convs(x), 1))

    def expand(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes -> the features both decoders start from."""
        return self.upscale(self.from_latent(z).reshape(-1, self.bc, self.side, self.side))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.encode(x))


class Decoder(nn.Module):
    """Sub-pixel upscale blocks (+ optional residual blocks) -> RGB face and a learned 1-channel mask."""

    def __init__(self, config: ModelConfig, in_channels: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        cin = in_channels
        first_separable = len(config.dec_channels) - config.separable_decoder
        for i, cout in enumerate(config.dec_channels):
            separable = i >= first_separable
            blocks.append(Upscale(cin, cout, separable))
            blocks += [ResBlock(cout, separable or config.separable_res) for _ in range(config.res_blocks)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        scale = 2 if config.subpixel_head else 1
        self.to_face = nn.Conv2d(cin, 3 * scale * scale, 3, padding=1)
        self.to_mask = nn.Conv2d(cin, scale * scale, 3, padding=1)
        self.head_shuffle = nn.PixelShuffle(scale) if scale > 1 else nn.Identity()
        self.texture = nn.Parameter(torch.zeros(1, 3, config.size, config.size)) if config.texture else None

    def logits(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The face's and the mask's pre-sigmoid outputs (the face's without the texture)."""
        x = self.blocks(z)
        return self.head_shuffle(self.to_face(x)), self.head_shuffle(self.to_mask(x))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        face, mask = self.logits(z)
        if self.texture is not None:
            face = face + self.texture
        return torch.sigmoid(face), torch.sigmoid(mask)


class SwapAutoencoder(nn.Module):
    """Shared encoder + decoder A + decoder B. ``forward(x, "a"|"b")`` decodes with that identity's decoder."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder_a = Decoder(config, self.encoder.out_channels)
        self.decoder_b = Decoder(config, self.encoder.out_channels)

    def decoder(self, identity: str) -> Decoder:
        if identity not in ("a", "b"):
            raise ValueError(f"identity={identity!r}, expected 'a' or 'b'")
        return self.decoder_a if identity == "a" else self.decoder_b

    def forward(self, x: torch.Tensor, identity: str = "a") -> tuple[torch.Tensor, torch.Tensor]:
        check_faces(x, self.config.size)
        return self.decoder(identity)(self.encoder(x))


class SwapDirection(nn.Module):
    """Encoder + one decoder: the graph that gets exported (A->B is encoder + decoder B)."""

    def __init__(self, model: SwapAutoencoder, target: str) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.decoder = model.decoder(target)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(self.encoder(x))


class RecentredDirection(SwapDirection):
    """Encoder + one decoder with identity re-centring: ``(faces, latent_shift) -> (face, mask, latent)``.

    ``latent`` is each face's own code; the decoder draws from ``latent + latent_shift``. The live loop feeds
    shift = strength x (target identity's mean code - this camera face's running mean code), which moves the
    camera person's code into the region the target's decoder was trained on while keeping how this frame differs
    from that person's average (pose, expression). Zero shift is the plain swap.
    """

    def forward(self, x: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # type: ignore[override]
        z = self.encoder.encode(x)
        face, mask = self.decoder(self.encoder.expand(z + shift))
        return face, mask, z


@torch.no_grad()
def identity_codes(
    model: SwapAutoencoder, faces: dict, means: dict | None = None, batch: int = 32
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Where each identity sits in the shared code space: ``faces`` maps a key ('a', 'b') to its faces (N x 3 x S x
    S float RGB, numpy or torch). Returns (key -> mean latent code, ``model.config.latent`` floats, 5 decimals as
    checkpoints store them; key -> spread, the RMS distance of the faces' codes from that mean). ``means`` given
    (key -> code): the spreads are measured around those instead (a checkpoint's stored means).

    Identity re-centring moves a camera face's code between the means; the spread says how far from its mean a
    code can lie and still be that identity (models.contract ModelInfo.latent_spread)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out_means, spreads = {}, {}
    with torch.no_grad():
        for key, x in faces.items():
            x = torch.as_tensor(x, device=device)
            codes = torch.cat([model.encoder.encode(x[i : i + batch].float()) for i in range(0, len(x), batch)])
            mean = codes.mean(0) if means is None else torch.as_tensor(means[key], device=device, dtype=codes.dtype)
            out_means[key] = [round(float(v), 5) for v in mean.cpu()]
            spreads[key] = round(float(((codes - mean) ** 2).sum(1).mean().sqrt()), 4)
    model.train(was_training)
    return out_means, spreads


def check_faces(x: torch.Tensor, size: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"faces is a {type(x).__name__}, expected a torch.Tensor N x 3 x {size} x {size}")
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != size or x.shape[3] != size:
        raise ValueError(f"faces has shape {tuple(x.shape)}, expected N x 3 x {size} x {size}")


def build_model(preset: str | ModelConfig) -> SwapAutoencoder:
    config = get_preset(preset) if isinstance(preset, str) else preset
    return SwapAutoencoder(config)


def forward_flops(config: ModelConfig) -> float:
    """FLOPs (multiply-add = 2) of encoder + one decoder for one face, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    swapper = SwapDirection(SwapAutoencoder(config), "b").eval()
    x = torch.zeros(1, 3, config.size, config.size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        swapper(x)
    return float(counter.get_total_flops())


__all__ = [
    "ModelConfig",
    "PRESETS",
    "get_preset",
    "Encoder",
    "Decoder",
    "SwapAutoencoder",
    "SwapDirection",
    "build_model",
    "forward_flops",
]
