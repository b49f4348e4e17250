"""Learning-rate schedules as LambdaLR factors of the step."""

from __future__ import annotations

import math
from collections.abc import Callable

from gancli.config import TrainConfig


def lr_factor(cfg: TrainConfig) -> Callable[[int], float]:
    """Multiplier of the base learning rate at a given step: constant, multistep or linear decay."""
    if cfg.lr_schedule == "multistep":
        milestones = [math.ceil(m * cfg.steps) for m in cfg.lr_milestones]
        return lambda step: cfg.lr_gamma ** sum(step >= m for m in milestones)
    if cfg.lr_schedule == "linear":
        start = round(cfg.lr_decay_start * cfg.steps)
        span = max(cfg.steps - start, 1)
        return lambda step: 1.0 if step < start else max(0.0, 1.0 - (step - start) / span)
    return lambda step: 1.0
