"""Feature statistics: a streaming float64 mean/covariance and the .npz files that carry them with their protocol."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gancli.errors import DataError

FORMAT = "gancli-feature-stats-1"
ARRAYS = ("mu", "sigma", "n", "pool", "logits")


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of a statistics file's arrays (names, dtypes, shapes, bytes): damage or edits show as a mismatch."""
    digest = hashlib.sha256()
    for key in ARRAYS:
        if key in arrays:
            a = np.ascontiguousarray(arrays[key])
            digest.update(f"{key}:{a.dtype.str}:{a.shape}\n".encode())
            digest.update(a.tobytes())
    return digest.hexdigest()


class FeatureStats:
    """Running mean and covariance of feature batches, in float64 on the features' device.

    Batches are merged with Chan et al.'s pairwise update (mean and centred scatter per batch), which keeps
    the float64 sums accurate however large the mean is; nothing but D + D² numbers is held.
    """

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.scatter: torch.Tensor | None = None  # sum of (x - mean)(x - mean)^T

    def update(self, features: torch.Tensor) -> None:
        x = features.detach().to(self.device, torch.float64).flatten(1)
        m = x.shape[0]
        if m == 0:
            return
        batch_mean = x.mean(dim=0)
        centred = x - batch_mean
        batch_scatter = centred.T @ centred
        if self.n == 0:
            self.n, self.mean, self.scatter = m, batch_mean, batch_scatter
            return
        total = self.n + m
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (m / total)
        self.scatter = self.scatter + batch_scatter + torch.outer(delta, delta) * (self.n * m / total)
        self.n = total

    def mu(self) -> np.ndarray:
        return self.mean.cpu().numpy()

    def sigma(self) -> np.ndarray:
        """Unbiased covariance (divided by n - 1), as numpy.cov."""
        if self.n < 2:
            raise DataError(f"A covariance needs at least 2 images, got {self.n}.")
        return (self.scatter / (self.n - 1)).cpu().numpy()


@dataclass
class ReferenceStats:
    """Mean, covariance and (optionally) the features of one image set, with what produced them."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    meta: dict[str, Any] = field(default_factory=dict)  # feature net, weights hash, resize, precision, source
    pool: np.ndarray | None = None  # (n, D) float32 features, needed by KID and precision/recall
    logits: np.ndarray | None = None  # (n, K) float32, needed by IS

    @classmethod
    def from_extracted(cls, extracted, meta: dict[str, Any]) -> ReferenceStats:
        return cls(extracted.stats.mu(), extracted.stats.sigma(), extracted.n, dict(meta),
                   extracted.pool, extracted.logits)

    def save(self, path: str | Path) -> Path:
        """Write an .npz atomically (temporary file, then rename)."""
        path = Path(path)
        if path.suffix != ".npz":
            raise DataError(f"Statistics files are named FILE.npz, got '{path}'.")
        arrays = {"mu": np.asarray(self.mu, np.float64), "sigma": np.asarray(self.sigma, np.float64),
                  "n": np.int64(self.n)}
        if self.pool is not None:
            arrays["pool"] = self.pool.astype(np.float32)
        if self.logits is not None:
            arrays["logits"] = self.logits.astype(np.float32)
        meta = {**self.meta, "format": FORMAT, "checksum": checksum(arrays)}
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
        tmp = path.with_name(f".{path.stem}-{os.getpid()}.tmp.npz")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):  # there may be no folder to hold it
                tmp.unlink(missing_ok=True)
            raise DataError(f"Cannot write statistics file '{path}' ({exc.strerror or exc}).") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReferenceStats:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"Statistics file '{path}' does not exist.")
        try:
            with np.load(path, allow_pickle=False) as data:
                if "meta" not in data.files or "mu" not in data.files or "sigma" not in data.files:
                    raise DataError(f"'{path}' is not a gancli statistics file (no feature-network record); "
                                    f"make one with `gancli eval stats SPEC --out FILE.npz`.")
                meta = json.loads(str(data["meta"]))
                if not isinstance(meta, dict):
                    raise ValueError("meta")
                arrays = {key: data[key] for key in ARRAYS if key in data.files}
                if any(np.iscomplexobj(a) or a.dtype.kind not in "fiu" for a in arrays.values()):
                    raise ValueError("dtype")
                if "checksum" in meta and meta["checksum"] != checksum(arrays):
                    raise DataError(f"Statistics file '{path}' is corrupt (its numbers do not match its checksum).")
                stats = cls(arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64),
                            int(data["n"]), meta, arrays.get("pool"), arrays.get("logits"))
        except DataError:
            raise
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:  # JSON errors: ValueError
            raise DataError(f"Statistics file '{path}' is unreadable or corrupt ({exc.__class__.__name__}).") from None
        if meta.get("format") != FORMAT:
            raise DataError(f"'{path}' is a statistics file of another format ({meta.get('format')!r}).")
        dim = stats.mu.shape[0] if stats.mu.ndim == 1 else -1
        if stats.sigma.shape != (dim, dim) or (stats.pool is not None and stats.pool.shape[1:] != (dim,)):
            raise DataError(f"Statistics file '{path}' is corrupt (mean, covariance and features disagree in shape).")
        if any(a is not None and (a.ndim != 2 or a.shape[0] != stats.n) for a in (stats.pool, stats.logits)):
            raise DataError(f"Statistics file '{path}' is corrupt (it says {stats.n} images but holds features of "
                            f"another number).")
        if stats.n < 2 or not all(np.isfinite(a).all() for a in (stats.mu, stats.sigma, stats.pool, stats.logits)
                                  if a is not None):
            raise DataError(f"Statistics file '{path}' is corrupt (fewer than 2 images, or numbers that are not "
                            f"finite).")
        scale = np.abs(stats.sigma).max(initial=0.0)
        if (np.diagonal(stats.sigma) < 0).any() or np.abs(stats.sigma - stats.sigma.T).max(initial=0.0) > 1e-6 * scale:
            raise DataError(f"Statistics file '{path}' is corrupt (its covariance is not symmetric with non-negative "
                            f"variances).")
        return stats

    def check_matches(self, feature_desc: dict[str, Any], where: str) -> None:
        """A DataError when these statistics came from another evaluation protocol, feature network, weights,
        resize or precision."""
        mine, theirs = self.meta.get("protocol", 1), feature_desc.get("protocol")
        if theirs is not None and mine != theirs:  # files written before the protocol was recorded are version 1
            raise DataError(f"Statistics {where} were made under gancli's evaluation protocol {mine}, and this "
                            f"gancli uses protocol {theirs}; recompute them with `gancli eval stats`.")
        for key in ("feature_net", "features", "weights_sha256", "resize", "precision"):
            mine, theirs = self.meta.get(key), feature_desc.get(key)
            if mine != theirs:
                what = "weights sha256" if key == "weights_sha256" else key.replace("_", " ")
                mine_s = mine[:12] if key == "weights_sha256" and mine else mine
                theirs_s = theirs[:12] if key == "weights_sha256" and theirs else theirs
                raise DataError(f"Statistics {where} were computed with {what} '{mine_s}', but this evaluation uses "
                                f"'{theirs_s}'; recompute them with the same --features/--weights/--precision.")
