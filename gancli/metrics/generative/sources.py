"""What an evaluation SPEC names, as a stream of uint8 image batches.

A SPEC is a saved statistics file (`*.npz`), a run folder (images drawn from its generator), or a
dataset spec / image folder (`cifar10:test`, `stl10:unlabeled`, `builtin:test`, `folder:PATH`, `PATH`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from gancli.errors import ConfigError, DataError, GancliError
from gancli.metrics.generative.stats import ReferenceStats

_ERROR = "__gancli_error__"


@dataclass
class Source:
    """One side of an evaluation: its images (or saved statistics) and a description of them."""

    spec: str
    kind: str  # "dataset" | "run" | "stats"
    n: int
    label: str  # for people: "cifar10:test", "runs/x @ step_00001000 (EMA)", "ref.npz"
    description: dict[str, Any]  # for machines: the protocol record and, for datasets, the cache key
    make_batches: Callable[[int], Iterable[torch.Tensor]] | None = None
    stats: ReferenceStats | None = None
    run: Any = None  # gancli.runs.Run when kind == "run"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cacheable(self) -> bool:
        return self.kind == "dataset"

    def batches(self, batch_size: int) -> Iterable[torch.Tensor]:
        """uint8 (B, 3, H, W) batches (pinned host memory for datasets, the device for runs)."""
        if self.make_batches is None:
            raise DataError(f"'{self.spec}' is a statistics file; it has no images to read.")
        return self.make_batches(batch_size)


# ---------------------------------------------------------------------------------------------
# Datasets and folders
# ---------------------------------------------------------------------------------------------
class _Guarded(Dataset):
    """Dataset items as images only; a GancliError inside a worker comes back as a message, not a traceback."""

    def __init__(self, dataset: Dataset, n: int):
        self.dataset, self.n = dataset, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        try:
            item = self.dataset[index]
        except GancliError as exc:
            return (_ERROR, str(exc))
        image = item[0] if isinstance(item, (tuple, list)) else item
        if not (torch.is_tensor(image) and image.dtype == torch.uint8 and image.dim() == 3 and image.shape[0] == 3):
            name = getattr(self.dataset, "name", "the dataset")
            return (_ERROR, f"Item {index} of {name} is not a uint8 RGB image tensor.")
        return image


def _collate(items: list) -> torch.Tensor:
    for item in items:
        if isinstance(item, tuple) and item and item[0] == _ERROR:
            return item  # raised in the main process by _raise_errors
    shapes = {tuple(image.shape) for image in items}
    if len(shapes) > 1:
        sizes = ", ".join(f"{w}×{h}" for _, h, w in sorted(shapes))
        return (_ERROR, f"Images of different sizes ({sizes}) cannot be evaluated together; resize them to one size.")
    return torch.stack(items)


def _raise_errors(batches: Iterable) -> Iterator[torch.Tensor]:
    for batch in batches:
        if isinstance(batch, tuple):
            raise DataError(batch[1])
        yield batch


def _folder_fingerprint(files: list[Path]) -> str:
    """Changes when any of the files is added, removed, resized or touched."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or os.sep in spec.partition(":")[0] or spec.endswith(os.sep)


def open_dataset_source(spec: str, n: int | None = None, *, workers: int = 0, pin_memory: bool = False,
                        data_root: str | Path | None = None, download: bool | None = None) -> Source:
    """A dataset spec or image folder; the first n images (all by default)."""
    from gancli.data.specs import check_uniform_size, open_dataset

    if _looks_like_path(spec) and not Path(spec).expanduser().exists():
        raise DataError(f"'{spec}' does not exist (expected an image folder, a run folder, a .npz statistics "
                        f"file or a dataset spec such as cifar10:test).")
    if Path(spec).expanduser().is_file():
        raise DataError(f"'{spec}' is a file; a SPEC is an image folder, a run folder, a .npz statistics file or "
                        f"a dataset spec such as cifar10:test.")
    dataset = open_dataset(spec, root=data_root, download=download)
    total = len(dataset)
    if total == 0:
        raise DataError(f"Dataset '{spec}' has no images.")
    if n is not None and n > total:
        raise DataError(f"{n} images were asked for but '{spec}' has only {total}.")
    n = n or total
    files = getattr(dataset, "files", None)
    if hasattr(dataset, "image_size"):
        check_uniform_size(dataset)  # from file headers: a clear sentence naming the odd file out
    name = getattr(dataset, "name", spec)
    description = {"kind": "dataset", "dataset": name, "n": n}
    if isinstance(files, list):
        description["fingerprint"] = _folder_fingerprint(files[:n])
    elif hasattr(dataset, "fingerprint"):  # generated data: what its images look like now
        description["fingerprint"] = dataset.fingerprint()

    def make_batches(batch_size: int) -> Iterable[torch.Tensor]:
        from gancli.metrics.generative.features import background

        if workers:  # a dataset that reads its files on first use does so here, once, not in every worker
            dataset[0]
        loader = DataLoader(_Guarded(dataset, n), batch_size=batch_size, shuffle=False, num_workers=workers,
                            collate_fn=_collate, pin_memory=pin_memory, persistent_workers=False)
        # Without worker processes, a thread still decodes the next batches while the GPU computes.
        return _raise_errors(background(loader) if workers == 0 and pin_memory else loader)

    return Source(spec, "dataset", n, name, description, make_batches)


# ---------------------------------------------------------------------------------------------
# Generators: a sampler callable
# ---------------------------------------------------------------------------------------------
Sampler = Callable[..., torch.Tensor]  # sampler(n, generator[, labels=...]) -> n images in [-1, 1]


def sampler_source(sampler: Sampler, n: int, *, spec: str, label: str, description: dict[str, Any],
                   device: str | torch.device = "cpu", seed: int = 0, classes: int = 0, owner: Any = None) -> Source:
    """n images drawn from a sampler; with classes > 0 it is called with `labels=` and every class gets its share.

    The images come as uint8 batches on the sampler's device; `owner` (e.g. the run they came from) is kept on
    the Source for whoever records the scores.
    """
    from gancli.data.images import to_uint8

    device = torch.device(device)

    def make_batches(batch_size: int) -> Iterator[torch.Tensor]:
        generator = torch.Generator(device).manual_seed(seed)
        labels = torch.arange(n, device=device) % classes if classes else None
        with torch.no_grad():
            for start in range(0, n, batch_size):
                size = min(batch_size, n - start)
                extra = {"labels": labels[start:start + size]} if labels is not None else {}
                images = sampler(size, generator, **extra)
                if not (torch.is_tensor(images) and images.dim() == 4 and images.shape[0] == size
                        and images.shape[1] in (1, 3)):
                    raise DataError(f"'{spec}' sampled {tuple(getattr(images, 'shape', ()))}, not {size} images "
                                    f"of shape (3, H, W).")
                images = to_uint8(images)
                yield images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images

    return Source(spec, "run", n, label, {**description, "n": n, "seed": seed, "class_balanced": classes > 0},
                  make_batches, run=owner)


def is_run_folder(spec: str) -> bool:
    path = Path(spec).expanduser()
    return path.is_dir() and (path / "config.toml").is_file()


# ---------------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------------
def open_source(spec: str, *, n: int | None = None, device: str | torch.device = "cpu", workers: int = 0,
                checkpoint: str | None = None, ema: bool = True, truncation: float | None = None, seed: int = 0,
                default_run_n: int = 10_000, data_root: str | Path | None = None,
                download: bool | None = None, open_run: Callable[..., Source] | None = None) -> Source:
    """Open a SPEC: statistics file, run folder (through `open_run`, which the API layer gives), or dataset spec /
    image folder."""
    if not spec:
        raise ConfigError("An empty SPEC was given; name a folder, run, dataset spec or .npz statistics file.")
    if n is not None and n < 1:
        raise ConfigError(f"The number of images must be positive, got {n}.")
    run_folder = is_run_folder(spec)
    if not run_folder:
        for flag, value in (("--truncation", truncation), ("--checkpoint", checkpoint)):
            if value is not None:
                raise ConfigError(f"{flag} applies to run folders, and '{spec}' is not one.")
    if spec.lower().endswith(".npz") and not Path(spec).expanduser().is_dir():
        stats = ReferenceStats.load(Path(spec).expanduser())
        if n is not None and n != stats.n:
            raise ConfigError(f"'{spec}' holds the statistics of {stats.n:,} images, so {n:,} cannot be taken from "
                              f"it; leave the number out, or make a file of {n:,} with `gancli eval stats --n {n}`.")
        label = f"{spec} ({stats.meta.get('source', 'statistics')})"
        return Source(spec, "stats", stats.n, label, {"kind": "stats", "file": str(Path(spec).resolve()),
                                                    "source": stats.meta.get("source_description")}, stats=stats)
    if run_folder:
        if open_run is None:
            raise ConfigError(f"'{spec}' is a run folder; evaluate it through gancli.api (api.evaluator), which "
                              f"knows how to open runs.")
        return open_run(spec, n or default_run_n, device=device, checkpoint=checkpoint, ema=ema,
                        truncation=truncation, seed=seed)
    return open_dataset_source(spec, n, workers=workers, pin_memory=torch.device(device).type == "cuda",
                               data_root=data_root, download=download)
