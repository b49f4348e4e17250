"""The generative metrics as formulas on features: FID, KID, Inception Score, improved precision/recall.

Conventions follow torch-fidelity so that the numbers agree with it: random subsets and shuffles come
from numpy's RandomState(2020) drawn in the same order, and the first argument of KID and
precision/recall is the generated set, the second the real set. IS and precision/recall then equal
torch-fidelity's exactly on the same features. KID's kernels are summed in float64 here and in float32 by
torch-fidelity, so its KID differs by float32 rounding (1e-7 to 5e-5 relative, ~1e-4 in the std).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch

from gancli.errors import DataError

SEED = 2020  # torch-fidelity's rng_seed
FID_METHODS = ("eigh", "sqrtm", "eigvals")


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str) -> float:
    """Tr((Σ1 Σ2)^½), the cross term of FID."""
    if method == "eigh":
        # Σ1Σ2 has the eigenvalues of the PSD matrix Σ1^½ Σ2 Σ1^½: two symmetric eigen-decompositions
        # (fast, and rounding noise of rank-deficient covariances is clipped instead of square-rooted).
        w, v = np.linalg.eigh(sigma1)
        root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        middle = root1 @ sigma2 @ root1
        eig = np.linalg.eigvalsh((middle + middle.T) / 2)
        return float(np.sqrt(np.clip(eig, 0, None)).sum())
    if method == "eigvals":  # torch-fidelity 0.4
        eig = np.linalg.eigvals(sigma1.dot(sigma2)).astype(np.complex128)
        return float(np.sqrt(eig).real.sum())
    if method == "sqrtm":  # pytorch-fid
        with warnings.catch_warnings():  # scipy warns of singular products, which rank-deficient covariances are
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
            if not np.isfinite(covmean).all():
                offset = np.eye(sigma1.shape[0]) * 1e-6
                covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
        if np.iscomplexobj(covmean):
            if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
                raise DataError("FID's matrix square root has a large imaginary part; the covariances are degenerate.")
            covmean = covmean.real
        return float(np.trace(covmean))
    raise ValueError(f"unknown FID method {method!r}; use one of {FID_METHODS}")


def fid_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                   method: str = "eigh") -> float:
    """FID = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) in float64 (Heusel et al. 2017, eq. 6)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise DataError(f"FID needs statistics of one feature size; got {mu1.shape} and {mu2.shape}.")
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * _trace_sqrt_product(sigma1, sigma2, method))


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef0: float = 1.0) -> torch.Tensor:
    """k(x, y) = (xᵀy / d + coef0)^degree, the KID kernel (Bińkowski et al. 2018)."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(k_xx: torch.Tensor, k_xy: torch.Tensor, k_yy: torch.Tensor) -> float:
    """Unbiased MMD²: off-diagonal means of K_XX and K_YY minus twice the mean of K_XY."""
    m = k_xx.shape[0]
    xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    yy = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return float(xx + yy - 2 * k_xy.sum() / (m * m))


def kid(fake: np.ndarray, real: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = SEED,
        device: str | torch.device = "cpu") -> tuple[float, float]:
    """KID: mean and std of unbiased MMD² over random subsets, polynomial kernel, float64."""
    n_fake, n_real = len(fake), len(real)
    if subset_size < 2:
        raise DataError(f"KID's subset size must be at least 2, got {subset_size}.")
    if n_fake < subset_size or n_real < subset_size:
        raise DataError(f"KID uses subsets of {subset_size} images but got {n_fake} fake and {n_real} real; "
                        f"give more images or a smaller --subset-size.")
    if subsets < 1:
        raise DataError(f"KID needs at least one subset, got {subsets}.")
    x_all = torch.as_tensor(fake, device=device).double()
    y_all = torch.as_tensor(real, device=device).double()
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        x = x_all[torch.as_tensor(rng.choice(n_fake, subset_size, replace=False), device=device)]
        y = y_all[torch.as_tensor(rng.choice(n_real, subset_size, replace=False), device=device)]
        mmds[i] = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y))
    return float(mmds.mean()), float(mmds.std())


def inception_score(logits: np.ndarray, splits: int = 10, seed: int = SEED, shuffle: bool = True) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) ‖ p(y))) per split; mean and std over splits (Salimans et al. 2016)."""
    logits = torch.as_tensor(logits).double()
    n = logits.shape[0]
    if n < splits:
        raise DataError(f"The Inception Score with {splits} splits needs at least {splits} images, got {n}.")
    if shuffle:
        logits = logits[torch.as_tensor(np.random.RandomState(seed).permutation(n))]
    p, log_p = logits.softmax(dim=1), logits.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        q = p[lo:hi].mean(dim=0, keepdim=True)
        kl = (p[lo:hi] * (log_p[lo:hi] - q.log())).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


def _kth_neighbour_radius(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance of each point to its k-th nearest other point (the point itself is the 1st)."""
    return torch.cat([torch.cdist(part, x).kthvalue(k + 1, dim=1).values for part in x.split(chunk)])


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    """Fraction of points inside at least one ball (centre, radius)."""
    inside = [(torch.cdist(part, centres) <= radii).any(dim=1) for part in points.split(chunk)]
    return float(torch.cat(inside).float().mean())


def precision_recall(fake: np.ndarray, real: np.ndarray, k: int = 3, chunk: int = 2500,
                     device: str | torch.device = "cpu") -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): k-NN balls around each set's features.

    Precision: fraction of fake points within some real point's k-NN radius; recall: the converse.
    """
    if min(len(fake), len(real)) <= k:
        raise DataError(f"Precision/recall with k={k} needs more than {k} images per side, "
                        f"got {len(fake)} fake and {len(real)} real.")
    x = torch.as_tensor(fake, device=device).float()
    y = torch.as_tensor(real, device=device).float()
    radius_fake, radius_real = _kth_neighbour_radius(x, k, chunk), _kth_neighbour_radius(y, k, chunk)
    return _coverage(x, y, radius_real, chunk), _coverage(y, x, radius_fake, chunk)
