"""Conditioning of a generator's input-output Jacobian (Odena et al. 2018), as the self-modulation paper reports it.

For each z of a batch, J_z = ∂G(z)/∂z (all output pixels × the latent size). Odena et al. study the metric
tensor M_z = J_zᵀ J_z, whose eigenvalues are the squared singular values of J_z, so
cond(M_z) = λ_max/λ_min = (σ_max/σ_min)² = cond(J_z)². compare_gan (the self-modulation code) reports the mean
and standard deviation of log cond(M_z) over a batch; we give those and cond(J_z) itself (mean/min/max).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import jacfwd


@dataclass
class JacobianConditioning:
    """Condition numbers of J_z over a batch of z, and Odena et al.'s log cond(J_zᵀJ_z) statistics."""

    cond: list[float]  # σ_max/σ_min of each J_z

    @property
    def log_metric_cond(self) -> list[float]:
        """log cond(M_z) = 2 log cond(J_z), the quantity Odena et al. and compare_gan average."""
        return [2 * math.log(c) if c > 0 else math.nan for c in self.cond]

    def as_dict(self) -> dict[str, float]:
        logs = torch.tensor(self.log_metric_cond, dtype=torch.float64)
        values = torch.tensor(self.cond, dtype=torch.float64)
        return {"cond_mean": values.mean().item(), "cond_min": values.min().item(), "cond_max": values.max().item(),
                "log_metric_cond_mean": logs.mean().item(),
                "log_metric_cond_std": logs.std(unbiased=False).item() if len(logs) > 1 else 0.0, "n": len(values)}


def jacobian_condition_numbers(generate: Callable[[torch.Tensor], torch.Tensor],
                               z: torch.Tensor) -> JacobianConditioning:
    """cond(J_z) for every row of z, where generate maps a (B, d) batch of latents to (B, ...) images.

    Forward-mode differentiation (one pass per latent dimension, fewer than output pixels); the generator
    should be in eval mode so that each image depends on its own z only.
    """
    def one(z_row: torch.Tensor) -> torch.Tensor:
        return generate(z_row[None]).reshape(-1)

    conds: list[float] = []
    for z_row in z:
        jacobian = jacfwd(one)(z_row).detach().double()  # (pixels, d)
        singular = torch.linalg.svdvals(jacobian)
        conds.append((singular.max() / singular.min()).item() if singular.min() > 0 else math.inf)
    return JacobianConditioning(conds)
