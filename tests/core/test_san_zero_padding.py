"""SAN on zero-padded convs (critic_padding = zeros): σ on the (H+kh-1)×(W+kw-1) grid bounds ||W||_{0,∞}."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gancli.nn import apply_critic_norm, mark_critic_updated, sigma_grid, sparsity_aware_sigma
from gancli.nn.norms import count_critic_updates

# (kernel, stride, padding, dilation) of the convs the critics use, and a few odd ones
CONVS = [((3, 3), 1, (1, 1), 1), ((4, 4), 2, (1, 1), 1), ((3, 3), 2, (1, 1), 1), ((3, 3), 1, (2, 2), 2),
         ((5, 3), 1, (2, 1), 1), ((3, 3), 1, (1, 0), 1)]


def single_kernel_convs(weight: torch.Tensor, conv: nn.Conv2d):
    """Each single-in/single-out kernel w_ij as its own channel of one grouped conv: x (1, K, H, W) -> (1, K, ...)."""
    kernels = weight.detach().flatten(0, 1)[:, None].double()
    return lambda x: F.conv2d(x, kernels, None, conv.stride, conv.padding, conv.dilation, groups=len(kernels))


def worst_input_norms(weight: torch.Tensor, conv: nn.Conv2d, size: tuple[int, int], iters: int = 500):
    """Power iteration on AᵀA of each kernel's zero-padded operator: ‖A x‖ of the worst unit input x found."""
    apply = single_kernel_convs(weight, conv)
    x = torch.randn(1, weight.shape[0] * weight.shape[1], *size, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0))
    for _ in range(iters):
        x = x / x.flatten(2).norm(dim=-1)[..., None, None]
        x = x.detach().requires_grad_()
        y = apply(x)
        (x,) = torch.autograd.grad(y, x, y)  # AᵀA x
    x = x / x.flatten(2).norm(dim=-1)[..., None, None]
    return apply(x).flatten(2).norm(dim=-1).flatten()


def brute_force_norms(weight: torch.Tensor, conv: nn.Conv2d, size: tuple[int, int]):
    """The operator norm of each kernel's zero-padded conv, from its full matrix (small sizes only)."""
    n = size[0] * size[1]
    apply = single_kernel_convs(weight, conv)
    k = weight.shape[0] * weight.shape[1]
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 1, *size).expand(n, k, *size)
    matrices = apply(basis).flatten(2).permute(1, 2, 0)  # (K, outputs, inputs)
    return torch.linalg.matrix_norm(matrices, 2)


@pytest.mark.parametrize("kernel,stride,padding,dilation", CONVS)
def test_sigma_grid_bounds_every_single_channel_input_of_random_kernels(kernel, stride, padding, dilation):
    conv = nn.Conv2d(3, 4, kernel, stride, padding, dilation)
    weight = torch.randn(4, 3, *kernel, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for size in [(5, 6), (8, 8)]:
        sigma = sparsity_aware_sigma(weight, sigma_grid(conv, size))
        worst = worst_input_norms(weight, conv, size)
        exact = brute_force_norms(weight, conv, size)
        assert (worst <= exact * (1 + 1e-9)).all() and (worst >= exact * (1 - 2e-3)).all()  # it finds the worst input
        assert exact.max() <= sigma * (1 + 1e-9)
        assert exact.max() >= 0.5 * sigma  # a bound, and not a loose one


def test_the_input_size_alone_does_not_bound_a_zero_padded_conv():
    """Why the larger grid: on 4×4 inputs some 3×3 kernels' zero-padded conv exceeds the |DFT| on 4×4 itself."""
    conv = nn.Conv2d(1, 1, 3, padding=1)
    weights = torch.randn(300, 1, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = brute_force_norms(weights.transpose(0, 1), conv, (4, 4))
    plain = torch.stack([sparsity_aware_sigma(w[None], (4, 4)) for w in weights])
    grid = torch.stack([sparsity_aware_sigma(w[None], sigma_grid(conv, (4, 4))) for w in weights])
    assert sigma_grid(conv, (4, 4)) == (6, 6)
    assert (exact > plain * (1 + 1e-6)).any()
    assert (exact <= grid * (1 + 1e-9)).all()


def test_sigma_grid_of_circular_valid_and_zero_padded_convs():
    assert sigma_grid(nn.Conv2d(2, 2, 3, padding=1), (8, 8)) == (10, 10)
    assert sigma_grid(nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"), (8, 8)) == (8, 8)
    assert sigma_grid(nn.Conv2d(2, 2, 3), (8, 8)) == (8, 8)  # valid: a crop of the circular conv on H×W
    assert sigma_grid(nn.Conv2d(2, 2, 3, padding=2, dilation=2), (8, 7)) == (12, 11)
    assert sigma_grid(nn.Conv2d(2, 2, 3, padding="same"), (8, 8)) == (10, 10)
    assert sigma_grid(nn.Conv2d(2, 2, 1, padding=3), (8, 8)) == (11, 11)  # padding past the kernel


def tiny_critic() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(8, 8, 4, 2, 1), nn.LeakyReLU(0.1),
                         nn.Conv2d(8, 8, 3, 1, 1), nn.LeakyReLU(0.1), nn.Flatten(), nn.Linear(8 * 4 * 4, 1))


@pytest.mark.parametrize("mode", ["project", "reparam"])
def test_trained_zero_padded_san_critic_keeps_every_kernel_within_the_bound(mode):
    """A few hinge steps of a SAN critic with zero padding; then no single-channel input lifts any output channel
    of any conv above 1 (g = 1): the normalized kernels' worst inputs, found by power iteration."""
    torch.manual_seed(0)
    critic = apply_critic_norm(tiny_critic(), "san", gain=1.0, padding="zeros", mode=mode)
    count_critic_updates(critic)
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.padding_mode == "zeros" and "_conv_forward" not in vars(c) for c in convs)
    opt = torch.optim.Adam(critic.parameters(), 1e-2)
    real, sizes = torch.randn(16, 3, 8, 8) + 1, {}
    hooks = [c.register_forward_pre_hook(lambda m, a: sizes.__setitem__(m, tuple(a[0].shape[-2:]))) for c in convs]
    for _ in range(20):
        loss = F.relu(1 - critic(real)).mean() + F.relu(1 + critic(torch.randn(16, 3, 8, 8))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mark_critic_updated(critic)
    critic(real)  # reparam: the forward reads W/σ with σ refreshed after the last update
    for hook in hooks:
        hook.remove()
    for conv in convs:
        weight = conv.weight.detach()
        assert torch.linalg.vector_norm(weight) > 0.1  # trained, not collapsed to zero
        worst = worst_input_norms(weight, conv, sizes[conv])
        assert worst.max() <= 1 + 1e-5
        if conv.stride == (1, 1):  # a strided conv keeps a fraction of the outputs: far below the bound
            assert worst.max() >= 0.5


def test_zeros_keeps_a_zero_padded_critic_as_it_is_and_undoes_circular_padding():
    critic = tiny_critic()
    reference = copy.deepcopy(critic)
    apply_critic_norm(critic, "none", padding="zeros")
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(critic(x), reference(x), rtol=0, atol=0)
    circular = apply_critic_norm(tiny_critic(), "none", padding="circular")
    assert circular[0].padding_mode == "circular"
    apply_critic_norm(circular, "none", padding="zeros")
    assert circular[0].padding_mode == "zeros" and "_conv_forward" not in vars(circular[0])


def test_unknown_critic_padding_is_one_sentence():
    from gancli.errors import ConfigError

    with pytest.raises(ConfigError, match="Unknown critic padding 'reflect'; choose one of: auto, circular, zeros."):
        apply_critic_norm(tiny_critic(), "san", padding="reflect")
