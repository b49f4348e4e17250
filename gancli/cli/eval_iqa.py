"""`gancli eval psnr|ssim|niqe|lpips --pred DIR [--gt DIR]`: image quality per image and mean, with its convention."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from gancli import api
from gancli.cli.app import eval_app
from gancli.cli.ui import console, progress

pred_opt = typer.Option(..., "--pred", help="Folder of predicted (e.g. super-resolved) images.")
gt_opt = typer.Option(..., "--gt", help="Folder of ground-truth images with the same file names.")
crop_opt = typer.Option(0, "--crop-border", help="Pixels removed at each border (SR convention: the scale).")
y_opt = typer.Option(False, "--y-channel", help="Score the Y channel of YCbCr (BT.601, MATLAB coefficients).")
json_opt = typer.Option(False, "--json", help="Print JSON instead of a table.")


def format_value(value: float, digits: int) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _json_value(value: float) -> float | str:
    return "inf" if isinstance(value, float) and math.isinf(value) else value


def score_and_report(metric: str, pred: Path, as_json: bool, score=api.score_images, **options) -> None:
    """Score every image with a progress bar (score: api.score_images or api.score_iqa), then print the table (or
    JSON)."""
    with progress("img/s", transient=True) as bar:
        task = bar.add_task(metric, total=None, info="", visible=not as_json)
        result = score(metric, pred, **options, on_image=lambda name: bar.update(task, advance=1, info=name),
                       on_total=lambda total: bar.update(task, total=total))
    rows, mean, notes, convention = result["rows"], result["mean"], result["notes"], result["convention"]
    if as_json:
        typer.echo(json.dumps({"metric": metric, "convention": convention, "notes": notes,
                               "images": [{"name": n, metric: _json_value(v)} for n, v in rows],
                               "mean": _json_value(mean), "count": len(rows)}, indent=2))
        return
    for note in notes:
        console.print(f"[yellow]Note:[/] {note}")
    table = Table("image", metric.upper(), title=f"{metric.upper()} — {convention}", title_justify="left")
    for name, value in rows:
        table.add_row(name, format_value(value, 4))
    table.add_section()
    table.add_row(f"mean of {len(rows)}", format_value(mean, 4), style="bold")
    console.print(table)


@eval_app.command("psnr")
def psnr_cmd(pred: Path = pred_opt, gt: Path = gt_opt, crop_border: int = crop_opt, y_channel: bool = y_opt,
             as_json: bool = json_opt):
    """PSNR of predictions against ground truth, per image and mean (agrees with scikit-image)."""
    score_and_report("psnr", pred, as_json, gt=gt, crop_border=crop_border, y_channel=y_channel)


@eval_app.command("ssim")
def ssim_cmd(pred: Path = pred_opt, gt: Path = gt_opt, crop_border: int = crop_opt, y_channel: bool = y_opt,
             as_json: bool = json_opt):
    """SSIM of predictions against ground truth, per image and mean (agrees with scikit-image)."""
    score_and_report("ssim", pred, as_json, gt=gt, crop_border=crop_border, y_channel=y_channel)


@eval_app.command("lpips")
def lpips_cmd(pred: Path = pred_opt, gt: Path = gt_opt, crop_border: int = crop_opt,
              net: str = typer.Option("alex", help="Backbone: alex (the LPIPS default) or vgg."),
              lpips_weights: Optional[Path] = typer.Option(None, help="torchvision backbone weights file "
                                                           "(default: the torch hub cache)."),
              device: str = typer.Option("auto", help="auto, cpu or cuda."),
              as_json: bool = json_opt):
    """LPIPS distance of predictions to ground truth (lower is better); needs the backbone weights."""
    score_and_report("lpips", pred, as_json, gt=gt, crop_border=crop_border, net=net, lpips_weights=lpips_weights,
           device=device)


@eval_app.command("niqe")
def niqe_cmd(pred: Path = pred_opt, crop_border: int = crop_opt,
             y_channel: bool = typer.Option(True, "--y-channel/--gray",
                                            help="Luma: MATLAB rgb2ycbcr Y (PIRM-SR convention) or rgb2gray "
                                                 "(the NIQE release)."),
             as_json: bool = json_opt):
    """NIQE (no reference, lower is better) of every image in a folder, MATLAB-compatible."""
    score_and_report("niqe", pred, as_json, crop_border=crop_border, y_channel=y_channel)
