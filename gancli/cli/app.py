"""The Typer application object whose commands turn user errors into one sentence and an exit code."""

from __future__ import annotations

import functools
import os

import typer
from rich.markup import escape

from gancli import __version__
from gancli.cli.ui import console, err_console
from gancli.errors import GancliError

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


def report_errors(fn):
    """Run a command; a GancliError becomes 'Error: ...' on stderr and a non-zero exit, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GancliError as exc:
            interrupted = exc.__class__.__name__ == "TrainingInterrupted"
            if not (interrupted and os.environ.get("RANK", "0") != "0"):  # under torchrun, process 0 says it
                err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(EXIT_INTERRUPTED if interrupted else EXIT_ERROR) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]Interrupted.[/]")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except OSError as exc:
            if exc.filename is None:  # not about a path the user gave (sockets, pipes): a real bug, keep it loud
                raise
            err_console.print(f"[bold red]Error:[/] Cannot read or write '{escape(str(exc.filename))}': "
                              f"{escape(exc.strerror or str(exc))}.", soft_wrap=True)
            raise typer.Exit(EXIT_ERROR) from None
        except MemoryError:
            err_console.print("[bold red]Error:[/] out of memory; try a smaller --batch-size.")
            raise typer.Exit(EXIT_ERROR) from None
        except RuntimeError as exc:
            if exc.__class__.__name__ != "OutOfMemoryError":  # torch.OutOfMemoryError, without importing torch
                raise
            err_console.print("[bold red]Error:[/] the GPU ran out of memory; try a smaller --batch-size "
                              "(or --precision bf16).")
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper


class App(typer.Typer):
    """A Typer whose every command reports GancliError as one sentence."""

    def __init__(self, **kwargs):
        kwargs.setdefault("pretty_exceptions_enable", False)
        kwargs.setdefault("add_completion", False)
        kwargs.setdefault("no_args_is_help", True)
        kwargs.setdefault("rich_markup_mode", "rich")
        super().__init__(**kwargs)

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)
        return lambda fn: register(report_errors(fn))



app = App(help="gancli: task-specific GAN pipelines (uncond, sr, ...) on one critic-normalization core.")
eval_app = App(help="Evaluate generators and image restorations (FID/IS/KID/PR, PSNR/SSIM/NIQE/LPIPS).")
bench_app = App(help="Benchmarks that print speed ratios against a baseline run in the same command.")
app.add_typer(eval_app, name="eval")
app.add_typer(bench_app, name="bench")


def _version(value: bool):
    if value:
        console.print(f"gancli {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    """gancli: train, sample and evaluate GAN pipelines."""
