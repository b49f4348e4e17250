"""Images people look at: sample grids and curves of losses and scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torchvision

from gancli.figures import pyplot, save_figure


def save_grid(images: torch.Tensor, path: Path, nrow: int | None = None) -> Path:
    """Save images in [-1, 1] as one PNG grid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(math.sqrt(images.shape[0])))
    grid = torchvision.utils.make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow,
                                       normalize=True, value_range=(-1, 1), padding=2)
    torchvision.utils.save_image(grid, path)
    return path


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_metrics(metrics_file: Path, out: Path) -> Path | None:
    """One panel per quantity logged in metrics.jsonl (losses, learning rates, eval scores)."""
    plt = pyplot()

    series: dict[str, tuple[list[float], list[float]]] = {}
    for record in read_metrics(metrics_file):
        for key, value in record.items():
            if key in ("step", "time", "wall_time") or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            xs, ys = series.setdefault(key, ([], []))
            xs.append(record["step"])
            ys.append(value)
    if not series:
        return None
    keys = sorted(series, key=lambda k: (k.startswith("eval/"), k.startswith("lr_"), k))
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        xs, ys = series[key]
        ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, markersize=3)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    return save_figure(fig, out, dpi=110)
