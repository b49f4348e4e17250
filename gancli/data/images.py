"""Reading image files with clear errors: missing folders, corrupt files, odd modes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from gancli.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
LOSSLESS = (".png", ".bmp", ".tif", ".tiff", ".ppm")


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Sorted image files below folder (following linked folders); a clear error when it is missing or has none.

    Hidden files and folders (a leading '.': .ipynb_checkpoints, macOS '._' files, .git) are not images of the set
    and are skipped; a link to an image that is gone is an error naming it.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"Folder '{folder}' does not exist.")
    if not folder.is_dir():
        raise DataError(f"'{folder}' is not a folder.")
    files, seen = [], set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        for name in names:
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if path.is_file():  # one stat per file; only what is not a file is looked at again
                files.append(path)
            elif path.is_symlink() and not path.exists():
                raise DataError(f"Image '{path}' is a link to a file that does not exist.")
    if not files:
        raise DataError(f"Folder '{folder}' contains no images ({', '.join(IMAGE_SUFFIXES)}).")
    return sorted(files)


def _gray_to_8bit(img: Image.Image, path: Path) -> Image.Image:
    """A 16-bit (or 32-bit integer) grayscale image as 8-bit, scaled by 255/65535: PIL's own conversion clips at 255.

    16-bit PNGs open as 'I;16' (or 'I' in older Pillow); an 'I' image from another format counts as 8-bit when
    its values fit, and is refused otherwise, since its bit depth is unknown.
    """
    values = np.asarray(img).astype(np.int64)
    sixteen = img.mode.startswith("I;16") or img.format == "PNG"
    if values.size and (values.min() < 0 or values.max() > (65535 if sixteen else 255)):
        raise DataError(f"Image '{path}' has integer pixels outside the {16 if sixteen else 8}-bit range, so its "
                        f"bit depth is unknown; save it as 8-bit.")
    if sixteen:
        values = (values + 128) // 257  # round(v / 257): 65535 → 255
    return Image.fromarray(values.astype(np.uint8), "L")


def load_pil(path: str | Path) -> Image.Image:
    """Open an image as RGB (grayscale, palette and 16-bit are converted, alpha dropped); corrupt files are named."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Image '{path}' does not exist.")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode == "F":
                raise DataError(f"Image '{path}' has floating-point pixels, whose range is unknown; "
                                f"save it as 8-bit.")
            if img.mode.startswith("I"):
                img = _gray_to_8bit(img, path)
            return img.convert("RGB")  # alpha is dropped, as torchvision's, torch-fidelity's and pytorch-fid's loaders do
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"Image '{path}' is corrupt or not an image ({exc.__class__.__name__}).") from None


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as a uint8 RGB tensor (3, H, W)."""
    array = np.asarray(load_pil(path), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as uint8 in [0, 255] (rounded, clamped)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def save_image(image: torch.Tensor, path: str | Path) -> None:
    """Save a uint8 (3, H, W) tensor as PNG/JPEG by suffix."""
    array = image.detach().cpu().permute(1, 2, 0).numpy()
    Image.fromarray(array).save(path)


def training_image(image: torch.Tensor, seed: int, flip: bool) -> torch.Tensor:
    """uint8 (3, H, W) → float in [-1, 1], mirrored left-right with probability ½ drawn from the key's seed."""
    image = image.float() / 127.5 - 1.0
    if flip and torch.rand(1, generator=torch.Generator().manual_seed(seed)).item() < 0.5:
        image = image.flip(-1)
    return image


class TrainingImages(torch.utils.data.Dataset):
    """A dataset of (uint8 image, label) as training items keyed by (index, seed): {"image"} in [-1, 1], randomly
    flipped from the seed, and {"label"} (a class index) when `labels` is set."""

    def __init__(self, source: torch.utils.data.Dataset, flip: bool, labels: bool = False):
        self.source, self.flip, self.labels = source, flip, labels

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        image, label = self.source[index]
        item = {"image": training_image(image, seed, self.flip)}
        if self.labels:
            item["label"] = torch.tensor(label, dtype=torch.long)
        return item


def plan_outputs(inputs: list[Path], out: Path, verb: str = "upscale") -> list[tuple[Path, Path]]:
    """(source, destination) pairs: files keep their name, folders their layout, lossy formats become .png."""
    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            pairs += [(f, out / f.relative_to(item)) for f in list_images(item)]
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"'{item}' is not an image file ({', '.join(IMAGE_SUFFIXES)}).")
            pairs.append((item, out / item.name))
        else:
            raise DataError(f"Input '{item}' does not exist.")
    pairs = [(src, dst if dst.suffix.lower() in LOSSLESS else dst.with_suffix(".png")) for src, dst in pairs]
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst in seen:
            raise DataError(f"'{seen[dst]}' and '{src}' would both be written to '{dst}'; {verb} them separately.")
        if dst.resolve() == src.resolve():
            raise DataError(f"Writing '{dst}' would overwrite its input; choose another --out.")
        seen[dst] = src
    return pairs
