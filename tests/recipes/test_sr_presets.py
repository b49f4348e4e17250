"""Each sr preset against its paper (SAN §4.3 + Table 8; ESRGAN §4.1), the [0, 1] pixel losses against a hand
computation, and ESRGAN's VGG-style 128 px critic layer by layer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gancli import api
from gancli.config import apply_overrides
from gancli.data.sr import BuiltinPhotos, SRCrops
from gancli.nn import apply_critic_norm
from gancli.objectives.perceptual import IMAGENET_MEAN, IMAGENET_STD, VGGFeatureLoss, vgg19_features
from recipes.sr import SRConfig, SuperResolution, build_critic, pixel_loss
from recipes.sr_nets import RRDBNet, SRCritic, SRResNetGenerator, VGGStyleCritic, count_parameters

# SAN paper §4.3 and Table 8. Not from the paper: crop_augment = dihedral (it names random crops + horizontal flips;
# a documented deviation, --crop-augment hflip gives the paper's), and the Table 8 critic (8 convs) where §4.3's text
# says 10 convolutional layers.
SAN_PAPER = {
    "arch": "srresnet", "critic": "table8", "norm": "san", "loss": "hinge",
    "lambda_content": 1e-2, "lambda_perceptual": 1.0, "perceptual": "vgg19",
    "lambda_adv": 1e-1,  # the paper's other option, 1e-2, is --lambda-adv 1e-2
    "pretrain_loss": "mse",  # "initialized to those of a pre-trained model optimized to minimize mean squared error"
    "lr_g": 2e-4, "lr_d": 2e-4, "betas_g": [0.5, 0.9], "betas_d": [0.5, 0.9], "n_dis": 1,
    "batch_size": 32, "hr_size": 128, "scale": 4, "steps": 400_000, "ema": False,
    "lr_schedule": "multistep", "lr_gamma": 0.5, "adversarial": True,
}
SAN_PAPER_HALVINGS = [50_000, 100_000, 200_000, 300_000]  # 12.5, 25, 50 and 75 % of 400k

# ESRGAN §4.1 (Adam β2 = 0.999 as the paper says; BasicSR's train_ESRGAN_x4.yml uses 0.99), VGG-style critic with
# batch norm and no other normalization (BasicSR's VGGStyleDiscriminator128), flips + 90° rotations (§4.2).
ESRGAN = {
    "arch": "rrdb", "critic": "vgg128", "norm": "none", "loss": "ra",
    "lambda_content": 1e-2, "lambda_perceptual": 1.0, "perceptual": "vgg19", "lambda_adv": 5e-3,
    "pretrain_loss": "l1", "lr_g": 1e-4, "lr_d": 1e-4, "betas_g": [0.9, 0.999], "betas_d": [0.9, 0.999],
    "n_dis": 1, "batch_size": 16, "hr_size": 128, "scale": 4, "steps": 400_000, "ema": False,
    "lr_schedule": "multistep", "lr_gamma": 0.5, "crop_augment": "dihedral", "adversarial": True,
}
ESRGAN_HALVINGS = [50_000, 100_000, 200_000, 300_000]

# ESRGAN's PSNR-oriented model: L1, lr 2e-4 halved every 200k updates, batch 16, 128 px (1M steps: BasicSR)
PRETRAIN_ESRGAN = {"arch": "rrdb", "adversarial": False, "pretrain_loss": "l1", "lr_g": 2e-4,
                   "betas_g": [0.9, 0.999], "batch_size": 16, "hr_size": 128, "lr_schedule": "multistep",
                   "lr_gamma": 0.5, "crop_augment": "dihedral"}
PRETRAIN_ESRGAN_HALVINGS = [200_000, 400_000, 600_000, 800_000]

# The SAN paper's initialisation: the same SRResNet trained for MSE (nothing else is given)
PRETRAIN_SAN = {"arch": "srresnet", "adversarial": False, "pretrain_loss": "mse"}


def _preset(name: str) -> SRConfig:
    return api.make_config("sr", preset=name, out="x")


def _halvings(cfg: SRConfig) -> list[int]:
    return [round(m * cfg.steps) for m in cfg.lr_milestones]


@pytest.mark.parametrize("preset,paper,halvings", [
    ("san-paper", SAN_PAPER, SAN_PAPER_HALVINGS),
    ("esrgan", ESRGAN, ESRGAN_HALVINGS),
    ("pretrain-esrgan", PRETRAIN_ESRGAN, PRETRAIN_ESRGAN_HALVINGS),
    ("pretrain-san", PRETRAIN_SAN, None),
])
def test_preset_equals_its_paper(preset, paper, halvings):
    cfg = _preset(preset)
    assert {key: getattr(cfg, key) for key in paper} == paper
    if halvings is not None:
        assert _halvings(cfg) == halvings


def test_san_paper_deviations_are_the_documented_two():
    cfg = _preset("san-paper")
    assert cfg.crop_augment == "dihedral" and len(SRCritic.PLAN) == 8
    import recipes.sr

    text = " ".join(recipes.sr.__doc__.split())
    assert '"10 convolutional layers"' in text and "--crop-augment hflip" in text


def test_presets_build_their_papers_networks():
    san = SuperResolution(_preset("san-paper"))
    assert isinstance(build_critic(san.cfg), SRCritic)
    assert isinstance(san.build_models()["G"], SRResNetGenerator)
    esrgan = SuperResolution(apply_overrides(_preset("esrgan"), {"n_blocks": 1, "hr_size": 64}, "test"))
    models = esrgan.build_models()
    assert isinstance(models["G"], RRDBNet) and isinstance(models["D"], VGGStyleCritic)
    pretrain = SuperResolution(_preset("pretrain-esrgan"))
    assert pretrain.cfg.arch == _preset("esrgan").arch  # so --init-from fits the esrgan run
    assert not pretrain.critic_active(0) and pretrain.best_metric == ("psnr_y", "max")


def test_quick_keeps_the_content_weight_it_had_on_minus_one_one():
    cfg = _preset("quick")
    # the old quick preset weighted L1 on [-1, 1] by 1.0: the same gradient is 2.0 × L1 on [0, 1]
    assert cfg.lambda_content == 2.0 and cfg.lambda_adv == 1e-2 and cfg.norm == "san" and cfg.critic == "table8"


# ---- content losses on [0, 1] -----------------------------------------------------------------

# two 2x2 one-channel images in [0, 1]; |a - b| = 0.5, 0, 0.5, 0.25
A01 = torch.tensor([[0.0, 0.25], [0.5, 1.0]]).view(1, 1, 2, 2)
B01 = torch.tensor([[0.5, 0.25], [0.0, 0.75]]).view(1, 1, 2, 2)
L1_BY_HAND = (0.5 + 0 + 0.5 + 0.25) / 4  # 0.3125
MSE_BY_HAND = (0.25 + 0 + 0.25 + 0.0625) / 4  # 0.140625


def test_pixel_losses_are_measured_on_zero_one_images():
    a, b = A01 * 2 - 1, B01 * 2 - 1  # the recipe's images live in [-1, 1]
    assert pixel_loss("l1", a, b).item() == pytest.approx(L1_BY_HAND)
    assert pixel_loss("mse", a, b).item() == pytest.approx(MSE_BY_HAND)


class _Fixed(nn.Module):
    """A stand-in network that returns a fixed tensor (and has a parameter, so it trains)."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out, self.zero = out, nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.out.expand(x.shape[0], *self.out.shape[1:]) + self.zero


@pytest.mark.parametrize("preset,pretrain_key,pretrain_value", [("san-paper", "G/mse", MSE_BY_HAND),
                                                                 ("esrgan", "G/l1", L1_BY_HAND)])
def test_g_step_uses_the_papers_pretraining_loss_and_weights(preset, pretrain_key, pretrain_value):
    cfg = apply_overrides(_preset(preset), {"pretrain_steps": 1, "perceptual": "none"}, "test")
    recipe = SuperResolution(cfg)
    sr, hr = (A01 * 2 - 1).expand(1, 3, 2, 2), (B01 * 2 - 1).expand(1, 3, 2, 2)
    models = {"G": _Fixed(sr), "D": _Fixed(torch.zeros(1))}  # a critic that says 0 to everything
    batch = {"lr": torch.zeros(1, 3, 1, 1), "hr": hr}
    recipe.step = 0  # pretraining phase: the pixel loss alone
    loss, logs = recipe.g_step(models, batch)
    assert loss.item() == pytest.approx(pretrain_value) and logs == {pretrain_key: pytest.approx(pretrain_value)}
    recipe.step = 1  # adversarial phase: λ_content · L1 on [0, 1] + λ_adv · adversarial
    loss, logs = recipe.g_step(models, batch)
    adv = {"hinge": 0.0, "ra": math.log(2)}[cfg.loss]  # all logits 0: hinge -0; ra ½(softplus 0 + softplus 0)
    assert logs["G/l1"] == pytest.approx(L1_BY_HAND) and logs["G/adv"] == pytest.approx(adv)
    assert loss.item() == pytest.approx(cfg.lambda_content * L1_BY_HAND + cfg.lambda_adv * adv)


def test_vgg_loss_sees_zero_one_images_normalised_for_imagenet(tmp_path):
    torch.manual_seed(0)
    layers = vgg19_features()[:3]  # conv1_1, ReLU, conv1_2: a torchvision-shaped state dict, random weights
    torch.save({f"features.{k}": v for k, v in layers.state_dict().items()}, tmp_path / "vgg19.pth")
    vgg = VGGFeatureLoss(tmp_path / "vgg19.pth", layer=2)
    x01 = torch.rand(1, 3, 8, 8)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    by_hand = F.conv2d(F.relu(F.conv2d((x01 - mean) / std, layers[0].weight, layers[0].bias, padding=1)),
                       layers[2].weight, layers[2].bias, padding=1)  # conv1_2 before its ReLU
    torch.testing.assert_close(vgg.extract(x01 * 2 - 1), by_hand)


# ---- ESRGAN's critic ----------------------------------------------------------------------------


def test_vgg128_critic_layer_plan_and_parameter_count():
    D = VGGStyleCritic(128)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    assert [c.kernel_size[0] for c in convs] == [3, 4] * 5 and [c.stride[0] for c in convs] == [1, 2] * 5
    assert [c.bias is not None for c in convs] == [True] + [False] * 9  # a bias only where no BN follows
    layers = list(D.features)
    after = [type(layers[layers.index(c) + 1]).__name__ for c in convs]
    assert after == ["LeakyReLU"] + ["BatchNorm2d"] * 9
    assert {m.negative_slope for m in D.modules() if isinstance(m, nn.LeakyReLU)} == {0.2}
    dense = [m for m in D.modules() if isinstance(m, nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(512 * 4 * 4, 100), (100, 1)]
    conv_weights = 3 * 64 * 9 + 64 + 64 * 64 * 16 + 64 * 128 * 9 + 128 * 128 * 16 + 128 * 256 * 9 \
        + 256 * 256 * 16 + 256 * 512 * 9 + 512 * 512 * 16 + 512 * 512 * 9 + 512 * 512 * 16
    batch_norms = 2 * (64 + 128 + 128 + 256 + 256 + 512 * 4)
    expected = conv_weights + batch_norms + (512 * 16 * 100 + 100) + (100 + 1)
    assert count_parameters(D) == expected == 14_499_401
    assert D(torch.zeros(2, 3, 128, 128)).shape == (2,)


@pytest.mark.parametrize("norm", ["san", "sn", "none"])
def test_vgg128_critic_takes_every_norm(norm):
    D = apply_critic_norm(VGGStyleCritic(64), norm)
    out = D(torch.rand(2, 3, 64, 64))
    assert out.shape == (2,) and torch.isfinite(out).all()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == 9  # batch norm stays under any norm
    if norm == "san":
        assert all(c.padding_mode == "circular" for c in D.modules() if isinstance(c, nn.Conv2d))


def test_vgg128_critic_rejects_sizes_it_cannot_halve_five_times():
    with pytest.raises(ValueError):
        VGGStyleCritic(48)


def test_vgg128_critic_smallest_side_is_the_one_its_strides_bring_to_2x2():
    """BasicSR's VGGStyleDiscriminator: five stride-2 convs (32×), batch norm after each conv but the first."""
    assert VGGStyleCritic.smallest_side() == 64
    VGGStyleCritic(64)(torch.rand(1, 3, 64, 64))  # 2×2 at the last batch norm: one image is enough
    with pytest.raises(ValueError, match="at least 64"):
        VGGStyleCritic(32)


# ---- augmentation ---------------------------------------------------------------------------------


def test_hflip_augment_only_mirrors_left_right_and_dihedral_does_more():
    images = BuiltinPhotos("train")
    plain, hflip, dihedral = (SRCrops(images, 32, augment=a) for a in ("none", "hflip", "dihedral"))
    mirrored = beyond = 0
    for seed in range(12):
        base = plain[(0, seed)]["hr"]
        flipped = hflip[(0, seed)]["hr"]
        assert torch.equal(flipped, base) or torch.equal(flipped, base.flip(-1))
        mirrored += not torch.equal(flipped, base)
        other = dihedral[(0, seed)]["hr"]
        beyond += not (torch.equal(other, base) or torch.equal(other, base.flip(-1)))
    assert 0 < mirrored < 12 and beyond > 0


def test_runs_saved_with_a_boolean_augment_still_open():
    cfg = apply_overrides(SRConfig(), {"augment": True}, "an old config.toml")  # stored as the string "True"
    assert SuperResolution(cfg).cfg.crop_augment == "dihedral"
    cfg = apply_overrides(SRConfig(), {"augment": False}, "an old config.toml")
    assert SuperResolution(cfg).cfg.crop_augment == "none" and cfg.augment == "none"
