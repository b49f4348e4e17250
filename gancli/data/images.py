"""Reading image files with clear errors: missing folders, corrupt files, odd modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from gancli.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm")


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Sorted image files below folder; a clear error when it is missing or has none."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"Folder '{folder}' does not exist.")
    if not folder.is_dir():
        raise DataError(f"'{folder}' is not a folder.")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"Folder '{folder}' contains no images ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def load_pil(path: str | Path) -> Image.Image:
    """Open an image as RGB (grayscale, palette and RGBA are converted); corrupt files are named."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Image '{path}' does not exist.")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "P"):
                img = img.convert("RGBA")
                background = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, img)
            return img.convert("RGB")
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
