"""The truncation trade-off (BigGAN §3.1, Fig. 16): scores of one generator at several truncation thresholds."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from gancli.figures import pyplot, save_figure

Sampler = Callable[[int, torch.Generator], torch.Tensor]


def truncation_sweep(evaluator: Callable[[Sampler], dict[str, Any]], sampler_at: Callable[[float], Sampler],
                     thresholds: Iterable[float],
                     on_threshold: Callable[[float, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """One row of scores per threshold: evaluator(sampler_at(threshold)), e.g. a GeneratorEvaluator of fid, is, pr."""
    rows = []
    for threshold in thresholds:
        row = {"truncation": threshold, **evaluator(sampler_at(threshold))}
        rows.append(row)
        if on_threshold:
            on_threshold(threshold, row)
    return rows


def plot_truncation(rows: list[dict[str, Any]], out: Path, title: str = "") -> Path:
    """IS against FID with each point labelled by its threshold (BigGAN Fig. 16), and precision/recall against it."""
    plt = pyplot()

    thresholds = [row["truncation"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot([row["fid"] for row in rows], [row["is"] for row in rows], marker="o")
    for row in rows:
        left.annotate(f"{row['truncation']:g}", (row["fid"], row["is"]), textcoords="offset points", xytext=(4, 4),
                      fontsize=8)
    left.set_xlabel("FID (lower is better)")
    left.set_ylabel("IS (higher is better)")
    left.set_title("IS vs FID, labelled by truncation threshold", fontsize=9)
    for key in ("precision", "recall"):
        if all(key in row for row in rows):
            right.plot(thresholds, [row[key] for row in rows], marker="o", label=key)
    right.set_xlabel("truncation threshold")
    right.set_ylim(0, 1.02)
    right.legend(fontsize=8)
    right.set_title("precision / recall (k = 3)", fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, out, dpi=110)
