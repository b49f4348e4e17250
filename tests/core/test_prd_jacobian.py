"""PRD (Sajjadi et al. 2018) and Jacobian conditioning (Odena et al. 2018) on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gancli.errors import DataError
from gancli.metrics.generative.jacobian import jacobian_condition_numbers
from gancli.metrics.generative.prd import compute_prd, f_beta, prd_curve


def blobs(centers, per_center: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([c + 0.05 * rng.standard_normal((per_center, len(c))) for c in np.asarray(centers, float)])


def test_prd_of_identical_sets_is_one_and_of_disjoint_sets_zero():
    centers = np.eye(8) * 10
    points = blobs(centers, 30, 0)
    same = compute_prd(points, points, num_runs=3)
    assert same.f_8 == pytest.approx(1, abs=2e-3) and same.f_1_8 == pytest.approx(1, abs=2e-3)
    assert same.precision.shape == same.recall.shape == (1001,)
    far = compute_prd(blobs(centers + 100, 30, 1), points, num_runs=3)
    assert far.f_8 < 1e-6 and far.f_1_8 < 1e-6


def test_prd_curve_of_a_dropped_mode_by_hand():
    """Generated mass all on mode 1 of two equal modes: precision 1 at recall 1/2 (Sajjadi et al., Fig. 1)."""
    precision, recall = prd_curve(np.array([1.0, 0.0]), np.array([0.5, 0.5]))
    # alpha(l) = min(l/2, 1), beta(l) = min(1/2, 1/l): the best points are (P, R) = (1, 1/2)
    f8, f18 = f_beta(precision, recall, 8).max(), f_beta(precision, recall, 1 / 8).max()
    assert f8 == pytest.approx(65 * 0.5 / (64 + 0.5), abs=5e-3)  # (1 + b^2) P R / (b^2 P + R), b = 8
    assert f18 == pytest.approx((65 / 64) * 0.5 / (1 / 64 + 0.5), abs=5e-3)  # b = 1/8
    assert recall.max() == pytest.approx(0.5, abs=1e-3) and precision.max() == pytest.approx(1.0)


def test_prd_needs_balanced_sets():
    with pytest.raises(DataError, match="as many real as generated"):
        compute_prd(np.zeros((30, 4)), np.zeros((40, 4)))


def test_condition_number_of_a_linear_generator_is_that_of_its_matrix():
    A = torch.randn(12, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    A[:, 0] *= 20  # stretch one direction: a badly conditioned map

    def generate(z):  # images (B, 3, 2, 2) = A z
        return (z @ A.T).reshape(z.shape[0], 3, 2, 2)

    result = jacobian_condition_numbers(generate, torch.randn(4, 5, dtype=torch.float64))
    expected = float(np.linalg.cond(A.numpy()))
    assert result.cond == pytest.approx([expected] * 4, rel=1e-10)
    stats = result.as_dict()
    assert stats["cond_min"] == pytest.approx(expected) and stats["cond_max"] == pytest.approx(expected)
    # Odena et al.'s metric tensor JᵀJ has the squared singular values: log cond(JᵀJ) = 2 log cond(J)
    assert stats["log_metric_cond_mean"] == pytest.approx(math.log(np.linalg.cond(A.numpy().T @ A.numpy())))
    assert stats["log_metric_cond_std"] == pytest.approx(0, abs=1e-9)


def test_eval_jacobian_and_prd_on_a_tiny_run(tmp_path, cli, tiny_uncond, monkeypatch):
    monkeypatch.setenv("GANCLI_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    result = cli("train", "uncond", *tiny_uncond, "--resolution", "16", "--steps", "2", "--out", run)
    assert result.exit_code == 0, result.output
    jac = cli("eval", "jacobian", run, "--n", "3")
    assert jac.exit_code == 0, jac.output
    assert "cond(J) mean" in jac.output and "over 3 latents" in jac.output
    prd = cli("eval", "prd", "--real", "builtin:test:16", "--fake", run, "--n", "40", "--features", "builtin",
              "--runs", "2", "--device", "cpu")
    assert prd.exit_code == 0, prd.output
    assert "F8" in prd.output and "real 40 " in " ".join(prd.output.split()) and (run / "prd.png").is_file()
    bad = cli("eval", "prd", "--real", "builtin:test:16", "--fake", run, "--runs", "0")
    assert bad.exit_code == 1 and "--runs must be a positive number" in " ".join(bad.output.split())
    missing = cli("eval", "jacobian", tmp_path / "nope")
    assert missing.exit_code == 1 and "does not exist" in missing.output
