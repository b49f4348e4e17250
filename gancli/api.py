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


# ---- class-conditional sampling and the truncation trade-off (BigGAN, issue 13) -----------------------------------
def _conditional_classes(run: Run) -> int:
    """The run's number of classes; a ConfigError when its recipe is not class-conditional."""
    import inspect

    classes = getattr(run.cfg, "num_classes", 0)
    if "labels" not in inspect.signature(run.recipe.sample).parameters or not classes:
        raise ConfigError(f"Run '{run.path}' (recipe {run.recipe.name}) is not class-conditional, so --class does "
                          f"not apply.")
    return classes


def _class_index(run: Run, class_id: int | str) -> int:
    classes = _conditional_classes(run)
    try:
        index = int(class_id)
    except (TypeError, ValueError):
        raise ConfigError(f"--class must be a class index or 'all', got '{class_id}'.") from None
    if not 0 <= index < classes:
        raise ConfigError(f"Class {index} is out of range: run '{run.path}' has classes 0 to {classes - 1}.")
    return index


def sample_sheet(run_dir: str | Path, n: int = 64, *, class_id: int | str | None = None,
                 truncation: float | None = None, seed: int = 0, checkpoint: str | None = None,
                 device: str = "cpu", ema: bool = True) -> tuple[torch.Tensor, int | None]:
    """(images in [-1, 1], images per grid row or None) for `gancli sample`.

    class_id None: the recipe's own choice of classes; an index: n images of that class; 'all': the same
    number of every class, n // classes each (at least one), a row per class.
    """
    from gancli.device import resolve_device
    from gancli.runs import sampling_options

    if n <= 0:
        raise ConfigError(f"--n must be a positive number, got {n}.")
    run = open_run(run_dir)
    options = sampling_options(run.recipe, truncation)
    per_row = None
    if class_id is not None:
        if str(class_id).lower() == "all":
            classes = _conditional_classes(run)
            per_row = max(1, n // classes)
            labels = torch.arange(classes).repeat_interleave(per_row)
        else:
            labels = torch.full((n,), _class_index(run, class_id), dtype=torch.long)
        options["labels"] = labels
        n = len(labels)
    dev = resolve_device(device)
    G = run.load_generator(checkpoint, dev, ema=ema)
    return run.recipe.sample(G, n, torch.Generator(dev).manual_seed(seed), **options), per_row


def interpolate(run_dir: str | Path, mode: str = "z", rows: int = 4, steps: int = 8, *,
                class_id: int | str | None = None, truncation: float | None = None, seed: int = 0,
                checkpoint: str | None = None, device: str = "cpu", ema: bool = True) -> torch.Tensor:
    """rows strips of `steps` images: between two latents (mode 'z', class fixed: class_id or drawn) or between the
    class codes of two classes (mode 'class', latent fixed)."""
    from gancli.device import resolve_device
    from gancli.runs import sampling_options

    if mode not in ("z", "class"):
        raise ConfigError(f"--interpolate must be 'z' (between two latents) or 'class' (between two classes), "
                          f"got '{mode}'.")
    if rows <= 0 or steps < 2:
        raise ConfigError(f"--interpolate needs a positive --n (strips) and --steps of at least 2, got {rows} and "
                          f"{steps}.")
    run = open_run(run_dir)
    if not hasattr(run.recipe, "interpolate"):
        raise ConfigError(f"Recipe '{run.recipe.name}' does not support --interpolate.")
    sampling_options(run.recipe, truncation)
    _conditional_classes(run)
    if class_id is not None and mode == "class":
        raise ConfigError("--class fixes the class of a latent interpolation; --interpolate class draws the pairs "
                          "of classes itself.")
    label = _class_index(run, class_id) if class_id is not None else None
    dev = resolve_device(device)
    G = run.load_generator(checkpoint, dev, ema=ema)
    return run.recipe.interpolate(G, rows, steps, torch.Generator(dev).manual_seed(seed), mode=mode,
                                  truncation=truncation, label=label)


def parse_thresholds(text: str) -> list[float]:
    """'0.25,0.5,1' -> [0.25, 0.5, 1.0], each a positive number."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--thresholds must be comma-separated numbers, e.g. 0.25,0.5,1.0, got '{text}'.") from None
    if not values or any(not v > 0 for v in values):
        raise ConfigError(f"--thresholds must be positive truncation thresholds, got '{text}'.")
    return sorted(set(values))


def evaluate_truncation(run_dir: str | Path, thresholds: list[float], *, n: int = 10_000, real: str | None = None,
                        features: str | None = None, seed: int = 0, checkpoint: str | None = None,
                        device: str = "auto", ema: bool = True, out: str | Path | None = None,
                        on_threshold: Callable[[float, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """FID, IS and precision/recall of class-balanced samples at each truncation threshold (BigGAN Fig. 16).

    Builtin-classifier features on builtin data, TF-Inception otherwise (or `features`); the reference is the
    run's evaluation reference (or `real`). Writes OUT/truncation.png and OUT/truncation.json (OUT defaults to
    RUN/truncation) and returns what the JSON holds.
    """
    import json

    from gancli.device import resolve_device
    from gancli.metrics import GeneratorEvaluator
    from gancli.metrics.truncation import plot_truncation, truncation_sweep
    from gancli.runs import sampling_options

    if n < 2:
        raise ConfigError(f"--n must be at least 2 images per threshold, got {n}.")
    run = open_run(run_dir)
    for threshold in thresholds:
        sampling_options(run.recipe, threshold)
    classes = _conditional_classes(run)
    cfg = run.cfg
    builtin = not cfg.data
    reference = real or getattr(cfg, "eval_reference", "") or (f"builtin:test:{cfg.resolution}" if builtin
                                                                else cfg.data)
    features = features or getattr(cfg, "eval_features", "") or ("builtin" if builtin else "inception")
    dev = resolve_device(device)
    G = run.load_generator(checkpoint, dev, ema=ema)
    evaluator = GeneratorEvaluator(reference, n=n, metrics=("fid", "is", "pr"), features=features, device=dev,
                                   seed=seed, data_root=getattr(cfg, "data_root", "") or None)

    def sampler_at(threshold: float):
        drawn = 0

        def sampler(count: int, generator: torch.Generator) -> torch.Tensor:
            nonlocal drawn
            labels = (torch.arange(count) + drawn) % classes  # class-balanced over the whole set
            drawn += count
            return run.recipe.sample(G, count, generator, truncation=threshold, labels=labels)

        return sampler

    rows = truncation_sweep(evaluator, sampler_at, thresholds, on_threshold)
    out = Path(out) if out is not None else run.path / "truncation"
    out.mkdir(parents=True, exist_ok=True)
    result = {"run": str(run.path), "checkpoint": run.checkpoint(checkpoint).name, "ema": run.loaded_ema,
              "features": rows[0]["features"], "protocol": rows[0]["protocol"], "seed": seed,
              "thresholds": [{k: v for k, v in row.items() if k not in ("features", "protocol")} for row in rows]}
    (out / "truncation.json").write_text(json.dumps(result, indent=2))
    plot_truncation(result["thresholds"], out / "truncation.png",
                    f"{run.path.name} · {result['checkpoint']}{' (EMA)' if run.loaded_ema else ''} · {result['features']}")
    result["files"] = [str(out / "truncation.png"), str(out / "truncation.json")]
    return result
