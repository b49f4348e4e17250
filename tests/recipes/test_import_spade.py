"""`gancli import spade`: NVlabs/SPADE's latest_net_G.pth / latest_net_D.pth (models/networks/) as runs.

The golden outputs in tests/fixtures/imports/spade were computed by SPADE's own SPADEGenerator and
MultiscaleDiscriminator (eval mode: torch spectral-norm hooks with their stored u, v; param-free BN with running
statistics) on the tensors that reference_state rebuilds, with SPADE's Cityscapes options (crop 512, aspect 2,
num_upsampling_layers more, instance edges) but 4 labels, ngf 1, ndf 2; see that folder's README.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from reference_state import FIXTURES, label_map, layout, reference_state
from safetensors.torch import load_file

from gancli import api
from gancli.errors import CheckpointError
from gancli.runs import open_run
from recipes import get_recipe
from recipes.spade_import import read_shapes

GOLDEN = FIXTURES / "spade" / "golden.safetensors"
TOLERANCE = 1e-4  # issue 25: G outputs in [-1, 1] within 1e-4 of the reference; critics the same


def release_files(folder):
    """latest_net_G.pth and latest_net_D.pth as SPADE saves them (torch.save of the state dicts)."""
    G, D = folder / "latest_net_G.pth", folder / "latest_net_D.pth"
    torch.save(reference_state("spade", "cityscapes/G"), G)
    torch.save(reference_state("spade", "cityscapes/D"), D)
    return G, D


@pytest.fixture(scope="module")
def spade_run(tmp_path_factory):
    from typer.testing import CliRunner

    from gancli.cli import app

    tmp = tmp_path_factory.mktemp("spade-import")
    G, D = release_files(tmp)
    result = CliRunner().invoke(app, ["import", "spade", str(G), "--critic", str(D), "--preset", "cityscapes",
                                      "--out", str(tmp / "run")])
    assert result.exit_code == 0, result.output
    return tmp / "run"


def test_cityscapes_options_reproduce_the_reference_forward(spade_run):
    cfg = open_run(spade_run).cfg
    assert (cfg.image_size, cfg.label_nc, cfg.instance_edges, cfg.num_upsampling_layers) == ([256, 512], 4, True,
                                                                                               "more")
    assert (cfg.ngf, cfg.spade_hidden, cfg.ndf, cfg.num_d, cfg.n_layers_d, cfg.norm) == (1, 128, 2, 2, 4, "sn")
    golden = load_file(GOLDEN)
    x = label_map(golden["grid"], (256, 512), 4, edges=True)  # one-hot ids, instance edges last
    with torch.no_grad():
        out = api.load(spade_run, device="cpu").G(x)
        scales = open_run(spade_run).load_critic()(torch.cat([x, out], 1))
    assert (out[:, :, ::32, ::32] - golden["G"]).abs().max().item() <= TOLERANCE
    for i, features in enumerate(scales):
        assert (features[-1][:, :, ::4, ::4] - golden[f"D{i}"]).abs().max().item() <= TOLERANCE
        assert (torch.stack([f.mean() for f in features]) - golden[f"D{i}_means"]).abs().max().item() <= TOLERANCE


def test_synthesize_on_an_imported_run(spade_run, tmp_path, cli):
    ids = np.zeros((256, 512), np.uint8)
    ids[:, 256:], ids[128:, :128] = 2, 3
    instances = (ids.astype(np.uint16) * 1000 + (np.arange(512) >= 400)).astype(np.uint16)
    Image.fromarray(ids).save(tmp_path / "map.png")
    Image.fromarray(instances).save(tmp_path / "map_instanceIds.png")
    result = cli("synthesize", spade_run, tmp_path / "map.png", "--out", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "map.png").size == (512, 256)


@pytest.mark.parametrize("channels, preset, size, edges, upsampling, label_nc", [
    (36, "cityscapes", [256, 512], True, "more", 35),  # SPADE data/cityscapes_dataset.py
    (151, "ade20k", [256, 256], False, "normal", 151),  # data/ade20k_dataset.py: 150 + dontcare
    (184, "coco", [256, 256], True, "normal", 183),  # data/coco_dataset.py: 182 + dontcare, instance maps
])
def test_published_label_counts_give_spades_dataset_options(channels, preset, size, edges, upsampling, label_nc):
    recipe = get_recipe("spade")
    G = {key: torch.zeros(shape) for key, (shape, _) in layout("spade", "cityscapes/G").items()}
    G["fc.weight"] = torch.zeros(16, channels, 3, 3)
    cfg = recipe.Config()
    cfg.preset = "original"  # the format's training preset, not a dataset one: the label count decides
    read_shapes(G, None, cfg, recipe.presets)
    assert (cfg.preset, cfg.image_size, cfg.instance_edges, cfg.num_upsampling_layers, cfg.label_nc) == (
        preset, size, edges, upsampling, label_nc)


def test_bad_files_through_the_cli_write_nothing(tmp_path, cli):
    G, D = release_files(tmp_path)
    state = reference_state("spade", "cityscapes/G")
    del state["up_1.norm_0.mlp_beta.weight"]
    torch.save(state, tmp_path / "missing.pth")
    state = reference_state("spade", "cityscapes/G")
    state["fc.weight"] = torch.zeros(16 * 4 * 8, 256)  # the VAE's linear fc (z_dim 256)
    torch.save(state, tmp_path / "vae.pth")
    narrow = {k: v[..., :1, :, :] if k == "discriminator_1.model0.0.weight" else v
              for k, v in reference_state("spade", "cityscapes/D").items()}
    torch.save(narrow, tmp_path / "narrow_D.pth")
    cases = [
        ([D], "This is a SPADE critic (latest_net_D.pth), not a generator; give it with --critic."),
        ([tmp_path / "missing.pth"], "it lacks up_1.norm_0.mlp_beta.weight"),
        ([tmp_path / "vae.pth"], "uses the VAE"),
        ([G, "--critic", tmp_path / "narrow_D.pth"], "discriminator_1.model0.0.weight has shape (2, 1, 4, 4)"),
    ]
    for index, (args, message) in enumerate(cases):
        result = cli("import", "spade", *args, "--preset", "cityscapes", "--out", tmp_path / f"run{index}")
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / f"run{index}").exists()


def test_a_critic_for_other_labels_does_not_fit(tmp_path):
    recipe = get_recipe("spade")
    fmt = recipe.import_formats["spade"]
    D = reference_state("spade", "cityscapes/D")
    D = {k: torch.cat([v, v[:, :1]], 1) if k.endswith("model0.0.weight") else v for k, v in D.items()}
    cfg = api.make_config("spade", preset="cityscapes", data="cityscapes:/nowhere")
    with pytest.raises(CheckpointError, match="of this generator: discriminator_0.model0.0.weight has shape"):
        fmt.convert(reference_state("spade", "cityscapes/G"), D, cfg)
