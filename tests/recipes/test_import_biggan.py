"""`gancli import biggan-pytorch`: ajbrock/BigGAN-PyTorch's G.pth / G_ema.pth / D.pth (BigGAN.py, layers.py) as runs.

The golden outputs in tests/fixtures/imports/biggan-pytorch were computed by BigGAN-PyTorch's own Generator and
Discriminator (eval mode: σ from one power step from u0, BN from stored_mean / stored_var) on the tensors that
reference_state rebuilds; see that folder's README.
"""

from __future__ import annotations

import json

import pytest
import torch
from reference_state import FIXTURES, reference_state
from safetensors.torch import load_file

from gancli import api
from gancli.errors import CheckpointError
from gancli.runs import open_run
from recipes import get_recipe

GOLDEN = FIXTURES / "biggan-pytorch" / "golden.safetensors"
TOLERANCE = 1e-4  # issue 25: G outputs in [-1, 1] within 1e-4 of the reference; critics the same


def release_files(tmp_path, name: str) -> tuple:
    """G_ema.pth and D.pth as BigGAN-PyTorch saves them (torch.save of the state dicts)."""
    G, D = tmp_path / "G_ema.pth", tmp_path / "D.pth"
    torch.save(reference_state("biggan-pytorch", f"{name}/G"), G)
    torch.save(reference_state("biggan-pytorch", f"{name}/D"), D)
    return G, D


def biggan_format():
    recipe = get_recipe("biggan")
    return recipe, recipe.import_formats["biggan-pytorch"]


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    """The CIFAR-layout reference (32 px, per-class ccbn tables, no attention) imported with its critic."""
    from typer.testing import CliRunner

    from gancli.cli import app

    tmp = tmp_path_factory.mktemp("biggan-import")
    G, D = release_files(tmp, "cifar")
    result = CliRunner().invoke(app, ["import", "biggan-pytorch", str(G), "--critic", str(D), "--out",
                                      str(tmp / "run")])
    assert result.exit_code == 0, result.output
    return tmp / "run"


def compare_to_golden(run, name: str) -> tuple[float, float]:
    golden = load_file(GOLDEN)
    z, y = golden[f"{name}/z"], golden[f"{name}/y"]
    with torch.no_grad():
        out = api.load(run, device="cpu").G(z, y)
        logits = open_run(run).load_critic()(out, y)
    stride = out.shape[-1] // 8
    return ((out[:, :, ::stride, ::stride] - golden[f"{name}/G"]).abs().max().item(),
            (logits - golden[f"{name}/D"]).abs().max().item())


def test_imagenet_layout_reproduces_the_reference_forward(tmp_path, cli):
    # the ImageNet launch script's layout (hier z, shared embedding, attention at 64) at ch 8, 5 classes
    G, D = release_files(tmp_path, "imagenet")
    result = cli("import", "biggan-pytorch", G, "--critic", D, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    cfg = open_run(tmp_path / "run").cfg
    assert (cfg.resolution, cfg.ch, cfg.num_classes, cfg.shared_dim, cfg.hier, cfg.z_dim, cfg.g_attention,
            cfg.d_attention) == (128, 8, 5, 16, True, 120, 64, 64)
    assert (cfg.standing_passes, cfg.norm, cfg.g_spectral_norm) == (0, "sn", True)  # its own BN statistics and SN
    # it trained with launch_BigGAN_bs256x8.sh (--BN_eps 1e-5 --SN_eps 1e-6), not the paper's 1e-4: its preset
    assert (cfg.preset, cfg.bn_eps, cfg.sn_eps) == ("biggan-pytorch-imagenet", 1e-5, 1e-6)
    g_diff, d_diff = compare_to_golden(tmp_path / "run", "imagenet")
    assert g_diff <= TOLERANCE and d_diff <= TOLERANCE, (g_diff, d_diff)
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert record["imported"]["format"] == "biggan-pytorch" and len(record["imported"]["critic"]["sha256"]) == 64


def test_the_critic_attention_is_read_from_the_critic():
    # BigGAN-PyTorch D: attention after block i sits at that block's output resolution (arch['resolution'][i])
    from recipes.biggan_import import read_critic_attention

    cfg = get_recipe("biggan").Config(resolution=128)
    read_critic_attention({"blocks.1.1.gamma": torch.zeros(1)}, cfg)
    assert cfg.d_attention == 32  # 128 → 64 → 32
    read_critic_attention({}, cfg)
    assert cfg.d_attention == 0


def test_cifar_layout_reproduces_the_reference_forward(cifar_run):
    cfg = open_run(cifar_run).cfg
    assert (cfg.resolution, cfg.ch, cfg.num_classes, cfg.shared_dim, cfg.hier, cfg.g_attention) == (32, 4, 10, 0,
                                                                                                     False, 0)
    g_diff, d_diff = compare_to_golden(cifar_run, "cifar")
    assert g_diff <= TOLERANCE and d_diff <= TOLERANCE, (g_diff, d_diff)


def test_sample_and_eval_truncation_on_an_imported_run(cifar_run, cli, tmp_path):
    result = cli("sample", cifar_run, "--truncation", "0.5", "--class", "3", "--n", "4", "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.png").is_file()
    result = cli("eval", "truncation", cifar_run, "--thresholds", "0.5,1", "--n", "20", "--features", "builtin",
                 "--device", "cpu", "--json", "--out", tmp_path / "t")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [row["truncation"] for row in report["thresholds"]] == [0.5, 1.0]
    assert report["features"].startswith("builtin")


def test_tf_hub_ports_without_sv0_and_one_step_sigma():
    """TFHub/converter.py writes no sv0; σ is one power step from u0 (layers.power_iteration, update=False)."""
    recipe, fmt = biggan_format()
    G = {k: v for k, v in reference_state("biggan-pytorch", "cifar/G").items() if not k.endswith(".sv0")}
    imported = fmt.convert(G, None, recipe.Config())
    weight, u0 = G["linear.weight"], G["linear.u0"]
    v = torch.nn.functional.normalize(u0 @ weight, eps=1e-6)
    u = torch.nn.functional.normalize(v @ weight.t(), eps=1e-6)
    sigma_reference = (v @ weight.t() @ u.t()).item()  # BigGAN-PyTorch's svs[0]
    ours = imported.G["dense.parametrizations.weight.0._u"] @ weight @ imported.G["dense.parametrizations.weight.0._v"]
    assert ours.item() == pytest.approx(sigma_reference, rel=1e-6)
    assert imported.D is None


def test_key_mapping_consumes_every_reference_key():
    """Every key of the release layouts lands in our networks (a key left over or missing raises)."""
    recipe, fmt = biggan_format()
    for name in ("imagenet", "cifar"):
        G, D = (reference_state("biggan-pytorch", f"{name}/{w}") for w in ("G", "D"))
        imported = fmt.convert(G, D, recipe.Config())
        assert imported.G["shared.weight" if name == "imagenet" else "blocks.0.bn1.gain.weight"].shape[0] == (
            5 if name == "imagenet" else 10)
        # stored_mean / stored_var become the BN running statistics, unchanged
        assert torch.equal(imported.G["out_bn.running_var"], G["output_layer.0.stored_var"])
        assert torch.equal(imported.G["blocks.0.bn1.norm.running_mean"], G["blocks.0.0.bn1.stored_mean"])
        assert torch.equal(imported.D["embed.parametrizations.weight.original"], D["embed.weight"])


@pytest.mark.parametrize("edit, message", [
    (lambda G, D: G.pop("blocks.1.0.conv2.u0"), ("it lacks blocks.1.0.conv2.u0; it has unexpected "
                                                  "blocks.1.0.conv2.sv0, blocks.1.0.conv2.weight")),
    (lambda G, D: G.pop("blocks.2.0.bn1.stored_var"), "it lacks blocks.2.0.bn1.stored_var"),
    (lambda G, D: G.__setitem__("extra.weight", torch.zeros(1)), "has unexpected extra.weight"),
    (lambda G, D: G.__setitem__("blocks.0.0.conv1.bias", torch.zeros(3)), "blocks.0.0.conv1.bias has shape (3,)"),
])
def test_bad_generators_are_named_in_one_sentence(edit, message):
    recipe, fmt = biggan_format()
    G = reference_state("biggan-pytorch", "cifar/G")
    edit(G, None)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fmt.convert(G, None, recipe.Config())


def test_bad_files_through_the_cli_write_nothing(tmp_path, cli):
    G, D = release_files(tmp_path, "cifar")
    (tmp_path / "other").mkdir()
    _, other_D = release_files(tmp_path / "other", "imagenet")
    basicsr = tmp_path / "RealESRGAN_x4plus.pth"
    torch.save({"params_ema": {"conv_first.weight": torch.zeros(4, 3, 3, 3),
                               "body.0.rdb1.conv1.weight": torch.zeros(2, 4, 3, 3)}}, basicsr)
    cases = [
        ([basicsr], "(format 'basicsr'), not a ajbrock/BigGAN-PyTorch BigGAN one"),
        ([D], "critic (D.pth), not a generator; give it with --critic"),
        ([G, "--critic", other_D], "not a BigGAN-PyTorch critic (D.pth) of this generator"),  # another G's critic
    ]
    for index, (args, message) in enumerate(cases):
        result = cli("import", "biggan-pytorch", *args, "--out", tmp_path / f"run{index}")
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / f"run{index}").exists()


def test_fine_tuning_an_imported_run_under_san(cifar_run, cli, tmp_path, caplog):
    """`--init-from` reads the imported critic under its SN (u, v kept) and hands SAN the plain critic it computes."""
    result = cli("train", "biggan", "--init-from", cifar_run, "--norm", "san", "--steps", "1", "--batch-size", "4",
                 "--log-every", "1", "--sample-every", "0", "--eval-every", "0", "--ckpt-every", "0",
                 "--n-samples", "4", "--device", "cpu", "--out", tmp_path / "ft")
    assert result.exit_code == 0, result.output
    assert "Initialised G and D from" in caplog.text
    assert open_run(tmp_path / "ft").cfg.ch == 4  # the imported network's shape, not the quick preset's
