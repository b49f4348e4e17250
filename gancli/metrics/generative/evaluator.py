"""The evaluation engine behind `gancli eval`: FID, IS, KID and precision/recall with their protocol.

    from gancli import api
    ev = api.evaluator(features="inception")            # run folders open through the API layer
    score = ev.evaluate("fid", real="cifar10:test", fake="runs/uncond-1", n=10_000)
    print(score.line(), score.protocol_line())

`Evaluator` itself takes images, folders, dataset specs and statistics files; a run folder needs the
`open_run` callable the API gives it (the metrics never open runs). Formulas live in
gancli.metrics.generative.scores, feature networks in .features, statistics files in .stats, the reference cache in
.cache, and SPEC parsing in .sources.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gancli.device import resolve_device
from gancli.errors import ConfigError, DataError

if TYPE_CHECKING:
    from gancli.metrics.generative.sources import Source
    from gancli.metrics.generative.stats import ReferenceStats

METRICS = ("fid", "is", "kid", "pr")
NAMES = {"fid": "FID", "is": "IS", "kid": "KID", "pr": "precision/recall"}
PROTOCOL_VERSION = 2  # 2: 'fp32' means IEEE float32 convolutions on CUDA too (TF32 is the 'tf32' precision)


@dataclass
class Score:
    """One metric's values and the protocol that produced them."""

    metric: str
    values: dict[str, float]
    protocol: dict[str, Any]

    @property
    def value(self) -> float:
        return self.values["precision" if self.metric == "pr" else self.metric]

    def line(self) -> str:
        """'FID 12.3456  [inception-v3-tf-2015-12-05 pool3]'."""
        v = self.values
        if self.metric == "fid":
            text = f"FID {v['fid']:.4f}".replace("-0.0000", "0.0000")  # identical sets: rounding, not a distance
        elif self.metric == "is":
            text = f"IS {v['is']:.4f} ± {v['is_std']:.4f}"
        elif self.metric == "kid":
            text = f"KID {v['kid']:.6f} ± {v['kid_std']:.6f}"
        else:
            text = f"precision {v['precision']:.4f}  recall {v['recall']:.4f}  F {v['f_score']:.4f}"
        return f"{text}  [{self.protocol['feature_label']} {self.layer}]"

    @property
    def layer(self) -> str:
        """The layer the score comes from: the logits for IS, the features for the others."""
        return self.protocol["logits"] if self.metric == "is" else self.protocol["features"]

    def protocol_line(self) -> str:
        """N real, N fake, splits/subsets, resize, network and weights hash in one line."""
        p = self.protocol
        parts = []
        if p.get("real"):
            parts.append(f"real {p['real']['n']:,} ({p['real']['label']})")
        parts.append(f"fake {p['fake']['n']:,} ({p['fake']['label']})")
        if self.metric == "is":
            parts.append(f"{p['is_splits']} splits")
        if self.metric == "kid":
            parts.append(f"{p['kid_subsets']} subsets of {p['kid_subset_size']}")
        if self.metric == "pr":
            parts.append(f"k={p['pr_k']}")
        parts += [f"resize {p['resize']}", f"{p['feature_net']} {self.layer}",
                  f"weights sha256 {p['weights_sha256'][:8]}", p["precision"]]
        return " · ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, **self.values, "protocol": self.protocol}


def _check_count(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{flag} must be a positive number of images, got {value}.")


@dataclass
class Evaluator:
    """A feature network (loaded on first use) plus the options of an evaluation; reusable across many evaluations."""

    features: str = "inception"
    weights: str | Path | None = None
    device: str | torch.device = "auto"
    precision: str = "fp32"
    batch_size: int | None = None
    workers: int | None = None
    engine: str = "auto"
    use_cache: bool = True
    download: bool | None = None  # weights and datasets: None fetches them unless $GANCLI_NO_DOWNLOAD is set
    data_root: str | Path | None = None  # where cifar10/stl10 specs live (else $GANCLI_DATA, ~/.cache/gancli/datasets)
    on_progress: Callable[[str, int, int | None], Any] | None = None  # (label, images done, total)
    on_info: Callable[[str], Any] | None = None
    # (spec, n, device=, checkpoint=, ema=, truncation=, seed=) -> Source of a run folder: given by the API layer
    # (gancli.api.evaluator), since the metrics never open run folders themselves.
    open_run: Callable[..., Source] | None = None
    last_cache: dict[str, str] = field(default_factory=dict)  # role -> hit | miss | file | off
    last_sources: tuple = ()  # (fake or images, real) sources of the last evaluation

    def __post_init__(self):
        from gancli.metrics.generative.features import FEATURE_NETS, PRECISIONS

        if self.features not in FEATURE_NETS:
            raise ConfigError(f"--features must be one of {', '.join(FEATURE_NETS)}, got '{self.features}'.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'.")
        self.device = resolve_device(self.device)
        self._net = None
        if self.batch_size is None:
            self.batch_size = 500 if self.device.type == "cuda" else 50
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be a positive number, got {self.batch_size}.")
        if self.workers is None:
            self.workers = min(8, os.cpu_count() or 1) if self.device.type == "cuda" else 0
        if self.workers < 0:
            raise ConfigError(f"--workers must be 0 or more, got {self.workers}.")

    @property
    def net(self):
        """The feature network, loaded on first use: the sources' specs are checked (a missing folder is an error)
        before any weights are looked for or fetched."""
        if self._net is None:
            from gancli.metrics.generative.features import load_feature_net

            self._net = load_feature_net(self.features, self.weights, self.device, self.precision, self.engine,
                                         self.download)
            if not self._net.official and self.on_info:
                self.on_info(f"warning: weights '{self._net.weights_path}' are not the official {self._net.name} "
                             f"file (sha256 {self._net.weights_hash[:8]}, expected "
                             f"{self._net.weights_spec.sha256_prefix}…); scores are not comparable with published "
                             f"numbers.")
        return self._net

    # ---- sources and statistics --------------------------------------------------------------
    def open(self, spec: str, *, n: int | None = None, **run_options) -> Source:
        from gancli.metrics.generative.sources import open_source
        return open_source(spec, n=n, device=self.device, workers=self.workers, data_root=self.data_root,
                           download=self.download, open_run=self.open_run, **run_options)

    def feature_description(self) -> dict[str, Any]:
        return {**self.net.describe(), "protocol": PROTOCOL_VERSION}

    def stats(self, source, *, need_pool: bool = False, need_logits: bool = False, role: str = "images"):
        """Statistics (and features on request) of a source: from its file, the cache, or one pass of the network."""
        from gancli.metrics.generative import cache
        from gancli.metrics.generative.features import extract
        from gancli.metrics.generative.stats import ReferenceStats

        if source.kind == "stats":
            source.stats.check_matches(self.feature_description(), f"in file '{source.spec}'")
            logits = source.stats.logits
            if source.stats.mu.shape[0] != self.net.pool_dim or (
                    logits is not None and logits.shape[1:] != (self.net.logits_dim,)):
                raise DataError(f"Statistics file '{source.spec}' is corrupt: its features are not the "
                                f"{self.net.pool_dim}-d {self.net.pool_layer} (and {self.net.logits_dim} logits) of "
                                f"{self.net.name}.")
            missing = "features" if need_pool and source.stats.pool is None else (
                "logits" if need_logits and source.stats.logits is None else None)
            if missing:
                raise DataError(f"Statistics file '{source.spec}' has no saved {missing}; KID, IS and "
                                f"precision/recall need them (recreate it with `gancli eval stats --with-features`).")
            self.last_cache[role] = "file"
            return source.stats
        key = {**source.description, **self.feature_description()}
        if source.cacheable and self.use_cache:
            hit = cache.lookup(key, need_pool, need_logits)
            if hit is not None:
                self.last_cache[role] = "hit"
                if self.on_info:
                    self.on_info(f"{role}: cached statistics {cache.cache_path(key)}")
                return hit
        done = 0

        def on_batch(count: int) -> None:
            nonlocal done
            done += count
            if self.on_progress:
                self.on_progress(f"{role} {source.label}", done, source.n)

        if self.on_progress:
            self.on_progress(f"{role} {source.label}", 0, source.n)
        # FID streams (mean and covariance only); per-image features are kept, and cached, when a metric needs them.
        extracted = extract(self.net, source.batches(self.batch_size), keep_pool=need_pool,
                            keep_logits=need_logits, on_batch=on_batch)
        meta = {**self.feature_description(), "source": source.label, "source_description": source.description,
                "n": extracted.n, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        stats = ReferenceStats.from_extracted(extracted, meta)
        if source.cacheable and self.use_cache:
            cache.store(key, stats)
            self.last_cache[role] = "miss"
        else:
            self.last_cache[role] = "off"
        return stats

    # ---- metrics -------------------------------------------------------------------------------
    def evaluate(self, metric: str, fake: str, real: str | None = None, *, n: int | None = None,
                 n_real: int | None = None, kid_subsets: int = 100, kid_subset_size: int | None = None,
                 is_splits: int = 10, pr_k: int = 3, fid_method: str = "eigh", checkpoint: str | None = None,
                 ema: bool = True, truncation: float | None = None, seed: int = 0) -> Score:
        """One metric of fake (a run, folder, dataset or stats file) against real (not needed by IS)."""
        return self.evaluate_many([metric], fake, real, n=n, n_real=n_real, kid_subsets=kid_subsets,
                                  kid_subset_size=kid_subset_size, is_splits=is_splits, pr_k=pr_k,
                                  fid_method=fid_method, checkpoint=checkpoint, ema=ema, truncation=truncation,
                                  seed=seed)[0]

    def evaluate_many(self, metrics: list[str], fake: str, real: str | None = None, *, n: int | None = None,
                      n_real: int | None = None, kid_subsets: int = 100, kid_subset_size: int | None = None,
                      is_splits: int = 10, pr_k: int = 3, fid_method: str = "eigh", checkpoint: str | None = None,
                      ema: bool = True, truncation: float | None = None, seed: int = 0) -> list[Score]:
        """Several metrics from one pass over each side."""
        for metric in metrics:
            if metric not in METRICS:
                raise ConfigError(f"Unknown metric '{metric}'; use one of {', '.join(METRICS)}.")
        _check_count(n, "--n")
        _check_count(n_real, "--n-real")
        from gancli.metrics.generative.scores import FID_METHODS
        if "fid" in metrics and fid_method not in FID_METHODS:
            raise ConfigError(f"--method must be one of {', '.join(FID_METHODS)}, got '{fid_method}'.")
        needs_real = any(m != "is" for m in metrics)
        if needs_real and not real:
            raise ConfigError(f"{NAMES[next(m for m in metrics if m != 'is')]} needs --real SPEC.")
        fake_source = self.open(fake, n=n, checkpoint=checkpoint, ema=ema, truncation=truncation, seed=seed)
        real_source = self.open(real, n=n_real) if needs_real else None
        if "is" in metrics and not self.net.logits_layer:
            raise ConfigError(f"The Inception Score needs class logits, which {self.net.name} does not give; use "
                              f"--features inception.")
        for role, source in (("fake", fake_source), ("real", real_source)):
            if source is not None and source.n < 2:
                raise DataError(f"{NAMES[metrics[0]]} needs at least 2 {role} images, and '{source.spec}' gives "
                                f"{source.n}.")
        self.last_sources = (fake_source, real_source)
        need_pool = any(m in ("kid", "pr") for m in metrics)
        real_stats = self.stats(real_source, need_pool=need_pool, role="real") if real_source else None
        fake_stats = self.stats(fake_source, need_pool=need_pool, need_logits="is" in metrics, role="fake")
        return [self._score(m, fake_source, fake_stats, real_source, real_stats, kid_subsets=kid_subsets,
                            kid_subset_size=kid_subset_size, is_splits=is_splits, pr_k=pr_k, fid_method=fid_method)
                for m in metrics]

    def _score(self, metric, fake_source, fake_stats, real_source, real_stats, *, kid_subsets, kid_subset_size,
               is_splits, pr_k, fid_method) -> Score:
        from gancli.metrics.generative import scores as gen

        protocol = self.protocol(fake_source, fake_stats, real_source, real_stats)
        if metric == "fid":
            values = {"fid": gen.fid_from_stats(fake_stats.mu, fake_stats.sigma, real_stats.mu, real_stats.sigma,
                                                method=fid_method)}
            protocol["fid_method"] = fid_method
            fewest = min(fake_stats.n, real_stats.n)
            if fewest <= self.net.pool_dim:
                self._warn(f"FID from {fewest:,} images of {self.net.pool_dim}-d features: the covariance is "
                           f"rank-deficient and FID is biased upwards; published FIDs use 10,000 or 50,000 images.")
        elif metric == "is":
            mean, std = gen.inception_score(fake_stats.logits, splits=is_splits)
            values = {"is": mean, "is_std": std}
            protocol.update(is_splits=is_splits, logits=self.net.logits_layer)
        elif metric == "kid":
            size = min(1000, fake_stats.n, real_stats.n) if kid_subset_size is None else kid_subset_size
            mean, std = gen.kid(fake_stats.pool, real_stats.pool, subsets=kid_subsets, subset_size=size,
                                device=self.device)
            values = {"kid": mean, "kid_std": std}
            if size == fake_stats.n == real_stats.n:
                self._warn(f"Every KID subset is the whole set of {size:,} images, so its ± is 0 and says nothing; "
                           f"use more images or a smaller --subset-size.")
            protocol.update(kid_subsets=kid_subsets, kid_subset_size=size, kid_kernel="(x.y/d + 1)^3",
                            kid_estimator="unbiased")
        else:
            precision, recall = gen.precision_recall(fake_stats.pool, real_stats.pool, k=pr_k, device=self.device)
            f_score = 2 * precision * recall / max(1e-5, precision + recall)  # torch-fidelity's F-score
            values = {"precision": precision, "recall": recall, "f_score": f_score}
            from gancli.metrics.generative.vgg16 import VGG16_NAME
            usual = (" (torch-fidelity's prc default)" if self.net.name == VGG16_NAME else
                     " (the paper and torch-fidelity use VGG16 fc2)")
            protocol.update(pr_k=pr_k, pr_note=f"Kynkäänniemi et al. 2019 on {self.net.name} {self.net.pool_layer} "
                                               f"features{usual}")
        return Score(metric, values, protocol)

    def _warn(self, text: str) -> None:
        if self.on_info:
            self.on_info(f"warning: {text}")

    def protocol(self, fake_source, fake_stats, real_source=None, real_stats=None) -> dict[str, Any]:
        from gancli import __version__

        def side(source, stats, role):
            return {"n": stats.n, "label": source.label, "spec": source.spec, "kind": source.kind,
                    "description": source.description, "statistics": self.last_cache.get(role, "computed")}

        return {**self.net.describe(), "feature_label": self.net.label, "official_weights": self.net.official,
                "engine": self.net.engine,
                "fake": side(fake_source, fake_stats, "fake"),
                "real": side(real_source, real_stats, "real") if real_source else None,
                "gancli": __version__, "protocol_version": PROTOCOL_VERSION}

    def save_stats(self, spec: str, out: str | Path, *, n: int | None = None, keep_features: bool = False,
                   checkpoint: str | None = None, ema: bool = True, truncation: float | None = None,
                   seed: int = 0) -> tuple[Path, ReferenceStats]:
        """Compute (or take from the cache) the statistics of spec and write them to out (.npz)."""
        _check_count(n, "--n")
        out = Path(out)
        if out.suffix != ".npz":
            raise ConfigError(f"--out must be a file name ending in .npz, got '{out}'.")
        source = self.open(spec, n=n, checkpoint=checkpoint, ema=ema, truncation=truncation, seed=seed)
        if source.kind == "stats":
            raise ConfigError(f"'{spec}' is already a statistics file.")
        self.last_sources = (source, None)
        stats = self.stats(source, need_pool=keep_features, need_logits=keep_features, role="images")
        if not keep_features:
            from gancli.metrics.generative.stats import ReferenceStats
            stats = ReferenceStats(stats.mu, stats.sigma, stats.n, stats.meta)
        return stats.save(out), stats


class GeneratorEvaluator:
    """FID/IS of a generator during training, against reference statistics cached on first use.

    A recipe's evaluate(G) can return `self.evaluator(lambda n, g: self.sample(G, n, g))`, with
    `best_metric = ("fid", "min")` to keep the best checkpoint by FID.
    """

    def __init__(self, reference: str, n: int = 10_000, metrics: tuple[str, ...] = ("fid", "is"),
                 features: str = "inception", weights: str | Path | None = None, device: str | torch.device = "auto",
                 batch_size: int | None = None, precision: str = "fp32", seed: int = 0, n_real: int | None = None,
                 data_root: str | Path | None = None):
        for metric in metrics:
            if metric not in ("fid", "is", "kid", "pr"):
                raise ConfigError(f"Generator evaluation supports fid, is, kid and pr, not '{metric}'.")
        self.reference, self.n, self.n_real, self.metrics, self.seed = reference, n, n_real, tuple(metrics), seed
        self.options = {"features": features, "weights": weights, "device": device, "batch_size": batch_size,
                        "precision": precision, "data_root": data_root}
        self._evaluator: Evaluator | None = None
        self._real = None

    @property
    def evaluator(self) -> Evaluator:
        if self._evaluator is None:
            self._evaluator = Evaluator(**self.options)
        return self._evaluator

    def __call__(self, sample: Callable[[int, torch.Generator], torch.Tensor]) -> dict[str, Any]:
        """sample(n, generator) -> n images in [-1, 1]; returns {'fid': .., 'is': .., 'precision': .., 'features': ..}."""
        from gancli.data.images import to_uint8
        from gancli.metrics.generative import scores as gen
        from gancli.metrics.generative.features import extract
        from gancli.metrics.generative.stats import ReferenceStats

        ev = self.evaluator
        need_pool = "kid" in self.metrics or "pr" in self.metrics
        if self._real is None and any(m != "is" for m in self.metrics):
            self._real = ev.stats(ev.open(self.reference, n=self.n_real), need_pool=need_pool, role="real")
        generator = torch.Generator(ev.device).manual_seed(self.seed)

        def batches():
            for start in range(0, self.n, ev.batch_size):
                with torch.no_grad():
                    yield to_uint8(sample(min(ev.batch_size, self.n - start), generator))

        fake = ReferenceStats.from_extracted(
            extract(ev.net, batches(), keep_pool=need_pool, keep_logits="is" in self.metrics), {})
        scores: dict[str, Any] = {}
        if "fid" in self.metrics:
            scores["fid"] = gen.fid_from_stats(fake.mu, fake.sigma, self._real.mu, self._real.sigma)
        if "is" in self.metrics:
            scores["is"], scores["is_std"] = gen.inception_score(fake.logits)
        if "kid" in self.metrics:
            size = min(1000, fake.n, self._real.n)
            scores["kid"], _ = gen.kid(fake.pool, self._real.pool, subset_size=size, device=ev.device)
        if "pr" in self.metrics:  # Kynkäänniemi et al. 2019, k = 3, on this evaluator's features
            scores["precision"], scores["recall"] = gen.precision_recall(fake.pool, self._real.pool, k=3,
                                                                         device=ev.device)
        scores["features"] = ev.net.label
        scores["protocol"] = f"{self.n} fake vs {self._real.n if self._real else 0} real ({self.reference})"
        return scores


def evaluate(metric: str, fake: str, real: str | None = None, **options: Any) -> Score:
    """One metric in one call: `evaluate("fid", fake="runs/x", real="cifar10:test", n=10_000)`.

    Options are Evaluator fields (features, weights, device, precision, batch_size, ...) or
    Evaluator.evaluate arguments (n, n_real, kid_subset_size, truncation, ...).
    """
    fields = {"features", "weights", "device", "precision", "batch_size", "workers", "engine", "use_cache", "download",
              "data_root"}
    ev = Evaluator(**{k: v for k, v in options.items() if k in fields})
    return ev.evaluate(metric, fake, real, **{k: v for k, v in options.items() if k not in fields})


__all__ = ["METRICS", "Evaluator", "GeneratorEvaluator", "Score", "evaluate"]


def config_evaluator(cfg, device: str | torch.device, data_reference: str = "", *, real: str | None = None,
                     features: str | None = None, n: int | None = None, metrics: tuple[str, ...] | None = None,
                     seed: int = 0) -> GeneratorEvaluator:
    """The GeneratorEvaluator of a training config (cfg.eval_*): against `real`, else cfg.eval_reference, else
    builtin:test at the run's resolution on builtin data and `data_reference` (default the training data) on real
    data; with `features`, else cfg.eval_features, else the builtin classifier on builtin data and TF-Inception."""
    builtin = not cfg.data
    reference = (real or getattr(cfg, "eval_reference", "")
                 or (f"builtin:test:{cfg.resolution}" if builtin else data_reference or cfg.data))
    features = features or getattr(cfg, "eval_features", "") or ("builtin" if builtin else "inception")
    return GeneratorEvaluator(reference, n=cfg.eval_n if n is None else n, metrics=tuple(metrics or cfg.eval_metrics),
                              features=features, device=device, seed=seed,
                              data_root=getattr(cfg, "data_root", "") or None)
