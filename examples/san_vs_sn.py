"""Compare the normalization constants of one conv layer: SN's reshaped-matrix estimate, SAN, exact."""

import torch

from gancli.nn import exact_conv_sigma, sparsity_aware_sigma

torch.manual_seed(0)
weight = torch.randn(128, 64, 3, 3) * 0.05
matrix_sigma = torch.linalg.matrix_norm(weight.flatten(1), ord=2)  # what SN's power iteration converges to
print(f"SN (reshaped matrix)  {matrix_sigma:.3f}")
print(f"SAN ||W||_(0,inf)     {sparsity_aware_sigma(weight, (32, 32)):.3f}")
print(f"exact operator norm   {exact_conv_sigma(weight, (32, 32)):.3f}")
