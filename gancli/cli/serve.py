"""`gancli serve [RUN...] [--runs DIR]`: a local web page to watch runs and use their verbs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli.cli.app import app
from gancli.cli.ui import console


@app.command("serve")
def serve(
    runs: Optional[list[Path]] = typer.Argument(None, metavar="[RUN]...",
                                                help="Run folders to serve (default: those under --runs)."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs", help="A folder of runs, looked at again while serving, "
                                                                 "so new runs appear (default runs/ without RUNs)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; anything but the loopback opens the runs and "
                                               "the server's CPU to the network."),
    port: int = typer.Option(8000, help="Port to listen on (0: a free one)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda: where the generators run."),
):
    """Serve a page of the runs (status, curves, samples, config, live) and each recipe's verbs."""
    from gancli.serve import PageServer  # the server libraries load only for this command

    runs = list(runs or [])
    server = PageServer(runs, runs_dir if runs_dir is not None or runs else Path("runs"), host=host, port=port,
                        device=device)
    served = f"{len(runs)} run{'s' if len(runs) != 1 else ''}" if runs else ""
    folder = f"the runs in {server.runs_dir}" if server.runs_dir is not None else ""
    console.print(f"Serving {' and '.join(filter(None, [served, folder]))} at [cyan]{server.url}[/] (Ctrl-C stops).")
    if server.exposed:
        console.print(f"[yellow]Listening on {host}: anyone who can reach this machine can use these runs.[/]")
    server.run()
