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


# ---- controlled studies and the self-modulation paper's analysis metrics (issue 17) ----------------------
def builtin_studies() -> dict[str, str]:
    """The study files shipped with gancli (name -> what it compares); run one with run_study(name, out)."""
    from gancli.study import builtin_studies as names

    return names()


def load_study(spec: str | Path, sets: dict[str, Any] | None = None):
    """A study from a TOML file or a built-in name, with --set values added to its fixed [base] settings."""
    from gancli.study import load_study as load

    study = load(spec)
    if sets:
        study.base = {**study.base, **sets}
    return study


def run_study(study, out: str | Path, jobs: int = 1, retry_failed: bool = False,
              on_cell: Callable[[dict[str, Any], int, int], None] | None = None,
              on_step: Callable[[Any, int, int], None] | None = None,
              on_plan: Callable[[int, int], None] | None = None):
    """Train every cell of a study (a Study or a spec for load_study) into out/cells/, resuming where it stopped."""
    from gancli.study import Study
    from gancli.study import run_study as run

    if not isinstance(study, Study):
        study = load_study(study)
    return run(study, out, jobs=jobs, retry_failed=retry_failed, on_cell=on_cell, on_step=on_step, on_plan=on_plan)


def study_report(study_dir: str | Path, which: str = "final", top: float = 0.05, draws: int = 1000):
    """Write a study folder's tables (CSV) and plots (PNG) into study_dir/report/."""
    from gancli.study_report import write_report

    return write_report(study_dir, which=which, fraction=top, draws=draws)


def evaluate_prd(real: str, fake: str, *, n: int | None = None, n_real: int | None = None,
                 num_clusters: int = 20, num_angles: int = 1001, num_runs: int = 10, seed: int = 0,
                 checkpoint: str | None = None, ema: bool = True, truncation: float | None = None,
                 evaluator=None, **evaluator_options: Any):
    """PRD (Sajjadi et al. 2018) of fake against real, on the features of an Evaluator; returns (PRD, protocol)."""
    from gancli.errors import DataError
    from gancli.metrics import Evaluator
    from gancli.metrics.prd import compute_prd

    ev = evaluator or Evaluator(**evaluator_options)
    run_options = {"checkpoint": checkpoint, "ema": ema, "truncation": truncation, "seed": seed}
    n, n_real = (n if n is not None else n_real), (n_real if n_real is not None else n)  # one count sets both
    fake_source = ev.open(fake, n=n, **run_options)
    real_source = ev.open(real, n=n_real)
    fewest = min(fake_source.n, real_source.n)
    if n is None and fake_source.n != real_source.n:  # by default, equal counts from both
        if fake_source.n > fewest and fake_source.kind != "stats":
            fake_source = ev.open(fake, n=fewest, **run_options)
        elif real_source.n > fewest and real_source.kind != "stats":
            real_source = ev.open(real, n=fewest)
    ev.last_sources = (fake_source, real_source)
    real_stats = ev.stats(real_source, need_pool=True, role="real")
    fake_stats = ev.stats(fake_source, need_pool=True, role="fake")
    if real_stats.n != fake_stats.n:
        raise DataError(f"PRD needs as many real as generated images (Sajjadi et al. cluster a balanced union); "
                        f"'{real}' gives {real_stats.n:,} and '{fake}' {fake_stats.n:,}: pass --n-real and --n.")
    prd = compute_prd(fake_stats.pool, real_stats.pool, num_clusters, num_angles, num_runs, seed, ev.device)
    protocol = {**ev.protocol(fake_source, fake_stats, real_source, real_stats), "prd_clusters": num_clusters,
                "prd_angles": num_angles, "prd_runs": num_runs}
    return prd, protocol


def jacobian_conditioning(run_dir: str | Path, n: int = 64, seed: int = 0, checkpoint: str | None = None,
                          device: str = "cpu", ema: bool = True):
    """Condition numbers of a run generator's Jacobian at n latents z ~ N(0, I) (Odena et al. 2018)."""
    from gancli.errors import ConfigError
    from gancli.metrics.jacobian import jacobian_condition_numbers

    if n < 1:
        raise ConfigError(f"--n must be a positive number, got {n}.")
    run = open_run(run_dir)
    z_dim = getattr(run.cfg, "z_dim", None)
    if not z_dim:
        raise ConfigError(f"Recipe '{run.cfg.recipe}' has no latent z, so its generator has no Jacobian in z.")
    G = run.load_generator(checkpoint, device, ema=ema)
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    return jacobian_condition_numbers(G, z)
