"""Exponential moving average of the generator's weights (BigGAN, Yazıcı et al.)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Holds an averaged copy of a module; before `start` the copy simply tracks the weights."""

    def __init__(self, module: nn.Module, decay: float, start: int = 0):
        self.decay, self.start = decay, start
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        decay = self.decay if step >= self.start else 0.0
        for ema_p, p in zip(self.module.parameters(), module.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.module.buffers(), module.buffers()):
            ema_b.copy_(b)
