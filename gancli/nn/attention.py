"""The non-local (self-attention) block of SA-GAN (Zhang et al. 2018), as BigGAN places it in G and D."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SelfAttention(nn.Module):
    """x + γ·o(softmax(θ(x)ᵀ φ(x)) g(x)): θ, φ project to C/8 and g to C/2 by 1×1 convs, φ and g max-pooled 2×2.

    γ starts at 0, so a fresh block is the identity (SA-GAN §4). The key/value pooling and the C/8, C/2
    widths follow BigGAN's layer; attention weights are unscaled dot products, as in SA-GAN.
    """

    def __init__(self, channels: int):
        super().__init__()
        if channels < 8:
            raise ValueError(f"Self-attention needs at least 8 channels, got {channels}.")
        self.theta = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.phi = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.g = nn.Conv2d(channels, channels // 2, 1, bias=False)
        self.o = nn.Conv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        query = self.theta(x).flatten(2).transpose(1, 2)  # (B, HW, C/8)
        key = F.max_pool2d(self.phi(x), 2).flatten(2).transpose(1, 2)  # (B, HW/4, C/8)
        value = F.max_pool2d(self.g(x), 2).flatten(2).transpose(1, 2)  # (B, HW/4, C/2)
        # one head (B, 1, L, E): the layout of the fused GPU kernels and the only one ONNX export translates
        attended = F.scaled_dot_product_attention(query[:, None], key[:, None], value[:, None], scale=1.0)[:, 0]
        return x + self.gamma * self.o(attended.transpose(1, 2).reshape(b, -1, h, w))
