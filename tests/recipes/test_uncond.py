"""The uncond recipe: presets against their papers, every critic option with every architecture, truncation, errors."""

import pytest
import torch

from gancli import api
from gancli.errors import ConfigError
from gancli.nn import CRITIC_NORMS, apply_critic_norm, count_critic_updates, mark_critic_updated
from gancli.objectives import PENALTIES
from gancli.train import checkpoint as ckpt
from recipes.uncond import Uncond, UncondConfig

# Each preset's row of its paper: (arch, resolution, loss, lr, betas, n_dis, batch, steps) and what else it fixes.
PAPERS = {
    # Miyato et al. 2018 (SNGAN), ResNet CIFAR-10: hinge, SN, Adam 2e-4 (0, 0.9), n_dis 5, 50k G updates
    "sngan-cifar": ("resnet", 32, "hinge", 2e-4, (0.0, 0.9), 5, 64, 50_000, {"norm": "sn", "d_pool": "sum"}),
    # SAN paper §4.1: hinge, Adam 2e-4 (0.5, 0.9), batch 64, 200 epochs (CIFAR-10 50k, STL-10 unlabeled 100k images)
    "san-cifar": ("sndcgan", 32, "hinge", 2e-4, (0.5, 0.9), 1, 64, 156_250, {"norm": "san", "data": "cifar10:train"}),
    "san-cifar-resnet": ("resnet", 32, "hinge", 2e-4, (0.5, 0.9), 1, 64, 156_250, {"norm": "san", "d_pool": "avg"}),
    "san-stl": ("sndcgan", 48, "hinge", 2e-4, (0.5, 0.9), 1, 64, 312_500, {"norm": "san", "data": "stl10:unlabeled"}),
    "san-stl-resnet": ("resnet", 48, "hinge", 2e-4, (0.5, 0.9), 1, 64, 312_500,
                       {"norm": "san", "full_stl_critic": False}),
    # self-modulation §3.1: lr 2e-4, batch 64, 100k G steps, SN, sBN with a 32-unit MLP in Miyato's ResNet
    "selfmod-resnet-cifar": ("resnet", 32, "hinge", 2e-4, (0.5, 0.999), 1, 64, 100_000,
                             {"norm": "sn", "gen_norm": "sbn", "sbn_hidden": 32}),
    # AdaGAN: AdaGAN-3x3 (all convs adaptive, k_adaptive 3), base channels 128, SN critic, n_dis 1, batch 64
    "adagan-cifar": ("adagan", 32, "ns", 2e-4, (0.5, 0.999), 1, 64, 100_000,
                     {"norm": "sn", "adaconv_blocks": 4, "k_adaptive": 3, "adagan_channels": 128}),
    # large-scale study: ResNet19 at 128 px, NS loss, SN, setting (2e-4, 0.5, 0.999, 1), 100k critic updates
    # §4 "Metrics": FID of 3K test vs 3K generated images on CELEBA-HQ-128
    "resnet19-celeba128": ("resnet19", 128, "ns", 2e-4, (0.5, 0.999), 1, 64, 100_000, {"norm": "sn", "eval_n": 3000}),
}
STUDY = {"study-a": (2e-4, (0.5, 0.999), 1), "study-b": (1e-4, (0.5, 0.9), 5), "study-c": (2e-4, (0.5, 0.999), 5)}


@pytest.mark.parametrize("preset", list(PAPERS))
def test_preset_equals_its_paper(preset, tmp_path):
    arch, res, loss, lr, betas, n_dis, batch, steps, extra = PAPERS[preset]
    cfg = api.make_config("uncond", preset=preset, out=str(tmp_path))
    got = (cfg.arch, cfg.resolution, cfg.loss, cfg.lr_g, cfg.lr_d, tuple(cfg.betas_g), tuple(cfg.betas_d), cfg.n_dis,
           cfg.batch_size, cfg.steps)
    assert got == (arch, res, loss, lr, lr, betas, betas, n_dis, batch, steps)
    assert {k: getattr(cfg, k) for k in extra} == extra
    Uncond(cfg)  # valid for its architecture


@pytest.mark.parametrize("preset", list(STUDY))
def test_study_presets_compose_with_an_architecture(preset, tmp_path):
    # large-scale study §2: "100K [critic updates] for LSUN-BEDROOM and CELEBA-HQ-128, and 200K for CIFAR10"
    lr, betas, n_dis = STUDY[preset]
    cfg = api.make_config("uncond", preset=preset, out=str(tmp_path), arch="resnet19")
    assert (cfg.arch, cfg.resolution, cfg.lr_g, cfg.lr_d, tuple(cfg.betas_g), cfg.n_dis, cfg.batch_size, cfg.data) == (
        "resnet19", 32, lr, lr, betas, n_dis, 64, "cifar10:train")
    assert cfg.steps * cfg.n_dis == 200_000 and (cfg.loss, cfg.norm) == ("ns", "sn")
    big = api.make_config("uncond", preset=f"{preset}-128", out=str(tmp_path), arch="resnet19", data="/celeba")
    assert (big.resolution, big.steps * big.n_dis, big.lr_d, big.n_dis) == (128, 100_000, lr, n_dis)


def test_resnet19_celeba128_asks_for_the_held_out_test_images(tmp_path):
    cfg = api.make_config("uncond", preset="resnet19-celeba128", out=str(tmp_path), data="/celeba", eval_every=10)
    with pytest.raises(ConfigError, match="set eval_reference to the 3,000 CelebA-HQ-128 test images"):
        Uncond(cfg)
    cfg.eval_reference = "/celeba-test"
    Uncond(cfg)


def test_quick_stays_the_offline_default(tmp_path):
    assert api.make_config("uncond", out=str(tmp_path)).preset == "quick"


ARCHS = {"sndcgan": {}, "resnet": {}, "resnet19": {}, "adagan": {"adagan_channels": 16, "adaconv_blocks": 2}}


def one_step(arch, norm="sn", penalty="none", **extra):
    """Two critic steps of a tiny network; returns the critic's weights before and after, and the last logs."""
    torch.manual_seed(0)
    cfg = UncondConfig(arch=arch, resolution=32, width=0.0625, z_dim=8, norm=norm, penalty=penalty, device="cpu",
                       **{**ARCHS[arch], **extra})
    recipe = Uncond(cfg)
    models = recipe.build_models()
    D = apply_critic_norm(models["D"], norm)
    count_critic_updates(D)
    before = [p.detach().clone() for p in D.parameters()]
    batch = {"image": torch.rand(2, 3, 32, 32) * 2 - 1}
    opt = torch.optim.Adam(D.parameters(), 1e-2)
    for _ in range(2):
        opt.zero_grad()
        loss, logs = recipe.d_step(models, batch)
        loss.backward()
        opt.step()
        mark_critic_updated(D)
        assert torch.isfinite(loss)
    return before, [p.detach() for p in D.parameters()], logs


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("norm", list(CRITIC_NORMS))
def test_every_critic_norm_trains_with_every_architecture(arch, norm):
    before, after, _ = one_step(arch, norm=norm)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("penalty", [p for p in PENALTIES if p not in ("none", "clip")])
def test_every_penalty_trains_with_every_architecture(arch, penalty):
    _, _, logs = one_step(arch, norm="none", penalty=penalty)
    assert logs["D/penalty"] >= 0


def test_weight_clipping_runs_after_every_critic_step(tmp_path):
    cfg = api.make_config("uncond", out=str(tmp_path / "run"), steps=2, n_dis=2, norm="none", penalty="clip",
                          clip_value=0.003, width=0.0625, z_dim=8, batch_size=4, sample_every=0, eval_every=0,
                          n_samples=4, device="cpu")
    run = api.train(cfg)
    weights, _ = ckpt.load_weights(ckpt.resolve_checkpoint(run.path, None))
    values = torch.cat([w.flatten() for w in weights["D"].values() if w.is_floating_point()])
    assert values.abs().max() <= 0.003 and (values.abs() == 0.003).any()


def test_truncated_sampling_redraws_past_the_threshold():
    recipe = Uncond(UncondConfig(z_dim=8, device="cpu"))
    identity = torch.nn.Identity()
    z = recipe.sample(identity, 4000, torch.Generator().manual_seed(0), truncation=1.0)
    assert z.shape == (4000, 8) and z.abs().max() <= 1.0
    # a redrawn (truncated) normal on [-1, 1] has std 0.5396; a rescaled normal would not stay inside
    assert abs(z.std().item() - 0.5396) < 0.01
    plain = recipe.sample(identity, 4000, torch.Generator().manual_seed(0))
    assert plain.abs().max() > 3


def test_sample_and_eval_take_truncation_for_an_uncond_run(cli, tmp_path, tiny_uncond):
    result = cli("train", "uncond", "--steps", "1", "--out", tmp_path / "run", *tiny_uncond)
    assert result.exit_code == 0, result.output
    result = cli("sample", tmp_path / "run", "--n", "4", "--truncation", "0.5", "--out", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "grid.png").is_file()
    result = cli("sample", tmp_path / "run", "--n", "4", "--truncation", "-1")
    assert result.exit_code == 1 and "Error: --truncation must be a positive threshold, got -1" in result.output


def test_init_from_carries_g_and_the_critic_from_sn_to_san(cli, tmp_path, tiny_uncond, caplog):
    import logging

    from gancli.train import checkpoint as ckpt

    assert cli("train", "uncond", "--steps", "1", "--norm", "sn", "--out", tmp_path / "a", *tiny_uncond).exit_code == 0
    i = tiny_uncond.index("--width")
    others = tiny_uncond[:i] + tiny_uncond[i + 2:]  # no --width: the quick preset's 0.25 would not fit run a
    with caplog.at_level(logging.WARNING, logger="gancli.train"):
        result = cli("train", "uncond", "--steps", "1", "--norm", "san", "--init-from", tmp_path / "a",
                     "--out", tmp_path / "b", *others)
    assert result.exit_code == 0, result.output
    assert "Initialised G and D from" in caplog.text
    assert api.open_run(tmp_path / "b").cfg.width == 0.125  # the network's shape came with the run
    assert ckpt.step_dirs(tmp_path / "b")


def test_cifar10_fid_reference_is_the_10k_test_set(monkeypatch):
    """The large-scale study's protocol: FID of 10k generated images against the 10k CIFAR-10 test images."""
    seen = {}

    class Recorder:
        def __init__(self, reference, **options):
            seen.update(reference=reference, **options)

        def __call__(self, sample):
            return {}

    monkeypatch.setattr("gancli.metrics.generative.evaluator.GeneratorEvaluator", Recorder)
    Uncond(UncondConfig(data="cifar10:train", device="cpu")).evaluate(torch.nn.Identity())
    assert seen["reference"] == "cifar10:test" and seen["n"] == 10_000


@pytest.mark.parametrize("args,message", [
    (["--arch", "vgg"], "Recipe 'uncond' has architectures sndcgan, resnet, resnet19, adagan, not 'vgg'."),
    (["--arch", "resnet19", "--resolution", "64"],
     "Architecture 'resnet19' needs a resolution of 128 (the study's Table 5) or 32 (its ResNet CIFAR, Table 7), "
     "got 64."),
    (["--arch", "resnet", "--resolution", "40"],
     "Architecture 'resnet' needs a resolution of 32 (SAN Table 5) or a multiple of 16 from 48 (Table 6, "
     "Mg = resolution/8), got 40."),
    (["--resolution", "20"], "Architecture 'sndcgan' needs a resolution of a multiple of 8 of at least 16"),
    (["--gen-norm", "in"], "'gen_norm' must be one of bn, sbn, none, got 'in'."),
    (["--arch", "adagan", "--adaconv-blocks", "5"], "'adaconv_blocks' must be 1, 2, 3 (AdaGAN-1/2/3) or 4"),
    (["--arch", "adagan", "--k-adaptive", "4"], "'k_adaptive' must be 3 or 5 (the AdaGAN paper's), got 4."),
    (["--d-pool", "max"], "'d_pool' must be avg (SAN Tables 5-6) or sum (Miyato et al.), got 'max'."),
    (["--penalty", "clip", "--clip-value", "0"], "'clip_value' must be a positive number, got 0.0."),
    (["--norm", "gn"], "Unknown critic normalization 'gn'; choose one of: none, sn, san, sn-exact, wn, bn, ln."),
])
def test_bad_uncond_input_is_one_line_and_exit_1(cli, tmp_path, args, message):
    result = cli("train", "uncond", "--steps", "1", "--out", tmp_path / "r", *args)
    assert result.exit_code == 1, result.output
    assert "Error: " in result.output and message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "r" / "config.toml").exists()


def test_quick_preset_critic_follows_its_measurement_and_norm_san_is_the_papers():
    """Issue 28 §4: the quick preset trains SAN with g 1.5 (study uncond-quick-critic-cpu); a named norm drops it."""
    quick = api.make_config("uncond", out="-")
    assert (quick.norm, quick.norm_gain, quick.critic_padding) == ("san", 1.5, "auto")
    for given in ({"norm": "san"}, {"sets": {"norm": "san"}}):
        paper = api.make_config("uncond", out="-", **given)
        assert (paper.norm, paper.norm_gain, paper.steps, paper.width) == ("san", 0.0, 1200, 0.25)  # eq. 9: g 1
    assert api.make_config("uncond", out="-", norm="sn").norm_gain == 0.0
    assert api.make_config("uncond", preset="san-cifar", out="-").norm_gain == 0.0


def test_a_run_saved_with_the_retired_dragan_c_still_opens(tmp_path):
    """dragan_c (Kodali et al.'s noise variance) left with the large-scale study's DRAGAN; old runs hold it."""
    from gancli.config import save_toml
    from gancli.runs import open_run

    cfg = api.make_config("uncond", out=str(tmp_path / "old"), sets={"penalty": "dragan"})
    (tmp_path / "old").mkdir()
    save_toml(cfg, tmp_path / "old" / "config.toml")
    path = tmp_path / "old" / "config.toml"
    path.write_text(path.read_text().replace('penalty = "dragan"', 'penalty = "dragan"\ndragan_c = 10.0'))
    assert "dragan_c" in path.read_text()
    assert open_run(tmp_path / "old").cfg.penalty == "dragan"
