"""Unconditional generation with the standard CNN (SNDCGAN) of the SAN paper, Table 4."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import Dataset

from gancli.config import TrainConfig
from gancli.data.builtin import BuiltinImages
from gancli.data.specs import open_dataset, resized
from gancli.errors import ConfigError
from gancli.objectives import critic_penalty, get_loss
from gancli.train.recipe import Recipe


@dataclass
class UncondConfig(TrainConfig):
    recipe: str = "uncond"
    arch: str = "sndcgan"
    resolution: int = 32  # 32 for CIFAR-10 (Mg=4), 48 for STL-10 (Mg=6)
    z_dim: int = 128
    width: float = 1.0  # channel multiplier; 1.0 is the paper's network
    g_kernel: int = 3  # SAN Table 4 uses 3x3 deconvolutions; Miyato et al. use 4x4
    flip: bool = True
    # evaluation every eval_every steps; the best checkpoint by FID is kept
    eval_n: int = 10_000  # generated images (the large-scale study's CIFAR-10 protocol: 10k vs 10k test)
    data_root: str = ""  # folder of the dataset specs (cifar10, stl10); "" means $GANCLI_DATA or ~/.cache/gancli/datasets
    eval_reference: str = ""  # "" means builtin:test at the training resolution, or the data's own spec
    eval_features: str = ""  # "" means the builtin-data classifier on builtin data, Inception otherwise
    eval_metrics: list[str] = field(default_factory=lambda: ["fid", "is"])
    # SAN paper section 4.1: hinge, Adam 2e-4 (0.5, 0.9), batch 64, n_dis 1, 200 epochs of CIFAR-10
    norm: str = "san"
    loss: str = "hinge"
    steps: int = 156_250
    batch_size: int = 64
    ema: bool = False
    sample_every: int = 5000
    ckpt_every: int = 5000
    betas_g: list[float] = field(default_factory=lambda: [0.5, 0.9])
    betas_d: list[float] = field(default_factory=lambda: [0.5, 0.9])


def _ch(base: int, width: float) -> int:
    return max(8, int(round(base * width)))


class SNDCGANGenerator(nn.Module):
    """z → dense Mg×Mg×512 → three stride-2 deconvs with BN-ReLU (256, 128, 64) → conv 3, tanh."""

    def __init__(self, resolution: int = 32, z_dim: int = 128, width: float = 1.0, kernel: int = 3):
        super().__init__()
        self.mg, self.c0 = resolution // 8, _ch(512, width)
        self.dense = nn.Linear(z_dim, self.mg * self.mg * self.c0)
        self.bn0 = nn.BatchNorm2d(self.c0)
        layers, c_in = [], self.c0
        for base in (256, 128, 64):
            c_out = _ch(base, width)
            layers += [self._deconv(c_in, c_out, kernel), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(c_in, 3, 3, 1, 1)

    @staticmethod
    def _deconv(c_in: int, c_out: int, kernel: int) -> nn.ConvTranspose2d:
        if kernel == 3:  # padding 1 + output_padding 1 doubles the size exactly
            return nn.ConvTranspose2d(c_in, c_out, 3, 2, padding=1, output_padding=1)
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dense(z).view(z.shape[0], self.c0, self.mg, self.mg)
        h = torch.relu(self.bn0(h))
        return torch.tanh(self.to_rgb(self.blocks(h)))


class SNDCGANCritic(nn.Module):
    """Seven 3×3 convs (64 s1, 64 s2, 128 s1, 128 s2, 256 s1, 256 s2, 512 s1), lReLU 0.1, dense → 1."""

    PLAN = ((64, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1))

    def __init__(self, resolution: int = 32, width: float = 1.0):
        super().__init__()
        layers, c_in = [], 3
        for base, stride in self.PLAN:
            c_out = _ch(base, width)
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.LeakyReLU(0.1)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.dense = nn.Linear(c_in * (resolution // 8) ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.features(x).flatten(1)).squeeze(1)


class ImageDataset(Dataset):
    """Images in [-1, 1] at the recipe's resolution, randomly flipped from each key's seed."""

    def __init__(self, source: Dataset, flip: bool):
        self.source, self.flip = source, flip

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        image, _ = self.source[index]
        image = image.float() / 127.5 - 1.0
        if self.flip and torch.rand(1, generator=torch.Generator().manual_seed(seed)).item() < 0.5:
            image = image.flip(-1)
        return {"image": image}


class Uncond(Recipe):
    name = "uncond"
    summary = "Unconditional generation, SNDCGAN G and 7-conv critic (SAN Table 4), hinge loss"
    Config = UncondConfig
    best_metric = ("fid", "min")
    presets = {
        # CPU-sized (~3.5 min on 2 cores): fewer steps than ~1000 leave the small G mode-collapsed
        "quick": {"steps": 1200, "batch_size": 32, "width": 0.25, "sample_every": 400, "ckpt_every": 400,
                  "log_every": 10, "n_samples": 64, "eval_every": 400, "eval_n": 1000},
        "cifar10": {"data": "cifar10:train", "resolution": 32},
        "stl10": {"data": "stl10:unlabeled", "resolution": 48},
    }

    def __init__(self, cfg: UncondConfig):
        super().__init__(cfg)
        self.validate()  # before the trainer creates the run folder

    def validate(self) -> None:
        cfg = self.cfg
        if cfg.arch != "sndcgan":
            raise ConfigError(f"Recipe 'uncond' has arch 'sndcgan', not '{cfg.arch}'.")
        if cfg.resolution % 8 or cfg.resolution < 16:
            raise ConfigError(f"'resolution' must be a multiple of 8 and at least 16, got {cfg.resolution}.")
        if cfg.g_kernel not in (3, 4):
            raise ConfigError(f"'g_kernel' must be 3 (SAN Table 4) or 4 (Miyato et al.), got {cfg.g_kernel}.")
        if not cfg.width > 0:
            raise ConfigError(f"'width' must be a positive channel multiplier, got {cfg.width}.")
        for key in ("z_dim", "eval_n"):
            if getattr(cfg, key) < 1:
                raise ConfigError(f"'{key}' must be a positive number, got {getattr(cfg, key)}.")
        if not cfg.eval_metrics or any(m not in ("fid", "is", "kid") for m in cfg.eval_metrics):
            raise ConfigError(f"'eval_metrics' must name one or more of fid, is, kid, got {cfg.eval_metrics}.")
        if cfg.eval_features not in ("", "inception", "builtin"):
            raise ConfigError(f"'eval_features' must be inception or builtin, got '{cfg.eval_features}'.")
        get_loss(cfg.loss)  # fail early on an unknown loss name

    def build_models(self):
        cfg = self.cfg
        return {"G": SNDCGANGenerator(cfg.resolution, cfg.z_dim, cfg.width, cfg.g_kernel),
                "D": SNDCGANCritic(cfg.resolution, cfg.width)}

    def build_dataset(self):
        cfg = self.cfg
        if cfg.data:
            source = resized(open_dataset(cfg.data, root=cfg.data_root or None), cfg.resolution)
            source[0]  # a dataset that reads its files on first use does so now, before loader workers fork
        else:
            source = BuiltinImages("train", cfg.resolution)
        return ImageDataset(source, cfg.flip)

    def _z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.cfg.z_dim, device=self.device, generator=generator)

    def d_step(self, models, batch):
        G, D = models["G"], models["D"]
        real = batch["image"]
        with torch.no_grad():
            fake = G(self._z(real.shape[0]))
        d_loss, _ = get_loss(self.cfg.loss)
        real_logits, fake_logits = D(real), D(fake)
        adv = d_loss(real_logits, fake_logits)
        penalty = critic_penalty(self.cfg.penalty, D, D, real, fake)
        logs = {"D/loss": adv.item(), "D/real": real_logits.mean().item(), "D/fake": fake_logits.mean().item()}
        if self.cfg.penalty != "none":
            logs["D/penalty"] = penalty.item()
        return adv + self.cfg.penalty_weight * penalty, logs

    def g_step(self, models, batch):
        G, D = models["G"], models["D"]
        _, g_loss = get_loss(self.cfg.loss)
        fake_logits = D(G(self._z(batch["image"].shape[0])))
        real_logits = D(batch["image"]) if self.cfg.loss == "ra" else None
        loss = g_loss(fake_logits, real_logits)
        return loss, {"G/loss": loss.item()}

    @torch.no_grad()
    def sample(self, G, n, generator):
        return torch.cat([G(self._z(min(256, n - i), generator)) for i in range(0, n, 256)])

    def evaluate(self, G):
        """FID/IS of the generator against the reference, with the feature network named in the result."""
        from gancli.metrics import GeneratorEvaluator

        cfg = self.cfg
        if not hasattr(self, "_evaluator"):
            builtin = not cfg.data
            reference = cfg.eval_reference or (f"builtin:test:{cfg.resolution}" if builtin else cfg.data)
            features = cfg.eval_features or ("builtin" if builtin else "inception")
            self._evaluator = GeneratorEvaluator(reference, n=cfg.eval_n, metrics=tuple(cfg.eval_metrics),
                                                 features=features, device=self.device,
                                                 data_root=cfg.data_root or None)
        return self._evaluator(lambda n, generator: self.sample(G, n, generator))
