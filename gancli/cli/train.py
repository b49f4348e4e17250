"""`gancli train RECIPE`: train a recipe (or resume a run) with a progress bar, then show its scores."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from gancli import api
from gancli.cli.app import app
from gancli.cli.options import extra_options
from gancli.cli.ui import console, progress
from gancli.config import parse_set
from gancli.errors import ConfigError


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
    loss: Optional[str] = typer.Option(None, help="Adversarial loss: ns, minimax, hinge, wgan, ls (on D), "
                                                  "ls-sigmoid (on σ(D), compare_gan), ra."),
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
    if not api.main_process():  # under torchrun, process 0 speaks for all (errors still reach stderr)
        console.quiet = True
    options = dict(data=data, out=out, steps=steps, batch_size=batch_size, norm=norm, penalty=penalty,
                   loss=loss, lr_g=lr_g, lr_d=lr_d, n_dis=n_dis, ema=ema, precision=precision, device=device,
                   seed=seed, deterministic=deterministic, log_every=log_every, sample_every=sample_every,
                   ckpt_every=ckpt_every, eval_every=eval_every, augment=augment, tensorboard=tensorboard)
    if betas is not None:
        options["betas_g"] = options["betas_d"] = betas
    sets = {**extra_options(ctx.args), **parse_set(set_)}
    cfg = _config(recipe, resume, preset, config, options, sets)
    _print_config(cfg)

    run = _train(cfg, resume is not None)
    _print_scores(run)
    console.print(f"Done. Run folder: [cyan]{run.path}[/] (samples/, plot.png, metrics.jsonl, checkpoints/)")


def _config(recipe: str, resume: Path | None, preset: str | None, config: Path | None, options: dict, sets: dict):
    """The run's config: a new one from the recipe (preset, file, options, --set), or a resumed run's with changes."""
    if resume is None:
        return api.make_config(recipe, preset=preset, config_file=config, sets=sets, **options)
    if preset or config or options["data"]:
        raise ConfigError("--resume continues a run with its saved config; drop --preset, --config and --data.")
    cfg = api.resume_config(resume, **options, **sets)
    if cfg.recipe != recipe:
        raise ConfigError(f"Run '{resume}' was trained with recipe '{cfg.recipe}', not '{recipe}'.")
    return cfg


def _train(cfg, resume: bool):
    """api.train with a progress bar of the steps and the latest losses."""
    with progress("it/s") as bar:
        task = bar.add_task(f"train {cfg.recipe}", total=cfg.steps, info="")

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

        return api.train(cfg, resume=resume, on_start=on_start, on_progress=on_progress)


def _print_scores(run) -> None:
    skipped, last = api.last_evaluation(run.path)
    if skipped:
        console.print(f"[yellow]Evaluation skipped:[/] {skipped}")
    if last is None:
        return
    table = Table("score", "value", title=f"evaluation at step {last['step']}")
    for key, value in last.items():
        if key.startswith("eval/"):
            table.add_row(key[5:], f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
