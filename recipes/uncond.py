"""Unconditional generation: SNDCGAN, ResNet (SAN Tables 4-6), ResNet19 (large-scale study), AdaGAN.

Every generator takes `--gen-norm bn|sbn|none` (sbn: self-modulated BN, self-modulation eq. 1-2); the
critic takes every `--norm` and `--penalty` of the core. Networks live in recipes/uncond_nets.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

import torch

from gancli.config import TrainConfig
from gancli.data.builtin import BuiltinImages
from gancli.data.images import TrainingImages
from gancli.data.specs import open_dataset, resized
from gancli.errors import ConfigError
from gancli.nn.export import ExportInputs, batch_dim, latent, refuse_size
from gancli.nn.latent import truncated_normal
from gancli.objectives import critic_penalty, get_loss
from gancli.train.imports import ImportFormat
from gancli.train.recipe import Recipe
from recipes import uncond_import
from recipes import uncond_nets as nets

ARCHS = ("sndcgan", "resnet", "resnet19", "adagan")


@dataclass
class UncondConfig(TrainConfig):
    # keys that runs saved by earlier versions hold and that no longer exist (dropped when such a run is opened):
    # dragan_c, the variance of Kodali et al.'s N(0, cI), gave way to the large-scale study's perturbation
    RETIRED: ClassVar[tuple[str, ...]] = ("dragan_c",)
    recipe: str = "uncond"
    arch: str = "sndcgan"  # sndcgan | resnet | resnet19 | adagan
    resolution: int = 32  # 32 for CIFAR-10 (Mg=4), 48 for STL-10 (Mg=6), 128 for resnet19
    z_dim: int = 128
    width: float = 1.0  # channel multiplier of sndcgan / resnet / resnet19; 1.0 is the paper's network
    gen_norm: str = "bn"  # bn | sbn (self-modulated BN) | none, in every generator
    sbn_hidden: int = 32  # hidden units of the self-modulation MLP (compare_gan: 32)
    g_kernel: int = 3  # sndcgan G deconvs: 3x3 in SAN Table 4, 4x4 in Miyato et al.
    d_kernel: int = 3  # stride-2 convs of the sndcgan / adagan critic: 3x3 in SAN Table 4, 4x4 in Miyato et al.
    d_pool: str = "avg"  # resnet critic's global pooling: avg (SAN Tables 5-6) or sum (Miyato et al.)
    full_stl_critic: bool = False  # resnet at 48 px: keep Miyato's last critic block (19.5M params, not 4.8M)
    g_upsample: str = "nearest"  # resnet G's ×2 upsampling: nearest (Miyato et al.) or bilinear (mimicry's SNGAN)
    # resnet critic's blocks: san (hidden width c_out: the SAN tables' counts) or mimicry (its DBlock: hidden width
    # c_in, and the skip reads ReLU(x), as its in-place ReLU leaves x before the shortcut reads it)
    d_block: str = "san"
    # AdaGAN base channels, reduced from 512 for memory as the paper does: the regressed per-pixel kernels make
    # G save ~6.6 GB of activations per batch of 64 at 128 channels (all four blocks), ~31 GB at 256
    adagan_channels: int = 128
    adaconv_blocks: int = 4  # AdaGAN-1/2/3 replace the first 1/2/3 convs; 4 (AdaGAN) all of them
    k_adaptive: int = 3  # neighbourhood the AdaConvBlocks regress their kernels from: 3 or 5
    flip: bool = True
    # evaluation every eval_every steps; the best checkpoint by FID is kept
    eval_n: int = 10_000  # generated images (the large-scale study's CIFAR-10 protocol: 10k vs 10k test)
    data_root: str = ""  # folder of the dataset specs (cifar10, stl10); "" means $GANCLI_DATA or ~/.cache/gancli/datasets
    eval_reference: str = ""  # "" means builtin:test, cifar10:test for CIFAR-10 (10k test images), else the data
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


def _paper(arch: str, data: str, resolution: int, steps: int, lr: float, betas: tuple[float, float], n_dis: int,
           loss: str = "hinge", norm: str = "sn", **extra) -> dict:
    """A preset row: the architecture, data and optimizer settings of one paper."""
    return {"arch": arch, "data": data, "resolution": resolution, "steps": steps, "lr_g": lr, "lr_d": lr,
            "betas_g": list(betas), "betas_d": list(betas), "n_dis": n_dis, "loss": loss, "norm": norm,
            "batch_size": 64, **extra}


def _study(lr: float, beta1: float, beta2: float, n_dis: int, critic_steps: int = 200_000, **data) -> dict:
    """One of the large-scale study's optimizer settings (Table 1), batch 64, NS + SN, for `critic_steps` critic
    updates (§2: "200K for CIFAR10", "100K for LSUN-BEDROOM and CELEBA-HQ-128"); steps count G updates."""
    return {"lr_g": lr, "lr_d": lr, "betas_g": [beta1, beta2], "betas_d": [beta1, beta2], "n_dis": n_dis,
            "steps": critic_steps // n_dis, "batch_size": 64, "loss": "ns", "norm": "sn", **data}


STUDY_SETTINGS = {"a": (2e-4, 0.5, 0.999, 1), "b": (1e-4, 0.5, 0.9, 5), "c": (2e-4, 0.5, 0.999, 5)}
# the large-scale study's FID (§4 "Metrics"): against held-out test images, 10k test vs 10k generated on CIFAR-10 and
# LSUN-BEDROOM, 3k vs 3k on CELEBA-HQ-128; a preset named here needs eval_reference set to those test images
HELD_OUT = {"resnet19-celeba128": "the 3,000 CelebA-HQ-128 test images (the study's FID: 3k test vs 3k generated)"}


PRESETS = {
    # CPU-sized (~3.5 min on 2 cores): fewer steps than ~1000 leave the small G mode-collapsed. Its critic is what
    # measured best at this size (study uncond-quick-critic-cpu, 4 seeds: median FD 50.5 with SAN g 1.5 on circular
    # padding, 53.3 with SN, 60.6 with SAN g 1.5 on zero padding; README "What SAN does here"); a norm the user
    # names comes without the gain (gancli.api.NORM_TUNING), so `--norm san` is the paper's SAN
    "quick": {"steps": 1200, "batch_size": 32, "width": 0.25, "sample_every": 400, "ckpt_every": 400,
              "log_every": 10, "n_samples": 64, "eval_every": 400, "eval_n": 1000, "norm": "san", "norm_gain": 1.5},
    "cifar10": {"data": "cifar10:train", "resolution": 32},
    "stl10": {"data": "stl10:unlabeled", "resolution": 48},
    # Miyato et al. 2018, ResNet on CIFAR-10: hinge, SN, Adam 2e-4 (0, 0.9), n_dis 5, 50k G updates, sum pool
    "sngan-cifar": _paper("resnet", "cifar10:train", 32, 50_000, 2e-4, (0.0, 0.9), 5, d_pool="sum"),
    # SAN paper §4.1 and Tables 4-6: hinge, SAN, Adam 2e-4 (0.5, 0.9), n_dis 1, batch 64, 200 epochs
    "san-cifar": _paper("sndcgan", "cifar10:train", 32, 156_250, 2e-4, (0.5, 0.9), 1, norm="san"),
    "san-cifar-resnet": _paper("resnet", "cifar10:train", 32, 156_250, 2e-4, (0.5, 0.9), 1, norm="san"),
    "san-stl": _paper("sndcgan", "stl10:unlabeled", 48, 312_500, 2e-4, (0.5, 0.9), 1, norm="san"),
    "san-stl-resnet": _paper("resnet", "stl10:unlabeled", 48, 312_500, 2e-4, (0.5, 0.9), 1, norm="san"),
    # self-modulation §3.1 / App. B: Miyato's ResNet with sBN, hinge + SN, lr 2e-4, 100k G steps, batch 64
    "selfmod-resnet-cifar": _paper("resnet", "cifar10:train", 32, 100_000, 2e-4, (0.5, 0.999), 1,
                                   gen_norm="sbn", sbn_hidden=32, d_pool="sum"),
    # AdaGAN (Nguyen & Ray 2018): all convs adaptive, k_adaptive 3, base 128; Miyato's standard CNN critic
    # with SN; Adam as Miyato et al. with n_dis 1
    "adagan-cifar": _paper("adagan", "cifar10:train", 32, 100_000, 2e-4, (0.5, 0.999), 1, loss="ns",
                           adagan_channels=128, adaconv_blocks=4, k_adaptive=3, d_kernel=4),
    # large-scale study, ResNet19 at 128 px (Tables 5-6), NS + SN, setting (2e-4, 0.5, 0.999, 1); --data FOLDER
    # (100k critic updates at n_dis 1; FID on 3k test vs 3k generated: set eval_reference to the test images)
    "resnet19-celeba128": _paper("resnet19", "", 128, 100_000, 2e-4, (0.5, 0.999), 1, loss="ns", eval_n=3000),
    # the study's optimizer settings (lr, β1, β2, n_dis) on CIFAR-10 (200k critic updates, 10k vs 10k test FID);
    # study-X-128: at 128 px for CelebA-HQ / LSUN folders given with --data (100k critic updates)
    **{f"study-{k}": _study(*v, data="cifar10:train", resolution=32) for k, v in STUDY_SETTINGS.items()},
    **{f"study-{k}-128": _study(*v, critic_steps=100_000, resolution=128) for k, v in STUDY_SETTINGS.items()},
}


class Uncond(Recipe):
    name = "uncond"
    summary = ("Unconditional generation: SNDCGAN, ResNet (SAN Tables 4-6), ResNet19 (large-scale study), AdaGAN; "
               "bn / self-modulated / no BN in G")
    Config = UncondConfig
    best_metric = ("fid", "min")
    offline_critic_why = ("best measured at this size, within the seeds' noise: median builtin FD of 4 seeds 50.5 "
                          "against 53.3 with SN and 60.6 on zero padding (study uncond-quick-critic-cpu); "
                          "--norm san gives the paper's g 1")
    network_fields = ("arch", "resolution", "z_dim", "width", "gen_norm", "sbn_hidden", "g_kernel", "d_kernel", "d_pool",
                      "full_stl_critic", "g_upsample", "d_block", "adagan_channels", "adaconv_blocks", "k_adaptive")
    presets = PRESETS

    def __init__(self, cfg: UncondConfig):
        super().__init__(cfg)

    def validate(self) -> None:
        cfg = self.cfg
        if cfg.arch not in ARCHS:
            raise ConfigError(f"Recipe 'uncond' has architectures {', '.join(ARCHS)}, not '{cfg.arch}'.")
        self._check_resolution()
        if cfg.preset in HELD_OUT and cfg.data and cfg.eval_every and not cfg.eval_reference:
            raise ConfigError(f"Preset '{cfg.preset}' evaluates as the large-scale study does: set eval_reference to "
                              f"{HELD_OUT[cfg.preset]}, or eval_every to 0.")
        if cfg.gen_norm not in nets.GEN_NORMS:
            raise ConfigError(f"'gen_norm' must be one of {', '.join(nets.GEN_NORMS)}, got '{cfg.gen_norm}'.")
        for key in ("g_kernel", "d_kernel"):
            if getattr(cfg, key) not in (3, 4):
                raise ConfigError(f"'{key}' must be 3 (SAN Table 4) or 4 (Miyato et al.), got {getattr(cfg, key)}.")
        if cfg.d_pool not in ("avg", "sum"):
            raise ConfigError(f"'d_pool' must be avg (SAN Tables 5-6) or sum (Miyato et al.), got '{cfg.d_pool}'.")
        if cfg.g_upsample not in nets.UPSAMPLERS or cfg.d_block not in ("san", "mimicry"):
            raise ConfigError(f"'g_upsample' must be nearest or bilinear and 'd_block' san or mimicry, got "
                              f"'{cfg.g_upsample}' and '{cfg.d_block}'.")
        if cfg.arch != "resnet" and (cfg.g_upsample, cfg.d_block) != ("nearest", "san"):
            raise ConfigError("'g_upsample' and 'd_block' shape the resnet networks; they need --arch resnet.")
        if cfg.adaconv_blocks not in (1, 2, 3, 4):
            raise ConfigError(f"'adaconv_blocks' must be 1, 2, 3 (AdaGAN-1/2/3) or 4 (AdaGAN, all), "
                              f"got {cfg.adaconv_blocks}.")
        if cfg.k_adaptive not in (3, 5):
            raise ConfigError(f"'k_adaptive' must be 3 or 5 (the AdaGAN paper's), got {cfg.k_adaptive}.")
        if cfg.adagan_channels < 8 or cfg.adagan_channels % 8:
            raise ConfigError(f"'adagan_channels' must be a multiple of 8 (it is halved three times), "
                              f"got {cfg.adagan_channels}.")
        if not cfg.width > 0:
            raise ConfigError(f"'width' must be a positive channel multiplier, got {cfg.width}.")
        for key in ("z_dim", "eval_n", "sbn_hidden"):
            if getattr(cfg, key) < 1:
                raise ConfigError(f"'{key}' must be a positive number, got {getattr(cfg, key)}.")
        if not cfg.eval_metrics or any(m not in ("fid", "is", "kid") for m in cfg.eval_metrics):
            raise ConfigError(f"'eval_metrics' must name one or more of fid, is, kid, got {cfg.eval_metrics}.")
        if cfg.eval_features not in ("", "inception", "builtin"):
            raise ConfigError(f"'eval_features' must be inception or builtin, got '{cfg.eval_features}'.")

    def _check_resolution(self) -> None:
        arch, res = self.cfg.arch, self.cfg.resolution
        valid = {
            "sndcgan": (res % 8 == 0 and res >= 16, "a multiple of 8 of at least 16 (Mg = resolution/8)"),
            "adagan": (res % 8 == 0 and res >= 16, "a multiple of 8 of at least 16 (Mg = resolution/8)"),
            "resnet": (res == 32 or (res % 16 == 0 and res >= 48),
                       "32 (SAN Table 5) or a multiple of 16 from 48 (Table 6, Mg = resolution/8)"),
            "resnet19": (res in (32, 128), "128 (the study's Table 5) or 32 (its ResNet CIFAR, Table 7)"),
        }
        ok, what = valid[arch]
        if not ok:
            raise ConfigError(f"Architecture '{arch}' needs a resolution of {what}, got {res}.")

    def build_models(self):
        cfg = self.cfg
        g_norm = {"norm": cfg.gen_norm, "sbn_hidden": cfg.sbn_hidden}
        if cfg.arch == "resnet":
            return {"G": nets.ResNetGenerator(cfg.resolution, cfg.z_dim, cfg.width, **g_norm, upsample=cfg.g_upsample),
                    "D": nets.ResNetCritic(cfg.resolution, cfg.width, cfg.d_pool, cfg.full_stl_critic,
                                           cfg.d_block)}
        if cfg.arch == "resnet19":
            return {"G": nets.Resnet19Generator(cfg.resolution, cfg.z_dim, cfg.width, **g_norm),
                    "D": nets.Resnet19Critic(cfg.resolution, cfg.width)}
        if cfg.arch == "adagan":
            return {"G": nets.AdaGANGenerator(cfg.resolution, cfg.z_dim, cfg.adagan_channels, cfg.adaconv_blocks,
                                              cfg.k_adaptive, **g_norm),
                    "D": nets.SNDCGANCritic(cfg.resolution, cfg.width, cfg.d_kernel)}
        return {"G": nets.SNDCGANGenerator(cfg.resolution, cfg.z_dim, cfg.width, cfg.g_kernel, **g_norm),
                "D": nets.SNDCGANCritic(cfg.resolution, cfg.width, cfg.d_kernel)}

    def build_dataset(self):
        cfg = self.cfg
        if cfg.data:
            source = resized(open_dataset(cfg.data, root=cfg.data_root or None), cfg.resolution)
            source[0]  # a dataset that reads its files on first use does so now, before loader workers fork
        else:
            source = BuiltinImages("train", cfg.resolution)
        return TrainingImages(source, cfg.flip)

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
        logs = {"D/loss": adv.detach(), "D/real": real_logits.mean().detach(), "D/fake": fake_logits.mean().detach()}
        if self.cfg.penalty not in ("none", "clip"):
            logs["D/penalty"] = penalty.detach()
        return adv + self.cfg.penalty_weight * penalty, logs

    def g_step(self, models, batch):
        G, D = models["G"], models["D"]
        _, g_loss = get_loss(self.cfg.loss)
        fake_logits = D(G(self._z(batch["image"].shape[0])))
        real_logits = D(batch["image"]) if self.cfg.loss == "ra" else None
        loss = g_loss(fake_logits, real_logits)
        return loss, {"G/loss": loss.detach()}

    @torch.no_grad()
    def sample(self, G, n, generator, truncation: float | None = None):
        """n images in [-1, 1]; with a truncation T every |z_i| > T is redrawn (BigGAN §3.1)."""
        def z(m):
            return truncated_normal((m, self.cfg.z_dim), truncation, generator=generator, device=self.device)

        return torch.cat([G(z(min(256, n - i))) for i in range(0, n, 256)])

    def export_inputs(self, G, size=None):
        cfg = self.cfg
        res = cfg.resolution
        refuse_size(size, f"an uncond generator makes {res}×{res} images from z")
        return ExportInputs(G, (latent(2, cfg.z_dim),), ["z"],
                            {"z": f"latents (batch, {cfg.z_dim}) ~ N(0, I); truncation: redraw every |z_i| > T"},
                            f"images (batch, 3, {res}, {res}), RGB in [-1, 1]", {"z": {0: batch_dim()}},
                            {"z_dim": cfg.z_dim, "resolution": res, "arch": cfg.arch, "value_range": [-1, 1]})

    def evaluate(self, G):
        """FID/IS of the generator against the reference, with the feature network named in the result."""
        from gancli.metrics.generative.evaluator import config_evaluator

        if not hasattr(self, "_evaluator"):
            self._evaluator = config_evaluator(self.cfg, self.device, _test_split(self.cfg.data))
        return self._evaluator(lambda n, generator: self.sample(G, n, generator))


def _test_split(data: str) -> str:
    """The FID reference of a training set: CIFAR-10's 10k test images (the large-scale study's protocol), else itself."""
    return "cifar10:test" if data in ("cifar10", "cifar10:train") else data


Uncond.import_formats = {
    "mimicry": ImportFormat(
        name="mimicry",
        summary="kwotsin/mimicry SNGAN/SSGAN ResNet",
        files="netG_<step>.pth; --critic netD_<step>.pth (SNGAN and SSGAN at 32 and 48 px; SSGAN's rotation head is "
              "not imported)",
        published="kwotsin/mimicry README: pretrained SNGAN/SSGAN/... checkpoints for CIFAR-10, CIFAR-100, STL-10, "
                  "CelebA, LSUN-Bedroom and ImageNet (Google Drive links)",
        detect=uncond_import.is_mimicry,
        convert=partial(uncond_import.convert, Uncond),
    ),
}
