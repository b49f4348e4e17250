"""A missing data folder is the error, in one sentence, before any weights are looked for or fetched (issue 27)."""

from __future__ import annotations

import pytest


def assert_error(result, *fragments):
    assert result.exit_code == 1, (result.exit_code, result.output)
    text = " ".join(result.output.split())
    assert "Error:" in text and "Traceback" not in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


@pytest.fixture
def no_weights(monkeypatch):
    """Any reach for feature or perceptual weights fails the test loudly."""
    import gancli.metrics.generative.features as features
    import gancli.metrics.quality.iqa as iqa
    import gancli.objectives.perceptual as perceptual
    import recipes.spade_nets as spade_nets

    def reached(*args, **kwargs):
        raise AssertionError("weights were looked for before the data was checked")

    monkeypatch.setattr(features, "load_feature_net", reached)
    monkeypatch.setattr(iqa, "torchvision_weights_file", reached)
    monkeypatch.setattr(perceptual, "vgg19_weights_path", reached)
    monkeypatch.setattr(spade_nets, "VGG19Loss", reached)
    import recipes.spade
    monkeypatch.setattr(recipes.spade, "VGG19Loss", reached)


@pytest.mark.parametrize("command", [["eval", "prd", "--real", "{missing}", "--fake", "builtin:test"],
                                     ["eval", "fid", "--real", "{missing}", "--fake", "builtin:test"],
                                     ["eval", "fid", "--real", "builtin:test", "--fake", "{missing}"],
                                     ["eval", "is", "--fake", "{missing}"]])
def test_eval_checks_its_sources_before_the_feature_weights(cli, tmp_path, no_weights, command):
    missing = tmp_path / "missing"
    result = cli(*[part.format(missing=missing) for part in command])
    assert_error(result, f"'{missing}' does not exist")


def test_spade_checks_its_data_before_the_vgg19_weights(cli, tmp_path, no_weights):
    result = cli("train", "spade", "--data", f"ade20k:{tmp_path / 'missing'}", "--out", tmp_path / "r")
    assert_error(result, "ADE20K folder", "does not exist")
    assert not (tmp_path / "r").exists()


def test_sr_checks_its_data_before_the_vgg19_weights(cli, tmp_path, no_weights):
    result = cli("train", "sr", "--preset", "esrgan", "--data", tmp_path / "missing", "--out", tmp_path / "r")
    assert_error(result, "is neither 'builtin', 'div2k:PATH' nor an existing folder")
    assert not (tmp_path / "r").exists()


def test_eval_lpips_checks_its_folders_before_the_backbone_weights(cli, tmp_path, no_weights):
    result = cli("eval", "lpips", "--pred", tmp_path / "missing", "--gt", tmp_path)
    assert_error(result, "missing' does not exist")
