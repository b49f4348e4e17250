"""Builtin procedural scenes for label-to-image synthesis: a label map and a rendered photo per index.

Each layout has sky, ground and object-like regions (mountains, water, a road, buildings, trees,
cars) drawn from the index alone; the photo paints every class with its own colour and texture
statistics (sky gradients, grass grain, water streaks, lit windows, ...), with per-image colour
jitter so one map has many plausible photos. Layouts live in image-relative coordinates: the same
index rendered at 64×64 or 256×512 is the same scene. Things (buildings, trees, cars) also get
instance ids, written as Cityscapes does: class·1000 + k for things, the class id for stuff.
"""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from gancli.data.builtin import ends_digest
from gancli.errors import DataError

CLASSES = ("sky", "mountain", "grass", "road", "water", "building", "tree", "car")
SKY, MOUNTAIN, GRASS, ROAD, WATER, BUILDING, TREE, CAR = range(len(CLASSES))
THINGS = (BUILDING, TREE, CAR)
# RGB in [0, 1] of each class's mean colour, and how much it varies from photo to photo
BASE_COLOURS = torch.tensor([[0.45, 0.65, 0.92], [0.45, 0.42, 0.52], [0.30, 0.55, 0.20], [0.30, 0.30, 0.32],
                             [0.15, 0.35, 0.60], [0.62, 0.50, 0.40], [0.12, 0.32, 0.12], [0.80, 0.15, 0.15]])
COLOUR_JITTER = (0.06, 0.06, 0.06, 0.04, 0.06, 0.10, 0.04, 0.25)
# texture: (noise amplitude, noise cells across the image height, anisotropy = cells across / cells down)
TEXTURES = ((0.05, 3, 1.0), (0.08, 12, 1.0), (0.14, 48, 1.0), (0.04, 64, 1.0),
            (0.10, 40, 0.1), (0.05, 24, 1.0), (0.12, 16, 1.0), (0.02, 4, 1.0))
SPLIT_SIZES = {"train": 20000, "val": 500}
PALETTE = torch.tensor([[70, 130, 180], [120, 110, 130], [107, 142, 35], [128, 64, 128],
                        [0, 80, 160], [70, 70, 70], [20, 90, 20], [220, 20, 60]], dtype=torch.uint8)


def _noise(cells_h: int, cells_w: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """A smooth random field (1, H, W): Gaussian values on a cells_h × cells_w grid, bilinearly upsampled."""
    grid = torch.randn(1, 1, max(1, cells_h), max(1, cells_w), generator=generator)
    return F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)[0]


class _Layout:
    """The random choices of one scene, in units of the image height (x from 0 to the aspect ratio)."""

    def __init__(self, generator: torch.Generator, aspect: float):
        def uniform(low: float, high: float) -> float:
            return low + (high - low) * float(torch.rand(1, generator=generator))

        self.aspect = aspect
        self.horizon = uniform(0.35, 0.6)
        self.mountain = [uniform(0.05, 0.2), uniform(0.02, 0.08), uniform(2, 6), uniform(0, 6.3)] \
            if uniform(0, 1) < 0.6 else None
        self.water = [uniform(0.1, 0.9) * aspect, uniform(self.horizon + 0.1, 0.9), uniform(0.15, 0.4),
                      uniform(0.05, 0.12)] if uniform(0, 1) < 0.4 else None
        self.road = [uniform(0.3, 0.7) * aspect, uniform(0.2, 0.8) * aspect, uniform(0.2, 0.45), uniform(0.01, 0.04)] \
            if uniform(0, 1) < 0.7 else None
        self.buildings = [[uniform(0, 1) * aspect, uniform(0.06, 0.16), uniform(0.1, 0.35), uniform(-0.03, 0.03)]
                          for _ in range(int(uniform(0, 3.99)))]
        self.trees = [[uniform(0, 1) * aspect, uniform(0.04, 0.09), uniform(-0.02, 0.08)]
                      for _ in range(int(uniform(0, 3.99)))]
        self.cars = [[uniform(0.2, 0.8), uniform(0.55, 1.0)] for _ in range(int(uniform(0, 2.99)))] \
            if self.road else []
        self.colour_noise = torch.randn(len(CLASSES), 3, generator=generator)
        self.window_colour = uniform(0.0, 1.0)

    def road_span(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(centre, half width) of the road at each row y below the horizon, narrowing to its vanishing point."""
        bottom, top, half_bottom, half_top = self.road
        t = ((y - self.horizon) / (1 - self.horizon)).clamp(0, 1)
        return top + (bottom - top) * t, half_top + (half_bottom - half_top) * t

    def paint(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(label map, instance map) as int64 (H, W)."""
        y = ((torch.arange(height, dtype=torch.float32) + 0.5) / height)[:, None].expand(height, width)
        x = ((torch.arange(width, dtype=torch.float32) + 0.5) / width * self.aspect)[None, :].expand(height, width)
        label = torch.full((height, width), SKY, dtype=torch.long)
        instance = torch.zeros((height, width), dtype=torch.long)
        if self.mountain:
            peak, wobble, frequency, phase = self.mountain
            ridge = self.horizon - peak + wobble * torch.sin(frequency * x + phase) + 0.5 * wobble * torch.sin(
                2.7 * frequency * x + 2 * phase)
            label[(y > ridge) & (y <= self.horizon)] = MOUNTAIN
        label[y > self.horizon] = GRASS
        if self.water:
            cx, cy, rx, ry = self.water
            label[((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1] = WATER
        if self.road:
            centre, half = self.road_span(y)
            label[(y > self.horizon) & ((x - centre).abs() < half)] = ROAD
        things = 0
        for cx, half, tall, sink in self.buildings:
            base = self.horizon + sink
            mask = ((x - cx).abs() < half) & (y > base - tall) & (y <= base)
            things += 1
            label[mask], instance[mask] = BUILDING, things
        for cx, radius, sink in self.trees:
            cy = self.horizon + sink - radius
            mask = (x - cx) ** 2 + ((y - cy) / 1.2) ** 2 < radius ** 2
            things += 1
            label[mask], instance[mask] = TREE, things
        for offset, depth in self.cars:
            cy = self.horizon + (1 - self.horizon) * depth * 0.95
            centre, half = self.road_span(torch.tensor(cy))
            cx = float(centre) + (offset - 0.5) * float(half)
            scale = 0.04 + 0.12 * (cy - self.horizon) / (1 - self.horizon)
            mask = ((x - cx).abs() < scale) & (y > cy - 0.6 * scale) & (y <= cy)
            things += 1
            label[mask], instance[mask] = CAR, things
        return label, label * 1000 + instance * torch.isin(label, torch.tensor(THINGS))

    def photo(self, label: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The rendered photo (3, H, W) in [0, 1]: each class's colour, texture and shading where it is."""
        height, width = label.shape
        y = ((torch.arange(height, dtype=torch.float32) + 0.5) / height)[:, None]
        x = ((torch.arange(width, dtype=torch.float32) + 0.5) / width * self.aspect)[None, :]
        image = torch.zeros(3, height, width)
        for c in range(len(CLASSES)):
            mask = label == c
            if not mask.any():
                continue
            colour = (BASE_COLOURS[c] + COLOUR_JITTER[c] * self.colour_noise[c]).clamp(0.02, 0.98)
            if c == CAR:  # cars come in any colour
                colour = torch.roll(colour, int(self.window_colour * 3), 0)
            amplitude, cells, anisotropy = TEXTURES[c]
            grain = amplitude * _noise(cells, max(1, round(cells * anisotropy * self.aspect)), height, width, generator)
            paint = colour[:, None, None] + grain
            if c == SKY:  # lighter towards the horizon
                paint = paint + 0.25 * (y / max(self.horizon, 1e-3)).clamp(0, 1) - 0.1
            elif c == BUILDING:  # a grid of windows
                lit = ((x * 40).frac() > 0.5) & ((y * 30).frac() > 0.45)
                paint = torch.where(lit, paint * 0.45 + 0.1 * self.window_colour, paint)
            elif c == GRASS:  # darker far away
                paint = paint * (0.75 + 0.35 * y)
            image = torch.where(mask, paint, image)
        return image.clamp(0, 1)


def render_scene(index_seed: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(photo uint8 (3, H, W), label int64 (H, W), instance int64 (H, W)) of the scene drawn from index_seed."""
    generator = torch.Generator().manual_seed(index_seed)
    layout = _Layout(generator, width / height)
    label, instance = layout.paint(height, width)
    photo = layout.photo(label, generator)
    photo = photo + 0.015 * torch.randn(photo.shape, generator=generator)  # sensor noise
    return (photo.clamp(0, 1) * 255).round().to(torch.uint8), label, instance


def colourize(label: torch.Tensor, palette: torch.Tensor = PALETTE) -> torch.Tensor:
    """A label map (H, W) as a uint8 (3, H, W) colour image, colours cycling past the palette's end."""
    return palette[label.long() % len(palette)].permute(2, 0, 1).contiguous()


class BuiltinScenes(Dataset):
    """Label maps and photos of procedural scenes, (photo, label, instance) per item; item i is always the same."""

    num_labels = len(CLASSES)
    ignore_label = None  # every pixel has a class
    class_names = CLASSES
    palette = PALETTE

    def __init__(self, split: str = "train", size: tuple[int, int] = (64, 64), count: int | None = None):
        if split not in SPLIT_SIZES:
            raise DataError(f"Builtin scenes have splits {', '.join(SPLIT_SIZES)}, not '{split}'.")
        height, width = size
        if not (16 <= height <= 1024 and 16 <= width <= 1024):
            raise DataError(f"Builtin scenes are rendered at 16 to 1024 px a side, not {width}×{height}.")
        self.split, self.size = split, (int(height), int(width))
        self.count = count or SPLIT_SIZES[split]
        self.name = f"scenes:{split}:{height}x{width}"
        self._salt = zlib.crc32(f"scenes-{split}".encode())

    def __len__(self) -> int:
        return self.count

    def fingerprint(self) -> str:
        return ends_digest(self)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        return render_scene(self._salt * 1_000_003 + index, *self.size)


def class_frequencies(dataset: Dataset, count: int = 200) -> torch.Tensor:
    """Fraction of pixels of each label over the first `count` items (for documentation and tests)."""
    totals = torch.zeros(dataset.num_labels)
    for i in range(min(count, len(dataset))):
        totals += torch.bincount(dataset[i][1].flatten(), minlength=dataset.num_labels).float()
    return totals / totals.sum().clamp_min(1)


__all__ = ["CLASSES", "PALETTE", "BuiltinScenes", "class_frequencies", "colourize", "render_scene"]
