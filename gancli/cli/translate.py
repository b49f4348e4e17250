"""`gancli translate RUN IMAGES... --attr Blond_Hair=1 --attr Male=0 --out DIR`: change attributes with a stargan run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from gancli import api
from gancli.cli.app import app
from gancli.cli.ui import console


@app.command()
def translate(
    run: Path = typer.Argument(..., help="A stargan run folder (gancli train stargan)."),
    images: list[Path] = typer.Argument(..., help="Image files to translate."),
    attr: list[str] = typer.Option([], "--attr", help="NAME=1 or NAME=0 (also -1); repeatable, any combination. "
                                                      "Setting one hair colour clears the others."),
    out: Path = typer.Option(..., "--out", help="Output folder: one PNG per input (and grid.png)."),
    grid: bool = typer.Option(False, "--grid", help="Also write grid.png: each input × each single-attribute "
                                                    "change (and the --attr combination)."),
    checkpoint: Optional[str] = typer.Option(None, help="Checkpoint name or step (default: latest)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
):
    """Translate images to target attributes; unnamed attributes keep the values the run's critic reads."""
    result = api.translate(run, images, attr, out=out, grid=grid, checkpoint=checkpoint, device=device)
    table = Table("image", "attributes read by the critic", "written", title="translate")
    for i, (source, reading) in enumerate(zip(result.inputs, result.sources)):
        seen = ", ".join(name for name, value in reading.items() if value) or "(none)"
        table.add_row(str(source), seen, str(result.outputs[i]) if result.outputs else "")
    console.print(table)
    if result.grid is not None:
        console.print(f"Wrote [cyan]{result.grid}[/] (columns: {', '.join(result.columns)})")
