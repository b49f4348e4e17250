"""GAN losses, one D/G pair per name; D gets raw logits, every loss is a batch mean.

`*_d_loss(real_logits, fake_logits)` and `*_g_loss(fake_logits, real_logits=None)`; only the
relativistic loss uses real logits in the G step (pass them detached).
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from gancli.errors import ConfigError


def ns_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-log σ(D(x)) - log(1 - σ(D(G(z)))), in softplus form."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def ns_g_loss(fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """Non-saturating G loss: -log σ(D(G(z)))."""
    return F.softplus(-fake_logits).mean()


minimax_d_loss = ns_d_loss


def minimax_g_loss(fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """The original saturating G loss: minimize log(1 - σ(D(G(z)))) = -softplus(D(G(z)))."""
    return -F.softplus(fake_logits).mean()


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """relu(1 - D(x)) + relu(1 + D(G(z)))."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """-D(G(z)), shared by hinge and WGAN."""
    return -fake_logits.mean()


def wgan_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """D(G(z)) - D(x): the negated Wasserstein-1 estimate."""
    return fake_logits.mean() - real_logits.mean()


wgan_g_loss = hinge_g_loss


def ls_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Least squares (Mao et al., a=0, b=1) on D's raw output, as the large-scale study's text writes it
    (§2.1, D(x) ∈ R): ½(D(x) - 1)² + ½D(G(z))². Its code (compare_gan) takes σ(D) instead: `ls-sigmoid`."""
    return 0.5 * (real_logits - 1).pow(2).mean() + 0.5 * fake_logits.pow(2).mean()


def ls_g_loss(fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """Least squares (c=1) on D's raw output: ½(D(G(z)) - 1)²."""
    return 0.5 * (fake_logits - 1).pow(2).mean()


def ls_sigmoid_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Least squares on σ(D), as compare_gan's `loss_lib.least_squares` (the large-scale study's code):
    ½(σ(D(x)) - 1)² + ½σ(D(G(z)))²."""
    return ls_d_loss(torch.sigmoid(real_logits), torch.sigmoid(fake_logits))


def ls_sigmoid_g_loss(fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """Least squares on σ(D) (compare_gan): ½(σ(D(G(z))) - 1)²."""
    return ls_g_loss(torch.sigmoid(fake_logits))


def ra_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Relativistic average (ESRGAN): mean of BCE(C(x) - E[C(fake)], 1) and BCE(C(fake) - E[C(x)], 0)."""
    return _relativistic(real_logits, fake_logits)


def ra_g_loss(fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """Relativistic average (ESRGAN): the D loss with the roles of real and fake swapped."""
    if real_logits is None:
        raise ConfigError("The relativistic (ra) generator loss needs the critic's logits on real images.")
    return _relativistic(fake_logits, real_logits)


def _relativistic(pos: Tensor, neg: Tensor) -> Tensor:
    # The ESRGAN code averages the two terms (its adversarial weight 5e-3 is set for that).
    return 0.5 * (F.softplus(-(pos - neg.mean())).mean() + F.softplus(neg - pos.mean()).mean())


DLoss = Callable[[Tensor, Tensor], Tensor]
GLoss = Callable[..., Tensor]

LOSSES: dict[str, tuple[DLoss, GLoss]] = {
    "ns": (ns_d_loss, ns_g_loss),
    "minimax": (minimax_d_loss, minimax_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
    "wgan": (wgan_d_loss, wgan_g_loss),
    "ls": (ls_d_loss, ls_g_loss),
    "ls-sigmoid": (ls_sigmoid_d_loss, ls_sigmoid_g_loss),
    "ra": (ra_d_loss, ra_g_loss),
}


def get_loss(name: str) -> tuple[DLoss, GLoss]:
    """The (D loss, G loss) pair for a loss name."""
    if name not in LOSSES:
        raise ConfigError(f"Unknown GAN loss {name!r}; choose one of: {', '.join(LOSSES)}.")
    return LOSSES[name]
