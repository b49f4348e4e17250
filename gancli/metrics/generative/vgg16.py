"""VGG16 fc2 features: the feature space of improved precision and recall (Kynkäänniemi et al. 2019).

As torch-fidelity computes them for its `prc` metric (its default there): torchvision's ImageNet VGG16
(vgg16-397923af.pth), uint8 input resized to 224 with TF1-compatible bilinear, ImageNet mean/std scaled to
[0, 255], the 4096-d output of the second fully connected layer after its ReLU. The network has no logits here,
so it serves FID, KID and precision/recall but not the Inception Score.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from gancli.metrics.generative.feature_net import FeatureNet, load_pretrained, load_strictly, tf1_resize
from gancli.metrics.generative.weights import VGG16

VGG16_NAME = "vgg16-imagenet-torchvision"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_skeleton() -> torch.nn.Module:
    """torchvision's VGG16 on the meta device: the layer names and shapes, no memory, no initialisation."""
    import torchvision

    with torch.device("meta"):
        return torchvision.models.vgg16()


class VGG16Features(FeatureNet):
    """torchvision VGG16 → fc2 after ReLU (4096-d), from uint8 images resized to 224 like TF1."""

    pool_layer, logits_layer, resize = "fc2_relu", "", "tf1-bilinear-224"
    pool_dim, logits_dim = 4096, 0
    size = 224
    weights_spec = VGG16

    def __init__(self, state_dict: dict[str, torch.Tensor], weights_hash: str = "", weights_path: str = "",
                 official: bool = False):
        super().__init__()
        model = vgg16_skeleton()
        load_strictly(model, state_dict, weights_path, "a torchvision VGG16", assign=True)
        self.features = model.features
        self.fc1, self.fc2 = model.classifier[0], model.classifier[3]
        self.register_buffer("mean", torch.tensor([255 * m for m in IMAGENET_MEAN]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([255 * s for s in IMAGENET_STD]).view(1, 3, 1, 1))
        self.identify(VGG16_NAME, weights_hash, weights_path, official)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (tf1_resize(images.float(), self.size) - self.mean) / self.std  # torchvision's normalize, same order
        with torch.autocast(images.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
            x = self.features(x.contiguous(memory_format=self.memory_format))
            x = torch.flatten(F.adaptive_avg_pool2d(x, 7), 1)  # (C, H, W) order, as torchvision flattens
            fc2 = self.fc2(F.relu(self.fc1(x)))  # the dropout between them is the identity in eval mode
        pool = F.relu(fc2).float()
        return pool, pool.new_zeros(pool.shape[0], 0)


def random_vgg16_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """VGG16 weights of the right shapes with random values that keep activations in a sane range (tests, bench)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in vgg16_skeleton().state_dict().items():
        if key.endswith("weight"):
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        else:
            state[key] = 0.01 * torch.randn(value.shape, generator=gen)
    return state


def load_vgg16(weights: str | Path | None = None, download: bool | None = None) -> VGG16Features:
    """The VGG16 feature network from the first weights file found (see weights.find_weights)."""
    return load_pretrained(VGG16Features, weights, download)
