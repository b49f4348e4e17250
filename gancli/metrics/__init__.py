"""Metrics in three rooms: .generative (FID, IS, KID, precision/recall, PRD), .quality (PSNR, SSIM, NIQE, LPIPS) and
.judges (builtin networks that score builtin data); the generative engine's names are handed on here."""

from gancli.metrics.generative.evaluator import METRICS, Evaluator, GeneratorEvaluator, Score, evaluate

__all__ = ["METRICS", "Evaluator", "GeneratorEvaluator", "Score", "evaluate"]
