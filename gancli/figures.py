"""Figures as PNG files: matplotlib on its file-only backend, and one way to write and close a figure."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, out: str | Path, dpi: int = 110, tight: str = "layout") -> Path:
    """Write fig as a PNG (making its folder) and close it; tight: "layout" (tight_layout) or "bbox" (a tight
    bounding box)."""
    out = Path(out)
    if tight == "layout":
        fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, **({"bbox_inches": "tight"} if tight == "bbox" else {}))
    pyplot().close(fig)
    return out
