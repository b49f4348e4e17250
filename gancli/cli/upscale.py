"""`gancli upscale RUN INPUT... --out DIR`: super-resolve image files or folders with an sr run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gancli.cli.ui import console, progress
from gancli.errors import ConfigError, DataError

LOSSLESS = (".png", ".bmp", ".tif", ".tiff", ".ppm")


def plan_outputs(inputs: list[Path], out: Path) -> list[tuple[Path, Path]]:
    """(source, destination) pairs: files keep their name, folders their layout, lossy formats become .png."""
    from gancli.data.images import IMAGE_SUFFIXES, list_images

    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            pairs += [(f, out / f.relative_to(item)) for f in list_images(item)]
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"'{item}' is not an image file ({', '.join(IMAGE_SUFFIXES)}).")
            pairs.append((item, out / item.name))
        else:
            raise DataError(f"Input '{item}' does not exist.")
    pairs = [(src, dst if dst.suffix.lower() in LOSSLESS else dst.with_suffix(".png")) for src, dst in pairs]
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst in seen:
            raise DataError(f"'{seen[dst]}' and '{src}' would both be written to '{dst}'; upscale them separately.")
        if dst.resolve() == src.resolve():
            raise DataError(f"Writing '{dst}' would overwrite its input; choose another --out.")
        seen[dst] = src
    return pairs


def register(app: typer.Typer) -> None:
    @app.command()
    def upscale(
        run: Path = typer.Argument(..., help="An sr run folder (gancli train sr)."),
        inputs: list[Path] = typer.Argument(..., help="Image files and/or folders of images."),
        out: Path = typer.Option(..., "--out", help="Output folder; names (and folder layout) are kept."),
        tile: int = typer.Option(256, help="LR tile size in pixels so large images fit in memory; 0 = whole image."),
        overlap: int = typer.Option(40, help="LR pixels of context around each tile (≥ 35 makes SAN Table 8's "
                                            "generator exact)."),
        checkpoint: Optional[str] = typer.Option(None, help="Checkpoint name or step (default: latest)."),
        device: str = typer.Option("auto", help="auto, cpu or cuda."),
        ema: bool = typer.Option(True, "--ema/--no-ema", help="Use EMA weights when the run has them."),
    ):
        """Upscale images of any size with an sr run's generator (tiled with overlap)."""
        from gancli import api
        from gancli.data.images import load_image, save_image

        if tile < 0 or overlap < 0:
            raise ConfigError(f"--tile and --overlap must not be negative, got {tile} and {overlap}.")
        model = api.load(run, checkpoint, device, ema, verb="upscale")
        cfg = model.cfg
        pairs = plan_outputs(inputs, out)
        converted = sum(src.suffix.lower() != dst.suffix.lower() for src, dst in pairs)
        with progress("img/s") as bar:
            task = bar.add_task(f"upscale x{cfg.scale}", total=len(pairs), info="")
            for src, dst in pairs:
                image = load_image(src)

                def on_tile(done: int, total: int, name=src.name) -> None:
                    bar.update(task, info=f"{name} tile {done}/{total}")

                result = model.upscale(image, tile=tile, overlap=overlap, on_tile=on_tile)
                dst.parent.mkdir(parents=True, exist_ok=True)
                save_image(result, dst)
                bar.advance(task)
        note = f" ({converted} lossy inputs written as .png)" if converted else ""
        images = f"{len(pairs)} image{'s' if len(pairs) != 1 else ''}"
        console.print(f"Wrote {images} upscaled x{cfg.scale} to [cyan]{out}[/]{note}")
