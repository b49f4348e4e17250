"""Tiled inference of any image-to-image network on images of any size: tiles with a margin of context, centres kept.

Each tile of the LR image is run with `overlap` extra LR pixels of context on every side (clipped at
the image border) and only the tile's own region of the output is kept. For a fully convolutional
network whose receptive field reaches fewer than `overlap` LR pixels (SAN Table 8's SRResNet:
35 px), the tiled result equals the whole-image result up to float rounding. Deeper networks
(ESRGAN's RRDBNet reaches hundreds of pixels) get seams too faint to see, as in ESRGAN's own tiling.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from gancli.errors import ConfigError

DEFAULT_TILE, DEFAULT_OVERLAP = 256, 40


def tile_boxes(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of the tiles covering an LR image, row by row."""
    return [(y, min(y + tile, height), x, min(x + tile, width))
            for y in range(0, height, tile) for x in range(0, width, tile)]


@torch.no_grad()
def upscale_tensor(G: nn.Module, lr: torch.Tensor, scale: int, tile: int = DEFAULT_TILE,
                   overlap: int = DEFAULT_OVERLAP, on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """G applied to a float LR batch (N, 3, h, w) in [-1, 1], tile by tile; returns (N, 3, s·h, s·w) float."""
    if tile < 0 or overlap < 0:
        raise ConfigError(f"--tile and --overlap must not be negative, got {tile} and {overlap}.")
    n, _, h, w = lr.shape
    if tile == 0 or (h <= tile and w <= tile):
        out = G(lr)
        _check_shape(out, lr, scale)
        if on_tile:
            on_tile(1, 1)
        return out.float()
    out = torch.empty(n, 3, h * scale, w * scale, device=lr.device)
    boxes = tile_boxes(h, w, tile)
    for k, (y0, y1, x0, x1) in enumerate(boxes):
        py0, px0 = max(y0 - overlap, 0), max(x0 - overlap, 0)
        py1, px1 = min(y1 + overlap, h), min(x1 + overlap, w)
        patch = lr[..., py0:py1, px0:px1]
        result = G(patch)
        _check_shape(result, patch, scale)
        oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
        out[..., y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
            result[..., oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale].float()
        if on_tile:
            on_tile(k + 1, len(boxes))
    return out


def _check_shape(out: torch.Tensor, lr: torch.Tensor, scale: int) -> None:
    want = (lr.shape[-2] * scale, lr.shape[-1] * scale)
    if tuple(out.shape[-2:]) != want:
        raise ConfigError(f"The generator turned a {lr.shape[-1]}x{lr.shape[-2]} input into "
                          f"{out.shape[-1]}x{out.shape[-2]}, not the x{scale} upscale expected.")


@torch.no_grad()
def upscale_image(G: nn.Module, lr: torch.Tensor, scale: int, tile: int = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP, device: str | torch.device | None = None,
                  on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Upscale one uint8 image (3, h, w) → uint8 (3, s·h, s·w), tiled so large images fit in memory."""
    if device is None:
        device = next(G.parameters()).device
    x = (lr.to(device).float() / 127.5 - 1.0)[None]
    out = upscale_tensor(G, x, scale, tile, overlap, on_tile)[0]
    return ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
