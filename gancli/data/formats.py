"""Real dataset formats in their official on-disk layouts: CIFAR-10, STL-10 and image folders."""

from __future__ import annotations

import json
import os
import pickle
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, STL10
from torchvision.datasets.utils import check_integrity

from gancli.data.images import list_images, load_image
from gancli.errors import DataError
from gancli.paths import cache_root

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct


NO_DOWNLOAD_ENV = "GANCLI_NO_DOWNLOAD"  # set (to anything) on offline machines: never try the network


def downloads_allowed(download: bool | None = None) -> bool:
    """An explicit choice, else yes unless $GANCLI_NO_DOWNLOAD is set: missing files are fetched on first use."""
    return (not os.environ.get(NO_DOWNLOAD_ENV)) if download is None else download


@contextmanager
def network_timeout(seconds: float = 30.0) -> Iterator[None]:
    """A socket timeout for a download, so a network that drops packets fails instead of hanging."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def download_archive(url: str, root: Path, filename: str, md5: str, what: str) -> None:
    """Download and extract an official archive into root (MD5-checked), network failures as one sentence."""
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        with network_timeout():
            download_and_extract_archive(url, download_root=str(root), filename=filename, md5=md5)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError; a bad checksum a RuntimeError
        raise DataError(f"Could not download {what} from {url} ({exc.__class__.__name__}: {exc}); "
                        f"fetch it on a machine with network access and extract it into '{root}'.") from None


def _require_files(paths: list[Path], what: str, url: str, root: Path) -> None:
    """A clear error naming the first missing file and the archive it comes from."""
    for path in paths:
        if not path.is_file():
            raise DataError(f"{what} file '{path}' is missing: download {url} and extract it into '{root}' "
                            f"(gancli fetches it on first use unless ${NO_DOWNLOAD_ENV} is set; --data-root or "
                            f"$GANCLI_DATA names another folder).")


def _verified_record() -> Path:
    return cache_root() / "verified-md5.json"


def _read_verified() -> dict[str, list]:
    try:
        record = json.loads(_verified_record().read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _verify_md5(path: Path, md5: str) -> None:
    """Raise when a file's MD5 differs from the official one.

    A file that passed before and has the same size and modification time is not read again (the record is
    kept in the gancli cache), so a second evaluation against a cached CIFAR-10 or STL-10 reference reads nothing.
    """
    stat = path.stat()
    key, stamp = str(path.resolve()), [stat.st_size, stat.st_mtime_ns, md5]
    record = _read_verified()
    if record.get(key) == stamp:
        return
    if not check_integrity(str(path), md5):
        raise DataError(f"File '{path}' is corrupt or not the official one (MD5 differs from {md5}); "
                        f"extract the official archive again.")
    record[key] = stamp
    target = _verified_record()
    try:  # a cache that cannot be written only means checking again next time
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record))
        os.replace(temporary, target)
    except OSError:
        pass


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and refuses every other global (no code can run)."""

    ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"Pickle refers to '{module}.{name}', which is not allowed in a dataset file.")
        # Real CIFAR files name numpy.core.multiarray (Python 2 era); resolve it without the deprecated import.
        return _reconstruct if name == "_reconstruct" else getattr(np, name)


def load_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    """One CIFAR python batch file as (uint8 N×3072 array, labels), unpickled safely."""
    try:
        with open(path, "rb") as file:
            batch = NumpyOnlyUnpickler(file, encoding="bytes").load()
    except DataError as exc:
        raise DataError(f"File '{path}' is not a CIFAR-10 batch: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(f"File '{path}' is corrupt or not a CIFAR-10 batch ({exc.__class__.__name__}).") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072
            or not isinstance(labels, list) or len(labels) != len(data)):
        raise DataError(f"File '{path}' is not a CIFAR-10 batch (expected b'data' uint8 N×3072 and N b'labels').")
    return data, [int(label) for label in labels]


class CIFAR10Images(Dataset):
    """CIFAR-10 from the python layout `cifar-10-batches-py/`: 50,000 train / 10,000 test 32×32 images."""

    url, archive, archive_md5 = CIFAR10.url, CIFAR10.filename, CIFAR10.tgz_md5
    folder = CIFAR10.base_folder
    # [[filename, official md5], ...] as torchvision lists them
    files: ClassVar[dict[str, list[list[str]]]] = {"train": CIFAR10.train_list, "test": CIFAR10.test_list}
    num_classes, resolution = 10, 32
    OFFICIAL_PER_FILE = 10_000

    def __init__(self, root: str | Path, split: str = "train", verify: bool = True, download: bool | None = None):
        if split not in self.files:
            raise DataError(f"CIFAR-10 has splits {', '.join(self.files)}, not '{split}'.")
        self.root, self.split, self.name = Path(root).expanduser(), split, f"cifar10:{split}"
        paths = [self.root / self.folder / filename for filename, _ in self.files[split]]
        if not all(path.is_file() for path in paths) and downloads_allowed(download):
            download_archive(self.url, self.root, self.archive, self.archive_md5, "CIFAR-10")
        _require_files(paths, "CIFAR-10", self.url, self.root)
        if verify:
            for path, (_, md5) in zip(paths, self.files[split]):
                _verify_md5(path, md5)
        self.paths, self.verified = paths, verify
        if not verify:  # files of unknown content are read now, so a bad one is an error at once
            self._loaded  # noqa: B018

    @cached_property
    def _loaded(self) -> tuple[np.ndarray, list[int]]:
        """(images N×3×32×32, labels), read when first needed: a cached reference never needs them."""
        batches = [load_cifar_batch(path) for path in self.paths]
        return (np.concatenate([data for data, _ in batches]).reshape(-1, 3, 32, 32),
                [label for _, labels in batches for label in labels])

    def __len__(self) -> int:
        if self.verified:  # the official files hold 10,000 images each: counted without reading them
            return self.OFFICIAL_PER_FILE * len(self.paths)
        return len(self._loaded[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        images, labels = self._loaded
        return torch.from_numpy(images[index].copy()), labels[index]


class STL10Images(Dataset):
    """STL-10 from the binary layout `stl10_binary/`: 96×96 images stored column-major, read by memory map."""

    url, archive, archive_md5 = STL10.url, STL10.filename, STL10.tgz_md5
    folder = STL10.base_folder
    splits: ClassVar[dict[str, tuple[str, str | None]]] = {
        "unlabeled": ("unlabeled_X.bin", None), "train": ("train_X.bin", "train_y.bin"),
        "test": ("test_X.bin", "test_y.bin")}
    official_md5: ClassVar[dict[str, str]] = dict(STL10.train_list + STL10.test_list)
    image_bytes, resolution = 3 * 96 * 96, 96

    def __init__(self, root: str | Path, split: str = "unlabeled", verify: bool = True, download: bool | None = None):
        if split not in self.splits:
            raise DataError(f"STL-10 has splits {', '.join(self.splits)}, not '{split}'.")
        self.root, self.split, self.name = Path(root).expanduser(), split, f"stl10:{split}"
        names = [name for name in self.splits[split] if name]
        paths = [self.root / self.folder / name for name in names]
        if not all(path.is_file() for path in paths) and downloads_allowed(download):
            download_archive(self.url, self.root, self.archive, self.archive_md5, "STL-10")
        _require_files(paths, "STL-10", self.url, self.root)
        if verify:
            for path, name in zip(paths, names):
                _verify_md5(path, self.official_md5[name])
        images_path = paths[0]
        size = images_path.stat().st_size
        if size == 0 or size % self.image_bytes:
            raise DataError(f"File '{images_path}' is not STL-10 image data (size {size} is not a multiple of "
                            f"{self.image_bytes} bytes).")
        self.images = np.memmap(images_path, dtype=np.uint8, mode="r", shape=(size // self.image_bytes, 3, 96, 96))
        self.num_classes = 10 if len(paths) > 1 else 0
        self.labels = None
        if len(paths) > 1:
            raw = np.fromfile(paths[1], dtype=np.uint8)
            if len(raw) != len(self.images) or raw.min(initial=1) < 1 or raw.max(initial=1) > 10:
                raise DataError(f"File '{paths[1]}' does not hold one label 1..10 per image of '{images_path}'.")
            self.labels = raw.astype(np.int64) - 1  # stored 1..10

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        # Each channel is stored column-major (Matlab order), so swap H and W as torchvision does.
        image = torch.from_numpy(np.ascontiguousarray(self.images[index].transpose(0, 2, 1)))
        return image, -1 if self.labels is None else int(self.labels[index])


class ImageFolderImages(Dataset):
    """Any folder of images; labels from sorted class subfolders when every image sits in one, else -1."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.files = list_images(self.root)
        self.name = f"folder:{self.root}"
        parents = [path.relative_to(self.root).parent for path in self.files]
        if all(len(parent.parts) == 1 for parent in parents):  # ImageFolder layout: root/class/image
            self.classes = sorted({parent.parts[0] for parent in parents})
            index = {name: i for i, name in enumerate(self.classes)}
            self.labels = [index[parent.parts[0]] for parent in parents]
        else:
            self.classes, self.labels = [], [-1] * len(self.files)
        self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return load_image(self.files[index]), self.labels[index]

    def image_size(self, index: int) -> tuple[int, int]:
        """(H, W) of one image from its header, without decoding the pixels."""
        path = self.files[index]
        try:
            with Image.open(path) as img:
                width, height = img.size
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"Image '{path}' is corrupt or not an image ({exc.__class__.__name__}).") from None
        return height, width

    @cached_property
    def resolution(self) -> int | None:
        """Side of the first image when it is square, else None (check_uniform_size checks the rest)."""
        height, width = self.image_size(0)
        return height if height == width else None


def crop_long_edge_area_resize(image: torch.Tensor, resolution: int) -> torch.Tensor:
    """BigGAN App. C preprocessing: a centred square crop along the long edge, then area resampling.

    Area resampling (each output pixel the mean of the input area it covers) applies when shrinking;
    a smaller image is enlarged bilinearly.
    """
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[..., top:top + side, left:left + side].float().unsqueeze(0)
    mode = "area" if side >= resolution else "bilinear"
    resized = torch.nn.functional.interpolate(square, size=(resolution, resolution), mode=mode,
                                              **({} if mode == "area" else {"align_corners": False}))
    return resized.squeeze(0).round().clamp(0, 255).to(torch.uint8)


class ImageNetFolder(Dataset):
    """An ImageNet-style ImageFolder, root/CLASS/IMAGE: the class index is the rank of CLASS among sorted folder names.

    Every class folder must hold at least one image (an empty one would shift every later class index).
    With a resolution, images are cropped along the long edge and area-resized to it (BigGAN App. C).
    """

    def __init__(self, root: str | Path, resolution: int | None = None):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"ImageNet-style folder '{self.root}' does not exist.")
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise DataError(f"Folder '{self.root}' has no class subfolders; an ImageNet-style folder is "
                            f"ROOT/CLASS/IMAGE.")
        self.classes = [folder.name for folder in folders]
        self.files, self.labels = [], []
        for index, folder in enumerate(folders):
            try:
                files = list_images(folder)
            except DataError as exc:
                if "contains no images" not in str(exc):
                    raise
                raise DataError(f"Class folder '{folder}' contains no images; remove it or add its images "
                                f"(class indices come from the sorted folder names).") from None
            self.files += files
            self.labels += [index] * len(files)
        self.num_classes, self.resolution = len(self.classes), resolution
        self.name = f"imagenet:{self.root}" + (f"@{resolution}" if resolution else "")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = load_image(self.files[index])  # a DataError naming the file when it cannot be read
        if self.resolution:
            image = crop_long_edge_area_resize(image, self.resolution)
        return image, self.labels[index]
