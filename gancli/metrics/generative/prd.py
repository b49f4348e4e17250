"""Precision and recall for distributions, PRD (Sajjadi et al. 2018), on feature vectors.

The real and generated features are clustered together (k-means, 20 clusters); the two cluster histograms
are compared along 1001 slopes λ = tan(θ), θ ∈ (0, π/2) (Sajjadi et al., Theorem 2):

    α(λ) = Σ_i min(λ·ref_i, eval_i)   (precision),    β(λ) = α(λ) / λ   (recall),

and the curve is averaged over 10 clusterings. F_8 (recall-weighted) and F_1/8 (precision-weighted) are the
maxima of F_β along the curve (their eq. 8 / Section 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gancli.errors import DataError
from gancli.figures import pyplot, save_figure

NUM_CLUSTERS, NUM_ANGLES, NUM_RUNS = 20, 1001, 10


@dataclass
class PRD:
    """A PRD curve (precision[i], recall[i] at slope i) and its F_8 / F_1/8 summary."""

    precision: np.ndarray
    recall: np.ndarray
    f_8: float
    f_1_8: float
    n_eval: int
    n_ref: int
    num_clusters: int
    num_runs: int

    def as_dict(self) -> dict:
        return {"f_8": self.f_8, "f_1_8": self.f_1_8, "n_eval": self.n_eval, "n_ref": self.n_ref,
                "num_clusters": self.num_clusters, "num_angles": len(self.precision), "num_runs": self.num_runs}


def kmeans(points: torch.Tensor, k: int, generator: torch.Generator, n_init: int = 10,
           max_iter: int = 100) -> torch.Tensor:
    """Cluster labels of the lowest-inertia of n_init k-means++ starts refined by Lloyd's iterations."""
    n = points.shape[0]
    if n < k:
        raise DataError(f"PRD clusters into {k} groups and needs at least {k} images; it got {n}.")
    best_labels, best_inertia = None, math.inf
    for _ in range(n_init):
        centers = _kmeans_plus_plus(points, k, generator)
        labels = None
        for _ in range(max_iter):
            distances = torch.cdist(points, centers).square_()
            new_labels = distances.argmin(1)
            if labels is not None and torch.equal(new_labels, labels):
                break
            labels = new_labels
            sums = torch.zeros_like(centers).index_add_(0, labels, points)
            counts = torch.bincount(labels, minlength=k).to(points.dtype)
            filled = counts > 0  # an emptied cluster keeps its old center
            centers[filled] = sums[filled] / counts[filled, None]
        inertia = torch.cdist(points, centers).square_().min(1).values.sum().item()
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    return best_labels


def _kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next center drawn with probability ∝ D(x)²."""
    n = points.shape[0]
    first = torch.randint(n, (1,), generator=generator, device=generator.device).item()
    centers = [points[first]]
    closest = (points - points[first]).square().sum(1)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than clusters: any point will do
            index = torch.randint(n, (1,), generator=generator, device=generator.device).item()
        else:
            index = torch.multinomial(closest / total, 1, generator=generator).item()
        centers.append(points[index])
        closest = torch.minimum(closest, (points - points[index]).square().sum(1))
    return torch.stack(centers).clone()


def cluster_histograms(eval_features: torch.Tensor, ref_features: torch.Tensor, num_clusters: int,
                       generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Histograms (summing to 1) of the eval and reference points over k-means clusters of their union."""
    labels = kmeans(torch.cat([eval_features, ref_features]), num_clusters, generator)
    n_eval = eval_features.shape[0]
    eval_hist = torch.bincount(labels[:n_eval], minlength=num_clusters).double() / n_eval
    ref_hist = torch.bincount(labels[n_eval:], minlength=num_clusters).double() / (len(labels) - n_eval)
    return eval_hist.cpu().numpy(), ref_hist.cpu().numpy()


def prd_curve(eval_dist: np.ndarray, ref_dist: np.ndarray, num_angles: int = NUM_ANGLES,
              epsilon: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Precision α(λ) = Σ min(λ·ref, eval) and recall β(λ) = α(λ)/λ at num_angles slopes (Sajjadi et al. Thm. 2)."""
    slopes = np.tan(np.linspace(epsilon, math.pi / 2 - epsilon, num_angles))
    precision = np.minimum(ref_dist[None, :] * slopes[:, None], eval_dist[None, :]).sum(axis=1)
    recall = precision / slopes
    return np.clip(precision, 0, 1), np.clip(recall, 0, 1)


def f_beta(precision: np.ndarray, recall: np.ndarray, beta: float, epsilon: float = 1e-10) -> np.ndarray:
    """F_β = (1 + β²) P R / (β² P + R); β > 1 weights recall, β < 1 precision."""
    return (1 + beta**2) * precision * recall / (beta**2 * precision + recall + epsilon)


def compute_prd(eval_features, ref_features, num_clusters: int = NUM_CLUSTERS, num_angles: int = NUM_ANGLES,
                num_runs: int = NUM_RUNS, seed: int = 0, device: str | torch.device = "cpu") -> PRD:
    """The PRD curve of eval against ref features (equal counts, as the paper asks), averaged over num_runs."""
    eval_features = torch.as_tensor(np.asarray(eval_features), dtype=torch.float32, device=device)
    ref_features = torch.as_tensor(np.asarray(ref_features), dtype=torch.float32, device=device)
    if eval_features.dim() != 2 or ref_features.dim() != 2 or eval_features.shape[1] != ref_features.shape[1]:
        raise DataError(f"PRD needs two sets of feature vectors of one size; got shapes "
                        f"{tuple(eval_features.shape)} and {tuple(ref_features.shape)}.")
    if eval_features.shape[0] != ref_features.shape[0]:
        raise DataError(f"PRD needs as many real as generated images (Sajjadi et al. cluster a balanced union); got "
                        f"{ref_features.shape[0]:,} real and {eval_features.shape[0]:,} generated.")
    generator = torch.Generator(eval_features.device).manual_seed(seed)
    curves = [prd_curve(*cluster_histograms(eval_features, ref_features, num_clusters, generator), num_angles)
              for _ in range(num_runs)]
    precision = np.mean([p for p, _ in curves], axis=0)
    recall = np.mean([r for _, r in curves], axis=0)
    return PRD(precision, recall, float(f_beta(precision, recall, 8).max()),
               float(f_beta(precision, recall, 1 / 8).max()), eval_features.shape[0], ref_features.shape[0],
               num_clusters, num_runs)


def plot_prd(curves: dict[str, PRD], out: str | Path) -> Path:
    """The PRD curves (recall on x, precision on y) with F_8 / F_1/8 in the legend, as a PNG."""
    plt = pyplot()

    out = Path(out)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for label, prd in curves.items():
        ax.plot(prd.recall, prd.precision, lw=1.6,
                label=f"{label}  (F8 {prd.f_8:.3f}, F1/8 {prd.f_1_8:.3f})")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall β")
    ax.set_ylabel("precision α")
    ax.set_title(f"PRD (Sajjadi et al. 2018): {next(iter(curves.values())).num_clusters} clusters, "
                 f"mean of {next(iter(curves.values())).num_runs} runs", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return save_figure(fig, out, dpi=120)
