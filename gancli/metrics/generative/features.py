"""Feature networks for generative metrics and the streaming engine that runs them.

`inception`: the TF Inception v3 graph of 2015-12-05 in torch-fidelity's port (its blocks are used as a
library), pool3 2048-d features and 1008-class logits without bias, uint8 input resized to 299 with
TF1-compatible bilinear. The resize is done separably (bit-identical) and the blocks are rewritten
(inception_blocks: folded batch norms, stacked 1×1 convolutions, pool after convolution), all exact
rewrites of torch-fidelity's forward in real arithmetic (tests compare the scores to 1e-4).
`builtin`: a small classifier trained on gancli's builtin procedural images (see builtin_classifier).

Precisions (the arithmetic of the convolutions; features, statistics and scores stay float32/float64):
`fp32` is IEEE float32 throughout, TF32 off: torch-fidelity's values in fp32 to ~1e-6 relative. `tf32` lets cuDNN
run the float32 convolutions on TF32 tensor cores (10-bit mantissa products), which PyTorch does by default on
Ampere and later GPUs, torch-fidelity included: faster, and FID moves by about 1e-3 relative. `bf16` runs the
network in bfloat16: faster still, and FID moves further. `gancli bench eval` reports how far each moves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gancli.errors import ConfigError, MissingWeightsError
from gancli.metrics.generative.feature_net import FeatureNet, load_pretrained, load_strictly, tf1_resize
from gancli.metrics.generative.inception_blocks import FoldedConvReLU, fold_and_rewrite
from gancli.metrics.generative.weights import INCEPTION, find_weights

if TYPE_CHECKING:
    from gancli.metrics.generative.stats import FeatureStats

INCEPTION_NAME = "inception-v3-tf-2015-12-05"
FEATURE_NETS = ("inception", "vgg16", "builtin")
PRECISIONS = ("fp32", "tf32", "bf16")


def find_inception_weights(weights: str | Path | None = None, download: bool | None = None) -> Path:
    """The TF-Inception weights file (see weights.find_weights)."""
    return find_weights(INCEPTION, weights, download)


# ---------------------------------------------------------------------------------------------
# Feature networks
# ---------------------------------------------------------------------------------------------
def inception_skeleton() -> nn.Module:
    """torch-fidelity's InceptionV3 layers (same names and shapes), without loading any weights."""
    try:
        from torch_fidelity import feature_extractor_inceptionv3 as tfi
    except ImportError:
        raise MissingWeightsError("The inception features need the torch-fidelity package "
                                  "(pip install torch-fidelity).") from None

    net = nn.Module()
    net.Conv2d_1a_3x3 = tfi.BasicConv2d(3, 32, kernel_size=3, stride=2)
    net.Conv2d_2a_3x3 = tfi.BasicConv2d(32, 32, kernel_size=3)
    net.Conv2d_2b_3x3 = tfi.BasicConv2d(32, 64, kernel_size=3, padding=1)
    net.MaxPool_1 = nn.MaxPool2d(kernel_size=3, stride=2)
    net.Conv2d_3b_1x1 = tfi.BasicConv2d(64, 80, kernel_size=1)
    net.Conv2d_4a_3x3 = tfi.BasicConv2d(80, 192, kernel_size=3)
    net.MaxPool_2 = nn.MaxPool2d(kernel_size=3, stride=2)
    net.Mixed_5b = tfi.InceptionA(192, pool_features=32)
    net.Mixed_5c = tfi.InceptionA(256, pool_features=64)
    net.Mixed_5d = tfi.InceptionA(288, pool_features=64)
    net.Mixed_6a = tfi.InceptionB(288)
    net.Mixed_6b = tfi.InceptionC(768, channels_7x7=128)
    net.Mixed_6c = tfi.InceptionC(768, channels_7x7=160)
    net.Mixed_6d = tfi.InceptionC(768, channels_7x7=160)
    net.Mixed_6e = tfi.InceptionC(768, channels_7x7=192)
    net.Mixed_7a = tfi.InceptionD(768)
    net.Mixed_7b = tfi.InceptionE_1(1280)
    net.Mixed_7c = tfi.InceptionE_2(2048)
    net.fc = nn.Linear(2048, 1008)
    return net


_LAYERS = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
           "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
           "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")


def random_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights of the right shapes with random values that keep activations in a sane range (tests, bench)."""
    net = inception_skeleton()
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = value.clone()
        elif key.endswith("conv.weight"):
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.endswith("bn.weight"):
            state[key] = 1.0 + 0.1 * torch.randn(value.shape, generator=gen)
        elif key.endswith(("bn.bias", "running_mean")):
            state[key] = 0.1 * torch.randn(value.shape, generator=gen)
        elif key.endswith("running_var"):
            state[key] = 1.0 + 0.2 * torch.rand(value.shape, generator=gen)
        elif key == "fc.weight":
            state[key] = torch.randn(value.shape, generator=gen) * 0.5
        else:
            state[key] = 0.01 * torch.randn(value.shape, generator=gen)
    return state


class InceptionFeatures(FeatureNet):
    """TF Inception v3 (2015-12-05): pool3 (2048-d) and the 1008 logits without bias, as torch-fidelity."""

    pool_layer, logits_layer, resize = "pool3", "logits_unbiased", "tf1-bilinear-299"
    pool_dim, logits_dim = 2048, 1008
    size = 299
    weights_spec = INCEPTION

    def __init__(self, state_dict: dict[str, torch.Tensor], weights_hash: str = "", weights_path: str = "",
                 official: bool = False):
        super().__init__()
        net = inception_skeleton()
        load_strictly(net, state_dict, weights_path, "a torch-fidelity TF-Inception v3")
        fold_and_rewrite(net)
        self.layers = nn.Sequential(*(getattr(net, name) for name in _LAYERS))
        self.register_buffer("fc_weight", net.fc.weight.detach().float().clone())
        self.identify(INCEPTION_NAME, weights_hash, weights_path, official)

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) → the network's input: TF1 bilinear to 299, (x - 128) / 128, channels-last."""
        x = tf1_resize(images.float(), self.size)
        x = (x - 128) / 128  # what the TF graph does, bit-exact with torch-fidelity; stays channels-last
        x = x.to(torch.bfloat16 if self.precision == "bf16" else torch.float32)
        return x.contiguous(memory_format=self.memory_format)  # no copy in the default channels-last

    def _head(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pool = F.adaptive_avg_pool2d(x.float(), 1).flatten(1)
        return pool, pool.mm(self.fc_weight.T)

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images → (pool3, logits): the whole computation, which the 'compile' engine compiles as one graph."""
        return self._head(self.layers(self._input(images)))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = images.shape[0]
        if self.engine == "compile":  # one compiled shape: a short last batch is padded with blank images
            self.compiled_batch = max(self.compiled_batch, n)
            if n < self.compiled_batch:
                images = torch.cat([images, images.new_zeros(self.compiled_batch - n, *images.shape[1:])])
        pool, logits = (self.compiled or self.features)(images)
        return pool[:n], logits[:n]

    def stages(self) -> list[tuple[str, Callable]]:
        """features() as named steps, applied in turn (`gancli bench eval --profile` times each), uncompiled."""
        return [("resize to 299 + normalise", self._input), *zip(_LAYERS, self.layers), ("pool3 + logits", self._head)]


def load_inception(weights: str | Path | None = None, download: bool | None = None) -> InceptionFeatures:
    """The Inception feature network from the first weights file found (see find_inception_weights)."""
    return load_pretrained(InceptionFeatures, weights, download)


def load_feature_net(name: str = "inception", weights: str | Path | None = None, device: str | torch.device = "cpu",
                     precision: str = "fp32", engine: str = "auto", download: bool | None = None) -> FeatureNet:
    """A feature network by name ('inception', 'vgg16' or 'builtin'), on device, in fp32, tf32 or bf16."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'.")
    if name == "inception":
        net = load_inception(weights, download)
    elif name == "vgg16":
        from gancli.metrics.generative.vgg16 import load_vgg16
        net = load_vgg16(weights, download)
    elif name == "builtin":
        if weights:
            raise ConfigError("--weights applies to the inception and vgg16 features; the builtin classifier ships "
                              "its own.")
        from gancli.metrics.judges.builtin_classifier import load_builtin_features
        net = load_builtin_features()
    else:
        raise ConfigError(f"--features must be one of {', '.join(FEATURE_NETS)}, got '{name}'.")
    return prepare(net, device, precision, engine)


ENGINES = ("auto", "eager", "fused", "compile")
MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def fused_available(device: torch.device) -> bool:
    """Whether this device has a one-kernel conv+bias+ReLU: cuDNN on CUDA, oneDNN (mkldnn) on the CPU."""
    if device.type == "cuda":
        return torch.backends.cudnn.is_available()
    return device.type == "cpu" and torch.backends.mkldnn.is_available()


def resolve_engine(engine: str, device: torch.device) -> str:
    """What 'auto' means on this device: 'fused' on CUDA (the fastest in `gancli bench eval` on an H100), else 'eager'.

    On a 2-core CPU oneDNN's fused kernel measured the same as eager (`gancli bench eval --device cpu --engine
    all`, three runs: 1.73–1.78× torch-fidelity against eager's 1.73–1.81×), so the CPU keeps the public ops.
    """
    if engine != "auto":
        return engine
    return "fused" if device.type == "cuda" and fused_available(device) else "eager"


def prepare(net: FeatureNet, device: str | torch.device, precision: str = "fp32", engine: str = "auto",
            memory_format: str = "channels_last") -> FeatureNet:
    """Move a feature network to device and set its precision, conv engine and activation layout.

    engine 'eager': folded conv + in-place ReLU; 'fused': one conv+bias+ReLU kernel (cuDNN's, or oneDNN's on the CPU);
    'compile': torch.compile of the whole eager computation, resize included (compiled once per batch shape, in
    about 35–50 s on a 2-core CPU; its features differ from eager's by float rounding, ~1e-6 relative);
    'auto' is 'fused' on CUDA and 'eager' elsewhere (`gancli bench eval --engine all` times them all).
    memory_format: 'channels_last' (NHWC, 1.76× faster than NCHW on a 2-core CPU, and the layout of tensor-core
    kernels) or 'contiguous' (NCHW); `gancli bench eval --memory-format all` times both.
    """
    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got '{engine}'.")
    if not isinstance(net, InceptionFeatures) and engine not in ("auto", "eager"):
        raise ConfigError(f"--engine {engine} applies to the inception features; {net.name} runs in eager PyTorch.")
    if memory_format not in MEMORY_FORMATS:
        raise ConfigError(f"--memory-format must be one of {', '.join(MEMORY_FORMATS)}, got '{memory_format}'.")
    device = torch.device(device)
    if precision != "fp32" and device.type != "cuda":
        raise ConfigError(f"--precision {precision} needs a CUDA device; use fp32 on the CPU.")
    engine = resolve_engine(engine, device) if isinstance(net, InceptionFeatures) else "eager"
    if engine == "fused" and not fused_available(device):
        raise ConfigError(f"--engine fused needs cuDNN or oneDNN, which this {device.type} device lacks; "
                          f"use --engine eager.")
    net.precision, net.engine, net.memory_format = precision, engine, MEMORY_FORMATS[memory_format]
    net.to(device)
    if isinstance(net, InceptionFeatures):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        net.layers.to(dtype).to(memory_format=net.memory_format)
        for module in net.layers.modules():
            if isinstance(module, FoldedConvReLU):
                module.fused, module.memory_format = engine == "fused", net.memory_format
        if engine == "compile":  # resize, blocks and head in one graph: the resize's passes fuse into one kernel
            net.compiled = torch.compile(net.features, dynamic=False)
    return net


# ---------------------------------------------------------------------------------------------
# The streaming engine
# ---------------------------------------------------------------------------------------------
@contextmanager
def cudnn_flags(benchmark: bool = True, tf32: bool = False):
    """cuDNN set up for feature extraction, and the previous flags restored afterwards.

    benchmark: cuDNN times its kernels for each (fixed) batch shape and keeps the fastest. With benchmark_limit 0
    it times every kernel it has rather than PyTorch's default first 10: a longer search, once per shape, for the
    fastest kernel of each of Inception's odd shapes (1×7, 7×1, ...).
    tf32: whether float32 convolutions may run on TF32 tensor cores (the 'tf32' precision), or in IEEE float32.
    """
    searchable = benchmark and torch.backends.cudnn.is_available()
    old = torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32
    old_limit = torch.backends.cudnn.benchmark_limit if searchable else None
    torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = benchmark, tf32
    if searchable:
        torch.backends.cudnn.benchmark_limit = 0
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = old
        if searchable:
            torch.backends.cudnn.benchmark_limit = old_limit


def extraction_flags(net: FeatureNet, device: torch.device):
    """The cuDNN flags net runs under: kernel search on CUDA, TF32 convolutions only in the 'tf32' precision."""
    return cudnn_flags(benchmark=device.type == "cuda", tf32=net.precision == "tf32")


def to_device_ahead(batches: Iterable[torch.Tensor], device: torch.device, depth: int = 2) -> Iterator[torch.Tensor]:
    """Yield batches on device, copying the next ones on a side CUDA stream while the current one computes.

    Host batches should be pinned (DataLoader pin_memory) for the copies to be asynchronous.
    """
    if device.type != "cuda":
        for batch in batches:
            yield batch.to(device)
        return
    stream = torch.cuda.Stream(device)
    queue: list[tuple[torch.Tensor, torch.cuda.Event]] = []
    iterator = iter(batches)

    def push() -> bool:
        try:
            host = next(iterator)
        except StopIteration:
            return False
        with torch.cuda.stream(stream):
            moved = host.to(device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(stream)
        queue.append((moved, event))
        return True

    for _ in range(depth):
        if not push():
            break
    while queue:
        moved, event = queue.pop(0)
        torch.cuda.current_stream(device).wait_event(event)
        moved.record_stream(torch.cuda.current_stream(device))
        push()
        yield moved


def background(iterable: Iterable, depth: int = 4) -> Iterator:
    """Iterate in a background thread (decoding, sampling on the host) so the consumer never waits idle."""
    import queue as queue_mod

    items: queue_mod.Queue = queue_mod.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():  # a consumer that stopped early must not leave this thread blocked
            try:
                items.put(entry, timeout=0.1)
                return True
            except queue_mod.Full:
                continue
        return False

    def work():
        try:
            for item in iterable:
                if not put((True, item)):
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            put((False, exc))
            return
        put((True, done))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            ok, item = items.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()


@dataclass
class Extracted:
    """What one pass of a feature network over a set of images produced."""

    stats: FeatureStats
    pool: np.ndarray | None  # (N, D) float32, when kept
    logits: np.ndarray | None  # (N, K) float32, when kept

    @property
    def n(self) -> int:
        return self.stats.n


@torch.no_grad()
def extract(net: FeatureNet, batches: Iterable[torch.Tensor], *, keep_pool: bool = False,
            keep_logits: bool = False, on_batch: Callable[[int], None] | None = None) -> Extracted:
    """Run net over uint8 batches: float64 running mean/covariance on the device, features kept on request."""
    from gancli.metrics.generative.stats import FeatureStats

    device = next(net.buffers()).device
    stats = FeatureStats(device=device)
    pools, logits = [], []
    with extraction_flags(net, device):
        for batch in to_device_ahead(batches, device):
            pool, logit = net(batch)
            stats.update(pool)
            if keep_pool:
                pools.append(pool)
            if keep_logits:
                logits.append(logit)
            if on_batch is not None:
                on_batch(batch.shape[0])
    if stats.n == 0:
        from gancli.errors import DataError
        raise DataError("There were no images to evaluate.")
    return Extracted(stats, torch.cat(pools).cpu().numpy() if keep_pool else None,
                     torch.cat(logits).cpu().numpy() if keep_logits else None)
