"""`gancli bench train RECIPE`: training speed of config variants against a baseline, in one process."""

from __future__ import annotations

import typer
from rich.table import Column, Table

from gancli import api
from gancli.cli.app import bench_app
from gancli.cli.ui import console
from gancli.config import parse_set
from gancli.errors import ConfigError

DEFAULT_TRAIN_VARIANTS = ["precision=bf16", "memory_format=contiguous", "compile=default", "norm=sn", "norm=none"]


@bench_app.command("train")
def bench_train(
    recipe: str = typer.Argument(..., help="Recipe to time."),
    variant: list[str] = typer.Option([], "--variant", help=(
        "key=value[,key=value] compared with the baseline; repeatable (default: "
        f"{' '.join(DEFAULT_TRAIN_VARIANTS)}).")),
    set_: list[str] = typer.Option([], "--set", help="key=value for the baseline config; repeatable."),
    iters: int = typer.Option(50, help="Timed iterations per variant, over all rounds."),
    warmup: int = typer.Option(10, help="Untimed iterations first (--compile compiles after the first)."),
    rounds: int = typer.Option(5, help="The variants take turns this many times; medians over the rounds."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Training iterations/s, images/s and peak GPU memory of config variants against a baseline, in one process."""
    import json

    if iters <= 0 or warmup < 0 or rounds <= 0:
        raise ConfigError("--iters and --rounds must be positive and --warmup not negative.")
    base = {"device": device, **parse_set(set_), "sample_every": 0, "ckpt_every": 0, "eval_every": 0}
    rows = api.bench_training(recipe, base, variant or DEFAULT_TRAIN_VARIANTS, iters, warmup, rounds)
    if json_out:
        console.print_json(json.dumps(rows))
        return
    table = Table(Column("variant", overflow="fold"), "it/s", "img/s", "ratio", "peak MiB", "MiB/image",
                  title=f"bench train {recipe} ({iters} iterations in {rows[0]['rounds']} interleaved rounds; "
                        "medians)")
    for row in rows:
        memory = ([f"{row['peak_mib']:.0f}", f"{row['peak_mib_per_image']:.1f}"] if row["peak_mib"] is not None
                  else ["-", "-"])
        table.add_row(row["variant"], f"{row['it_s']:.2f}", f"{row['img_s']:.0f}", f"{row['ratio']:.3f}x", *memory)
    console.print(table)
