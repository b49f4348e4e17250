"""Latent sampling and inference helpers shared by every latent-variable generator.

`truncated_normal` is BigGAN's truncation trick (§3.1): each entry of z ~ N(0, 1) whose magnitude
exceeds the threshold is redrawn until none does (a rescaled normal is a different distribution).
`standing_statistics` is BigGAN's "standing statistics" (App. C/F): the generator's batch-norm
statistics are re-estimated as plain averages over many forward passes, so that a sample does not
depend on the batch it was drawn in.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from gancli.errors import ConfigError


def truncated_normal(shape: tuple[int, ...], threshold: float | None = None, *,
                     generator: torch.Generator | None = None, device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float32, max_rounds: int = 10_000) -> Tensor:
    """N(0, 1) samples of `shape`, each entry with |z| > threshold resampled (None: no truncation)."""
    if device is None:
        device = generator.device if generator is not None else "cpu"
    z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if threshold is None:
        return z
    if not threshold > 0:
        raise ConfigError(f"The truncation threshold must be positive, got {threshold:g}.")
    for _ in range(max_rounds):
        outside = z.abs() > threshold
        if not outside.any():
            return z
        fresh = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        z = torch.where(outside, fresh, z)
    raise ConfigError(f"Truncation at {threshold:g} kept resampling; choose a threshold of at least 0.01.")


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers (with running statistics) of a module."""
    return [m for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def standing_statistics(G: nn.Module, forward: Callable[[], object], passes: int = 100) -> int:
    """Re-estimate G's BN running statistics as the plain mean over `passes` calls of `forward()`.

    `forward` draws fresh inputs (z, and labels for a conditional G) and runs G once; only the BN layers are
    in training mode meanwhile. G is left in eval mode, using the standing statistics. Returns how many BN
    layers were re-estimated.
    """
    norms = batch_norms(G)
    if not norms:
        G.eval()
        return 0
    momenta = [bn.momentum for bn in norms]
    G.eval()  # only the BN layers gather statistics: spectral norm's power iteration and the like stay as they are
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: the plain mean over the passes
        bn.train()
    try:
        for _ in range(passes):
            forward()
    finally:
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
        G.eval()
    return len(norms)
