"""Shared network pieces for every recipe: critic normalization, layers."""

from gancli.nn.norms import (
    CRITIC_NORMS,
    SAN_MODES,
    ExactSpectralNorm,
    SparsityAwareNorm,
    apply_config_norm,
    apply_critic_norm,
    count_critic_updates,
    exact_conv_sigma,
    leave_plain,
    mark_critic_updated,
    san_compensation,
    sigma_grid,
    sparsity_aware_sigma,
    sparsity_aware_sigma_dense,
)
