"""`gancli eval iqa` (any pyiqa metric, gancli's niqe, PI) and PI in `gancli eval sr`, with the iqa extra."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gancli import api
from gancli.metrics.quality import iqa, pyiqa_metrics

pytestmark = pytest.mark.skipif(not pyiqa_metrics.installed(), reason="the iqa extra (pyiqa) is not installed")
MA = 6.25  # what the stand-in NRQM model returns for every image
TINY_SR = {"pretrain_steps": 1, "hr_size": 32, "batch_size": 2, "n_blocks": 1, "workers": 0, "sample_every": 0,
           "ckpt_every": 0, "eval_every": 0, "log_every": 1, "n_samples": 2}


def assert_error(result, *fragments):
    assert result.exit_code == 1, (result.exit_code, result.output)
    text = " ".join(result.output.split())
    assert "Error:" in text and "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, text


@pytest.fixture(autouse=True)
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no pyiqa weights, and no download
    monkeypatch.delenv(pyiqa_metrics.WEIGHTS_ENV, raising=False)


@pytest.fixture
def folders(tmp_path):
    """Two predictions and their ground truths, 112×120 (NIQE needs 96 px after the crop)."""
    rng = np.random.default_rng(0)
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    for name in ("a", "b"):
        truth = rng.integers(0, 256, (112, 120, 3), dtype=np.uint8)
        noisy = np.clip(truth.astype(int) + rng.integers(-20, 21, truth.shape), 0, 255).astype(np.uint8)
        Image.fromarray(truth).save(gt / f"{name}.png")
        Image.fromarray(noisy).save(pred / f"{name}.png")
    return pred, gt


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_names_our_niqe_pi_and_pyiqas_metrics(cli):
    result = cli("eval", "iqa", "--list")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for name in ("niqe", "pi", "pyiqa:niqe", "psnr", "nrqm", "musiq", "brisque"):
        assert f" {name} " in f" {text} ", name
    help_text = " ".join(cli("eval", "iqa", "--help").output.split())
    assert "0.04 of MATLAB" in help_text and "0.44" in help_text


def test_pyiqa_psnr_with_the_psnr_options_equals_eval_psnr(cli, folders):
    pred, gt = folders
    options = ["--pred", pred, "--gt", gt, "--y-channel", "--crop-border", "4", "--json"]
    ours, theirs = _json(cli("eval", "psnr", *options)), _json(cli("eval", "iqa", "--metric", "psnr", *options))
    assert theirs["count"] == 2 and theirs["mean"] == pytest.approx(ours["mean"], abs=1e-4)
    assert "Y channel" in theirs["convention"] and "4 px border crop" in theirs["convention"]
    niqe = _json(cli("eval", "iqa", "--metric", "niqe", "--pred", pred, "--crop-border", "4", "--json"))
    assert niqe["mean"] == _json(cli("eval", "niqe", "--pred", pred, "--crop-border", "4", "--json"))["mean"]


def test_pi_is_half_of_ten_minus_ma_plus_our_niqe(cli, folders, tmp_path, write_nrqm_model):
    pred, _ = folders
    write_nrqm_model(tmp_path / "w" / "NRQM_model.mat", MA)
    report = _json(cli("eval", "iqa", "--metric", "pi", "--pred", pred, "--crop-border", "4", "--iqa-weights",
                       tmp_path / "w", "--json"))
    for row in report["images"]:
        image = torch_image(pred / f"{row['name']}.png")
        assert row["pi"] == pytest.approx(0.5 * ((10 - MA) + iqa.niqe(image, 4, convert="y")))
    assert "NRQM" in report["convention"] and "NIQE" in report["convention"]
    assert "NRQM_model.mat, sha256 " in report["convention"]  # the weights a score came from


def torch_image(path):
    import torch

    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)


def test_missing_weights_and_bad_options_are_one_sentence(cli, folders, monkeypatch):
    monkeypatch.setenv("GANCLI_NO_DOWNLOAD", "1")
    pred, gt = folders
    for metric in ("nrqm", "pi"):
        assert_error(cli("eval", "iqa", "--metric", metric, "--pred", pred), "'NRQM_model.mat' is not in",
                     "--iqa-weights DIR", "downloads are off")
    assert_error(cli("eval", "iqa", "--metric", "nosuchmetric", "--pred", pred), "no metric 'nosuchmetric'", "--list")
    assert_error(cli("eval", "iqa", "--metric", "psnr", "--pred", pred), "full-reference", "--gt")
    assert_error(cli("eval", "iqa", "--metric", "niqe", "--pred", pred, "--gt", gt), "no-reference")
    assert_error(cli("eval", "iqa", "--pred", pred), "needs --metric")
    assert_error(cli("eval", "iqa", "--metric", "lpips", "--pred", pred, "--gt", gt, "--y-channel"),
                 "no Y-channel option")


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sr-pi") / "run"
    api.train(api.make_config("sr", out=str(out), steps=2, device="cpu", sets=TINY_SR))
    return out


def test_eval_sr_reports_pi_when_nrqms_weights_are_here(cli, sr_run, tmp_path, monkeypatch, write_nrqm_model):
    without = _json(cli("eval", "sr", sr_run, "--data", "builtin", "--limit", "1", "--device", "cpu", "--json"))
    assert "pi" not in without["mean"]["model"] and any("PI is not reported" in n for n in without["notes"])
    write_nrqm_model(tmp_path / "w" / "NRQM_model.mat", MA)
    monkeypatch.setenv(pyiqa_metrics.WEIGHTS_ENV, str(tmp_path / "w"))
    report = _json(cli("eval", "sr", sr_run, "--data", "builtin", "--limit", "1", "--device", "cpu", "--json"))
    for side in ("model", "bicubic"):
        scores = report["mean"][side]
        assert scores["ma"] == pytest.approx(MA) and scores["pi"] == pytest.approx(0.5 * (10 - MA + scores["niqe"]))
    assert "PI = ½((10 − Ma) + NIQE)" in report["protocol"]


def test_training_time_evaluation_reports_pi(sr_run, tmp_path, monkeypatch, write_nrqm_model):
    run = api.open_run(sr_run)
    run.cfg.eval_images = 1
    without = run.recipe.evaluate(run.load_generator())
    assert "pi" not in without and "niqe" in without
    write_nrqm_model(tmp_path / "w" / "NRQM_model.mat", MA)
    monkeypatch.setenv(pyiqa_metrics.WEIGHTS_ENV, str(tmp_path / "w"))
    run = api.open_run(sr_run)
    run.cfg.eval_images = 1
    scores = run.recipe.evaluate(run.load_generator())
    assert scores["ma"] == pytest.approx(MA) and scores["pi"] == pytest.approx(0.5 * (10 - MA + scores["niqe"]))
    assert scores["pi_bicubic"] == pytest.approx(0.5 * (10 - MA + scores["niqe_bicubic"]))
    assert "PI = ½((10 − Ma) + NIQE)" in scores["protocol"]
