"""`gancli import mimicry`: kwotsin/mimicry's SNGAN / SSGAN netG / netD files (32 and 48 px) as uncond runs.

The golden outputs in tests/fixtures/imports/mimicry were computed by mimicry's own SNGAN / SSGAN modules (eval
mode) on the tensors that reference_state rebuilds from layout.json; see tests/fixtures/imports/README.md.
"""

from __future__ import annotations

import pytest
import torch
from reference_state import FIXTURES, reference_state
from safetensors.torch import load_file

from gancli import api
from gancli.runs import open_run

GOLDEN = FIXTURES / "mimicry" / "golden.safetensors"
TOLERANCE = 1e-4


def release_files(tmp_path, tag: str) -> tuple:
    """netG / netD as mimicry's trainer saves them: {'model_state_dict': ..., 'optimizer_state_dict': ..., ...}."""
    G, D = tmp_path / f"{tag}_netG_100000.pth", tmp_path / f"{tag}_netD_100000.pth"
    for path, net in ((G, "G"), (D, "D")):
        torch.save({"model_state_dict": reference_state("mimicry", f"{tag}/{net}"), "optimizer_state_dict": {},
                    "global_step": 100000}, path)
    return G, D


@pytest.mark.parametrize("tag, resolution, width", [("sngan32", 32, 1 / 16), ("sngan48", 48, 1 / 8),
                                                    ("ssgan32", 32, 1 / 16)])
def test_import_reproduces_mimicrys_forward(tag, resolution, width, tmp_path, cli):
    G, D = release_files(tmp_path, tag)
    result = cli("import", "mimicry", G, "--critic", D, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    cfg = open_run(tmp_path / "run").cfg
    assert (cfg.arch, cfg.resolution, cfg.width, cfg.z_dim, cfg.g_upsample, cfg.d_block, cfg.d_pool) == (
        "resnet", resolution, width, 16, "bilinear", "mimicry", "sum")
    golden = load_file(GOLDEN)
    with torch.no_grad():
        image = api.load(tmp_path / "run", device="cpu").G(golden[f"{tag}/z"])
        logit = open_run(tmp_path / "run").load_critic()(image)
    g_diff = (image[:, :, ::4, ::4] - golden[f"{tag}/image"]).abs().max().item()
    d_diff = (logit - golden[f"{tag}/logit"]).abs().max().item()
    assert g_diff <= TOLERANCE and d_diff <= TOLERANCE, (g_diff, d_diff)


@pytest.mark.parametrize("resolution, g_params, d_params", [(32, 4_276_739, 1_053_825), (48, 4_878_083, 10_141_441)])
def test_full_size_networks_have_mimicrys_parameter_counts(resolution, g_params, d_params):
    # mimicry's SNGANGenerator32/48() and SNGANDiscriminator32/48() at their defaults (counted on its modules)
    from recipes import get_recipe

    recipe = get_recipe("uncond")
    cfg = recipe.Config(arch="resnet", resolution=resolution, g_upsample="bilinear", d_block="mimicry",
                        d_pool="sum", full_stl_critic=resolution == 48)
    models = recipe(cfg).build_models()
    assert sum(p.numel() for p in models["G"].parameters()) == g_params
    assert sum(p.numel() for p in models["D"].parameters()) == d_params


def test_bad_files_are_one_sentence(tmp_path, cli):
    G, D = release_files(tmp_path, "sngan32")
    _, D48 = release_files(tmp_path, "sngan48")
    state = reference_state("mimicry", "sngan32/G")
    big = {k.replace("block4.", "block5."): v for k, v in state.items()} | {
        k: v for k, v in state.items() if k.startswith("block4.")}  # a fourth up-block, as its 64 px G has
    big = {k if not k.startswith("b5.") else "b6." + k[3:]: v for k, v in big.items()}
    torch.save({"model_state_dict": big}, tmp_path / "big.pth")
    torch.save({"model_state_dict": {k: v for k, v in state.items() if not k.startswith("block3.c2.")}},
               tmp_path / "missing.pth")
    cases = [
        ([D], "mimicry critic (netD), not a generator"),
        ([G, "--critic", D48], "not a mimicry SNGAN/SSGAN critic (netD_*.pth) of this generator"),
        ([tmp_path / "missing.pth"], "lacks block3.c2.weight"),
        ([tmp_path / "big.pth"], "gancli's resnet has mimicry's 32 and 48 px ones"),
    ]
    for index, (args, message) in enumerate(cases):
        result = cli("import", "mimicry", *args, "--out", tmp_path / f"r{index}")
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / f"r{index}").exists()


def test_sample_and_fine_tune_an_import(tmp_path, cli):
    G, D = release_files(tmp_path, "sngan32")
    assert cli("import", "mimicry", G, "--critic", D, "--out", tmp_path / "run").exit_code == 0
    result = cli("sample", tmp_path / "run", "--n", "4", "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    result = cli("train", "uncond", "--init-from", tmp_path / "run", "--norm", "san", "--steps", "1", "--batch-size",
                 "4", "--log-every", "1", "--sample-every", "0", "--eval-every", "0", "--ckpt-every", "0",
                 "--n-samples", "4", "--device", "cpu", "--out", tmp_path / "ft")
    assert result.exit_code == 0, result.output
    assert open_run(tmp_path / "ft").cfg.g_upsample == "bilinear"
