"""Scoring an sr generator on a test set: PSNR/SSIM on Y and NIQE, next to the bicubic baseline (recipe sr)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from gancli.data.sr import bicubic_upsample
from gancli.metrics.quality import iqa
from gancli.metrics.quality.pyiqa_metrics import PerceptualIndex
from gancli.nn.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, upscale_image

SR_PROTOCOL = ("HR cropped to a multiple of {s}, LR by MATLAB bicubic unless given; PSNR/SSIM on the Y channel "
               "(BT.601, unrounded) and NIQE (MATLAB port, uint8 Y), {s} px border crop; "
               "bicubic baseline = MATLAB imresize ×{s}")


PI_PROTOCOL = "; PI = ½((10 − Ma) + NIQE), Ma = NRQM of pyiqa on Y, same crop"


def sr_scores(image: torch.Tensor, hr: torch.Tensor, scale: int, niqe: bool = True,
              pi: PerceptualIndex | None = None) -> dict[str, float]:
    """psnr_y, ssim_y (and niqe, and ma and pi with a PerceptualIndex) of one uint8 SR image against its HR image,
    SR conventions (crop = scale)."""
    scores = {"psnr_y": iqa.psnr(image, hr, scale, y_channel=True),
              "ssim_y": iqa.ssim(image, hr, scale, y_channel=True)}
    if niqe and min(image.shape[-2:]) - 2 * scale >= 96:
        scores["niqe"] = iqa.niqe(image, scale, convert="y")
        if pi is not None:
            parts = pi.parts(image, scores["niqe"])
            scores["ma"], scores["pi"] = parts["ma"], parts["pi"]
    return scores


def score_sr_images(G: nn.Module | None, images, scale: int, *, limit: int | None = None,
                    tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, device=None, niqe: bool = True,
                    pi: PerceptualIndex | None = None, on_image: Callable[[str], None] | None = None) -> list[dict]:
    """One row per image of an SRImages set: name, G's scores and, when G is None, the bicubic baseline's.

    Rows hold psnr_y, ssim_y and niqe (and ma, pi with a PerceptualIndex), the last left out for images under 96 px
    after the crop.
    """
    rows = []
    count = len(images) if limit is None else min(limit, len(images))
    for i in range(count):
        item = images[i]
        if G is None:
            out = bicubic_upsample(item["lr"], scale)
        else:
            out = upscale_image(G, item["lr"], scale, tile, overlap, device)
        rows.append({"name": item["name"], **sr_scores(out, item["hr"], scale, niqe, pi)})
        if on_image:
            on_image(item["name"])
    return rows


def mean_scores(rows: list[dict]) -> dict[str, float]:
    """Mean of each numeric score over the rows that have it."""
    keys = [k for k in rows[0] if k != "name"] if rows else []
    for row in rows:
        keys += [k for k in row if k != "name" and k not in keys]
    out = {}
    for key in keys:
        values = [r[key] for r in rows if key in r]
        out[key] = sum(values) / len(values)
    return out
