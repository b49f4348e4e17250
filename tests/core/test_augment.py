"""Differentiable augmentation of the critic's inputs: DiffAugment's ops, the critic hook, ADA's controller."""

import pytest
import torch
from torch import nn

from gancli import api
from gancli.errors import ConfigError
from gancli.train import distributed
from gancli.train.augment import ChannelMeanSaturation, CriticAugmentation, ImageMeanContrast, diffaugment


def images(n=4, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_diffaugment_is_differentiable_per_image_and_repeatable():
    x = images().requires_grad_(True)
    out = CriticAugmentation("diffaug")(x)
    assert out.shape == x.shape
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    twins = images(1).expand(2, -1, -1, -1)  # the same image twice in one call: each draws its own parameters
    torch.manual_seed(1)
    a = CriticAugmentation("diffaug")(twins)
    assert not torch.equal(a[0], a[1])
    torch.manual_seed(1)  # the parameters come from torch's generator: the same state gives the same augmentation
    assert torch.equal(CriticAugmentation("diffaug")(twins), a)


def test_each_diffaugment_op_passes_gradients():
    for policy in (["color"], ["translation"], ["cutout"]):
        x = images().requires_grad_(True)
        diffaugment(policy)(x).sum().backward()
        assert x.grad.abs().sum() > 0, policy


def test_colour_ops_are_zhao_et_al_definitions():
    x = images()
    saturation = ChannelMeanSaturation((0.0, 2.0))
    out = saturation(x)
    f = saturation._params["saturation_factor"][:, None, None, None]
    mean = x.mean(dim=1, keepdim=True)
    assert torch.allclose(out, (x - mean) * f + mean, atol=1e-6)
    contrast = ImageMeanContrast((0.5, 1.5))
    out = contrast(x)
    f = contrast._params["contrast_factor"][:, None, None, None]
    assert ((f >= 0.5) & (f <= 1.5)).all()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(out, (x - mean) * f + mean, atol=1e-6)


def test_translation_shifts_whole_pixels_and_fills_zeros():
    x = images(8, 16) * 0.5 + 0.6  # no zeros in the input: a zero in the output was shifted in
    out = diffaugment(["translation"])(x)
    for original, moved in zip(x, out):
        matches = []
        for dy in range(-2, 3):  # 1/8 of 16 px
            for dx in range(-2, 3):
                shifted = torch.zeros_like(original)
                ys, yd = slice(max(0, -dy), 16 - max(0, dy)), slice(max(0, dy), 16 - max(0, -dy))
                xs, xd = slice(max(0, -dx), 16 - max(0, dx)), slice(max(0, dx), 16 - max(0, -dx))
                shifted[:, yd, xd] = original[:, ys, xs]
                matches.append(torch.allclose(moved, shifted, atol=1e-5))
        assert any(matches)


def test_hook_augments_every_critic_call_in_d_and_g_steps(tmp_path, monkeypatch):
    from gancli.train.trainer import Trainer
    from recipes import get_recipe

    cfg = api.make_config("uncond", out=str(tmp_path / "r"), resolution=16, width=0.125, batch_size=2, z_dim=4,
                          steps=1, device="cpu", augment="diffaug", log_every=0, sample_every=0, eval_every=0)
    trainer = Trainer(get_recipe("uncond")(cfg), tmp_path / "r")
    seen = []
    call = CriticAugmentation.__call__
    monkeypatch.setattr(CriticAugmentation, "__call__", lambda self, x: seen.append(x.requires_grad) or call(self, x))
    from gancli.data.stream import batch_stream

    trainer.iteration(batch_stream(trainer.dataset, cfg.batch_size, cfg.seed, 0, 0))
    # D step: real, fake (no grad to G); G step: fake, with the gradient flowing back to G through the ops
    assert seen == [False, False, True]
    plain = Trainer(get_recipe("uncond")(api.make_config("uncond", out=str(tmp_path / "p"), resolution=16,
                                                         width=0.125, z_dim=4, device="cpu")), tmp_path / "p")
    assert trainer.models["D"].state_dict().keys() == plain.models["D"].state_dict().keys()  # checkpoints fit both


def constant_critic(value: float) -> nn.Module:
    class Critic(nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0],), value) + 0 * x.sum()

    return Critic()


def ada_steps(critic_value: float, start_p: float, interval_count: int) -> CriticAugmentation:
    ada = CriticAugmentation("ada", target=0.6, interval=2, kimg=1.0, images_per_step=100)  # p_step = 0.2
    ada.p = start_p
    critic = constant_critic(critic_value)
    ada.attach(critic)
    world = distributed.world_from_env()
    for _ in range(2 * interval_count):
        batch = {"image": images(2)}
        ada.watch(batch, critic_step=True)
        critic(batch["image"])  # the real images, as given
        critic(images(2, seed=1))  # fakes: not counted
        ada.after_critic_step(world, torch.device("cpu"))
    return ada


def test_ada_raises_p_when_the_critic_overfits_and_lowers_it_otherwise():
    assert ada_steps(+1.0, 0.0, 3).p == pytest.approx(0.6)  # E[sign D(real)] = 1 > 0.6: more augmentation
    assert ada_steps(+1.0, 0.9, 3).p == 1.0  # clamped
    lowered = ada_steps(-1.0, 0.5, 2)  # = -1 < 0.6: less
    assert lowered.p == pytest.approx(0.1) and lowered.rt == -1.0
    assert ada_steps(-1.0, 0.1, 2).p == 0.0
    assert lowered.logs() == {"augment/p": pytest.approx(0.1), "augment/rt": -1.0}


def test_ada_step_size_is_karras_et_al():
    ada = CriticAugmentation("ada", interval=4, kimg=500, images_per_step=64)
    assert ada.p_step == pytest.approx(64 * 4 / 500_000)  # 0 to 1 in 500k images


def test_ada_applies_p_and_its_state_round_trips():
    ada = ada_steps(+1.0, 0.0, 1)
    x = images(64).requires_grad_(True)
    ada.p = 0.0
    assert ada(x) is x  # p = 0: no work at all
    ada.p = 1.0
    out = ada(x)
    out.sum().backward()
    assert not torch.equal(out, x) and x.grad.abs().sum() > 0
    fresh = CriticAugmentation("ada")
    fresh.load_state_dict(ada.state_dict())
    assert fresh.state_dict() == ada.state_dict()


def test_ada_says_when_the_critic_never_sees_the_batch_as_given():
    ada = CriticAugmentation("ada", interval=1)
    critic = constant_critic(1.0)
    ada.attach(critic)
    batch = {"image": images(2)}
    ada.watch(batch, critic_step=True)
    critic(batch["image"] * 1.0)  # a copy: not recognisable as the batch's real images
    with pytest.raises(ConfigError, match="never passes them to the critic as given"):
        ada.after_critic_step(distributed.world_from_env(), torch.device("cpu"))


def test_a_critic_that_does_not_take_rgb_images_first_is_refused():
    augment = CriticAugmentation("diffaug")
    critic = nn.Conv2d(5, 1, 3)  # e.g. a label map concatenated to the image
    augment.attach(critic)
    with pytest.raises(ConfigError, match=r"first argument is an RGB image batch \(N, 3, H, W\)"):
        critic(torch.zeros(2, 5, 8, 8))


@pytest.mark.parametrize("recipe", ["sr", "spade", "stargan"])
def test_recipes_that_must_not_augment_refuse_in_one_sentence(cli, tmp_path, recipe):
    result = cli("train", recipe, "--out", tmp_path / recipe, "--augment", "diffaug", "--device", "cpu")
    assert result.exit_code == 1
    assert f"Recipe '{recipe}' does not augment its critic's inputs" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / recipe).exists()


def test_unknown_augment_is_refused(cli, tmp_path, tiny_uncond):
    result = cli("train", "uncond", "--out", tmp_path / "r", "--augment", "mixup", *tiny_uncond)
    assert result.exit_code == 1 and "'augment' must be one of none, diffaug, ada" in result.stderr
    result = cli("train", "uncond", "--out", tmp_path / "r", "--augment", "diffaug", "--diffaug-policy", "color,flip",
                 *tiny_uncond)
    assert result.exit_code == 1 and "'diffaug_policy' names one or more of color" in result.stderr
    result = cli("train", "uncond", "--out", tmp_path / "r", "--ada-target", "1.5", *tiny_uncond)
    assert result.exit_code == 1 and "'ada_target' must be in (0, 1)" in result.stderr
    result = cli("train", "uncond", "--out", tmp_path / "r", "--ckpt-minutes", "-1", *tiny_uncond)
    assert result.exit_code == 1 and "'ckpt_minutes' must not be negative" in result.stderr
    assert not (tmp_path / "r").exists()
