"""The fast circular padding that SAN / sn-exact critics use equals PyTorch's, values and gradients."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gancli.nn import apply_critic_norm
from gancli.nn.padding import circular_pad2d, make_circular


@pytest.mark.parametrize("shape,pads", [((2, 3, 5, 7), (1, 1)), ((1, 2, 4, 4), (2, 1)), ((2, 1, 3, 6), (0, 2)),
                                        ((1, 1, 3, 3), (3, 3)), ((2, 2, 6, 5), (1, 0))])
def test_equals_torch_circular_pad_values_and_gradients(shape, pads):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    ph, pw = pads
    ours, theirs = circular_pad2d(x, ph, pw), F.pad(x, (pw, pw, ph, ph), mode="circular")
    assert torch.equal(ours, theirs)
    grad = torch.randn_like(ours)
    (g_ours,) = torch.autograd.grad(ours, x, grad)
    (g_theirs,) = torch.autograd.grad(theirs, x, grad)
    torch.testing.assert_close(g_ours, g_theirs, rtol=0, atol=1e-12)
    # R1 / gradient penalties differentiate the input gradient again
    assert torch.autograd.gradgradcheck(lambda t: circular_pad2d(t, ph, pw), (x,))


def test_padding_larger_than_the_input_is_refused():
    with pytest.raises(ValueError, match="at least that large"):
        circular_pad2d(torch.zeros(1, 1, 2, 2), 3, 1)


@pytest.mark.parametrize("stride", [1, 2])
def test_circular_conv_equals_pytorchs_and_penalties_still_work(stride):
    torch.manual_seed(1)
    plain = nn.Conv2d(3, 4, 3, stride=stride, padding=1, padding_mode="circular").double()
    fast = nn.Conv2d(3, 4, 3, stride=stride, padding=1).double()
    fast.load_state_dict(plain.state_dict())
    make_circular(fast)
    assert fast.padding_mode == "circular"
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    for conv in (plain, fast):
        out = conv(x)
        (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
        penalty = grad.square().sum()
        penalty.backward()
    torch.testing.assert_close(fast(x), plain(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad, rtol=1e-10, atol=1e-12)


def test_san_critics_pad_cyclically_through_the_fast_path():
    critic = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(8, 8, 4, 2, 1))
    reference = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular"), nn.LeakyReLU(0.1),
                              nn.Conv2d(8, 8, 4, 2, 1, padding_mode="circular"))
    reference.load_state_dict(critic.state_dict())
    apply_critic_norm(critic, "san")
    apply_critic_norm(reference, "san")
    for conv in (reference[0], reference[2]):  # back to PyTorch's own circular padding
        del conv._conv_forward
    x = torch.randn(2, 3, 8, 8)
    assert "_conv_forward" in vars(critic[0]) and critic[0].padding_mode == "circular"
    torch.testing.assert_close(critic(x), reference(x), rtol=0, atol=0)


def test_channels_last_stays_channels_last_through_the_padding_and_its_gradient():
    x = torch.randn(2, 4, 6, 5).to(memory_format=torch.channels_last).requires_grad_()
    padded = circular_pad2d(x, 1, 2)
    (grad,) = torch.autograd.grad(padded, x, torch.ones_like(padded))
    assert padded.is_contiguous(memory_format=torch.channels_last)
    assert grad.is_contiguous(memory_format=torch.channels_last)
    theirs = F.pad(x, (2, 2, 1, 1), mode="circular")
    torch.testing.assert_close(grad, torch.autograd.grad(theirs, x, torch.ones_like(theirs))[0], rtol=0, atol=0)


@pytest.mark.parametrize("norm", ["sn", "none", "bn"])
def test_critic_padding_circular_under_any_norm(norm):
    """critic_padding=circular: SAN's architecture (cyclic padding) under another norm, e.g. to time SN like for
    like; auto keeps the network's zero padding."""
    critic = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(8, 8, 1))
    zero_padded = copy.deepcopy(critic)
    apply_critic_norm(critic, norm, padding="circular")
    apply_critic_norm(zero_padded, norm)
    padded, unpadded = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert padded.padding_mode == "circular" and unpadded.padding_mode == "zeros"  # a 1x1 conv has nothing to wrap
    assert all(m.padding_mode == "zeros" for m in zero_padded.modules() if isinstance(m, nn.Conv2d))
    x = torch.randn(2, 3, 6, 6)
    padded.eval()
    torch.testing.assert_close(padded(x), F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), padded.weight,
                                                   padded.bias))
