"""Shared rich console and progress bars for every command."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Column
from rich.text import Text

console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)


class RateColumn(TextColumn):
    """Items per second of a task, with a unit ('it/s', 'img/s')."""

    def __init__(self, unit: str = "it/s"):
        super().__init__("", table_column=Column(no_wrap=True))
        self.unit = unit

    def render(self, task):  # noqa: D401 - rich API
        speed = task.finished_speed or task.speed
        text = f"{speed:,.1f} {self.unit}" if speed else f"-- {self.unit}"
        return Text(text, style="progress.data.speed")


class InfoColumn(TextColumn):
    """A task's 'info' field (losses, ...), cut with an ellipsis where the terminal is too narrow for all of it.

    The column may shrink (it is the first to give way, with the bar) but the text itself never wraps.
    """

    def __init__(self):
        super().__init__("", table_column=Column(no_wrap=False))

    def render(self, task):  # noqa: D401 - rich API
        return Text(str(task.fields.get("info", "")), no_wrap=True, overflow="ellipsis")


def progress(unit: str = "it/s", transient: bool = False) -> Progress:
    """A rich progress bar with count, rate and ETA, on stderr (stdout keeps the results); in a narrow terminal the
    bar shrinks, never the numbers."""
    whole = lambda: Column(no_wrap=True)
    return Progress(
        TextColumn("[bold]{task.description}", table_column=whole()),
        BarColumn(bar_width=24, table_column=Column(no_wrap=False)),
        MofNCompleteColumn(table_column=whole()),
        TaskProgressColumn(table_column=whole()),
        RateColumn(unit),
        TimeElapsedColumn(table_column=whole()),
        TextColumn("eta", table_column=whole()),
        TimeRemainingColumn(table_column=whole()),
        InfoColumn(),
        console=err_console,
        transient=transient,
        refresh_per_second=4,
    )
