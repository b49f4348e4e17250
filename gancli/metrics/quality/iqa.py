"""Image-quality metrics of super-resolution: PSNR, SSIM, NIQE (MATLAB-compatible) and LPIPS.

Conventions (say which one a number uses):
- Images are uint8 RGB tensors (3, H, W) or float tensors holding 0..255 values.
- `y_channel=True`: the luma of MATLAB's rgb2ycbcr (ITU-R BT.601, studio range),
  Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, kept as float (unrounded), as scikit-image's
  rgb2ycbcr and BasicSR compute it. SR papers report PSNR/SSIM on Y with `crop_border = scale`.
- PSNR: 10·log10(255² / MSE), MSE over all kept pixels and channels (scikit-image's definition).
- SSIM: Wang et al. 2004 as in their MATLAB ssim_index: 11×11 Gaussian window σ = 1.5, K = (0.01,
  0.03), L = 255, 'valid' filtering, no downsampling; colour images average the per-channel SSIM.
  Equal to skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255).
- NIQE: Mittal et al. 2012, a port of the authors' MATLAB `computequality` (96×96 blocks, two
  scales, MATLAB imresize) with the pristine model of their release (weights/niqe_pris_params.npz).
  Colour input is reduced to MATLAB's uint8 rgb2ycbcr Y (the PIRM-2018 SR convention) or rgb2gray.
- LPIPS: the `lpips` package (v0.1 linear heads shipped in its wheel) on torchvision's ImageNet
  AlexNet/VGG16 backbone weights, which must be present in the torch hub cache or given by path.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from gancli.data.sr import imresize
from gancli.errors import DataError, MissingWeightsError

WEIGHTS_DIR = Path(__file__).parent / "weights"
NIQE_PARAMS = WEIGHTS_DIR / "niqe_pris_params.npz"

# MATLAB rgb2ycbcr (BT.601) luma row, for RGB in [0, 1]; and MATLAB rgb2gray's coefficients
YCBCR_Y = (65.481, 128.553, 24.966)
GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


# ---------------------------------------------------------------------------------------------
# colour conversion and preparation
# ---------------------------------------------------------------------------------------------


def _as_float(image: Tensor | np.ndarray) -> Tensor:
    """(C, H, W) float64 tensor of 0..255 values from a uint8/float tensor or an HWC/HW numpy array."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
        if image.ndim == 3 and image.shape[-1] in (1, 3) and image.shape[0] not in (1, 3):
            image = image.permute(2, 0, 1)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise DataError(f"Expected an image of shape (3, H, W) or (1, H, W), got {tuple(image.shape)}.")
    return image.detach().cpu().to(torch.float64)


def rgb_to_y(image: Tensor) -> Tensor:
    """BT.601 luma of MATLAB's rgb2ycbcr on 0..255 RGB (3, H, W) → (1, H, W), unrounded."""
    w = torch.tensor(YCBCR_Y, dtype=torch.float64) / 255.0
    return 16.0 + (image * w[:, None, None]).sum(0, keepdim=True)


def rgb_to_y_uint8(image: Tensor) -> Tensor:
    """MATLAB rgb2ycbcr(uint8) luma: the Y above rounded to whole numbers (as MATLAB returns uint8)."""
    return torch.floor(rgb_to_y(image) + 0.5)


def rgb_to_gray_uint8(image: Tensor) -> Tensor:
    """MATLAB rgb2gray(uint8): 0.2989 R + 0.5870 G + 0.1140 B, rounded."""
    w = torch.tensor(GRAY, dtype=torch.float64)
    return torch.floor((image * w[:, None, None]).sum(0, keepdim=True) + 0.5).clamp(0, 255)


def _crop(image: Tensor, border: int) -> Tensor:
    if border < 0:
        raise DataError(f"--crop-border must not be negative, got {border}.")
    if border == 0:
        return image
    if min(image.shape[-2:]) <= 2 * border:
        raise DataError(f"Image of {image.shape[-1]}x{image.shape[-2]} px is too small for crop border {border}.")
    return image[..., border:-border, border:-border]


def _prepare_pair(pred, gt, crop_border: int, y_channel: bool) -> tuple[Tensor, Tensor]:
    pred, gt = _as_float(pred), _as_float(gt)
    if pred.shape != gt.shape:
        raise DataError(f"Prediction and ground truth differ in size: {tuple(pred.shape)} vs {tuple(gt.shape)}.")
    if y_channel and pred.shape[0] == 3:
        pred, gt = rgb_to_y(pred), rgb_to_y(gt)
    return _crop(pred, crop_border), _crop(gt, crop_border)


# ---------------------------------------------------------------------------------------------
# PSNR, SSIM
# ---------------------------------------------------------------------------------------------


def psnr(pred, gt, crop_border: int = 0, y_channel: bool = False) -> float:
    """PSNR in dB of 0..255 images (inf when identical)."""
    pred, gt = _prepare_pair(pred, gt, crop_border, y_channel)
    mse = torch.mean((pred - gt) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


@lru_cache(maxsize=4)
def _gaussian_1d(size: int, sigma: float) -> Tensor:
    """The normalized 1-D factor of MATLAB fspecial('gaussian', size, sigma), float64.

    fspecial's 2-D window is exp(-(x²+y²)/2σ²) normalized to sum 1, i.e. the outer product of this
    normalized 1-D window with itself (its tiny-value cut-off removes nothing for the sizes used here),
    so filtering runs as two 1-D passes.
    """
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _gaussian_filter(x: Tensor, size: int, sigma: float, pad: str | None = None) -> Tensor:
    """Separable Gaussian filtering of (N, 1, H, W): 'valid' output, or same-size with pad='replicate'."""
    g = _gaussian_1d(size, sigma).to(x.dtype)
    if pad:
        r = (size - 1) // 2
        x = F.pad(x, (r, r, r, r), mode=pad)
    x = F.conv2d(x, g.view(1, 1, size, 1))
    return F.conv2d(x, g.view(1, 1, 1, size))


def ssim(pred, gt, crop_border: int = 0, y_channel: bool = False) -> float:
    """SSIM (Wang et al. 2004, MATLAB ssim_index settings), averaged over channels."""
    pred, gt = _prepare_pair(pred, gt, crop_border, y_channel)
    if min(pred.shape[-2:]) < 11:
        raise DataError(f"SSIM needs images of at least 11x11 px, got {pred.shape[-1]}x{pred.shape[-2]}.")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = pred[:, None], gt[:, None]  # channels as batch

    def blur(t: Tensor) -> Tensor:
        return _gaussian_filter(t, 11, 1.5)  # 'valid'

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3)).mean().item()


# ---------------------------------------------------------------------------------------------
# NIQE
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def niqe_pristine_params(path: str | None = None) -> tuple[Tensor, Tensor]:
    """(mu (36,), cov (36, 36)) of the NIQE pristine model, float64."""
    file = Path(path) if path else NIQE_PARAMS
    if not file.is_file():
        raise MissingWeightsError(f"NIQE's pristine parameters '{file}' are missing; reinstall gancli.")
    with np.load(file) as data:
        mu = torch.from_numpy(np.asarray(data["mu_pris_param"], dtype=np.float64)).reshape(-1)
        cov = torch.from_numpy(np.asarray(data["cov_pris_param"], dtype=np.float64))
    return mu, cov


# 0.2:0.001:10 and r(γ) = Γ(2/γ)² / (Γ(1/γ) Γ(3/γ)), the lookup table of the moment-matching fit
FLAT_EPS = 1e-10  # see _mscn
_GAMMA = 0.2 + 0.001 * torch.arange(9801, dtype=torch.float64)
_R_GAMMA = torch.exp(2 * torch.lgamma(2 / _GAMMA) - torch.lgamma(1 / _GAMMA) - torch.lgamma(3 / _GAMMA))


def _gamma_fn(x: Tensor) -> Tensor:
    return torch.exp(torch.lgamma(x))


def _nearest_index(values: Tensor) -> Tensor:
    """argmin over the table of (r(γ) - value)², first minimum on ties, as MATLAB's min.

    r(γ) increases strictly on the table, so the minimum is one of the two entries around the
    value's insertion point. A NaN value gives index 0, as MATLAB's min of an all-NaN vector does.
    """
    hi = torch.searchsorted(_R_GAMMA, values.nan_to_num(nan=-1.0)).clamp(1, len(_R_GAMMA) - 1)
    lo = hi - 1
    d_lo, d_hi = (_R_GAMMA[lo] - values) ** 2, (_R_GAMMA[hi] - values) ** 2
    index = torch.where(d_hi < d_lo, hi, lo)
    return torch.where(torch.isnan(values), torch.zeros_like(index), index)


def aggd_fit(samples: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Asymmetric generalized Gaussian fit of each row (MATLAB estimateaggdparam): α, β_left, β_right."""
    neg, pos = samples < 0, samples > 0
    left_std = torch.sqrt((samples**2 * neg).sum(1) / neg.sum(1))  # NaN when there is no negative sample
    right_std = torch.sqrt((samples**2 * pos).sum(1) / pos.sum(1))
    gamma_hat = left_std / right_std
    r_hat = samples.abs().mean(1) ** 2 / (samples**2).mean(1)
    r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    alpha = _GAMMA[_nearest_index(r_hat_norm)]
    scale = torch.sqrt(_gamma_fn(1 / alpha) / _gamma_fn(3 / alpha))
    return alpha, left_std * scale, right_std * scale


def _block_features(blocks: Tensor) -> Tensor:
    """The 18 NIQE features of each MSCN block (n, b, b) → (n, 18) (MATLAB computefeature)."""
    flat = blocks.reshape(blocks.shape[0], -1)
    alpha, bl, br = aggd_fit(flat)
    feats = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):  # circshift: horizontal, vertical, two diagonals
        pair = (blocks * torch.roll(blocks, shift, dims=(1, 2))).reshape(blocks.shape[0], -1)
        alpha, bl, br = aggd_fit(pair)
        mean = (br - bl) * _gamma_fn(2 / alpha) / _gamma_fn(1 / alpha)
        feats += [alpha, mean, bl, br]
    return torch.stack(feats, 1)


def _mscn(image: Tensor) -> Tensor:
    """Mean-subtracted contrast-normalized coefficients, 7×7 Gaussian σ 7/6, replicate borders."""
    x = image[None, None]
    mu = _gaussian_filter(x, 7, 7 / 6, pad="replicate")
    sigma = torch.sqrt((_gaussian_filter(x * x, 7, 7 / 6, pad="replicate") - mu * mu).abs())
    mscn = ((x - mu) / (sigma + 1))[0, 0]
    # In a flat area the coefficients are 0 in exact arithmetic; what is left is rounding noise
    # (|x| < 1e-12) whose signs depend on the filter's summation order, yet the AGGD fit counts
    # them as negative or positive samples. Snapping it to 0 makes NIQE independent of that order.
    return torch.where(mscn.abs() < FLAT_EPS, torch.zeros_like(mscn), mscn)


def _nan_cov(x: Tensor) -> Tensor:
    """MATLAB nancov: rows holding a NaN are dropped; normalized by N - 1 (zero for a single row)."""
    x = x[~torch.isnan(x).any(1)]
    if x.shape[0] < 2:
        return torch.zeros(x.shape[1], x.shape[1], dtype=x.dtype)
    centred = x - x.mean(0, keepdim=True)
    return centred.T @ centred / (x.shape[0] - 1)


def niqe(image, crop_border: int = 0, convert: str = "y", block_size: int = 96) -> float:
    """NIQE of one image (lower is better); colour → MATLAB uint8 Y ('y') or rgb2gray ('gray')."""
    image = _as_float(image)
    if image.shape[0] == 3:
        if convert not in ("y", "gray"):
            raise DataError(f"NIQE converts colour images with 'y' or 'gray', not '{convert}'.")
        image = rgb_to_y_uint8(image) if convert == "y" else rgb_to_gray_uint8(image)
    image = _crop(image, crop_border)[0]
    rows, cols = image.shape[0] // block_size, image.shape[1] // block_size
    if rows == 0 or cols == 0:
        raise DataError(f"NIQE needs at least {block_size}x{block_size} px (after the border crop), "
                        f"got {image.shape[1]}x{image.shape[0]}.")
    image = image[: rows * block_size, : cols * block_size]
    feats = []
    for scale in (1, 2):
        b = block_size // scale
        mscn = _mscn(image)
        blocks = mscn.reshape(rows, b, cols, b).permute(0, 2, 1, 3).reshape(-1, b, b)
        feats.append(_block_features(blocks))
        if scale == 1:
            image = imresize(image, 0.5)
    feats = torch.cat(feats, 1)
    mu_pris, cov_pris = niqe_pristine_params()
    mu_dist = torch.nanmean(feats, 0)
    cov_dist = _nan_cov(feats)
    diff = (mu_pris - mu_dist)[None]
    inv = torch.linalg.pinv((cov_pris + cov_dist) / 2)
    return math.sqrt((diff @ inv @ diff.T).item())


# ---------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------

LPIPS_BACKBONES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def torchvision_weights_file(filename: str, path: str | Path | None = None) -> Path | None:
    """A torchvision weights file given by path, else from the torch hub cache, else None."""
    if path:
        return Path(path).expanduser()
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return cached if cached.is_file() else None


class LPIPSMetric:
    """LPIPS v0.1 (Zhang et al. 2018) with the `lpips` package's linear heads; lower is more similar.

    The backbone weights are loaded at the first comparison, so that missing image folders are reported first.
    """

    def __init__(self, net: str = "alex", weights: str | Path | None = None, device: str | torch.device = "cpu"):
        if net not in LPIPS_BACKBONES:
            raise DataError(f"LPIPS backbone must be one of {', '.join(LPIPS_BACKBONES)}, not '{net}'.")
        self.net, self.weights, self.device = net, weights, torch.device(device)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self):
        filename = LPIPS_BACKBONES[self.net]
        file = torchvision_weights_file(filename, self.weights)
        if file is None or not file.is_file():
            where = f"'{file}'" if file else f"the torch hub cache ({Path(torch.hub.get_dir()) / 'checkpoints'})"
            raise MissingWeightsError(
                f"LPIPS needs torchvision's ImageNet {self.net} weights '{filename}', not found in {where}; "
                f"copy the file there or pass --lpips-weights PATH.")
        try:
            import lpips
        except ImportError:
            raise MissingWeightsError("LPIPS needs the 'lpips' package: pip install lpips.") from None
        import contextlib
        import io
        import warnings

        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            model = lpips.LPIPS(net=self.net, pnet_rand=True, verbose=False)
        _load_backbone(model, file)
        return model.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, pred, gt, crop_border: int = 0) -> float:
        pred, gt = _prepare_pair(pred, gt, crop_border, y_channel=False)
        if pred.shape[0] != 3:
            raise DataError("LPIPS needs colour (RGB) images.")
        x = (pred / 127.5 - 1).float()[None].to(self.device)
        y = (gt / 127.5 - 1).float()[None].to(self.device)
        return self.model(x, y).item()


def _load_backbone(model, file: Path) -> None:
    """Copy torchvision's `features.{i}.*` weights into lpips' sliced backbone (`net.sliceK.{i}.*`)."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means unusable weights
        raise MissingWeightsError(f"Weights file '{file}' cannot be read ({exc.__class__.__name__}).") from None
    targets = {}
    for key in model.net.state_dict():
        _, index, param = key.split(".")  # sliceK.i.weight
        targets[f"features.{index}.{param}"] = key
    try:
        mapped = {targets[k]: state[k] for k in targets}
        model.net.load_state_dict(mapped)
    except (KeyError, RuntimeError) as exc:
        raise MissingWeightsError(f"Weights file '{file}' is not the torchvision backbone LPIPS expects "
                                  f"({exc.__class__.__name__}: {str(exc)[:120]}).") from None
