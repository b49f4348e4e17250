"""BigGAN's networks (Brock et al. 2019, App. B, Tables 4-5): ResNet G with class-conditional BN, projection D.

Channel plans are multiples of `ch`, as BigGAN-PyTorch lays them out: G's up-blocks (in, out) and D's
down-blocks (in, out, downsample) per resolution. 128 px is Table 4, 256 px Table 5; 32 px is the
CIFAR layout (three up-blocks of 4·ch; D of four 4·ch blocks, the last two without downsampling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from gancli.nn.attention import SelfAttention
from gancli.nn.modulation import (
    ConditionalBatchNorm,
    LabelComposition,
    SelfModulatedBatchNorm,
)

G_PLANS = {  # resolution -> [(in, out)] multiples of ch, from the 4×4 bottom up
    32: [(4, 4), (4, 4), (4, 4)],
    64: [(16, 16), (16, 8), (8, 4), (4, 2)],
    128: [(16, 16), (16, 8), (8, 4), (4, 2), (2, 1)],
    256: [(16, 16), (16, 8), (8, 8), (8, 4), (4, 2), (2, 1)],
}
D_PLANS = {  # resolution -> [(in, out, downsample)]; in 0 means the RGB image
    32: [(0, 4, True), (4, 4, True), (4, 4, False), (4, 4, False)],
    64: [(0, 1, True), (1, 2, True), (2, 4, True), (4, 8, True), (8, 16, False)],
    128: [(0, 1, True), (1, 2, True), (2, 4, True), (4, 8, True), (8, 16, True), (16, 16, False)],
    256: [(0, 1, True), (1, 2, True), (2, 4, True), (4, 8, True), (8, 8, True), (8, 16, True), (16, 16, False)],
}
GEN_NORMS = ("cbn", "self-mod")


def g_sizes(resolution: int) -> list[int]:
    """The resolutions after each of G's up-blocks (where a non-local block can follow)."""
    return [4 * 2 ** (i + 1) for i in range(len(G_PLANS[resolution]))]


def attention_channels(resolution: int, g_attention: int, d_attention: int, g_plans=None, d_plans=None,
                       sizes=None) -> dict[str, int]:
    """The width (a multiple of ch) at each network's non-local block: {"g_attention": .., "d_attention": ..}.
    The plans and G's sizes default to BigGAN's; BigGAN-deep passes its own."""
    g_plans, d_plans, sizes = g_plans or G_PLANS, d_plans or D_PLANS, sizes or g_sizes
    widths = {}
    if g_attention in sizes(resolution):
        widths["g_attention"] = g_plans[resolution][sizes(resolution).index(g_attention)][1]
    size = resolution
    for _, c_out, down in d_plans[resolution]:
        size //= 2 if down else 1
        if size == d_attention:
            widths["d_attention"] = c_out
            break
    return widths


def d_sizes(resolution: int) -> list[int]:
    """The resolutions after each of D's blocks (where a non-local block can follow), without repeats."""
    sizes, size = [], resolution
    for *_, down in D_PLANS[resolution]:
        size //= 2 if down else 1
        sizes += [] if size in sizes else [size]
    return sizes
INITS = ("ortho", "N02", "xavier")


def initialize(module: nn.Module, style: str) -> None:
    """BigGAN App. C: orthogonal init of every conv, linear and embedding (BigGAN-PyTorch also has N(0, 0.02))."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear, nn.Embedding)):
            if style == "ortho":
                nn.init.orthogonal_(layer.weight)
            elif style == "N02":
                nn.init.normal_(layer.weight, 0.0, 0.02)
            else:
                nn.init.xavier_uniform_(layer.weight)


def spectral_norm_all(module: nn.Module, eps: float = 1e-12) -> None:
    """SN on every conv and linear layer of G (SA-GAN, BigGAN App. C); class embeddings stay plain."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            spectral_norm(layer, eps=eps)


class GBlock(nn.Module):
    """BigGAN G ResBlock (Fig. 15b): BN-ReLU-up-conv3, BN-ReLU-conv3, plus an up-sampled 1×1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, gen_norm: str, eps: float = 1e-5,
                 per_class: bool = False):
        super().__init__()
        if gen_norm == "cbn":
            self.bn1 = ConditionalBatchNorm(c_in, cond_dim, eps, per_class=per_class)
            self.bn2 = ConditionalBatchNorm(c_out, cond_dim, eps, per_class=per_class)
        else:
            self.bn1 = SelfModulatedBatchNorm(c_in, cond_dim, eps=eps)
            self.bn2 = SelfModulatedBatchNorm(c_out, cond_dim, eps=eps)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = F.interpolate(torch.relu(self.bn1(x, c)), scale_factor=2)
        h = self.conv2(torch.relu(self.bn2(self.conv1(h), c)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2))


class Generator(nn.Module):
    """z (split into one chunk per block plus one for the dense layer when hierarchical) and a class → image.

    cbn: each block's BN gains/biases are linear in [shared embedding(y), z chunk] (§3, App. B); without a
    shared embedding (shared_dim 0) each BN has its own plain (not spectrally normalized) per-class gain and bias
    tables, as BigGAN-PyTorch's ccbn with nn.Embedding (BigGAN.py: SN on G's embeddings "seems to randomly cripple
    G"); z then is not split (hier needs a shared embedding). `bn_eps` is the cBN layers' ε (BigGAN-PyTorch's BN_eps).
    self-mod: conditional self-modulation (self-modulation paper eq. 3): z' = z + E(y) + z ⊙ E'(y) feeds
    every BN through an MLP.
    """

    def __init__(self, resolution: int, ch: int, z_dim: int, num_classes: int, shared_dim: int = 128,
                 hier: bool = True, attention: int = 64, gen_norm: str = "cbn", bn_eps: float = 1e-5):
        super().__init__()
        per_class = gen_norm == "cbn" and not shared_dim
        if per_class and hier:
            raise ValueError("Hierarchical z needs a shared class embedding (shared_dim > 0) under cbn.")
        plan = G_PLANS[resolution]
        self.num_classes, self.gen_norm, self.hier = num_classes, gen_norm, hier
        self.slots = len(plan) + 1 if hier else 1
        self.chunk = z_dim // self.slots
        self.z_dim = self.chunk * self.slots  # BigGAN-PyTorch drops the remainder, as 120 = 6 × 20 does not need to
        if gen_norm == "cbn":
            self.shared = nn.Embedding(num_classes, shared_dim) if shared_dim else None
            class_dim = shared_dim or num_classes
            cond_dim = class_dim + (self.chunk if hier else 0)
        else:
            self.compose = LabelComposition(num_classes, self.z_dim)
            cond_dim = self.chunk if hier else self.z_dim
        self.c0 = plan[0][0] * ch
        self.dense = nn.Linear(self.chunk, 16 * self.c0)
        self.blocks = nn.ModuleList()
        size = 4
        for c_in, c_out in plan:
            size *= 2
            self.blocks.append(GBlock(c_in * ch, c_out * ch, cond_dim, gen_norm, bn_eps, per_class))
            if size == attention:
                self.blocks.append(SelfAttention(c_out * ch))
        self.out_bn = nn.BatchNorm2d(plan[-1][1] * ch)
        self.to_rgb = nn.Conv2d(plan[-1][1] * ch, 3, 3, 1, 1)

    def class_code(self, y: Tensor) -> Tensor:
        """What the class contributes, as a vector that can be interpolated between classes."""
        if self.gen_norm == "self-mod":
            return torch.cat([self.compose.add(y), self.compose.scale(y)], dim=1)
        if self.shared is None:
            return F.one_hot(y, self.num_classes).float()
        return self.shared(y)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.generate(z, self.class_code(y))

    def generate(self, z: Tensor, code: Tensor) -> Tensor:
        """The image of latent z (B, z_dim) and class code (B, ·) from class_code (or a blend of two)."""
        z = z[:, :self.z_dim]
        self_mod = self.gen_norm == "self-mod"
        if self_mod:
            add, scale = code.split(self.z_dim, dim=1)
            z = z + add + z * scale  # eq. 3 of the self-modulation paper
        if self.hier:
            first, *rest = z.split(self.chunk, dim=1)
            conds = rest if self_mod else [torch.cat([code, chunk], dim=1) for chunk in rest]
        else:
            first, conds = z, [z if self_mod else code] * len(self.blocks)
        h = self.dense(first).view(z.shape[0], self.c0, 4, 4)
        index = 0
        for block in self.blocks:
            if isinstance(block, GBlock):
                h = block(h, conds[index])
                index += 1
            else:
                h = block(h)
        return torch.tanh(self.to_rgb(torch.relu(self.out_bn(h))))


class DBlock(nn.Module):
    """BigGAN D ResBlock: (ReLU)-conv3-ReLU-conv3-(avgpool), shortcut 1×1 conv and avgpool; no first ReLU on RGB."""

    def __init__(self, c_in: int, c_out: int, downsample: bool, preactivation: bool):
        super().__init__()
        self.downsample, self.preactivation = downsample, preactivation
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if (c_in != c_out or downsample) else None

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(x) if self.preactivation else x
        h = self.conv2(torch.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        skip = x
        if self.shortcut is not None:  # BigGAN-PyTorch: conv then pool after a pre-activation, else pool then conv
            skip = F.avg_pool2d(self.shortcut(x), 2) if self.preactivation and self.downsample else self.shortcut(
                F.avg_pool2d(x, 2) if self.downsample else x)
        return h + skip


class Critic(nn.Module):
    """ResBlocks down, one non-local block, ReLU, global sum pooling, dense → 1 plus ⟨embed(y), h⟩ (projection)."""

    def __init__(self, resolution: int, ch: int, num_classes: int, attention: int = 64):
        super().__init__()
        self.blocks = nn.ModuleList()
        size, c_last = resolution, 3
        for index, (c_in, c_out, down) in enumerate(D_PLANS[resolution]):
            self.blocks.append(DBlock(c_in * ch or 3, c_out * ch, down, preactivation=index > 0))
            size //= 2 if down else 1
            c_last = c_out * ch
            if size == attention and not any(isinstance(b, SelfAttention) for b in self.blocks):
                self.blocks.append(SelfAttention(c_last))
        self.linear = nn.Linear(c_last, 1)
        self.embed = nn.Embedding(num_classes, c_last)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = x
        for block in self.blocks:
            h = block(h)
        h = torch.relu(h).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)
