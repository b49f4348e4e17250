"""Feature-wise modulation of a generator's batch norm: self-modulated BN and class-conditional BN.

Both normalize without affine parameters and apply a per-sample gain and bias computed from a
conditioning vector:

- `SelfModulatedBatchNorm` (self-modulation paper, eq. 1-2): γ(z) and β(z) come from a one-hidden-layer
  ReLU MLP of the generator's own input z (hidden layer shared by γ and β, as in compare_gan; γ's output
  bias starts at 1, so a fresh layer is a plain BN). For conditional generation the input is first
  composed with the label by `LabelComposition` (eq. 3).
- `ConditionalBatchNorm` (de Vries et al. 2017; BigGAN §3): gain 1 + W_γ c and bias W_β c, linear in a
  conditioning vector c (BigGAN: the shared class embedding concatenated with a chunk of z).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _plain_norm(num_features: int, eps: float, momentum: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)


def _modulate(h: Tensor, gain: Tensor, bias: Tensor) -> Tensor:
    shape = (h.shape[0], h.shape[1]) + (1,) * (h.dim() - 2)
    return h * gain.view(shape) + bias.view(shape)


class SelfModulatedBatchNorm(nn.Module):
    """BN(x)·γ(z) + β(z), with [γ, β] = [V_γ; V_β]·ReLU(U z + b) + [1; 0] (self-modulation eq. 2)."""

    def __init__(self, num_features: int, z_dim: int, hidden: int = 32, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.norm = _plain_norm(num_features, eps, momentum)
        self.hidden = nn.Linear(z_dim, hidden) if hidden > 0 else nn.Identity()
        width = hidden if hidden > 0 else z_dim
        self.gamma, self.beta = nn.Linear(width, num_features), nn.Linear(width, num_features)
        nn.init.ones_(self.gamma.bias)
        nn.init.zeros_(self.beta.bias)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        h = self.hidden(z)
        if not isinstance(self.hidden, nn.Identity):
            h = torch.relu(h)
        return _modulate(self.norm(x), self.gamma(h), self.beta(h))


class LabelComposition(nn.Module):
    """Self-modulation eq. 3: z' = z + E(y) + z ⊙ E'(y), a bilinear interaction of z with two label embeddings."""

    def __init__(self, n_classes: int, z_dim: int):
        super().__init__()
        self.add, self.scale = nn.Embedding(n_classes, z_dim), nn.Embedding(n_classes, z_dim)
        nn.init.zeros_(self.add.weight)
        nn.init.zeros_(self.scale.weight)  # a fresh layer passes z through; training learns the label's part

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return z + self.add(y) + z * self.scale(y)


class ClassTable(nn.Embedding):
    """One learned vector per class, read by a class code: a one-hot code picks its class's row exactly, a blend of
    codes blends rows (an embedding that class interpolation can walk through)."""

    def forward(self, code: Tensor) -> Tensor:
        return code @ self.weight


class ConditionalBatchNorm(nn.Module):
    """BN(x)·(1 + W_γ c) + W_β c: gains centred on 1, biases on 0, linear in the conditioning vector c.

    With `per_class`, c is a class code (one-hot) and W_γ, W_β are plain per-class tables (ClassTable), as
    BigGAN-PyTorch's ccbn without a shared embedding (nn.Embedding: it notes that SN there cripples G).
    """

    def __init__(self, num_features: int, cond_dim: int, eps: float = 1e-5, momentum: float = 0.1,
                 per_class: bool = False):
        super().__init__()
        self.norm = _plain_norm(num_features, eps, momentum)
        if per_class:
            self.gain, self.bias = ClassTable(cond_dim, num_features), ClassTable(cond_dim, num_features)
        else:
            self.gain = nn.Linear(cond_dim, num_features, bias=False)
            self.bias = nn.Linear(cond_dim, num_features, bias=False)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        return _modulate(self.norm(x), 1 + self.gain(c), self.bias(c))
