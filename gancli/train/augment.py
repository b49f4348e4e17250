"""Differentiable augmentation of everything the critic sees: DiffAugment and ADA, built on kornia.augmentation.

Both papers augment real and generated images alike, in the critic's and the generator's steps, with
operations the generator's gradient flows through; the trainer does this with a forward pre-hook on the
critic, so no recipe code changes and the critic's state-dict keys stay as they are.

- DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training", §3 and
  their DiffAugment_pytorch.py): colour (brightness + U(-0.5, 0.5); saturation ×U(0, 2) about the pixel's
  channel mean; contrast ×U(0.5, 1.5) about the image mean), translation by up to 1/8 of the image with
  zero padding, and cutout of a square of half the image side; every image draws its own parameters.
- ADA (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data", §3): a pipeline
  whose every operation is applied with probability p; every `interval` critic steps, p moves by
  sign(r_t - target) · batch·interval / (kimg·1000) with r_t = E[sign(D(real))] (their eq. for r_t; target
  0.6, interval 4, 500 kimg from 0 to 1), clamped to [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

import kornia.augmentation as K
import torch
from kornia.augmentation._2d.intensity.base import IntensityAugmentationBase2D
from kornia.augmentation import random_generator as rg
from torch import nn

from gancli.errors import ConfigError

KINDS = ("none", "diffaug", "ada")
DIFFAUG_POLICIES = ("color", "translation", "cutout")


class ChannelMeanSaturation(IntensityAugmentationBase2D):
    """Zhao et al.'s saturation: (x - mean_c x)·f + mean_c x, one f per image.

    kornia's RandomSaturation goes through HSV and clamps to [0, 1], another operation on [-1, 1] images.
    """

    def __init__(self, saturation: tuple[float, float] = (0.0, 2.0), p: float = 1.0):
        super().__init__(p=p)
        self._param_generator = rg.PlainUniformGenerator((torch.tensor(saturation), "saturation_factor", None, None))

    def apply_transform(self, input, params, flags, transform=None):
        factor = params["saturation_factor"].to(input)[:, None, None, None]
        mean = input.mean(dim=1, keepdim=True)
        return (input - mean) * factor + mean


class ImageMeanContrast(IntensityAugmentationBase2D):
    """Zhao et al.'s contrast: (x - mean x)·f + mean x, the mean over the whole image, one f per image.

    kornia's RandomContrast scales x itself (or about its grey mean) and clamps to [0, 1].
    """

    def __init__(self, contrast: tuple[float, float] = (0.5, 1.5), p: float = 1.0):
        super().__init__(p=p)
        self._param_generator = rg.PlainUniformGenerator((torch.tensor(contrast), "contrast_factor", None, None))

    def apply_transform(self, input, params, flags, transform=None):
        factor = params["contrast_factor"].to(input)[:, None, None, None]
        mean = input.mean(dim=(1, 2, 3), keepdim=True)
        return (input - mean) * factor + mean


def diffaugment(policy: list[str] | tuple[str, ...] = DIFFAUG_POLICIES) -> nn.Sequential:
    """DiffAugment's ops in its order (colour, translation, cutout) for images in [-1, 1]."""
    unknown = [p for p in policy if p not in DIFFAUG_POLICIES]
    if unknown or not policy:
        raise ConfigError(f"'diffaug_policy' names one or more of {', '.join(DIFFAUG_POLICIES)}, got {list(policy)}.")
    ops: list[nn.Module] = []
    if "color" in policy:
        ops += [K.RandomBrightness((0.5, 1.5), clip_output=False, p=1.0),  # adds factor - 1: U(-0.5, 0.5)
                ChannelMeanSaturation((0.0, 2.0)), ImageMeanContrast((0.5, 1.5))]
    if "translation" in policy:  # nearest resampling: whole-pixel shifts, zeros (grey in [-1, 1]) shifted in
        ops.append(K.RandomTranslate((-0.125, 0.125), (-0.125, 0.125), resample="nearest", padding_mode="zeros",
                                     p=1.0))
    if "cutout" in policy:  # a square of half the side (a quarter of the area) set to 0
        ops.append(K.RandomErasing(scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0.0, p=1.0))
    return nn.Sequential(*ops)


def ada_pipeline(square: bool) -> nn.Sequential:
    """ADA's 'bgc' set (Karras et al. 2020, App. B) in kornia, each op with its own p (set by AdaptiveAugment).

    Geometric: x-flip, 90° rotations (square images), integer translation ±1/8, isotropic scaling,
    arbitrary rotation, all with reflection padding; colour: brightness, contrast, saturation. ADA draws
    scale from a log-normal (σ = 0.2 octaves) and brightness from N(0, 0.2): kornia draws uniformly, so the
    ranges below span about ±1.5σ. Not included: anisotropic scaling, fractional translation, hue, luma flip.
    """
    ops: list[nn.Module] = [K.RandomHorizontalFlip(p=0.0)]
    if square:
        ops.append(K.RandomRotation90(times=(1, 3), p=0.0))
    ops += [K.RandomTranslate((-0.125, 0.125), (-0.125, 0.125), resample="nearest", padding_mode="reflection", p=0.0),
            K.RandomAffine(degrees=0.0, scale=(2 ** -0.3, 2 ** 0.3), padding_mode="reflection", p=0.0),
            K.RandomAffine(degrees=180.0, padding_mode="reflection", p=0.0),
            K.RandomBrightness((0.7, 1.3), clip_output=False, p=0.0),
            ImageMeanContrast((2 ** -0.75, 2 ** 0.75), p=0.0),
            ChannelMeanSaturation((2 ** -1.5, 2 ** 1.5), p=0.0)]
    return nn.Sequential(*ops)


class CriticAugmentation:
    """Augments the first argument of every call of the critic (a forward pre-hook); ADA also tunes p from D(real).

    The trainer says which tensors of the current micro-batch are the real images (`watch`); the critic's
    outputs on those, in critic steps, are ADA's evidence of overfitting.
    """

    def __init__(self, kind: str, *, policy: list[str] | tuple[str, ...] = DIFFAUG_POLICIES, target: float = 0.6,
                 interval: int = 4, kimg: float = 500.0, images_per_step: int = 64):
        if kind not in KINDS[1:]:
            raise ConfigError(f"'augment' must be one of {', '.join(KINDS)}, got '{kind}'.")
        self.kind, self.adaptive = kind, kind == "ada"
        self.pipeline: nn.Sequential | None = diffaugment(policy) if kind == "diffaug" else None
        self.p = 1.0 if kind == "diffaug" else 0.0  # ADA starts without augmentation (Karras et al. §3)
        self.target, self.interval = target, interval
        self.p_step = images_per_step * interval / (kimg * 1000)  # p can go from 0 to 1 in `kimg` thousand images
        self.rt = float("nan")
        self.critic_steps = 0
        self._sign_sum: torch.Tensor | float = 0.0
        self._count = 0
        self._reals: set[int] = set()
        self._recording = False
        self._pending: list[bool] = []

    # ---- the hook ----------------------------------------------------------------------
    def attach(self, critic: nn.Module) -> None:
        critic.register_forward_pre_hook(self._before_critic)
        critic.register_forward_hook(self._after_critic)

    def watch(self, batch: dict[str, Any], critic_step: bool) -> None:
        """Name the real images of the micro-batch about to be used (a critic step records D's outputs on them)."""
        self._reals = {t.data_ptr() for t in batch.values() if torch.is_tensor(t) and t.dim() == 4}
        self._recording = critic_step and self.adaptive
        self._pending.clear()

    def _before_critic(self, module: nn.Module, args: tuple) -> tuple:
        if not args or not torch.is_tensor(args[0]) or args[0].dim() != 4 or args[0].shape[1] != 3:
            raise ConfigError("--augment needs a critic whose first argument is an RGB image batch (N, 3, H, W); "
                              "this recipe's critic takes something else first.")
        images = args[0]
        self._pending.append(self._recording and images.data_ptr() in self._reals)
        return (self(images), *args[1:])

    def _after_critic(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not self._pending.pop():
            return
        logits = output[0] if isinstance(output, (tuple, list)) else output
        if not torch.is_tensor(logits):
            raise ConfigError("--augment ada needs a critic whose output (or first output) is a tensor of logits.")
        self._sign_sum = self._sign_sum + torch.sign(logits.detach().float()).sum()
        self._count += logits.numel()

    # ---- the augmentation ---------------------------------------------------------------
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Augmented images (float32 arithmetic whatever the autocast, returned in the input's dtype)."""
        if self.adaptive:
            if self.p <= 0.0:
                return images
            if self.pipeline is None:  # 90° rotations only for square images: known at the first call
                self.pipeline = ada_pipeline(images.shape[-1] == images.shape[-2])
            for op in self.pipeline:
                op.p = self.p
        with torch.autocast(images.device.type, enabled=False):
            return self.pipeline(images.float()).to(images.dtype)

    # ---- ADA's controller --------------------------------------------------------------
    def after_critic_step(self, world, device: torch.device) -> None:
        """Count a critic step; every `interval` of them, move p toward keeping E[sign(D(real))] at the target."""
        from gancli.train import distributed

        if not self.adaptive:
            return
        self.critic_steps += 1
        if self.critic_steps % self.interval:
            return
        totals = distributed.average_values({"sum": float(self._sign_sum), "count": float(self._count)}, world, device)
        if totals["count"] == 0:
            raise ConfigError("--augment ada reads the critic's outputs on the batch's real images, but this recipe "
                              "never passes them to the critic as given; use --augment diffaug.")
        self.rt = totals["sum"] / totals["count"]
        direction = (self.rt > self.target) - (self.rt < self.target)
        self.p = min(1.0, max(0.0, self.p + direction * self.p_step))
        self._sign_sum, self._count = 0.0, 0

    def logs(self) -> dict[str, float]:
        if not self.adaptive:
            return {}
        return {"augment/p": self.p, **({} if math.isnan(self.rt) else {"augment/rt": self.rt})}  # rt: once measured

    def state_dict(self) -> dict[str, float]:
        return {"p": self.p, "rt": self.rt, "critic_steps": self.critic_steps,
                "sign_sum": float(self._sign_sum), "count": self._count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.p, self.rt, self.critic_steps = float(state["p"]), float(state["rt"]), int(state["critic_steps"])
        self._sign_sum, self._count = float(state["sign_sum"]), int(state["count"])


def critic_augmentation(cfg, recipe_name: str, refusal: str, has_critic: bool) -> CriticAugmentation | None:
    """The augmentation cfg.augment asks for, or None; a recipe that must not augment refuses it with its reason."""
    if cfg.augment == "none":
        return None
    if refusal:
        raise ConfigError(f"Recipe '{recipe_name}' does not augment its critic's inputs ({refusal}); drop --augment.")
    if not has_critic:
        raise ConfigError(f"This '{recipe_name}' run has no critic, so --augment {cfg.augment} has nothing to augment.")
    return CriticAugmentation(cfg.augment, policy=cfg.diffaug_policy, target=cfg.ada_target,
                              interval=cfg.ada_interval, kimg=cfg.ada_kimg,
                              images_per_step=cfg.batch_size * cfg.grad_accum)
