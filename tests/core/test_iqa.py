"""IQA metrics against their references: scikit-image (PSNR/SSIM), MATLAB values on TID2013 (NIQE)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gancli.errors import DataError, MissingWeightsError
from gancli.metrics.quality import iqa
from gancli.objectives.perceptual import CONV5_4, VGGFeatureLoss, vgg19_features

# pyiqa installs five TID2013 pairs next to itself (site-packages/ResultsCalibra/{ref_dir,dist_dir}).
_PYIQA = importlib.util.find_spec("pyiqa")  # located, not imported (importing pyiqa is slow)
CALIBRA = Path(_PYIQA.origin).parent.parent / "ResultsCalibra" if _PYIQA else Path("/nonexistent")
NAMES = ("I03", "I04", "I06", "I08", "I19")
# pyiqa's calibration table (ResultsCalibra/calibration_summary.csv, MATLAB columns):
MATLAB_NIQE = (15.7536, 3.6549, 3.2355, 3.1840, 8.6352)  # of the distorted image, rgb2gray input
SKIMAGE_PSNR = (21.11, 20.99, 27.01, 23.30, 21.62)  # RGB, distorted vs reference
MATLAB_SSIM = (0.6993, 0.9978, 0.9989, 0.9669, 0.6519)  # rgb2gray, no downsampling
# Measured agreement of gancli's NIQE with MATLAB: 0.0000 0.0000 0.0012 0.0180 0.0303 → tolerance 0.04
# (pyiqa's NIQE is off by up to 0.44 on I19; see gancli.metrics.quality.iqa._mscn for the flat-area cause).
NIQE_TOLERANCE = 0.04

needs_calibra = pytest.mark.skipif(not CALIBRA.is_dir(), reason="pyiqa's ResultsCalibra images are not installed")


def _load(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)


def _pair(seed=0, shape=(40, 52, 3)):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, shape, dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-25, 26, shape), 0, 255).astype(np.uint8)
    return pred, gt, torch.from_numpy(pred).permute(2, 0, 1), torch.from_numpy(gt).permute(2, 0, 1)


SK_SSIM = {"data_range": 255, "gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_and_ssim_equal_scikit_image_on_rgb_and_y(crop):
    pred, gt, tp, tg = _pair()
    sl = slice(crop, -crop) if crop else slice(None)
    assert iqa.psnr(tp, tg, crop) == pytest.approx(peak_signal_noise_ratio(gt[sl, sl], pred[sl, sl]), abs=1e-10)
    assert iqa.ssim(tp, tg, crop) == pytest.approx(
        structural_similarity(gt[sl, sl].astype(float), pred[sl, sl].astype(float), channel_axis=2, **SK_SSIM),
        abs=1e-10)
    yp, yg = rgb2ycbcr(pred)[..., 0][sl, sl], rgb2ycbcr(gt)[..., 0][sl, sl]
    assert iqa.psnr(tp, tg, crop, y_channel=True) == pytest.approx(
        peak_signal_noise_ratio(yg, yp, data_range=255), abs=1e-10)
    assert iqa.ssim(tp, tg, crop, y_channel=True) == pytest.approx(structural_similarity(yg, yp, **SK_SSIM), abs=1e-10)


def test_identical_images_and_bad_inputs():
    _, _, tp, _ = _pair()
    assert iqa.psnr(tp, tp) == float("inf") and iqa.ssim(tp, tp) == pytest.approx(1.0)
    with pytest.raises(DataError, match="differ in size"):
        iqa.psnr(tp, tp[:, :-1])
    with pytest.raises(DataError, match="too small"):
        iqa.psnr(tp, tp, crop_border=30)
    with pytest.raises(DataError, match="at least 96x96"):
        iqa.niqe(tp)


@needs_calibra
@pytest.mark.parametrize("index", range(5))
def test_metrics_reproduce_the_tid2013_reference_values(index):
    name = NAMES[index]
    ref, dist = _load(CALIBRA / "ref_dir" / f"{name}.bmp"), _load(CALIBRA / "dist_dir" / f"{name}.bmp")
    assert iqa.psnr(dist, ref) == pytest.approx(SKIMAGE_PSNR[index], abs=0.005)
    gray_d, gray_r = iqa.rgb_to_gray_uint8(dist.double()), iqa.rgb_to_gray_uint8(ref.double())
    assert iqa.ssim(gray_d, gray_r) == pytest.approx(MATLAB_SSIM[index], abs=5e-5)
    assert iqa.niqe(dist, convert="gray") == pytest.approx(MATLAB_NIQE[index], abs=NIQE_TOLERANCE)


@needs_calibra
def test_niqe_is_exact_on_images_without_flat_areas_and_y_differs_from_gray():
    dist = _load(CALIBRA / "dist_dir" / "I04.bmp")
    assert iqa.niqe(dist, convert="gray") == pytest.approx(3.6549, abs=1e-4)
    assert abs(iqa.niqe(dist, convert="y") - iqa.niqe(dist, convert="gray")) > 1e-3
    assert iqa.niqe(dist, crop_border=4) != iqa.niqe(dist)


def test_niqe_pristine_parameters_ship_with_gancli():
    mu, cov = iqa.niqe_pristine_params()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    assert (iqa.WEIGHTS_DIR / "NIQE_PARAMS.md").is_file()


def test_nearest_index_equals_matlab_min_of_squared_differences():
    values = torch.cat([torch.rand(5000, dtype=torch.float64) * 0.8, iqa._R_GAMMA[::97],
                        torch.tensor([float("nan"), -1.0, 5.0], dtype=torch.float64)])
    brute = torch.argmin((iqa._R_GAMMA[None] - values[:, None]) ** 2, dim=1)
    brute[torch.isnan(values)] = 0
    assert torch.equal(iqa._nearest_index(values), brute)


# ---- weights that must not be downloaded ----------------------------------------------------


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path


def test_lpips_without_backbone_weights_is_a_clear_error(empty_hub):
    metric = iqa.LPIPSMetric("alex")  # the weights are looked for at the first comparison
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth.*--lpips-weights"):
        metric(*_pair(shape=(64, 64, 3))[2:])


ALEXNET_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


def test_lpips_runs_on_a_given_backbone_file(empty_hub):
    torch.manual_seed(0)
    state = {}
    for index, (c_out, c_in, k) in ALEXNET_CONVS.items():  # random stand-in for torchvision's AlexNet file
        state[f"features.{index}.weight"] = torch.randn(c_out, c_in, k, k) * (2 / (c_in * k * k)) ** 0.5
        state[f"features.{index}.bias"] = torch.zeros(c_out)
    file = empty_hub / "alex.pth"
    torch.save(state, file)
    metric = iqa.LPIPSMetric("alex", file)
    _, _, tp, tg = _pair(shape=(64, 64, 3))
    assert metric(tp, tp) == pytest.approx(0.0, abs=1e-6)
    assert metric(tp, tg) > 0
    torch.save({"unrelated": torch.zeros(1)}, file)
    with pytest.raises(MissingWeightsError, match="not the torchvision backbone"):
        iqa.LPIPSMetric("alex", file).model


def test_vgg_loss_without_weights_says_how_to_provide_them(empty_hub):
    with pytest.raises(MissingWeightsError, match="vgg19-dcbb9e9d.pth.*--vgg-weights PATH.*--perceptual none"):
        VGGFeatureLoss()
    with pytest.raises(MissingWeightsError, match="does not exist"):
        VGGFeatureLoss(empty_hub / "nope.pth")


def test_vgg_features_have_torchvisions_layer_indices():
    from torchvision.models import vgg19

    with torch.device("meta"):
        reference = vgg19(weights=None).features
    ours = vgg19_features()
    assert [type(m) for m in ours] == [type(m) for m in reference]
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in reference.parameters()]
    assert isinstance(ours[CONV5_4], torch.nn.Conv2d) and isinstance(ours[CONV5_4 + 1], torch.nn.ReLU)


def test_vgg_loss_loads_a_torchvision_state_dict_from_the_hub_cache(empty_hub):
    torch.manual_seed(0)
    checkpoints = empty_hub / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    # a random stand-in for torchvision's file: its features.* keys (the classifier is never read)
    state = {f"features.{k}": v for k, v in vgg19_features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(1)
    torch.save(state, checkpoints / "vgg19-dcbb9e9d.pth")
    loss = VGGFeatureLoss()
    assert len(loss.features) == 35 and isinstance(loss.features[-1], torch.nn.Conv2d)  # conv5_4, no ReLU
    torch.testing.assert_close(loss.features[34].weight, state["features.34.weight"])
    x = torch.rand(1, 3, 32, 32, requires_grad=True) * 2 - 1
    y = torch.rand(1, 3, 32, 32) * 2 - 1
    value = loss(x, y)
    value.backward()
    assert value > 0 and loss(y, y) == 0
    assert all(p.grad is None for p in loss.parameters())
