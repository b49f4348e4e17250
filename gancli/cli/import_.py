"""`gancli import FORMAT CHECKPOINT --out RUN`: a published checkpoint as a run folder; `gancli import --list`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Column, Table

from gancli import api
from gancli.cli.app import app
from gancli.cli.options import extra_options
from gancli.cli.ui import console
from gancli.config import parse_set
from gancli.errors import ConfigError


def _list_formats() -> None:
    table = Table("format", "recipe", "reference network", Column("files", overflow="fold"),
                  Column("published by", overflow="fold"), title="gancli import: published checkpoints")
    for row in api.import_formats():
        table.add_row(row["name"], row["recipe"], row["summary"], row["files"], row["published"])
    console.print(table)


@app.command("import", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def import_(
    ctx: typer.Context,
    format: Optional[str] = typer.Argument(None, help="The checkpoint's format (see --list)."),
    checkpoint: Optional[Path] = typer.Argument(None, help="The published generator file (.pth, .ckpt, .pt)."),
    out: Optional[Path] = typer.Option(None, "--out", help="The run folder to write (new, or empty)."),
    critic: Optional[Path] = typer.Option(None, "--critic", help="The published critic file, for formats "
                                                                 "that have one."),
    preset: Optional[str] = typer.Option(None, help="A recipe preset for what the file cannot tell "
                                                    "(default: the one that trains as the reference did)."),
    set_: list[str] = typer.Option([], "--set", help="key=value for any config field; repeatable."),
    list_: bool = typer.Option(False, "--list", help="List the formats, the files each takes and where "
                                                     "their authors publish them."),
):
    """Import a published checkpoint (BigGAN-PyTorch, SPADE, StarGAN, ESRGAN, BasicSR, SANGAN) as a run.

    Any config field can also be given as --field-name VALUE (e.g. --attrs Black_Hair,Male for stargan)."""
    if list_:
        _list_formats()
        return
    if format is None or checkpoint is None or out is None:
        raise ConfigError("Give FORMAT, CHECKPOINT and --out RUN (or --list to see the formats).")
    sets = {**extra_options(ctx.args), **parse_set(set_)}
    run = api.import_checkpoint(format, checkpoint, out, critic=critic, preset=preset, sets=sets)
    console.print(f"Imported [bold]{format}[/] '{checkpoint}' into [cyan]{run.path}[/] "
                  f"(recipe {run.cfg.recipe}); try its verbs, or `gancli train {run.cfg.recipe} "
                  f"--init-from {run.path}`.")
