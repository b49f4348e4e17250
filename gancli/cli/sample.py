"""`gancli sample RUN`: samples (or interpolation strips) of a run's generator as a grid or one PNG per image."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli import api
from gancli.cli.app import app
from gancli.cli.ui import console


@app.command()
def sample(
    run: Path = typer.Argument(..., help="Run folder."),
    n: int = typer.Option(64, "--n", help="Number of images (with --class all: in all; with --interpolate: strips)."),
    out: Optional[Path] = typer.Option(None, help="FILE.png for a grid, or a folder for one PNG per image."),
    checkpoint: Optional[str] = typer.Option(None, help="Checkpoint name or step (default: latest)."),
    truncation: Optional[float] = typer.Option(None, help="Truncation threshold (recipes that support it)."),
    class_: Optional[str] = typer.Option(None, "--class", help="A class index, or 'all' for a class-balanced sheet "
                                                                "with a row per class (class-conditional runs)."),
    interpolate: Optional[str] = typer.Option(None, "--interpolate", help="Strips between two latents (z) or two "
                                                                          "classes (class), --steps images each."),
    steps: int = typer.Option(8, "--steps", help="Images per --interpolate strip."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    ema: bool = typer.Option(True, "--ema/--no-ema", help="Use EMA weights when the run has them."),
):
    """Draw samples from a run's generator as a grid or as separate PNGs."""
    count, out = api.save_samples(run, n, out, interpolation=interpolate, steps=steps, class_id=class_,
                                  truncation=truncation, seed=seed, checkpoint=checkpoint, device=device, ema=ema)
    console.print(f"Wrote {count} samples to [cyan]{out}[/]")
