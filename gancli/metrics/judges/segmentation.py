"""Segmentation accuracy of synthesized images against their input label maps (how SPADE is judged).

mIoU is the mean over labels that occur in the maps or the predictions (union > 0) of
|pred ∩ truth| / |pred ∪ truth|; pixel accuracy the fraction of pixels whose predicted label is
the map's; a "don't care" label (ADE20K's 0) is left out of both. Cityscapes is scored on its 19 train ids
(cityscapesScripts' 35 → 19 mapping, the rest ignored), as papers report it; its 35 label ids on request. The
segmenter is the builtin one on builtin scenes, or a torchvision segmentation model whose state dict `--seg-weights`
names.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gancli.errors import ConfigError, MissingWeightsError
from gancli.metrics.judges.miou import SegmentationScore

__all__ = ["SegmentationScore", "TorchvisionSegmenter", "load_segmenter", "load_torchvision_segmenter"]

TORCHVISION_SEGMENTERS = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large",
                          "fcn_resnet50", "fcn_resnet101", "lraspp_mobilenet_v3_large")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchvisionSegmenter(nn.Module):
    """A torchvision segmentation model on uint8 images: ImageNet normalisation in, the 'out' logits back."""

    def __init__(self, model: nn.Module, arch: str, path: Path, weights_hash: str, num_classes: int):
        super().__init__()
        self.model, self.num_classes = model.eval(), num_classes
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.label = f"{arch} '{path.name}' (sha256 {weights_hash[:8]})"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images.float() / 255 - self.mean) / self.std)["out"]


def load_torchvision_segmenter(path: str | Path, arch: str, num_labels: int,
                               also: tuple[int, ...] = ()) -> TorchvisionSegmenter:
    """A torchvision segmentation model of `num_labels` classes (or of a count in `also`, e.g. Cityscapes' 19 train
    ids) from a state dict file (read weights_only)."""
    import torchvision.models.segmentation as seg

    from gancli.errors import state_dict_mismatch
    from gancli.metrics.generative.weights import sha256_file

    if arch not in TORCHVISION_SEGMENTERS:
        raise ConfigError(f"Unknown segmentation network '{arch}'; choose one of {', '.join(TORCHVISION_SEGMENTERS)}.")
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeightsError(f"Segmentation weights '{path}' do not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means unusable weights
        raise MissingWeightsError(f"Segmentation weights '{path}' cannot be read as a state dict "
                                  f"({exc.__class__.__name__}).") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # torchvision's reference scripts save {"model": ..., "optimizer": ...}
    if not isinstance(state, dict):
        raise MissingWeightsError(f"Segmentation weights '{path}' hold a {type(state).__name__}, not a state dict.")
    aux = any(k.startswith("aux_classifier.") for k in state)
    kwargs = {"aux_loss": aux} if not arch.startswith("lraspp") else {}
    model = getattr(seg, arch)(weights=None, weights_backbone=None, num_classes=num_labels, **kwargs)
    given = _class_count(model, state, num_labels)
    if given != num_labels:  # the class layers: a clearer sentence than a size mismatch
        if given not in also:
            counts = " or ".join(map(str, (num_labels, *also)))
            raise ConfigError(f"Segmentation weights '{path}' predict {given} classes, but the data has "
                              f"{num_labels} label ids; give weights of a {counts}-class {arch}.")
        model = getattr(seg, arch)(weights=None, weights_backbone=None, num_classes=given, **kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise MissingWeightsError(f"Segmentation weights '{path}' do not fit a {given}-class {arch} "
                                  f"({state_dict_mismatch(exc)}).") from None
    return TorchvisionSegmenter(model, arch, path, sha256_file(path), given)


def _class_count(model: nn.Module, state: dict, num_labels: int) -> int:
    """How many classes the state dict's class layers predict (num_labels when they match the model's)."""
    for key, value in model.state_dict().items():
        given = state.get(key)
        if key.startswith("classifier.") and value.dim() == 4 and value.shape[0] == num_labels \
                and torch.is_tensor(given) and given.dim() == 4 and given.shape[0] != num_labels:
            return given.shape[0]
    return num_labels


def load_segmenter(num_labels: int, weights: str | Path | None = None, arch: str = "deeplabv3_resnet50",
                   builtin: bool = False, log=None, also: tuple[int, ...] = ()) -> nn.Module:
    """The judge of synthesized images: a torchvision model from `weights` (num_labels classes, or a count in `also`),
    else the builtin one on builtin scenes."""
    if weights:
        return load_torchvision_segmenter(weights, arch, num_labels, also)
    if not builtin:
        raise MissingWeightsError("Segmentation scores of real data need a segmentation network: pass --seg-weights "
                                  "PATH (a torchvision model's state dict with the data's class count).")
    from gancli.metrics.judges.builtin_segmenter import load_builtin_segmenter
    return load_builtin_segmenter(log)
