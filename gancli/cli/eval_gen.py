"""`gancli eval fid|is|kid|pr|stats`: generative metrics with their protocol in one line."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from gancli.cli.app import eval_app
from gancli.cli.ui import console, err_console, progress
from gancli.errors import ConfigError, DataError

DATASETS_HELP = "a dataset spec (cifar10:train, cifar10:test, stl10:unlabeled, builtin:test, folder:PATH)"
IMAGES_HELP = f"an image folder, a run folder or {DATASETS_HELP}"
SPEC_HELP = f"an image folder, a run folder, {DATASETS_HELP} or a .npz statistics file"

# Options shared by every command (typer reads them from the function signature).
FEATURES_HELP = ("Feature network: inception (TF-Inception 2015-12-05, pool3), vgg16 (torchvision VGG16, fc2 after "
                 "ReLU; no logits, so no IS) or builtin (builtin-data CNN).")
FEATURES = typer.Option("inception", "--features", help=FEATURES_HELP)
FEATURES_PR = typer.Option("vgg16", "--features", help=FEATURES_HELP + " Default vgg16, as Kynkäänniemi et al. and "
                                                                       "torch-fidelity's prc.")
WEIGHTS = typer.Option(None, "--weights", help="Weights file of the feature network (else $GANCLI_INCEPTION_WEIGHTS "
                                               "or $GANCLI_VGG16_WEIGHTS, the torch hub cache, or a download).")
DEVICE = typer.Option("auto", "--device", help="auto, cpu or cuda.")
PRECISION = typer.Option("fp32", "--precision",
                         help="fp32 (IEEE: torch-fidelity's values), or on GPUs tf32 or bf16: faster, and FID moves "
                              "(`gancli bench eval --precision all` reports how far).")
BATCH = typer.Option(None, "--batch-size", help="Images per batch (default 500 on a GPU, 50 on the CPU).")
WORKERS = typer.Option(None, "--workers", help="Image-decoding worker processes (default 8 on a GPU, 0 on CPU).")
N_FAKE = typer.Option(None, "--n", help="Fake images: drawn from a run (default 10,000), or the first N of a folder.")
N_REAL = typer.Option(None, "--n-real", help="Real images: the first N (default all).")
CHECKPOINT = typer.Option(None, "--checkpoint", help="Run checkpoint: name or step (default latest).")
EMA = typer.Option(True, "--ema/--no-ema", help="Use the run's EMA generator when it has one.")
TRUNCATION = typer.Option(None, "--truncation", help="Truncation threshold (recipes that support it).")
SEED = typer.Option(0, "--seed", help="Seed of the generator's latents.")
JSON = typer.Option(False, "--json", help="Print one JSON object instead of text.")
CACHE = typer.Option(True, "--cache/--no-cache", help="Use and fill the reference-statistics cache.")
RECORD = typer.Option(True, "--record/--no-record", help="Append the scores to the run's metrics.jsonl.")
ENGINE = typer.Option("auto", "--engine", help="Feature engine: auto, eager, fused (one conv+ReLU kernel) or compile.")
DATA_ROOT = typer.Option(None, "--data-root", help="Folder of the official datasets (cifar10, stl10; else $GANCLI_DATA "
                                                   "or ~/.cache/gancli/datasets), fetched there on first use.")
# The options of each command that configure the Evaluator rather than one evaluation.
EVALUATOR_OPTIONS = ("features", "weights", "device", "precision", "batch_size", "workers", "use_cache", "engine",
                     "data_root")


@contextmanager
def _evaluator(options: dict, quiet: bool):
    """An Evaluator from a command's options, its progress and notes on a rich bar (stderr notes only with --json)."""
    from gancli import api

    settings = {key: options[key] for key in EVALUATOR_OPTIONS}
    if quiet:
        yield api.evaluator(**settings, on_info=lambda text: err_console.print(escape(text), soft_wrap=True, emoji=False))
        return
    with progress(unit="img/s") as bar:
        tasks: dict[str, int] = {}

        def on_progress(label: str, done: int, total: int | None) -> None:
            if label not in tasks:  # a zero-width space keeps rich from reading 'builtin:train:32' as an emoji
                tasks[label] = bar.add_task(escape(label).replace(":", ":\u200b"), total=total, info="")
            bar.update(tasks[label], completed=done)

        yield api.evaluator(**settings, on_progress=on_progress,
                        on_info=lambda text: bar.console.print(escape(text), soft_wrap=True, emoji=False))


def _report(scores, ev, as_json: bool, record: bool) -> None:
    """Print the scores, then record them in the run; a run that cannot take them still shows them (exit 1)."""
    from gancli.api import record_in_run

    fake_source = ev.last_sources[0]
    recorded, failure = None, None
    if record and fake_source.kind == "run":
        path = Path(fake_source.run.path) / "metrics.jsonl"
        try:
            record_in_run(fake_source.run, scores)
            recorded = str(path)
        except OSError as exc:
            failure = DataError(f"The scores above were not appended to '{path}' ({exc.strerror or exc}).")
    if as_json:
        out = {"scores": [s.as_dict() for s in scores], "recorded_in": recorded}
        print(json.dumps(out if len(scores) > 1 else {**out["scores"][0], "recorded_in": recorded}))
    else:
        for score in scores:
            console.print(f"[bold]{escape(score.line())}[/]", soft_wrap=True, emoji=False)
            console.print(escape(score.protocol_line()), style="dim", soft_wrap=True, emoji=False)
        if recorded:
            console.print(f"appended to {escape(recorded)}", style="dim", emoji=False)
    if failure:
        raise failure


def _run(metric: str, options: dict, **metric_options) -> None:
    """Evaluate one metric from a command's options (its locals(); `is` has no --real / --n-real)."""
    o = {key: options.get(key) for key in ("fake", "real", "n", "n_real", "checkpoint", "ema", "truncation", "seed",
                                           "as_json", "record")}
    with _evaluator(options, o["as_json"]) as ev:
        scores = ev.evaluate_many([metric], o["fake"], o["real"], n=o["n"], n_real=o["n_real"],
                                  checkpoint=o["checkpoint"], ema=o["ema"], truncation=o["truncation"],
                                  seed=o["seed"], **metric_options)
    _report(scores, ev, o["as_json"], o["record"])


@eval_app.command("fid")
def fid(real: str = typer.Option(..., "--real", help=f"Reference images: {SPEC_HELP}."),
        fake: str = typer.Option(..., "--fake", help=f"Evaluated images: {SPEC_HELP}."),
        n: Optional[int] = N_FAKE, n_real: Optional[int] = N_REAL, features: str = FEATURES,
        weights: Optional[Path] = WEIGHTS, device: str = DEVICE, precision: str = PRECISION,
        batch_size: Optional[int] = BATCH, workers: Optional[int] = WORKERS, checkpoint: Optional[str] = CHECKPOINT,
        ema: bool = EMA, truncation: Optional[float] = TRUNCATION, seed: int = SEED, as_json: bool = JSON,
        use_cache: bool = CACHE, record: bool = RECORD, engine: str = ENGINE,
        data_root: Optional[Path] = DATA_ROOT,
        method: str = typer.Option("eigh", "--method", help="Tr sqrt: eigh (default), sqrtm (pytorch-fid), "
                                                            "eigvals (torch-fidelity); within ~1e-7 relative of each "
                                                            "other (~1e-14 with more images than features).")):
    """Fréchet Inception Distance of --fake against --real (float64, streaming statistics)."""
    _run("fid", locals(), fid_method=method)

@eval_app.command("is")
def inception_score(
        fake: str = typer.Option(..., "--fake", help=f"Evaluated images: {SPEC_HELP}."),
        n: Optional[int] = N_FAKE, splits: int = typer.Option(10, "--splits", help="Number of splits."),
        features: str = FEATURES, weights: Optional[Path] = WEIGHTS, device: str = DEVICE,
        precision: str = PRECISION, batch_size: Optional[int] = BATCH, workers: Optional[int] = WORKERS,
        checkpoint: Optional[str] = CHECKPOINT, ema: bool = EMA, truncation: Optional[float] = TRUNCATION,
        seed: int = SEED, as_json: bool = JSON, use_cache: bool = CACHE, record: bool = RECORD,
        engine: str = ENGINE, data_root: Optional[Path] = DATA_ROOT):
    """Inception Score of --fake (1008 logits without bias, 10 splits)."""
    if splits < 1:
        raise ConfigError(f"--splits must be a positive number, got {splits}.")
    _run("is", locals(), is_splits=splits)

@eval_app.command("kid")
def kid(real: str = typer.Option(..., "--real", help=f"Reference images: {SPEC_HELP}."),
        fake: str = typer.Option(..., "--fake", help=f"Evaluated images: {SPEC_HELP}."),
        n: Optional[int] = N_FAKE, n_real: Optional[int] = N_REAL,
        subsets: int = typer.Option(100, "--subsets", help="Number of random subsets."),
        subset_size: Optional[int] = typer.Option(None, "--subset-size",
                                                  help="Images per subset (default 1000, or fewer images)."),
        features: str = FEATURES, weights: Optional[Path] = WEIGHTS, device: str = DEVICE,
        precision: str = PRECISION, batch_size: Optional[int] = BATCH, workers: Optional[int] = WORKERS,
        checkpoint: Optional[str] = CHECKPOINT, ema: bool = EMA, truncation: Optional[float] = TRUNCATION,
        seed: int = SEED, as_json: bool = JSON, use_cache: bool = CACHE, record: bool = RECORD,
        engine: str = ENGINE, data_root: Optional[Path] = DATA_ROOT):
    """Kernel Inception Distance: unbiased MMD², kernel (x·y/d + 1)³, mean ± std over subsets."""
    if subsets < 1:
        raise ConfigError(f"--subsets must be a positive number, got {subsets}.")
    _run("kid", locals(), kid_subsets=subsets, kid_subset_size=subset_size)

@eval_app.command("pr")
def pr(real: str = typer.Option(..., "--real", help=f"Reference images: {SPEC_HELP}."),
       fake: str = typer.Option(..., "--fake", help=f"Evaluated images: {SPEC_HELP}."),
       n: Optional[int] = N_FAKE, n_real: Optional[int] = N_REAL,
       k: int = typer.Option(3, "--k", help="Neighbourhood size of the k-NN radii."),
       features: str = FEATURES_PR, weights: Optional[Path] = WEIGHTS, device: str = DEVICE,
       precision: str = PRECISION, batch_size: Optional[int] = BATCH, workers: Optional[int] = WORKERS,
       checkpoint: Optional[str] = CHECKPOINT, ema: bool = EMA, truncation: Optional[float] = TRUNCATION,
       seed: int = SEED, as_json: bool = JSON, use_cache: bool = CACHE, record: bool = RECORD,
       engine: str = ENGINE, data_root: Optional[Path] = DATA_ROOT):
    """Improved precision and recall (Kynkäänniemi et al. 2019), k-NN balls in VGG16 fc2 space by default."""
    if k < 1:
        raise ConfigError(f"--k must be a positive number, got {k}.")
    _run("pr", locals(), pr_k=k)

@eval_app.command("stats")
def stats(spec: str = typer.Argument(..., help=f"Images to summarise: {IMAGES_HELP}."),
          out: Path = typer.Option(..., "--out", help="Output FILE.npz."),
          n: Optional[int] = typer.Option(None, "--n", help="Number of images (default all; 10,000 for a run)."),
          keep_features: bool = typer.Option(False, "--with-features/--no-features",
                                             help="Also save per-image features and logits (for KID, PR, IS)."),
          features: str = FEATURES, weights: Optional[Path] = WEIGHTS, device: str = DEVICE,
          precision: str = PRECISION, batch_size: Optional[int] = BATCH, workers: Optional[int] = WORKERS,
          checkpoint: Optional[str] = CHECKPOINT, ema: bool = EMA, truncation: Optional[float] = TRUNCATION,
          seed: int = SEED, as_json: bool = JSON, use_cache: bool = CACHE, engine: str = ENGINE,
          data_root: Optional[Path] = DATA_ROOT):
    """Precompute reference statistics (mean, covariance, features) of SPEC into FILE.npz."""
    with _evaluator(locals(), as_json) as ev:
        path, result = ev.save_stats(spec, out, n=n, keep_features=keep_features, checkpoint=checkpoint, ema=ema,
                                     truncation=truncation, seed=seed)
    source = ev.last_sources[0]
    info = {"out": str(path), "n": result.n, "source": source.label, **ev.net.describe(),
            "statistics": ev.last_cache.get("images", "computed"), "features_saved": result.pool is not None}
    if as_json:
        print(json.dumps(info))
        return
    what = (f"{result.n:,} images of {source.label} · {ev.net.label} {ev.net.pool_layer} · "
            f"resize {ev.net.resize} · weights sha256 {ev.net.weights_hash[:8]} · {ev.net.precision} · "
            f"{'with features' if info['features_saved'] else 'mean/covariance only'}")
    console.print(f"[bold]wrote {escape(str(path))}[/]: {escape(what)}", soft_wrap=True, emoji=False)
