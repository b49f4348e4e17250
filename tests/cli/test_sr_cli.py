"""The sr recipe end to end: `gancli train sr`, `upscale`, `eval psnr|ssim|niqe|lpips|sr`, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gancli import api
from gancli.errors import CheckpointError
from gancli.metrics.quality import iqa
from recipes.sr import SRConfig, SuperResolution

TINY = {"pretrain_steps": 1, "hr_size": 32, "batch_size": 2, "n_blocks": 1, "eval_images": 1, "workers": 0,
        "sample_every": 0, "ckpt_every": 0, "eval_every": 100, "log_every": 1, "n_samples": 2}


def assert_error(result, *fragments):
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    text = " ".join(result.output.split())
    assert "Error:" in text and "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, text


@pytest.fixture(autouse=True)
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no VGG/AlexNet weights, no download


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sr") / "run"
    cfg = api.make_config("sr", out=str(out), steps=2, device="cpu", sets=dict(TINY))
    api.train(cfg)
    return out


def _image(path, h, w, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _flags(values: dict) -> list[str]:
    return [x for k, v in values.items() for x in (f"--{k.replace('_', '-')}", str(v))]


# ---- train ------------------------------------------------------------------------------------


def test_train_sr_san_prints_the_heldout_table_against_bicubic(cli, tmp_path, caplog):
    out = tmp_path / "run"
    result = cli("train", "sr", "--norm", "san", "--out", out, "--steps", "3", "--device", "cpu", *_flags(TINY))
    assert result.exit_code == 0, result.output
    text = result.output
    assert "psnr_y_bicubic" in text and "ssim_y" in text
    assert "perceptual loss off" in caplog.text  # printed on stderr outside pytest
    assert 'perceptual = "none"' in (out / "config.toml").read_text()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("D/loss" in r for r in records) and any("G/l1" in r for r in records)
    final = [r for r in records if "eval/psnr_y" in r][-1]
    assert final["eval/psnr_y_bicubic"] > 20 and "Y channel" in final["eval/protocol"]


def test_perceptual_loss_without_vgg_weights_says_what_to_do(cli, tmp_path):
    result = cli("train", "sr", "--out", tmp_path / "r", "--steps", "2", "--device", "cpu", "--perceptual", "vgg19",
                 *_flags(TINY))
    assert_error(result, "vgg19-dcbb9e9d.pth", "--vgg-weights PATH", "--perceptual none")


@pytest.mark.parametrize("key,value,fragment", [("arch", "unet", "'arch' must be"), ("scale", "3", "'scale'"),
                                                ("hr_size", "40", "'hr_size'"), ("perceptual", "lpips", "'perceptual'"),
                                                ("critic", "patchgan", "'critic' must be table8"),
                                                ("pretrain_loss", "l2", "'pretrain_loss' must be mse"),
                                                ("crop_augment", "rot90", "'crop_augment' must be dihedral")])
def test_bad_sr_options(cli, tmp_path, key, value, fragment):
    result = cli("train", "sr", "--out", tmp_path / "r", "--steps", "1", "--device", "cpu",
                 *_flags({**TINY, key: value}))
    assert_error(result, fragment)
    assert not (tmp_path / "r").exists()  # rejected before a run folder is made, so the same --out can be reused


def test_vgg128_critic_needs_a_multiple_of_32(cli, tmp_path):
    result = cli("train", "sr", "--out", tmp_path / "r", "--steps", "1", "--device", "cpu",
                 *_flags({**TINY, "critic": "vgg128", "hr_size": 48}))
    assert_error(result, "multiple of 32 for the vgg128 critic")


def test_esrgan_at_32_px_is_refused_naming_the_smallest_size(cli, tmp_path):
    """The VGG-128 critic's five stride-2 convs take 32 px to 1×1, where its batch norm fails for a batch of one."""
    result = cli("train", "sr", "--preset", "esrgan", "--set", "hr_size=32", "--out", tmp_path / "r")
    assert_error(result, "'hr_size' must be a multiple of 32 for the vgg128 critic", "at least 64", "got 32.")
    assert not (tmp_path / "r").exists()


def test_presets_pretrain_and_esrgan():
    pretrain = SuperResolution(api.make_config("sr", preset="pretrain-san", out="x"))
    assert set(pretrain.build_models()) == {"G"} and pretrain.best_metric == ("psnr_y", "max")
    assert not pretrain.critic_active(0)
    cfg = api.make_config("sr", preset="esrgan", out="x", sets={"n_blocks": 1, "hr_size": 64})
    recipe = SuperResolution(cfg)
    models = recipe.build_models()
    assert type(models["G"]).__name__ == "RRDBNet" and cfg.loss == "ra"
    recipe.step = 10
    batch = {"lr": torch.rand(2, 3, 16, 16) * 2 - 1, "hr": torch.rand(2, 3, 64, 64) * 2 - 1}
    d_loss, _ = recipe.d_step(models, batch)
    g_loss, g_logs = recipe.g_step(models, batch)
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss) and "G/adv" in g_logs


def test_init_from_copies_the_pretrained_generator_and_its_shape(tiny_run):
    from gancli.train import checkpoint as ckpt
    from gancli.train.init_from import initialise_from

    cfg = api.make_config("sr", out="x", sets={"init_from": str(tiny_run), "workers": 0})
    assert cfg.n_blocks == 1  # the network-shaping fields come from the run it starts from
    models = SuperResolution(cfg).build_models()
    # D starts fresh: tiny_run's critic judged 32 px crops, this run's (the quick preset's) 64 px ones
    assert initialise_from(cfg.init_from, models, "sr") == ["G"]
    weights, _ = ckpt.load_weights(ckpt.resolve_checkpoint(tiny_run))
    torch.testing.assert_close(models["G"].state_dict()["head.weight"], weights["G"]["head.weight"])
    given = api.make_config("sr", out="x", sets={"init_from": str(tiny_run), "n_blocks": 2})
    with pytest.raises(CheckpointError, match="generator does not fit"):
        initialise_from(tiny_run, SuperResolution(given).build_models(), "sr")


# ---- upscale ----------------------------------------------------------------------------------


def test_upscale_files_and_folders_keeps_names(cli, tiny_run, tmp_path):
    single = _image(tmp_path / "in" / "one.png", 9, 13)
    folder = tmp_path / "folder"
    _image(folder / "two.jpg", 10, 6, seed=1)
    out = tmp_path / "out"
    result = cli("upscale", tiny_run, single, folder, "--out", out, "--tile", "4", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert Image.open(out / "one.png").size == (52, 36)
    assert Image.open(out / "two.png").size == (24, 40)  # JPEG input written losslessly as PNG
    assert "Wrote 2 images" in result.output


def test_upscale_bad_inputs(cli, tiny_run, tmp_path):
    assert_error(cli("upscale", tmp_path / "norun", tmp_path, "--out", tmp_path / "o"), "does not exist")
    assert_error(cli("upscale", tiny_run, tmp_path / "missing.png", "--out", tmp_path / "o"), "does not exist")
    (tmp_path / "bad.png").write_bytes(b"garbage")
    assert_error(cli("upscale", tiny_run, tmp_path / "bad.png", "--out", tmp_path / "o", "--device", "cpu"),
                 "bad.png", "corrupt")


# ---- eval psnr / ssim / niqe / lpips --------------------------------------------------------


@pytest.fixture
def pairs(tmp_path):
    for i, name in enumerate(("a", "b")):
        gt = _image(tmp_path / "gt" / f"{name}.png", 40, 48, seed=i)
        noisy = np.clip(np.asarray(Image.open(gt)).astype(int) + (i + 1) * 7, 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(tmp_path / "pred" / f"{name}.png") if (tmp_path / "pred").exists() else (
            (tmp_path / "pred").mkdir(), Image.fromarray(noisy).save(tmp_path / "pred" / f"{name}.png"))
    return tmp_path / "pred", tmp_path / "gt"


def _load(path):
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)


@pytest.mark.parametrize("metric", ["psnr", "ssim"])
def test_eval_full_reference_json_matches_the_library(cli, pairs, metric):
    pred, gt = pairs
    result = cli("eval", metric, "--pred", pred, "--gt", gt, "--y-channel", "--crop-border", "4", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    fn = getattr(iqa, metric)
    expected = [fn(_load(pred / f"{n}.png"), _load(gt / f"{n}.png"), 4, y_channel=True) for n in ("a", "b")]
    assert [r[metric] for r in report["images"]] == pytest.approx(expected)
    assert report["mean"] == pytest.approx(sum(expected) / 2) and "Y channel" in report["convention"]
    table = cli("eval", metric, "--pred", pred, "--gt", gt)
    assert table.exit_code == 0 and "mean of 2" in table.output


def test_eval_mismatched_names_and_sizes(cli, pairs, tmp_path):
    pred, gt = pairs
    (gt / "b.png").rename(gt / "c.png")
    assert_error(cli("eval", "psnr", "--pred", pred, "--gt", gt), "have no ground truth of the same name", "b")
    (gt / "c.png").rename(gt / "b.png")
    _image(gt / "b.png", 43, 50)  # slightly larger: not a multiple of the scale → cropped, with a note
    result = cli("eval", "psnr", "--pred", pred, "--gt", gt)
    assert result.exit_code == 0 and "cropped" in result.output
    _image(gt / "b.png", 80, 80)
    assert_error(cli("eval", "ssim", "--pred", pred, "--gt", gt), "is 48x40 but its ground truth")
    assert_error(cli("eval", "psnr", "--pred", tmp_path / "nope", "--gt", gt), "does not exist")


def test_eval_niqe_and_lpips(cli, tmp_path):
    folder = tmp_path / "imgs"
    _image(folder / "big.png", 128, 160)
    result = cli("eval", "niqe", "--pred", folder, "--json")
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)["images"][0]["niqe"]
    assert value == pytest.approx(iqa.niqe(_load(folder / "big.png")))
    _image(folder / "small.png", 40, 40)
    assert_error(cli("eval", "niqe", "--pred", folder), "at least 96x96")
    assert_error(cli("eval", "lpips", "--pred", folder, "--gt", folder), "alexnet-owt-7be5be79.pth", "--lpips-weights")


# ---- eval sr ----------------------------------------------------------------------------------


def test_eval_sr_reports_model_and_bicubic(cli, tiny_run, tmp_path):
    result = cli("eval", "sr", tiny_run, "--data", "builtin", "--limit", "1", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["count"] == 1 and report["images"][0]["name"] == "chelsea.png"
    for side in ("model", "bicubic"):
        assert {"psnr_y", "ssim_y", "niqe"} <= set(report["mean"][side])
    folder = tmp_path / "Set5"
    _image(folder / "HR" / "baby.png", 110, 121)
    table = cli("eval", "sr", tiny_run, "--data", folder, "--device", "cpu")
    assert table.exit_code == 0, table.output
    assert "bicubic PSNR-Y" in table.output and "cropped" in table.output
    assert_error(cli("eval", "sr", tiny_run, "--data", tmp_path / "none"), "neither")
