"""SPADE's networks (Park et al. 2019): SPADE ResBlocks generator, VAE style encoder, multi-scale PatchGAN critic.

The critic is built plain (no normalization of its weights): the trainer applies `--norm` (SAN with
circular padding, SN, ...) to its convs, as the SAN paper does to SPADE's critic (§4.2), but for the first
and last conv of each scale, which SPADE's NLayerDiscriminator leaves plain (models/networks/discriminator.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from gancli.nn import leave_plain

UPSAMPLINGS = {"normal": 5, "more": 6}  # SPADE's num_upsampling_layers: label map / 2^k is where G starts
INIT_GAIN = 0.02  # SPADE's --init_type xavier --init_variance 0.02 (options/base_options.py)


@torch.no_grad()
def spade_init(module: nn.Module, gain: float = INIT_GAIN) -> nn.Module:
    """SPADE's init_weights (models/networks/base_network.py): xavier normal with gain 0.02 on every conv and linear
    weight (the raw weight under spectral norm, as its hooks share that storage), biases 0; affine BN weights
    N(1, 0.02)."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.weight is not None:
            nn.init.normal_(layer.weight, 1.0, gain)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.Conv2d, nn.Linear)):
            parametrizations = getattr(layer, "parametrizations", None)
            weight = parametrizations.weight.original if parametrizations is not None else layer.weight
            nn.init.xavier_normal_(weight, gain=gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


class SPADE(nn.Module):
    """SPADE eq. 1: BN(x) without affine, then ·(1 + γ(m)) + β(m); γ, β from a 3×3 conv-ReLU-3×3 conv net of the
    label map m, resized with nearest neighbour to x's size (so each pixel is modulated by its own label)."""

    def __init__(self, channels: int, label_channels: int, hidden: int = 128):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        segmap = F.interpolate(segmap, size=x.shape[-2:], mode="nearest")
        hidden = self.shared(segmap)
        return self.norm(x) * (1 + self.gamma(hidden)) + self.beta(hidden)


def _maybe_sn(layer: nn.Module, spectral: bool) -> nn.Module:
    return spectral_norm(layer) if spectral else layer


class SPADEResBlock(nn.Module):
    """SPADE-lReLU-conv twice, plus a shortcut (SPADE-1×1 conv when the width changes); SPADE Fig. 4 (right)."""

    def __init__(self, c_in: int, c_out: int, label_channels: int, hidden: int = 128, spectral: bool = True):
        super().__init__()
        c_mid = min(c_in, c_out)
        self.norm_0, self.conv_0 = SPADE(c_in, label_channels, hidden), _maybe_sn(nn.Conv2d(c_in, c_mid, 3, 1, 1),
                                                                                  spectral)
        self.norm_1, self.conv_1 = SPADE(c_mid, label_channels, hidden), _maybe_sn(nn.Conv2d(c_mid, c_out, 3, 1, 1),
                                                                                   spectral)
        self.learned_shortcut = c_in != c_out
        if self.learned_shortcut:
            self.norm_s = SPADE(c_in, label_channels, hidden)
            self.conv_s = _maybe_sn(nn.Conv2d(c_in, c_out, 1, bias=False), spectral)

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        shortcut = self.conv_s(self.norm_s(x, segmap)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmap), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmap), 0.2))
        return shortcut + dx


class StyleEncoder(nn.Module):
    """SPADE's ConvEncoder: the image resized to a square, 3×3 stride-2 conv-IN-lReLU down to 4×4, then μ and log σ²."""

    def __init__(self, size: int, ndf: int = 64, z_dim: int = 256, spectral: bool = True):
        super().__init__()
        self.size = size
        layers, c_in = [], 3
        for i in range(int(math.log2(size // 4))):
            c_out = ndf * min(2 ** i, 8)
            layers += [_maybe_sn(nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), spectral), nn.InstanceNorm2d(c_out),
                       nn.LeakyReLU(0.2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.fc_mu = nn.Linear(c_in * 16, z_dim)
        self.fc_logvar = nn.Linear(c_in * 16, z_dim)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        if image.shape[-2:] != (self.size, self.size):
            image = F.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)
        h = self.body(image).flatten(1)
        return self.fc_mu(h), self.fc_logvar(h)


def encoder_size(image_size: tuple[int, int]) -> int:
    """The encoder's square input: the largest power of two within the image's short side, at most 256 (SPADE's)."""
    return min(256, 2 ** int(math.log2(min(image_size))))


class SPADEGenerator(nn.Module):
    """SPADE generator: start from the label map downsampled 2^k times (or from z with the VAE), then SPADE ResBlocks
    with nearest 2× upsampling between them, 16·ngf → ngf channels, lReLU, 3×3 conv to RGB, tanh.

    Without the VAE the network is fully convolutional: any map whose sides are multiples of 2^k works.
    """

    def __init__(self, label_channels: int, image_size: tuple[int, int], ngf: int = 64, z_dim: int = 256,
                 upsampling: str = "normal", use_vae: bool = False, hidden: int = 128, spectral: bool = True):
        super().__init__()
        # SPADE starts at the map / 2^k; for images under 128 px a side (k = 5) that start would be below 4×4, where
        # batch statistics of near-identical 1×1 inputs break eval-mode BN, so the first upsamplings are skipped.
        self.n_up = min(UPSAMPLINGS[upsampling], int(math.log2(min(image_size) // 4)))
        self.skipped_ups = UPSAMPLINGS[upsampling] - self.n_up
        self.image_size, self.z_dim, self.use_vae = tuple(image_size), z_dim, use_vae
        self.sh, self.sw = image_size[0] // 2 ** self.n_up, image_size[1] // 2 ** self.n_up
        nf = ngf
        if use_vae:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sh * self.sw)
            self.encoder = StyleEncoder(encoder_size(image_size), ngf, z_dim, spectral)
        else:
            self.fc = nn.Conv2d(label_channels, 16 * nf, 3, padding=1)

        def block(c_in: int, c_out: int) -> SPADEResBlock:
            return SPADEResBlock(c_in * nf, c_out * nf, label_channels, hidden, spectral)

        self.head_0, self.middle_0, self.middle_1 = block(16, 16), block(16, 16), block(16, 16)
        self.up_0, self.up_1, self.up_2, self.up_3 = block(16, 8), block(8, 4), block(4, 2), block(2, 1)
        self.to_rgb = nn.Conv2d(nf, 3, 3, padding=1)

    @property
    def multiple(self) -> int:
        """Sides of a label map must be multiples of this."""
        return 2 ** self.n_up

    def encode(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²) of the style of images in [-1, 1] (VAE only)."""
        return self.encoder(image)

    def forward(self, segmap: Tensor, z: Tensor | None = None) -> Tensor:
        if self.use_vae:
            if z is None:
                z = torch.randn(segmap.shape[0], self.z_dim, device=segmap.device, dtype=segmap.dtype)
            x = self.fc(z).view(-1, self.fc.out_features // (self.sh * self.sw), self.sh, self.sw)
        else:
            start = (segmap.shape[-2] // self.multiple, segmap.shape[-1] // self.multiple)
            x = self.fc(F.interpolate(segmap, size=start, mode="nearest"))
        ups = iter([False] * self.skipped_ups + [True] * self.n_up)
        up = lambda h: F.interpolate(h, scale_factor=2, mode="nearest") if next(ups) else h
        x = up(self.head_0(x, segmap))
        x = self.middle_0(x, segmap)
        if self.n_up + self.skipped_ups == UPSAMPLINGS["more"]:  # "more": one more upsampling, after middle_0
            x = up(x)
        x = up(self.middle_1(x, segmap))
        x = up(self.up_0(x, segmap))
        x = up(self.up_1(x, segmap))
        x = up(self.up_2(x, segmap))
        x = self.up_3(x, segmap)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))


class PatchCritic(nn.Module):
    """pix2pixHD's NLayerDiscriminator: 4×4 convs (ndf, 2ndf, ... ≤ 512; stride 2 except the last two), lReLU 0.2,
    instance norm after every conv but the first and the last; returns every layer's output, the last one the
    patch logits."""

    def __init__(self, c_in: int, ndf: int = 64, n_layers: int = 4, instance_norm: bool = True):
        super().__init__()
        pad = 2  # ceil((4 - 1) / 2), as pix2pixHD: each conv grows the map by one pixel
        # SPADE's NLayerDiscriminator normalizes only the middle convs: the first and the last stay plain
        blocks = [nn.Sequential(leave_plain(nn.Conv2d(c_in, ndf, 4, 2, pad)), nn.LeakyReLU(0.2))]
        nf = ndf
        for n in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            norm = [nn.InstanceNorm2d(nf)] if instance_norm else []
            blocks.append(nn.Sequential(nn.Conv2d(prev, nf, 4, stride, pad, bias=not instance_norm), *norm,
                                        nn.LeakyReLU(0.2)))
        blocks.append(nn.Sequential(leave_plain(nn.Conv2d(nf, 1, 4, 1, pad))))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class MultiScaleCritic(nn.Module):
    """`num_d` PatchCritics on the input and its 2×, 4×, ... average-pooled versions (3×3, stride 2, pad 1, padding
    not counted); returns, per scale, the list of its layer outputs (the last being the logits)."""

    def __init__(self, c_in: int, ndf: int = 64, n_layers: int = 4, num_d: int = 2, instance_norm: bool = True):
        super().__init__()
        self.scales = nn.ModuleList(PatchCritic(c_in, ndf, n_layers, instance_norm) for _ in range(num_d))

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        outputs = []
        for i, critic in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
            outputs.append(critic(x))
        return outputs


def feature_matching_loss(fake: list[list[Tensor]], real: list[list[Tensor]]) -> Tensor:
    """pix2pixHD's feature matching: L1 between the critic's intermediate features on fake and (detached) real,
    summed over layers, averaged over scales."""
    total = fake[0][0].new_zeros(())
    for fake_scale, real_scale in zip(fake, real):
        for f, r in zip(fake_scale[:-1], real_scale[:-1]):
            total = total + F.l1_loss(f, r.detach())
    return total / len(fake)


class VGG19Loss(nn.Module):
    """SPADE's perceptual loss: Σ_i w_i·L1 of VGG19 relu{1..5}_1 features, w = 1/32, 1/16, 1/8, 1/4, 1.

    As SPADE's VGGLoss (models/networks/loss.py, architecture.py VGG19) the images go in as they are, in [-1, 1],
    without ImageNet's mean and std: λ_vgg = 10 is tuned for those feature magnitudes.
    """

    LAYERS = (1, 6, 11, 20, 29)  # relu1_1 ... relu5_1 in torchvision's vgg19().features
    WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)

    def __init__(self, weights: str | None = None):
        super().__init__()
        from gancli.objectives.perceptual import VGGFeatureLoss

        self.vgg = VGGFeatureLoss(weights, layer=self.LAYERS[-1])  # the clear errors about missing weights live there

    def train(self, mode: bool = True) -> VGG19Loss:
        return super().train(False)

    def features(self, images: Tensor) -> list[Tensor]:
        x, out = images, []
        for i, layer in enumerate(self.vgg.features):
            x = layer(x)
            if i in self.LAYERS:
                out.append(x)  # an in-place ReLU later on changes the next conv's output, not this one
        return out

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            target_features = self.features(target)
        return sum(w * F.l1_loss(f, t) for w, f, t in zip(self.WEIGHTS, self.features(output), target_features))
