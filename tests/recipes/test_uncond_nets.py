"""The uncond networks against their papers' tables; self-modulation, AdaConvBlock and the critic's bn / ln."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gancli.nn.adaconv import AdaConvBlock
from gancli.nn.critic_layers import NormSlot, insert_activation_norms
from gancli.nn.modulation import SelfModulatedBatchNorm
from recipes import uncond_nets as nets


def count(module):
    return sum(p.numel() for p in module.parameters())


def conv(k, a, b):
    return k * k * a * b + b


def dense(a, b):
    return a * b + b


def bn(c):
    return 2 * c


def test_san_stl_critic_has_the_papers_parameter_counts():
    """SAN §4.1: removing Miyato et al.'s last critic block cuts the STL-10 critic from 19.5M to 4.8M parameters."""
    assert round(count(nets.ResNetCritic(48, full_stl=True)) / 1e6, 1) == 19.5
    assert 4.8e6 <= count(nets.ResNetCritic(48)) < 4.9e6  # 4.86M; the paper truncates to 4.8M


def test_sndcgan_counts_follow_san_table_4():
    g = (dense(128, 4 * 4 * 512) + bn(512) + sum(conv(3, a, b) + bn(b) for a, b in ((512, 256), (256, 128), (128, 64)))
         + conv(3, 64, 3))
    plan = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512)]
    d = sum(conv(3, a, b) for a, b in plan) + dense(512 * 4 * 4, 1)
    assert count(nets.SNDCGANGenerator(32)) == g
    assert count(nets.SNDCGANCritic(32)) == d


def test_resnet_cifar_counts_follow_san_table_5():
    up_block = bn(256) + conv(3, 256, 256) + bn(256) + conv(3, 256, 256) + conv(1, 256, 256)
    g = dense(128, 4 * 4 * 256) + 3 * up_block + bn(256) + conv(3, 256, 3)
    first = conv(3, 3, 128) + conv(3, 128, 128) + conv(1, 3, 128)
    down = 2 * conv(3, 128, 128) + conv(1, 128, 128)
    d = first + down + 2 * (2 * conv(3, 128, 128)) + dense(128, 1)
    assert count(nets.ResNetGenerator(32)) == g
    assert count(nets.ResNetCritic(32)) == d


def test_resnet19_counts_follow_the_study_tables_5_and_6():
    def block(a, b, norms):  # Table 6: two 3x3 convs (hidden c_out) and a 3x3 conv shortcut
        return conv(3, a, b) + conv(3, b, b) + conv(3, a, b) + (bn(a) + bn(b) if norms else 0)

    g_plan = [512, 512, 256, 256, 128, 64]
    g = dense(128, 16 * 512) + sum(block(a, b, True) for a, b in zip(g_plan, g_plan[1:])) + bn(64) + conv(3, 64, 3)
    d_plan = [3, 64, 128, 256, 256, 512, 512]
    d = sum(block(a, b, False) for a, b in zip(d_plan, d_plan[1:])) + dense(512, 1)
    assert count(nets.Resnet19Generator(128)) == g
    assert count(nets.Resnet19Critic(128)) == d


@pytest.mark.parametrize("make_g,res", [
    (lambda norm: nets.SNDCGANGenerator(32, 16, 0.0625, norm=norm, sbn_hidden=8), 32),
    (lambda norm: nets.ResNetGenerator(48, 16, 0.0625, norm=norm, sbn_hidden=8), 48),
    (lambda norm: nets.Resnet19Generator(32, 16, 0.0625, norm=norm, sbn_hidden=8), 32),
    (lambda norm: nets.AdaGANGenerator(16, 16, 16, 2, 3, norm=norm, sbn_hidden=8), 16),
])
def test_self_modulation_depends_on_z_and_changes_only_the_norm_layers(make_g, res):
    torch.manual_seed(0)
    g_bn, g_sbn, g_none = make_g("bn"), make_g("sbn"), make_g("none")
    sbn_layers = [name for name, m in g_sbn.named_modules() if isinstance(m, SelfModulatedBatchNorm)]
    bn_layers = [name for name, m in g_bn.named_modules() if isinstance(m, nets.PlainNorm)]
    assert sbn_layers and sbn_layers == bn_layers  # every BN of the generator, and nothing else, is modulated

    def outside(model):
        return {k: v.shape for k, v in model.state_dict().items() if not any(k.startswith(n + ".") for n in sbn_layers)}

    assert outside(g_bn) == outside(g_sbn) == outside(g_none)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in g_none.modules())

    z1, z2 = torch.randn(1, 16), torch.randn(1, 16)
    for name in sbn_layers:
        layer = dict(g_sbn.named_modules())[name]
        assert layer.hidden.out_features == 8
        h1, h2 = torch.relu(layer.hidden(z1)), torch.relu(layer.hidden(z2))
        assert not torch.allclose(layer.gamma(h1), layer.gamma(h2)) and not torch.allclose(layer.beta(h1), layer.beta(h2))
        torch.testing.assert_close(layer.gamma.bias, torch.ones_like(layer.gamma.bias))  # γ starts around 1
    assert g_sbn(torch.randn(3, 16)).shape == (3, 3, res, res)


@pytest.mark.parametrize("k_adaptive", [3, 5])
def test_adaconv_block_equals_a_per_pixel_loop(k_adaptive):
    torch.manual_seed(0)
    c_in, c_out, k, size = 2, 3, 3, 5
    block = AdaConvBlock(c_in, c_out, k, k_adaptive).double()
    for regressor in (block.weight_regressor, block.bias_regressor):  # depthwise separable, depth multiplier 1
        assert regressor.depthwise.groups == regressor.depthwise.out_channels == c_in
        assert regressor.depthwise.kernel_size == (k_adaptive, k_adaptive)
    assert block.weight_regressor.pointwise.out_channels == k * k * c_in * c_out
    x = torch.randn(2, c_in, size, size, dtype=torch.float64)
    kernels = torch.relu(block.weight_regressor(x)).view(2, c_out, c_in, k, k, size, size)
    biases = block.bias_regressor(x)
    padded = F.pad(x, (1, 1, 1, 1))
    expected = torch.zeros(2, c_out, size, size, dtype=torch.float64)
    for b in range(2):
        for y in range(size):
            for xx in range(size):
                window = padded[b, :, y:y + k, xx:xx + k]
                for o in range(c_out):
                    expected[b, o, y, xx] = (kernels[b, o, :, :, :, y, xx] * window).sum() + biases[b, o, y, xx]
    torch.testing.assert_close(block(x), expected)
    assert (kernels >= 0).all()  # the regressed kernels pass a ReLU, the biases do not
    assert (biases < 0).any()


@pytest.mark.parametrize("adaptive", [1, 2, 3, 4])
def test_adagan_replaces_the_first_convolutions(adaptive):
    g = nets.AdaGANGenerator(16, 8, 16, adaptive, 3)
    kinds = [isinstance(c, AdaConvBlock) for c in g.convs]
    assert kinds == [True] * adaptive + [False] * (4 - adaptive)
    assert not any(isinstance(m, nn.BatchNorm2d) for c in g.convs for m in c.modules())  # no BN inside
    assert g(torch.randn(2, 8)).shape == (2, 3, 16, 16)


def test_critic_bn_and_ln_fill_the_slots_or_follow_every_conv_but_the_first():
    critic = insert_activation_norms(nets.Resnet19Critic(32, 0.0625), "bn")
    assert not any(isinstance(m, NormSlot) for m in critic.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in critic.modules()) == 8  # two per block, before each ReLU
    plain = insert_activation_norms(nets.SNDCGANCritic(32, 0.0625), "ln")
    norms = [m for m in plain.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 6 and all(m.num_groups == 1 for m in norms)
    assert isinstance(plain.features[0], nn.Conv2d)  # the input layer is left alone
    h = torch.randn(2, 8, 4, 4) * 3 + 1
    out = norms[0](h)  # layer norm: each sample over (C, H, W)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
