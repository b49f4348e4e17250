"""Reference-statistics cache: one .npz per description of what produced it (data, n, resize, network, weights)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from gancli.errors import DataError
from gancli.metrics.generative.stats import ReferenceStats
from gancli.paths import cache_root


def cache_dir() -> Path:
    """$GANCLI_CACHE/stats, default ~/.cache/gancli/stats."""
    return cache_root() / "stats"


def cache_key(description: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the description (first 32 hex digits)."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cache_path(description: dict[str, Any]) -> Path:
    return cache_dir() / f"{cache_key(description)}.npz"


def lookup(description: dict[str, Any], need_pool: bool = False, need_logits: bool = False) -> ReferenceStats | None:
    """Cached statistics for this description, or None (also when they lack the features asked for)."""
    path = cache_path(description)
    if not path.is_file():
        return None
    try:
        stats = ReferenceStats.load(path)
    except DataError:  # a damaged entry is recomputed, never trusted
        return None
    if stats.meta.get("cache_description") != json.loads(json.dumps(description, default=str)):
        return None
    if (need_pool and stats.pool is None) or (need_logits and stats.logits is None):
        return None
    return stats


def store(description: dict[str, Any], stats: ReferenceStats) -> Path | None:
    """Save statistics under their description; a cache that cannot be written is skipped, not an error."""
    entry = ReferenceStats(stats.mu, stats.sigma, stats.n,
                           {**stats.meta, "cache_description": json.loads(json.dumps(description, default=str))},
                           stats.pool, stats.logits)
    try:
        return entry.save(cache_path(description))
    except DataError:
        return None
