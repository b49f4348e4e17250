"""BigGAN-deep's networks (Brock et al. 2019; ajbrock/BigGAN-PyTorch BigGANdeep.py; TF-Hub's biggan-deep modules).

Bottleneck ResBlocks (1×1 conv to a quarter of the channels, two 3×3 convs, 1×1 conv out), two blocks per
resolution (the first keeps the width, the second up/down-samples and changes it), and skips without a conv
in G (channels beyond the output width are dropped) and a concatenating one in D ([x, conv1×1(x)]). z is not
split: [shared embedding(y), z] feeds the dense layer and every conditional BN.

TF-Hub's generators keep, instead of running BN statistics, a table of them at `n` truncation values
0, 1/(n-1), ..., 1 and interpolate at the sampling truncation (pytorch-pretrained-biggan's BigGANBatchNorm);
`TruncationStatistics` holds such a table. They also convolve to `ch` channels and keep the first three, which
changes the spectral norm of that conv: `rgb_channels`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancli.nn.attention import SelfAttention
from gancli.nn.modulation import ConditionalBatchNorm
from recipes.biggan_nets import G_PLANS, attention_channels

DEEP_G_PLANS = {**G_PLANS, 512: G_PLANS[256] + [(1, 1)]}  # (in, out) multiples of ch per resolution stage
DEEP_D_PLANS = {  # (in, out, downsample) per stage, after a 3×3 stem conv to in[0]·ch (BigGANdeep.py D_arch)
    32: [(4, 4, True), (4, 4, True), (4, 4, False)],
    64: [(1, 2, True), (2, 4, True), (4, 8, True), (8, 16, True)],
    128: [(1, 2, True), (2, 4, True), (4, 8, True), (8, 16, True), (16, 16, True)],
    256: [(1, 2, True), (2, 4, True), (4, 8, True), (8, 8, True), (8, 16, True), (16, 16, True)],
    512: [(1, 1, True), (1, 2, True), (2, 4, True), (4, 8, True), (8, 8, True), (8, 16, True), (16, 16, True)],
}


def deep_g_sizes(resolution: int) -> list[int]:
    """The resolutions after each of G's stages (where a non-local block can follow)."""
    return [4 * 2 ** (i + 1) for i in range(len(DEEP_G_PLANS[resolution]))]


def deep_d_sizes(resolution: int) -> list[int]:
    """The resolutions after each of D's stages (where a non-local block can follow), without repeats."""
    sizes, size = [], resolution
    for *_, down in DEEP_D_PLANS[resolution]:
        size //= 2 if down else 1
        sizes += [] if size in sizes else [size]
    return sizes


def deep_attention_channels(resolution: int, g_attention: int, d_attention: int) -> dict[str, int]:
    """The width (a multiple of ch) at each network's non-local block: {"g_attention": .., "d_attention": ..}."""
    return attention_channels(resolution, g_attention, d_attention, DEEP_G_PLANS, DEEP_D_PLANS, deep_g_sizes)


class TruncationStatistics(nn.Module):
    """BN means and variances at n truncation values 0 … 1, read at a truncation as TF-Hub's BigGAN-deep does.

    With t/(1/(n-1)) = i + f (math.modf), the statistics are s_i·f + s_{i+1}·(1 − f) when f ≠ 0 (sic: the weights
    are the reverse of a linear interpolation, as pytorch-pretrained-biggan computes them) and s_i when f = 0.
    """

    def __init__(self, n: int, num_features: int):
        super().__init__()
        self.register_buffer("means", torch.zeros(n, num_features))
        self.register_buffer("vars", torch.ones(n, num_features))

    def at(self, truncation: float | None) -> tuple[Tensor, Tensor]:
        truncation = 1.0 if truncation is None else float(truncation)
        if not 0 < truncation <= 1:
            raise ValueError(f"This generator's BN statistics are tabled for truncations in (0, 1], got {truncation}.")
        coef, start = math.modf(truncation / (1.0 / (self.means.shape[0] - 1)))
        start = int(start)
        if coef == 0.0:
            return self.means[start], self.vars[start]
        return (self.means[start] * coef + self.means[start + 1] * (1 - coef),
                self.vars[start] * coef + self.vars[start + 1] * (1 - coef))

    def normalize(self, x: Tensor, truncation: float | None, eps: float) -> Tensor:
        mean, var = self.at(truncation)
        return (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + eps)


class DeepBatchNorm(ConditionalBatchNorm):
    """cBN (gain 1 + W_γ c, bias W_β c) that, with a statistics table, normalizes by it in eval mode."""

    def __init__(self, num_features: int, cond_dim: int, eps: float, stats: int = 0):
        super().__init__(num_features, cond_dim, eps)
        self.table = TruncationStatistics(stats, num_features) if stats else None

    def forward(self, x: Tensor, c: Tensor, truncation: float | None = None) -> Tensor:
        if self.table is None or self.training:
            h = self.norm(x)
        else:
            h = self.table.normalize(x, truncation, self.norm.eps)
        return h * (1 + self.gain(c))[:, :, None, None] + self.bias(c)[:, :, None, None]


class OutputBatchNorm(nn.BatchNorm2d):
    """G's last (unconditional, affine) BN, optionally with a truncation table for eval mode."""

    def __init__(self, num_features: int, eps: float, stats: int = 0):
        super().__init__(num_features, eps=eps)
        self.table = TruncationStatistics(stats, num_features) if stats else None

    def forward(self, x: Tensor, truncation: float | None = None) -> Tensor:
        if self.table is None or self.training:
            return super().forward(x)
        return self.table.normalize(x, truncation, self.eps) * self.weight.view(1, -1, 1, 1) + self.bias.view(
            1, -1, 1, 1)


class DeepGBlock(nn.Module):
    """BN-ReLU-conv1×1 (to c_in/4), BN-ReLU-(up)-conv3, BN-ReLU-conv3, BN-ReLU-conv1×1 (to c_out); skip: x's first
    c_out channels, (up)sampled."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, upsample: bool, eps: float, stats: int = 0):
        super().__init__()
        hidden = c_in // 4
        self.c_out, self.upsample = c_out, upsample
        self.bn1, self.bn2, self.bn3, self.bn4 = (DeepBatchNorm(c, cond_dim, eps, stats)
                                                  for c in (c_in, hidden, hidden, hidden))
        self.conv1 = nn.Conv2d(c_in, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.conv3 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.conv4 = nn.Conv2d(hidden, c_out, 1)

    def forward(self, x: Tensor, c: Tensor, truncation: float | None = None) -> Tensor:
        h = self.conv1(torch.relu(self.bn1(x, c, truncation)))
        h = torch.relu(self.bn2(h, c, truncation))
        x = x[:, :self.c_out]
        if self.upsample:
            h, x = F.interpolate(h, scale_factor=2), F.interpolate(x, scale_factor=2)
        h = self.conv3(torch.relu(self.bn3(self.conv2(h), c, truncation)))
        return self.conv4(torch.relu(self.bn4(h, c, truncation))) + x


class DeepGenerator(nn.Module):
    """[shared(y), z] → dense → 4×4 → two DeepGBlocks per stage (non-local block after the stage at `attention`) →
    BN-ReLU-conv3-tanh. `stats` > 0: TF-Hub's per-truncation BN statistics; `rgb_channels`: the last conv's width
    (its first three channels are the image)."""

    def __init__(self, resolution: int, ch: int, z_dim: int, num_classes: int, shared_dim: int = 128,
                 attention: int = 64, bn_eps: float = 1e-5, stats: int = 0, rgb_channels: int = 3):
        super().__init__()
        plan = DEEP_G_PLANS[resolution]
        self.z_dim, self.num_classes = z_dim, num_classes
        self.shared = nn.Embedding(num_classes, shared_dim)
        cond_dim = shared_dim + z_dim
        self.c0 = plan[0][0] * ch
        self.dense = nn.Linear(cond_dim, 16 * self.c0)
        self.blocks = nn.ModuleList()
        size = 4
        for c_in, c_out in plan:
            self.blocks.append(DeepGBlock(c_in * ch, c_in * ch, cond_dim, False, bn_eps, stats))
            self.blocks.append(DeepGBlock(c_in * ch, c_out * ch, cond_dim, True, bn_eps, stats))
            size *= 2
            if size == attention:
                self.blocks.append(SelfAttention(c_out * ch))
        self.out_bn = OutputBatchNorm(plan[-1][1] * ch, bn_eps, stats)
        self.to_rgb = nn.Conv2d(plan[-1][1] * ch, rgb_channels, 3, 1, 1)

    def class_code(self, y: Tensor) -> Tensor:
        return self.shared(y)

    def forward(self, z: Tensor, y: Tensor, truncation: float | None = None) -> Tensor:
        return self.generate(z, self.class_code(y), truncation)

    def generate(self, z: Tensor, code: Tensor, truncation: float | None = None) -> Tensor:
        """The image of latent z and class code (shared(y), or a blend); `truncation` picks tabled statistics."""
        cond = torch.cat([code, z], dim=1)
        h = self.dense(cond).view(z.shape[0], self.c0, 4, 4)
        for block in self.blocks:
            h = block(h, cond, truncation) if isinstance(block, DeepGBlock) else block(h)
        h = self.to_rgb(torch.relu(self.out_bn(h, truncation)))
        return torch.tanh(h[:, :3])


class DeepDBlock(nn.Module):
    """ReLU-conv1×1 (to c_out/4), ReLU-conv3, ReLU-conv3, ReLU, (avgpool), conv1×1 (to c_out); skip: (avgpool) then
    [x, conv1×1(x)] when the width grows."""

    def __init__(self, c_in: int, c_out: int, downsample: bool):
        super().__init__()
        hidden = c_out // 4
        self.downsample = downsample
        self.conv1 = nn.Conv2d(c_in, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.conv3 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.conv4 = nn.Conv2d(hidden, c_out, 1)
        self.shortcut = nn.Conv2d(c_in, c_out - c_in, 1) if c_out != c_in else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(torch.relu(x))
        h = torch.relu(self.conv3(torch.relu(self.conv2(torch.relu(h)))))
        if self.downsample:
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        if self.shortcut is not None:
            x = torch.cat([x, self.shortcut(x)], dim=1)
        return self.conv4(h) + x


class DeepCritic(nn.Module):
    """Stem conv3, two DeepDBlocks per stage (non-local block after the stage at `attention`), ReLU, global sum
    pooling, dense → 1 plus ⟨embed(y), h⟩ (projection)."""

    def __init__(self, resolution: int, ch: int, num_classes: int, attention: int = 64):
        super().__init__()
        plan = DEEP_D_PLANS[resolution]
        self.stem = nn.Conv2d(3, plan[0][0] * ch, 3, 1, 1)
        self.blocks = nn.ModuleList()
        size = resolution
        for c_in, c_out, down in plan:
            self.blocks.append(DeepDBlock(c_in * ch, c_out * ch, down))
            self.blocks.append(DeepDBlock(c_out * ch, c_out * ch, False))
            size //= 2 if down else 1
            if size == attention and not any(isinstance(b, SelfAttention) for b in self.blocks):
                self.blocks.append(SelfAttention(c_out * ch))
        self.linear = nn.Linear(plan[-1][1] * ch, 1)
        self.embed = nn.Embedding(num_classes, plan[-1][1] * ch)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        h = torch.relu(h).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)
