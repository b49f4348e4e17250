"""Losses against their formulas; penalties against closed forms on linear and quadratic critics."""

import math

import pytest
import torch
from torch import nn

from gancli.errors import ConfigError
from gancli.objectives import (
    LOSSES,
    PENALTIES,
    clip_weights,
    critic_penalty,
    dragan_penalty,
    get_loss,
    gradient_penalty,
    hinge_d_loss,
    hinge_g_loss,
    l2_penalty,
    ls_d_loss,
    ls_g_loss,
    ls_sigmoid_d_loss,
    ls_sigmoid_g_loss,
    minimax_d_loss,
    minimax_g_loss,
    ns_d_loss,
    ns_g_loss,
    orthogonal_regularization,
    r1_penalty,
    ra_d_loss,
    ra_g_loss,
    wgan_d_loss,
    wgan_g_loss,
)

REAL = torch.tensor([2.0, -0.5, 3.0, 0.1], dtype=torch.float64)
FAKE = torch.tensor([-1.0, 0.7, -4.0], dtype=torch.float64)
sig, log = torch.sigmoid, torch.log


def bce_real(x):
    return -log(sig(x)).mean()


def bce_fake(x):
    return -log(1 - sig(x)).mean()


EXPECTED = {
    "ns": (bce_real(REAL) + bce_fake(FAKE), bce_real(FAKE)),
    "minimax": (bce_real(REAL) + bce_fake(FAKE), log(1 - sig(FAKE)).mean()),
    "hinge": ((1 - REAL).clamp(min=0).mean() + (1 + FAKE).clamp(min=0).mean(), -FAKE.mean()),
    "wgan": (FAKE.mean() - REAL.mean(), -FAKE.mean()),
    "ls": (0.5 * ((REAL - 1) ** 2).mean() + 0.5 * (FAKE**2).mean(), 0.5 * ((FAKE - 1) ** 2).mean()),
    "ls-sigmoid": (0.5 * ((sig(REAL) - 1) ** 2).mean() + 0.5 * (sig(FAKE) ** 2).mean(),
                   0.5 * ((sig(FAKE) - 1) ** 2).mean()),
    "ra": (
        0.5 * (bce_real(REAL - FAKE.mean()) + bce_fake(FAKE - REAL.mean())),
        0.5 * (bce_real(FAKE - REAL.mean()) + bce_fake(REAL - FAKE.mean())),
    ),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_match_their_formulas(name):
    d_loss, g_loss = get_loss(name)
    d_expected, g_expected = EXPECTED[name]
    torch.testing.assert_close(d_loss(REAL, FAKE), d_expected)
    torch.testing.assert_close(g_loss(FAKE, REAL), g_expected)


def test_named_functions_are_the_registered_pairs():
    assert LOSSES == {
        "ns": (ns_d_loss, ns_g_loss),
        "minimax": (minimax_d_loss, minimax_g_loss),
        "hinge": (hinge_d_loss, hinge_g_loss),
        "wgan": (wgan_d_loss, wgan_g_loss),
        "ls": (ls_d_loss, ls_g_loss),
        "ls-sigmoid": (ls_sigmoid_d_loss, ls_sigmoid_g_loss),
        "ra": (ra_d_loss, ra_g_loss),
    }
    assert set(EXPECTED) == set(LOSSES)


def test_ls_is_the_study_text_on_raw_output_and_ls_sigmoid_its_code_on_the_sigmoid():
    """The large-scale study §2.1 writes LS on D(x) ∈ R; compare_gan `gans/loss_lib.py` `least_squares` takes
    d_real = σ(logits): d = ½(mean((d_real - 1)²) + mean(d_fake²)), g = ½ mean((d_fake - 1)²)."""
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([0.0])
    # raw: ½·mean((-1)², 1²) + ½·0 = 0.5; sigmoid: σ(0) = ½, σ(2) = 0.880797: ½·mean(¼, (1 - 0.880797)²) + ½·¼
    assert ls_d_loss(real, fake).item() == pytest.approx(0.5)
    assert ls_sigmoid_d_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.0142093) / 2 + 0.125, rel=1e-5)
    assert ls_g_loss(fake).item() == pytest.approx(0.5) and ls_sigmoid_g_loss(fake).item() == pytest.approx(0.125)


def test_softplus_forms_stay_finite_on_extreme_logits():
    big = torch.tensor([1e4, -1e4])
    for d_loss, g_loss in LOSSES.values():
        assert torch.isfinite(d_loss(big, big)) and torch.isfinite(g_loss(big, big))


def test_only_ra_needs_real_logits_in_the_g_step():
    for name, (_, g_loss) in LOSSES.items():
        if name != "ra":
            g_loss(FAKE)
    with pytest.raises(ConfigError, match="real"):
        ra_g_loss(FAKE)


def test_unknown_loss_is_a_config_error_listing_the_names():
    with pytest.raises(ConfigError) as error:
        get_loss("vanilla")
    assert all(name in str(error.value) for name in LOSSES)


class LinearCritic(nn.Module):
    """D(x) = <a, x>: its input gradient is a everywhere."""

    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, x):
        return x.flatten(1) @ self.a


def quadratic_critic(x):
    """D(x) = ½||x||²: its input gradient is x."""
    return 0.5 * x.flatten(1).pow(2).sum(1)


A = torch.tensor([0.3, -1.2, 2.0, 0.5], dtype=torch.float64)
X_REAL = torch.randn(5, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
X_FAKE = torch.randn(5, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def test_penalties_on_a_linear_critic():
    critic = LinearCritic(A.clone())
    torch.testing.assert_close(gradient_penalty(critic, X_REAL, X_FAKE), (A.norm() - 1) ** 2)
    torch.testing.assert_close(r1_penalty(critic, X_REAL), 0.5 * A.pow(2).sum())
    torch.testing.assert_close(dragan_penalty(critic, X_REAL), (A.norm() - 1) ** 2)


def test_penalties_are_differentiable_in_the_weights():
    critic = LinearCritic(A.clone())
    gradient_penalty(critic, X_REAL, X_FAKE).backward()
    torch.testing.assert_close(critic.a.grad, 2 * (A.norm() - 1) * A / A.norm())
    critic.a.grad = None
    r1_penalty(critic, X_REAL).backward()
    torch.testing.assert_close(critic.a.grad, A)  # d/da of ½||a||²


def test_penalties_on_a_quadratic_critic():
    rows = X_REAL.flatten(1)
    # R1 (Mescheder et al. eq. 9) is γ/2·E||∇D(x)||²: the term is half the mean squared gradient norm
    torch.testing.assert_close(r1_penalty(quadratic_critic, X_REAL), 0.5 * rows.pow(2).sum(1).mean())

    torch.manual_seed(2)
    got = gradient_penalty(quadratic_critic, X_REAL, X_FAKE)
    torch.manual_seed(2)
    alpha = torch.rand(5, 1, dtype=torch.float64)
    between = alpha * rows + (1 - alpha) * X_FAKE.flatten(1)
    torch.testing.assert_close(got, (between.norm(dim=1) - 1).pow(2).mean())



def test_dragan_is_the_large_scale_studys_perturbation_by_hand(monkeypatch):
    """compare_gan `gans/penalty_lib.py` dragan_penalty: x̂ = clip(x + std(x)·(U - 0.5)), std over the whole batch
    (tf.nn.moments over all axes), on our [-1, 1] range; here U = 0.75 everywhere, so x̂ = x + std/4."""
    x = torch.tensor([[-1.0, 0.0], [0.5, 1.0]], dtype=torch.float64).view(2, 1, 1, 2)  # two images of 2 pixels
    std = math.sqrt(0.546875)  # mean 1/8; squared deviations 1.265625, .015625, .140625, .765625; sum/4
    monkeypatch.setattr(torch, "rand_like", lambda t: torch.full_like(t, 0.75))
    got = dragan_penalty(quadratic_critic, x)  # ∇ of ½||x̂||² is x̂
    first = math.hypot(-1 + std / 4, std / 4)  # image 1: (-0.815122, 0.184878)
    second = math.hypot(0.5 + std / 4, 1.0)  # image 2: (0.684878, 1.184878 clipped to 1)
    assert got.item() == pytest.approx(((first - 1) ** 2 + (second - 1) ** 2) / 2, rel=1e-12)
    assert got.item() == pytest.approx(0.0359585, abs=1e-7)


def test_dragan_noise_is_uniform_within_half_the_batch_std():
    x = torch.linspace(-0.5, 0.5, 20_000, dtype=torch.float64).view(-1, 1, 1, 1)
    seen = []
    dragan_penalty(lambda v: seen.append(v.detach()) or v.flatten(1).sum(1), x)
    delta, std = (seen[0] - x).flatten(), x.std(correction=0).item()
    assert delta.abs().max() <= std / 2 and delta.abs().max() > 0.49 * std
    assert delta.var().item() == pytest.approx(std**2 / 12, rel=0.05)  # the variance of std·(U - ½)


def test_l2_penalty_is_the_mean_over_layers_of_half_squared_norms():
    """The large-scale study (compare_gan): mean of tf.nn.l2_loss(W) = ½||W||² over the kernels, no biases."""
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
    expected = (0.5 * model[0].weight.pow(2).sum() + 0.5 * model[2].weight.pow(2).sum()) / 2
    torch.testing.assert_close(l2_penalty(model), expected)


def test_l2_penalty_reads_the_raw_kernel_under_spectral_norm():
    from gancli.nn import apply_critic_norm

    model = nn.Sequential(nn.Linear(3, 2))
    raw = model[0].weight.detach().clone()
    apply_critic_norm(model, "sn")
    torch.testing.assert_close(l2_penalty(model), 0.5 * raw.pow(2).sum())


def test_clip_weights_clamps_every_parameter():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(100)
    clip_weights(model, 0.05)
    assert all(p.abs().max() <= 0.05 for p in model.parameters())
    assert any((p.abs() == 0.05).any() for p in model.parameters())


def test_orthogonal_regularization_by_hand():
    model = nn.Module()
    model.conv = nn.Conv2d(1, 2, (1, 2), bias=True)
    model.shared = nn.Embedding(4, 3)
    with torch.no_grad():
        model.conv.weight.copy_(torch.tensor([1.0, 2.0, 3.0, -1.0]).reshape(2, 1, 1, 2))
    # rows (1, 2) and (3, -1): W Wᵀ = [[5, 1], [1, 10]], off-diagonal squares 1 + 1
    torch.testing.assert_close(orthogonal_regularization(model, skip=("shared",)), torch.tensor(2.0))
    w = model.shared.weight
    gram = w @ w.T
    off = (gram * (1 - torch.eye(4))).pow(2).sum()
    torch.testing.assert_close(orthogonal_regularization(model), 2.0 + off)


def test_critic_penalty_dispatches_by_name():
    critic = LinearCritic(A.clone())
    assert set(PENALTIES) == {"none", "gp", "r1", "dragan", "l2", "clip"}
    torch.testing.assert_close(
        critic_penalty("none", critic, critic, X_REAL, X_FAKE), torch.zeros((), dtype=torch.float64)
    )
    torch.testing.assert_close(critic_penalty("gp", critic, critic, X_REAL, X_FAKE), (A.norm() - 1) ** 2)
    torch.testing.assert_close(critic_penalty("r1", critic, critic, X_REAL, X_FAKE), 0.5 * A.pow(2).sum())
    torch.testing.assert_close(critic_penalty("clip", critic, critic, X_REAL, X_FAKE), torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close(critic_penalty("dragan", critic, critic, X_REAL, X_FAKE), (A.norm() - 1) ** 2)
    model = nn.Linear(3, 2)
    torch.testing.assert_close(critic_penalty("l2", critic, model, X_REAL, X_FAKE), 0.5 * model.weight.pow(2).sum())
    with pytest.raises(ConfigError) as error:
        critic_penalty("wgan-gp", critic, critic, X_REAL, X_FAKE)
    assert all(name in str(error.value) for name in PENALTIES)
