"""The --device option: auto, cpu, cuda or cuda:N, checked before any work starts."""

from __future__ import annotations

import torch

from gancli.errors import ConfigError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' is the GPU when there is one; an unknown name or a missing GPU is a one-sentence error."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got '{name}'.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is available.")
    return device
