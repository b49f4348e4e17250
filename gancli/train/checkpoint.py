"""Checkpoints: weights as safetensors, trainer state loaded with weights_only=True, written atomically.

Layout: RUN/checkpoints/step_00001000/{weights.safetensors, state.pt}. A checkpoint is written
into a hidden temporary folder and renamed into place, so a killed process never leaves a
half-written checkpoint under a real name; hidden leftovers are ignored and cleaned up.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gancli.errors import CheckpointError, state_dict_mismatch

WEIGHTS, STATE = "weights.safetensors", "state.pt"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, write) -> None:
    write(path)
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def flatten_weights(models: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": t.detach().cpu().contiguous().clone()
            for name, sd in models.items() for key, t in sd.items() if isinstance(t, torch.Tensor)}


def write_checkpoint(target: Path, weights: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any],
                     state: dict[str, Any] | None = None) -> Path:
    """Atomically create folder `target` holding the weights (and trainer state, if given)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    metadata = {k: json.dumps(v) for k, v in meta.items()}
    _write_file(tmp / WEIGHTS, lambda p: save_file(flatten_weights(weights), str(p), metadata=metadata))
    if state is not None:
        _write_file(tmp / STATE, lambda p: torch.save(state, p))
    _fsync_dir(tmp)
    old = None
    if target.exists():  # replace (e.g. 'best'): move the old one aside first
        old = target.parent / f".old-{target.name}-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def step_dirs(run_dir: Path) -> list[Path]:
    """Complete step checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    dirs = [p for p in root.glob("step_*") if (p / WEIGHTS).is_file()]
    return sorted(dirs, key=lambda p: int(p.name.split("_")[1]))


def step_dir(run_dir: Path, step: int) -> Path:
    """Where the checkpoint of a step lives."""
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}"


def save_step(run_dir: Path, step: int, weights, meta, state, keep: int) -> Path:
    """Write checkpoint `step_XXXXXXXX`, then delete all but the newest `keep`."""
    path = write_checkpoint(step_dir(run_dir, step), weights, meta, state)
    for stale in step_dirs(run_dir)[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
    for leftover in (Path(run_dir) / "checkpoints").glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return path


def resolve_checkpoint(run_dir: str | Path, checkpoint: str | None = None) -> Path:
    """The checkpoint folder to load: latest by default, or a name/step/path given by the user."""
    run_dir = Path(run_dir)
    if checkpoint:
        for candidate in (Path(checkpoint), run_dir / "checkpoints" / checkpoint,
                          run_dir / "checkpoints" / f"step_{int(checkpoint):08d}" if checkpoint.isdigit() else None):
            if candidate is not None and (candidate / WEIGHTS).is_file():
                return candidate
        raise CheckpointError(f"Checkpoint '{checkpoint}' was not found in run '{run_dir}'.")
    dirs = step_dirs(run_dir)
    if not dirs:
        raise CheckpointError(f"Run folder '{run_dir}' has no checkpoints.")
    return dirs[-1]


def load_weights(path: str | Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Weights grouped by model name ('G', 'D', 'G_ema', ...) and the checkpoint's metadata."""
    path = Path(path)
    file = path / WEIGHTS if path.is_dir() else path
    if not file.is_file():
        raise CheckpointError(f"No weights file at '{file}'.")
    try:
        flat = load_file(str(file))
        from safetensors import safe_open
        with safe_open(str(file), framework="pt") as handle:
            raw_meta = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"Weights file '{file}' is corrupt ({exc}).") from None
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in flat.items():
        name, _, rest = key.partition(".")
        grouped.setdefault(name, {})[rest] = tensor
    return grouped, {k: json.loads(v) for k, v in raw_meta.items()}


def load_recipe_weights(path: str | Path, recipe: str) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """load_weights, refused in one sentence when the checkpoint was written by another recipe."""
    weights, meta = load_weights(path)
    if meta.get("recipe") != recipe:
        raise CheckpointError(f"Checkpoint '{path}' is from recipe '{meta.get('recipe')}', not '{recipe}'.")
    return weights, meta


def load_module(module: torch.nn.Module, weights: dict[str, dict[str, torch.Tensor]], key: str, path: str | Path,
                what: str, missing: str = "") -> None:
    """Load weights[key] into module; a CheckpointError saying why it does not fit `what` (e.g. "the run's critic")."""
    try:
        module.load_state_dict(weights[key])
    except KeyError:
        raise CheckpointError(f"Checkpoint '{path}' does not fit {what} ({missing or f'no entry {key!r}'}).") from None
    except RuntimeError as exc:
        raise CheckpointError(f"Checkpoint '{path}' does not fit {what} ({state_dict_mismatch(exc)}).") from None


def load_state(path: Path) -> dict[str, Any]:
    """Trainer state (optimizers, step, RNG), loaded without unpickling arbitrary objects."""
    file = Path(path) / STATE
    if not file.is_file():
        raise CheckpointError(f"Checkpoint '{path}' has no trainer state ({STATE}); it cannot be resumed.")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise CheckpointError(f"Trainer state '{file}' is corrupt or unsafe ({exc.__class__.__name__}).") from None
