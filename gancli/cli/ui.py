"""Shared rich console and progress bars for every command."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)


class RateColumn(TextColumn):
    """Items per second of a task, with a unit ('it/s', 'img/s')."""

    def __init__(self, unit: str = "it/s"):
        super().__init__("")
        self.unit = unit

    def render(self, task):  # noqa: D401 - rich API
        speed = task.finished_speed or task.speed
        text = f"{speed:,.1f} {self.unit}" if speed else f"-- {self.unit}"
        return Text(text, style="progress.data.speed")


def progress(unit: str = "it/s", transient: bool = False) -> Progress:
    """A rich progress bar with count, rate and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=transient,
        refresh_per_second=4,
    )
