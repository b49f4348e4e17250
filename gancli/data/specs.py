"""One dataset-spec parser shared by training (`--data SPEC`) and evaluation (`--real SPEC`)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset

from gancli.data.builtin import BuiltinImages
from gancli.data.formats import CIFAR10Images, ImageFolderImages, ImageNetFolder, STL10Images
from gancli.errors import DataError

SPLITS = {"builtin": ("train", "test"), "cifar10": ("train", "test"), "stl10": ("unlabeled", "train", "test")}
SPEC_HELP = ("builtin[:train|test[:RES]], cifar10[:train|test], stl10[:unlabeled|train|test], folder:PATH, "
             "imagenet:PATH (class subfolders), or an existing folder")


def data_root(root: str | Path | None = None) -> Path:
    """Where official datasets live: the argument, else $GANCLI_DATA, else ~/.cache/gancli/datasets."""
    return Path(root or os.environ.get("GANCLI_DATA") or "~/.cache/gancli/datasets").expanduser()


def open_dataset(spec: str, *, root: str | Path | None = None, resolution: int | None = None,
                 verify: bool = True, download: bool | None = None) -> Dataset:
    """The dataset a spec names; `resolution` sets builtin's size when the spec gives none (real data keeps its own).

    Official datasets are read from data_root(root) and downloaded there when missing, unless download=False
    or $GANCLI_NO_DOWNLOAD is set.
    """
    kind, _, rest = spec.partition(":")
    if kind == "folder":
        if not rest:
            raise DataError("Dataset spec 'folder:' needs a path, e.g. folder:/data/images.")
        return ImageFolderImages(rest)
    if kind == "imagenet":  # ROOT/CLASS/IMAGE, cropped along the long edge and area-resized to `resolution`
        if not rest:
            raise DataError("Dataset spec 'imagenet:' needs a path, e.g. imagenet:/data/imagenet/train.")
        return ImageNetFolder(rest, resolution)
    if kind not in SPLITS:
        if Path(spec).expanduser().is_dir():
            return ImageFolderImages(spec)
        raise DataError(f"Unknown dataset '{spec}': use {SPEC_HELP}.")
    if Path(spec).expanduser().is_dir():
        raise DataError(f"'{spec}' names both the {kind} dataset and a folder here; write ./{spec} or folder:{spec} "
                        f"for the folder, or {kind}:{SPLITS[kind][0]} for the dataset.")
    split, _, res = rest.partition(":")
    split = split or SPLITS[kind][0]
    if split not in SPLITS[kind]:
        raise DataError(f"Dataset '{kind}' has splits {', '.join(SPLITS[kind])}, not '{split}' (spec '{spec}').")
    if kind == "builtin":
        if res and not res.isdigit():
            raise DataError(f"Builtin resolution must be a whole number of pixels, not '{res}' (spec '{spec}').")
        return BuiltinImages(split, int(res) if res else resolution or 32)
    if res:
        raise DataError(f"Dataset spec '{spec}' has too many parts: use {SPEC_HELP}.")
    cls = CIFAR10Images if kind == "cifar10" else STL10Images
    return cls(data_root(root), split, verify=verify, download=download)


def center_crop_resize(image: torch.Tensor, resolution: int) -> torch.Tensor:
    """Crop the long side to a centred square, then resize; antialiased bilinear averages like area when shrinking."""
    height, width = image.shape[-2:]
    if height != width:
        side = min(height, width)
        image = TF.center_crop(image, [side, side])
    if image.shape[-1] != resolution:
        image = TF.resize(image, [resolution, resolution], interpolation=TF.InterpolationMode.BILINEAR,
                          antialias=True)
    return image


class ResizedImages(Dataset):
    """Another dataset's items as square images of one resolution."""

    def __init__(self, dataset: Dataset, resolution: int):
        if resolution < 1:
            raise DataError(f"Resolution must be a positive number of pixels, got {resolution}.")
        self.dataset, self.resolution = dataset, resolution
        self.num_classes = dataset.num_classes
        self.name = f"{dataset.name}@{resolution}"

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[index]
        return center_crop_resize(image, self.resolution), label


def resized(dataset: Dataset, resolution: int) -> ResizedImages:
    """The same items, centre-cropped to square and resized to resolution × resolution."""
    return ResizedImages(dataset, resolution)


def _item_size(dataset: Dataset, index: int) -> tuple[int, int]:
    """(H, W) of one item, from the file header when the dataset can read it."""
    if hasattr(dataset, "image_size"):
        return tuple(dataset.image_size(index))
    return tuple(dataset[index][0].shape[-2:])


def _item_name(dataset: Dataset, index: int) -> str:
    """A file path for folder items, else the dataset name and index."""
    files = getattr(dataset, "files", None)
    return f"'{files[index]}'" if isinstance(files, list) else f"item {index} of {dataset.name}"


def check_uniform_size(dataset: Dataset, max_check: int | None = None) -> tuple[int, int]:
    """(H, W) shared by the first max_check items (all by default); a DataError names the first that differs."""
    count = len(dataset) if max_check is None else min(max_check, len(dataset))
    if count == 0:
        raise DataError(f"Dataset {dataset.name} is empty.")
    size = _item_size(dataset, 0)
    for index in range(1, count):
        other = _item_size(dataset, index)
        if other != size:
            raise DataError(f"Image {_item_name(dataset, index)} is {other[1]}×{other[0]} but "
                            f"{_item_name(dataset, 0)} is {size[1]}×{size[0]}; all images must share one size.")
    return size
