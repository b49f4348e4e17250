"""Published checkpoints: the contract through which a recipe reads another project's weights.

A recipe lists the formats it reads in `Recipe.import_formats` (name → ImportFormat). An ImportFormat
knows how to recognise a state dict of its kind (`detect`) and how to turn it into this project's
state dicts and config (`convert`). Reading the file (weights_only), naming another format when the
file is of one, and writing the run folder are done once, by the API, for every format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from gancli.config import TrainConfig

StateDict = dict[str, torch.Tensor]


@dataclass
class ImportedWeights:
    """What a converter returns: the run's config (shape-derived fields set) and our networks' state dicts."""

    cfg: TrainConfig
    G: StateDict
    D: StateDict | None = None


@dataclass(frozen=True)
class ImportFormat:
    """One published checkpoint format (e.g. BigGAN-PyTorch's G.pth) that a recipe can import."""

    name: str  # e.g. "biggan-pytorch"
    summary: str  # one line: the reference network
    files: str  # the files it takes, e.g. "G.pth or G_ema.pth; --critic D.pth"
    published: str  # where its authors publish them
    detect: Callable[[StateDict], bool]  # True when a (flattened) state dict is of this format
    # (generator state, critic state or None, the config from recipe defaults + preset + --set) → our weights;
    # raises gancli.errors.CheckpointError with one sentence on missing/unexpected keys or wrong shapes
    convert: Callable[[StateDict, StateDict | None, TrainConfig], ImportedWeights]
