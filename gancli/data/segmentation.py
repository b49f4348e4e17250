"""Label-map / photo pairs in their official layouts: Cityscapes and ADE20K (SceneParsing 2016), and the builtin scenes.

    cityscapes: ROOT/leftImg8bit/{train,val}/CITY/*_leftImg8bit.png
                ROOT/gtFine/{train,val}/CITY/*_gtFine_labelIds.png  (+ *_gtFine_instanceIds.png for instance edges)
    ade20k:     ROOT/ADEChallengeData2016/images/{training,validation}/*.jpg
                ROOT/ADEChallengeData2016/annotations/{training,validation}/*.png

Photos are resized with antialiased bicubic, label and instance maps with nearest neighbour. Every item
is (photo uint8 (3, H, W), label int64 (H, W), instance int64 (H, W) or None). A label id at or above the
dataset's label count is an error naming the file and the id, found when the map is read, long before a
one-hot or an embedding would fail on the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from gancli.data.images import list_images, load_image
from gancli.data.scenes import PALETTE as SCENE_PALETTE
from gancli.data.scenes import BuiltinScenes
from gancli.errors import DataError

SPLITS = ("train", "val")
# Cityscapes' colours of its 35 label ids (cityscapesScripts labels.py); several ids share black, two share (0, 0, 142)
CITYSCAPES_PALETTE = torch.tensor([
    [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [111, 74, 0], [81, 0, 81], [128, 64, 128],
    [244, 35, 232], [250, 170, 160], [230, 150, 140], [70, 70, 70], [102, 102, 156], [190, 153, 153],
    [180, 165, 180], [150, 100, 100], [150, 120, 90], [153, 153, 153], [153, 153, 153], [250, 170, 30],
    [220, 220, 0], [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142],
    [0, 0, 70], [0, 60, 100], [0, 0, 90], [0, 0, 110], [0, 80, 100], [0, 0, 230], [119, 11, 32], [0, 0, 142]],
    dtype=torch.uint8)
FORMATS = ("cityscapes", "ade20k")


def load_id_map(path: str | Path) -> torch.Tensor:
    """A map of integer ids (8- or 16-bit grayscale or palette PNG) as int64 (H, W), values as stored."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
                raise DataError(f"Label map '{path}' has {img.mode} pixels; label maps hold one id per pixel "
                                f"(8- or 16-bit grayscale, or palette, PNG); colour maps need --palette.")
            array = np.asarray(img).astype(np.int64)
    except FileNotFoundError:
        raise DataError(f"Label map '{path}' does not exist.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"Label map '{path}' is corrupt or not an image ({exc.__class__.__name__}).") from None
    return torch.from_numpy(array)


def check_ids(label: torch.Tensor, num_labels: int, path: str | Path, what: str) -> None:
    """A DataError naming the file and the largest id when any id is outside 0 .. num_labels - 1."""
    top, low = int(label.max()), int(label.min())
    if top >= num_labels or low < 0:
        bad = top if top >= num_labels else low
        raise DataError(f"Label map '{path}' has id {bad}, but {what} has {num_labels} label ids (0 to "
                        f"{num_labels - 1}).")


def resize_map(ids: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of an id map (H, W)."""
    if tuple(ids.shape) == tuple(size):
        return ids
    return TF.resize(ids[None], list(size), interpolation=TF.InterpolationMode.NEAREST_EXACT)[0]


def resize_photo(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return TF.resize(image, list(size), interpolation=TF.InterpolationMode.BICUBIC, antialias=True)


def instance_edges(instance: torch.Tensor) -> torch.Tensor:
    """SPADE's edge map (float, (..., H, W)): 1 where a pixel's instance id differs from a 4-neighbour's."""
    edge = torch.zeros(instance.shape, dtype=torch.bool, device=instance.device)
    horizontal = instance[..., :, 1:] != instance[..., :, :-1]
    vertical = instance[..., 1:, :] != instance[..., :-1, :]
    edge[..., :, 1:] |= horizontal
    edge[..., :, :-1] |= horizontal
    edge[..., 1:, :] |= vertical
    edge[..., :-1, :] |= vertical
    return edge.float()


class LabelledPhotos(Dataset):
    """Pairs of (photo file, label-map file[, instance file]) of one split, read and resized to one size."""

    num_labels = 0
    ignore_label: int | None = None  # excluded from segmentation scores ("don't care")
    scored_labels: tuple[int, ...] | None = None  # the label ids that segmentation scores count (None: all)
    palette = SCENE_PALETTE

    def __init__(self, pairs: list[tuple[Path, Path, Path | None]], size: tuple[int, int], name: str):
        if not pairs:
            raise DataError(f"{name} has no images.")
        self.pairs, self.size, self.name = pairs, (int(size[0]), int(size[1])), name
        self.files = [image for image, _, _ in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        image_path, label_path, instance_path = self.pairs[index]
        label = load_id_map(label_path)
        check_ids(label, self.num_labels, label_path, self.name)
        image = load_image(image_path)
        if tuple(image.shape[-2:]) != tuple(label.shape):
            raise DataError(f"Photo '{image_path}' is {image.shape[2]}×{image.shape[1]} but its label map "
                            f"'{label_path}' is {label.shape[1]}×{label.shape[0]}.")
        instance = resize_map(load_id_map(instance_path), self.size) if instance_path else None
        return resize_photo(image, self.size), resize_map(label, self.size), instance


def ids_from_colours(image: torch.Tensor, palette: torch.Tensor | None, path: str | Path) -> torch.Tensor:
    """A colour-coded label map (uint8 (3, H, W)) as ids: each pixel's colour is looked up in the palette
    (a colour several ids share maps to the lowest of them); a colour not in it is an error naming it."""
    if palette is None:
        raise DataError(f"No colour palette is known for this run's labels, so '{path}' cannot be read with "
                        f"--palette; give maps of label ids.")
    codes = lambda rgb: (rgb[..., 0].long() << 16) | (rgb[..., 1].long() << 8) | rgb[..., 2].long()
    known = codes(palette)
    pixels = codes(image.permute(1, 2, 0))
    order = torch.argsort(known, stable=True)  # the first id of each colour comes first among equals
    sorted_codes = known[order]
    position = torch.searchsorted(sorted_codes, pixels).clamp(max=len(known) - 1)
    found = sorted_codes[position] == pixels
    if not found.all():
        y, x = [int(v[0]) for v in torch.nonzero(~found, as_tuple=True)]
        r, g, b = (int(c) for c in image[:, y, x])
        raise DataError(f"Label map '{path}' has colour ({r}, {g}, {b}) at pixel ({x}, {y}), which is no label's "
                        f"colour in this run's palette.")
    return order[position]


def instance_partner(label_path: str | Path) -> Path:
    """The instance map beside a label map (…labelIds.png → …instanceIds.png, else NAME_instanceIds.png)."""
    label_path = Path(label_path)
    name = (label_path.name.replace("labelIds", "instanceIds") if "labelIds" in label_path.name
            else f"{label_path.stem}_instanceIds.png")
    partner = label_path.with_name(name)
    if not partner.is_file():
        raise DataError(f"Label map '{label_path}' has no instance map '{partner}' (this run uses instance edges).")
    return partner


def _partner(image: Path, partner: Path, what: str) -> Path:
    if not partner.is_file():
        raise DataError(f"Photo '{image}' has no {what} '{partner}'.")
    return partner


class Cityscapes(LabelledPhotos):
    """Cityscapes gtFine: 35 label ids (labelIds.png), photos from leftImg8bit; SPADE's 512×256 by default."""

    num_labels = 35
    palette = CITYSCAPES_PALETTE
    # cityscapesScripts helpers/labels.py: the label ids of train ids 0-18 (road ... bicycle), the 19 classes papers
    # score mIoU on; every other id is trainId 255 (ignored)
    scored_labels = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)

    def __init__(self, root: str | Path, split: str = "train", size: tuple[int, int] = (256, 512),
                 instances: bool = False):
        root = Path(root).expanduser()
        folder = root / "leftImg8bit" / _check_split(split)
        if not folder.is_dir():
            raise DataError(f"Cityscapes folder '{folder}' does not exist (expected ROOT/leftImg8bit/{split}/CITY/"
                            f"*_leftImg8bit.png and ROOT/gtFine/{split}/CITY/*_gtFine_labelIds.png).")
        pairs = []
        for image in list_images(folder):
            if not image.name.endswith("_leftImg8bit.png"):
                continue
            stem = image.name[: -len("_leftImg8bit.png")]
            base = root / "gtFine" / split / image.parent.name
            label = _partner(image, base / f"{stem}_gtFine_labelIds.png", "label map")
            instance = _partner(image, base / f"{stem}_gtFine_instanceIds.png", "instance map") if instances else None
            pairs.append((image, label, instance))
        super().__init__(pairs, size, f"cityscapes:{split}")


class ADE20K(LabelledPhotos):
    """ADE20K SceneParsing: 150 classes plus 0 = "don't care" (151 label ids), 256×256 by default."""

    num_labels = 151
    ignore_label = 0
    palette = None  # gancli ships no ADE20K colour table: give maps of ids
    SPLIT_FOLDERS: ClassVar[dict[str, str]] = {"train": "training", "val": "validation"}

    def __init__(self, root: str | Path, split: str = "train", size: tuple[int, int] = (256, 256),
                 instances: bool = False):
        root = Path(root).expanduser()
        if (root / "ADEChallengeData2016").is_dir():
            root = root / "ADEChallengeData2016"
        if instances:
            raise DataError("ADE20K SceneParsing has no instance maps; train without instance_edges.")
        sub = self.SPLIT_FOLDERS[_check_split(split)]
        folder = root / "images" / sub
        if not folder.is_dir():
            raise DataError(f"ADE20K folder '{folder}' does not exist (expected ROOT/ADEChallengeData2016/images/"
                            f"{sub}/*.jpg and .../annotations/{sub}/*.png).")
        pairs = [(image, _partner(image, root / "annotations" / sub / f"{image.stem}.png", "label map"), None)
                 for image in list_images(folder)]
        super().__init__(pairs, size, f"ade20k:{split}")


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"Label-to-image data has splits {', '.join(SPLITS)}, not '{split}'.")
    return split


def detect_format(spec: str) -> tuple[str, Path]:
    """('cityscapes' | 'ade20k', root) of 'cityscapes:ROOT', 'ade20k:ROOT' or a folder in either layout."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in FORMATS:
        return kind, Path(rest).expanduser()
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise DataError(f"'{spec}' is neither a folder nor cityscapes:ROOT or ade20k:ROOT.")
    if (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir():
        return "cityscapes", root
    if (root / "ADEChallengeData2016").is_dir() or ((root / "images").is_dir() and (root / "annotations").is_dir()):
        return "ade20k", root
    raise DataError(f"Folder '{spec}' is in neither the Cityscapes layout (leftImg8bit/ and gtFine/) nor the "
                    f"ADE20K one (ADEChallengeData2016/images/ and annotations/).")


def open_segmentation(spec: str, split: str, size: tuple[int, int], instances: bool = False) -> Dataset:
    """The label-map/photo pairs a --data spec names: '' for the builtin scenes, else Cityscapes or ADE20K."""
    if not spec:
        return BuiltinScenes(_check_split(split), size)
    kind, root = detect_format(spec)
    cls = Cityscapes if kind == "cityscapes" else ADE20K
    return cls(root, split, size, instances)


def num_labels_of(spec: str) -> int:
    """How many label ids the data of a --data spec has (8 for the builtin scenes)."""
    if not spec:
        return BuiltinScenes.num_labels
    return (Cityscapes if detect_format(spec)[0] == "cityscapes" else ADE20K).num_labels
