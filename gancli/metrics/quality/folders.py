"""Image-quality metrics over folders: predictions paired with ground truths by file name, scored one by one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

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
OnImage = Callable[[str], None]


def _names(files: list[Path], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise DataError(f"Folder '{folder}' holds two images named '{f.stem}' ({out[f.stem].name}, {f.name}).")
        out[f.stem] = f
    return out


def listing(names: list[str]) -> str:
    """The first five names, and how many there are in all when more."""
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
                        f"in '{gt_dir}': {listing(missing_gt)}.")
    if missing_pred:
        raise DataError(f"{len(missing_pred)} ground-truth images in '{gt_dir}' have no prediction of the same "
                        f"name in '{pred_dir}': {listing(missing_pred)}.")
    return [(name, preds[name], gts[name]) for name in sorted(preds)]


def load_pair(pred_path: Path, gt_path: Path) -> tuple[torch.Tensor, torch.Tensor, bool]:
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


def score_pairs(pred: Path, gt: Path, fn: Callable, on_image: OnImage | None = None,
                on_total: Callable[[int], None] | None = None) -> tuple[list[tuple[str, float]], list[str]]:
    """fn(prediction, ground truth) of every pair of files: (name, value) rows and notes on cropped ground truths."""
    pairs = pair_files(Path(pred), Path(gt))
    if on_total:
        on_total(len(pairs))
    rows, cropped = [], []
    for name, p, g in pairs:
        pred_img, gt_img, was_cropped = load_pair(p, g)
        if was_cropped:
            cropped.append(g.name)
        rows.append((name, fn(pred_img, gt_img)))
        if on_image:
            on_image(name)
    notes = []
    if cropped:
        notes.append(f"{len(cropped)} ground-truth images larger than their prediction by less than "
                     f"{MAX_GT_EXCESS} px were cropped at the bottom/right: {listing(cropped)}.")
    return rows, notes


def score_folder(folder: Path, fn: Callable, on_image: OnImage | None = None,
                 on_total: Callable[[int], None] | None = None) -> list[tuple[str, float]]:
    """fn(image) of every image of a folder (no reference), as (name, value) rows."""
    from gancli.data.images import list_images, load_image

    files = list_images(Path(folder), recursive=False)
    if on_total:
        on_total(len(files))
    rows = []
    for f in files:
        rows.append((f.stem, fn(load_image(f))))
        if on_image:
            on_image(f.name)
    return rows


def _channels(y_channel: bool) -> str:
    return "the Y channel (BT.601 rgb2ycbcr, unrounded)" if y_channel else "RGB"


def score_images(metric: str, pred: Path, gt: Path | None = None, *, crop_border: int = 0, y_channel: bool = False,
                 net: str = "alex", lpips_weights: Path | None = None, device: torch.device | str = "cpu",
                 on_image: OnImage | None = None, on_total: Callable[[int], None] | None = None) -> dict:
    """psnr, ssim, lpips (against gt, paired by file name) or niqe (no reference) of every image in a folder:
    {metric, convention, rows: [(name, value)], notes, mean, count}."""
    from gancli.metrics.quality import iqa

    notes: list[str] = []
    if metric in ("psnr", "ssim"):
        fn = getattr(iqa, metric)
        rows, notes = score_pairs(pred, gt, lambda p, g: fn(p, g, crop_border, y_channel), on_image, on_total)
        convention = CONVENTIONS[metric].format(channels=_channels(y_channel), crop=crop_border)
    elif metric == "lpips":
        lpips = iqa.LPIPSMetric(net, lpips_weights, torch.device(device))
        rows, notes = score_pairs(pred, gt, lambda p, g: lpips(p, g, crop_border), on_image, on_total)
        convention = CONVENTIONS["lpips"].format(net=net, crop=crop_border)
    elif metric == "niqe":
        rows = score_folder(pred, lambda image: iqa.niqe(image, crop_border, "y" if y_channel else "gray"),
                            on_image, on_total)
        luma = "uint8 Y (rgb2ycbcr)" if y_channel else "uint8 rgb2gray"
        convention = CONVENTIONS["niqe"].format(luma=luma, crop=crop_border)
    else:
        raise ValueError(f"unknown image-quality metric '{metric}'")
    values = [v for _, v in rows]
    return {"metric": metric, "convention": convention, "rows": rows, "notes": notes,
            "mean": sum(values) / len(values) if values else float("nan"), "count": len(rows)}


def score_iqa(metric: str, pred: Path, gt: Path | None = None, *, crop_border: int = 0, y_channel: bool | None = None,
              weights: Path | None = None, device: torch.device | str = "cpu", on_image: OnImage | None = None,
              on_total: Callable[[int], None] | None = None) -> dict:
    """Any metric of `eval iqa` (pyiqa's, gancli's niqe, PI) of every image in a folder; full-reference metrics
    against gt, paired by file name: {metric, convention, rows: [(name, value)], notes, mean, count, lower_better}."""
    from gancli.errors import ConfigError
    from gancli.metrics.quality import pyiqa_metrics

    pyiqa_name, mode = pyiqa_metrics.resolve(metric)
    if mode == "FR" and gt is None:
        raise ConfigError(f"'{metric}' is a full-reference metric; give --gt DIR with the ground-truth images.")
    if mode == "NR" and gt is not None:
        raise ConfigError(f"'{metric}' is a no-reference metric; leave out --gt.")
    if pyiqa_name is None and metric == "niqe":
        return score_images("niqe", pred, crop_border=crop_border, y_channel=y_channel is not False,
                            on_image=on_image, on_total=on_total) | {"lower_better": True}
    if pyiqa_name is None:  # pi
        if y_channel is False:
            raise ConfigError("PI is defined on the Y channel (the PIRM scripts); leave out --rgb.")
        scorer = pyiqa_metrics.PerceptualIndex(crop_border, weights=weights)
        lower_better = True
    else:
        scorer = pyiqa_metrics.PyiqaMetric(pyiqa_name, y_channel=y_channel, crop_border=crop_border, weights=weights,
                                           device=device)
        lower_better = scorer.lower_better
    notes: list[str] = []
    if mode == "FR":
        rows, notes = score_pairs(pred, gt, scorer, on_image, on_total)
    else:
        rows = score_folder(pred, scorer, on_image, on_total)
    values = [v for _, v in rows]
    return {"metric": metric, "convention": scorer.protocol(), "rows": rows, "notes": notes,
            "mean": sum(values) / len(values) if values else float("nan"), "count": len(rows),
            "lower_better": lower_better}
