"""Images with binary attributes: CelebA's layout, any folder plus a CSV, and builtin procedural attribute images.

Attribute tables follow `list_attr_celeba.txt`: the first line is the number of images, the second the
attribute names, then one line per image, `file v1 v2 ...` with values 1 (has it) and -1 (has not; 0 is read
as -1). Attributes are chosen by name; members of a one-hot group (CelebA's hair colours, the builtin object
colours) are exclusive: at most one is set.
"""

from __future__ import annotations

import csv
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset

from gancli.data.images import load_image, save_image, training_image
from gancli.errors import ConfigError, DataError

CELEBA_FILE, CELEBA_IMAGES = "list_attr_celeba.txt", "img_align_celeba"
CELEBA_DEFAULT = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
CELEBA_CROP = 178  # StarGAN's centre crop of the 178×218 aligned faces
TEST_SIZE = 2000
SPLIT_SEED = 1234  # StarGAN shuffles the attribute lines with random.seed(1234) and takes the first ones as test
BUILTIN_ATTRS = ("Red", "Green", "Blue", "Large", "Dark_Background", "Square")
KNOWN_GROUPS = (("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"), ("Red", "Green", "Blue"))
BUILTIN_SPLITS = {"train": 20000, "test": 2000}
VALUES = {"1": 1, "+1": 1, "-1": -1, "0": -1}


# ---------------------------------------------------------------------------------------------
# Attribute tables
# ---------------------------------------------------------------------------------------------
@dataclass
class AttributeTable:
    """One row of ±1 values per image file."""

    files: list[str]
    names: list[str]
    values: torch.Tensor  # (N, A) int8 in {-1, 1}
    source: str = ""

    def select(self, names: list[str] | tuple[str, ...]) -> AttributeTable:
        """The columns `names`, in that order; an unknown name is an error listing the valid ones."""
        for name in names:
            if name not in self.names:
                raise DataError(f"Unknown attribute '{name}'; {self.source or 'the attribute table'} has: "
                                f"{', '.join(self.names)}.")
        columns = [self.names.index(name) for name in names]
        return AttributeTable(self.files, list(names), self.values[:, columns], self.source)


def parse_value(text: str, where: str) -> int:
    """1 or -1 from '1', '+1', '-1' or '0'; anything else is an error naming where it was found."""
    value = VALUES.get(text.strip())
    if value is None:
        raise DataError(f"{where}: value '{text.strip()}' is not an attribute value (1, -1 or 0).")
    return value


def read_attribute_table(path: str | Path) -> AttributeTable:
    """A CelebA-style attribute file (count line, names line, `file v1 v2 ...` lines)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Attribute file '{path}' does not exist.")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataError(f"Attribute file '{path}' must start with the number of images on its first line and the "
                        f"attribute names on its second.")
    count, names = int(lines[0]), lines[1].split()
    files, rows = [], []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if len(parts) != len(names) + 1:
            raise DataError(f"Attribute file '{path}', line {number}: {len(parts) - 1} values for "
                            f"{len(names)} attributes.")
        files.append(parts[0])
        rows.append([parse_value(v, f"Attribute file '{path}', line {number}, {name}")
                     for v, name in zip(parts[1:], names)])
    if count != len(files):
        raise DataError(f"Attribute file '{path}' says it lists {count} images but lists {len(files)}.")
    return AttributeTable(files, names, torch.tensor(rows, dtype=torch.int8).view(-1, len(names)), f"'{path}'")


def read_attribute_csv(path: str | Path) -> AttributeTable:
    """A CSV with a header (file column, then attribute names) and one row per image of 1/-1/0 values."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Attribute file '{path}' does not exist.")
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise DataError(f"Attribute file '{path}' needs a header (file, then attribute names) and one row per image.")
    names = [name.strip() for name in rows[0][1:]]
    files, values = [], []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(names) + 1:
            raise DataError(f"Attribute file '{path}', row {number}: {len(row) - 1} values for {len(names)} attributes.")
        files.append(row[0].strip())
        values.append([parse_value(v, f"Attribute file '{path}', row {number}, {name}") for v, name in zip(row[1:], names)])
    return AttributeTable(files, names, torch.tensor(values, dtype=torch.int8), f"'{path}'")


def write_attribute_table(path: str | Path, table: AttributeTable) -> Path:
    """Write a table in CelebA's layout (values as ' 1' / '-1', two-space separated as in list_attr_celeba.txt)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [str(len(table.files)), " ".join(table.names)]
    for file, row in zip(table.files, table.values.tolist()):
        lines.append(file + " " + " ".join(f"{v:2d}" for v in row))
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# One-hot groups and assignments of target values
# ---------------------------------------------------------------------------------------------
def onehot_groups(names: list[str] | tuple[str, ...], extra: list[str] | tuple[str, ...] = ()) -> list[list[str]]:
    """The one-hot groups among names: the known ones (hair colours, builtin colours) and `extra` ('A|B|C')."""
    groups = [[n for n in group if n in names] for group in KNOWN_GROUPS]
    for text in extra:
        members = [m.strip() for m in text.split("|") if m.strip()]
        for member in members:
            if member not in names:
                raise ConfigError(f"One-hot group '{text}' names '{member}', which is not among the attributes "
                                  f"{', '.join(names)}.")
        groups.append(members)
    groups = [g for g in groups if len(g) >= 2]
    seen: set[str] = set()
    for group in groups:
        if seen & set(group):
            raise ConfigError(f"Attribute '{min(seen & set(group))}' is in two one-hot groups.")
        seen |= set(group)
    return groups


def group_indices(names: list[str], groups: list[list[str]]) -> list[list[int]]:
    return [[names.index(n) for n in group] for group in groups]


def parse_assignments(items: list[str]) -> dict[str, int]:
    """'Name=1', 'Name=-1', 'Name=0' (as -1) → {name: ±1}; anything else is an error naming the item."""
    out: dict[str, int] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ConfigError(f"--attr expects NAME=VALUE (e.g. Blond_Hair=1), got '{item}'.")
        text = value.strip()
        if text not in VALUES:
            raise ConfigError(f"--attr {item}: the value must be 1, -1 or 0, not '{text}'.")
        out[name.strip()] = VALUES[text]
    return out


def apply_assignments(labels: torch.Tensor, names: list[str], groups: list[list[str]],
                      assignments: dict[str, int]) -> torch.Tensor:
    """Labels (N, A) in {0, 1} with the assignments applied; setting one member of a group clears the others."""
    out = labels.clone()
    for name, value in assignments.items():
        j = names.index(name)
        if value > 0:
            for group in groups:
                if name in group:
                    out[:, [names.index(m) for m in group]] = 0
        out[:, j] = 1.0 if value > 0 else 0.0
    return out


def single_changes(names: list[str], groups: list[list[str]]) -> list[tuple[str, int]]:
    """The single-attribute target domains: each group member set (others cleared), each binary attribute 1 and 0."""
    grouped = {n for g in groups for n in g}
    out: list[tuple[str, int]] = []
    for name in names:
        out += [(name, 1)] if name in grouped else [(name, 1), (name, -1)]
    return out


def domain_name(name: str, value: int) -> str:
    return f"{name}={1 if value > 0 else 0}"


# ---------------------------------------------------------------------------------------------
# Datasets: items are {"image": (3, R, R) in [-1, 1], "label": (A,) in {0, 1}} keyed by (index, seed)
# ---------------------------------------------------------------------------------------------
def split_indices(count: int, split: str, test_size: int) -> list[int]:
    """StarGAN's split: the lines shuffled with seed 1234, the first test_size of them are the test split."""
    order = list(range(count))
    random.Random(SPLIT_SEED).shuffle(order)
    return order[:test_size] if split == "test" else order[test_size:]


class AttributeImages(Dataset):
    """Image files and their attribute rows, one split, centre-cropped and resized; flipped from each key's seed."""

    def __init__(self, image_dir: Path, table: AttributeTable, split: str, resolution: int, crop: int = 0,
                 test_size: int = TEST_SIZE, flip: bool = False):
        if split not in ("train", "test"):
            raise DataError(f"Attribute data has splits train and test, not '{split}'.")
        self.image_dir, self.names, self.resolution, self.crop, self.flip = image_dir, table.names, resolution, crop, flip
        present = {p.name for p in image_dir.iterdir()} if image_dir.is_dir() else None
        if present is None:
            raise DataError(f"Image folder '{image_dir}' does not exist.")
        missing = [f for f in table.files if f not in present and not (image_dir / f).is_file()]
        if missing:
            raise DataError(f"Image '{image_dir / missing[0]}' is listed in {table.source} but does not exist"
                            f"{f' ({len(missing) - 1} more are missing)' if len(missing) > 1 else ''}.")
        test_size = min(test_size, len(table.files) // 10)
        self.indices = split_indices(len(table.files), split, test_size)
        if not self.indices:
            raise DataError(f"{table.source} lists {len(table.files)} images, too few for a {split} split: the test "
                            f"split is the first {test_size} after StarGAN's fixed shuffle (test_size, at most a "
                            f"tenth of the images), the train split the rest.")
        self.files = [table.files[i] for i in self.indices]
        self.values = table.values[self.indices]
        self.name = f"{table.source}:{split}"

    def __len__(self) -> int:
        return len(self.indices)

    def labels(self) -> torch.Tensor:
        """(N, A) float in {0, 1}."""
        return (self.values > 0).float()

    def image(self, index: int) -> torch.Tensor:
        """uint8 (3, R, R): centre crop (CelebA: 178 px; else the largest square), resize."""
        return prepare_image(load_image(self.image_dir / self.files[index]), self.resolution, self.crop)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        return {"image": training_image(self.image(index), seed, self.flip), "label": (self.values[index] > 0).float()}


def prepare_image(image: torch.Tensor, resolution: int, crop: int = 0) -> torch.Tensor:
    """Centre crop to crop×crop (when the image is that large; else to its largest square), then resize."""
    height, width = image.shape[-2:]
    side = crop if crop and min(height, width) >= crop else min(height, width)
    image = TF.center_crop(image, [side, side])
    if side != resolution:
        image = TF.resize(image, [resolution, resolution], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return image


# ---------------------------------------------------------------------------------------------
# Builtin procedural attribute images
# ---------------------------------------------------------------------------------------------
COLOURS = torch.tensor([[0.90, 0.15, 0.12], [0.15, 0.80, 0.20], [0.15, 0.30, 0.95]])


def builtin_attribute_rows(split: str) -> torch.Tensor:
    """(N, 6) ±1 rows of a whole builtin split: a uniform colour and three fair coins per image, from the split's seed."""
    generator = torch.Generator().manual_seed(zlib.crc32(f"attr-{split}".encode()))
    count = BUILTIN_SPLITS[split]
    colour = torch.randint(3, (count,), generator=generator)
    binary = torch.rand(count, 3, generator=generator) < 0.5
    onehot = F.one_hot(colour, 3).bool()
    return torch.cat([onehot, binary], dim=1).to(torch.int8) * 2 - 1


def render_generator(split: str, index: int) -> torch.Generator:
    """The generator of image `index`'s nuisances (tint, position, size and background jitter, noise)."""
    return torch.Generator().manual_seed(zlib.crc32(f"attr-{split}".encode()) * 1_000_003 + index)


def render_attributes(row: torch.Tensor, resolution: int, generator: torch.Generator) -> torch.Tensor:
    """uint8 (3, R, R): a disc or square of the one-hot colour, small or large, on a light or dark background."""
    r = torch.rand(8, generator=generator)
    colour = COLOURS[int(row[:3].argmax())] + 0.08 * (r[0:3] - 0.5)
    large, dark, square = (row[3:] > 0).tolist()
    axis = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution * 2 - 1
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    level = 0.12 + 0.12 * float(r[3]) if dark else 0.72 + 0.15 * float(r[3])
    background = level + 0.08 * (y + 1) / 2 * (float(r[4]) - 0.5)
    size = (0.62 if large else 0.32) + 0.06 * (float(r[5]) - 0.5)
    cx, cy = 0.25 * (1 - size) * (2 * r[6:8] - 1)
    u, v = x - float(cx), y - float(cy)
    dist = torch.maximum(u.abs(), v.abs()) - size * 0.88 if square else torch.sqrt(u * u + v * v) - size
    mask = torch.sigmoid(-dist * resolution * 0.75)
    image = background * (1 - mask) + colour[:, None, None].clamp(0, 1) * mask
    image = image + 0.02 * torch.randn(image.shape, generator=generator)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


class BuiltinAttributeImages(Dataset):
    """Procedural images with a one-hot colour (Red/Green/Blue) and binary Large, Dark_Background, Square.

    Item i of a split is always the same image; the attributes are independent and uniform.
    """

    def __init__(self, split: str = "train", resolution: int = 32, size: int | None = None, flip: bool = False,
                 attrs: list[str] | tuple[str, ...] = BUILTIN_ATTRS):
        if split not in BUILTIN_SPLITS:
            raise DataError(f"Builtin attribute data has splits {', '.join(BUILTIN_SPLITS)}, not '{split}'.")
        if not 16 <= resolution <= 256:
            raise DataError(f"Builtin data resolution must be between 16 and 256 px, got {resolution}.")
        self.split, self.resolution, self.flip = split, resolution, flip
        self.size = size or BUILTIN_SPLITS[split]
        self.name = f"builtin-attributes:{split}:{resolution}"
        self.files = [f"{i + 1:06d}.png" for i in range(self.size)]
        if self.size > BUILTIN_SPLITS[split]:
            raise DataError(f"The builtin {split} split has {BUILTIN_SPLITS[split]} images, not {self.size}.")
        self.rows = builtin_attribute_rows(split)[:self.size]  # all six attributes: what is drawn
        self.names = list(attrs)
        self.values = AttributeTable(self.files, list(BUILTIN_ATTRS), self.rows, "the builtin attribute data").select(
            self.names).values

    def __len__(self) -> int:
        return self.size

    def labels(self) -> torch.Tensor:
        return (self.values > 0).float()

    def image(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return render_attributes(self.rows[index], self.resolution, render_generator(self.split, index))

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        return {"image": training_image(self.image(index), seed, self.flip), "label": (self.values[index] > 0).float()}

    def table(self) -> AttributeTable:
        return AttributeTable(self.files, list(self.names), self.values.clone(), self.name)


def write_celeba_layout(dataset: BuiltinAttributeImages | AttributeImages, folder: str | Path,
                        count: int | None = None) -> Path:
    """Write the first `count` items as folder/img_align_celeba/*.png + folder/list_attr_celeba.txt."""
    folder = Path(folder)
    count = len(dataset) if count is None else min(count, len(dataset))
    (folder / CELEBA_IMAGES).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        save_image(dataset.image(i), folder / CELEBA_IMAGES / dataset.files[i])
    table = AttributeTable(dataset.files[:count], list(dataset.names), dataset.values[:count].clone())
    return write_attribute_table(folder / CELEBA_FILE, table)


# ---------------------------------------------------------------------------------------------
# Opening attribute data from a spec
# ---------------------------------------------------------------------------------------------
@dataclass
class AttributeSource:
    """Where attribute data comes from: 'builtin', a CelebA root, or an image folder with a CSV."""

    kind: str  # builtin | celeba | folder
    image_dir: Path | None = None
    table_file: Path | None = None

    def table(self) -> AttributeTable:
        if self.kind == "builtin":
            return AttributeTable([], list(BUILTIN_ATTRS), torch.zeros(0, len(BUILTIN_ATTRS), dtype=torch.int8),
                                  "the builtin attribute data")
        if self.kind == "celeba":
            return read_attribute_table(self.table_file)
        return read_attribute_csv(self.table_file)

    def default_crop(self) -> int:
        """CelebA's 178 px centre crop for its aligned faces, else 0 (the largest centred square)."""
        return CELEBA_CROP if self.kind == "celeba" and self.image_dir.name == CELEBA_IMAGES else 0

    def default_attrs(self) -> list[str]:
        if self.kind == "builtin":
            return list(BUILTIN_ATTRS)
        if self.kind == "celeba":
            return list(CELEBA_DEFAULT)
        return self.table().names


def attribute_source(spec: str, attr_file: str = "") -> AttributeSource:
    """'' or 'builtin' → builtin; 'celeba:ROOT' or a folder holding list_attr_celeba.txt → CelebA; else a
    folder of images with attr_file (a CSV, or a file in CelebA's layout)."""
    if spec in ("", "builtin"):
        if attr_file:
            raise ConfigError("'attr_file' belongs to an image folder given as --data; the builtin data has its own.")
        return AttributeSource("builtin")
    kind, _, rest = spec.partition(":")
    root = Path(rest if kind in ("celeba", "folder") else spec).expanduser()
    if kind == "celeba" or (not attr_file and (root / CELEBA_FILE).is_file()):
        if not root.is_dir():
            raise DataError(f"CelebA folder '{root}' does not exist.")
        table = Path(attr_file).expanduser() if attr_file else root / CELEBA_FILE
        if not table.is_file():
            raise DataError(f"Attribute file '{table}' does not exist (CelebA keeps it next to {CELEBA_IMAGES}/).")
        return AttributeSource("celeba", root / CELEBA_IMAGES, table)
    if not root.is_dir():
        raise DataError(f"Image folder '{root}' does not exist.")
    if not attr_file:
        raise DataError(f"Image folder '{root}' has no attribute file: give --attr-file FILE.csv (file, then one "
                        f"column per attribute) or put {CELEBA_FILE} next to it.")
    table = Path(attr_file).expanduser()
    if not table.is_file():
        raise DataError(f"Attribute file '{table}' does not exist.")
    return AttributeSource("celeba" if table.suffix != ".csv" else "folder", root, table)


def open_attribute_images(source: AttributeSource, attrs: list[str], split: str, resolution: int, crop: int = 0,
                          flip: bool = False, test_size: int = TEST_SIZE) -> Dataset:
    """The split of the source as a dataset of (image, label) items with the attributes `attrs`."""
    if source.kind == "builtin":
        return BuiltinAttributeImages(split, resolution, flip=flip, attrs=attrs)
    table = source.table().select(attrs)
    return AttributeImages(source.image_dir, table, split, resolution, crop, test_size, flip)
