"""Shapes and parameter counts of the sr recipe's networks (SAN Table 8, ESRGAN RRDBNet)."""

import pytest
import torch

from gancli.data.sr import bicubic_upsample
from gancli.nn import apply_critic_norm
from recipes.sr_nets import RRDBNet, SRCritic, SRResNetGenerator, count_parameters


def test_table8_generator_x4_shape_and_parameter_count():
    G = SRResNetGenerator(scale=4)
    # conv 3→64, 16 ResBlocks of two 64→64 convs, two conv 64→256 + PS, conv 64→64, conv 64→3
    expected = (3 * 64 * 9 + 64) + 16 * 2 * (64 * 64 * 9 + 64) + 2 * (64 * 256 * 9 + 256) \
        + (64 * 64 * 9 + 64) + (64 * 3 * 9 + 3)
    assert count_parameters(G) == expected == 1_517_571  # "1.5M" in the SAN paper
    assert G(torch.zeros(2, 3, 12, 10)).shape == (2, 3, 48, 40)


def test_table8_generator_x2_has_one_pixel_shuffle_stage():
    G = SRResNetGenerator(scale=2)
    assert len(G.upsample) == 1
    assert G(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 16, 16)


def test_generator_adds_the_bicubic_upsampled_input():
    G = SRResNetGenerator(scale=4, n_blocks=1)
    torch.nn.init.zeros_(G.to_rgb.weight)
    torch.nn.init.zeros_(G.to_rgb.bias)
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    torch.testing.assert_close(G(x), bicubic_upsample(x, 4))


def test_rrdbnet_parameter_count():
    assert count_parameters(RRDBNet(scale=4)) == 16_697_987  # ESRGAN's 16.7M (64 features, 23 RRDBs, growth 32)


@pytest.mark.parametrize("scale", [4, 2])
def test_rrdbnet_output_shape(scale):
    small = RRDBNet(scale=scale, n_blocks=1)
    assert small(torch.zeros(1, 3, 6, 5)).shape == (1, 3, 6 * scale, 5 * scale)


@pytest.mark.parametrize("hr_size", [128, 64])
def test_table8_critic_layout_and_output(hr_size):
    D = SRCritic(hr_size)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    dense = [m for m in D.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2] * 4
    assert [d.out_features for d in dense] == [100, 1]
    assert dense[0].in_features == 512 * (hr_size // 16) ** 2
    assert D(torch.zeros(3, 3, hr_size, hr_size)).shape == (3,)


@pytest.mark.parametrize("norm", ["san", "sn", "none"])
def test_critic_takes_every_norm(norm):
    D = apply_critic_norm(SRCritic(32), norm)
    out = D(torch.rand(2, 3, 32, 32))
    assert out.shape == (2,) and torch.isfinite(out).all()
    if norm == "san":
        assert all(c.padding_mode == "circular" for c in D.modules() if isinstance(c, torch.nn.Conv2d))


def test_critic_rejects_sizes_it_cannot_halve_four_times():
    with pytest.raises(ValueError):
        SRCritic(40)


def test_basicsr_x2_rrdbnet_unshuffles_its_input_and_takes_any_size():
    G = RRDBNet(scale=2, features=8, n_blocks=1, growth=4, unshuffle=2, unit=True)
    assert G.head.in_channels == 12 and len(G.up_convs) == 2  # BasicSR's ×2: unshuffled by 2, then ×4
    assert G(torch.zeros(1, 3, 7, 9)).shape == (1, 3, 14, 18)  # odd sides: reflect-padded, the output cropped


def test_sangan_generator_is_g_srgan():
    G = SRResNetGenerator(scale=4, sangan=True)
    assert G.head.kernel_size == G.to_rgb.kernel_size == (5, 5)
    assert all(block.conv1.bias is None and block.conv2.bias is None for block in G.blocks)
    x = torch.rand(1, 3, 6, 5) * 2 - 1
    with torch.no_grad():  # with the residual path silenced, what is left is the bilinear (not bicubic) skip
        for p in G.to_rgb.parameters():
            p.zero_()
        torch.testing.assert_close(G(x), torch.nn.functional.interpolate(x, scale_factor=4, mode="bilinear"))
