"""`gancli eval sr RUN --data TESTSET`: PSNR/SSIM/NIQE of an sr run on a test set, next to bicubic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from gancli import api
from gancli.cli.app import eval_app
from gancli.cli.eval_iqa import format_value, json_opt
from gancli.cli.ui import console, progress


@eval_app.command("sr")
def sr_cmd(run: Path = typer.Argument(..., help="An sr run folder."),
           data: str = typer.Option(..., "--data", help="Test set: a folder of HR images (Set5, Set14, "
                                    "BSD100, Urban100 layouts), a DIV2K root (valid split) or 'builtin'."),
           lr: Optional[Path] = typer.Option(None, "--lr", help="Folder of the LR images (default: made by "
                                             "MATLAB bicubic, or found in the test set's layout)."),
           checkpoint: Optional[str] = typer.Option(None, help="Checkpoint name or step (default: latest)."),
           device: str = typer.Option("auto", help="auto, cpu or cuda."),
           tile: int = typer.Option(256, help="LR tile size; 0 = whole images."),
           overlap: int = typer.Option(40, help="LR pixels of context around each tile."),
           limit: int = typer.Option(0, help="Score only the first N images (0 = all)."),
           as_json: bool = json_opt):
    """Super-resolve a test set with a run and report PSNR/SSIM (Y, crop = scale) and NIQE next to bicubic."""
    model = api.load(run, checkpoint, device, verb="score_test_set")
    with progress("img/s", transient=True) as bar:
        task = bar.add_task(f"sr x{model.cfg.scale}", total=None, info="", visible=not as_json)

        def step(name: str) -> None:
            bar.update(task, advance=1, info=name)

        result = model.score_test_set(data, lr, limit=limit, tile=tile, overlap=overlap, on_image=step,
                                      on_total=lambda total: bar.update(task, total=total))
    model_rows, bicubic_rows, means = result["model"], result["bicubic"], result["mean"]
    protocol, notes, count = result["protocol"], result["notes"], result["count"]
    if as_json:
        typer.echo(json.dumps({"run": str(run), "data": result["data"], "scale": result["scale"],
                               "protocol": protocol, "notes": notes,
                               "images": [{"name": m["name"], "model": _strip(m), "bicubic": _strip(b)}
                                          for m, b in zip(model_rows, bicubic_rows)],
                               "mean": means, "count": count}, indent=2))
        return
    for note in notes:
        console.print(f"[yellow]Note:[/] {note}")
    pi = any("pi" in row for row in model_rows)  # with the iqa extra and NRQM's weights
    heads = ["PSNR-Y", "SSIM-Y", "NIQE"] + (["PI"] if pi else [])
    table = Table("image", *heads, *[f"bicubic {h}" for h in heads],
                  title=f"{result['data']}, x{result['scale']}: {protocol}", title_justify="left")
    for m, b in zip(model_rows, bicubic_rows):
        table.add_row(m["name"], *_cells(m, pi), *_cells(b, pi))
    table.add_section()
    table.add_row(f"mean of {count}", *_cells(means["model"], pi), *_cells(means["bicubic"], pi), style="bold")
    console.print(table)


def _strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "name"}


def _cells(row: dict, pi: bool = False) -> list[str]:
    cells = [format_value(row["psnr_y"], 2), format_value(row["ssim_y"], 4),
             format_value(row["niqe"], 3) if "niqe" in row else "-"]
    return cells + ([format_value(row["pi"], 3) if "pi" in row else "-"] if pi else [])
