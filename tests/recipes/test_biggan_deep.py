"""BigGAN-deep (`--arch deep`) and `gancli import biggan-deep-tfhub`: the network of BigGANdeep.py / TF-Hub's modules.

The TF-Hub comparison builds pytorch-pretrained-biggan's own BigGAN (a test dependency) at reduced width with
random weights and BN statistics near the activations' own (so that the outputs are not saturated), saves its
state dict as `pytorch_model.bin`, imports it and compares `G(z, y, truncation)` with `BigGAN(z, one_hot(y), t)`.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from gancli import api
from gancli.runs import open_run
from recipes import get_recipe
from recipes.biggan_deep_nets import (
    DEEP_D_PLANS,
    DeepCritic,
    DeepGenerator,
    TruncationStatistics,
)

pretrained = pytest.importorskip("pytorch_pretrained_biggan")
from pytorch_pretrained_biggan.convert_tf_to_pytorch import (
    BigGAN128,
    BigGAN256,
    BigGAN512,
)
from pytorch_pretrained_biggan.model import BigGANBatchNorm

TOLERANCE = 1e-4  # issue 31: G outputs within 1e-4 of the reference's
CLASSES, Z = 7, 16
TINY = ["--arch", "deep", "--resolution", "32", "--ch", "8", "--z-dim", "8", "--set", "shared_dim=8", "--set",
        "g_attention=16", "--set", "d_attention=16", "--batch-size", "4", "--steps", "2", "--log-every", "1",
        "--sample-every", "0", "--eval-every", "0", "--ckpt-every", "1", "--n-samples", "4", "--standing-passes", "2",
        "--device", "cpu", "--telemetry-every", "0"]


def package_biggan(layers_of, seed: int = 0):
    """The package's BigGAN with TF-Hub's layer list at channel width 4, z 16, 7 classes; SN vectors one power step
    from random, BN tables around each layer's own batch statistics (a different draw per truncation value)."""
    torch.manual_seed(seed)
    config = pretrained.BigGANConfig(output_dim=layers_of.output_dim, z_dim=Z, class_embed_dim=Z, channel_width=4,
                                     num_classes=CLASSES, layers=layers_of.layers, attention_layer_position=8,
                                     eps=1e-4, n_stats=51)
    model = pretrained.BigGAN(config).eval()
    with torch.no_grad():
        for module in model.modules():  # one power step from a random u, as a trained layer's vectors are
            if hasattr(module, "weight_u"):
                matrix = module.weight_orig.reshape(module.weight_orig.shape[0], -1)
                v = F.normalize(matrix.t() @ torch.randn(matrix.shape[0]), dim=0)
                module.weight_v.copy_(v)
                module.weight_u.copy_(F.normalize(matrix @ v, dim=0))
        for name, param in model.named_parameters():
            if name.endswith("gamma"):
                param.fill_(0.5)
            elif param.dim() == 1:
                param.normal_(0, 0.1)

    def calibrate(module, args):
        mean, var = args[0].mean((0, 2, 3)), args[0].var((0, 2, 3))
        n = module.running_means.shape[0]
        module.running_means.copy_(mean + 0.2 * var.sqrt() * torch.randn(n, mean.numel()))
        module.running_vars.copy_(var * torch.empty(n, var.numel()).uniform_(0.7, 1.4))

    hooks = [m.register_forward_pre_hook(calibrate) for m in model.modules() if isinstance(m, BigGANBatchNorm)]
    with torch.no_grad():
        model(torch.randn(16, Z), F.one_hot(torch.randint(CLASSES, (16,)), CLASSES).float(), 1.0)
    for hook in hooks:
        hook.remove()
    return model


def reference_differences(model, run) -> dict[float, float]:
    G = api.load(run, device="cpu").G
    z, y = torch.randn(3, Z, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 3, 6])
    out = {}
    with torch.no_grad():
        for t in (1.0, 0.4, 0.37, 0.05):
            out[t] = (G(z, y, t) - model(z, F.one_hot(y, CLASSES).float(), t)).abs().max().item()
    return out


@pytest.fixture(scope="module")
def tfhub_run(tmp_path_factory):
    """A 128 px package model saved as pytorch_model.bin and imported through the CLI."""
    from typer.testing import CliRunner

    from gancli.cli import app

    tmp = tmp_path_factory.mktemp("tfhub")
    model = package_biggan(BigGAN128)
    torch.save(model.state_dict(), tmp / "pytorch_model.bin")
    result = CliRunner().invoke(app, ["import", "biggan-deep-tfhub", str(tmp / "pytorch_model.bin"), "--out",
                                      str(tmp / "run")])
    assert result.exit_code == 0, result.output
    return model, tmp / "run"


def test_tfhub_128_import_reproduces_the_package_forward(tfhub_run):
    model, run = tfhub_run
    cfg = open_run(run).cfg
    assert (cfg.arch, cfg.resolution, cfg.ch, cfg.z_dim, cfg.shared_dim, cfg.num_classes, cfg.g_attention) == (
        "deep", 128, 4, Z, Z, CLASSES, 64)
    assert (cfg.truncation_stats, cfg.rgb_channels, cfg.bn_eps, cfg.sn_eps, cfg.standing_passes) == (51, 4, 1e-4, 1e-4,
                                                                                                      0)
    differences = reference_differences(model, run)
    assert max(differences.values()) <= TOLERANCE, differences
    G = api.load(run, device="cpu").G
    z, y = torch.randn(2, Z), torch.tensor([1, 2])
    with torch.no_grad():  # the tabled statistics matter: truncation changes the image, not only z
        assert (G(z, y, 0.4) - G(z, y, 1.0)).abs().max() > 1e-3


@pytest.mark.parametrize("layers_of", [BigGAN256, BigGAN512], ids=["256", "512"])
def test_tfhub_256_and_512_layouts(layers_of, tmp_path):
    model = package_biggan(layers_of, seed=2)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    api.import_checkpoint("biggan-deep-tfhub", tmp_path / "pytorch_model.bin", tmp_path / "run")
    assert open_run(tmp_path / "run").cfg.resolution == layers_of.output_dim
    differences = reference_differences(model, tmp_path / "run")
    assert max(differences.values()) <= TOLERANCE, differences


def test_truncation_table_reads_as_the_package():
    table = TruncationStatistics(51, 2)
    table.means.copy_(torch.arange(102.0).view(51, 2))
    mean, _ = table.at(0.37)  # 0.37 / 0.02 = 18.5: s18·0.5 + s19·0.5
    assert torch.allclose(mean, (table.means[18] + table.means[19]) / 2)
    mean, _ = table.at(0.41)  # f = 0.5 - ε on float64: weights (f, 1 - f) on (s20, s21), the package's order
    coef = (0.41 / 0.02) % 1
    assert torch.allclose(mean, table.means[20] * coef + table.means[21] * (1 - coef))
    assert torch.equal(table.at(None)[0], table.means[50])


def test_sample_and_eval_truncation_on_the_import(tfhub_run, cli, tmp_path):
    _, run = tfhub_run
    result = cli("sample", run, "--truncation", "0.4", "--class", "5", "--n", "2", "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.png").is_file()
    result = cli("eval", "truncation", run, "--thresholds", "0.4,1", "--n", "20", "--features", "builtin",
                 "--real", "builtin:test", "--device", "cpu", "--json", "--out", tmp_path / "t")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [row["truncation"] for row in report["thresholds"]] == [0.4, 1.0]
    recipe = get_recipe("biggan")(open_run(run).cfg)  # TF-Hub's sampling: truncation · z, z within ±2
    z = recipe.draw_latents((500, Z), 0.4, torch.Generator().manual_seed(0), "cpu")
    assert 0.7 < z.abs().max() <= 0.8
    result = cli("sample", run, "--truncation", "1.5", "--n", "2", "--out", tmp_path / "x.png")
    assert result.exit_code == 1 and "tabled for truncations in (0, 1]" in result.output, result.output


def test_bad_files_are_one_sentence(tfhub_run, cli, tmp_path):
    model, _ = tfhub_run
    state = model.state_dict()
    torch.save({k: v for k, v in state.items() if k != "generator.layers.3.conv_2.bias"}, tmp_path / "missing.bin")
    basicsr = {"params_ema": {"conv_first.weight": torch.zeros(4, 3, 3, 3), "conv_first.bias": torch.zeros(4),
                              "body.0.rdb1.conv1.weight": torch.zeros(2, 4, 3, 3)}}
    torch.save(basicsr, tmp_path / "basicsr.pth")
    torch.save(state, tmp_path / "pytorch_model.bin")

    class Payload:
        def __reduce__(self):
            return (print, ("owned",))

    torch.save({"generator.gen_z.weight_orig": Payload()}, tmp_path / "evil.bin")
    cases = [
        (["missing.bin"], "lacks generator.layers.3.conv_2.bias"),
        (["basicsr.pth"], "(format 'basicsr'), not a pytorch-pretrained-biggan BigGAN-deep (TF-Hub) one"),
        (["pytorch_model.bin", "--critic", tmp_path / "pytorch_model.bin"], "publish no critic; drop --critic"),
        (["evil.bin"], "would run code"),
    ]
    for index, (args, message) in enumerate(cases):
        result = cli("import", "biggan-deep-tfhub", tmp_path / args[0], *args[1:], "--out", tmp_path / f"r{index}")
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2
        assert not (tmp_path / f"r{index}").exists()


def test_deep_blocks_follow_biggandeep_py():
    # BigGANdeep.py at G_ch = D_ch = 8, 128 px, dim_z 16, shared_dim 12, 5 classes, attention at 64 in both:
    # G 254,552 and D 129,410 parameters (counted on the reference built in a scratch script)
    G = DeepGenerator(128, 8, 16, 5, shared_dim=12, attention=64)
    D = DeepCritic(128, 8, 5, attention=64)
    assert sum(p.numel() for p in G.parameters()) == 254_552
    assert sum(p.numel() for p in D.parameters()) == 129_410
    assert len([b for b in G.blocks if not hasattr(b, "gamma")]) == 10  # two per resolution
    assert len(D.blocks) == 2 * len(DEEP_D_PLANS[128]) + 1
    first, second = G.blocks[2], G.blocks[3]  # the 8×8 stage: 128 -> 128, then 128 -> 64 upsampled (skip: drop half)
    assert (first.upsample, second.upsample, second.conv1.out_channels, second.conv4.out_channels) == (
        False, True, 32, 64)
    assert second(torch.randn(2, 128, 8, 8), torch.randn(2, 28)).shape == (2, 64, 16, 16)


def test_biggan_deep_preset_is_the_papers():
    # BigGAN App. C (hinge, lr G 5e-5 / D 2e-4, β (0, 0.999), two D steps, EMA 0.9999, orthogonal init, BN/SN ε raised
    # to 1e-4); BigGAN-PyTorch scripts/launch_BigGAN_deep.sh for the deep network's sizes (the shared/papers copy of
    # the paper lacks the BigGAN-deep appendix): ch 128, z 128 unsplit, shared 128, attention 64
    paper = {"arch": "deep", "resolution": 128, "ch": 128, "z_dim": 128, "shared_dim": 128, "g_attention": 64,
             "d_attention": 64,
             "bn_eps": 1e-4, "sn_eps": 1e-4, "loss": "hinge", "lr_g": 5e-5, "lr_d": 2e-4, "betas_g": [0.0, 0.999],
             "betas_d": [0.0, 0.999], "n_dis": 2, "ema_decay": 0.9999, "init": "ortho"}
    recipe = get_recipe("biggan")
    cfg = dataclasses.replace(recipe.Config(), **recipe.presets["biggan-deep"])
    assert {key: getattr(cfg, key) for key in paper} == paper


def test_train_deep_with_san_a_few_steps(cli, tmp_path):
    result = cli("train", "biggan", *TINY, "--norm", "san", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    run = open_run(tmp_path / "run")
    assert (run.cfg.arch, run.cfg.norm) == ("deep", "san")
    losses = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("D/loss" in row for row in losses)
    assert api.load(tmp_path / "run", device="cpu").sample(n=2, seed=0).shape[-1] == 32


def test_biggan_pytorch_deep_checkpoints_reproduce_biggandeep_py(tmp_path, cli):
    """BigGAN-PyTorch's BigGANdeep.py G and D (golden outputs in tests/fixtures/imports/biggan-deep, made by
    make_golden_biggan_deep.py with its own code) imported with `--set arch=deep`."""
    from reference_state import FIXTURES, reference_state
    from safetensors.torch import load_file

    for net in ("G", "D"):
        torch.save(reference_state("biggan-deep", f"deep128/{net}"), tmp_path / f"{net}.pth")
    result = cli("import", "biggan-pytorch", tmp_path / "G.pth", "--critic", tmp_path / "D.pth", "--set", "arch=deep",
                 "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    cfg = open_run(tmp_path / "run").cfg
    assert (cfg.arch, cfg.resolution, cfg.ch, cfg.z_dim, cfg.shared_dim, cfg.g_attention, cfg.d_attention) == (
        "deep", 128, 8, 16, 12, 64, 64)
    golden = load_file(FIXTURES / "biggan-deep" / "golden.safetensors")
    z, y = golden["deep128/z"], golden["deep128/y"]
    with torch.no_grad():
        out = api.load(tmp_path / "run", device="cpu").G(z, y)
        logits = open_run(tmp_path / "run").load_critic()(out, y)
    assert (out[:, :, ::16, ::16] - golden["deep128/G"]).abs().max() <= TOLERANCE
    assert (logits - golden["deep128/D"]).abs().max() <= TOLERANCE
