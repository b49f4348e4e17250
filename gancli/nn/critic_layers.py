"""Activation normalization inside a critic: the batch norm (BN) and layer norm (LN) the large-scale study compares.

Unlike sn/san/wn, these do not rescale weights: they add a layer. A critic marks where its paper puts one
with a `NormSlot` (an identity until filled; the study's ResNet blocks normalize before each ReLU); a critic
without slots gets one after every convolution but the first, the DCGAN convention (Radford et al. 2016:
no normalization on the critic's input layer). LN normalizes each sample over (C, H, W) with a per-channel
gain and bias, as compare_gan's layer_norm does (Ba et al. 2016), i.e. GroupNorm with one group.
"""

from __future__ import annotations

from torch import nn

ACTIVATION_NORMS = ("bn", "ln")


class NormSlot(nn.Identity):
    """A place in a critic where `--norm bn|ln` puts its layer; the identity otherwise."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels


def activation_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm2d for bn, a layer norm over (C, H, W) with per-channel affine for ln."""
    return nn.BatchNorm2d(channels) if kind == "bn" else nn.GroupNorm(1, channels)


def insert_activation_norms(module: nn.Module, kind: str) -> nn.Module:
    """Fill the critic's NormSlots with `kind` layers, or follow every conv but the first with one if it has none."""
    slots = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()
             if isinstance(child, NormSlot)]
    if slots:
        for parent, name, slot in slots:
            setattr(parent, name, activation_norm(kind, slot.channels))
        return module
    convs = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()
             if isinstance(child, nn.Conv2d)]
    for parent, name, conv in convs[1:]:
        setattr(parent, name, nn.Sequential(conv, activation_norm(kind, conv.out_channels)))
    return module
