"""BigGAN recipe: network shapes, truncation, orthogonal regularization, standing statistics, sampling, telemetry."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from gancli import api
from gancli.errors import ConfigError, DataError
from gancli.nn.attention import SelfAttention
from gancli.nn.latent import truncated_normal
from gancli.objectives import orthogonal_regularization
from recipes.biggan import CLASS_EMBEDDINGS, BigGAN, BigGANConfig
from recipes.biggan_nets import D_PLANS, G_PLANS, Critic, Generator

TINY = ["--ch", "2", "--z-dim", "16", "--batch-size", "4", "--steps", "2", "--log-every", "1", "--sample-every", "0",
        "--eval-every", "0", "--ckpt-every", "1", "--n-samples", "4", "--standing-passes", "2", "--device", "cpu",
        "--telemetry-every", "1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from typer.testing import CliRunner

    from gancli.cli import app

    out = tmp_path_factory.mktemp("biggan") / "run"
    result = CliRunner().invoke(app, ["train", "biggan", *TINY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


# ---- networks ------------------------------------------------------------------------------------------------
def test_table4_plan_and_hierarchical_z_at_128px():
    assert [c_in for c_in, _ in G_PLANS[128]] + [G_PLANS[128][-1][1]] == [16, 16, 8, 4, 2, 1]  # Table 4 (a)
    assert [c_out for _, c_out, _ in D_PLANS[128]] == [1, 2, 4, 8, 16, 16]  # Table 4 (b)
    assert [down for *_, down in D_PLANS[128]] == [True] * 5 + [False]
    G = Generator(128, ch=4, z_dim=120, num_classes=5, shared_dim=128, hier=True, attention=64)
    assert (G.slots, G.chunk) == (6, 20)  # 120 = one chunk for the dense layer + one per ResBlock
    assert G.dense.in_features == 20 and G.dense.out_features == 4 * 4 * 16 * 4
    assert G.blocks[0].bn1.gain.in_features == 128 + 20  # shared embedding ++ z chunk
    attention = [i for i, b in enumerate(G.blocks) if isinstance(b, SelfAttention)]
    assert attention == [4]  # after the fourth up-block: the 64×64 stage
    assert G(torch.randn(2, 120), torch.tensor([0, 4])).shape == (2, 3, 128, 128)


@pytest.mark.parametrize("shared_dim, hier, gen_norm, cond_dim", [
    (8, True, "cbn", 8 + 4), (8, False, "cbn", 8), (0, False, "cbn", 10), (8, True, "self-mod", 4),
])
def test_conditioning_shapes(shared_dim, hier, gen_norm, cond_dim):
    G = Generator(32, ch=2, z_dim=16, num_classes=10, shared_dim=shared_dim, hier=hier, attention=16,
                  gen_norm=gen_norm)
    bn = G.blocks[0].bn1
    first = bn.gain if gen_norm == "cbn" else bn.hidden
    assert (first.num_embeddings if shared_dim == 0 else first.in_features) == cond_dim
    assert (G.shared is not None) == (shared_dim > 0) if gen_norm == "cbn" else hasattr(G, "compose")
    z, y = torch.randn(3, 16), torch.tensor([0, 5, 9])
    assert G(z, y).shape == (3, 3, 32, 32)
    code = G.class_code(y)
    assert torch.equal(G.generate(z, code), G(z, y))  # forward is generate of the class code
    D = Critic(32, ch=2, num_classes=10, attention=16)
    assert D(G(z, y), y).shape == (3,)


def test_self_attention_is_identity_at_start_and_follows_its_formula():
    layer = SelfAttention(16)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(layer(x), x)
    with torch.no_grad():
        layer.gamma.fill_(1.0)
    theta = layer.theta(x).flatten(2)
    phi = nn.functional.max_pool2d(layer.phi(x), 2).flatten(2)
    g = nn.functional.max_pool2d(layer.g(x), 2).flatten(2)
    beta = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # (B, HW, HW/4)
    expected = x + layer.o((g @ beta.transpose(1, 2)).view(2, 8, 8, 8))
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_sync_batchnorm_conversion_reaches_the_plain_bns_inside_cbn():
    G = Generator(32, ch=2, z_dim=16, num_classes=10, shared_dim=8, attention=0)
    keys = set(G.state_dict())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(G)
    kinds = [type(m) for m in converted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert kinds and all(kind is nn.SyncBatchNorm for kind in kinds)
    assert len(kinds) == 2 * 3 + 1  # two cBNs per block, and the output BN
    assert set(converted.state_dict()) == keys  # checkpoints load into a plain generator


# ---- truncation, orthogonal regularization, standing statistics ----------------------------------------------
def test_truncated_sampler_resamples_within_the_threshold():
    z = truncated_normal((4000, 32), 0.5, generator=torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5
    near_edge = (z.abs() > 0.45).float().mean().item()
    assert 0.05 < near_edge < 0.15  # resampling keeps the normal's shape inside (clamping would pile up at 0.5)
    with pytest.raises(ConfigError, match="positive"):
        truncated_normal((2, 2), 0.0)


def test_orthogonal_regularization_is_eq3_without_the_diagonal():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(5, 3), nn.Conv2d(2, 4, 3))
    expected = 0.0
    for weight in (module[0].weight, module[1].weight.flatten(1)):
        gram = weight @ weight.T
        expected += ((gram * (1 - torch.eye(len(gram)))) ** 2).sum()
    assert torch.allclose(orthogonal_regularization(module), expected)
    q, _ = torch.linalg.qr(torch.randn(6, 6))
    rows = nn.Linear(6, 4, bias=False)
    with torch.no_grad():
        rows.weight.copy_(torch.diag(torch.tensor([0.5, 2.0, 3.0, 7.0])) @ q[:4])  # orthogonal rows, any norms
    assert orthogonal_regularization(rows).item() < 1e-9  # eq. 3 leaves the filters' norms free


class _LargestOutput(TorchDispatchMode):
    """Records the largest tensor any op produces while active."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        sizes = [t.numel() for t in tree_leaves(out) if torch.is_tensor(t)]
        self.largest = max([self.largest, *sizes])
        return out


def test_orthogonal_regularization_uses_the_smaller_gram_matrix():
    # issue 27: ||W Wᵀ ⊙ (1 - I)||² = ||Wᵀ W||²_F - Σᵢ ||wᵢ||⁴; the 128 px dense layer (BigGAN Table 4 (a): z chunk
    # 20 → 4·4·16·ch, ch 96) must not build its 24576² Gram matrix (2.4 GB in float32)
    torch.manual_seed(0)
    for shape in ((7, 3), (3, 7), (5, 5)):
        w = torch.randn(shape, dtype=torch.float64)
        direct = ((w @ w.T) * (1 - torch.eye(shape[0], dtype=torch.float64))).pow(2).sum()
        layer = nn.Linear(shape[1], shape[0], bias=False).double()
        with torch.no_grad():
            layer.weight.copy_(w)
        assert torch.allclose(orthogonal_regularization(layer), direct, rtol=1e-10)
    dense = nn.Linear(20, 4 * 4 * 16 * 96, bias=False)
    nn.init.orthogonal_(dense.weight)
    with _LargestOutput() as watch:
        value = orthogonal_regularization(dense)
    assert watch.largest <= dense.weight.numel()  # nothing bigger than W itself
    w = dense.weight.detach().double()
    direct = sum(((w[i:i + 2048] @ w.T).pow(2).sum() - w[i:i + 2048].pow(2).sum(1).pow(2).sum()).item()
                 for i in range(0, len(w), 2048))  # the direct form, W Wᵀ a band of rows at a time
    assert value.item() == pytest.approx(direct, rel=1e-4)


def test_orthogonal_regularization_is_added_once_per_g_step(cli, tmp_path, monkeypatch):
    # BigGAN-PyTorch train_fns.py: utils.ortho runs once after the G accumulations, not per micro-batch
    import recipes.biggan as biggan

    calls = []
    real = biggan.orthogonal_regularization
    monkeypatch.setattr(biggan, "orthogonal_regularization", lambda *a, **k: calls.append(1) or real(*a, **k))
    result = cli("train", "biggan", *TINY, "--grad-accum", "3", "--set", "ortho_reg=1e-4", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert len(calls) == 2  # two steps, three micro-batches each
    logs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("G/ortho" in record for record in logs)


def test_orthogonal_regularization_leaves_out_the_shared_embedding():
    G = Generator(32, ch=2, z_dim=16, num_classes=10, shared_dim=8, attention=0)
    with torch.no_grad():
        G.shared.weight.mul_(100)
    kept = nn.ModuleList([m for name, m in G.named_children() if name != "shared"])
    assert torch.allclose(orthogonal_regularization(G, skip=CLASS_EMBEDDINGS), orthogonal_regularization(kept))


def test_standing_statistics_make_a_sample_independent_of_its_batch():
    cfg = api.make_config("biggan", out="unused", ch=2, z_dim=16, resolution=32, g_attention=16, d_attention=16,
                          num_classes=10,
                          standing_passes=5, batch_size=8)
    recipe = BigGAN(cfg)
    G = recipe.build_models()["G"]
    z, y = torch.randn(16, G.z_dim), torch.arange(16) % 10
    with torch.no_grad():
        G.train()
        assert not torch.allclose(G(z[:2], y[:2]), G(z, y)[:2], atol=1e-4)  # batch statistics: depends on the batch
        recipe.finalize_generator(G)
        assert not G.training
        alone, in_batch = G(z[:1], y[:1]), G(z, y)[:1]
    assert torch.allclose(alone, in_batch, atol=1e-5)


def test_truncated_sampling_re_estimates_standing_statistics_at_its_threshold():
    # BigGAN-PyTorch sample.py: with --accumulate_stats, standing statistics are re-accumulated at each point of the
    # truncation curve, with the truncated z
    cfg = api.make_config("biggan", out="unused", ch=2, z_dim=16, resolution=32, g_attention=0, d_attention=0,
                          num_classes=10, standing_passes=4, batch_size=8)
    recipe = BigGAN(cfg)
    G = recipe.build_models()["G"]
    recipe.finalize_generator(G)
    plain = G.out_bn.running_var.clone()
    recipe.sample(G, 4, torch.Generator().manual_seed(0), truncation=0.5)
    assert G.standing_truncation == 0.5
    truncated = G.out_bn.running_var.clone()
    assert not torch.allclose(truncated, plain)
    recipe.finalize_generator(G, 0.5)  # the same passes, drawn the same way
    assert torch.equal(G.out_bn.running_var, truncated)
    recipe.sample(G, 4, torch.Generator().manual_seed(0))  # back to untruncated z: back to the plain statistics
    assert torch.allclose(G.out_bn.running_var, plain)
    cfg.truncated_standing_stats = False
    recipe.sample(G, 4, torch.Generator().manual_seed(0), truncation=0.5)
    assert G.standing_truncation is None


def test_256px_layout_moves_only_g_attention_up():
    # Table 5: an extra 16×16 ResBlock in each network; G's non-local block at 128×128, D's still at 64×64
    cfg = api.make_config("biggan", preset="biggan-256", out="unused", num_classes=3, ch=4)
    models = BigGAN(cfg).build_models()
    G, D = models["G"], models["D"]
    assert (G.slots, G.chunk) == (7, 20)  # z 140: one chunk for the dense layer, one per up-block
    g_at = [i for i, b in enumerate(G.blocks) if isinstance(b, SelfAttention)]
    d_at = [i for i, b in enumerate(D.blocks) if isinstance(b, SelfAttention)]
    assert g_at == [5] and d_at == [2]  # after G's 5th up-block (8, 16, 32, 64, 128 px), after D's 2nd (128, 64 px)
    assert len(G_PLANS[256]) == 6 and len(D_PLANS[256]) == 7


def test_the_critic_spectral_norm_takes_the_configured_epsilon():
    # App. C: ε raised to 1e-4 in BN and in SN, in both networks
    from gancli.nn import apply_config_norm

    cfg = api.make_config("biggan", out="unused", ch=2, z_dim=16, num_classes=10)
    models = BigGAN(cfg).build_models()
    D = apply_config_norm(models["D"], cfg)
    assert D.blocks[0].conv1.parametrizations.weight[0].eps == cfg.sn_eps
    assert models["G"].blocks[0].conv1.parametrizations.weight[0].eps == cfg.sn_eps
    assert models["G"].blocks[0].bn1.norm.eps == cfg.bn_eps


# ---- presets ---------------------------------------------------------------------------------------------------
PAPER = {  # BigGAN App. B-C and Table 1 row 7 (128 px)
    "loss": "hinge", "lr_g": 5e-5, "lr_d": 2e-4, "betas_g": [0.0, 0.999], "betas_d": [0.0, 0.999], "n_dis": 2,
    "ortho_reg": 1e-4, "ema": True, "ema_decay": 0.9999, "init": "ortho", "norm": "sn", "g_spectral_norm": True,
    "shared_dim": 128, "hier": True, "ch": 96, "z_dim": 120, "resolution": 128, "g_attention": 64, "d_attention": 64,
    "gen_norm": "cbn", "bn_eps": 1e-4, "sn_eps": 1e-4,  # App. C: "We increase ε from the default to 1e-4 in BN and SN"
    "eval_n": 50_000,  # BigGAN-PyTorch utils.py --num_inception_images default (the paper's 50k samples)
    "truncated_standing_stats": True,  # BigGAN-PyTorch sample.py --accumulate_stats at each truncation
    "on_collapse": "warn",  # §4 / App. F: the paper's runs were stopped by hand at collapse, not by a detector
}
BIGGAN_256 = {**PAPER, "resolution": 256, "z_dim": 140, "g_attention": 128, "d_attention": 64}  # Table 5, App. B
BIGGAN_PYTORCH_IMAGENET = {  # BigGAN-PyTorch scripts/launch_BigGAN_bs256x8.sh (its published ImageNet 128 model)
    **PAPER, "n_dis": 1, "lr_g": 1e-4, "lr_d": 4e-4, "ortho_reg": 0.0, "bn_eps": 1e-5, "sn_eps": 1e-6,
    "truncated_standing_stats": False,  # sample_BigGAN_bs256x8.sh: --G_eval_mode without --accumulate_stats
}
BIGGAN_PYTORCH_CIFAR = {  # BigGAN-PyTorch launch_cifar_ema.sh and its defaults
    "data": "cifar10:train", "resolution": 32, "ch": 64, "batch_size": 50, "n_dis": 4, "lr_g": 2e-4, "lr_d": 2e-4,
    "betas_g": [0.0, 0.999], "betas_d": [0.0, 0.999], "ema": True, "ema_decay": 0.9999, "ema_start": 1000,
    "ortho_reg": 0.0, "g_attention": 0, "d_attention": 0, "init": "N02", "shared_dim": 0, "hier": False, "z_dim": 128,
    "norm": "sn",
    "loss": "hinge", "steps": 500 * 50_000 // (50 * 4),  # 500 epochs, each iteration takes 4 batches of 50
    "bn_eps": 1e-5, "sn_eps": 1e-8,  # utils.py's --BN_eps / --SN_eps defaults (the script sets neither)
    "eval_n": 50_000,  # utils.py --num_inception_images
}
SAN_BIGGAN = {**BIGGAN_PYTORCH_CIFAR, "norm": "san", "betas_g": [0.5, 0.999], "betas_d": [0.5, 0.999]}  # SAN §4.1


@pytest.mark.parametrize("preset", ["biggan-pytorch-cifar", "san-biggan"])
def test_cifar_presets_use_plain_per_class_cbn_tables(preset):
    # BigGAN-PyTorch BigGAN.py: without G_shared, ccbn's gain and bias are nn.Embedding, never SN'd ("for some reason
    # applying SN to G's embedding seems to randomly cripple G"); the class is not concatenated with z (no hier)
    from torch.nn.utils import parametrize

    from gancli.nn.modulation import ClassTable

    cfg = api.make_config("biggan", preset=preset, num_classes=10)
    G = BigGAN(cfg).build_plain_generator()
    tables = [m for m in G.modules() if isinstance(m, ClassTable)]
    assert len(tables) == 2 * 2 * 3  # gain and bias of both BNs of the three blocks
    assert not any(parametrize.is_parametrized(t) for t in tables) and G.shared is None
    assert parametrize.is_parametrized(G.blocks[0].conv1, "weight")  # the convs keep G's SN
    y = torch.tensor([2, 7])
    bn = G.blocks[0].bn1
    assert torch.equal(bn.gain(G.class_code(y)), bn.gain.weight[y])  # a one-hot code reads its class's row exactly
    with pytest.raises(ConfigError, match="'hier' needs a shared class embedding"):
        BigGAN(api.make_config("biggan", preset=preset, num_classes=10, sets={"hier": True}))


@pytest.mark.parametrize("preset, table", [(None, PAPER), ("biggan-pytorch-cifar", BIGGAN_PYTORCH_CIFAR),
                                           ("san-biggan", SAN_BIGGAN), ("biggan-256", BIGGAN_256),
                                           ("biggan-pytorch-imagenet", BIGGAN_PYTORCH_IMAGENET)])
def test_presets_equal_their_papers(preset, table):
    cfg = api.make_config("biggan", preset=preset, data=None if preset else "imagenet:/x", out="unused")
    assert {key: getattr(cfg, key) for key in table} == table
    if preset is None:
        assert cfg.batch_size * cfg.grad_accum == 2048  # Table 1's batch, as 256 × 8 accumulated


# ---- data -----------------------------------------------------------------------------------------------------
def _write_image(path, size, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_imagenet_folder_labels_crop_and_area_resize(tmp_path):
    from gancli.data.specs import open_dataset

    _write_image(tmp_path / "zebra" / "a.png", (60, 40), (255, 0, 0))
    _write_image(tmp_path / "ant" / "b.jpg", (30, 50), (0, 0, 255))
    dataset = open_dataset(f"imagenet:{tmp_path}", resolution=16)
    assert dataset.classes == ["ant", "zebra"] and dataset.num_classes == 2
    image, label = dataset[dataset.files.index(tmp_path / "zebra" / "a.png")]
    assert label == 1 and image.shape == (3, 16, 16) and image.dtype == torch.uint8
    assert image[0].min() == 255 and image[2].max() == 0  # area averaging of a flat colour keeps it


def test_imagenet_folder_errors(tmp_path):
    from gancli.data.formats import ImageNetFolder

    _write_image(tmp_path / "cat" / "a.png", (8, 8), (0, 0, 0))
    (tmp_path / "dog").mkdir()
    with pytest.raises(DataError, match="Class folder '.*dog' contains no images"):
        ImageNetFolder(tmp_path)
    (tmp_path / "dog" / "broken.png").write_text("not an image")
    with pytest.raises(DataError, match="broken.png' is corrupt or not an image"):
        ImageNetFolder(tmp_path, 8)[1]


def test_empty_class_folder_through_the_cli(cli, tmp_path):
    _write_image(tmp_path / "data" / "cat" / "a.png", (8, 8), (0, 0, 0))
    (tmp_path / "data" / "dog").mkdir()
    result = cli("train", "biggan", "--data", f"imagenet:{tmp_path / 'data'}", *TINY, "--g-attention", "0",
                 "--d-attention", "0", "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert "contains no images" in result.output and "Traceback" not in result.output


# ---- sampling a saved run ------------------------------------------------------------------------------------
def test_per_class_sheet_has_a_row_per_class(cli, tiny_run, tmp_path):
    result = cli("sample", tiny_run, "--class", "all", "--n", "20", "--truncation", "0.5", "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "s.png") as sheet:  # 10 rows of 2 images of 32 px, 2 px padding
        assert sheet.size == (2 + 2 * 34, 2 + 10 * 34)
    images, per_row = api.sample_sheet(tiny_run, 3, class_id=7, seed=1)
    assert images.shape == (3, 3, 32, 32) and per_row is None
    run = api.open_run(tiny_run)
    G = run.load_generator()
    expected = run.recipe.sample(G, 3, torch.Generator().manual_seed(1), labels=torch.full((3,), 7))
    assert torch.allclose(images, expected)


@pytest.mark.parametrize("mode", ["z", "class"])
def test_interpolation_strips(cli, tiny_run, tmp_path, mode):
    result = cli("sample", tiny_run, "--interpolate", mode, "--n", "2", "--steps", "5", "--out", tmp_path / "i")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "i").glob("*.png"))) == 10
    strips = api.interpolate(tiny_run, mode, rows=2, steps=5, seed=3)
    ends = api.interpolate(tiny_run, mode, rows=2, steps=2, seed=3)  # the same two endpoints, nothing between
    assert torch.allclose(strips.view(2, 5, 3, 32, 32)[:, [0, -1]], ends.view(2, 2, 3, 32, 32), atol=1e-5)


@pytest.mark.parametrize("args, fragment", [
    (["--class", "10"], "Class 10 is out of range"),
    (["--class", "-1"], "Class -1 is out of range"),
    (["--class", "cat"], "--class must be a class index or 'all'"),
    (["--interpolate", "y"], "--interpolate must be 'z'"),
    (["--interpolate", "class", "--class", "1"], "--interpolate class draws the pairs"),
    (["--interpolate", "z", "--steps", "1"], "--steps of at least 2"),
])
def test_bad_sampling_input(cli, tiny_run, args, fragment):
    result = cli("sample", tiny_run, *args)
    assert result.exit_code == 1
    assert fragment in result.output and "Traceback" not in result.output


def test_class_on_an_unconditional_run(cli, tiny_uncond, tmp_path):
    out = tmp_path / "uncond"
    assert cli("train", "uncond", *tiny_uncond, "--steps", "1", "--ckpt-every", "1", "--out", out).exit_code == 0
    result = cli("sample", out, "--class", "1")
    assert result.exit_code == 1 and "is not class-conditional, so --class does not apply" in result.output
    result = cli("eval", "truncation", out, "--n", "20", "--thresholds", "1", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output  # an unconditional G with truncation: the same sweep, no labels
    assert [row["truncation"] for row in json.loads(result.stdout.strip().splitlines()[-1])["thresholds"]] == [1.0]


# ---- eval truncation -------------------------------------------------------------------------------------------
def test_eval_truncation_writes_curve_and_table(cli, tiny_run, tmp_path):
    result = cli("eval", "truncation", tiny_run, "--thresholds", "1.0,0.5", "--n", "20", "--device", "cpu", "--json",
                 "--out", tmp_path / "t")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [row["truncation"] for row in report["thresholds"]] == [0.5, 1.0]
    for row in report["thresholds"]:
        assert {"fid", "is", "precision", "recall"} <= row.keys() and 0 <= row["precision"] <= 1
    assert report["features"].startswith("builtin")
    assert report["standing_statistics"] == "standing statistics over 2 passes, re-estimated on the truncated z at each " \
                                           "threshold"  # BigGAN-PyTorch sample.py --accumulate_stats
    assert json.loads((tmp_path / "t" / "truncation.json").read_text())["thresholds"] == report["thresholds"]
    with Image.open(tmp_path / "t" / "truncation.png") as plot:
        assert plot.size[0] > 400
    bad = cli("eval", "truncation", tiny_run, "--thresholds", "0.5,-1", "--device", "cpu")
    assert bad.exit_code == 1 and "--thresholds must be positive" in bad.output


# ---- telemetry -------------------------------------------------------------------------------------------------
def _trainer(tmp_path, **options):
    from gancli.train.trainer import Trainer

    cfg = api.make_config("biggan", out=str(tmp_path / "run"), ch=2, z_dim=16, batch_size=4, device="cpu",
                          telemetry_every=1, standing_passes=2, **options)
    (tmp_path / "run").mkdir()
    return Trainer(BigGAN(cfg), tmp_path / "run")


def _steady(trainer, steps, loss=1.0):
    for _ in range(steps):
        trainer.step += 1
        trainer.observe({"D/loss": loss})


def test_telemetry_reuses_spectral_norm_vectors_and_matches_svd(tmp_path):
    from gancli.train.telemetry import top_singular_value

    trainer = _trainer(tmp_path)
    conv = trainer.models["G"].blocks[0].conv1
    weight = conv.parametrizations.weight.original.flatten(1)
    for _ in range(50):  # SN's own power iteration, as training forwards run it
        conv.parametrizations.weight[0]._power_method(weight, 1)
    assert torch.allclose(top_singular_value(conv, {}), torch.linalg.matrix_norm(weight, 2), rtol=1e-3)
    plain = nn.Linear(20, 10)
    vectors = {}
    for _ in range(100):
        sigma = top_singular_value(plain, vectors)
    assert torch.allclose(sigma, torch.linalg.matrix_norm(plain.weight.detach(), 2), rtol=1e-3)


def test_collapse_of_sigma_stops_and_names_the_last_good_checkpoint(tmp_path):
    from gancli.train.telemetry import TrainingCollapsed

    trainer = _trainer(tmp_path)
    _steady(trainer, 12)
    good = trainer.save()
    _steady(trainer, 2)
    with torch.no_grad():
        trainer.models["G"].dense.parametrizations.weight.original.mul_(10)
    trainer.step += 1
    with pytest.raises(TrainingCollapsed, match=r"collapsed at step 15 \(G.dense from 1 to 10") as info:
        trainer.observe({"D/loss": 1.0})
    assert f"the last good checkpoint is '{good}'" in str(info.value)
    records = [json.loads(line) for line in (tmp_path / "run" / "telemetry.jsonl").read_text().splitlines()]
    assert records[-1]["collapse"] == ["sigma/G.dense"] and (tmp_path / "run" / "spectra.png").is_file()


def test_telemetry_tracks_the_top_three_singular_values(tmp_path):
    # BigGAN §4: "We found the top three singular values of each weight matrix to be the most informative"
    from gancli.train.telemetry import lower_singular_values

    torch.manual_seed(0)
    plain, bases = nn.Linear(20, 10), {}
    for _ in range(60):
        values = lower_singular_values(plain, bases)
    assert torch.allclose(values, torch.linalg.svdvals(plain.weight.detach())[1:3], rtol=1e-3)
    assert torch.equal(lower_singular_values(nn.Linear(2, 5), {})[1:], torch.zeros(1))  # rank 2: σ₂ is 0
    trainer = _trainer(tmp_path)
    _steady(trainer, 1)
    record = json.loads((tmp_path / "run" / "telemetry.jsonl").read_text().splitlines()[-1])
    for name in ("G.dense", "D.linear"):
        assert record[f"sigma/{name}"] >= record[f"sigma1/{name}"] * 0.99 >= record[f"sigma2/{name}"] * 0.98


def test_the_paper_setting_logs_a_collapse_and_trains_on(tmp_path):
    trainer = _trainer(tmp_path, on_collapse="warn")  # the paper's default: its runs were stopped by hand
    _steady(trainer, 12)
    with torch.no_grad():
        trainer.models["G"].dense.parametrizations.weight.original.mul_(10)
    _steady(trainer, 1)
    records = [json.loads(line) for line in (tmp_path / "run" / "telemetry.jsonl").read_text().splitlines()]
    assert records[-1]["collapse"] == ["sigma/G.dense"] and trainer.step == 13


def test_collapse_of_the_d_loss_rolls_back_at_a_lower_learning_rate(tmp_path):
    trainer = _trainer(tmp_path, on_collapse="rollback", lr_g=4e-4, lr_d=2e-4)
    _steady(trainer, 12, loss=0.02)  # near 0, as BigGAN's D loss gets
    trainer.save()
    before = {k: v.clone() for k, v in trainer.models["G"].state_dict().items()}
    _steady(trainer, 1, loss=0.05)  # noise around 0 is no jump (compared with at least 0.1)
    with torch.no_grad():
        trainer.models["G"].dense.bias.add_(1.0)
    _steady(trainer, 1, loss=2.0)  # BigGAN §4.2: D's loss jumps up at collapse
    assert trainer.step == 12 and trainer.cfg.lr_d == pytest.approx(1e-4) and trainer.cfg.lr_g == pytest.approx(2e-4)
    assert all(torch.equal(before[k], v) for k, v in trainer.models["G"].state_dict().items())
    assert trainer.optimizers["D"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert "lr_d = 0.0001" in (tmp_path / "run" / "config.toml").read_text()
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "rollback" and events[-1]["to"] == "step_00000012"


def test_collapse_without_a_checkpoint_says_so(tmp_path):
    from gancli.train.telemetry import TrainingCollapsed

    trainer = _trainer(tmp_path, on_collapse="rollback")
    _steady(trainer, 10)
    with pytest.raises(TrainingCollapsed, match="D/loss from 1 to 5.*no checkpoint was saved before it"):
        _steady(trainer, 1, loss=5.0)


def test_collapse_through_the_cli_is_one_sentence_and_exit_1(cli, tmp_path, monkeypatch):
    from gancli.train import telemetry

    def jump_after_three(reading, history, factor, window=telemetry.WINDOW):
        return [("D/loss", 1.0, 9.0)] if len(history.get("D/loss", [])) >= 3 else []

    monkeypatch.setattr(telemetry, "find_jumps", jump_after_three)
    result = cli("train", "biggan", *TINY, "--steps", "6", "--out", tmp_path / "run")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Training collapsed at step 4 (D/loss from 1 to 9 jumped); the last good checkpoint is" in result.output
    assert "step_00000003" in result.output


@pytest.mark.parametrize("args, fragment", [
    (["--resolution", "48"], "'resolution' must be one of 32, 64, 128, 256"),
    (["--gen-norm", "adain"], "'gen_norm' must be one of cbn, self-mod"),
    (["--init", "kaiming"], "'init' must be one of ortho, N02, xavier"),
    (["--g-attention", "12"], "'g_attention' must be 0 or a resolution G passes through (8, 16, 32)"),
    (["--d-attention", "32"], "'d_attention' must be 0 or a resolution D passes through (8, 16)"),
    (["--ch", "1"], "'g_attention' = 16 has 4 × ch = 4 channels; it needs 8 (raise 'ch' to 2)"),
    (["--z-dim", "3"], "'z_dim' must give each of the 4 hierarchical chunks one entry"),
    (["--on-collapse", "panic"], "'on_collapse' must be one of stop, rollback, warn"),
    (["--collapse-factor", "1"], "'collapse_factor' must be greater than 1"),
    (["--data", "imagenet:/nowhere", "--eval-every", "5", "--g-attention", "0", "--d-attention", "0"],
     "needs 'eval_reference'"),
])
def test_bad_biggan_config(cli, tmp_path, args, fragment):
    result = cli("train", "biggan", *TINY, *args, "--out", tmp_path / "run")
    assert result.exit_code == 1 and fragment in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_data_without_class_labels_is_refused(cli, tmp_path):
    _write_image(tmp_path / "flat" / "a.png", (8, 8), (0, 0, 0))
    result = cli("train", "biggan", *TINY, "--data", f"folder:{tmp_path / 'flat'}", "--g-attention", "0",
                 "--d-attention", "0", "--out", tmp_path / "run")
    assert result.exit_code == 1 and "has no class labels; BigGAN is class-conditional" in result.output


def test_training_time_evaluation_of_a_sync_bn_generator_runs_on_a_plain_copy():
    cfg = api.make_config("biggan", out="unused", ch=2, z_dim=16, num_classes=10, standing_passes=2, eval_n=20,
                          device="cpu")
    recipe = BigGAN(cfg)
    G = nn.SyncBatchNorm.convert_sync_batchnorm(recipe.build_models()["G"])  # as under torchrun on GPUs
    scores = recipe.evaluate(G.eval())
    assert scores["fid"] > 0 and scores["is"] >= 1 and scores["features"].startswith("builtin")


def test_a_run_folder_from_before_the_attention_split_and_eps_fields_opens_as_it_was_trained(tmp_path):
    """Old config.toml files have one `attention` and no ε fields: they open with both attentions set from it and
    torch's BN / spectral-norm ε (1e-5, 1e-12) that such runs were trained with."""
    import tomli_w

    from gancli.runs import open_run

    cfg = dataclasses.asdict(BigGANConfig(resolution=32, ch=4, z_dim=64))
    for key in ("g_attention", "d_attention", "bn_eps", "sn_eps"):
        cfg.pop(key)
    cfg["attention"] = 16
    (tmp_path / "config.toml").write_text(tomli_w.dumps({"config": cfg}))
    run = open_run(tmp_path)
    assert (run.cfg.g_attention, run.cfg.d_attention) == (16, 16)
    assert (run.cfg.bn_eps, run.cfg.sn_eps) == (1e-5, 1e-12)
