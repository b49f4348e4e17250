"""Perceptual (VGG feature) loss of SRGAN/ESRGAN and the SAN paper's SR recipe (§4.3, eq. 10)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from gancli.errors import MissingWeightsError

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet VGG19 (IMAGENET1K_V1)
CONV5_4 = 34  # index of conv5_4 in torchvision's vgg19().features; 35 is its ReLU
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


VGG19_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def vgg19_features() -> nn.Sequential:
    """torchvision's vgg19().features (same layer indices, so its state dict loads), without the 120M-parameter
    classifier that is never used here."""
    layers: list[nn.Module] = []
    c_in = 3
    for item in VGG19_PLAN:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, item, 3, padding=1), nn.ReLU(inplace=True)]
            c_in = item
    return nn.Sequential(*layers)


def vgg19_weights_path(path: str | Path | None = None) -> Path:
    """The VGG19 weights file: `path` if given, else torchvision's file in the torch hub cache."""
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise MissingWeightsError(f"VGG19 weights file '{file}' does not exist; pass the path of "
                                      f"torchvision's {VGG19_FILE} or --perceptual none.")
        return file
    file = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    if not file.is_file():
        raise MissingWeightsError(
            f"The perceptual loss needs torchvision's ImageNet VGG19 weights ({VGG19_FILE}), not found in "
            f"'{file.parent}'; download https://download.pytorch.org/models/{VGG19_FILE} there, pass "
            f"--vgg-weights PATH, or train without it with --perceptual none.")
    return file


class VGGFeatureLoss(nn.Module):
    """Mean L1 distance between VGG19 conv5_4 features (before the ReLU) of two images in [-1, 1].

    Inputs are mapped to [0, 1] and normalised with ImageNet's mean and std, as torchvision's
    weights expect. The network is frozen; gradients flow to the first input only if it needs them.
    """

    def __init__(self, weights: str | Path | None = None, layer: int = CONV5_4):
        super().__init__()
        file = vgg19_weights_path(weights)
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure to read means unusable weights
            raise MissingWeightsError(f"VGG19 weights file '{file}' cannot be read ({exc.__class__.__name__}); "
                                      "pass another --vgg-weights or --perceptual none.") from None
        features = vgg19_features()[: layer + 1]
        wanted = {k.removeprefix("features."): v for k, v in state.items()
                  if k.startswith("features.") and int(k.split(".")[1]) <= layer}
        try:
            features.load_state_dict(wanted)
        except RuntimeError as exc:
            raise MissingWeightsError(f"'{file}' is not a torchvision VGG19 state dict ({str(exc)[:100]}); "
                                      "pass another --vgg-weights or --perceptual none.") from None
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.source = str(file)

    def train(self, mode: bool = True) -> VGGFeatureLoss:
        return super().train(False)  # never dropout/BN-train mode (VGG19 has neither, but stay safe)

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        x = ((images + 1) / 2 - self.mean) / self.std
        return self.features(x)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self.extract(target)
        return F.l1_loss(self.extract(output), target_features)
