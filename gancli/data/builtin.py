"""Builtin procedural images: ten classes of shapes and patterns, deterministic, no download."""

from __future__ import annotations

import hashlib
import math
import zlib

import torch
from torch.utils.data import Dataset

from gancli.errors import DataError

CLASSES = ("disc", "square", "triangle", "ring", "cross", "diamond", "ellipse", "pair", "stripes", "checker")
SPLIT_SIZES = {"train": 20000, "test": 5000}


def _signed_distance(name: str, x: torch.Tensor, y: torch.Tensor, size: float, angle: float) -> torch.Tensor:
    """Negative inside the shape, positive outside, in the [-1, 1] image coordinate frame."""
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * x + s * y, -s * x + c * y
    if name == "disc":
        return torch.sqrt(x * x + y * y) - size
    if name == "square":
        return torch.maximum(u.abs(), v.abs()) - size * 0.85
    if name == "triangle":
        k = math.sqrt(3.0)
        return torch.maximum(v.abs() * k / 2 + u / 2, -u) - size * 0.55
    if name == "ring":
        return (torch.sqrt(x * x + y * y) - size * 0.8).abs() - size * 0.25
    if name == "cross":
        arm = torch.minimum(torch.maximum(u.abs() - size, v.abs() - size * 0.3),
                            torch.maximum(v.abs() - size, u.abs() - size * 0.3))
        return arm
    if name == "diamond":
        return u.abs() + 1.8 * v.abs() - size  # a rhombus, unlike the rotated square
    if name == "ellipse":
        return torch.sqrt((u / 1.0) ** 2 + (v / 0.45) ** 2) - size
    if name == "pair":
        d1 = torch.sqrt((u - size * 0.55) ** 2 + v * v) - size * 0.45
        d2 = torch.sqrt((u + size * 0.55) ** 2 + v * v) - size * 0.45
        return torch.minimum(d1, d2)
    if name == "stripes":
        return torch.sin(u * math.pi * (2.0 + 3.0 * size)) * 0.15
    if name == "checker":
        f = math.pi * (1.5 + 2.5 * size)
        return torch.sin(u * f) * torch.sin(v * f) * 0.15
    raise ValueError(name)


def render(label: int, resolution: int, generator: torch.Generator) -> torch.Tensor:
    """One image of class `label` as uint8 (3, R, R); all randomness comes from generator."""
    r = torch.rand(12, generator=generator)
    axis = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution * 2 - 1
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    top, bottom = 0.15 + 0.5 * r[0:3], 0.15 + 0.5 * r[3:6]
    ramp = (y + 1) / 2
    background = top[:, None, None] * (1 - ramp) + bottom[:, None, None] * ramp
    colour = torch.rand(3, generator=generator)
    colour = colour / colour.max().clamp_min(1e-3)  # saturated foreground
    size = 0.35 + 0.3 * float(r[6])
    shift = 0.25 * (r[7:9] * 2 - 1)
    angle = float(r[9]) * math.pi
    dist = _signed_distance(CLASSES[label], x - float(shift[0]), y - float(shift[1]), size, angle)
    mask = torch.sigmoid(-dist * resolution * 0.75)  # soft, anti-aliased edge
    image = background * (1 - mask) + colour[:, None, None] * mask
    image = image + 0.03 * torch.randn(image.shape, generator=generator)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)



def ends_digest(dataset) -> str:
    """A digest of a procedural dataset's first and last items (their first tensor): it changes when the rendering
    (or torch's generator) does, so cached statistics of the data are never reused across such a change."""
    digest = hashlib.sha256()
    for index in sorted({0, len(dataset) - 1}):
        digest.update(dataset[index][0].numpy().tobytes())
    return digest.hexdigest()[:16]

class BuiltinImages(Dataset):
    """Class-labelled procedural images at any resolution from 16 to 256 px; item i is always the same."""

    num_classes = len(CLASSES)

    def __init__(self, split: str = "train", resolution: int = 32, size: int | None = None):
        if split not in SPLIT_SIZES:
            raise DataError(f"Builtin data has splits {', '.join(SPLIT_SIZES)}, not '{split}'.")
        if not 16 <= resolution <= 256:
            raise DataError(f"Builtin data resolution must be between 16 and 256 px, got {resolution}.")
        self.split, self.resolution = split, resolution
        self.size = size or SPLIT_SIZES[split]
        self.name = f"builtin:{split}:{resolution}"
        self._salt = zlib.crc32(split.encode())

    def __len__(self) -> int:
        return self.size

    def fingerprint(self) -> str:
        return ends_digest(self)

    def label(self, index: int) -> int:
        return index % self.num_classes

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.size:
            raise IndexError(index)
        generator = torch.Generator().manual_seed(self._salt * 1_000_003 + index)
        label = self.label(index)
        return render(label, self.resolution, generator), label
