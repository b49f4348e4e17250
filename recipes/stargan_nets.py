"""StarGAN's generator and the SAN paper's critic for it (SAN Table 7)."""

from __future__ import annotations

import torch
from torch import nn

from gancli.nn.padding import make_circular


def tile_labels(labels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, A) target attributes → (N, A, H, W): each attribute a constant map, concatenated to the image."""
    return labels[:, :, None, None].expand(-1, -1, height, width)


def _in(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True)


class ResidualBlock(nn.Module):
    """conv 3×3 → IN → ReLU → conv 3×3 → IN, plus the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _in(channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _in(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class StarGANGenerator(nn.Module):
    """Image ⊕ tiled target labels → 7×7 conv IN 64 → two 4×4 s2 convs IN (128, 256) → 6 ResBlocks 256 →
    two 4×4 s2 deconvs IN (128, 64) → 7×7 conv 3, tanh (SAN Table 7; IN everywhere but the output layer)."""

    def __init__(self, n_attrs: int, width: int = 64, n_blocks: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3 + n_attrs, width, 7, 1, 3, bias=False), _in(width), nn.ReLU(inplace=True)]
        c = width
        for _ in range(2):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), _in(2 * c), nn.ReLU(inplace=True)]
            c *= 2
        layers += [ResidualBlock(c) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), _in(c // 2), nn.ReLU(inplace=True)]
            c //= 2
        layers += [nn.Conv2d(c, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = tile_labels(labels.to(image.dtype), *image.shape[-2:])
        return self.net(torch.cat([image, labels], dim=1))


def final_size(resolution: int, n_layers: int, kernel: int = 3) -> int:
    """Side of the critic's last feature map: each stride-2 conv with padding 1 maps s to ⌊(s + 2 − k)/2⌋ + 1
    (⌈s/2⌉ for a 3×3 kernel, ⌊s/2⌋ for StarGAN's 4×4)."""
    size = resolution
    for _ in range(n_layers):
        size = (size + 2 - kernel) // 2 + 1
    return size


class StarGANCritic(nn.Module):
    """Six stride-2 convs (64 → 2048), lReLU 0.01; heads: 3×3 conv → 1 (a real/fake patch map) and a conv whose
    kernel covers the last map (2×2 at 128 px) → one logit per attribute.

    kernel 3: SAN Table 7's (25M at 128 px), circular padding; kernel 4: StarGAN's own (yunjey/stargan model.py,
    44M), 4×4 convs with zero padding.
    """

    def __init__(self, n_attrs: int, resolution: int = 128, width: int = 64, n_layers: int = 6, kernel: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i in range(n_layers):
            c_out = width * 2**i
            layers += [nn.Conv2d(c_in, c_out, kernel, 2, 1), nn.LeakyReLU(0.01)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.real_fake = nn.Conv2d(c_in, 1, 3, 1, 1, bias=False)
        self.attributes = nn.Conv2d(c_in, n_attrs, final_size(resolution, n_layers, kernel), bias=False)
        if kernel == 3:
            for layer in self.modules():
                if isinstance(layer, nn.Conv2d) and layer.padding != (0, 0):
                    make_circular(layer)  # SAN App. J: every critic conv pads cyclically, whatever the normalization

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(real/fake logits (N, s·s), attribute logits (N, A))."""
        h = self.features(image)
        return self.real_fake(h).flatten(1), self.attributes(h).flatten(1)
