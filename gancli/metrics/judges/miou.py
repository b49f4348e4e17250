"""mIoU and pixel accuracy of predicted label maps against true ones, from one accumulated confusion matrix."""

from __future__ import annotations

import torch

IGNORE = 255  # truth that no class is scored on (cityscapesScripts' trainId 255)


def on_scored_classes(logits: torch.Tensor, labels: torch.Tensor, label_ids: tuple[int, ...]) -> tuple:
    """(predicted, true) maps over the classes `label_ids` only, numbered 0.. in that order (e.g. Cityscapes' 19 train
    ids); truth of any other id becomes IGNORE. A segmenter with one output per scored class predicts them as they
    are; one with an output per label id is read on those ids' channels alone (so it never predicts a void id)."""
    if logits.shape[1] != len(label_ids):
        logits = logits[:, list(label_ids)]
    table = torch.full((max(label_ids) + 1,), IGNORE, dtype=torch.long)
    table[list(label_ids)] = torch.arange(len(label_ids))
    labels = labels.long().cpu()
    truth = torch.where(labels < len(table), table[labels.clamp(max=len(table) - 1)], IGNORE)
    return logits.argmax(1), truth


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
        if self.ignore_label is not None and self.ignore_label < self.num_labels:
            c[:, self.ignore_label] = 0  # a prediction of "don't care" counts as wrong, and is no class of its own
            c[self.ignore_label, :] = 0
        hits = c.diagonal()
        union = c.sum(0) + c.sum(1) - hits
        present = union > 0
        total = self.confusion.sum().clamp_min(1)
        return {"miou": float((hits[present] / union[present]).mean()) if present.any() else float("nan"),
                "pixel_accuracy": float(hits.sum() / total)}
