"""`gancli export RUN --format pt2|onnx --out FILE`: a run's generator for deployment, its inputs in its metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from gancli import api
from gancli.cli.app import app
from gancli.cli.ui import console


@app.command("export")
def export_cmd(run: Path = typer.Argument(..., help="Run folder."),
               fmt: str = typer.Option(..., "--format", help="pt2 (torch.export, loadable with "
                                       "torch.export.load) or onnx (opset 18; needs the onnx extra)."),
               out: Path = typer.Option(..., "--out", help="The file to write."),
               size: Optional[tuple[int, int]] = typer.Option(None, "--size", help="Height and width of the "
                                                              "example image or label-map inputs (spade, "
                                                              "stargan, sr; default: the training size)."),
               dynamic: bool = typer.Option(False, "--dynamic", help="Symbolic batch size, and height and width "
                                            "for image and label-map inputs (static shapes otherwise)."),
               checkpoint: Optional[str] = typer.Option(None, help="Checkpoint name or step (default: latest)."),
               ema: bool = typer.Option(True, "--ema/--no-ema", help="Use EMA weights when the run has them.")):
    """Write a run's generator (EMA weights, eval mode, normalizations folded) as .pt2 or ONNX for deployment."""
    result = api.export(run, fmt, out, size=size, dynamic=dynamic, checkpoint=checkpoint, ema=ema)
    meta = result["metadata"]
    table = Table("input", "shape", "dtype", "what", title=f"{meta['recipe']} generator → {result['path']} "
                  f"({fmt}{', opset %d' % meta['onnx_opset'] if 'onnx_opset' in meta else ''})",
                  title_justify="left")
    for row in meta["inputs"]:
        table.add_row(row["name"], " × ".join(map(str, row["shape"])), row["dtype"], row["description"])
    table.add_row("→ generated", "", "", meta["output"]["description"], style="bold")
    console.print(table)
    diff = result["max_abs_diff"]
    check = (f"max |exported − eager| on the example inputs: {diff:.2e}" if diff is not None
             else "not checked against the eager generator (onnxruntime is not installed)")
    console.print(f"Wrote [cyan]{result['path']}[/] ({meta['checkpoint']}{', EMA' if meta['ema'] else ''}); "
                  f"{check}. Metadata: " + ("the archive's extra file gancli.json." if fmt == "pt2"
                                             else "metadata_props['gancli']."))
