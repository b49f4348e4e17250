"""`gancli bench eval`'s engine: gancli's Inception feature pipeline against torch-fidelity's on the same images,
in one process (speed, and how far FID/IS move)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gancli.errors import ConfigError

class _Images(Dataset):
    """In-memory uint8 images as torch-fidelity's input Dataset."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def make_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """n random uint8 images: the first half uniform noise, the second smooth colour fields (so FID is large)."""
    gen = torch.Generator().manual_seed(seed)
    half = n // 2
    noise = torch.randint(0, 256, (half, 3, size, size), generator=gen, dtype=torch.uint8)
    coarse = torch.rand(n - half, 3, 4, 4, generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return torch.cat([noise, (smooth * 255).round().to(torch.uint8)])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _scores(pool: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """FID between the two halves and IS of all images, from one engine's features."""
    from gancli.metrics.generative.scores import fid_from_stats, inception_score
    from gancli.metrics.generative.stats import FeatureStats

    half = len(pool) // 2
    a, b = FeatureStats(), FeatureStats()
    a.update(torch.from_numpy(pool[:half]))
    b.update(torch.from_numpy(pool[half:]))
    splits = 10 if len(logits) >= 10 else 1
    return {"fid": fid_from_stats(a.mu(), a.sigma(), b.mu(), b.sigma()),
            "is": inception_score(logits, splits=splits)[0]}


def pytorch_default_precision(device: torch.device) -> str:
    """What PyTorch's default flags make of float32 convolutions here: 'tf32' on an Ampere or later GPU, else 'fp32'."""
    if device.type != "cuda" or not torch.backends.cudnn.allow_tf32:
        return "fp32"
    return "tf32" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp32"


def time_torch_fidelity(images: torch.Tensor, weights: Path, device: torch.device, batch_size: int,
                        repeats: int, tf32: bool) -> tuple[float, np.ndarray, np.ndarray]:
    """Best-of-repeats seconds of torch-fidelity's own feature pipeline (its Dataset → DataLoader → extractor).

    No cuDNN kernel search, as torch-fidelity runs; tf32 says whether its convolutions may use TF32.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.utils import get_featuresdict_from_dataset

    from gancli.metrics.generative.features import cudnn_flags

    cuda = device.type == "cuda"
    extractor = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                            feature_extractor_weights_path=str(weights)).to(device)
    dataset = _Images(images)
    best, out = float("inf"), None
    with cudnn_flags(benchmark=False, tf32=tf32), torch.no_grad():
        extractor(images[:batch_size].to(device))  # warm-up
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            out = get_featuresdict_from_dataset(dataset, extractor, batch_size, cuda, save_cpu_ram=not cuda,
                                                verbose=False)
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return best, out["2048"].numpy(), out["logits_unbiased"].numpy()


def time_gancli(images: torch.Tensor, weights: Path, device: torch.device, batch_size: int, precision: str,
                engine: str, repeats: int, memory_format: str) -> tuple[float, np.ndarray, np.ndarray]:
    """Best-of-repeats seconds of gancli's engine: pinned host batches, side-stream copies, streamed stats."""
    from gancli.metrics.generative.features import extract, load_inception, prepare

    net = prepare(load_inception(weights), device, precision, engine, memory_format)
    host = images.pin_memory() if device.type == "cuda" else images
    batches = lambda: (host[i:i + batch_size] for i in range(0, len(host), batch_size))
    # warm-up on both batch shapes, the full and the last one
    extract(net, (host[:batch_size], host[len(host) - (len(host) % batch_size or batch_size):]))
    best, result = float("inf"), None
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        result = extract(net, batches(), keep_pool=True, keep_logits=True)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best, result.pool, result.logits


def profile_stages(images: torch.Tensor, weights: Path, device: torch.device, batch_size: int, precision: str,
                   engine: str, repeats: int, memory_format: str) -> list[dict[str, float | str]]:
    """Milliseconds per batch of each step of gancli's forward (resize, each Inception block, head, statistics).

    Each step is timed alone (CUDA events on the GPU) on one batch already on the device, best of repeats,
    after a warm-up pass; the steps' sum is the engine's compute time per batch without the host side.
    """
    from gancli.metrics.generative.features import extraction_flags, load_inception, prepare
    from gancli.metrics.generative.stats import FeatureStats

    net = prepare(load_inception(weights), device, precision, engine, memory_format)
    steps = [*net.stages(), ("feature statistics (float64)", lambda out: FeatureStats(device=device).update(out[0]))]
    batch = images[:batch_size].to(device)
    cuda = device.type == "cuda"
    best = [float("inf")] * len(steps)
    with extraction_flags(net, device), torch.no_grad():
        for attempt in range(repeats + 1):  # the first pass warms up (cuDNN's kernel search, allocations)
            x = batch
            for index, (_, step) in enumerate(steps):
                _sync(device)
                if cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    x = step(x)
                    end.record()
                    end.synchronize()
                    seconds = start.elapsed_time(end) / 1e3
                else:
                    start_time = time.perf_counter()
                    x = step(x)
                    seconds = time.perf_counter() - start_time
                if attempt:
                    best[index] = min(best[index], seconds)
    total = sum(best)
    return [{"step": name, "ms": 1e3 * t, "share": t / total} for (name, _), t in zip(steps, best)]


def profile_kernels(images: torch.Tensor, weights: Path, device: torch.device, batch_size: int, precision: str,
                    engine: str, memory_format: str, top: int = 15) -> list[dict[str, float | str | int]]:
    """The kernels (CUDA) or operators (CPU) that take the most time in one forward pass, from torch.profiler.

    Where the stage profile says which block is slow, this says why: the convolution algorithms cuDNN chose,
    layout transposes, element-wise passes, concatenations.
    """
    from torch.profiler import ProfilerActivity, profile

    from gancli.metrics.generative.features import extraction_flags, load_inception, prepare

    net = prepare(load_inception(weights), device, precision, engine, memory_format)
    batch = images[:batch_size].to(device)
    cuda = device.type == "cuda"
    with extraction_flags(net, device), torch.no_grad():
        net(batch)  # warm-up: kernel search, allocations, compilation
        _sync(device)
        with profile(activities=[ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]) as prof:
            net(batch)
            _sync(device)
    kind = torch.autograd.DeviceType.CUDA if cuda else torch.autograd.DeviceType.CPU
    events = [e for e in prof.key_averages() if e.device_type == kind]
    self_us = (lambda e: e.self_device_time_total) if cuda else (lambda e: e.self_cpu_time_total)
    total = sum(self_us(e) for e in events) or 1.0
    events.sort(key=self_us, reverse=True)
    return [{"name": e.key[:100], "calls": e.count, "ms": self_us(e) / 1e3, "share": self_us(e) / total}
            for e in events[:top]]


def compare(rows: list[dict]) -> None:
    """Add to each timed row its speed against torch-fidelity (as PyTorch's defaults run it, and in the same
    precision) and how far its FID and IS are from torch-fidelity's in IEEE fp32."""
    base = {row["precision"]: row for row in rows if row["engine"] == "torch-fidelity"}
    default = next((row for row in base.values() if row["pytorch_defaults"]), None)
    reference = base.get("fp32")
    for row in rows:
        if default is None or "error" in row:
            continue
        row["speedup"] = row["img_per_s"] / default["img_per_s"]
        if row["precision"] in base:
            row["speedup_same_precision"] = row["img_per_s"] / base[row["precision"]]["img_per_s"]
        row["fid_rel_diff"] = abs(row["fid"] - reference["fid"]) / max(abs(reference["fid"]), 1e-12)
        row["is_rel_diff"] = abs(row["is"] - reference["is"]) / max(abs(reference["is"]), 1e-12)


def _choices(precision: str, engine: str, memory_format: str, device: torch.device) -> tuple[list, list, list]:
    """The precisions, engines and memory layouts to time ('all' or one each), checked."""
    from gancli.metrics.generative.features import ENGINES, MEMORY_FORMATS, PRECISIONS

    choices = {"--precision": (precision, PRECISIONS), "--engine": (engine, ENGINES),
               "--memory-format": (memory_format, tuple(MEMORY_FORMATS))}
    for flag, (value, allowed) in choices.items():
        if value != "all" and value not in allowed:
            raise ConfigError(f"{flag} must be one of {', '.join(allowed)} or all, got '{value}'.")
    precisions = list(PRECISIONS) if precision == "all" else [precision]
    if device.type != "cuda":  # tf32 and bf16 are CUDA precisions
        precisions = [p for p in precisions if p == "fp32"] or precisions
    engines = [e for e in ENGINES if e != "auto"] if engine == "all" else [engine]
    layouts = list(MEMORY_FORMATS) if memory_format == "all" else [memory_format]
    return precisions, engines, layouts


def _gancli_row(images: torch.Tensor, weights: Path, device: torch.device, batch_size: int, precision: str,
                engine: str, layout: str, repeats: int, profiles: list | None) -> dict:
    """One timed row of gancli's engine (its error, when this GPU lacks a kernel); with profiles, also its profile."""
    from gancli.metrics.generative.features import resolve_engine

    row = {"engine": f"gancli {resolve_engine(engine, device)}", "precision": precision, "memory_format": layout}
    try:
        seconds, pool, logits = time_gancli(images, weights, device, batch_size, precision, engine, repeats, layout)
    except (RuntimeError, NotImplementedError) as exc:  # e.g. a kernel this GPU/cuDNN lacks
        return {**row, "error": f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"}
    if profiles is not None:  # steps are timed uncompiled; the kernel list is of the engine as it runs
        label = row["engine"] + (" (steps timed uncompiled)" if engine == "compile" else "")
        try:  # the profiler needs CUPTI on a GPU: without it, the timings above still stand
            kernels = profile_kernels(images, weights, device, batch_size, precision, engine, layout)
        except RuntimeError as exc:
            kernels = [{"name": f"torch.profiler failed: {str(exc).splitlines()[0][:80]}", "calls": 0, "ms": 0.0,
                        "share": 0.0}]
        steps = profile_stages(images, weights, device, batch_size, precision, engine, repeats, layout)
        profiles.append({**row, "engine": label, "batch_size": min(batch_size, len(images)), "steps": steps,
                         "kernels": kernels})
    return {**row, "seconds": seconds, "img_per_s": len(images) / seconds, **_scores(pool, logits)}


def bench_feature_engines(n: int = 10_000, size: int = 32, batch_size: int = 500, precision: str = "fp32",
                          engine: str = "auto", memory_format: str = "channels_last", device: str = "auto",
                          weights: Path | None = None, random_weights: bool = False, repeats: int = 2,
                          baseline: bool = True, profile: bool = False) -> dict:
    """Feature-extraction img/s of gancli vs torch-fidelity on n in-memory random images, and how far FID/IS move.

    torch-fidelity is timed as PyTorch's default flags run it (TF32 convolutions on an Ampere or later GPU) and,
    where that is TF32, again in IEEE fp32; every row's FID and IS are compared with torch-fidelity's in IEEE fp32.
    """
    from gancli.device import resolve_device
    from gancli.metrics.generative.features import find_inception_weights, random_inception_state_dict
    from gancli.metrics.generative.weights import sha256_file

    if n < 4 or size < 1 or batch_size < 1 or repeats < 1:
        raise ConfigError("--n must be at least 4, and --size, --batch-size and --repeats positive.")
    if random_weights and weights:
        raise ConfigError("Give either --weights or --random-weights, not both.")
    dev = resolve_device(device)
    precisions, engines, layouts = _choices(precision, engine, memory_format, dev)
    default = pytorch_default_precision(dev)
    with tempfile.TemporaryDirectory() as tmp:
        if random_weights:
            weights = Path(tmp) / "random-inception.pth"
            torch.save(random_inception_state_dict(0), weights)
        else:
            weights = find_inception_weights(weights)
        images = make_images(n, size)
        rows, profiles = [], ([] if profile else None)
        for p in ([default] + (["fp32"] if default == "tf32" else [])) if baseline else []:
            seconds, pool, logits = time_torch_fidelity(images, weights, dev, batch_size, repeats, p == "tf32")
            rows.append({"engine": "torch-fidelity", "precision": p, "pytorch_defaults": p == default,
                         "seconds": seconds, "img_per_s": n / seconds, **_scores(pool, logits)})
        rows += [_gancli_row(images, weights, dev, batch_size, p, e, layout, repeats, profiles)
                 for p in precisions for e in engines for layout in layouts]
        weights_hash = sha256_file(weights)[:8]
    compare(rows)
    return {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "n": n, "size": size,
            "batch_size": batch_size, "weights_sha256": weights_hash, "random_weights": random_weights,
            "pytorch_default_precision": default, "torch": torch.__version__,
            "rows": rows, **({"profiles": profiles} if profile else {})}
