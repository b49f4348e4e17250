"""`gancli runs [DIR]`: a table of the training runs in a folder."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from gancli import api
from gancli.cli.app import app
from gancli.cli.ui import console

STATUS_STYLE = {"running": "bold cyan", "finished": "green", "interrupted": "yellow", "failed": "bold red"}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


@app.command("runs")
def runs(
    directory: Path = typer.Argument(Path("runs"), help="Folder of run folders (or one run folder)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (one object per run) instead of a table."),
):
    """Runs in a folder: recipe, step / steps, status, best score, last checkpoint, wall time."""
    rows = api.list_runs(directory)
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(f"No runs in '{escape(str(directory))}'.")
        return
    table = Table("run", "recipe", "step", "status", "best", "last checkpoint", "wall time",
                  title=f"runs in {escape(str(directory))}")
    for row in rows:
        status = row["status"] + (f" (pid {row['pid']})" if row["pid"] else "")
        best = row["best"]
        best_text = f"{best['metric']} {best['value']:.4g} @ {best['step']}" if best else "-"
        last = row["last_checkpoint"]
        table.add_row(escape(Path(row["run"]).name), row["recipe"], f"{row['step']} / {row['steps']}",
                      f"[{STATUS_STYLE.get(row['status'], '')}]{status}[/]", best_text,
                      "-" if last is None else f"step {last}", _duration(row["wall_time_s"]))
    console.print(table)
    for row in rows:
        if row["message"]:
            console.print(f"[dim]{escape(Path(row['run']).name)}: {escape(row['message'])}[/]")
