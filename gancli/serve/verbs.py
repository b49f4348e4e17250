"""What the page's controls do: one gancli.api verb on a served run, with its uploads checked and every file it reads
or writes inside one request folder (under the server's temp folder)."""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gancli import api
from gancli.errors import ConfigError, DataError


@dataclass(frozen=True)
class Limits:
    """What one request may ask for: bytes and pixels of each upload, images in one grid."""

    upload_bytes: int = 8 * 2**20
    pixels: int = 2048 * 2048
    images: int = 64


def byte_count(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count:,} bytes"


class Request:
    """One verb call's folder, its uploads, and the names the user knows them by (for error messages)."""

    def __init__(self, folder: Path, limits: Limits):
        self.folder, self.limits = folder, limits
        self.names: dict[str, str] = {}

    def _write(self, data: bytes, stem: str, name: str, what: str) -> Path:
        """Check an encoded image's size and pixels (from its header, before decoding it) and keep it here."""
        from PIL import Image, UnidentifiedImageError

        most = f"this server takes images of at most {self.limits.pixels / 1e6:.1f} megapixels"
        if len(data) > self.limits.upload_bytes:
            raise DataError(f"The {what} '{name}' is {byte_count(len(data))}; this server takes uploads of at most "
                            f"{byte_count(self.limits.upload_bytes)}.")
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except Image.DecompressionBombError:
            raise DataError(f"The {what} '{name}' has far too many pixels; {most}.") from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise DataError(f"The {what} '{name}' is not an image this server can read (PNG, JPEG, ...).") from None
        if width * height > self.limits.pixels:
            raise DataError(f"The {what} '{name}' is {width}×{height} pixels; {most}.")
        path = self.folder / f"{stem}.png"  # the content decides the format; the client's name is only shown
        path.write_bytes(data)
        self.names[str(path)] = name
        return path

    def upload(self, item: Any, stem: str, what: str) -> Path:
        """An upload sent as {"name": ..., "data": base64}."""
        if not isinstance(item, dict) or not isinstance(item.get("data"), str):
            raise DataError(f"No {what} was sent; choose one first.")
        name = str(item.get("name") or what)[:120]
        try:
            data = base64.b64decode(item["data"], validate=True)
        except (binascii.Error, ValueError):
            raise DataError(f"The {what} '{name}' did not arrive as base64 data.") from None
        return self._write(data, stem, name, what)

    def painted_map(self, item: Any) -> Path:
        """A painted label map sent as {"width", "height", "ids": base64 of one byte per pixel}: written as a PNG of
        ids, with itself as its instance map (one instance per class region) for runs that use instance edges."""
        import numpy as np
        from PIL import Image

        if not isinstance(item, dict):
            raise DataError("No painted label map was sent.")
        width, height = _int(item, "width", 0, 1, 4096), _int(item, "height", 0, 1, 4096)
        try:
            ids = np.frombuffer(base64.b64decode(str(item.get("ids", "")), validate=True), np.uint8)
        except (binascii.Error, ValueError):
            raise DataError("The painted label map did not arrive as base64 data.") from None
        if ids.size != width * height:
            raise DataError(f"The painted label map has {ids.size} ids for {width}×{height} pixels.")
        if width * height > self.limits.pixels:
            raise DataError(f"The painted label map is {width}×{height} pixels; this server takes maps of at most "
                            f"{self.limits.pixels / 1e6:.1f} megapixels.")
        path, image = self.folder / "painted.png", Image.fromarray(ids.reshape(height, width), "L")
        image.save(path)
        image.save(self.folder / "painted_instanceIds.png")
        self.names[str(path)] = "the painted map"
        return path

    def explain(self, exc: Exception | str) -> str:
        """The error's sentence with this folder's files called by the names the user gave them."""
        message = str(exc)
        for path, name in self.names.items():
            message = message.replace(path, name)
        return message.replace(str(self.folder), "the request")


def _int(params: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().lstrip("-").isdigit():
        raise ConfigError(f"'{key}' must be a whole number, got '{value}'.")
    if not low <= int(value) <= high:
        raise ConfigError(f"'{key}' must be between {low} and {high}, got {value}.")
    return int(value)


def _truncation(params: dict[str, Any]) -> float | None:
    value = params.get("truncation")
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"'truncation' must be a number, got '{value}'.") from None


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _class(params: dict[str, Any]) -> str | None:
    value = params.get("class")
    return None if value in (None, "") else str(value)


def sample(run: Path, req: Request, params: dict[str, Any], device: str) -> dict[str, Any]:
    """The grid `gancli sample RUN --n --seed --class --truncation --out FILE.png` writes."""
    n = _int(params, "n", 16, 1, req.limits.images)
    _, grid = api.save_samples(run, n, req.folder / "sample.png", class_id=_class(params),
                               truncation=_truncation(params), seed=_int(params, "seed", 0, 0, 2**31 - 1),
                               device=device)
    return {"image": data_url(grid)}


def interpolate(run: Path, req: Request, params: dict[str, Any], device: str) -> dict[str, Any]:
    """The strips `gancli sample RUN --interpolate z|class --n --steps --out FILE.png` writes."""
    steps = _int(params, "steps", 8, 2, 16)
    rows = _int(params, "rows", 2, 1, max(1, req.limits.images // steps))
    mode = str(params.get("mode", "z"))
    _, strips = api.save_samples(run, rows, req.folder / "interpolation.png", interpolation=mode, steps=steps,
                                 class_id=_class(params), truncation=_truncation(params),
                                 seed=_int(params, "seed", 0, 0, 2**31 - 1), device=device)
    return {"image": data_url(strips)}


def synthesize(run: Path, req: Request, params: dict[str, Any], device: str) -> dict[str, Any]:
    """Photos of a painted (ids) or uploaded (ids or palette colours) label map, × styles with the VAE."""
    from PIL import Image

    if params.get("painted") is not None:
        labels, palette = req.painted_map(params["painted"]), False
    else:
        labels = req.upload(params.get("labels"), "labels", "label map")
        with Image.open(labels) as image:
            palette = image.mode in ("RGB", "RGBA")  # colours of the run's palette; else one id per pixel
    style = req.upload(params["style"], "style", "style image") if params.get("style") else None
    files = api.synthesize(run, [labels], req.folder / "out", palette=palette, style=style,
                           n_styles=_int(params, "styles", 1, 1, 8), seed=_int(params, "seed", 0, 0, 2**31 - 1),
                           device=device)
    return {"images": [data_url(file) for file in files]}


def translate(run: Path, req: Request, params: dict[str, Any], device: str) -> dict[str, Any]:
    """A face with the attributes switched as asked ({name: 0 or 1}); without any, the grid of each change alone."""
    face = req.upload(params.get("image"), "face", "face")
    changes = params.get("attrs") or {}
    if not isinstance(changes, dict) or any(v not in (0, 1) for v in changes.values()):
        raise ConfigError("'attrs' must map attribute names to 0 or 1.")
    assignments = {str(name): 1 if value else -1 for name, value in changes.items()}
    result = api.translate(run, [face], assignments, out=req.folder / "out", grid=not assignments, device=device)
    picture = result.outputs[0] if assignments else result.grid
    return {"image": data_url(picture), "sources": result.sources[0], "columns": result.columns}


def upscale(run: Path, req: Request, params: dict[str, Any], device: str) -> dict[str, Any]:
    """An image upscaled as `gancli upscale` does it (tiled), as a PNG to show and download."""
    source = req.upload(params.get("image"), "photo", "image")
    done = api.upscale(run, [source], req.folder / "out", device=device)
    name = Path(req.names[str(source)]).stem
    return {"image": data_url(done["files"][0]), "scale": done["scale"], "download": f"{name}_x{done['scale']}.png"}


VERBS: dict[str, Callable[[Path, Request, dict[str, Any], str], dict[str, Any]]] = {
    "sample": sample, "interpolate": interpolate, "synthesize": synthesize, "translate": translate,
    "upscale": upscale}
