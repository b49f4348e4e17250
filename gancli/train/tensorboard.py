"""TensorBoard event files beside metrics.jsonl (which stays the record): scalars, sample grids, scores."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
import torchvision

log = logging.getLogger("gancli.train")

INSTALL_HINT = "pip install 'gancli[tensorboard]'"


class TensorBoardLog:
    """Writes what the trainer logs as TensorBoard scalars (numbers) and images (grids) under RUN/tensorboard."""

    def __init__(self, run_dir: Path, start_step: int):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: events a killed process wrote after its last checkpoint are hidden on resume
        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=start_step or None)

    def scalars(self, record: dict[str, Any]) -> None:
        step = record.get("step", 0)
        for key, value in record.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def grid(self, tag: str, images: torch.Tensor, step: int) -> None:
        """Images in [-1, 1] as one grid image."""
        nrow = max(1, int(math.sqrt(images.shape[0])))
        grid = torchvision.utils.make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, normalize=True,
                                           value_range=(-1, 1), padding=2)
        self.writer.add_image(tag, grid, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_tensorboard(run_dir: Path, start_step: int, enabled: bool) -> TensorBoardLog | None:
    """A TensorBoard log, or None when turned off or when the package is missing (then one line says how to get it)."""
    if not enabled:
        return None
    try:
        import tensorboard  # noqa: F401 - torch.utils.tensorboard needs it
    except ImportError:
        log.warning("TensorBoard logging is off: the tensorboard package is not installed (%s); "
                    "metrics.jsonl and plot.png are written as always.", INSTALL_HINT)
        return None
    return TensorBoardLog(run_dir, start_step)
