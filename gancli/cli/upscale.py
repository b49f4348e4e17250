"""`gancli upscale RUN INPUT... --out DIR`: super-resolve image files or folders with an sr run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli import api
from gancli.cli.app import app
from gancli.cli.ui import console, progress


@app.command()
def upscale(
    run: Path = typer.Argument(..., help="An sr run folder (gancli train sr)."),
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    out: Path = typer.Option(..., "--out", help="Output folder; names (and folder layout) are kept."),
    tile: int = typer.Option(256, help="LR tile size in pixels so large images fit in memory; 0 = whole image."),
    overlap: int = typer.Option(40, help="LR pixels of context around each tile (≥ 35 makes SAN Table 8's "
                                        "generator exact)."),
    checkpoint: Optional[str] = typer.Option(None, help="Checkpoint name or step (default: latest)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    ema: bool = typer.Option(True, "--ema/--no-ema", help="Use EMA weights when the run has them."),
):
    """Upscale images of any size with an sr run's generator (tiled with overlap)."""
    with progress("img/s") as bar:
        task = bar.add_task("upscale", total=None, info="")
        result = api.upscale(
            run, inputs, out, tile=tile, overlap=overlap, checkpoint=checkpoint, device=device, ema=ema,
            on_start=lambda total, scale: bar.update(task, total=total, description=f"upscale x{scale}"),
            on_tile=lambda name, done, total: bar.update(task, info=f"{name} tile {done}/{total}"),
            on_image=lambda name: bar.advance(task))
    converted, count = result["converted"], len(result["files"])
    note = f" ({converted} lossy inputs written as .png)" if converted else ""
    images = f"{count} image{'s' if count != 1 else ''}"
    console.print(f"Wrote {images} upscaled x{result['scale']} to [cyan]{out}[/]{note}")
