"""`gancli bench eval`: gancli's feature engine against torch-fidelity's on the same images, in one process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from gancli import api
from gancli.cli.app import bench_app
from gancli.cli.ui import console


@bench_app.command("eval")
def bench_eval(
    n: int = typer.Option(10_000, "--n", help="Number of random images."),
    size: int = typer.Option(32, "--size", help="Image side in pixels."),
    batch_size: int = typer.Option(500, "--batch-size", help="Batch size of both engines."),
    precision: str = typer.Option("fp32", "--precision", help="gancli's precision: fp32, tf32, bf16 or all."),
    engine: str = typer.Option("auto", "--engine", help="gancli's engine: auto, eager, fused, compile or all."),
    memory_format: str = typer.Option("channels_last", "--memory-format",
                                      help="gancli's activation layout: channels_last, contiguous or all."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Inception weights (default: the usual lookup)."),
    random_weights: bool = typer.Option(False, "--random-weights",
                                        help="Random weights of the right shapes (speed and agreement only)."),
    repeats: int = typer.Option(2, "--repeats", help="Timed passes per engine; the best is reported."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also time torch-fidelity."),
    profile: bool = typer.Option(False, "--profile",
                                 help="Also time each step of gancli's forward (resize, blocks, statistics) "
                                      "and list its costliest kernels."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
):
    """Feature-extraction img/s of gancli vs torch-fidelity on the same in-memory images, and how far FID/IS move.

    torch-fidelity is timed as PyTorch's default flags run it (on an Ampere or later GPU its float32 convolutions
    then use TF32) and, where that is TF32, again in IEEE fp32. Every row's FID and IS are compared with
    torch-fidelity's in IEEE fp32, the exact reference.
    """
    info = api.bench_eval(n=n, size=size, batch_size=batch_size, precision=precision, engine=engine,
                          memory_format=memory_format, device=device, weights=weights, random_weights=random_weights,
                          repeats=repeats, baseline=baseline, profile=profile)
    if as_json:
        print(json.dumps(info))
        return
    show(info, repeats)


def show(info: dict, repeats: int) -> None:
    """The bench's tables: engines, then each profile's steps and kernels."""
    rows, profiles = info["rows"], info.get("profiles", [])
    ratio = lambda row, key: f"{row[key]:.2f}" if key in row else "–"
    rel = lambda row, key: f"{row[key]:.2e}" if key in row else "–"
    layout = lambda row: {"channels_last": "NHWC", "contiguous": "NCHW"}.get(row.get("memory_format"), "")
    table = Table("engine", "precision", "layout", "img/s", "× torch-fidelity", "× same precision", "FID (halves)",
                  "|ΔFID|/FID", "IS", "|ΔIS|/IS",
                  title=f"Inception features: {info['n']:,} random {info['size']}×{info['size']} uint8 images, "
                        f"batch {info['batch_size']}, {info['device']}",
                  caption=f"× torch-fidelity: against torch-fidelity as PyTorch's defaults run it "
                          f"({info['pytorch_default_precision']} here); Δ: against torch-fidelity in IEEE fp32")
    for row in rows:
        if "error" in row:
            table.add_row(row["engine"], row["precision"], layout(row), "failed", escape(row["error"]))
            continue
        table.add_row(row["engine"], row["precision"], layout(row), f"{row['img_per_s']:,.0f}", ratio(row, "speedup"),
                      ratio(row, "speedup_same_precision"), f"{row['fid']:.6g}", rel(row, "fid_rel_diff"),
                      f"{row['is']:.6g}", rel(row, "is_rel_diff"))
    console.print(table)
    row_label = lambda entry: f"{entry['engine']} {entry['precision']} {layout(entry)}"
    cuda = info["device"] != "cpu"
    for entry in profiles:
        steps = Table("step", "ms / batch", "share", title=f"{row_label(entry)}: one batch of "
                                                          f"{entry['batch_size']}, step by step")
        for step in entry["steps"]:
            steps.add_row(step["step"], f"{step['ms']:.2f}", f"{step['share']:.1%}")
        steps.add_row("total", f"{sum(step['ms'] for step in entry['steps']):.2f}", "", style="bold")
        console.print(steps)
        kernels = Table("kernel" if cuda else "operator", "calls", "ms", "share",
                        title=f"{row_label(entry)}: where one forward pass spends its time (torch.profiler)")
        for kernel in entry["kernels"]:
            kernels.add_row(escape(kernel["name"]), str(kernel["calls"]), f"{kernel['ms']:.2f}",
                            f"{kernel['share']:.1%}")
        console.print(kernels)
    console.print(f"weights sha256 {info['weights_sha256']}{' (random values)' if info['random_weights'] else ''} · "
                  f"best of {repeats} passes · torch {info['torch']}", style="dim")
