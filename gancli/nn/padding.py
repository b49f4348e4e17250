"""Circular padding with a cheap backward, for the critics SAN and sn-exact switch to cyclic padding.

PyTorch's `F.pad(mode="circular")` builds its output from slice copies and differentiates them one by
one (a zero-filled gradient per slice); on a 2-core CPU that backward costs more than the convolution it
feeds. Here the forward is two concatenations and the backward folds the padded borders back onto the
opposite edges. The result equals F.pad's to the bit, and the backward is made of differentiable tensor
operations, so gradient penalties (R1, GP) can differentiate through it again.
"""

from __future__ import annotations

import types

import torch
from torch import Tensor, nn

# How the critic's padded convs pad (config critic_padding): auto is circular under san and sn-exact, else their own.
CRITIC_PADDINGS = ("auto", "circular", "zeros")


def _wrap(x: Tensor, pad: int, dim: int) -> Tensor:
    if pad == 0:
        return x
    size = x.shape[dim]
    return torch.cat([x.narrow(dim, size - pad, pad), x, x.narrow(dim, 0, pad)], dim=dim)


def _fold_columns(rows: Tensor, pad_w: int, width: int) -> Tensor:
    """A new tensor: the padded rows' `width` core columns, each padded column added onto the one it copied."""
    core = rows.narrow(-1, pad_w, width).clone()
    if pad_w:
        core.narrow(-1, width - pad_w, pad_w).add_(rows.narrow(-1, 0, pad_w))
        core.narrow(-1, 0, pad_w).add_(rows.narrow(-1, pad_w + width, pad_w))
    return core


def _fold_back(grad: Tensor, pad_h: int, pad_w: int) -> Tensor:
    """The gradient of the padding: the core, plus each padded border (and corner) added onto the edge it copied.

    One copy of the core and adds of thin strips: 1.4-1.9x faster than folding the two axes one after the other
    (two full copies) on the SNDCGAN and SR critics' activations, 2 CPU cores.
    """
    h, w = grad.shape[-2] - 2 * pad_h, grad.shape[-1] - 2 * pad_w
    core = _fold_columns(grad.narrow(-2, pad_h, h), pad_w, w)
    if pad_h:  # the top and bottom strips, corners included
        core.narrow(-2, h - pad_h, pad_h).add_(_fold_columns(grad.narrow(-2, 0, pad_h), pad_w, w))
        core.narrow(-2, 0, pad_h).add_(_fold_columns(grad.narrow(-2, pad_h + h, pad_h), pad_w, w))
    return core


class _CircularPad2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, pad_h: int, pad_w: int) -> Tensor:
        ctx.pads = (pad_h, pad_w)
        return _wrap(_wrap(x, pad_w, -1), pad_h, -2)

    @staticmethod
    def backward(ctx, grad: Tensor):
        pad_h, pad_w = ctx.pads
        return _fold_back(grad, pad_h, pad_w), None, None


def circular_pad2d(x: Tensor, pad_h: int, pad_w: int) -> Tensor:
    """Pad the last two dims cyclically by pad_h rows and pad_w columns on each side (at most their size)."""
    if pad_h > x.shape[-2] or pad_w > x.shape[-1]:
        raise ValueError(f"Circular padding of ({pad_h}, {pad_w}) needs an input at least that large, "
                         f"got {tuple(x.shape[-2:])}.")
    return _CircularPad2d.apply(x, pad_h, pad_w)


def _conv_forward(self: nn.Conv2d, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    pad_h, pad_w = self.padding
    return nn.functional.conv2d(circular_pad2d(input, pad_h, pad_w), weight, bias, self.stride, 0, self.dilation,
                                self.groups)


def make_circular(conv: nn.Conv2d) -> None:
    """Switch a padded Conv2d to cyclic padding (padding_mode 'circular'), done by circular_pad2d.

    A conv with padding='same' keeps PyTorch's own circular padding (its padding can be uneven).
    """
    conv.padding_mode = "circular"
    if not isinstance(conv.padding, str):
        conv._conv_forward = types.MethodType(_conv_forward, conv)


def make_zero_padded(conv: nn.Conv2d) -> None:
    """Make a padded Conv2d pad with zeros (padding_mode 'zeros'), undoing make_circular if it was applied."""
    conv.padding_mode = "zeros"
    vars(conv).pop("_conv_forward", None)
