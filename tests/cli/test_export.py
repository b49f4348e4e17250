"""`gancli export`: every recipe's generator as .pt2 and ONNX equals the run's eager generator (max abs ≤ 1e-4)."""

from __future__ import annotations

import importlib.util
import shutil

import pytest
import torch

from gancli import api
from gancli.nn import export as ex

TOLERANCE = 1e-4
COMMON = {"log_every": 1, "sample_every": 0, "eval_every": 0, "device": "cpu"}
TINY = {  # two steps of networks as small as the recipes' tests train
    "uncond": {"resolution": 32, "width": 0.125, "batch_size": 4, "z_dim": 8, "n_samples": 4},
    "biggan": {"ch": 2, "z_dim": 16, "batch_size": 4, "n_samples": 4, "standing_passes": 2},
    "spade": {"image_size": "32,32", "ngf": 4, "spade_hidden": 4, "ndf": 4, "z_dim": 4, "batch_size": 2,
              "n_samples": 2, "perceptual": "none", "ckpt_every": 0},
    "spade-vae": {"image_size": "32,32", "ngf": 4, "spade_hidden": 4, "ndf": 4, "z_dim": 4, "batch_size": 2,
                  "n_samples": 2, "perceptual": "none", "ckpt_every": 0, "use_vae": True, "instance_edges": True},
    "stargan": {"resolution": 32, "g_width": 8, "g_blocks": 1, "d_width": 8, "d_layers": 3, "batch_size": 4,
                "n_samples": 2, "ckpt_every": 0, "attrs": "Red,Green,Blue,Large,Dark_Background"},
    "sr": {"pretrain_steps": 1, "hr_size": 32, "batch_size": 2, "n_blocks": 1, "workers": 0, "n_samples": 2,
           "ckpt_every": 0},
}
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
HAS_ONNX = all(importlib.util.find_spec(m) is not None for m in ex.ONNX_MODULES)
FORMATS = ["pt2", pytest.param("onnx", marks=pytest.mark.skipif(not (HAS_ONNX and HAS_ORT), reason=(
    "the onnx extra (onnx, onnxscript, onnxruntime) is not installed: the ONNX file cannot be written or run")))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    out = {}
    for name, sets in TINY.items():
        recipe = name.split("-")[0]
        cfg = api.make_config(recipe, out=str(base / name), steps=2, sets={**COMMON, **sets})
        out[name] = api.train(cfg).path
    return out


def _eager(run_dir, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The run's generator as `gancli sample/synthesize/translate/upscale` use it, on the exported inputs."""
    run = api.open_run(run_dir)
    G = run.load_generator()
    with torch.no_grad():
        if run.recipe.name == "spade":
            label, *rest = inputs
            edges = rest[0] if run.cfg.instance_edges else None
            segmap = run.recipe.segmap(label, edges)
            return G(segmap, rest[-1]) if run.cfg.use_vae else G(segmap)
        return G(*inputs)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(TINY))
def test_exported_generator_equals_the_run(runs, tmp_path, cli, name, fmt):
    out = tmp_path / f"G.{fmt}"
    result = cli("export", runs[name], "--format", fmt, "--out", out)
    assert result.exit_code == 0, result.output
    assert "max |exported − eager|" in " ".join(result.output.split())
    exported, meta = ex.load_exported(out)
    recipe = api.open_run(runs[name]).recipe
    inputs = recipe.export_inputs(ex.fold_normalizations(api.open_run(runs[name]).load_generator())).example
    with torch.no_grad():
        diff = (exported(*inputs) - _eager(runs[name], inputs)).abs().max().item()
    assert diff <= TOLERANCE, diff
    names = {"uncond": ["z"], "biggan": ["z", "label"], "spade": ["label"], "spade-vae": ["label", "edges", "z"],
             "stargan": ["image", "target"], "sr": ["lr"]}
    assert [row["name"] for row in meta["inputs"]] == names[name]
    assert meta["recipe"] == recipe.name and meta["format"] == fmt and meta["value_range"] == [-1, 1]
    assert (meta.get("onnx_opset") == ex.ONNX_OPSET) == (fmt == "onnx")


def test_metadata_documents_each_recipes_inputs(runs, tmp_path):
    metas = {name: api.export(runs[name], "pt2", tmp_path / f"{name}.pt2")["metadata"] for name in TINY}
    assert metas["uncond"]["z_dim"] == 8 and metas["uncond"]["inputs"][0]["shape"] == [2, 8]
    assert metas["biggan"]["num_classes"] == api.open_run(runs["biggan"]).cfg.num_classes
    assert metas["biggan"]["inputs"][1]["dtype"] == "int64" and metas["biggan"]["ema"]
    assert metas["spade"]["label_nc"] == api.open_run(runs["spade"]).cfg.label_nc
    assert metas["spade-vae"]["use_vae"] and metas["spade-vae"]["z_dim"] == 4 and metas["spade-vae"]["instance_edges"]
    assert metas["stargan"]["attributes"] == ["Red", "Green", "Blue", "Large", "Dark_Background"]
    assert metas["sr"]["scale"] == api.open_run(runs["sr"]).cfg.scale


@pytest.mark.parametrize("fmt", FORMATS)
def test_sr_exports_with_dynamic_height_and_width(runs, tmp_path, fmt):
    out = tmp_path / f"sr.{fmt}"
    meta = api.export(runs["sr"], fmt, out, dynamic=True)["metadata"]
    assert meta["inputs"][0]["shape"] == ["batch", 3, "height", "width"]
    exported, _ = ex.load_exported(out)
    scale = meta["scale"]
    for shape in ((1, 3, 13, 21), (3, 3, 40, 8)):
        lr = torch.rand(shape, generator=torch.Generator().manual_seed(sum(shape))) * 2 - 1
        sr = exported(lr)
        assert sr.shape == (shape[0], 3, scale * shape[2], scale * shape[3])
        assert (sr - _eager(runs["sr"], (lr,))).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("fmt", FORMATS)
def test_label_maps_and_batches_vary_with_dynamic(runs, tmp_path, fmt):
    out = tmp_path / f"spade.{fmt}"
    api.export(runs["spade"], fmt, out, dynamic=True, size=(16, 24))
    exported, meta = ex.load_exported(out)
    label_nc = meta["label_nc"]
    for shape in ((1, 16, 16), (3, 32, 48)):
        label = torch.randint(label_nc, shape, generator=torch.Generator().manual_seed(1))
        assert (exported(label) - _eager(runs["spade"], (label,))).abs().max().item() <= TOLERANCE
    out = tmp_path / f"biggan.{fmt}"
    api.export(runs["biggan"], fmt, out, dynamic=True)
    exported, meta = ex.load_exported(out)
    z, y = torch.randn(5, meta["z_dim"]), torch.arange(5) % meta["num_classes"]
    assert (exported(z, y) - _eager(runs["biggan"], (z, y))).abs().max().item() <= TOLERANCE


def test_folding_leaves_plain_weights_equal_to_eval_mode(runs):
    from torch.nn.utils import parametrize

    G = api.open_run(runs["biggan"]).load_generator()
    assert any(parametrize.is_parametrized(m) for m in G.modules())  # biggan's G is spectrally normalized
    folded = ex.fold_normalizations(G)
    assert not any(parametrize.is_parametrized(m) for m in folded.modules())
    z, y = torch.randn(3, G.z_dim), torch.tensor([0, 1, 2]) % api.open_run(runs["biggan"]).cfg.num_classes
    with torch.no_grad():
        assert torch.allclose(folded(z, y), G(z, y), atol=1e-6)
    assert any(parametrize.is_parametrized(m) for m in G.modules())  # the run's generator is left as it was


def assert_error(result, *fragments):
    assert result.exit_code == 1, (result.exit_code, result.output)
    text = " ".join(result.output.split())
    assert "Error:" in text and "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, text


def test_bad_inputs_are_one_sentence(runs, tmp_path, cli, monkeypatch):
    assert_error(cli("export", runs["sr"], "--format", "tflite", "--out", tmp_path / "g"), "pt2, onnx", "'tflite'")
    assert_error(cli("export", runs["uncond"], "--format", "pt2", "--out", tmp_path / "g.pt2", "--size", "8", "8"),
                 "--size does not apply")
    assert_error(cli("export", runs["stargan"], "--format", "pt2", "--out", tmp_path / "g.pt2", "--size", "30", "32"),
                 "multiples of 4")
    assert_error(cli("export", tmp_path / "nowhere", "--format", "pt2", "--out", tmp_path / "g.pt2"), "does not exist")
    empty = tmp_path / "no-generator"
    shutil.copytree(runs["uncond"], empty, ignore=shutil.ignore_patterns("checkpoints"))
    assert_error(cli("export", empty, "--format", "pt2", "--out", tmp_path / "g.pt2"), "checkpoint")
    monkeypatch.setattr(ex, "ONNX_MODULES", ("onnx", "no_such_module_for_the_test"))
    assert_error(cli("export", runs["sr"], "--format", "onnx", "--out", tmp_path / "g.onnx"), "gancli[onnx]")


def test_the_traceable_bicubic_equals_matlabs():
    from gancli.data.sr import bicubic_phase_filters, bicubic_upsample, bicubic_upsample_conv

    for scale in (2, 3, 4):
        taps = bicubic_phase_filters(scale)
        for shape in ((1, 3, 3, 3), (2, 3, 13, 21), (1, 1, 40, 8)):
            x = torch.rand(shape, generator=torch.Generator().manual_seed(scale)) * 2 - 1
            assert (bicubic_upsample_conv(x, taps) - bicubic_upsample(x, scale)).abs().max().item() < 1e-6


@pytest.mark.parametrize("arch", ["rrdb", "sangan"])
def test_every_sr_generator_exports_with_dynamic_sides(arch):
    """ESRGAN's RRDBNet and SANGAN's generator (bilinear skip, [0, 1] inside), fresh from their config: no run needed."""
    from recipes.sr import SRConfig, SuperResolution, build_generator

    cfg = SRConfig(arch=arch, n_blocks=1, features=8, growth=4, io_range="unit" if arch == "sangan" else "signed")
    recipe = SuperResolution(cfg)
    G = ex.fold_normalizations(build_generator(cfg))
    program = ex.export_program(recipe.export_inputs(G), dynamic=True)
    for shape in ((1, 3, 5, 9), (2, 3, 12, 7)):
        lr = torch.rand(shape, generator=torch.Generator().manual_seed(3)) * 2 - 1
        with torch.no_grad():
            assert (program.module()(lr) - G(lr)).abs().max().item() <= TOLERANCE
