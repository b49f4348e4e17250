"""Reference checkpoints for the import tests, rebuilt from a layout file (tests/fixtures/imports/*/layout.json).

A layout lists the keys, shapes and dtypes of a reference network's state dict in its release layout. Its values
come from `fill`, a deterministic pseudo-random formula (no RNG stream, so any torch version rebuilds the same
tensors), with the statistics a trained network has: BN running variances in [0.5, 1.5], means around 0, unit
SN vectors, power-iteration vectors that are not yet converged. The golden outputs next to each layout were
computed by the reference code itself on exactly these tensors (see the fixture folder's README).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"


def uniform(shape: tuple[int, ...], key: str, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """Values in [low, high) from a hash of the element index salted by the key (fract(sin(t)·43758.5453))."""
    n = 1
    for size in shape:
        n *= size
    t = torch.arange(n, dtype=torch.float64)
    salt = zlib.crc32(key.encode()) / 2 ** 32 * 1000.0
    x = torch.frac((torch.sin(t * 12.9898 + salt) * 43758.5453).abs())
    return (low + (high - low) * x).reshape(shape).float()


def fill(key: str, shape: list[int], dtype: str) -> torch.Tensor:
    """The value of one reference tensor, by what its name says it is."""
    shape = tuple(shape)
    leaf = key.rsplit(".", 1)[-1]
    if dtype == "int64":
        return torch.full(shape, 3, dtype=torch.int64)  # num_batches_tracked
    if leaf in ("stored_var", "running_var"):
        return uniform(shape, key, 0.5, 1.5)
    if leaf in ("stored_mean", "running_mean"):
        return uniform(shape, key, -0.2, 0.2)
    if leaf in ("weight_u", "weight_v"):
        return F.normalize(uniform(shape, key), dim=0)
    if leaf == "sv0":
        return torch.ones(shape)
    if leaf == "gamma":  # the attention's gain (0 at init)
        return torch.full(shape, 0.5)
    if leaf == "gain" and len(shape) == 1:  # BigGAN-PyTorch's output BN gain
        return uniform(shape, key, 0.5, 1.5)
    if len(shape) == 1:
        return uniform(shape, key, -0.1, 0.1)
    fan_in = 1
    for size in shape[1:]:
        fan_in *= size
    return uniform(shape, key) * (3.0 / fan_in) ** 0.5


def layout(fixture: str, name: str) -> dict[str, tuple[list[int], str]]:
    return json.loads((FIXTURES / fixture / "layout.json").read_text())[name]


def reference_state(fixture: str, name: str) -> dict[str, torch.Tensor]:
    """One reference state dict (e.g. fixture 'biggan-pytorch', name 'imagenet/G') in its release layout.

    Torch-hook SN vectors (weight_u, weight_v) are one power step from a formula u, as a trained layer's are a step
    ahead of its weight: random unit vectors would give uᵀWv near 0, and W / σ would blow up.
    """
    state = {key: fill(key, shape, dtype) for key, (shape, dtype) in layout(fixture, name).items()}
    for key in [k for k in state if k.endswith(".weight_u")]:
        prefix = key[: -len("weight_u")]
        matrix = state[prefix + "weight_orig"].reshape(state[key].shape[0], -1)
        v = F.normalize(matrix.t() @ state[key], dim=0)
        state[prefix + "weight_v"], state[key] = v, F.normalize(matrix @ v, dim=0)
    return state


def write_layout(path: Path, states: dict[str, dict[str, torch.Tensor]]) -> None:
    """Record the keys, shapes and dtypes of reference state dicts (used when the fixtures are made)."""
    table = {name: {k: [list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()}
             for name, state in states.items()}
    path.write_text(json.dumps(table, indent=0))


def label_map(grid: torch.Tensor, size: tuple[int, int], label_nc: int, edges: bool) -> torch.Tensor:
    """SPADE's input for a coarse grid of label ids (N, h, w): one-hot ids at `size` (nearest), then, with `edges`,
    a channel marking pixels whose right or lower neighbour has another id (instance boundaries, as SPADE's last)."""
    ids = F.interpolate(grid[:, None].float(), size=size, mode="nearest")[:, 0].long()
    x = F.one_hot(ids, label_nc).permute(0, 3, 1, 2).float()
    if not edges:
        return x
    edge = torch.zeros_like(ids, dtype=torch.bool)
    edge[:, :, :-1] |= ids[:, :, 1:] != ids[:, :, :-1]
    edge[:, :-1, :] |= ids[:, 1:, :] != ids[:, :-1, :]
    return torch.cat([x, edge[:, None].float()], 1)
