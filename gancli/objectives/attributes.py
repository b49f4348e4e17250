"""Attribute (domain) classification: StarGAN's L_cls (BCE over every attribute), and decisions from its logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def binary_columns(n_attrs: int, groups: list[list[int]]) -> list[int]:
    grouped = {j for group in groups for j in group}
    return [j for j in range(n_attrs) if j not in grouped]


def attribute_classification_loss(logits: Tensor, labels: Tensor, groups: list[list[int]] = ()) -> Tensor:
    """Σ over attributes of BCE, averaged over the batch: StarGAN's L_cls (yunjey/stargan solver.py
    `classification_loss`), with no groups.

    Given one-hot groups (the attribute judge does), each group is one softmax over its members instead, and rows
    in which it is not exactly one-hot (no or several members set) leave it out.
    """
    logits, labels = logits.float(), labels.float()
    binary = binary_columns(logits.shape[1], groups)
    loss = logits.new_zeros(())
    if binary:
        loss = loss + F.binary_cross_entropy_with_logits(logits[:, binary], labels[:, binary],
                                                         reduction="sum") / logits.shape[0]
    for group in groups:
        member = labels[:, group]
        one_hot = member.sum(dim=1) == 1
        if one_hot.any():
            ce = F.cross_entropy(logits[one_hot][:, group], member[one_hot].argmax(dim=1), reduction="sum")
            loss = loss + ce / logits.shape[0]
    return loss


def decide_attributes(logits: Tensor, groups: list[list[int]] = ()) -> Tensor:
    """{0, 1} decisions: an attribute where its logit is positive; in each group given, its largest logit's member."""
    out = (logits > 0).float()
    for group in groups:
        member = torch.zeros_like(logits[:, group])
        member.scatter_(1, logits[:, group].argmax(dim=1, keepdim=True), 1.0)
        out[:, group] = member
    return out
