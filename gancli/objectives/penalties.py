"""Critic penalties and weight regularizers; each returns the unweighted term (the caller scales it).

`critic` is any callable image batch -> logits (a recipe closes over its labels). Input
gradients are taken with create_graph=True, so each penalty is differentiable in the weights.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn

from gancli.errors import ConfigError

Critic = Callable[[Tensor], Tensor]

PENALTIES = ("none", "gp", "r1", "dragan", "l2")


def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP (Gulrajani et al.): mean (||∇D(x̂)|| - 1)², x̂ uniform on the segment real-fake."""
    alpha = torch.rand(real.shape[0], *[1] * (real.dim() - 1), device=real.device, dtype=real.dtype)
    between = alpha * real.detach() + (1 - alpha) * fake.detach()
    return (_input_grad(critic, between).norm(dim=1) - 1).pow(2).mean()


def r1_penalty(critic: Critic, real: Tensor) -> Tensor:
    """R1 (Mescheder et al.): mean ||∇D(x)||² on real data; the caller multiplies by γ/2."""
    return _input_grad(critic, real.detach()).pow(2).sum(dim=1).mean()


def dragan_penalty(critic: Critic, real: Tensor) -> Tensor:
    """DRAGAN (Kodali et al.): mean (||∇D(x̃)|| - 1)², x̃ = x + 0.5·std(x)·U[0, 1) noise."""
    real = real.detach()
    perturbed = real + 0.5 * real.std() * torch.rand_like(real)
    return (_input_grad(critic, perturbed).norm(dim=1) - 1).pow(2).mean()


def l2_penalty(module: nn.Module) -> Tensor:
    """Sum of squared weights of the critic, biases and other 1-d parameters excluded."""
    return sum((p.pow(2).sum() for p in module.parameters() if p.dim() > 1), torch.zeros(()))


def orthogonal_regularization(module: nn.Module, skip: tuple[str, ...] = ()) -> Tensor:
    """BigGAN eq. 3 without β: Σ ||W Wᵀ ⊙ (1 - I)||²_F over weights reshaped to out × rest.

    Parameters whose name contains any string in `skip` (e.g. the shared embedding) are left out.
    BigGAN-PyTorch adds the gradient 2β(W Wᵀ ⊙ (1 - I))W, which is that of (β/2)·this sum.
    """
    kept = (p.flatten(1) for name, p in module.named_parameters() if p.dim() > 1 and not any(s in name for s in skip))
    return sum((_off_diagonal(w @ w.T).pow(2).sum() for w in kept), torch.zeros(()))


def critic_penalty(name: str, critic_fn: Critic, critic_module: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """The named critic penalty (one of PENALTIES); `none` is a zero tensor."""
    if name == "none":
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


def _off_diagonal(gram: Tensor) -> Tensor:
    return gram - torch.diag(torch.diagonal(gram))


def _input_grad(critic: Critic, x: Tensor) -> Tensor:
    """∇_x of the summed critic output at x, one flattened row per sample, kept in the graph."""
    x = x.requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1)
