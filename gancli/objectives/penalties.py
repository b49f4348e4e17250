"""Critic penalties and weight regularizers; each returns the unweighted term (the caller scales it).

`critic` is any callable image batch -> logits (a recipe closes over its labels). Input
gradients are taken with create_graph=True, so each penalty is differentiable in the weights.
Conventions of the weight λ (`penalty_weight`) that multiplies each term: gp and dragan λ·E(‖∇D‖ - 1)²;
r1 γ·½E‖∇D(x)‖² (so λ = γ = 10 is the papers' R1 strength); l2 λ·mean over layers of ½‖W‖².
`clip` is no loss term: WGAN weight clipping, applied to the weights after each critic step.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn

from gancli.errors import ConfigError

Critic = Callable[[Tensor], Tensor]

PENALTIES = ("none", "gp", "r1", "dragan", "l2", "clip")
CLIP_C = 0.01  # Arjovsky et al. 2017, Algorithm 1


def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP (Gulrajani et al.): mean (||∇D(x̂)|| - 1)², x̂ uniform on the segment real-fake."""
    alpha = torch.rand(real.shape[0], *[1] * (real.dim() - 1), device=real.device, dtype=real.dtype)
    between = alpha * real.detach() + (1 - alpha) * fake.detach()
    return (_input_grad(critic, between).norm(dim=1) - 1).pow(2).mean()


def r1_penalty(critic: Critic, real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018, eq. 9) without γ: ½·E||∇D(x)||² on real data; the caller multiplies by γ."""
    return 0.5 * _input_grad(critic, real.detach()).pow(2).sum(dim=1).mean()


def dragan_penalty(critic: Critic, real: Tensor) -> Tensor:
    """DRAGAN as the large-scale study runs it (compare_gan `penalty_lib.py`): E(||∇D(x̂)|| - 1)² at
    x̂ = clip(x + std(x)·(U - ½)), U uniform on [0, 1) per pixel, std(x) one number over the whole batch.

    compare_gan's images are in [0, 1]; ours are x' = 2x - 1 in [-1, 1]. std(x') = 2·std(x), so the same formula
    on x' (clipped to [-1, 1]) is the study's perturbation mapped to our range: twice as large in absolute terms,
    the same relative to the range. The gradient is taken with respect to our [-1, 1] input, as for gp.
    (Kodali et al. §5 write δ ~ N(0, c·I), c ≈ 10: std 3.16, ~20× the study's std(x')/√12 ≈ 0.15 on CIFAR-10.)
    """
    real = real.detach()
    std = real.std(correction=0)  # tf.nn.moments over all axes: the population variance
    perturbed = (real + std * (torch.rand_like(real) - 0.5)).clamp(-1, 1)
    return (_input_grad(critic, perturbed).norm(dim=1) - 1).pow(2).mean()


def l2_penalty(module: nn.Module) -> Tensor:
    """The large-scale study's L2 (compare_gan): mean over weight layers of ½||W||², biases and norms excluded."""
    kernels = [_raw_weight(layer) for layer in module.modules() if isinstance(layer, _WEIGHT_LAYERS)]
    if not kernels:
        return torch.zeros(())
    return torch.stack([0.5 * w.pow(2).sum() for w in kernels]).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, c: float = CLIP_C) -> None:
    """WGAN weight clipping (Arjovsky et al. 2017, Alg. 1): every parameter of the critic clamped to [-c, c]."""
    for p in module.parameters():
        p.clamp_(-c, c)


def orthogonal_regularization(module: nn.Module, skip: tuple[str, ...] = ()) -> Tensor:
    """BigGAN eq. 3 without β: Σ ||W Wᵀ ⊙ (1 - I)||²_F over weights reshaped to out × rest.

    Each term is ||G||²_F - Σᵢ ||wᵢ||⁴ with G the smaller of W Wᵀ and Wᵀ W (the two have equal Frobenius norms and
    the diagonal of W Wᵀ holds the squared row norms), so a 24576 × 20 dense layer costs a 20 × 20 Gram, not
    24576². Parameters whose name contains any string in `skip` (e.g. the shared embedding) are left out.
    BigGAN-PyTorch adds the gradient 2β(W Wᵀ ⊙ (1 - I))W, which is that of (β/2)·this sum.
    """
    kept = (p.flatten(1) for name, p in module.named_parameters() if p.dim() > 1 and not any(s in name for s in skip))
    return sum((_off_diagonal_energy(w) for w in kept), torch.zeros(()))


def _off_diagonal_energy(w: Tensor) -> Tensor:
    """||W Wᵀ ⊙ (1 - I)||²_F of a matrix W from its smaller Gram matrix."""
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    return gram.pow(2).sum() - w.pow(2).sum(dim=1).pow(2).sum()


def critic_penalty(name: str, critic_fn: Critic, critic_module: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """The named critic penalty (one of PENALTIES); `none` and `clip` (a constraint, not a term) are zero."""
    if name in ("none", "clip"):
        return real.new_zeros(())
    if name == "gp":
        return gradient_penalty(critic_fn, real, fake)
    if name == "r1":
        return r1_penalty(critic_fn, real)
    if name == "dragan":
        return dragan_penalty(critic_fn, real)
    if name == "l2":
        return l2_penalty(critic_module)
    raise ConfigError(f"Unknown critic penalty {name!r}; choose one of: {', '.join(PENALTIES)}.")


_WEIGHT_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def _raw_weight(layer: nn.Module) -> Tensor:
    """The layer's trained kernel: under a spectral-norm parametrization the unnormalized one, as compare_gan's."""
    parametrizations = getattr(layer, "parametrizations", None)
    if parametrizations is not None and "weight" in parametrizations and hasattr(parametrizations.weight, "original"):
        return parametrizations.weight.original
    return layer.weight


def _input_grad(critic: Critic, x: Tensor) -> Tensor:
    """∇_x of the summed critic output at x, one flattened row per sample, kept in the graph.

    The critic runs eagerly here even when it was compiled (`--compile`): the penalty is differentiated twice,
    and compiled graphs (AOTAutograd) have no double backward.
    """
    x = x.requires_grad_(True)
    with torch.compiler.set_stance("force_eager"):
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1)
