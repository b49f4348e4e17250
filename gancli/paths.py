"""Where gancli keeps what it caches between runs: $GANCLI_CACHE, default ~/.cache/gancli."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "GANCLI_CACHE"


def cache_root() -> Path:
    """$GANCLI_CACHE, else ~/.cache/gancli (reference statistics, records of verified dataset files)."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/gancli").expanduser()
