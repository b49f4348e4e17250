"""Generative metrics (FID, IS, KID, precision/recall) and image-quality metrics; the engine is in .evaluator."""

from gancli.metrics.evaluator import METRICS, Evaluator, GeneratorEvaluator, Score, evaluate

__all__ = ["METRICS", "Evaluator", "GeneratorEvaluator", "Score", "evaluate"]
