"""Run folders: the saved config, checkpoints and metrics of one training run."""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gancli.config import TrainConfig, apply_overrides, load_toml
from gancli.errors import CheckpointError, ConfigError, state_dict_mismatch
from gancli.train import checkpoint as ckpt
from gancli.train.recipe import Recipe


def sampling_options(recipe: Recipe, truncation: float | None) -> dict[str, Any]:
    """The keyword arguments of recipe.sample() that --truncation asks for, checked against what it supports."""
    if truncation is None:
        return {}
    if "truncation" not in inspect.signature(recipe.sample).parameters:
        raise ConfigError(f"Recipe '{recipe.name}' does not support --truncation.")
    if not truncation > 0:
        raise ConfigError(f"--truncation must be a positive threshold, got {truncation:g}.")
    return {"truncation": truncation}


@dataclass
class Run:
    path: Path
    cfg: TrainConfig
    recipe: Recipe
    loaded_ema: bool = False  # whether load_generator's last generator was the EMA one

    def checkpoint(self, checkpoint: str | None = None) -> Path:
        return ckpt.resolve_checkpoint(self.path, checkpoint)

    def load_generator(self, checkpoint: str | None = None, device: str | torch.device = "cpu",
                       ema: bool = True) -> nn.Module:
        """The run's generator (EMA weights when present and asked for), ready for inference."""
        path = self.checkpoint(checkpoint)
        weights, meta = ckpt.load_weights(path)
        if meta.get("recipe") != self.recipe.name:
            raise CheckpointError(f"Checkpoint '{path}' is from recipe '{meta.get('recipe')}', "
                                  f"not '{self.recipe.name}'.")
        self.recipe.device = torch.device(device)
        G = self.recipe.build_models()["G"]
        key = "G_ema" if ema and "G_ema" in weights else "G"
        self.loaded_ema = key == "G_ema"  # what was loaded, whatever the config says
        try:
            G.load_state_dict(weights[key])
        except RuntimeError as exc:
            raise CheckpointError(f"Checkpoint '{path}' does not fit the run's generator "
                                  f"({state_dict_mismatch(exc)}).") from None
        G.to(device)
        self.recipe.finalize_generator(G)
        return G

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")


def open_run(path: str | Path) -> Run:
    """Open a run folder written by `gancli train`."""
    from recipes import get_recipe

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"Run folder '{path}' does not exist.")
    config_file = path / "config.toml"
    if not config_file.is_file():
        raise CheckpointError(f"'{path}' is not a gancli run folder (it has no config.toml).")
    data = load_toml(config_file)
    recipe_cls = get_recipe(str(data.get("recipe", "")))
    try:
        cfg = apply_overrides(recipe_cls.Config(), data, str(config_file))
    except ConfigError as exc:
        raise CheckpointError(f"Run config '{config_file}' does not match this gancli version: {exc}") from None
    return Run(path, cfg, recipe_cls(cfg))


# ---- the runs overview (`gancli runs`) ---------------------------------------------------------


def find_runs(root: str | Path) -> list[Path]:
    """Run folders (with a config.toml) at root or directly under it, by name."""
    root = Path(root)
    if not root.is_dir():
        raise CheckpointError(f"Folder '{root}' does not exist.")
    if (root / "config.toml").is_file():
        return [root]
    return sorted(p.parent for p in root.glob("*/config.toml"))


def _whole_records(metrics_file: Path) -> list[dict[str, Any]]:
    """The records of metrics.jsonl, skipping a last line that a killed process left half-written."""
    if not metrics_file.is_file():
        return []
    records = []
    for line in metrics_file.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def summarize_run(path: str | Path) -> dict[str, Any]:
    """Recipe, step / steps, status (running, finished, interrupted, failed), best score, last checkpoint, wall time."""
    from gancli.train.lock import read_exit, read_lock

    path = Path(path)
    raw = load_toml(path / "config.toml")
    best_metric, problem = None, ""
    try:
        best_metric = open_run(path).recipe.best_metric
    except (CheckpointError, ConfigError) as exc:  # listed all the same, with the reason it cannot be opened
        problem = str(exc)
    records = _whole_records(path / "metrics.jsonl")
    checkpoints = ckpt.step_dirs(path)
    last_ckpt = int(checkpoints[-1].name.split("_")[1]) if checkpoints else None
    steps = raw.get("steps")
    step = max([r["step"] for r in records if isinstance(r.get("step"), int)] + [last_ckpt or 0])
    times = [r["time"] for r in records if isinstance(r.get("time"), (int, float))]
    lock, ended = read_lock(path), read_exit(path)
    if lock is not None:
        status = "running"
    elif ended.get("status") == "failed":
        status = "failed"
    elif last_ckpt is not None and isinstance(steps, int) and last_ckpt >= steps:
        status = "finished"
    else:
        status = "interrupted"
    best = None
    if best_metric is not None:
        key, mode = best_metric
        scored = [(r[f"eval/{key}"], r["step"]) for r in records
                  if isinstance(r.get(f"eval/{key}"), (int, float)) and not math.isnan(r[f"eval/{key}"])]
        if scored:
            value, at = (min if mode == "min" else max)(scored, key=lambda vs: vs[0])
            best = {"metric": key, "value": value, "step": at}
    return {"run": str(path), "recipe": raw.get("recipe", ""), "step": step, "steps": steps, "status": status,
            "pid": lock["pid"] if lock else None, "message": ended.get("message", "") if status == "failed" else problem,
            "best": best, "last_checkpoint": last_ckpt, "wall_time_s": times[-1] if times else None}
