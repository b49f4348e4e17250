"""The networks of the `uncond` recipe, each after its paper's table.

- SNDCGAN (SAN Table 4 / Miyato et al. standard CNN).
- ResNet (SAN Tables 5 and 6, Miyato et al.'s blocks): CIFAR at 32 px, STL layout at other sizes (48 px).
- ResNet19 (large-scale study Tables 5-6 at 128 px) and its ResNet CIFAR (Table 7) at 32 px.
- AdaGAN (Nguyen & Ray 2018): the resize-convolution baseline generator with AdaConvBlocks.

Every generator takes z and a `gen_norm`: bn, sbn (self-modulated BN, its γ, β an MLP of z) or none.
Critics are plain; the core applies --norm to them (NormSlots mark where bn / ln go).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gancli.nn.adaconv import AdaConvBlock
from gancli.nn.critic_layers import NormSlot
from gancli.nn.modulation import SelfModulatedBatchNorm

GEN_NORMS = ("bn", "sbn", "none")


def ch(base: int, width: float) -> int:
    return max(8, round(base * width))


class PlainNorm(nn.Module):
    """A generator norm that ignores z: BatchNorm2d (bn) or nothing (none)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return self.layer(x)


def gen_norm(kind: str, channels: int, z_dim: int, hidden: int) -> nn.Module:
    """A generator normalization layer called as norm(x, z)."""
    if kind == "sbn":
        return SelfModulatedBatchNorm(channels, z_dim, hidden)
    return PlainNorm(nn.BatchNorm2d(channels) if kind == "bn" else nn.Identity())


def zero_unpool(x: Tensor) -> Tensor:
    """The study's upscale (compare_gan `unpool`): each value at the top-left of a 2×2 block, zeros elsewhere."""
    out = x.new_zeros(*x.shape[:2], 2 * x.shape[2], 2 * x.shape[3])
    out[..., ::2, ::2] = x
    return out


def nearest_up(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def bilinear_up(x: Tensor) -> Tensor:
    """×2 bilinear, align_corners False (mimicry's SNGAN generators upsample so, after torchvision)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


UPSAMPLERS = {"nearest": nearest_up, "bilinear": bilinear_up}


# ---- SNDCGAN (SAN Table 4) ---------------------------------------------------------------------------------
class SNDCGANGenerator(nn.Module):
    """z → dense Mg×Mg×512 → three stride-2 deconvs with BN-ReLU (256, 128, 64) → conv 3, tanh."""

    def __init__(self, resolution: int = 32, z_dim: int = 128, width: float = 1.0, kernel: int = 3,
                 norm: str = "bn", sbn_hidden: int = 32):
        super().__init__()
        self.mg, self.c0 = resolution // 8, ch(512, width)
        self.dense = nn.Linear(z_dim, self.mg * self.mg * self.c0)
        self.norm0 = gen_norm(norm, self.c0, z_dim, sbn_hidden)
        self.deconvs, self.norms, c_in = nn.ModuleList(), nn.ModuleList(), self.c0
        for base in (256, 128, 64):
            c_out = ch(base, width)
            self.deconvs.append(self._deconv(c_in, c_out, kernel))
            self.norms.append(gen_norm(norm, c_out, z_dim, sbn_hidden))
            c_in = c_out
        self.to_rgb = nn.Conv2d(c_in, 3, 3, 1, 1)

    @staticmethod
    def _deconv(c_in: int, c_out: int, kernel: int) -> nn.ConvTranspose2d:
        if kernel == 3:  # padding 1 + output_padding 1 doubles the size exactly
            return nn.ConvTranspose2d(c_in, c_out, 3, 2, padding=1, output_padding=1)
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.dense(z).view(z.shape[0], self.c0, self.mg, self.mg)
        h = torch.relu(self.norm0(h, z))
        for deconv, norm in zip(self.deconvs, self.norms):
            h = torch.relu(norm(deconv(h), z))
        return torch.tanh(self.to_rgb(h))


class SNDCGANCritic(nn.Module):
    """Seven convs (64 s1, 64 s2, 128 s1, 128 s2, 256 s1, 256 s2, 512 s1), lReLU 0.1, dense → 1.

    The stride-2 convs are 3×3 in SAN Table 4 and 4×4 in Miyato et al.'s standard CNN (`kernel`).
    """

    PLAN = ((64, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1))

    def __init__(self, resolution: int = 32, width: float = 1.0, kernel: int = 3):
        super().__init__()
        layers, c_in = [], 3
        for base, stride in self.PLAN:
            c_out = ch(base, width)
            size = kernel if stride == 2 else 3
            layers += [nn.Conv2d(c_in, c_out, size, stride, 1), nn.LeakyReLU(0.1)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.dense = nn.Linear(c_in * (resolution // 8) ** 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.dense(self.features(x).flatten(1)).squeeze(1)


# ---- ResNet (SAN Tables 5-6; Miyato et al.'s blocks) ----------------------------------------------------------
class UpBlock(nn.Module):
    """norm-ReLU-up-conv3-norm-ReLU-conv3, plus up-conv1 shortcut (Miyato et al.'s generator ResBlock)."""

    def __init__(self, c_in: int, c_out: int, z_dim: int, norm: str, sbn_hidden: int, upsample: str = "nearest"):
        super().__init__()
        self.norm1, self.norm2 = gen_norm(norm, c_in, z_dim, sbn_hidden), gen_norm(norm, c_out, z_dim, sbn_hidden)
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)
        self.up = UPSAMPLERS[upsample]

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        h = self.conv1(self.up(torch.relu(self.norm1(x, z))))
        h = self.conv2(torch.relu(self.norm2(h, z)))
        return h + self.shortcut(self.up(x))


class DownBlock(nn.Module):
    """ReLU-conv3-ReLU-conv3(-avgpool), plus conv1(-avgpool) shortcut when shape changes (Miyato et al.).

    `first` is Miyato's optimized first block: no ReLU on the image, shortcut pooled before its conv.
    Hidden channels are c_out: the SAN paper's STL-10 critic counts (19.5M with the last block, 4.8M without)
    hold only so. `mimicry` is mimicry's DBlock: hidden channels c_in (the first conv keeps the width), and the
    skip reads ReLU(x), since its in-place ReLU rewrites x before its shortcut reads it.
    """

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool = False, mimicry: bool = False):
        super().__init__()
        self.down, self.first, self.relu_skip = down, first, mimicry and not first
        hidden = c_in if self.relu_skip else c_out
        self.conv1, self.conv2 = nn.Conv2d(c_in, hidden, 3, 1, 1), nn.Conv2d(hidden, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if (c_in != c_out or down) else None

    def forward(self, x: Tensor) -> Tensor:
        if self.relu_skip:
            x = torch.relu(x)
        h = self.conv1(x if self.first or self.relu_skip else torch.relu(x))
        h = self.conv2(torch.relu(h))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.shortcut is None:
            return h + x
        if self.first:
            return h + self.shortcut(F.avg_pool2d(x, 2))
        s = self.shortcut(x)
        return h + (F.avg_pool2d(s, 2) if self.down else s)


class ResNetGenerator(nn.Module):
    """SAN Table 5 at 32 px (dense 4×4×256, three up-blocks of 256) or Table 6 (dense Mg×Mg×512; 256, 128, 64)."""

    def __init__(self, resolution: int = 32, z_dim: int = 128, width: float = 1.0, norm: str = "bn",
                 sbn_hidden: int = 32, upsample: str = "nearest"):
        super().__init__()
        if resolution == 32:
            self.mg, plan = 4, [256, 256, 256, 256]
        else:
            self.mg, plan = resolution // 8, [512, 256, 128, 64]
        plan = [ch(c, width) for c in plan]
        self.c0 = plan[0]
        self.dense = nn.Linear(z_dim, self.mg * self.mg * self.c0)
        self.blocks = nn.ModuleList(UpBlock(a, b, z_dim, norm, sbn_hidden, upsample)
                                    for a, b in itertools.pairwise(plan))
        self.norm = gen_norm(norm, plan[-1], z_dim, sbn_hidden)
        self.to_rgb = nn.Conv2d(plan[-1], 3, 3, 1, 1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.dense(z).view(z.shape[0], self.c0, self.mg, self.mg)
        for block in self.blocks:
            h = block(h, z)
        return torch.tanh(self.to_rgb(torch.relu(self.norm(h, z))))


class ResNetCritic(nn.Module):
    """SAN Table 5 (two down-blocks + two blocks of 128) at 32 px; Table 6 (down 64, 128, 256, 512) otherwise.

    `full_stl` adds Miyato et al.'s last block (1024, no downsampling) that the SAN paper removes.
    ReLU, global pooling (`pool`: avg as the SAN tables, sum as Miyato et al.), dense → 1.
    """

    def __init__(self, resolution: int = 32, width: float = 1.0, pool: str = "avg", full_stl: bool = False,
                 block: str = "san"):
        super().__init__()
        if resolution == 32:
            plan = [(128, True), (128, True), (128, False), (128, False)]
        else:
            plan = [(64, True), (128, True), (256, True), (512, True)] + ([(1024, False)] if full_stl else [])
        blocks, c_in = [], 3
        for i, (base, down) in enumerate(plan):
            blocks.append(DownBlock(c_in, ch(base, width), down, first=i == 0, mimicry=block == "mimicry"))
            c_in = ch(base, width)
        self.blocks, self.pool = nn.Sequential(*blocks), pool
        self.dense = nn.Linear(c_in, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.blocks(x))
        h = h.sum(dim=(2, 3)) if self.pool == "sum" else h.mean(dim=(2, 3))
        return self.dense(h).squeeze(1)


# ---- ResNet19 and the study's ResNet CIFAR (large-scale study, Tables 5-7) -----------------------------------
class StudyBlock(nn.Module):
    """The study's ResBlock (Table 6): norm-ReLU-[up]-conv3-norm-ReLU-conv3-[avgpool] + [up]-conv3-[avgpool].

    Hidden channels c_out; the shortcut is always a 3×3 conv. In the critic the norms are NormSlots.
    """

    def __init__(self, c_in: int, c_out: int, scale: str, norm1: nn.Module, norm2: nn.Module):
        super().__init__()
        self.scale, self.norm1, self.norm2 = scale, norm1, norm2
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 3, 1, 1)

    def forward(self, x: Tensor, *z: Tensor) -> Tensor:
        up = zero_unpool if self.scale == "up" else (lambda t: t)  # G: upscale before the conv
        down = (lambda t: F.avg_pool2d(t, 2)) if self.scale == "down" else (lambda t: t)  # D: pool after it
        h = self.conv1(up(torch.relu(self.norm1(x, *z))))
        h = down(self.conv2(torch.relu(self.norm2(h, *z))))
        return h + down(self.shortcut(up(x)))


class Resnet19Generator(nn.Module):
    """Study Table 5a at 128 px (dense 4×4×512; up-blocks 512, 256, 256, 128, 64) or Table 7 at 32 px (256 ×3).

    The study's G ends in a sigmoid for images in [0, 1]; 2σ(h) − 1 is the same image in this pipeline's [-1, 1].
    """

    def __init__(self, resolution: int = 128, z_dim: int = 128, width: float = 1.0, norm: str = "bn",
                 sbn_hidden: int = 32):
        super().__init__()
        plan = [256, 256, 256, 256] if resolution == 32 else [512, 512, 256, 256, 128, 64]
        plan = [ch(c, width) for c in plan]
        self.c0 = plan[0]
        self.dense = nn.Linear(z_dim, 16 * self.c0)
        self.blocks = nn.ModuleList(
            StudyBlock(a, b, "up", gen_norm(norm, a, z_dim, sbn_hidden), gen_norm(norm, b, z_dim, sbn_hidden))
            for a, b in itertools.pairwise(plan))
        self.norm = gen_norm(norm, plan[-1], z_dim, sbn_hidden)
        self.to_rgb = nn.Conv2d(plan[-1], 3, 3, 1, 1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.dense(z).view(z.shape[0], self.c0, 4, 4)
        for block in self.blocks:
            h = block(h, z)
        return 2 * torch.sigmoid(self.to_rgb(torch.relu(self.norm(h, z)))) - 1


class Resnet19Critic(nn.Module):
    """Study Table 5b at 128 px (down-blocks 64, 128, 256, 256, 512, 512) or Table 7 at 32 px (128 D, D, -, -).

    ReLU, mean pool, dense → 1. Its images are mapped to [0, 1] first, the range the study's critic sees
    (its first block's ReLU then leaves the image unchanged, as there).
    """

    def __init__(self, resolution: int = 128, width: float = 1.0):
        super().__init__()
        if resolution == 32:
            plan = [(128, "down"), (128, "down"), (128, "none"), (128, "none")]
        else:
            plan = [(64, "down"), (128, "down"), (256, "down"), (256, "down"), (512, "down"), (512, "down")]
        blocks, c_in = [], 3
        for base, scale in plan:
            c_out = ch(base, width)
            blocks.append(StudyBlock(c_in, c_out, scale, NormSlot(c_in), NormSlot(c_out)))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.dense = nn.Linear(c_in, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.blocks((x + 1) / 2))
        return self.dense(h.mean(dim=(2, 3))).squeeze(1)


# ---- AdaGAN (Nguyen & Ray 2018) ------------------------------------------------------------------------------
class AdaGANGenerator(nn.Module):
    """The resize-convolution baseline: dense Mg×Mg×C → 3 × (nearest ×2, conv3 → C/2^k, BN, ReLU) → conv3 3, tanh.

    The first `adaptive` convolutions (1, 2, 3: AdaGAN-1/2/3; 4: all, the output conv too) are AdaConvBlocks
    with k_filter 3 and the given k_adaptive. Weights start from a truncated normal of std 0.02, biases 0.
    """

    def __init__(self, resolution: int = 32, z_dim: int = 128, channels: int = 128, adaptive: int = 4,
                 k_adaptive: int = 3, norm: str = "bn", sbn_hidden: int = 32):
        super().__init__()
        self.mg, self.c0 = resolution // 8, channels
        self.dense = nn.Linear(z_dim, self.mg * self.mg * channels)
        self.norm0 = gen_norm(norm, channels, z_dim, sbn_hidden)
        widths = [channels, channels // 2, channels // 4, channels // 8, 3]
        self.convs = nn.ModuleList(
            AdaConvBlock(a, b, 3, k_adaptive) if i < adaptive else nn.Conv2d(a, b, 3, 1, 1)
            for i, (a, b) in enumerate(itertools.pairwise(widths)))
        self.norms = nn.ModuleList(gen_norm(norm, c, z_dim, sbn_hidden) for c in widths[1:4])
        for module in [self.dense, *self.convs.modules()]:  # the norms keep their own init (sBN's γ around 1)
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, z: Tensor) -> Tensor:
        h = torch.relu(self.norm0(self.dense(z).view(z.shape[0], self.c0, self.mg, self.mg), z))
        for conv, norm in zip(self.convs, self.norms):
            h = torch.relu(norm(conv(nearest_up(h)), z))
        return torch.tanh(self.convs[-1](h))
