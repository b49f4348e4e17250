"""The Python API: everything the CLI does, in a few calls.

    from gancli import api
    cfg = api.make_config("uncond", preset="quick", norm="san")
    run = api.train(cfg)
    images = api.sample(run.path, n=16)
    score = api.evaluate("fid", fake=run.path, real="builtin:test:32", features="builtin", n=1000)

The only layer (with gancli.runs) that turns a run folder into objects; the CLI and examples/ go through it.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gancli.config import TrainConfig, apply_overrides, load_toml, validate
from gancli.errors import CheckpointError, ConfigError, state_dict_mismatch
from gancli.runs import (LoadedRun, Run, num_classes, open_run, record_in_run, run_records, run_source, sample_grids,
                         summarize_run, verb_inputs)
from gancli.train import distributed
from gancli.train.lock import RunLock
from gancli.train.trainer import Trainer, check_run_dir, exit_recorded, start_run_dir

__all__ = ["make_config", "train", "sample", "load", "open_run", "evaluator", "evaluate", "record_in_run",
           "recipes", "bench_training", "bench_eval", "translate", "synthesize", "upscale", "score_images",
           "save_samples", "last_evaluation", "summarize_run", "run_records", "sample_grids", "verb_inputs",
           "iqa_metrics", "score_iqa", "export"]


def recipes() -> list[dict[str, Any]]:
    """Each registered recipe: name, summary, presets, the offline default preset, and its critic and why."""
    from recipes import REGISTRY, get_recipe

    return [{"name": name, "summary": cls.summary, "presets": list(cls.presets), "offline_preset": cls.offline_preset,
             "offline_critic": critic_summary(make_config(name, out="-")), "offline_critic_why": cls.offline_critic_why}
            for name, cls in ((name, get_recipe(name)) for name in REGISTRY)]


def critic_summary(cfg: TrainConfig) -> str:
    """The critic normalization a config trains with, in words: e.g. 'san (g 1.5, circular padding)'."""
    if cfg.norm in ("none", "bn", "ln", "wn"):
        return cfg.norm
    details = []
    if cfg.norm in ("san", "sn-exact"):
        if cfg.norm == "san" and cfg.norm_ratio < 1:
            details.append(f"r {cfg.norm_ratio:g}")
        if cfg.norm == "san" and cfg.norm_gain:
            details.append(f"g {cfg.norm_gain:g}")
        details.append("zero padding" if cfg.critic_padding == "zeros" else "circular padding")
    elif cfg.critic_padding != "auto":
        details.append(f"{cfg.critic_padding} padding")
    return cfg.norm + (f" ({', '.join(details)})" if details else "")


# A preset's tuning of its own critic normalization (e.g. SAN's gain at CPU size). A norm the user names (--norm,
# --set norm=..., a config file) comes without it, so that `--norm san` is always SAN as the paper defines it.
NORM_TUNING = ("norm_ratio", "norm_gain", "norm_every", "critic_padding")


def make_config(recipe: str, *, preset: str | None = None, config_file: str | Path | None = None,
                sets: dict[str, Any] | None = None, **options: Any) -> TrainConfig:
    """Resolve a config: recipe defaults < preset < TOML file < options < sets.

    Without data and without a preset, the recipe's offline preset (CPU-sized, builtin data) is used. When the user
    names the critic's norm, the preset's NORM_TUNING settings are left out.
    """
    from recipes import get_recipe

    recipe_cls = get_recipe(recipe)
    cfg = recipe_cls.Config()
    file_values = load_toml(config_file) if config_file else {}
    chosen = preset or file_values.get("preset") or ""
    has_data = options.get("data") or file_values.get("data") or (sets or {}).get("data")
    if not chosen and not has_data:
        chosen = recipe_cls.offline_preset
    given = {**file_values, **{k: v for k, v in options.items() if v is not None}, **(sets or {})}
    if chosen:
        cfg = _apply_preset(cfg, recipe_cls, chosen, norm_named="norm" in given)
    init_from = str(given.get("init_from") or given.get("init-from") or "")
    if init_from:  # the networks of the run it starts from, unless given here
        cfg = _network_of(cfg, recipe_cls, init_from, {k.replace("-", "_") for k in given})
    cfg = apply_overrides(cfg, file_values, str(config_file))
    cfg = apply_overrides(cfg, {k: v for k, v in options.items() if v is not None}, "the options")
    cfg = apply_overrides(cfg, sets or {}, "--set")
    if cfg.recipe != recipe:
        raise ConfigError(f"Config is for recipe '{cfg.recipe}', not '{recipe}'.")
    if not cfg.out:
        cfg = apply_overrides(cfg, {"out": f"runs/{recipe}-{time.strftime('%Y%m%d-%H%M%S')}"}, "default")
    return validate(cfg)


def _apply_preset(cfg: TrainConfig, recipe_cls, preset: str, norm_named: bool = False) -> TrainConfig:
    """The preset's values over cfg; without its NORM_TUNING when the user names the norm (the paper's norm then)."""
    if preset not in recipe_cls.presets:
        raise ConfigError(f"Recipe '{recipe_cls.name}' has presets {', '.join(recipe_cls.presets)}, not '{preset}'.")
    values = recipe_cls.presets[preset]
    if norm_named:
        values = {k: v for k, v in values.items() if k not in NORM_TUNING}
    return apply_overrides(cfg, {**values, "preset": preset}, f"preset '{preset}'")


def _network_of(cfg: TrainConfig, recipe_cls, run_dir: str, given: set[str]) -> TrainConfig:
    """cfg with the network-shaping fields (Recipe.network_fields) of the --init-from run that were not given."""
    from gancli.train.init_from import source_config

    theirs = source_config(run_dir, recipe_cls.name)
    fields = {k: theirs[k] for k in recipe_cls.network_fields if k in theirs and k not in given}
    return apply_overrides(cfg, fields, f"--init-from '{run_dir}'")


def resume_config(run_dir: str | Path, **options: Any) -> TrainConfig:
    """The saved config of a run, with explicitly given options (e.g. more steps) applied."""
    run = open_run(run_dir)
    changed = {k: v for k, v in options.items() if v is not None}
    cfg = apply_overrides(run.cfg, {**changed, "out": str(run.path)}, "the options")
    return validate(cfg)


def train(cfg: TrainConfig, resume: bool = False,
          on_start: Callable[[Trainer], None] | None = None,
          on_progress: Callable[[int, dict[str, float]], None] | None = None) -> Run:
    """Train (or resume) the run described by cfg; returns the run.

    on_progress(step, losses) is called after every step; losses (means since the last log) come at the log steps
    only, and are empty between them, so that training never waits on the GPU to read them.
    """
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


def main_process() -> bool:
    """Whether this is process 0 (always, outside torchrun), which speaks for all and writes the run folder."""
    return distributed.world_from_env().main


def last_evaluation(run_dir: str | Path) -> tuple[str | None, dict[str, Any] | None]:
    """(why evaluation was skipped, or None; the last evaluation record of metrics.jsonl, or None) of a run."""
    from gancli.train.plots import read_metrics

    records = read_metrics(Path(run_dir) / "metrics.jsonl")
    skipped = next((r["eval_skipped"] for r in records if "eval_skipped" in r), None)
    evals = [r for r in records if any(k.startswith("eval/") for k in r)]
    return skipped, evals[-1] if evals else None


def load(run_dir: str | Path, checkpoint: str | None = None, device: str = "cpu", ema: bool = True,
         verb: str | None = None) -> LoadedRun:
    """A run's generator (EMA weights when the run has them and ema is True) with its recipe's inference verbs;
    `verb` (e.g. "upscale") is refused in one sentence, before loading, when the run's recipe lacks it."""
    from gancli.device import resolve_device

    return open_run(run_dir).load(checkpoint, resolve_device(device), ema, verb)


def sample(run_dir: str | Path, n: int = 64, seed: int = 0, checkpoint: str | None = None,
           device: str = "cpu", ema: bool = True, truncation: float | None = None, **kwargs: Any) -> torch.Tensor:
    """n images in [-1, 1] from a run's generator (EMA weights when the run has them)."""
    return load(run_dir, checkpoint, device, ema).sample(n, seed, truncation, **kwargs)


def evaluator(**options: Any):
    """A gancli.metrics Evaluator (options are its fields) that also takes run folders as sources."""
    from gancli.metrics import Evaluator

    return Evaluator(**options, open_run=run_source)


def evaluate(metric: str, fake: str | Path, real: str | Path | None = None, **options: Any):
    """One metric in one call, run folders included: `evaluate("fid", fake="runs/x", real="cifar10:test")`.

    Options are Evaluator fields (features, weights, device, precision, ...) or Evaluator.evaluate arguments
    (n, n_real, kid_subset_size, truncation, ...).
    """
    import dataclasses

    from gancli.metrics import Evaluator

    fields = {f.name for f in dataclasses.fields(Evaluator) if f.init} - {"open_run"}
    ev = evaluator(**{k: v for k, v in options.items() if k in fields})
    return ev.evaluate(metric, str(fake), None if real is None else str(real),
                       **{k: v for k, v in options.items() if k not in fields})


def iqa_metrics() -> list[dict[str, Any]]:
    """The metrics `gancli eval iqa` takes (gancli's niqe and PI, and every pyiqa metric): name, mode, by whom."""
    from gancli.metrics.quality.pyiqa_metrics import list_metrics

    return list_metrics()


def score_iqa(metric: str, pred: str | Path, gt: str | Path | None = None, *, device: str = "auto",
              **options: Any) -> dict[str, Any]:
    """`gancli eval iqa`: any pyiqa metric (or gancli's niqe, PI) of every image in a folder, paired with gt by file
    name for full-reference metrics, and their mean, with its protocol (options as folders.score_iqa)."""
    from gancli.device import resolve_device
    from gancli.metrics.quality.folders import score_iqa as score

    return score(metric, Path(pred), None if gt is None else Path(gt), device=resolve_device(device), **options)


# ---------------------------------------------------------------------------------------------
# Training throughput (`gancli bench train`): variants timed in one process against a baseline
# ---------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class _Timed:
    """One variant of `gancli bench train`: its trainer, batch stream and the rates of its rounds."""
    name: str
    trainer: Trainer
    stream: Any
    resident: int  # accelerator bytes its networks and optimizer state hold between rounds
    rates: list[float]
    peak: int = 0


def _timed_variant(name: str, recipe: str, options: dict[str, Any], out: Path, warmup: int) -> _Timed:
    from gancli.data.stream import batch_stream
    from recipes import get_recipe

    cfg = make_config(recipe, **{**options, "out": str(out)})
    cuda = torch.cuda.is_available()
    before = torch.cuda.memory_allocated() if cuda else 0
    trainer = Trainer(get_recipe(recipe)(cfg), out.parent)
    stream = batch_stream(trainer.dataset, cfg.batch_size, cfg.seed, 0, trainer.workers())
    for _ in range(warmup):  # --compile compiles after the first of these
        trainer.iteration(stream)
    _sync(trainer.device)
    resident = torch.cuda.memory_allocated() - before if cuda else 0
    return _Timed(name, trainer, stream, resident, [])


def bench_training(recipe: str, base: dict[str, Any], variants: list[str], iters: int, warmup: int,
                   rounds: int = 5) -> list[dict[str, Any]]:
    """Time the base config and each 'key=value,key=value' variant, all in this process and interleaved.

    Every variant's trainer is built and warmed up first; then `rounds` rounds time each in turn for its share of
    `iters` iterations (n_dis critic steps + one generator step, EMA and data loading included), so that a drift
    of the machine's speed (clocks, other load) falls on all of them alike. it/s is the median over rounds, the
    ratio the median of the rounds' ratios to the baseline; peak memory is the accelerator's peak during the
    variant's rounds above what the other variants hold (None on the CPU, where PyTorch keeps no peak).
    """
    import tempfile

    from gancli.config import parse_set

    rounds = max(1, min(rounds, iters))
    # Every compiled variant's networks add cache entries to the same forward code objects: dynamo's limit of 8
    # per code object (enough for one training process) would send the later variants to eager.
    with tempfile.TemporaryDirectory() as tmp, torch._dynamo.config.patch(recompile_limit=8 * (len(variants) + 1)):
        timed = []
        for i, variant in enumerate(["", *variants]):
            changes = parse_set([v for v in variant.split(",") if v]) if variant else {}
            timed.append(_timed_variant(variant or "baseline", recipe, {**base, **changes},
                                        Path(tmp) / f"v{i}" / "run", warmup))
        for r in range(rounds):
            n = iters // rounds + (r < iters % rounds)
            for t in timed:
                cuda = t.trainer.device.type == "cuda"
                if cuda:
                    held = torch.cuda.memory_allocated(t.trainer.device)
                    torch.cuda.reset_peak_memory_stats(t.trainer.device)
                start = time.perf_counter()
                for _ in range(n):
                    t.trainer.iteration(t.stream)
                _sync(t.trainer.device)
                t.rates.append(n / (time.perf_counter() - start))
                if cuda:
                    t.peak = max(t.peak, torch.cuda.max_memory_allocated(t.trainer.device) - held + t.resident)
        rows = []
        for t in timed:
            ratios = [rate / base_rate for rate, base_rate in zip(t.rates, timed[0].rates)]
            it_s, batch = statistics.median(t.rates), t.trainer.cfg.batch_size
            peak = t.peak / 2**20 if t.trainer.device.type == "cuda" else None
            rows.append({"variant": t.name, "it_s": it_s, "img_s": it_s * batch, "ratio": statistics.median(ratios),
                         "rounds": len(t.rates), "peak_mib": peak,
                         "peak_mib_per_image": peak / batch if peak is not None else None})
    return rows


def bench_eval(**options: Any) -> dict[str, Any]:
    """`gancli bench eval`: gancli's Inception feature engine against torch-fidelity's (options as
    gancli.metrics.generative.bench.bench_feature_engines)."""
    from gancli.metrics.generative.bench import bench_feature_engines

    return bench_feature_engines(**options)


# ---------------------------------------------------------------------------------------------
# The runs overview (`gancli runs`): status, progress and best score of each run in a folder
# ---------------------------------------------------------------------------------------------
def list_runs(root: str | Path = "runs") -> list[dict[str, Any]]:
    """One summary per run folder under root (recipe, step / steps, status, best score, last checkpoint, wall time)."""
    from gancli.runs import find_runs

    return [summarize_run(path) for path in find_runs(root)]


# ---- the recipes' file verbs: translate (stargan), synthesize (spade), upscale (sr) --------------------------------
def _loader(run: Run, checkpoint: str | None, device: str, ema: bool) -> Callable[..., dict[str, torch.nn.Module]]:
    """A recipe verb's Loader: the run's networks by name ("G", "D"), loaded on the device when the verb asks."""
    from gancli.device import resolve_device

    dev = resolve_device(device)
    loaders = {"G": lambda: run.load_generator(checkpoint, dev, ema=ema), "D": lambda: run.load_critic(checkpoint, dev)}
    return lambda *names: {name: loaders[name]() for name in names}


def translate(run_dir: str | Path, images: list[str | Path], attrs: list[str] | dict[str, int] = (), *,
              out: str | Path, grid: bool = False, checkpoint: str | None = None, device: str = "cpu",
              ema: bool = True):
    """Translate image files with a stargan run: attrs 'Name=1'/'Name=0' (or {name: ±1}) applied to the
    attributes each image has; grid=True also writes inputs × each single-attribute change as one PNG."""
    run = open_run(run_dir)
    run.recipe.check_supports("translate_files")
    return run.recipe.translate_files(_loader(run, checkpoint, device, ema), [Path(p) for p in images], attrs,
                                      out=Path(out), grid=grid)


def synthesize(run_dir: str | Path, labels: list[str | Path], out: str | Path, *, palette: bool = False,
               style: str | Path | None = None, n_styles: int = 1, seed: int = 0, checkpoint: str | None = None,
               device: str = "cpu", ema: bool = True) -> list[Path]:
    """Synthesize one PNG per label map (× n_styles) with a spade run; returns the files written.

    Label maps are PNGs of label ids, or colour-coded with the run's palette when `palette` is set.
    `style` (an image) and `n_styles` > 1 need a run trained with the VAE (use_vae).
    """
    run = open_run(run_dir)
    run.recipe.check_supports("synthesize_files")
    return run.recipe.synthesize_files(_loader(run, checkpoint, device, ema), [Path(p) for p in labels], Path(out),
                                       palette=palette, style=style, n_styles=n_styles, seed=seed,
                                       source=f"run '{run_dir}'")


def upscale(run_dir: str | Path, inputs: list[str | Path], out: str | Path, *, tile: int = 256, overlap: int = 40,
            checkpoint: str | None = None, device: str = "auto", ema: bool = True,
            on_start: Callable[[int, int], None] | None = None,
            on_tile: Callable[[str, int, int], None] | None = None,
            on_image: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Upscale image files and folders with an sr run into out (names and folder layout kept, lossy formats
    written as .png): {"files": [written], "converted": lossy inputs, "scale": s}. on_start(total, scale),
    on_tile(name, done, total) and on_image(name) report progress."""
    from gancli.data.images import load_image, plan_outputs, save_image

    if tile < 0 or overlap < 0:
        raise ConfigError(f"--tile and --overlap must not be negative, got {tile} and {overlap}.")
    model = load(run_dir, checkpoint, device, ema, verb="upscale")
    pairs = plan_outputs([Path(p) for p in inputs], Path(out))
    if on_start:
        on_start(len(pairs), model.cfg.scale)
    for src, dst in pairs:
        tiles = (lambda done, total, name=src.name: on_tile(name, done, total)) if on_tile else None
        result = model.upscale(load_image(src), tile=tile, overlap=overlap, on_tile=tiles)
        dst.parent.mkdir(parents=True, exist_ok=True)
        save_image(result, dst)
        if on_image:
            on_image(src.name)
    return {"files": [dst for _, dst in pairs], "scale": model.cfg.scale,
            "converted": sum(src.suffix.lower() != dst.suffix.lower() for src, dst in pairs)}


def score_images(metric: str, pred: str | Path, gt: str | Path | None = None, *, device: str = "auto",
                 **options: Any) -> dict[str, Any]:
    """`gancli eval psnr|ssim|lpips|niqe`: the metric of every image in a folder (paired with gt by file name) and
    their mean, with its convention (options as gancli.metrics.quality.folders.score_images)."""
    from gancli.device import resolve_device
    from gancli.metrics.quality.folders import score_images as score

    return score(metric, Path(pred), None if gt is None else Path(gt), device=resolve_device(device), **options)


# ---- class-conditional sampling and the truncation trade-off (BigGAN, issue 13) -----------------------------------
def _conditional_classes(run: Run) -> int:
    """The run's number of classes; a ConfigError when its recipe is not class-conditional."""
    classes = num_classes(run.recipe)
    if not classes:
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


def save_samples(run_dir: str | Path, n: int = 64, out: str | Path | None = None, *,
                 interpolation: str | None = None, steps: int = 8, **options: Any) -> tuple[int, Path]:
    """`gancli sample`: a grid (out FILE.png, default RUN/samples/sample.png or interpolation.png) or one PNG per image
    (out a folder) of sample_sheet(n), or of n `interpolation` strips (mode z or class) of `steps` images; returns
    (images written, where). Options as sample_sheet."""
    from gancli.data.images import save_image, to_uint8
    from gancli.train.plots import save_grid

    if n <= 0:
        raise ConfigError(f"--n must be a positive number, got {n}.")
    out = None if out is None else Path(out)
    grid = out is not None and out.suffix.lower() in (".png", ".jpg", ".jpeg")
    if out is not None and not grid and out.suffix and not out.is_dir():
        raise ConfigError(f"--out '{out}' is neither a .png or .jpg file (for a grid) nor a folder (for one PNG per "
                          f"image); give a name ending in .png, or a folder name without a suffix.")
    if interpolation is not None:
        images, per_row = interpolate(run_dir, interpolation, rows=n, steps=steps, **options), steps
    else:
        images, per_row = sample_sheet(run_dir, n, **options)
    if out is None:
        out, grid = Path(run_dir) / "samples" / ("interpolation.png" if interpolation else "sample.png"), True
    if grid:
        save_grid(images, out, nrow=per_row)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(to_uint8(images)):
            save_image(image, out / f"{i:05d}.png")
    return len(images), out


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
    run.recipe.check_supports("interpolate")
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


def _standing_protocol(cfg: TrainConfig) -> str:
    """How a truncation sweep's generator got its BN statistics (BigGAN-PyTorch sample.py --accumulate_stats)."""
    passes = getattr(cfg, "standing_passes", 0)
    if not passes:
        return "the generator's own"
    again = ", re-estimated on the truncated z at each threshold" if getattr(cfg, "truncated_standing_stats", False) \
        else ", on untruncated z"
    return f"standing statistics over {passes} passes{again}"


def evaluate_truncation(run_dir: str | Path, thresholds: list[float], *, n: int = 10_000, real: str | None = None,
                        features: str | None = None, seed: int = 0, checkpoint: str | None = None,
                        device: str = "auto", ema: bool = True, out: str | Path | None = None,
                        on_threshold: Callable[[float, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """FID, IS and precision/recall at each truncation threshold (BigGAN Fig. 16), class-balanced for a conditional G.

    Builtin-classifier features on builtin data, TF-Inception otherwise (or `features`); the reference is the
    run's evaluation reference (or `real`). Writes OUT/truncation.png and OUT/truncation.json (OUT defaults to
    RUN/truncation) and returns what the JSON holds.
    """
    import json

    from gancli.device import resolve_device
    from gancli.metrics.generative.evaluator import config_evaluator
    from gancli.metrics.generative.truncation import plot_truncation, truncation_sweep
    from gancli.runs import sampling_options

    if n < 2:
        raise ConfigError(f"--n must be at least 2 images per threshold, got {n}.")
    run = open_run(run_dir)
    for threshold in thresholds:
        sampling_options(run.recipe, threshold)
    classes = num_classes(run.recipe)
    dev = resolve_device(device)
    G = run.load_generator(checkpoint, dev, ema=ema)
    evaluator = config_evaluator(run.cfg, dev, real=real, features=features, n=n, metrics=("fid", "is", "pr"),
                                 seed=seed)

    def sampler_at(threshold: float):
        drawn = 0

        def sampler(count: int, generator: torch.Generator) -> torch.Tensor:
            nonlocal drawn
            labels = {"labels": (torch.arange(count) + drawn) % classes} if classes else {}  # balanced over the set
            drawn += count
            return run.recipe.sample(G, count, generator, truncation=threshold, **labels)

        return sampler

    rows = truncation_sweep(evaluator, sampler_at, thresholds, on_threshold)
    out = Path(out) if out is not None else run.path / "truncation"
    out.mkdir(parents=True, exist_ok=True)
    result = {"run": str(run.path), "checkpoint": run.checkpoint(checkpoint).name, "ema": run.loaded_ema,
              "features": rows[0]["features"], "protocol": rows[0]["protocol"], "seed": seed,
              "standing_statistics": _standing_protocol(run.cfg),
              "thresholds": [{k: v for k, v in row.items() if k not in ("features", "protocol")} for row in rows]}
    (out / "truncation.json").write_text(json.dumps(result, indent=2))
    weights = f"{result['checkpoint']}{' (EMA)' if run.loaded_ema else ''}"
    plot_truncation(result["thresholds"], out / "truncation.png", f"{run.path.name} · {weights} · {result['features']}")
    result["files"] = [str(out / "truncation.png"), str(out / "truncation.json")]
    return result


# ---- the self-modulation paper's analysis metrics (issue 17); the studies themselves are gancli.study, ----------
# ---- a client of this module (it trains its cells through api.train) -------------------------------------------
def evaluate_prd(real: str, fake: str, *, n: int | None = None, n_real: int | None = None,
                 num_clusters: int = 20, num_angles: int = 1001, num_runs: int = 10, seed: int = 0,
                 checkpoint: str | None = None, ema: bool = True, truncation: float | None = None,
                 evaluator=None, **evaluator_options: Any):
    """PRD (Sajjadi et al. 2018) of fake against real, on the features of an Evaluator; returns (PRD, protocol)."""
    from gancli.errors import DataError
    from gancli.metrics import Evaluator
    from gancli.metrics.generative.prd import compute_prd

    ev = evaluator or Evaluator(**evaluator_options, open_run=run_source)
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


def plot_prd(prd, evaluator, plot: str | Path | None = None) -> Path | None:
    """Draw a PRD curve of evaluate_prd's last sources: to `plot`, or by default to prd.png in the run folder when
    the evaluated side was a run (else nowhere); returns the file."""
    from gancli.metrics.generative.prd import plot_prd as draw

    fake_source = evaluator.last_sources[0]
    if plot is None and fake_source.kind == "run":
        plot = Path(fake_source.run.path) / "prd.png"
    if plot is not None:
        draw({fake_source.label: prd}, Path(plot))
    return None if plot is None else Path(plot)


def jacobian_conditioning(run_dir: str | Path, n: int = 64, seed: int = 0, checkpoint: str | None = None,
                          device: str = "cpu", ema: bool = True):
    """Condition numbers of a run generator's Jacobian at n latents z ~ N(0, I) (Odena et al. 2018)."""
    from gancli.errors import ConfigError
    from gancli.metrics.generative.jacobian import jacobian_condition_numbers

    if n < 1:
        raise ConfigError(f"--n must be a positive number, got {n}.")
    run = open_run(run_dir)
    z_dim = getattr(run.cfg, "z_dim", None)
    if not z_dim:
        raise ConfigError(f"Recipe '{run.cfg.recipe}' has no latent z, so its generator has no Jacobian in z.")
    if num_classes(run.recipe):
        raise ConfigError(f"Run '{run.path}' is class-conditional; `gancli eval jacobian` takes an unconditional "
                          f"generator G(z).")
    G = run.load_generator(checkpoint, device, ema=ema)
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    return jacobian_condition_numbers(G, z)


# ---- published checkpoints (`gancli import`, issue 25) -------------------------------------------------------------
def import_formats() -> list[dict[str, str]]:
    """Each format `gancli import` reads: name, recipe, the reference network, the files it takes, where published."""
    return [{"name": fmt.name, "recipe": recipe_cls.name, "summary": fmt.summary, "files": fmt.files,
             "published": fmt.published} for recipe_cls, fmt in _formats().values()]


def _formats() -> dict[str, tuple[Any, Any]]:
    """format name → (recipe class, ImportFormat), over every registered recipe."""
    from recipes import REGISTRY, get_recipe

    return {name: (cls, fmt) for cls in map(get_recipe, REGISTRY) for name, fmt in cls.import_formats.items()}


def _fresh_output(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"'{out}' already exists and is not an empty folder; choose another --out.")


def import_checkpoint(format: str, file: str | Path, out: str | Path, *, critic: str | Path | None = None,
                      preset: str | None = None, sets: dict[str, Any] | None = None) -> Run:
    """Turn a published checkpoint (and its critic) into a run folder at `out` that every verb, `--resume` and
    `--init-from` take; everything is checked before anything is written, and the folder appears whole or not."""
    from gancli.train.imports import file_sha256, identify, read_state_dict

    formats = _formats()
    if format not in formats:
        raise ConfigError(f"Unknown import format '{format}'; gancli imports {', '.join(formats) or 'none'}.")
    recipe_cls, fmt = formats[format]
    out = Path(out)
    _fresh_output(out)
    G_state = read_state_dict(file, "checkpoint")
    D_state = read_state_dict(critic, "critic") if critic is not None else None
    if not fmt.detect(G_state):
        other = identify(G_state, {k: f for k, (_, f) in formats.items() if k != format})
        if other is not None:
            raise CheckpointError(f"'{file}' is a {other.summary} state dict (format '{other.name}'), not a "
                                  f"{fmt.summary} one.")
        raise CheckpointError(f"'{file}' is not a {fmt.summary} state dict, nor of another format gancli imports "
                              f"(its first keys: {', '.join(list(G_state)[:3])}).")
    cfg = recipe_cls.Config()
    if preset or fmt.preset:
        cfg = _apply_preset(cfg, recipe_cls, preset or fmt.preset)
    cfg = apply_overrides(cfg, {**(sets or {}), "out": str(out)}, "--set")
    imported = fmt.convert(G_state, D_state, cfg)
    if critic is not None and imported.D is None:
        raise ConfigError(f"Format '{format}' imports no critic; drop --critic.")
    weights = _imported_networks(recipe_cls, validate(imported.cfg), imported)
    record = {"format": format, "file": str(Path(file).resolve()), "sha256": file_sha256(file)}
    if critic is not None:
        record["critic"] = {"file": str(Path(critic).resolve()), "sha256": file_sha256(critic)}
    _write_imported_run(imported.cfg, weights, out, {"event": "import", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                     "imported": record})
    return open_run(out)


def _imported_networks(recipe_cls, cfg: TrainConfig, imported) -> dict[str, torch.nn.Module]:
    """The recipe's networks holding the imported weights; D fresh (seeded) when no critic was imported. Each D
    is normalized as cfg.norm asks, as the trainer's is: a converted critic is a plain one, normalized after loading,
    or one already in cfg.norm's layout (e.g. a reference's own spectral norm, its u and v kept), loaded after."""
    from gancli.nn import apply_config_norm

    recipe = recipe_cls(cfg)  # checks the config
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)  # as the trainer seeds before building its networks
        models = recipe.build_models()
    if imported.D is not None and "D" not in models:
        raise ConfigError(f"This {recipe_cls.name} config has no critic, so --critic cannot be imported.")

    normalized_state = imported.D is not None and set(imported.D) != set(models["D"].state_dict())
    if normalized_state:
        apply_config_norm(models["D"], cfg)
    for name, state in (("G", imported.G), ("D", imported.D)):
        if state is None:
            continue
        try:
            models[name].load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"The converted {'generator' if name == 'G' else 'critic'} does not fit the "
                                  f"{recipe_cls.name} network its config describes ({state_dict_mismatch(exc)}).") \
                from None
    if "D" in models and not normalized_state:
        apply_config_norm(models["D"], cfg)
    return models


def _write_imported_run(cfg: TrainConfig, models: dict[str, torch.nn.Module], out: Path, record: dict) -> None:
    """A run folder as the trainer leaves it at step 0 (config, checkpoint with EMA slot and optimizer state),
    written in a hidden folder beside `out` and renamed into place."""
    import json
    import os
    import shutil

    from gancli import __version__
    from gancli.config import save_toml
    from gancli.train import checkpoint as ckpt
    from gancli.train.lock import write_exit
    from gancli.train.trainer import rng_state

    weights = {name: m.state_dict() for name, m in models.items()}
    if cfg.ema:
        weights["G_ema"] = weights["G"]
    optimizers = {"G": torch.optim.Adam(models["G"].parameters(), cfg.lr_g, betas=tuple(cfg.betas_g))}
    if "D" in models:
        optimizers["D"] = torch.optim.Adam(models["D"].parameters(), cfg.lr_d, betas=tuple(cfg.betas_d))
    state = {"step": 0, "best": None, "rng": rng_state(), "rng_ranks": [rng_state()], "wall_time": 0.0,
             "optimizers": {k: o.state_dict() for k, o in optimizers.items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-import-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        save_toml(cfg, tmp / "config.toml")
        ckpt.write_checkpoint(ckpt.step_dir(tmp, 0), weights, {"recipe": cfg.recipe, "step": 0,
                                                               "gancli": __version__}, state)
        (tmp / "metrics.jsonl").write_text(json.dumps(record) + "\n")
        write_exit(tmp, "imported", f"from {record['imported']['file']}")
        if out.is_dir():
            out.rmdir()  # empty (checked): the rename needs it gone
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
__all__ += ["import_formats", "import_checkpoint"]


# ---- generators for deployment (`gancli export`) ------------------------------------------------------------------
def export(run_dir: str | Path, fmt: str, out: str | Path, *, size: tuple[int, int] | None = None,
           dynamic: bool = False, checkpoint: str | None = None, ema: bool = True) -> dict[str, Any]:
    """Write a run's generator (EMA weights, eval mode, normalizations folded) as .pt2 (torch.export) or ONNX, its
    inputs documented in the file's metadata; returns {path, metadata, max_abs_diff} where max_abs_diff is
    |exported − eager| on the example inputs (None for ONNX without onnxruntime)."""
    from gancli import __version__
    from gancli.nn import export as ex

    ex.check_format(fmt)
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ConfigError(f"--size takes a positive height and width, got {' '.join(map(str, size))}.")
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out '{out}' is a folder; give a file name, e.g. {out / ('generator.' + fmt)}.")
    run = open_run(run_dir)
    run.recipe.check_supports("export_inputs")
    G = ex.fold_normalizations(run.load_generator(checkpoint, "cpu", ema=ema))
    inputs = run.recipe.export_inputs(G, size)
    program = ex.export_program(inputs, dynamic)
    metadata = {"gancli": __version__, "recipe": run.recipe.name, "run": str(run.path),
                "checkpoint": run.checkpoint(checkpoint).name, "ema": run.loaded_ema, "format": fmt,
                "inputs": ex.describe_inputs(inputs, dynamic),
                "output": {"name": "generated", "description": inputs.output},
                "dynamic": dynamic, **inputs.metadata}
    if fmt == "onnx":
        metadata["onnx_opset"] = ex.ONNX_OPSET
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pt2":
        ex.save_pt2(program, out, metadata)
    else:
        ex.save_onnx(program, out, inputs, metadata)
    diff = None
    if fmt == "pt2" or ex.onnxruntime_available():
        exported, _ = ex.load_exported(out, fmt)
        with torch.no_grad():
            diff = (exported(*inputs.example) - inputs.module(*inputs.example)).abs().max().item()
    return {"path": out, "metadata": metadata, "max_abs_diff": diff}
