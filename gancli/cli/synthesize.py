"""`gancli synthesize RUN LABELS... --out DIR`: photos from label maps with a spade run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli import api
from gancli.cli.app import app
from gancli.cli.ui import console


@app.command()
def synthesize(
    run: Path = typer.Argument(..., help="A spade run folder (gancli train spade)."),
    labels: list[Path] = typer.Argument(..., help="Label maps: PNGs of label ids (or colours with --palette)."),
    out: Path = typer.Option(..., "--out", help="Output folder: one PNG per map (NAME_styleK.png per style)."),
    palette: bool = typer.Option(False, "--palette", help="Maps are colour-coded with the data's palette."),
    style: Optional[Path] = typer.Option(None, help="A photo whose style the VAE encoder gives the outputs."),
    n_styles: int = typer.Option(1, "--n-styles", help="Outputs per map (VAE runs: different z or posterior "
                                                        "draws)."),
    seed: int = typer.Option(0, help="Random seed of z / posterior draws."),
    checkpoint: Optional[str] = typer.Option(None, help="Checkpoint name or step (default: latest)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    ema: bool = typer.Option(True, "--ema/--no-ema", help="Use EMA weights when the run has them."),
):
    """Synthesize photos from label maps with a spade run's generator."""
    files = api.synthesize(run, labels, out, palette=palette, style=style, n_styles=n_styles, seed=seed,
                           checkpoint=checkpoint, device=device, ema=ema)
    console.print(f"Wrote {len(files)} image{'s' if len(files) != 1 else ''} to [cyan]{out}[/]")
