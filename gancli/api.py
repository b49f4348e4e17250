"""The Python API: everything the CLI does, in a few calls.

    from gancli import api
    cfg = api.make_config("uncond", preset="quick", norm="san")
    run = api.train(cfg)
    images = api.sample(run.path, n=16)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gancli.config import TrainConfig, apply_overrides, load_toml, validate
from gancli.errors import ConfigError
from gancli.runs import Run, open_run
from gancli.train import distributed
from gancli.train.lock import RunLock
from gancli.train.trainer import Trainer, check_run_dir, exit_recorded, start_run_dir

__all__ = ["make_config", "train", "sample", "open_run"]


def make_config(recipe: str, *, preset: str | None = None, config_file: str | Path | None = None,
                sets: dict[str, Any] | None = None, **options: Any) -> TrainConfig:
    """Resolve a config: recipe defaults < preset < TOML file < options < sets.

    Without data and without a preset, the recipe's offline preset (CPU-sized, builtin data) is used.
    """
    from recipes import get_recipe

    recipe_cls = get_recipe(recipe)
    cfg = recipe_cls.Config()
    file_values = load_toml(config_file) if config_file else {}
    chosen = preset or file_values.get("preset") or ""
    has_data = options.get("data") or file_values.get("data") or (sets or {}).get("data")
    if not chosen and not has_data:
        chosen = recipe_cls.offline_preset
    if chosen:
        if chosen not in recipe_cls.presets:
            raise ConfigError(f"Recipe '{recipe}' has presets {', '.join(recipe_cls.presets)}, not '{chosen}'.")
        cfg = apply_overrides(cfg, {**recipe_cls.presets[chosen], "preset": chosen}, f"preset '{chosen}'")
    cfg = apply_overrides(cfg, file_values, str(config_file))
    cfg = apply_overrides(cfg, {k: v for k, v in options.items() if v is not None}, "the options")
    cfg = apply_overrides(cfg, sets or {}, "--set")
    if cfg.recipe != recipe:
        raise ConfigError(f"Config is for recipe '{cfg.recipe}', not '{recipe}'.")
    if not cfg.out:
        cfg = apply_overrides(cfg, {"out": f"runs/{recipe}-{time.strftime('%Y%m%d-%H%M%S')}"}, "default")
    return validate(cfg)


def resume_config(run_dir: str | Path, **options: Any) -> TrainConfig:
    """The saved config of a run, with explicitly given options (e.g. more steps) applied."""
    run = open_run(run_dir)
    changed = {k: v for k, v in options.items() if v is not None}
    cfg = apply_overrides(run.cfg, {**changed, "out": str(run.path)}, "the options")
    return validate(cfg)


def train(cfg: TrainConfig, resume: bool = False,
          on_start: Callable[[Trainer], None] | None = None,
          on_progress: Callable[[int, dict[str, float]], None] | None = None) -> Run:
    """Train (or resume) the run described by cfg; returns the run."""
    from recipes import get_recipe

    recipe = get_recipe(cfg.recipe)(cfg)
    main = distributed.world_from_env().main  # under torchrun, process 0 alone writes the run folder
    run_dir = check_run_dir(cfg, resume) if main else Path(cfg.out)
    try:
        with RunLock(run_dir) if main else contextlib.nullcontext():  # one training process per run folder
            trainer = Trainer(recipe, run_dir)
            if resume:
                trainer.resume()  # from the latest checkpoint, or from step 0 if it stopped before the first
            if main:
                start_run_dir(cfg, run_dir)
            if on_start:
                on_start(trainer)
            with exit_recorded(run_dir, main):
                trainer.fit(on_progress)
    finally:
        distributed.stop()
    return open_run(run_dir)


def sample(run_dir: str | Path, n: int = 64, seed: int = 0, checkpoint: str | None = None,
           device: str = "cpu", **kwargs: Any) -> torch.Tensor:
    """n images in [-1, 1] from a run's generator (EMA weights when the run has them)."""
    run = open_run(run_dir)
    G = run.load_generator(checkpoint, device)
    generator = torch.Generator(device).manual_seed(seed)
    return run.recipe.sample(G, n, generator, **kwargs)


# ---- the runs overview -------------------------------------------------------------------------


def list_runs(root: str | Path = "runs") -> list[dict[str, Any]]:
    """One summary per run folder under root (recipe, step / steps, status, best score, last checkpoint, wall time)."""
    from gancli.runs import find_runs, summarize_run

    return [summarize_run(path) for path in find_runs(root)]
