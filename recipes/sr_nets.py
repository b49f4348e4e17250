"""Networks of the `sr` recipe: SAN Table 8's SRResNet-type generator and critic, ESRGAN's RRDBNet and its
VGG-style 128 px critic."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from gancli.data.sr import bicubic_phase_filters, bicubic_upsample, bicubic_upsample_conv


def conv3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1)


def to_unit(x: torch.Tensor, unit: bool) -> torch.Tensor:
    """A [-1, 1] image as the network reads it: unchanged, or in [0, 1] (unit: ESRGAN's, BasicSR's, SANGAN's)."""
    return (x + 1) / 2 if unit else x


def from_unit(y: torch.Tensor, unit: bool) -> torch.Tensor:
    return y * 2 - 1 if unit else y


class ResBlock(nn.Module):
    """conv → ReLU → conv, added to the input; no batch norm (Lim et al. 2017)."""

    def __init__(self, features: int, bias: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, 1, 1, bias=bias)
        self.conv2 = nn.Conv2d(features, features, 3, 1, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class PixelShuffleUp(nn.Module):
    """conv to 4·C channels → pixel shuffle ×2 → lReLU 0.1 (SAN Table 8: 'conv 256, PS, lReLU')."""

    def __init__(self, features: int):
        super().__init__()
        self.conv = conv3(features, 4 * features)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.shuffle(self.conv(x)), 0.1)


def up_stages(scale: int) -> int:
    if scale not in (2, 4):
        raise ValueError(f"scale must be 2 or 4, got {scale}")
    return scale.bit_length() - 1


class SRResNetGenerator(nn.Module):
    """SAN Table 8 generator: conv 64 lReLU, 16 ResBlocks, log2(scale) × (conv 256, PS, lReLU),
    conv 64 lReLU, conv 3, plus the bicubic-upsampled input (MATLAB kernel). ~1.52M parameters at ×4.

    `sangan=True` is the SAN authors' own `g_srgan` (kligvasser/SANGAN generators.py), which their published
    models are: 5×5 first and last convs, bias-free ResBlocks, and the bilinearly upsampled input.
    Input and output are images in [-1, 1] (`unit`: the network itself works on [0, 1], as SANGAN's); the output
    is not clamped (the residual is free).
    """

    def __init__(self, scale: int = 4, features: int = 64, n_blocks: int = 16, sangan: bool = False,
                 unit: bool = False):
        super().__init__()
        self.scale, self.sangan, self.unit = scale, sangan, unit
        ends = 5 if sangan else 3
        self.head = nn.Conv2d(3, features, ends, 1, ends // 2)
        self.blocks = nn.Sequential(*[ResBlock(features, bias=not sangan) for _ in range(n_blocks)])
        self.upsample = nn.Sequential(*[PixelShuffleUp(features) for _ in range(up_stages(scale))])
        self.tail = conv3(features, features)
        self.to_rgb = nn.Conv2d(features, 3, ends, 1, ends // 2)
        self.register_buffer("bicubic_taps", bicubic_phase_filters(scale), persistent=False)  # for export

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_unit(x, self.unit)
        h = self.blocks(F.leaky_relu(self.head(x), 0.1))
        h = F.leaky_relu(self.tail(self.upsample(h)), 0.1)
        if self.sangan:
            skip = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        elif torch.compiler.is_exporting():  # the same numbers (float rounding apart), traceable for any input size
            skip = bicubic_upsample_conv(x, self.bicubic_taps)
        else:
            skip = bicubic_upsample(x, self.scale)
        return from_unit(self.to_rgb(h) + skip, self.unit)


class DenseBlock(nn.Module):
    """ESRGAN residual dense block: 5 convs, each seeing all earlier maps (growth 32), lReLU 0.2, ×0.2 residual."""

    def __init__(self, features: int = 64, growth: int = 32):
        super().__init__()
        self.convs = nn.ModuleList(conv3(features + i * growth, growth) for i in range(4))
        self.fuse = conv3(features + 4 * growth, features)
        for conv in [*self.convs, self.fuse]:  # ESRGAN: Kaiming normal init (fan_in, ReLU gain) scaled by 0.1
            fan_in = conv.weight[0].numel()
            nn.init.normal_(conv.weight, std=0.1 * math.sqrt(2.0 / fan_in))
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = [x]
        for conv in self.convs:
            maps.append(F.leaky_relu(conv(torch.cat(maps, 1)), 0.2))
        return x + 0.2 * self.fuse(torch.cat(maps, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, ×0.2 residual (ESRGAN)."""

    def __init__(self, features: int = 64, growth: int = 32):
        super().__init__()
        self.dense = nn.Sequential(*[DenseBlock(features, growth) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.dense(x)


class RRDBNet(nn.Module):
    """ESRGAN generator: conv, 23 RRDBs, conv + long skip, log2(scale) × (nearest ×2, conv, lReLU),
    conv lReLU, conv. 64 features, growth 32: ~16.7M parameters at ×4.

    `unshuffle` 2 is BasicSR's ×2 RRDBNet (Real-ESRGAN x2plus): the input is pixel-unshuffled by 2 (12 channels,
    reflect-padded to even sides first) and the network upsamples ×4. `unit`: the network works on [0, 1] images
    (ESRGAN's and BasicSR's code), its input and output here staying [-1, 1].
    """

    def __init__(self, scale: int = 4, features: int = 64, n_blocks: int = 23, growth: int = 32, unshuffle: int = 1,
                 unit: bool = False):
        super().__init__()
        self.scale, self.unshuffle, self.unit = scale, unshuffle, unit
        self.head = conv3(3 * unshuffle**2, features)
        self.blocks = nn.Sequential(*[RRDB(features, growth) for _ in range(n_blocks)])
        self.trunk = conv3(features, features)
        self.up_convs = nn.ModuleList(conv3(features, features) for _ in range(up_stages(scale * unshuffle)))
        self.tail = conv3(features, features)
        self.to_rgb = conv3(features, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_unit(x, self.unit)
        h, w = x.shape[-2:]
        if self.unshuffle > 1:
            x = F.pad(x, (0, -w % self.unshuffle, 0, -h % self.unshuffle), mode="reflect")
            x = F.pixel_unshuffle(x, self.unshuffle)
        f = self.head(x)
        f = f + self.trunk(self.blocks(f))
        for conv in self.up_convs:
            f = F.leaky_relu(conv(F.interpolate(f, scale_factor=2, mode="nearest")), 0.2)
        out = self.to_rgb(F.leaky_relu(self.tail(f), 0.2))
        return from_unit(out[..., : h * self.scale, : w * self.scale], self.unit)


class DenseHeadCritic(nn.Module):
    """A conv feature stack, then dense 100, leaky ReLU, dense 1 on the flattened features (one logit per image)."""

    def __init__(self, layers: list[nn.Module], channels: int, side: int, slope: float):
        super().__init__()
        self.features = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Linear(channels * side ** 2, 100), nn.LeakyReLU(slope), nn.Linear(100, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.features(x).flatten(1)).squeeze(1)


class SRCritic(DenseHeadCritic):
    """SAN Table 8 critic on hr_size² HR crops: 8 convs 3×3 (64 s1, 64 s2, 128 s1, 128 s2, 256 s1,
    256 s2, 512 s1, 512 s2), lReLU 0.1, dense 100, lReLU 0.1, dense 1.

    The paper's text (§4.3) speaks of 10 conv layers and 2 dense ones; its Table 8 lists the 8 convs
    above, which is what is built here. Plain convs with zero padding: the trainer applies --norm
    (SAN switches them to circular padding).
    """

    PLAN = ((64, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2))

    def __init__(self, hr_size: int = 128, width: float = 1.0):
        if hr_size % 16:
            raise ValueError(f"hr_size must be a multiple of 16, got {hr_size}")
        layers, c_in = [], 3
        for base, stride in self.PLAN:
            c_out = max(8, round(base * width))
            layers += [conv3(c_in, c_out, stride), nn.LeakyReLU(0.1)]
            c_in = c_out
        super().__init__(layers, c_in, hr_size // 16, 0.1)


class VGGStyleCritic(DenseHeadCritic):
    """ESRGAN's critic (BasicSR's VGGStyleDiscriminator, 128 px): conv3 64 s1, conv4 64 s2, then four stages of
    (conv3 s1, conv4 s2) with 128, 256, 512, 512 channels, batch norm after every conv but the first, lReLU 0.2,
    dense 100, lReLU 0.2, dense 1. 10 convs; 14.5M parameters at 128 px.

    Five stride-2 convs take a 128 px crop to 4×4; other crop sides (multiples of 32 from 64) keep the layer plan and
    size the first dense layer to 512·(side/32)². Plain convs with zero padding: the trainer applies --norm.
    """

    PLAN = ((64, 3, 1), (64, 4, 2), (128, 3, 1), (128, 4, 2), (256, 3, 1), (256, 4, 2),
            (512, 3, 1), (512, 4, 2), (512, 3, 1), (512, 4, 2))  # (channels, kernel, stride)

    @classmethod
    def smallest_side(cls) -> int:
        """The smallest crop side it takes: the one its stride-2 convs bring to 2×2. At 1×1 the batch norm after
        the last conv would see a single value per channel for a single image, which training mode refuses."""
        return 2 * math.prod(stride for _, _, stride in cls.PLAN)

    def __init__(self, hr_size: int = 128):
        if hr_size % 32 or hr_size < self.smallest_side():
            raise ValueError(f"hr_size must be a multiple of 32 of at least {self.smallest_side()}, got {hr_size}")
        layers, c_in = [], 3
        for i, (c_out, kernel, stride) in enumerate(self.PLAN):
            first = i == 0  # the first conv has a bias and no batch norm
            layers.append(nn.Conv2d(c_in, c_out, kernel, stride, 1, bias=first))
            if not first:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        super().__init__(layers, c_in, hr_size // 32, 0.2)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
