"""VGG16 fc2 features (the precision/recall feature space) against torch-fidelity's, with random weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gancli.errors import ConfigError, MissingWeightsError
from gancli.metrics.generative import scores as gen
from gancli.metrics.generative.features import prepare
from gancli.metrics.generative.vgg16 import VGG16Features, load_vgg16, random_vgg16_state_dict


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory):
    """A torchvision VGG16 state dict of random values, saved as a weights file (553 MB, made once)."""
    path = tmp_path_factory.mktemp("vgg") / "random-vgg16.pth"
    torch.save(random_vgg16_state_dict(0), path)
    return path


@pytest.fixture(scope="module")
def images():
    from gancli.metrics.generative.bench import make_images

    return make_images(12, 32, seed=3)


def test_fc2_features_and_precision_recall_equal_torch_fidelitys(vgg_weights, images):
    from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    theirs = FeatureExtractorVGG16("vgg16", ["fc2_relu"], feature_extractor_weights_path=str(vgg_weights))
    ours = prepare(load_vgg16(vgg_weights), "cpu")
    assert ours.pool_layer == "fc2_relu" and ours.resize == "tf1-bilinear-224" and not ours.official
    with torch.no_grad():
        (pool_theirs,) = theirs(images)
        pool_ours, logits = ours(images)
    assert pool_ours.shape == (12, ours.pool_dim) and logits.shape == (12, ours.logits_dim)
    assert (pool_theirs > 0).float().mean() > 0.2  # the random weights keep the features alive
    scale = pool_theirs.abs().max().item()  # float rounding (channels-last convolutions) only
    torch.testing.assert_close(pool_ours, pool_theirs, rtol=1e-4, atol=1e-5 * scale)
    fake, real = pool_theirs[:6], pool_theirs[6:]
    expected = calculate_precision_recall_full(fake, real, 3)
    assert gen.precision_recall(pool_ours[:6].numpy(), pool_ours[6:].numpy(), k=3) == pytest.approx(expected)


def test_a_state_dict_of_another_network_is_a_clear_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, path)
    with pytest.raises(MissingWeightsError, match="is not a torchvision VGG16 state dict"):
        load_vgg16(path)


def test_engines_other_than_eager_are_refused_for_vgg16():
    net = VGG16Features(random_vgg16_state_dict(1))
    with pytest.raises(ConfigError, match="--engine compile applies to the inception features"):
        prepare(net, "cpu", "fp32", "compile")
    assert prepare(net, "cpu", "fp32", "auto").engine == "eager"


def test_eval_pr_with_vgg16_weights_through_the_cli(cli, vgg_weights, tmp_path, monkeypatch):
    from gancli.metrics.generative.bench import make_images
    from gancli.data.images import save_image

    monkeypatch.setenv("GANCLI_CACHE", str(tmp_path / "cache"))
    for name, seed in (("real", 1), ("fake", 2)):
        (tmp_path / name).mkdir()
        for i, image in enumerate(make_images(8, 32, seed=seed)):
            save_image(image, tmp_path / name / f"{i}.png")
    result = cli("eval", "pr", "--real", tmp_path / "real", "--fake", tmp_path / "fake", "--weights", vgg_weights,
                 "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    score = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0 <= score["precision"] <= 1 and 0 <= score["recall"] <= 1 and "f_score" in score
    p = score["protocol"]
    assert p["feature_net"] == "vgg16-imagenet-torchvision" and p["features"] == "fc2_relu"
    assert "torch-fidelity's prc default" in p["pr_note"] and not p["official_weights"]
    refused = cli("eval", "is", "--fake", tmp_path / "fake", "--features", "vgg16", "--weights", vgg_weights,
                  "--device", "cpu")
    assert refused.exit_code == 1 and "needs class logits" in " ".join(refused.output.split())
    assert np.isfinite(score["precision"])
