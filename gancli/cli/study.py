"""`gancli study STUDY --out DIR` runs a grid of settings × seeds; `gancli study report DIR` writes its tables."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from gancli import study as studies
from gancli.cli.app import app
from gancli.cli.ui import console, progress
from gancli.config import parse_set
from gancli.errors import ConfigError
from gancli.study_report import write_report

USAGE = ("gancli study STUDY.toml|NAME --out DIR [--jobs N] [--set key=value]  ·  gancli study report DIR  ·  "
         "gancli study (lists the built-in studies)")


def _list_builtin() -> None:
    table = Table("study", "what it compares", title="built-in studies (gancli study NAME --out DIR)")
    for name, description in studies.builtin_studies().items():
        table.add_row(name, description)
    console.print(table)
    console.print(f"usage: {USAGE}", style="dim")


def _print_report(report) -> None:
    results = report.results
    name = results.score.upper() if results.score == "fid" else results.score
    table = Table("#", *results.keys, f"median {name}", "seeds", "failed",
                  title=f"{escape(results.study.name)}: settings by median {name} ({results.which}), best first")
    for i, setting in enumerate(report.ranked[:10]):
        median = results.shown(setting.median)
        table.add_row(str(i + 1), *[escape(setting.labels[k]) for k in results.keys],
                      f"{median:.2f}" if math.isfinite(median) else "failed", str(len(setting.seeds)),
                      str(setting.failed))
    console.print(table)
    if len(report.ranked) > 10:
        console.print(f"… and {len(report.ranked) - 10} more settings in settings.csv", style="dim")
    for p in report.paired:
        console.print(f"[bold]{escape(p.field)}: {escape(p.a)} beats {escape(p.b)} in {p.wins_a} of {p.n} settings"
                      f"[/] ({p.wins_b} the other way, {p.ties} ties), two-sided sign test p = {p.p_value:.3g}")
    for p in report.unpaired:
        console.print(f"[bold]{escape(p.field)}, unpaired (each model at its best tuned setting): {escape(p.a)} beats "
                      f"{escape(p.b)} in {p.wins_a} of {p.n} models[/] ({p.wins_b} the other way, {p.ties} ties)")
    failures = [r for r in results.records if r.get("status") != "ok"]
    for record in failures[:5]:
        console.print(f"[yellow]failed[/] {escape(record['cell'])}: {escape(str(record.get('error', '')))}",
                      soft_wrap=True)
    if len(failures) > 5:
        console.print(f"… {len(failures) - 5} more failures in cells.csv", style="dim")
    folder = report.files[0].parent
    console.print(f"Report: [cyan]{escape(str(folder))}[/] ({', '.join(f.name for f in report.files)})")


def _run_with_progress(plan, out: Path, jobs: int, retry_failed: bool):
    """studies.run_study with a progress bar: of the current cell's steps (one job), or of the cells."""
    bar = progress("it/s" if jobs == 1 else "cells/s")
    task = bar.add_task(f"study {escape(plan.name)}", total=None, info="")
    current = {"cell": None}

    def on_plan(total, pending):
        console.print(f"Study [bold]{escape(plan.name)}[/]: {total} cells ({total - pending} already done), "
                      f"{jobs} at a time, in [cyan]{escape(str(out))}[/]")
        bar.start()

    def on_cell(record, done, total):
        value = record.get("final")
        what = (f"{record['score']} {value:.2f}" if record.get("status") == "ok" else
                f"[yellow]{record.get('reason', 'failed')}[/]: {escape(str(record.get('error', '')))}")
        bar.console.print(f"[{done}/{total}] {escape(record['cell'])}: {what} "
                          f"({record.get('seconds', 0):.0f} s)", soft_wrap=True)
        if jobs > 1:
            bar.update(task, completed=done, total=total)

    def on_step(cell, step, total):
        if cell.name != current["cell"]:  # a new cell: its own count and rate
            current["cell"] = cell.name
            bar.reset(task, total=total, description=escape(cell.label))
        bar.update(task, completed=step)

    try:
        return studies.run_study(plan, out, jobs=jobs, retry_failed=retry_failed, on_cell=on_cell,
                                 on_step=on_step if jobs == 1 else None, on_plan=on_plan)
    finally:
        bar.stop()


@app.command("study")
def study(
    args: Optional[list[str]] = typer.Argument(None, help="STUDY.toml or a built-in study name; or `report DIR`."),
    out: Optional[Path] = typer.Option(None, "--out", help="Study folder: one run folder per cell, and report/."),
    jobs: int = typer.Option(1, "--jobs", help="Cells trained at once, each in its own process (one GPU each "
                                               "when there are several)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Train failed cells again (kept otherwise)."),
    set_: list[str] = typer.Option([], "--set", help="key=value added to the study's fixed (base) settings."),
    score: str = typer.Option("final", "--score", help="Report the final score of each run, or its best."),
    top: float = typer.Option(0.05, "--top", help="Fraction of best models in the box plots (the papers: 5%)."),
    draws: int = typer.Option(1000, "--draws", help="Random orders averaged in the budget curve."),
):
    """Run a controlled study (settings × seeds, resumable, failures recorded) or write its report.

    The study file has recipe, preset, seeds, optional pairs, a base table of fixed settings and a grid
    table of field = list of values. Without arguments, lists the built-in studies.
    """
    args = args or []
    if not args:
        _list_builtin()
        return
    if args[0] == "report":
        if len(args) != 2:
            raise ConfigError("Use `gancli study report DIR` with one study folder.")
        if out is not None or set_ or jobs != 1 or retry_failed:
            raise ConfigError("`gancli study report DIR` takes --score, --top and --draws only.")
        _print_report(write_report(args[1], which=score, fraction=top, draws=draws))
        return
    if len(args) != 1:
        raise ConfigError(f"Give one study file or built-in name, got {len(args)} arguments ({USAGE}).")
    if out is None:
        raise ConfigError("Give the study folder with --out DIR (an existing one is resumed).")
    plan = studies.load_study(args[0], sets=parse_set(set_))
    run = _run_with_progress(plan, out, jobs, retry_failed)
    console.print(f"{len(run.records)} cells: {run.ran} trained now, {run.reused} found done in "
                  f"[cyan]{escape(str(out))}[/]")
    _print_report(write_report(out, which=score, fraction=top, draws=draws))
