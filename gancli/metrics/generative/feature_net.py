"""The base class of every feature network, and the loaders and the TF1 resize they share.

A feature network maps uint8 images to (pooled features, logits); the picker among them (inception, vgg16,
builtin) and the streaming extraction engine live in gancli.metrics.generative.features.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gancli.errors import MissingWeightsError, state_dict_mismatch
from gancli.metrics.generative.weights import WeightsFile, find_weights, sha256_file


# ---------------------------------------------------------------------------------------------
# Resize: TF1 bilinear, separable
# ---------------------------------------------------------------------------------------------
def _tf1_grid(in_size: int, out_size: int, device: torch.device):
    """Source index pairs and weights of TF1 bilinear (align_corners=False), as torch-fidelity computes them."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    grid = torch.arange(0, out_size, 1, dtype=torch.float32, device=device) * scale.to(device)
    lo = grid.long()
    hi = (lo + 1).clamp_max(in_size - 1)
    return lo, hi, grid - lo.float()


def tf1_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """TF1-compatible bilinear resize of float (N, C, H, W) to size × size, returned channels-last.

    Interpolates along width on the H input rows, then along height: each output pixel goes through the
    same float operations in the same order as torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x
    (method 'slow'), so the result is bit-identical while reading H/size as much memory. The work is done
    on an (N, H, W, C) view, so the result comes out in the channels-last layout the convolutions want
    (oneDNN and cuDNN both run Inception's convolutions faster in it) without another copy.
    """
    x_lo, x_hi, dx = _tf1_grid(x.shape[3], size, x.device)
    y_lo, y_hi, dy = _tf1_grid(x.shape[2], size, x.device)
    nhwc = x.permute(0, 2, 3, 1)
    a, b = nhwc.index_select(2, x_lo), nhwc.index_select(2, x_hi)
    rows = a + (b - a) * dx.view(1, 1, size, 1)
    top, bottom = rows.index_select(1, y_lo), rows.index_select(1, y_hi)
    return (top + (bottom - top) * dy.view(1, size, 1, 1)).permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------------------------
# Feature networks
# ---------------------------------------------------------------------------------------------
class FeatureNet(nn.Module):
    """uint8 images (N, 3, H, W) → (pooled features (N, D) float32, logits (N, K) float32; K = 0 without logits)."""

    name: str = ""
    pool_layer: str = ""
    logits_layer: str = ""
    pool_dim: int = 0  # the width of the features and of the logits (0: none)
    logits_dim: int = 0
    resize: str = ""
    weights_hash: str = ""
    weights_path: str = ""
    official: bool = True
    weights_spec: WeightsFile | None = None  # the official weights file (None: gancli's own)
    precision: str = "fp32"
    engine: str = "eager"
    compiled_batch: int = 0  # the batch size the 'compile' engine was traced with
    compiled: Callable | None = None  # torch.compile of features() (the 'compile' engine)
    memory_format: torch.memory_format = torch.channels_last  # the activations' layout

    def describe(self) -> dict[str, str]:
        """What produced a set of features: part of every protocol and cache key."""
        return {"feature_net": self.name, "features": self.pool_layer, "resize": self.resize,
                "weights_sha256": self.weights_hash, "precision": self.precision}

    def identify(self, name: str, weights_hash: str, weights_path: str, official: bool):
        """Name the network and the weights it was loaded from; frozen, in eval mode."""
        self.name, self.weights_hash, self.weights_path, self.official = name, weights_hash, weights_path, official
        self.requires_grad_(False)
        self.eval()

    @property
    def label(self) -> str:
        """Short name printed next to every score."""
        return self.name if self.official else f"{self.name} (UNOFFICIAL weights {self.weights_hash[:8]})"


def load_strictly(model: nn.Module, state_dict: dict[str, torch.Tensor], weights_path: str, what: str,
                  assign: bool = False) -> None:
    """Every key of the network, of the right shape, or one sentence naming the file (assign: onto meta tensors)."""
    try:
        model.load_state_dict(state_dict, strict=True, assign=assign)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise MissingWeightsError(f"Weights file '{weights_path}' is not {what} state dict "
                                  f"({state_dict_mismatch(exc)}).") from None


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict, unpickled with weights_only (no code runs); an unusable file is one sentence."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise MissingWeightsError(f"Weights file '{path}' cannot be read as a PyTorch state dict "
                                  f"({exc.__class__.__name__}).") from None
    if not isinstance(state, dict):
        raise MissingWeightsError(f"Weights file '{path}' does not hold a state dict.")
    return state


def load_pretrained(cls: type[FeatureNet], weights: str | Path | None = None, download: bool | None = None):
    """A feature network from the first file found for its weights_spec (see weights.find_weights)."""
    path = find_weights(cls.weights_spec, weights, download)
    return cls(load_state_dict_file(path), sha256_file(path), str(path), official=cls.weights_spec.is_official(path))
