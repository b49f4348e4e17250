"""`gancli eval prd`: precision and recall for distributions (Sajjadi et al. 2018)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from gancli import api
from gancli.cli.eval_gen import (BATCH, CACHE, CHECKPOINT, DATA_ROOT, DEVICE, EMA, ENGINE, FEATURES, JSON, PRECISION,
                                 SEED, SPEC_HELP, TRUNCATION, WEIGHTS, WORKERS, _evaluator)
from gancli.cli.app import eval_app
from gancli.cli.ui import console
from gancli.errors import ConfigError


@eval_app.command("prd")
def prd(real: str = typer.Option(..., "--real", help=f"Reference images: {SPEC_HELP} (saved with features)."),
        fake: str = typer.Option(..., "--fake", help=f"Evaluated images: {SPEC_HELP} (saved with features)."),
        n: Optional[int] = typer.Option(None, "--n", help="Fake images (default: --n-real, else as many as the "
                                                          "real side has, at most 10,000 from a run)."),
        n_real: Optional[int] = typer.Option(None, "--n-real", help="Real images (default: as many as --n)."),
        clusters: int = typer.Option(20, "--clusters", help="k-means clusters of the union (the paper: 20)."),
        angles: int = typer.Option(1001, "--angles", help="Slopes of the curve (the paper: 1001)."),
        runs: int = typer.Option(10, "--runs", help="Clusterings averaged (the paper: 10)."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="The PRD curve as FILE.png (default: prd.png in "
                                                                 "the run folder, or none for other sources)."),
        features: str = FEATURES, weights: Optional[Path] = WEIGHTS, device: str = DEVICE,
        precision: str = PRECISION, batch_size: Optional[int] = BATCH, workers: Optional[int] = WORKERS,
        checkpoint: Optional[str] = CHECKPOINT, ema: bool = EMA, truncation: Optional[float] = TRUNCATION,
        seed: int = SEED, as_json: bool = JSON, use_cache: bool = CACHE, engine: str = ENGINE,
        data_root: Optional[Path] = DATA_ROOT):
    """Precision and recall for distributions (Sajjadi et al. 2018): the PRD curve, F8 (recall) and F1/8
    (precision), from k-means of the union of real and fake features."""
    for value, flag in ((clusters, "--clusters"), (angles, "--angles"), (runs, "--runs")):
        if value < 1:
            raise ConfigError(f"{flag} must be a positive number, got {value}.")
    if plot is not None and plot.suffix.lower() != ".png":
        raise ConfigError(f"--plot must be a file name ending in .png, got '{plot}'.")
    with _evaluator(locals(), as_json) as ev:
        result, protocol = api.evaluate_prd(real, fake, n=n, n_real=n_real, num_clusters=clusters,
                                            num_angles=angles, num_runs=runs, seed=seed, checkpoint=checkpoint,
                                            ema=ema, truncation=truncation, evaluator=ev)
    plot = api.plot_prd(result, ev, plot)
    if as_json:
        print(json.dumps({**result.as_dict(), "plot": str(plot) if plot else None,
                          "feature_net": protocol["feature_net"], "real": protocol["real"]["label"],
                          "fake": protocol["fake"]["label"]}))
        return
    console.print(f"[bold]F8 {result.f_8:.4f}  F1/8 {result.f_1_8:.4f}[/]  (F8 weighs recall, F1/8 precision)",
                  emoji=False)
    console.print(escape(f"real {result.n_ref:,} ({protocol['real']['label']}) · fake {result.n_eval:,} "
                         f"({protocol['fake']['label']}) · {clusters} clusters · {angles} angles · mean of "
                         f"{runs} runs · {ev.net.label} {ev.net.pool_layer}"), style="dim", soft_wrap=True,
                  emoji=False)
    if plot is not None:
        console.print(f"PRD curve: [cyan]{escape(str(plot))}[/]")
