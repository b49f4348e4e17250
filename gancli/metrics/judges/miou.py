"""mIoU and pixel accuracy of predicted label maps against true ones, from one accumulated confusion matrix."""

from __future__ import annotations

import torch


class SegmentationScore:
    """A confusion matrix accumulated over batches of (predicted, true) label maps."""

    def __init__(self, num_labels: int, ignore_label: int | None = None):
        self.num_labels, self.ignore_label = num_labels, ignore_label
        self.confusion = torch.zeros(num_labels, num_labels, dtype=torch.long)

    def add(self, predicted: torch.Tensor, truth: torch.Tensor) -> None:
        predicted, truth = predicted.flatten().long().cpu(), truth.flatten().long().cpu()
        keep = truth != self.ignore_label if self.ignore_label is not None else torch.ones_like(truth, dtype=torch.bool)
        index = truth[keep] * self.num_labels + predicted[keep].clamp(0, self.num_labels - 1)
        self.confusion += torch.bincount(index, minlength=self.num_labels ** 2).view(self.num_labels, -1)

    def result(self) -> dict[str, float]:
        c = self.confusion.double()
        if self.ignore_label is not None:
            c[:, self.ignore_label] = 0  # a prediction of "don't care" counts as wrong, and is no class of its own
            c[self.ignore_label, :] = 0
        hits = c.diagonal()
        union = c.sum(0) + c.sum(1) - hits
        present = union > 0
        total = self.confusion.sum().clamp_min(1)
        return {"miou": float((hits[present] / union[present]).mean()) if present.any() else float("nan"),
                "pixel_accuracy": float(hits.sum() / total)}
