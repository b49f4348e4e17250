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


class ResBlock(nn.Module):
    """conv → ReLU → conv, added to the input; no batch norm (Lim et al. 2017)."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1, self.conv2 = conv3(features, features), conv3(features, features)

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

    Input and output are images in [-1, 1]; the output is not clamped (the residual is free).
    """

    def __init__(self, scale: int = 4, features: int = 64, n_blocks: int = 16):
        super().__init__()
        self.scale = scale
        self.head = conv3(3, features)
        self.blocks = nn.Sequential(*[ResBlock(features) for _ in range(n_blocks)])
        self.upsample = nn.Sequential(*[PixelShuffleUp(features) for _ in range(up_stages(scale))])
        self.tail = conv3(features, features)
        self.to_rgb = conv3(features, 3)
        self.register_buffer("bicubic_taps", bicubic_phase_filters(scale), persistent=False)  # for export

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(F.leaky_relu(self.head(x), 0.1))
        h = F.leaky_relu(self.tail(self.upsample(h)), 0.1)
        # the same numbers (float rounding apart) from convolutions, which torch.export traces for any input size
        if torch.compiler.is_exporting():
            return self.to_rgb(h) + bicubic_upsample_conv(x, self.bicubic_taps)
        return self.to_rgb(h) + bicubic_upsample(x, self.scale)


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
    conv lReLU, conv. 64 features, growth 32: ~16.7M parameters at ×4."""

    def __init__(self, scale: int = 4, features: int = 64, n_blocks: int = 23, growth: int = 32):
        super().__init__()
        self.scale = scale
        self.head = conv3(3, features)
        self.blocks = nn.Sequential(*[RRDB(features, growth) for _ in range(n_blocks)])
        self.trunk = conv3(features, features)
        self.up_convs = nn.ModuleList(conv3(features, features) for _ in range(up_stages(scale)))
        self.tail = conv3(features, features)
        self.to_rgb = conv3(features, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        h = h + self.trunk(self.blocks(h))
        for conv in self.up_convs:
            h = F.leaky_relu(conv(F.interpolate(h, scale_factor=2, mode="nearest")), 0.2)
        return self.to_rgb(F.leaky_relu(self.tail(h), 0.2))


class SRCritic(nn.Module):
    """SAN Table 8 critic on hr_size² HR crops: 8 convs 3×3 (64 s1, 64 s2, 128 s1, 128 s2, 256 s1,
    256 s2, 512 s1, 512 s2), lReLU 0.1, dense 100, lReLU 0.1, dense 1.

    The paper's text (§4.3) speaks of 10 conv layers and 2 dense ones; its Table 8 lists the 8 convs
    above, which is what is built here. Plain convs with zero padding: the trainer applies --norm
    (SAN switches them to circular padding).
    """

    PLAN = ((64, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2))

    def __init__(self, hr_size: int = 128, width: float = 1.0):
        super().__init__()
        if hr_size % 16:
            raise ValueError(f"hr_size must be a multiple of 16, got {hr_size}")
        layers, c_in = [], 3
        for base, stride in self.PLAN:
            c_out = max(8, round(base * width))
            layers += [conv3(c_in, c_out, stride), nn.LeakyReLU(0.1)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Linear(c_in * (hr_size // 16) ** 2, 100), nn.LeakyReLU(0.1),
                                   nn.Linear(100, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.features(x).flatten(1)).squeeze(1)


class VGGStyleCritic(nn.Module):
    """ESRGAN's critic (BasicSR's VGGStyleDiscriminator, 128 px): conv3 64 s1, conv4 64 s2, then four stages of
    (conv3 s1, conv4 s2) with 128, 256, 512, 512 channels, batch norm after every conv but the first, lReLU 0.2,
    dense 100, lReLU 0.2, dense 1. 10 convs; 14.5M parameters at 128 px.

    Five stride-2 convs take a 128 px crop to 4×4; other crop sides (multiples of 32) keep the layer plan and
    size the first dense layer to 512·(side/32)². Plain convs with zero padding: the trainer applies --norm.
    """

    PLAN = ((64, 3, 1), (64, 4, 2), (128, 3, 1), (128, 4, 2), (256, 3, 1), (256, 4, 2),
            (512, 3, 1), (512, 4, 2), (512, 3, 1), (512, 4, 2))  # (channels, kernel, stride)

    def __init__(self, hr_size: int = 128):
        super().__init__()
        if hr_size % 32:
            raise ValueError(f"hr_size must be a multiple of 32, got {hr_size}")
        layers, c_in = [], 3
        for i, (c_out, kernel, stride) in enumerate(self.PLAN):
            first = i == 0  # the first conv has a bias and no batch norm
            layers.append(nn.Conv2d(c_in, c_out, kernel, stride, 1, bias=first))
            if not first:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Linear(c_in * (hr_size // 32) ** 2, 100), nn.LeakyReLU(0.2),
                                   nn.Linear(100, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.features(x).flatten(1)).squeeze(1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
