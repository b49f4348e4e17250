"""Training throughput of config variants, timed in one process against the first as baseline."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from gancli import api
from gancli.config import parse_set
from gancli.data.stream import batch_stream
from gancli.train.trainer import Trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(recipe: str, options: dict[str, Any], iters: int, warmup: int) -> dict[str, float]:
    """Iterations per second (n_dis critic steps + one generator step, EMA, data loading included)."""
    from recipes import get_recipe

    with tempfile.TemporaryDirectory() as tmp:
        cfg = api.make_config(recipe, **{**options, "out": str(Path(tmp) / "run")})
        trainer = Trainer(get_recipe(recipe)(cfg), Path(tmp))
        stream = batch_stream(trainer.dataset, cfg.batch_size, cfg.seed, 0, trainer.workers())
        for _ in range(warmup):
            trainer.iteration(stream)
        _sync(trainer.device)
        start = time.perf_counter()
        for _ in range(iters):
            trainer.iteration(stream)
        _sync(trainer.device)
        elapsed = time.perf_counter() - start
    return {"it_s": iters / elapsed, "img_s": iters * cfg.batch_size / elapsed}


def bench_training(recipe: str, base: dict[str, Any], variants: list[str], iters: int,
                   warmup: int) -> list[dict[str, Any]]:
    """Time the base config and each 'key=value,key=value' variant; ratios are to the base."""
    rows = []
    for variant in ["", *variants]:
        changes = parse_set([v for v in variant.split(",") if v]) if variant else {}
        result = time_training(recipe, {**base, **changes}, iters, warmup)
        rows.append({"variant": variant or "baseline", **result})
    for row in rows:
        row["ratio"] = row["it_s"] / rows[0]["it_s"]
    return rows
