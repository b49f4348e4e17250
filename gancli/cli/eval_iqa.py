"""`gancli eval psnr|ssim|niqe|lpips --pred DIR [--gt DIR]` and `gancli eval sr RUN --data TESTSET`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from gancli.cli.ui import console, progress
from gancli.errors import DataError

MAX_GT_EXCESS = 8  # a ground truth up to this many px larger than its prediction is cropped (scale remainder)

CONVENTIONS = {
    "psnr": "10·log10(255²/MSE) over {channels}, {crop} px border crop",
    "ssim": "Wang et al. 2004 (MATLAB ssim_index: Gaussian 11x11 σ 1.5, K 0.01/0.03, no downsampling) on "
            "{channels}, {crop} px border crop",
    "lpips": "LPIPS v0.1 ({net}), RGB in [-1, 1], {crop} px border crop",
    "niqe": "NIQE (port of the authors' MATLAB release, pristine model from BasicSR) on {luma}, "
            "{crop} px border crop",
}


def _names(files: list[Path], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise DataError(f"Folder '{folder}' holds two images named '{f.stem}' ({out[f.stem].name}, {f.name}).")
        out[f.stem] = f
    return out


def _listing(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")


def pair_files(pred_dir: Path, gt_dir: Path) -> list[tuple[str, Path, Path]]:
    """(name, prediction, ground truth) matched by file name without extension; mismatches are errors."""
    from gancli.data.images import list_images

    preds = _names(list_images(pred_dir, recursive=False), pred_dir)
    gts = _names(list_images(gt_dir, recursive=False), gt_dir)
    missing_gt = sorted(set(preds) - set(gts))
    missing_pred = sorted(set(gts) - set(preds))
    if missing_gt:
        raise DataError(f"{len(missing_gt)} predictions in '{pred_dir}' have no ground truth of the same name "
                        f"in '{gt_dir}': {_listing(missing_gt)}.")
    if missing_pred:
        raise DataError(f"{len(missing_pred)} ground-truth images in '{gt_dir}' have no prediction of the same "
                        f"name in '{pred_dir}': {_listing(missing_pred)}.")
    return [(name, preds[name], gts[name]) for name in sorted(preds)]


def load_pair(pred_path: Path, gt_path: Path):
    """Both images as uint8 (3, H, W); a ground truth slightly larger (not a multiple of the scale) is cropped.

    Returns (pred, gt, cropped).
    """
    from gancli.data.images import load_image

    pred, gt = load_image(pred_path), load_image(gt_path)
    (ph, pw), (gh, gw) = pred.shape[-2:], gt.shape[-2:]
    if (ph, pw) == (gh, gw):
        return pred, gt, False
    if 0 <= gh - ph < MAX_GT_EXCESS and 0 <= gw - pw < MAX_GT_EXCESS:
        return pred, gt[:, :ph, :pw], True
    raise DataError(f"Prediction '{pred_path}' is {pw}x{ph} but its ground truth '{gt_path}' is {gw}x{gh}.")


def _format(value: float, digits: int) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _json_value(value: float) -> float | str:
    return "inf" if isinstance(value, float) and math.isinf(value) else value


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _report(metric: str, rows: list[tuple[str, float]], convention: str, as_json: bool, digits: int,
            notes: list[str]) -> None:
    mean = _mean([v for _, v in rows])
    if as_json:
        typer.echo(json.dumps({"metric": metric, "convention": convention, "notes": notes,
                               "images": [{"name": n, metric: _json_value(v)} for n, v in rows],
                               "mean": _json_value(mean), "count": len(rows)}, indent=2))
        return
    for note in notes:
        console.print(f"[yellow]Note:[/] {note}")
    table = Table("image", metric.upper(), title=f"{metric.upper()} — {convention}", title_justify="left")
    for name, value in rows:
        table.add_row(name, _format(value, digits))
    table.add_section()
    table.add_row(f"mean of {len(rows)}", _format(mean, digits), style="bold")
    console.print(table)


def _run_pairs(metric: str, pred: Path, gt: Path, as_json: bool, fn: Callable) -> tuple[list, list[str]]:
    pairs = pair_files(pred, gt)
    rows, cropped = [], []
    with progress("img/s", transient=True) as bar:
        task = bar.add_task(metric, total=len(pairs), info="", visible=not as_json)
        for name, p, g in pairs:
            pred_img, gt_img, was_cropped = load_pair(p, g)
            if was_cropped:
                cropped.append(g.name)
            rows.append((name, fn(pred_img, gt_img)))
            bar.update(task, advance=1, info=name)
    notes = []
    if cropped:
        notes.append(f"{len(cropped)} ground-truth images larger than their prediction by less than "
                     f"{MAX_GT_EXCESS} px were cropped at the bottom/right: {_listing(cropped)}.")
    return rows, notes


def _channels(y_channel: bool) -> str:
    return "the Y channel (BT.601 rgb2ycbcr, unrounded)" if y_channel else "RGB"


def _fidelity_metric(metric: str, fn: Callable, pred: Path, gt: Path, crop_border: int, y_channel: bool,
                     as_json: bool) -> None:
    """Score and report a full-reference metric fn(pred, gt, crop_border, y_channel) over paired files."""
    rows, notes = _run_pairs(metric, pred, gt, as_json, lambda p, g: fn(p, g, crop_border, y_channel))
    convention = CONVENTIONS[metric].format(channels=_channels(y_channel), crop=crop_border)
    _report(metric, rows, convention, as_json, 4, notes)


def register(eval_app: typer.Typer) -> None:
    pred_opt = typer.Option(..., "--pred", help="Folder of predicted (e.g. super-resolved) images.")
    gt_opt = typer.Option(..., "--gt", help="Folder of ground-truth images with the same file names.")
    crop_opt = typer.Option(0, "--crop-border", help="Pixels removed at each border (SR convention: the scale).")
    y_opt = typer.Option(False, "--y-channel", help="Score the Y channel of YCbCr (BT.601, MATLAB coefficients).")
    json_opt = typer.Option(False, "--json", help="Print JSON instead of a table.")

    @eval_app.command("psnr")
    def psnr_cmd(pred: Path = pred_opt, gt: Path = gt_opt, crop_border: int = crop_opt, y_channel: bool = y_opt,
                 as_json: bool = json_opt):
        """PSNR of predictions against ground truth, per image and mean (agrees with scikit-image)."""
        from gancli.metrics.quality.iqa import psnr

        _fidelity_metric("psnr", psnr, pred, gt, crop_border, y_channel, as_json)

    @eval_app.command("ssim")
    def ssim_cmd(pred: Path = pred_opt, gt: Path = gt_opt, crop_border: int = crop_opt, y_channel: bool = y_opt,
                 as_json: bool = json_opt):
        """SSIM of predictions against ground truth, per image and mean (agrees with scikit-image)."""
        from gancli.metrics.quality.iqa import ssim

        _fidelity_metric("ssim", ssim, pred, gt, crop_border, y_channel, as_json)

    @eval_app.command("lpips")
    def lpips_cmd(pred: Path = pred_opt, gt: Path = gt_opt, crop_border: int = crop_opt,
                  net: str = typer.Option("alex", help="Backbone: alex (the LPIPS default) or vgg."),
                  lpips_weights: Optional[Path] = typer.Option(None, help="torchvision backbone weights file "
                                                               "(default: the torch hub cache)."),
                  device: str = typer.Option("auto", help="auto, cpu or cuda."),
                  as_json: bool = json_opt):
        """LPIPS distance of predictions to ground truth (lower is better); needs the backbone weights."""
        from gancli.device import resolve_device
        from gancli.metrics.quality.iqa import LPIPSMetric

        metric = LPIPSMetric(net, lpips_weights, resolve_device(device))
        rows, notes = _run_pairs("lpips", pred, gt, as_json, lambda p, g: metric(p, g, crop_border))
        _report("lpips", rows, CONVENTIONS["lpips"].format(net=net, crop=crop_border), as_json, 4, notes)

    @eval_app.command("niqe")
    def niqe_cmd(pred: Path = pred_opt, crop_border: int = crop_opt,
                 y_channel: bool = typer.Option(True, "--y-channel/--gray",
                                                help="Luma: MATLAB rgb2ycbcr Y (PIRM-SR convention) or rgb2gray "
                                                     "(the NIQE release)."),
                 as_json: bool = json_opt):
        """NIQE (no reference, lower is better) of every image in a folder, MATLAB-compatible."""
        from gancli.data.images import list_images, load_image
        from gancli.metrics.quality.iqa import niqe

        files = list_images(pred, recursive=False)
        rows = []
        with progress("img/s", transient=True) as bar:
            task = bar.add_task("niqe", total=len(files), info="", visible=not as_json)
            for f in files:
                rows.append((f.stem, niqe(load_image(f), crop_border, "y" if y_channel else "gray")))
                bar.update(task, advance=1, info=f.name)
        luma = "uint8 Y (rgb2ycbcr)" if y_channel else "uint8 rgb2gray"
        _report("niqe", rows, CONVENTIONS["niqe"].format(luma=luma, crop=crop_border), as_json, 4, [])

    @eval_app.command("sr")
    def sr_cmd(run: Path = typer.Argument(..., help="An sr run folder."),
               data: str = typer.Option(..., "--data", help="Test set: a folder of HR images (Set5, Set14, "
                                        "BSD100, Urban100 layouts), a DIV2K root (valid split) or 'builtin'."),
               lr: Optional[Path] = typer.Option(None, "--lr", help="Folder of the LR images (default: made by "
                                                 "MATLAB bicubic, or found in the test set's layout)."),
               checkpoint: Optional[str] = typer.Option(None, help="Checkpoint name or step (default: latest)."),
               device: str = typer.Option("auto", help="auto, cpu or cuda."),
               tile: int = typer.Option(256, help="LR tile size; 0 = whole images."),
               overlap: int = typer.Option(40, help="LR pixels of context around each tile."),
               limit: int = typer.Option(0, help="Score only the first N images (0 = all)."),
               as_json: bool = json_opt):
        """Super-resolve a test set with a run and report PSNR/SSIM (Y, crop = scale) and NIQE next to bicubic."""
        from gancli import api

        model = api.load(run, checkpoint, device, verb="score_test_set")
        with progress("img/s", transient=True) as bar:
            task = bar.add_task(f"sr x{model.cfg.scale}", total=None, info="", visible=not as_json)

            def step(name: str) -> None:
                bar.update(task, advance=1, info=name)

            result = model.score_test_set(data, lr, limit=limit, tile=tile, overlap=overlap, on_image=step,
                                          on_total=lambda total: bar.update(task, total=total))
        model_rows, bicubic_rows, means = result["model"], result["bicubic"], result["mean"]
        protocol, notes, count = result["protocol"], result["notes"], result["count"]
        if as_json:
            typer.echo(json.dumps({"run": str(run), "data": result["data"], "scale": result["scale"],
                                   "protocol": protocol, "notes": notes,
                                   "images": [{"name": m["name"], "model": _strip(m), "bicubic": _strip(b)}
                                              for m, b in zip(model_rows, bicubic_rows)],
                                   "mean": means, "count": count}, indent=2))
            return
        for note in notes:
            console.print(f"[yellow]Note:[/] {note}")
        pi = any("pi" in row for row in model_rows)  # with the iqa extra and NRQM's weights
        heads = ["PSNR-Y", "SSIM-Y", "NIQE"] + (["PI"] if pi else [])
        table = Table("image", *heads, *[f"bicubic {h}" for h in heads],
                      title=f"{result['data']}, x{result['scale']}: {protocol}", title_justify="left")
        for m, b in zip(model_rows, bicubic_rows):
            table.add_row(m["name"], *_cells(m, pi), *_cells(b, pi))
        table.add_section()
        table.add_row(f"mean of {count}", *_cells(means["model"], pi), *_cells(means["bicubic"], pi), style="bold")
        console.print(table)


def _strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "name"}


def _cells(row: dict, pi: bool = False) -> list[str]:
    cells = [_format(row["psnr_y"], 2), _format(row["ssim_y"], 4), _format(row["niqe"], 3) if "niqe" in row else "-"]
    return cells + ([_format(row["pi"], 3) if "pi" in row else "-"] if pi else [])
