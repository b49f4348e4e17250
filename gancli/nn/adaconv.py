"""Adaptive convolution (Nguyen & Ray 2018, "Generative Adversarial Networks using Adaptive Convolution").

An AdaConvBlock replaces a k_filter×k_filter convolution c_in → c_out. At every pixel p it regresses its own
kernel and bias from the k_adaptive×k_adaptive neighbourhood of the input, then applies that kernel there:

    W(p) = ReLU(DSConv_w(F_in))(p)   (k_filter²·c_in·c_out values)
    b(p) = DSConv_b(F_in)(p)          (c_out values, no activation)
    F_out(p) = Σ_{i, Δ} W(p)[o, i, Δ] · F_in(p + Δ)[i] + b(p)[o]   (the local convolution)

DSConv is a depthwise-separable convolution (depthwise k_adaptive×k_adaptive with depth multiplier 1, then
1×1 pointwise), which keeps the regression's cost nearly independent of k_adaptive. No batch norm inside.
Memory: the regressed kernels hold k_filter²·c_in·c_out values per pixel, which is why the paper reduces
the generator's base channels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class DepthwiseSeparableConv(nn.Module):
    """k×k depthwise convolution (depth multiplier 1, zero 'same' padding) followed by a 1×1 pointwise one."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, kernel, padding=kernel // 2, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class AdaConvBlock(nn.Module):
    """A per-pixel convolution whose kernel (ReLU) and bias (linear) are regressed from the local input."""

    def __init__(self, c_in: int, c_out: int, k_filter: int = 3, k_adaptive: int = 3):
        super().__init__()
        if k_filter % 2 == 0 or k_adaptive % 2 == 0:
            raise ValueError(f"AdaConvBlock needs odd kernel sizes, got k_filter {k_filter}, k_adaptive {k_adaptive}.")
        self.c_in, self.c_out, self.k_filter = c_in, c_out, k_filter
        self.weight_regressor = DepthwiseSeparableConv(c_in, k_filter * k_filter * c_in * c_out, k_adaptive)
        self.bias_regressor = DepthwiseSeparableConv(c_in, c_out, k_adaptive)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        kernels = torch.relu(self.weight_regressor(x)).view(b, self.c_out, self.c_in * self.k_filter ** 2, h * w)
        patches = F.unfold(x, self.k_filter, padding=self.k_filter // 2)  # (b, c_in·k², h·w), channel-major
        out = torch.einsum("bkp,bokp->bop", patches, kernels).view(b, self.c_out, h, w)
        return out + self.bias_regressor(x)
