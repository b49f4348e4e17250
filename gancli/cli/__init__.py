"""gancli's command line: thin commands that parse, call gancli.api, and render with rich."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer
from rich.table import Column, Table

from gancli import __version__, api
from gancli.cli.app import App
from gancli.cli.ui import console, progress
from gancli.config import parse_set
from gancli.errors import ConfigError

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


@app.command("recipes")
def list_recipes():
    """List the recipes, one line each, with their presets."""
    table = Table("recipe", "what it trains", "presets", title="gancli recipes")
    for info in api.recipes():
        presets = ", ".join(f"{p}{' (offline default)' if p == info['offline_preset'] else ''}"
                            for p in info["presets"])
        table.add_row(info["name"], info["summary"], presets)
    console.print(table)


def _extra_options(args: list[str]) -> dict[str, str]:
    """Turn leftover '--field-name value', '--field-name=value' and '--no-flag' into config overrides."""
    out, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"Unexpected argument '{arg}'.")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            elif key.startswith("no-"):
                key, value = key[3:], "false"
            else:
                value = "true"
        out[key.replace("-", "_")] = value
        i += 1
    return out


def _print_config(cfg) -> None:
    defaults = type(cfg)()
    table = Table("key", "value", title=f"config: {cfg.recipe}", show_lines=False)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        style = "bold" if value != getattr(defaults, f.name) else "dim"
        table.add_row(f.name, str(value), style=style)
    console.print(table)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    recipe: str = typer.Argument(..., help="Recipe to train (see `gancli recipes`)."),
    data: Optional[str] = typer.Option(None, help="Dataset spec or folder; builtin data when omitted."),
    out: Optional[str] = typer.Option(None, help="Run folder (default runs/RECIPE-TIME)."),
    steps: Optional[int] = typer.Option(None, help="Generator steps."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size."),
    norm: Optional[str] = typer.Option(None, help=(
        "Critic normalization: none, sn, san, sn-exact, wn, or bn / ln layers inside the critic. san and sn-exact "
        "divide the stored conv weights by g·σ after each critic update (SAN Alg. 1); --set san_mode=reparam uses "
        "W/(g·σ) instead.")),
    penalty: Optional[str] = typer.Option(None, help="Critic penalty: none, gp, r1 (its weight is γ of "
                                          "γ/2·E‖∇D(x)‖²), dragan, l2, or clip (WGAN weight clipping, ±clip_value)."),
    loss: Optional[str] = typer.Option(None, help="Adversarial loss: ns, minimax, hinge, wgan, ls, ra."),
    lr_g: Optional[float] = typer.Option(None, help="Generator learning rate."),
    lr_d: Optional[float] = typer.Option(None, help="Critic learning rate."),
    betas: Optional[str] = typer.Option(None, help="Adam betas for both networks, e.g. 0.5,0.9."),
    n_dis: Optional[int] = typer.Option(None, help="Critic steps per generator step."),
    ema: Optional[bool] = typer.Option(None, "--ema/--no-ema", help="Keep an EMA of the generator."),
    precision: Optional[str] = typer.Option(None, help="fp32 or bf16 (autocast)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    deterministic: Optional[bool] = typer.Option(None, "--deterministic/--nondeterministic",
                                                 help="Deterministic algorithms (exact resume on CPU)."),
    preset: Optional[str] = typer.Option(None, help="A recipe preset (see `gancli recipes`)."),
    config: Optional[Path] = typer.Option(None, help="A TOML file of config values."),
    set_: list[str] = typer.Option([], "--set", help="key=value for any config field; repeatable."),
    resume: Optional[Path] = typer.Option(None, help="Continue the run in this folder."),
    log_every: Optional[int] = typer.Option(None, help="Log to metrics.jsonl every N steps."),
    sample_every: Optional[int] = typer.Option(None, help="Write a sample grid every N steps."),
    ckpt_every: Optional[int] = typer.Option(None, help="Checkpoint every N steps."),
    eval_every: Optional[int] = typer.Option(None, help="Evaluate every N steps."),
    augment: Optional[str] = typer.Option(None, help="Augment every image the critic sees: none, diffaug "
                                                     "(DiffAugment) or ada (adaptive, Karras et al. 2020)."),
    tensorboard: Optional[bool] = typer.Option(None, "--tensorboard/--no-tensorboard",
                                               help="Also write TensorBoard files (needs the tensorboard extra)."),
):
    """Train a recipe. Any config field can also be given as --field-name VALUE."""
    from gancli.train.distributed import world_from_env

    if world_from_env().rank:  # under torchrun, process 0 speaks for all (errors still reach stderr)
        console.quiet = True
    options = dict(data=data, out=out, steps=steps, batch_size=batch_size, norm=norm, penalty=penalty,
                   loss=loss, lr_g=lr_g, lr_d=lr_d, n_dis=n_dis, ema=ema, precision=precision, device=device,
                   seed=seed, deterministic=deterministic, log_every=log_every, sample_every=sample_every,
                   ckpt_every=ckpt_every, eval_every=eval_every, augment=augment, tensorboard=tensorboard)
    if betas is not None:
        options["betas_g"] = options["betas_d"] = betas
    sets = {**_extra_options(ctx.args), **parse_set(set_)}
    if resume is not None:
        if preset or config or data:
            raise ConfigError("--resume continues a run with its saved config; drop --preset, --config and --data.")
        cfg = api.resume_config(resume, **options, **sets)
        if cfg.recipe != recipe:
            raise ConfigError(f"Run '{resume}' was trained with recipe '{cfg.recipe}', not '{recipe}'.")
    else:
        cfg = api.make_config(recipe, preset=preset, config_file=config, sets=sets, **options)
    _print_config(cfg)

    with progress("it/s") as bar:
        task = bar.add_task(f"train {recipe}", total=cfg.steps, info="")

        def on_start(trainer):
            bar.update(task, completed=trainer.step)
            where = "resumed at step %d" % trainer.step if resume else "new run"
            if resume and trainer.step == 0:
                where = "no checkpoint was saved before it stopped: restarting from step 0 with its saved config,"
            console.print(f"[bold]{where}[/] in [cyan]{trainer.run_dir}[/] on {trainer.device}")

        def on_progress(step, logs):  # the trainer hands over losses at its log steps only
            if logs:
                bar.update(task, info="  ".join(f"{k} {v:.3f}" for k, v in list(logs.items())[:4]))
            bar.update(task, completed=step)

        run = api.train(cfg, resume=resume is not None, on_start=on_start, on_progress=on_progress)
    _print_scores(run)
    console.print(f"Done. Run folder: [cyan]{run.path}[/] (samples/, plot.png, metrics.jsonl, checkpoints/)")


def _print_scores(run) -> None:
    from gancli.train.plots import read_metrics

    records = read_metrics(run.path / "metrics.jsonl")
    for skipped in [r["eval_skipped"] for r in records if "eval_skipped" in r][:1]:
        console.print(f"[yellow]Evaluation skipped:[/] {skipped}")
    evals = [r for r in records if any(k.startswith("eval/") for k in r)]
    if not evals:
        return
    last = evals[-1]
    table = Table("score", "value", title=f"evaluation at step {last['step']}")
    for key, value in last.items():
        if key.startswith("eval/"):
            table.add_row(key[5:], f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


@app.command()
def sample(
    run: Path = typer.Argument(..., help="Run folder."),
    n: int = typer.Option(64, "--n", help="Number of images (with --class all: in all; with --interpolate: strips)."),
    out: Optional[Path] = typer.Option(None, help="FILE.png for a grid, or a folder for one PNG per image."),
    checkpoint: Optional[str] = typer.Option(None, help="Checkpoint name or step (default: latest)."),
    truncation: Optional[float] = typer.Option(None, help="Truncation threshold (recipes that support it)."),
    class_: Optional[str] = typer.Option(None, "--class", help="A class index, or 'all' for a class-balanced sheet "
                                                                "with a row per class (class-conditional runs)."),
    interpolate: Optional[str] = typer.Option(None, "--interpolate", help="Strips between two latents (z) or two "
                                                                          "classes (class), --steps images each."),
    steps: int = typer.Option(8, "--steps", help="Images per --interpolate strip."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    ema: bool = typer.Option(True, "--ema/--no-ema", help="Use EMA weights when the run has them."),
):
    """Draw samples from a run's generator as a grid or as separate PNGs."""
    from gancli.data.images import save_image, to_uint8
    from gancli.train.plots import save_grid

    if n <= 0:
        raise ConfigError(f"--n must be a positive number, got {n}.")
    grid = out is not None and out.suffix.lower() in (".png", ".jpg", ".jpeg")
    if out is not None and not grid and out.suffix and not out.is_dir():
        raise ConfigError(f"--out '{out}' is neither a .png or .jpg file (for a grid) nor a folder (for one PNG per "
                          f"image); give a name ending in .png, or a folder name without a suffix.")
    options = dict(class_id=class_, truncation=truncation, seed=seed, checkpoint=checkpoint, device=device, ema=ema)
    if interpolate is not None:
        images, per_row = api.interpolate(run, interpolate, rows=n, steps=steps, **options), steps
    else:
        images, per_row = api.sample_sheet(run, n, **options)
    if out is None:
        out, grid = run / "samples" / ("interpolation.png" if interpolate else "sample.png"), True
    if grid:
        save_grid(images, out, nrow=per_row)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(to_uint8(images)):
            save_image(image, out / f"{i:05d}.png")
    console.print(f"Wrote {len(images)} samples to [cyan]{out}[/]")


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


def _register_commands() -> None:
    """Commands contributed by the metrics and SR modules."""
    from gancli.cli import (bench, eval_gen, eval_iqa, eval_prd, eval_pyiqa, eval_truncation, export, runs, study,
                            synthesize, translate, upscale)

    eval_gen.register(eval_app)
    eval_truncation.register(eval_app)
    eval_iqa.register(eval_app)
    eval_pyiqa.register(eval_app)
    bench.register(bench_app)
    upscale.register(app)
    runs.register(app)
    synthesize.register(app)
    translate.register(app)
    eval_prd.register(eval_app)
    study.register(app)
    export.register(app)


_register_commands()
