"""`gancli eval iqa --metric NAME --pred DIR [--gt DIR]`: any pyiqa metric, gancli's NIQE, or PI (the iqa extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from gancli import api
from gancli.cli.app import eval_app
from gancli.cli.eval_iqa import json_opt, score_and_report
from gancli.cli.ui import console
from gancli.errors import ConfigError


def _list() -> None:
    table = Table("metric", "mode", "better", "range", "by", "note", title="gancli eval iqa --metric NAME "
                  "(FR: needs --gt; NR: no reference)", title_justify="left")
    for row in api.iqa_metrics():
        table.add_row(row["name"], row["mode"], "lower" if row["lower_better"] else "higher", row["range"],
                      row["by"], row["note"])
    console.print(table)


@eval_app.command("iqa")
def iqa_cmd(metric: Optional[str] = typer.Option(None, "--metric", help=(
                "A pyiqa metric (`--list`), niqe (gancli's MATLAB port: within 0.04 of MATLAB, where pyiqa's niqe, as "
                "pyiqa:niqe, is up to 0.44 away) or pi (PIRM's Perceptual Index: ½((10 − Ma) + NIQE), gancli's NIQE "
                "and pyiqa's NRQM).")),
            pred: Optional[Path] = typer.Option(None, "--pred", help="Folder of images to score."),
            gt: Optional[Path] = typer.Option(None, "--gt", help="Folder of ground-truth images with the same file "
                                              "names (full-reference metrics only)."),
            crop_border: int = typer.Option(0, "--crop-border", help="Pixels removed at each border (SR convention: "
                                            "the scale)."),
            y_channel: Optional[bool] = typer.Option(None, "--y-channel/--rgb", help="Score the Y channel (BT.601 "
                                                     "rgb2ycbcr) or RGB; default: the metric's own."),
            iqa_weights: Optional[Path] = typer.Option(None, "--iqa-weights", help="Folder of pyiqa's weights files "
                                                       "(default: $GANCLI_PYIQA_WEIGHTS, else $TORCH_HOME/hub/pyiqa)."),
            device: str = typer.Option("auto", help="auto, cpu or cuda."),
            list_: bool = typer.Option(False, "--list", help="List the metrics and exit."),
            as_json: bool = json_opt):
    """Any pyiqa metric (full- or no-reference) of a folder of images, per image and mean (needs gancli[iqa])."""
    if list_:
        _list()
        return
    if metric is None or pred is None:
        raise ConfigError("`gancli eval iqa` needs --metric NAME and --pred DIR (or --list).")
    score_and_report(metric, pred, as_json, score=api.score_iqa, gt=gt, crop_border=crop_border, y_channel=y_channel,
                     weights=iqa_weights, device=device)
