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
        # one fused update of all tensors (foreach): on a GPU a few kernel launches instead of one per tensor
        torch._foreach_lerp_(list(self.module.parameters()), [p.detach() for p in module.parameters()], 1.0 - decay)
        buffers = list(self.module.buffers())
        if buffers:
            torch._foreach_copy_(buffers, list(module.buffers()))
