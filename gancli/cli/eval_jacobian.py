"""`gancli eval jacobian RUN`: condition numbers of a generator's Jacobian (Odena et al. 2018)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from gancli import api
from gancli.cli.app import eval_app
from gancli.cli.eval_gen import CHECKPOINT, EMA, JSON, SEED
from gancli.cli.ui import console


@eval_app.command("jacobian")
def jacobian(run: Path = typer.Argument(..., help="Run folder."),
             n: int = typer.Option(64, "--n", help="Latents z at which the Jacobian is taken."),
             checkpoint: Optional[str] = CHECKPOINT, ema: bool = EMA, seed: int = SEED,
             device: str = typer.Option("cpu", "--device", help="cpu or cuda."), as_json: bool = JSON):
    """Condition number of the generator's input-output Jacobian (Odena et al. 2018) over n latents."""
    from gancli.device import resolve_device

    result = api.jacobian_conditioning(run, n=n, seed=seed, checkpoint=checkpoint,
                                       device=str(resolve_device(device)), ema=ema)
    values = result.as_dict()
    if as_json:
        print(json.dumps(values))
        return
    console.print(f"[bold]cond(J) mean {values['cond_mean']:.4g}  min {values['cond_min']:.4g}  "
                  f"max {values['cond_max']:.4g}[/]  over {values['n']} latents", emoji=False)
    console.print(f"log cond(JᵀJ) mean {values['log_metric_cond_mean']:.4f} "
                  f"± {values['log_metric_cond_std']:.4f} "
                  f"(Odena et al.'s metric-tensor condition number, as compare_gan reports it)", style="dim",
                  emoji=False)
