"""Run folders: the saved config, checkpoints and metrics of one training run."""

from __future__ import annotations

import inspect
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gancli.config import TrainConfig, apply_overrides, load_toml
from gancli.errors import CheckpointError, ConfigError
from gancli.metrics.generative.sources import Source, sampler_source
from gancli.nn import apply_config_norm
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
        weights, _ = ckpt.load_recipe_weights(path, self.recipe.name)
        self.recipe.device = torch.device(device)
        G = self.recipe.build_models()["G"]
        key = "G_ema" if ema and "G_ema" in weights else "G"
        self.loaded_ema = key == "G_ema"  # what was loaded, whatever the config says
        ckpt.load_module(G, weights, key, path, "the run's generator")
        G.to(device)
        self.recipe.finalize_generator(G)
        return G

    def load_critic(self, checkpoint: str | None = None, device: str | torch.device = "cpu") -> nn.Module:
        """The run's critic with its training normalization, in eval mode (e.g. to read attributes with its class
        head)."""
        path = self.checkpoint(checkpoint)
        weights, _ = ckpt.load_recipe_weights(path, self.recipe.name)
        D = apply_config_norm(self.recipe.build_models()["D"], self.cfg)
        ckpt.load_module(D, weights, "D", path, "the run's critic", missing="it holds no critic")
        return D.to(device).eval()

    def load(self, checkpoint: str | None = None, device: str | torch.device = "cpu", ema: bool = True,
             verb: str | None = None) -> LoadedRun:
        """The run's generator on device, ready for the recipe's inference verbs (`verb`: refused before loading
        when the recipe lacks it)."""
        if verb is not None:
            self.recipe.check_supports(verb)
        device = torch.device(device)
        G = self.load_generator(checkpoint, device, ema=ema)
        return LoadedRun(self, G, device, self.checkpoint(checkpoint))

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")


@dataclass
class LoadedRun:
    """A run's generator loaded for inference; its verbs are the recipe's (a recipe refuses those it lacks)."""

    run: Run
    G: nn.Module
    device: torch.device
    checkpoint: Path

    @property
    def cfg(self) -> TrainConfig:
        return self.run.cfg

    def sample(self, n: int, seed: int = 0, truncation: float | None = None, **options: Any) -> torch.Tensor:
        """n images in [-1, 1]; `truncation` for recipes whose sampler supports it."""
        options.update(sampling_options(self.run.recipe, truncation))
        return self.run.recipe.sample(self.G, n, torch.Generator(self.device).manual_seed(seed), **options)

    def upscale(self, image: torch.Tensor, **options: Any) -> torch.Tensor:
        return self.run.recipe.upscale(self.G, image, device=self.device, **options)

    def score_test_set(self, data: str, lr: str | Path | None = None, **options: Any) -> dict[str, Any]:
        return self.run.recipe.score_test_set(self.G, data, lr, device=self.device, **options)


def upgrade_config(config_cls: type[TrainConfig], data: dict[str, Any]) -> dict[str, Any]:
    """A saved config as this version reads it: retired keys dropped, renamed keys spread to their new names, and
    keys the run predates set to the value that version used (`RETIRED`, `RENAMED`, `PREDATED` on the config)."""
    data = {k: v for k, v in data.items() if k not in getattr(config_cls, "RETIRED", ())}
    for old, new_keys in getattr(config_cls, "RENAMED", {}).items():
        if old in data:
            value = data.pop(old)
            data.update({key: value for key in new_keys if key not in data})
    return {**getattr(config_cls, "PREDATED", {}), **data}


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
    data = upgrade_config(recipe_cls.Config, data)
    try:
        cfg = apply_overrides(recipe_cls.Config(), data, str(config_file))
    except ConfigError as exc:
        raise CheckpointError(f"Run config '{config_file}' does not match this gancli version: {exc}") from None
    return Run(path, cfg, recipe_cls(cfg))


# ---------------------------------------------------------------------------------------------
# Runs as evaluation sources: the metrics take a sampler, the API layer makes it from a run
# ---------------------------------------------------------------------------------------------
def num_classes(recipe: Recipe) -> int:
    """How many classes a conditional recipe samples (its sample() takes `labels`), else 0."""
    if "labels" not in inspect.signature(recipe.sample).parameters:
        return 0
    for owner in (recipe, getattr(recipe, "cfg", None)):
        value = getattr(owner, "num_classes", None)
        if isinstance(value, int) and value > 0:
            return value
    return 0


def run_source(spec: str, n: int, *, device: str | torch.device = "cpu", checkpoint: str | None = None,
               ema: bool = True, truncation: float | None = None, seed: int = 0) -> Source:
    """n images drawn from a run's generator (EMA and standing statistics as the recipe has them).

    Class-conditional recipes get the same number of images of every class. This is the `open_run`
    callable that gancli.api hands to the metrics' Evaluator.
    """
    run = open_run(spec)
    recipe = run.recipe
    options = sampling_options(recipe, truncation)
    ckpt_path = run.checkpoint(checkpoint)  # CheckpointError when the run has none
    device = torch.device(device)
    G = run.load_generator(checkpoint, device, ema=ema)
    label = f"{run.path} @ {ckpt_path.name}{' (EMA)' if run.loaded_ema else ''}"
    if truncation is not None:
        label += f" truncation {truncation:g}"
    description = {"kind": "run", "run": str(Path(run.path).resolve()), "recipe": recipe.name,
                   "checkpoint": ckpt_path.name, "ema": run.loaded_ema, "truncation": truncation}

    def sampler(size: int, generator: torch.Generator, **extra: Any) -> torch.Tensor:
        return recipe.sample(G, size, generator, **options, **extra)

    return sampler_source(sampler, n, spec=spec, label=label, description=description, device=device, seed=seed,
                          classes=num_classes(recipe), owner=run)


def record_in_run(run: Run, scores: list) -> None:
    """Append scores (gancli.metrics Score objects) to the run's metrics.jsonl, numbers nested so that
    training plots are unaffected."""
    fake = scores[0].protocol["fake"]["description"]
    name = fake.get("checkpoint", "")
    record = {"event": "eval", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "checkpoint": name,
              "scores": {k: v for s in scores for k, v in s.values.items()},
              "protocol": {s.metric: s.protocol_line() for s in scores},
              "feature_net": scores[0].protocol["feature_net"],
              "weights_sha256": scores[0].protocol["weights_sha256"]}
    if name.startswith("step_") and name[5:].isdigit():
        record["step"] = int(name[5:])
    run.append_metrics(record)


# ---------------------------------------------------------------------------------------------
# The runs overview (`gancli runs`): status, progress and best score of each run in a folder
# ---------------------------------------------------------------------------------------------
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
    """Recipe, step / steps, status (running, finished, interrupted, failed, imported), best score, last checkpoint,
    wall time."""
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
    times = [r["wall_time"] for r in records if isinstance(r.get("wall_time"), (int, float))]
    lock, ended = read_lock(path), read_exit(path)
    if lock is not None:
        status = "running"
    elif ended.get("status") == "failed":
        status = "failed"
    elif ended.get("status") == "imported" and last_ckpt == 0:
        status = "imported"
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
            "pid": lock["pid"] if lock else None,
            "message": ended.get("message", "") if status == "failed" else problem,
            "best": best, "last_checkpoint": last_ckpt, "wall_time_s": times[-1] if times else None}


# ---------------------------------------------------------------------------------------------
# A run as a client that watches it sees it (the web page of `gancli serve`)
# ---------------------------------------------------------------------------------------------
def run_records(path: str | Path, start: int = 0) -> list[dict[str, Any]]:
    """The whole records of a run's metrics.jsonl from the start-th on (a poller asks only for the new ones)."""
    return _whole_records(Path(path) / "metrics.jsonl")[max(0, start):]


def sample_grids(path: str | Path) -> dict[int, Path]:
    """The sample grids the trainer wrote (samples/step_N.png), by step."""
    grids = {}
    for file in (Path(path) / "samples").glob("step_*.png"):
        digits = file.stem[len("step_"):]
        if digits.isdigit():
            grids[int(digits)] = file
    return dict(sorted(grids.items()))


def verb_inputs(path: str | Path) -> dict[str, Any]:
    """What a client needs to offer a run's verbs: its recipe, config, the verbs it has, and their inputs (classes
    and truncation for sampling, the label palette for synthesis, the attributes for translation, the scale)."""
    import dataclasses

    recipe = open_run(path).recipe
    # `gancli export` writes a file for deployment: not a verb the page runs
    verbs = ["sample"] + [verb for verb in recipe.VERBS if recipe.supports(verb) and verb != "export_inputs"]
    return {"recipe": recipe.name, "config": dataclasses.asdict(recipe.cfg), "verbs": verbs,
            "classes": num_classes(recipe), "truncation": "truncation" in inspect.signature(recipe.sample).parameters,
            **recipe.verb_inputs()}
