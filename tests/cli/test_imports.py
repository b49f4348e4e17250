"""`gancli import`: reading published checkpoints safely, their key layouts, and the reference forward reproduced
(golden outputs made by the reference code, tests/fixtures/imports/README.md); bad files refused in one sentence;
the verbs on imported runs, and fine-tuning them with `gancli train RECIPE --init-from RUN --norm san`."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from gancli import api
from gancli.errors import CheckpointError
from gancli.train import checkpoint as ckpt
from gancli.train.imports import check_state_dict, read_state_dict

GOLDEN = Path(__file__).parents[1] / "fixtures" / "imports"


def golden(name: str) -> tuple[dict[str, torch.Tensor], str]:
    with safe_open(str(GOLDEN / f"{name}.safetensors"), framework="pt") as handle:
        layout = handle.metadata()["layout"]
    return load_file(str(GOLDEN / f"{name}.safetensors")), layout


def part(tensors: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def release_file(path: Path, state: dict, layout: str = "state_dict") -> Path:
    """The state dict saved as its authors' release files are (BasicSR: inside {'params_ema': ...} etc.)."""
    torch.save(state if layout == "state_dict" else {layout: state}, path)
    return path


def old_esrgan_layout(state: dict) -> dict:
    """ESRGAN's first release keys (model.N), as its transer_RRDB_models.py maps them to RRDBNet_arch.py's."""
    blocks = len({k.split(".")[1] for k in state if k.startswith("RRDB_trunk.")})
    names = {"conv_first": "model.0", "trunk_conv": f"model.1.sub.{blocks}", "upconv1": "model.3",
             "upconv2": "model.6", "HRconv": "model.8", "conv_last": "model.10"}
    out = {}
    for key, value in state.items():
        layer, _, param = key.rpartition(".")
        if layer.startswith("RRDB_trunk."):
            out[f"{layer.replace('RRDB_trunk.', 'model.1.sub.')}.0.{param}"] = value
        else:
            out[f"{names[layer]}.{param}"] = value
    return out


# ---- the reference forward, reproduced -------------------------------------------------------------------------
SR_CASES = [("esrgan", "esrgan", False), ("esrgan", "esrgan", True), ("basicsr_x4", "basicsr", False),
            ("basicsr_x2", "basicsr", False), ("sangan", "sangan", False)]


@pytest.mark.parametrize("name,fmt,old", SR_CASES)
def test_sr_imports_reproduce_the_reference_forward(tmp_path, name, fmt, old):
    tensors, layout = golden(name)
    state = old_esrgan_layout(part(tensors, "ref.")) if old else part(tensors, "ref.")
    run = api.import_checkpoint(fmt, release_file(tmp_path / "model.pth", state, layout), tmp_path / "run")
    loaded = api.load(run.path)
    image, reference = tensors["input"], tensors["output"]
    with torch.no_grad():
        ours = (loaded.G(image.float() / 127.5 - 1) + 1) / 2
    assert ours.shape == reference.shape and (ours - reference).abs().max() <= 1e-4 * 0.5  # ≤ 1e-4 on [-1, 1]
    upscaled = loaded.upscale(image[0], tile=0)  # uint8 in, uint8 out, as the reference's test script rounds
    rounded = (reference[0].clamp(0, 1) * 255).round()
    assert (upscaled.float() - rounded).abs().max() <= 1
    assert run.cfg.io_range == "unit" and run.cfg.scale == reference.shape[-1] // image.shape[-1]


def test_stargan_import_reproduces_generator_and_critic(tmp_path):
    tensors, _ = golden("stargan")
    G_file = release_file(tmp_path / "200000-G.ckpt", part(tensors, "ref."))
    D_file = release_file(tmp_path / "200000-D.ckpt", part(tensors, "critic."))
    run = api.import_checkpoint("stargan", G_file, tmp_path / "run", critic=D_file,
                                sets={"attrs": "Black_Hair,Male,Young"})
    assert (run.cfg.resolution, run.cfg.critic, run.cfg.norm, run.cfg.g_width, run.cfg.d_layers) == (
        16, "stargan", "none", 4, 4)
    G = api.load(run.path).G
    D = run.load_critic()
    with torch.no_grad():
        assert (G(tensors["input"], tensors["labels"]) - tensors["output"]).abs().max() <= 1e-4
        real_fake, classes = D(tensors["input"])
    assert (real_fake - tensors["out_src"].flatten(1)).abs().max() <= 1e-4
    assert (classes - tensors["out_cls"]).abs().max() <= 1e-4


def test_stargan_defaults_to_the_released_attributes_and_celeba_crop(tmp_path):
    from recipes.stargan_nets import StarGANGenerator

    state = {f"main.{k[4:]}" if k.startswith("net.") else k: v
             for k, v in StarGANGenerator(5, 4, 1).state_dict().items()}
    state = {k.replace(".body.", ".main."): v for k, v in state.items()}
    run = api.import_checkpoint("stargan", release_file(tmp_path / "G.ckpt", state), tmp_path / "run")
    assert run.cfg.attrs == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"] and run.cfg.crop == 178


def test_import_writes_an_ordinary_run_folder(tmp_path):
    from gancli.train.imports import file_sha256

    tensors, layout = golden("basicsr_x4")
    file = release_file(tmp_path / "RealESRGAN_x4plus.pth", part(tensors, "ref."), layout)
    run = api.import_checkpoint("basicsr", file, tmp_path / "run", sets={"ema": "true"})
    weights, meta = ckpt.load_weights(ckpt.resolve_checkpoint(run.path))
    assert meta["recipe"] == "sr" and set(weights) == {"G", "G_ema", "D"}  # D: a fresh critic, for --resume
    assert all(torch.equal(weights["G"][k], weights["G_ema"][k]) for k in weights["G"])
    assert ckpt.load_state(ckpt.resolve_checkpoint(run.path))["step"] == 0
    record = json.loads((run.path / "metrics.jsonl").read_text().splitlines()[0])["imported"]
    assert record == {"format": "basicsr", "file": str(file.resolve()), "sha256": file_sha256(file)}
    assert api.list_runs(tmp_path)[0]["status"] == "imported"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


# ---- reading files -----------------------------------------------------------------------------------------------
def test_read_state_dict_unwraps_containers_and_data_parallel_prefixes(tmp_path):
    ema, raw = {"module.conv.weight": torch.ones(1)}, {"module.conv.weight": torch.zeros(1)}
    torch.save({"params": raw, "params_ema": ema}, tmp_path / "a.pth")
    assert torch.equal(read_state_dict(tmp_path / "a.pth")["conv.weight"], torch.ones(1))  # the EMA weights first
    torch.save({"epoch": 3, "model_state_dict": {"w": torch.ones(2)}}, tmp_path / "b.pth")
    assert list(read_state_dict(tmp_path / "b.pth")) == ["w"]
    torch.save([1, 2], tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match="holds no state dict"):
        read_state_dict(tmp_path / "c.pth")


class WritesAFile:
    """A pickle that would create a file when unpickled without weights_only."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "written-by-the-pickle"
    torch.save({"conv_first.weight": torch.ones(1), "payload": WritesAFile(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="would run code"):
        read_state_dict(tmp_path / "evil.pth")
    assert not marker.exists()


def test_check_state_dict_names_the_first_missing_unexpected_and_misshapen_keys():
    expected = {f"w{i}": (2,) for i in range(6)}
    with pytest.raises(CheckpointError, match=r"missing w0, w1, w2 and 3 more; unexpected x"):
        check_state_dict({"x": torch.ones(2)}, expected, "the file")
    with pytest.raises(CheckpointError, match=r"w5 is \(3,\), not \(2,\)"):
        check_state_dict({**{k: torch.ones(2) for k in expected}, "w5": torch.ones(3)}, expected, "the file")


# ---- bad input, through the CLI: one sentence, exit 1, nothing written -----------------------------------------
def assert_refused(result, out: Path, *fragments: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.output)
    text = " ".join(result.output.split())
    assert "Error:" in text and "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, text
    assert not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(".tmp")]


@pytest.fixture
def basicsr_state():
    tensors, _ = golden("basicsr_x4")
    return part(tensors, "ref.")


def test_another_formats_file_is_named(cli, tmp_path, basicsr_state):
    file = release_file(tmp_path / "x.pth", basicsr_state, "params_ema")
    assert_refused(cli("import", "esrgan", file, "--out", tmp_path / "run"), tmp_path / "run",
                   "is a BasicSR / Real-ESRGAN RRDBNet generator state dict (format 'basicsr'), not a "
                   "xinntao/ESRGAN RRDBNet generator one")


def test_a_file_of_no_known_format_names_its_keys(cli, tmp_path):
    tensors, _ = golden("stargan")
    critic = release_file(tmp_path / "D.ckpt", part(tensors, "critic."))  # a critic given as the generator
    assert_refused(cli("import", "stargan", critic, "--out", tmp_path / "run"), tmp_path / "run",
                   "is not a yunjey/stargan generator state dict, nor of another format gancli imports",
                   "its first keys: conv1.weight")


def test_missing_unexpected_and_misshapen_keys_are_named(cli, tmp_path, basicsr_state):
    out = tmp_path / "run"
    missing = {k: v for k, v in basicsr_state.items() if k != "body.0.rdb2.conv3.bias"}
    assert_refused(cli("import", "basicsr", release_file(tmp_path / "m.pth", missing), "--out", out), out,
                   "missing body.0.rdb2.conv3.bias")
    extra = {**basicsr_state, "conv_up3.weight": torch.ones(1)}
    assert_refused(cli("import", "basicsr", release_file(tmp_path / "u.pth", extra), "--out", out), out,
                   "unexpected conv_up3.weight")
    wrong = {**basicsr_state, "conv_hr.weight": torch.ones(4, 4, 5, 5)}
    assert_refused(cli("import", "basicsr", release_file(tmp_path / "w.pth", wrong), "--out", out), out,
                   "conv_hr.weight is (4, 4, 5, 5), not (4, 4, 3, 3)")


def test_truncated_and_malicious_files_are_refused(cli, tmp_path, basicsr_state):
    out = tmp_path / "run"
    whole = release_file(tmp_path / "whole.pth", basicsr_state).read_bytes()
    (tmp_path / "cut.pth").write_bytes(whole[: len(whole) // 2])
    assert_refused(cli("import", "basicsr", tmp_path / "cut.pth", "--out", out), out, "truncated or corrupt")
    marker = tmp_path / "written-by-the-pickle"
    torch.save({**basicsr_state, "x": WritesAFile(marker)}, tmp_path / "evil.pth")
    assert_refused(cli("import", "basicsr", tmp_path / "evil.pth", "--out", out), out, "would run code",
                   "refused")
    assert not marker.exists()
    assert_refused(cli("import", "basicsr", tmp_path / "absent.pth", "--out", out), out, "does not exist")


def test_a_critic_that_is_not_the_generators_is_refused(cli, tmp_path):
    tensors, _ = golden("stargan")
    G_file = release_file(tmp_path / "G.ckpt", part(tensors, "ref."))
    critic = part(tensors, "critic.")
    other = {**critic, "conv2.weight": torch.ones(5, *critic["conv2.weight"].shape[1:])}
    out = tmp_path / "run"
    assert_refused(cli("import", "stargan", G_file, "--critic", release_file(tmp_path / "D.ckpt", other),
                       "--attrs", "A,B,C", "--out", out), out, "judges 5 attributes, the generator takes 3")
    assert_refused(cli("import", "stargan", G_file, "--out", out), out, "takes 3 attributes; name them with --attrs")
    sr_file = release_file(tmp_path / "sr.pth", part(golden("sangan")[0], "ref."))
    assert_refused(cli("import", "sangan", sr_file, "--critic", sr_file, "--out", out), out,
                   "imports no critic")


def test_unknown_formats_and_occupied_folders_are_refused(cli, tmp_path, basicsr_state):
    file = release_file(tmp_path / "x.pth", basicsr_state)
    out = tmp_path / "run"
    assert_refused(cli("import", "dcgan", file, "--out", out), out, "Unknown import format 'dcgan'", "basicsr")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    result = cli("import", "basicsr", file, "--out", occupied)
    assert result.exit_code == 1 and "not an empty folder" in " ".join(result.output.split())
    assert os.listdir(occupied) == ["keep.txt"]


def test_import_list_names_formats_files_and_publishers(cli):
    result = cli("import", "--list")
    assert result.exit_code == 0, result.output
    for text in ("esrgan", "basicsr", "sangan", "stargan", "RealESRGAN_x2plus", "pre_trained.zip", "download.sh"):
        assert text in result.output


# ---- the verbs on imported runs ---------------------------------------------------------------------------------
TRAIN = ["--steps", "2", "--batch-size", "2", "--log-every", "1", "--sample-every", "0", "--ckpt-every", "0",
         "--eval-every", "0", "--n-samples", "2", "--device", "cpu", "--workers", "0"]


@pytest.fixture(autouse=True)
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no VGG weights, no download


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sr-import")
    tensors, layout = golden("sangan")
    return api.import_checkpoint("sangan", release_file(tmp / "g_srgan.pt", part(tensors, "ref."), layout),
                                 tmp / "run").path


@pytest.fixture(scope="module")
def stargan_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stargan-import")
    tensors, _ = golden("stargan")
    return api.import_checkpoint("stargan", release_file(tmp / "G.ckpt", part(tensors, "ref.")), tmp / "run",
                                 critic=release_file(tmp / "D.ckpt", part(tensors, "critic.")),
                                 sets={"attrs": "Red,Green,Blue"}).path


def test_upscale_and_eval_sr_on_an_imported_run(cli, sr_run, tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    result = cli("upscale", sr_run, tmp_path / "a.png", "--out", tmp_path / "up", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "up" / "a.png").size == (28, 36)
    scored = cli("eval", "sr", sr_run, "--data", "builtin", "--limit", "1", "--device", "cpu", "--json")
    assert scored.exit_code == 0, scored.output
    assert {"psnr_y", "ssim_y"} <= set(json.loads(scored.stdout)["mean"]["model"])


def test_translate_on_an_imported_stargan_run(cli, stargan_run, tmp_path):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "f.png")
    result = cli("translate", stargan_run, tmp_path / "f.png", "--attr", "Red=1", "--attr", "Green=0",
                 "--out", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "f.png").size == (16, 16)  # the imported critic's image size


def test_fine_tune_an_imported_sr_run_with_san(cli, sr_run, tmp_path, caplog):
    out = tmp_path / "tuned"
    with caplog.at_level(logging.WARNING, logger="gancli.train"):
        result = cli("train", "sr", "--init-from", sr_run, "--norm", "san", "--out", out, "--hr-size", "32",
                     "--pretrain-steps", "0", *TRAIN)
    assert result.exit_code == 0, result.output
    cfg = api.open_run(out).cfg
    assert (cfg.arch, cfg.features, cfg.io_range, cfg.norm) == ("sangan", 4, "unit", "san")  # taken from the run
    assert "Initialised G from" in caplog.text
    weights, _ = ckpt.load_weights(ckpt.resolve_checkpoint(out))
    assert ckpt.step_dirs(out)[-1].name == "step_00000002" and "D" in weights


def test_fine_tune_an_imported_stargan_run_and_its_critic_with_san(cli, stargan_run, tmp_path, caplog):
    out = tmp_path / "tuned"
    imported, _ = ckpt.load_weights(ckpt.resolve_checkpoint(stargan_run))
    with caplog.at_level(logging.WARNING, logger="gancli.train"):
        result = cli("train", "stargan", "--init-from", stargan_run, "--norm", "san", "--out", out,
                     "--resolution", "16", *TRAIN)
    assert result.exit_code == 0, result.output
    assert "Initialised G and D from" in caplog.text  # the imported critic, now under SAN (circular padding)
    run = api.open_run(out)
    assert (run.cfg.critic, run.cfg.norm, run.cfg.attrs) == ("stargan", "san", ["Red", "Green", "Blue"])
    assert run.load_critic().features[0].padding_mode == "circular"
    tuned, _ = ckpt.load_weights(ckpt.resolve_checkpoint(out))
    assert not torch.equal(tuned["D"]["features.0.weight"], imported["D"]["features.0.weight"])  # SAN, trained
