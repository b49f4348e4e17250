"""Pretrained weights of the feature networks: where they are found, how they are downloaded and checked.

Lookup order: --weights PATH, else an environment variable, else the torch hub cache (where torch-fidelity,
pytorch-fid and torchvision keep them), else a download where the network allows. A file counts as official
when its sha256 starts with the prefix its name carries (torch.hub's convention) or it is a known copy by its
published sha1; scores from other weights are labelled as such, never passed off as standard.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gancli.data.formats import downloads_allowed, network_timeout
from gancli.errors import MissingWeightsError


@dataclass(frozen=True)
class WeightsFile:
    """One official weights file and how to recognise it."""

    what: str  # in messages: "TF-Inception weights"
    file: str  # its name in the torch hub cache
    url: str
    sha256_prefix: str  # the hex digits the name ends in
    env: str  # the environment variable that may name a local copy
    copies: dict[str, str] = field(default_factory=dict)  # other names of the same checkpoint → their sha1

    def hub_path(self, name: str | None = None) -> Path:
        """$TORCH_HOME/hub/checkpoints/NAME (default ~/.cache/torch)."""
        return Path(torch.hub.get_dir()) / "checkpoints" / (name or self.file)

    def is_official(self, path: str | Path) -> bool:
        if sha256_file(path).startswith(self.sha256_prefix):
            return True
        return bool(self.copies) and file_digest(path, "sha1") in self.copies.values()  # no second hash without copies


INCEPTION = WeightsFile(
    "TF-Inception weights", "weights-inception-2015-12-05-6726825d.pth",
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    "6726825d", "GANCLI_INCEPTION_WEIGHTS",
    # pytorch-fid's checkpoint of the same TF graph (torch-fidelity's documentation says it downloads that one), by
    # the sha1 that NVIDIA's download scripts check it against
    copies={"pt_inception-2015-12-05-6726825d.pth": "bd836944fd6db519dfd8d924aa457f5b3c8357ff"})
VGG16 = WeightsFile(
    "VGG16 ImageNet weights (torchvision IMAGENET1K_V1)", "vgg16-397923af.pth",
    "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af", "GANCLI_VGG16_WEIGHTS")

_hash_cache: dict[tuple[str, str, int, int], str] = {}


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (memoised by algorithm, path, size and mtime)."""
    path = Path(path)
    stat = path.stat()
    key = (algorithm, str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_cache:
        digest = hashlib.new(algorithm, usedforsecurity=False)  # integrity, not security: allowed under FIPS too
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file (memoised)."""
    return file_digest(path, "sha256")


def _missing(spec: WeightsFile, reason: str) -> MissingWeightsError:
    return MissingWeightsError(
        f"{reason}: {spec.what} '{spec.file}' are needed (download {spec.url} into {spec.hub_path().parent}, "
        f"or pass --weights PATH / set {spec.env}); use --features builtin for the builtin-data classifier instead.")


def _download(spec: WeightsFile, target: Path) -> None:
    """Fetch the official file with torch.hub and check it before it takes its place; a clear error without network."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.download")
    try:
        with network_timeout():
            torch.hub.download_url_to_file(spec.url, str(partial), progress=True)
        if not spec.is_official(partial):
            raise _missing(spec, f"The downloaded file failed its hash check (sha256 {sha256_file(partial)[:8]}, "
                                 f"expected {spec.sha256_prefix})")
        os.replace(partial, target)
    except (OSError, ValueError) as exc:  # URLError, timeouts, no route, ...
        raise _missing(spec, f"Downloading the weights failed ({exc.__class__.__name__})") from None
    finally:
        partial.unlink(missing_ok=True)


def find_weights(spec: WeightsFile, weights: str | Path | None = None, download: bool | None = None) -> Path:
    """The weights file: --weights, else $ENV, else the torch hub cache (the file, or an official copy under another
    name), else a download."""
    for given, origin in ((weights, "given by --weights"), (os.environ.get(spec.env), f"from ${spec.env}")):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                state = "is a folder, not a file" if path.is_dir() else "does not exist"
                raise MissingWeightsError(f"Weights file '{path}' ({origin}) {state}.")
            return path
    path = spec.hub_path()
    if path.is_file():
        if not spec.is_official(path):
            raise MissingWeightsError(
                f"'{path}' is corrupt: its sha256 starts with {sha256_file(path)[:8]}, not {spec.sha256_prefix}; "
                f"delete it and download {spec.url} again.")
        return path
    for name in spec.copies:  # left there by another tool: used only when it is the official file
        copy = spec.hub_path(name)
        if copy.is_file() and spec.is_official(copy):
            return copy
    if not downloads_allowed(download):
        raise _missing(spec, f"'{path}' does not exist")
    _download(spec, path)
    return path
