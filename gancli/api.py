"""The Python API: everything the CLI does, in a few calls.

    from gancli import api
    cfg = api.make_config("uncond", preset="quick", norm="san")
    run = api.train(cfg)
    images = api.sample(run.path, n=16)
"""

from __future__ import annotations

import time
from collections.abc import Callable
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


# ---- label-to-image synthesis (spade) ----------------------------------------------------
def synthesize(run_dir: str | Path, labels: list[str | Path], out: str | Path, *, palette: bool = False,
               style: str | Path | None = None, n_styles: int = 1, seed: int = 0, checkpoint: str | None = None,
               device: str = "cpu", ema: bool = True) -> list[Path]:
    """Synthesize one PNG per label map (× n_styles) with a spade run; returns the files written.

    Label maps are PNGs of label ids, or colour-coded with the run's palette when `palette` is set.
    `style` (an image) and `n_styles` > 1 need a run trained with the VAE (use_vae).
    """
    from gancli.data.images import load_image, save_image, to_uint8
    from gancli.data.segmentation import check_ids, ids_from_colours, instance_edges, instance_partner, load_id_map
    from gancli.device import resolve_device

    run = open_run(run_dir)
    recipe = run.recipe
    if not hasattr(recipe, "synthesize"):
        raise ConfigError(f"Run '{run_dir}' is a '{recipe.name}' run; synthesize needs a spade run.")
    if n_styles < 1:
        raise ConfigError(f"--n-styles must be a positive number, got {n_styles}.")
    if not recipe.cfg.use_vae and (style is not None or n_styles > 1):
        raise ConfigError(f"Run '{run_dir}' was trained without the VAE style encoder, so it has one output per map; "
                          f"--style and --n-styles need a run trained with --use-vae.")
    dev = resolve_device(device)
    G = run.load_generator(checkpoint, dev, ema=ema)
    style_image = load_image(style)[None].float() / 127.5 - 1 if style is not None else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator(dev).manual_seed(seed)
    written = []
    for path in map(Path, labels):
        if palette:
            label = ids_from_colours(load_image(path), recipe.palette(), path)
        else:
            label = load_id_map(path)
        check_ids(label, recipe.cfg.label_nc, path, f"run '{run.path}'")
        recipe.check_map_size(G, *label.shape, f"Label map '{path}'")
        edges = None
        if recipe.cfg.instance_edges:
            edges = instance_edges(load_id_map(instance_partner(path)))[None, None]
        batch = label[None].expand(n_styles, -1, -1)
        images = recipe.synthesize(G, batch, None if edges is None else edges.expand(n_styles, -1, -1, -1),
                                   None if style_image is None else style_image.expand(n_styles, -1, -1, -1),
                                   generator)
        for k, image in enumerate(to_uint8(images.cpu())):
            target = out / (f"{path.stem}.png" if n_styles == 1 else f"{path.stem}_style{k}.png")
            save_image(image, target)
            written.append(target)
    return written
