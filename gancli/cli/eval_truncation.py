"""`gancli eval truncation RUN`: FID, IS and precision/recall at each truncation threshold (BigGAN Fig. 16)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from gancli.cli.app import eval_app
from gancli.cli.ui import console, progress


@eval_app.command("truncation")
def truncation(
        run: Path = typer.Argument(..., help="Run folder of a recipe that samples with truncation."),
        thresholds: str = typer.Option("0.25,0.5,0.75,1.0,1.5,2.0", "--thresholds",
                                       help="Comma-separated truncation thresholds."),
        n: int = typer.Option(10_000, "--n", help="Generated images per threshold (as many of each class "
                                                      "for a class-conditional G)."),
        real: Optional[str] = typer.Option(None, "--real", help="Reference images (default: the run's evaluation "
                                                                "reference, builtin:test on builtin data)."),
        features: Optional[str] = typer.Option(None, "--features", help="builtin or inception (default: builtin "
                                                                        "on builtin data, inception otherwise)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Folder for truncation.png and truncation.json "
                                                               "(default RUN/truncation)."),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Checkpoint name or step."),
        ema: bool = typer.Option(True, "--ema/--no-ema", help="Use the run's EMA generator when it has one."),
        seed: int = typer.Option(0, "--seed", help="Seed of the latents."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table.")):
    """FID, IS and precision/recall at each truncation threshold; a PNG of the trade-off and a JSON table."""
    from gancli import api

    values = api.parse_thresholds(thresholds)
    with progress("threshold/s", transient=True) as bar:
        task = bar.add_task("eval truncation", total=len(values), info="")

        def on_threshold(threshold: float, row: dict) -> None:
            bar.update(task, advance=1, info=f"{threshold:g}: FID {row['fid']:.2f} IS {row['is']:.2f}")

        result = api.evaluate_truncation(run, values, n=n, real=real, features=features, seed=seed,
                                         checkpoint=checkpoint, device=device, ema=ema, out=out,
                                         on_threshold=on_threshold)
    if as_json:
        print(json.dumps(result))
        return
    table = Table("truncation", "FID", "IS", "precision", "recall",
                  title=f"truncation trade-off of {escape(result['run'])} @ {result['checkpoint']}")
    for row in result["thresholds"]:
        table.add_row(f"{row['truncation']:g}", f"{row['fid']:.3f}", f"{row['is']:.3f} ± {row['is_std']:.3f}",
                      f"{row['precision']:.3f}", f"{row['recall']:.3f}")
    console.print(table)
    console.print(f"{escape(result['features'])} features · {escape(result['protocol'])}", style="dim")
    console.print(f"Wrote [cyan]{escape(result['files'][0])}[/] and [cyan]{escape(result['files'][1])}[/]")
