"""The Python API: everything the CLI does, in a few calls.

    from gancli import api
    cfg = api.make_config("uncond", preset="quick", norm="san")
    run = api.train(cfg)
    images = api.sample(run.path, n=16)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gancli.config import TrainConfig, apply_overrides, load_toml, validate
from gancli.errors import ConfigError
from gancli.runs import Run, open_run
from gancli.train import distributed
from gancli.train.trainer import Trainer, check_run_dir, start_run_dir

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
        trainer = Trainer(recipe, run_dir)
        if resume:
            trainer.restore(open_run(run_dir).checkpoint())
        if main:
            start_run_dir(cfg, run_dir)
        if on_start:
            on_start(trainer)
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


# ---- translate (stargan) ------------------------------------------------------------------------
@dataclass
class Translation:
    """What `translate` wrote: one row per input, with the attributes the critic saw in it."""

    inputs: list[Path]
    sources: list[dict[str, int]]  # attribute -> 1 / 0 as read by the run's critic
    outputs: list[Path]  # one translated PNG per input (when attributes were assigned)
    grid: Path | None  # inputs × single-attribute changes (and the assignments), when asked for
    columns: list[str]  # the grid's column titles


def load_critic(run: Run, checkpoint: str | None = None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A run's critic with its training normalization, in eval mode (e.g. to read attributes with its class head)."""
    from gancli.errors import CheckpointError, state_dict_mismatch
    from gancli.nn import apply_critic_norm
    from gancli.train import checkpoint as ckpt

    path = run.checkpoint(checkpoint)
    weights, _ = ckpt.load_weights(path)
    cfg = run.cfg
    D = run.recipe.build_models()["D"]
    apply_critic_norm(D, cfg.norm, ratio=cfg.norm_ratio, gain=cfg.norm_gain or None, every=cfg.norm_every)
    try:
        D.load_state_dict(weights["D"])
    except (KeyError, RuntimeError) as exc:
        reason = state_dict_mismatch(exc) if isinstance(exc, RuntimeError) else "it holds no critic"
        raise CheckpointError(f"Checkpoint '{path}' does not fit the run's critic ({reason}).") from None
    return D.to(device).eval()


def translate(run_dir: str | Path, images: list[str | Path], attrs: list[str] | dict[str, int] = (), *,
              out: str | Path, grid: bool = False, checkpoint: str | None = None, device: str = "cpu",
              ema: bool = True) -> Translation:
    """Translate image files with a stargan run: attrs 'Name=1'/'Name=0' (or {name: ±1}) applied to the
    attributes each image has; grid=True also writes inputs × each single-attribute change as one PNG."""
    from gancli.data.attributes import parse_assignments
    from gancli.data.images import load_image, save_image
    from gancli.device import resolve_device
    from gancli.errors import DataError
    from gancli.train.plots import save_grid

    run = open_run(run_dir)
    recipe = run.recipe
    if not hasattr(recipe, "translate_batch"):
        raise ConfigError(f"Run '{run_dir}' is a '{recipe.name}' run; translate needs a stargan run.")
    assignments = dict(attrs) if isinstance(attrs, dict) else parse_assignments(list(attrs))
    recipe.check_assignments(assignments)
    if not assignments and not grid:
        raise ConfigError("Nothing to do: give --attr NAME=VALUE (repeatable), --grid, or both.")
    paths = [Path(p) for p in images]
    out = Path(out)
    destinations = [out / f"{p.stem}.png" for p in paths]
    for i, dst in enumerate(destinations):
        if dst in destinations[:i]:
            raise DataError(f"'{paths[destinations.index(dst)]}' and '{paths[i]}' would both be written to '{dst}'; "
                            f"translate them separately.")
    dev = resolve_device(device)
    pictures = torch.stack([recipe.prepare(load_image(p)) for p in paths])
    G = run.load_generator(checkpoint, dev, ema=ema)
    sources = recipe.source_attributes(load_critic(run, checkpoint, dev), pictures)
    out.mkdir(parents=True, exist_ok=True)
    outputs: list[Path] = []
    if assignments:
        for image, dst in zip(recipe.translate_batch(G, pictures, recipe.targets(sources, assignments)), destinations):
            save_image(image, dst)
            outputs.append(dst)
    grid_path, titles = None, []
    if grid:
        columns = recipe.grid_targets(sources, assignments)
        titles = ["input"] + [title for title, _ in columns]
        cells = [pictures] + [recipe.translate_batch(G, pictures, targets) for _, targets in columns]
        rows = torch.stack(cells, dim=1).flatten(0, 1)  # row-major: input i, then its translations
        grid_path = save_grid(rows.float() / 127.5 - 1, out / "grid.png", nrow=len(cells))
    names = recipe.names
    readings = [{n: int(v) for n, v in zip(names, row.tolist())} for row in sources]
    return Translation(paths, readings, outputs, grid_path, titles)
__all__ += ["Translation", "load_critic", "translate"]
