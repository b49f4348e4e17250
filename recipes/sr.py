"""Single-image super-resolution: the SAN paper's (§4.3, Table 8) and ESRGAN's (Wang et al. 2018), one preset each.

Loss (SAN eq. 10, ESRGAN eq. 3): λ_content·L1 + λ_perceptual·VGG19-conv5_4 L1 + λ_adv·adversarial (SAN: hinge;
ESRGAN: relativistic average). The pixel losses are measured on images in [0, 1], as in ESRGAN/BasicSR, so the
papers' λ carry over. The generator starts from a pixel-loss-pretrained one (SAN: MSE; ESRGAN: L1): either an
earlier run given by `--init-from RUN` (made with the pretrain-san / pretrain-esrgan preset) or the first
`pretrain_steps` steps of this run, during which the critic is off and the loss is `pretrain_loss` alone.

    gancli train sr --preset pretrain-san --data DIV2K --out runs/sr-mse
    gancli train sr --preset san-paper --data DIV2K --init-from runs/sr-mse

Two deliberate deviations from the SAN paper stay, in every preset that follows it:
- the critic is Table 8's (8 convs + 2 dense layers), while §4.3's text speaks of "10 convolutional layers";
  the authors' public code (kligvasser/SANGAN) trains a 10-conv VGG-style critic with batch norm, which is
  the family of `critic = vgg128` (ESRGAN's);
- the crops are augmented with random horizontal and vertical flips and transpositions (crop_augment =
  dihedral, as ESRGAN does), where the SAN paper names random cropping and horizontal flips only:
  `--crop-augment hflip` gives the paper's, `--crop-augment none` turns it off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gancli.config import TrainConfig
from gancli.data.sr import SRCrops, SRImages, bicubic_upsample, heldout_for, image_size, open_sr_images
from gancli.errors import ConfigError
from gancli.nn.export import ExportInputs, batch_dim, spatial_dims
from gancli.nn.tiling import upscale_image
from gancli.objectives import critic_penalty, get_loss
from gancli.train.recipe import Recipe
from recipes.sr_eval import PI_PROTOCOL, SR_PROTOCOL, mean_scores, score_sr_images
from recipes.sr_import import SR_FORMATS
from recipes.sr_nets import RRDBNet, SRCritic, SRResNetGenerator, VGGStyleCritic

log = logging.getLogger("gancli.sr")

RELATIVISTIC = ("ra",)  # losses whose generator term also needs the critic's logits on real images
PIXEL_LOSSES = ("mse", "l1")
CRITICS = ("table8", "vgg128")
ARCHS = ("srresnet", "rrdb", "sangan")
AUGMENTS = SRCrops.AUGMENTS
LEGACY_AUGMENT = {"True": "dihedral", "False": "none"}  # runs saved before crop_augment: augment = true/false


@dataclass
class SRConfig(TrainConfig):
    recipe: str = "sr"
    scale: int = 4  # 4 (the papers) or 2
    # srresnet (SAN Table 8, 1.5M) | rrdb (ESRGAN RRDBNet 64/23/32, 16.7M) | sangan (the SAN authors' g_srgan: 5×5
    # first/last convs, bias-free ResBlocks, bilinear skip; their published models)
    arch: str = "srresnet"
    n_blocks: int = 0  # residual blocks; 0 = the paper's (16 ResBlocks, 23 RRDBs)
    features: int = 64  # the generator's width
    growth: int = 32  # rrdb: channels each dense-block conv adds
    unshuffle: int = 1  # rrdb: 2 = BasicSR's ×2 RRDBNet (Real-ESRGAN x2plus): input pixel-unshuffled, network ×4
    io_range: str = "signed"  # signed: G works on [-1, 1] images | unit: on [0, 1] (ESRGAN, BasicSR, SANGAN code)
    critic: str = "table8"  # table8 (SAN Table 8: 8 convs, lReLU 0.1) | vgg128 (ESRGAN: 10 convs, batch norm, lReLU 0.2)
    hr_size: int = 128  # HR crop side; the critic's input size (multiple of 16; vgg128: of 32, from 64)
    # SAN eq. 10 and §4.3; the pixel losses are measured on images in [0, 1]
    lambda_content: float = 1e-2  # L1
    lambda_perceptual: float = 1.0  # VGG19 conv5_4 (before ReLU) L1
    lambda_adv: float = 1e-1  # the paper reports 1e-1 (best NIQE) and 1e-2 (best PSNR)
    perceptual: str = "vgg19"  # vgg19 | none
    vgg_weights: str = ""  # torchvision's vgg19-dcbb9e9d.pth; "" = the torch hub cache
    adversarial: bool = True  # False: a pure pixel-loss pretraining run, no critic
    pretrain_steps: int = 0  # first steps of pretrain_loss-only training (critic off) before the adversarial phase
    pretrain_loss: str = "mse"  # mse (SAN §4.3: the initial G "minimizes mean squared error") | l1 (ESRGAN)
    # of the training crops (the critic's inputs are never augmented here: `augment` stays none)
    crop_augment: str = "dihedral"  # dihedral (flips + transpositions; a deviation, see above) | hflip (SAN) | none
    test_data: str = ""  # held-out images scored by evaluate(); "" = builtin test photos / DIV2K valid
    eval_images: int = 10  # at most this many held-out images per evaluation
    eval_tile: int = 256  # LR tile size of evaluation and sampling (0 = whole images)
    # SAN §4.3: hinge, Adam 2e-4 (0.5, 0.9), batch 32, 400k steps, lr halved at 12.5/25/50/75 %
    norm: str = "san"
    loss: str = "hinge"
    steps: int = 400_000
    batch_size: int = 32
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas_g: list[float] = field(default_factory=lambda: [0.5, 0.9])
    betas_d: list[float] = field(default_factory=lambda: [0.5, 0.9])
    lr_schedule: str = "multistep"
    lr_milestones: list[float] = field(default_factory=lambda: [0.125, 0.25, 0.5, 0.75])
    lr_gamma: float = 0.5
    ema: bool = False  # neither paper keeps an EMA of G
    log_every: int = 100
    sample_every: int = 5000
    ckpt_every: int = 5000
    eval_every: int = 5000
    n_samples: int = 8


PRESETS = {
    # san-paper cut to CPU size: builtin photos, 64 px crops, 200 MSE steps then 100 hinge + critic (SAN) steps,
    # measured at 4.3 CPU-minutes single-threaded. No VGG (its weights are a download), so L1 carries the
    # content term: weight 2 on [0, 1] images, the weight 1 on [-1, 1] this preset was tuned with.
    "quick": {"steps": 300, "pretrain_steps": 200, "batch_size": 8, "hr_size": 64, "perceptual": "none",
              "lambda_content": 2.0, "lambda_adv": 1e-2, "log_every": 10, "sample_every": 100,
              "ckpt_every": 100, "eval_every": 100, "eval_images": 2, "n_samples": 6, "lr_schedule": "constant"},
    # SAN paper §4.3 + Table 8: SRResNet G (1.5M), Table 8 critic with SAN, L1 1e-2 + VGG54 1 + hinge 1e-1,
    # Adam 2e-4 (0.5, 0.9), batch 32, 128 px, 400k steps, lr halved at 12.5/25/50/75 %, from an MSE-pretrained G
    # (--init-from a pretrain-san run)
    "san-paper": {"arch": "srresnet", "critic": "table8", "norm": "san", "loss": "hinge", "lambda_content": 1e-2,
                  "lambda_perceptual": 1.0, "lambda_adv": 1e-1, "pretrain_loss": "mse", "lr_g": 2e-4,
                  "lr_d": 2e-4, "betas_g": [0.5, 0.9], "betas_d": [0.5, 0.9], "batch_size": 32, "hr_size": 128,
                  "steps": 400_000, "lr_schedule": "multistep", "lr_milestones": [0.125, 0.25, 0.5, 0.75]},
    # ESRGAN (Wang et al. 2018, §4.1): RRDBNet (16.7M), VGG-style 128 px critic with batch norm and no
    # normalization, RaGAN 5e-3 + L1 1e-2 + VGG54 1, Adam 1e-4 (0.9, 0.999) (BasicSR's config: β2 0.99),
    # batch 16, 128 px, lr halved at 50k/100k/200k/300k of 400k, from an L1-pretrained G (a pretrain-esrgan run)
    "esrgan": {"arch": "rrdb", "critic": "vgg128", "norm": "none", "loss": "ra", "lambda_content": 1e-2,
               "lambda_perceptual": 1.0, "lambda_adv": 5e-3, "pretrain_loss": "l1", "lr_g": 1e-4, "lr_d": 1e-4,
               "betas_g": [0.9, 0.999], "betas_d": [0.9, 0.999], "batch_size": 16, "hr_size": 128,
               "steps": 400_000, "lr_schedule": "multistep", "lr_milestones": [0.125, 0.25, 0.5, 0.75]},
    # The SAN paper's initial G: SRResNet trained for MSE. The paper gives no other setting: batch 16 and Adam
    # 2e-4 (0.9, 0.99) are its authors' code defaults (kligvasser/SANGAN); 128 px crops and 200k steps with
    # san-paper's lr halvings are this recipe's choice.
    "pretrain-san": {"arch": "srresnet", "adversarial": False, "pretrain_loss": "mse", "perceptual": "none",
                     "steps": 200_000, "batch_size": 16, "hr_size": 128, "betas_g": [0.9, 0.99]},
    # ESRGAN's PSNR-oriented G (§4.1): RRDBNet trained for L1, Adam 2e-4 (0.9, 0.999), batch 16, 128 px, lr
    # halved every 200k steps; 1M steps as BasicSR's config (the paper gives no total)
    "pretrain-esrgan": {"arch": "rrdb", "adversarial": False, "pretrain_loss": "l1", "perceptual": "none",
                        "lr_g": 2e-4, "betas_g": [0.9, 0.999], "batch_size": 16, "hr_size": 128,
                        "steps": 1_000_000, "lr_schedule": "multistep", "lr_milestones": [0.2, 0.4, 0.6, 0.8]},
}


def build_generator(cfg: SRConfig) -> nn.Module:
    unit = cfg.io_range == "unit"
    if cfg.arch == "rrdb":
        return RRDBNet(cfg.scale, cfg.features, cfg.n_blocks or 23, cfg.growth, cfg.unshuffle, unit)
    return SRResNetGenerator(cfg.scale, cfg.features, cfg.n_blocks or 16, sangan=cfg.arch == "sangan", unit=unit)


def build_critic(cfg: SRConfig) -> nn.Module:
    return SRCritic(cfg.hr_size) if cfg.critic == "table8" else VGGStyleCritic(cfg.hr_size)


def pixel_loss(kind: str, output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute (l1) or squared (mse) error of two [-1, 1] images, measured on [0, 1] as BasicSR does."""
    diff = (output - target) / 2
    return diff.abs().mean() if kind == "l1" else diff.square().mean()


class SuperResolution(Recipe):
    name = "sr"
    summary = ("×4/×2 super-resolution. san-paper, pretrain-san: SAN §4.3 + Table 8 (SRResNet G, 8-conv critic "
               "+ SAN, L1 + VGG54 + hinge, MSE-pretrained G); esrgan, pretrain-esrgan: ESRGAN (RRDBNet, VGG-128 "
               "BN critic, L1 + VGG54 + RaGAN, L1-pretrained G); quick: san-paper at CPU size")
    Config = SRConfig
    presets = PRESETS
    offline_preset = "quick"
    offline_critic_why = ("measured at this size: NIQE 7.03 / 6.90 with SAN against 7.31 / 7.38 with SN (seeds 0 and 1, "
                          "PSNR-Y a few hundredths of a dB lower; issue 28)")
    best_metric = None  # the adversarial phase trades PSNR for realism: "best PSNR" would be the pretrained model
    no_augment_reason = "its critic judges fine texture, which augmented inputs would teach it to overlook"
    network_fields = ("scale", "arch", "n_blocks", "features", "growth", "unshuffle", "io_range", "critic")
    import_formats = SR_FORMATS

    def __init__(self, cfg: SRConfig):
        if cfg.augment in LEGACY_AUGMENT:  # an old run's crop flag, not the critic augmentation that took its name
            cfg.crop_augment, cfg.augment = LEGACY_AUGMENT[cfg.augment], "none"
        super().__init__(cfg)
        if not cfg.adversarial:
            self.best_metric = ("psnr_y", "max")
        self.vgg: nn.Module | None = None
        self._heldout: SRImages | None | bool = False  # False: not looked up yet
        self._bicubic: dict[str, float] | None = None
        self._pi: tuple | None = None  # (PerceptualIndex or None, why not), looked up once

    # ---- config ------------------------------------------------------------------------
    def validate(self) -> None:
        cfg = self.cfg
        if cfg.arch not in ARCHS:
            raise ConfigError(f"'arch' must be srresnet (SAN Table 8), rrdb (ESRGAN) or sangan (SANGAN's g_srgan), "
                              f"got '{cfg.arch}'.")
        if cfg.scale not in (2, 4):
            raise ConfigError(f"'scale' must be 2 or 4, got {cfg.scale}.")
        if cfg.unshuffle not in (1, 4 // cfg.scale) or (cfg.unshuffle > 1 and cfg.arch != "rrdb"):
            raise ConfigError(f"'unshuffle' must be 1, or 2 with arch rrdb at scale 2 (BasicSR's ×2 RRDBNet), got "
                              f"{cfg.unshuffle}.")
        if cfg.io_range not in ("signed", "unit"):
            raise ConfigError(f"'io_range' must be signed ([-1, 1]) or unit ([0, 1]), got '{cfg.io_range}'.")
        if cfg.features < 1 or cfg.growth < 1:
            raise ConfigError(f"'features' and 'growth' must be positive, got {cfg.features} and {cfg.growth}.")
        if cfg.critic not in CRITICS:
            raise ConfigError(f"'critic' must be table8 (SAN Table 8) or vgg128 (ESRGAN), got '{cfg.critic}'.")
        if cfg.hr_size < 32 or cfg.hr_size % 16 or cfg.hr_size % cfg.scale:
            raise ConfigError(f"'hr_size' must be a multiple of 16 of at least 32 (the critic halves it 4 times), "
                              f"got {cfg.hr_size}.")
        smallest = VGGStyleCritic.smallest_side()
        if cfg.critic == "vgg128" and (cfg.hr_size % 32 or cfg.hr_size < smallest):
            raise ConfigError(f"'hr_size' must be a multiple of 32 for the vgg128 critic (it halves it 5 times), "
                              f"and at least {smallest}, where its last batch norm still sees 2×2 values per image, "
                              f"got {cfg.hr_size}.")
        if cfg.perceptual not in ("vgg19", "none"):
            raise ConfigError(f"'perceptual' must be vgg19 or none, got '{cfg.perceptual}'.")
        if cfg.pretrain_loss not in PIXEL_LOSSES:
            raise ConfigError(f"'pretrain_loss' must be mse (SAN) or l1 (ESRGAN), got '{cfg.pretrain_loss}'.")
        if cfg.crop_augment not in AUGMENTS:
            raise ConfigError(f"'crop_augment' must be dihedral, hflip or none, got '{cfg.crop_augment}'.")
        for key in ("lambda_content", "lambda_perceptual", "lambda_adv", "pretrain_steps", "n_blocks",
                    "eval_images", "eval_tile"):
            if getattr(cfg, key) < 0:
                raise ConfigError(f"'{key}' must not be negative, got {getattr(cfg, key)}.")

    def critic_active(self, step: int) -> bool:
        return self.cfg.adversarial and step >= self.cfg.pretrain_steps

    # ---- models and data ---------------------------------------------------------------
    def build_models(self):
        models = {"G": build_generator(self.cfg)}
        if self.cfg.adversarial:
            models["D"] = build_critic(self.cfg)
        return models

    def build_dataset(self):
        # Only the trainer calls this (after build_models), so training-only setup lives here: the VGG19 of the
        # perceptual loss.
        cfg = self.cfg
        images = open_sr_images(cfg.data, cfg.scale, "train")  # first: a missing folder fails before any weights
        if cfg.adversarial and cfg.perceptual == "vgg19" and cfg.lambda_perceptual > 0:
            from gancli.objectives.perceptual import VGGFeatureLoss

            self.vgg = VGGFeatureLoss(cfg.vgg_weights or None).to(self.device)
        elif cfg.adversarial:
            log.warning("sr: perceptual loss off (perceptual = %s): training with L1 + adversarial only; "
                        "PSNR/SSIM are comparable, perceptual quality is not the paper's.", cfg.perceptual)
        if cfg.adversarial and not cfg.init_from and cfg.pretrain_steps == 0:
            log.warning("sr: the critic starts against a random generator; the papers start from an MSE/L1-"
                        "pretrained one (--init-from RUN, or --pretrain-steps N).")
        return SRCrops(images, cfg.hr_size, cfg.crop_augment)

    # ---- steps -------------------------------------------------------------------------
    def d_step(self, models, batch):
        G, D = models["G"], models["D"]
        lr, hr = batch["lr"], batch["hr"]
        with torch.no_grad():
            sr = G(lr)
        d_loss, _ = get_loss(self.cfg.loss)
        real_logits, fake_logits = D(hr), D(sr)
        adv = d_loss(real_logits, fake_logits)
        penalty = critic_penalty(self.cfg.penalty, D, D, hr, sr)
        loss = adv + self.cfg.penalty_weight * penalty
        return loss, {"D/loss": adv.detach(), "D/penalty": penalty.detach(),
                      "D/real": real_logits.mean().detach(), "D/fake": fake_logits.mean().detach()}

    def g_step(self, models, batch):
        cfg = self.cfg
        lr, hr = batch["lr"], batch["hr"]
        sr = models["G"](lr)
        if not self.critic_active(self.step):
            pretrain = pixel_loss(cfg.pretrain_loss, sr, hr)
            return pretrain, {f"G/{cfg.pretrain_loss}": pretrain.detach()}
        l1 = pixel_loss("l1", sr, hr)
        D = models["D"]
        loss = cfg.lambda_content * l1
        logs = {"G/l1": l1.detach()}
        if self.vgg is not None:
            perceptual = self.vgg(sr, hr)
            loss = loss + cfg.lambda_perceptual * perceptual
            logs["G/vgg"] = perceptual.detach()
        _, g_loss = get_loss(cfg.loss)
        real_logits = D(hr).detach() if cfg.loss in RELATIVISTIC else None
        adv = g_loss(D(sr), real_logits)
        loss = loss + cfg.lambda_adv * adv
        logs["G/adv"] = adv.detach()
        logs["G/loss"] = loss.detach()
        return loss, logs

    # ---- held-out images ---------------------------------------------------------------
    def heldout(self) -> SRImages | None:
        """The images scored by evaluate() and cropped by sample(), or None when there are none."""
        if self._heldout is False:
            cfg = self.cfg
            self._heldout = (open_sr_images(cfg.test_data, cfg.scale, "test") if cfg.test_data
                             else heldout_for(cfg.data, cfg.scale))
            if self._heldout is None:
                log.warning("sr: no held-out images (give --test-data FOLDER); evaluation is skipped.")
        return self._heldout

    def perceptual_index(self):
        """(PI scorer, "") when the iqa extra and NRQM's weights are here (no download), else (None, why not)."""
        if self._pi is None:
            from gancli.metrics.quality.pyiqa_metrics import perceptual_index

            self._pi = perceptual_index(self.cfg.scale)
        return self._pi

    def evaluate(self, G):
        """Mean PSNR/SSIM (Y, crop = scale), NIQE (and PI with the iqa extra) of G on the held-out images, next to
        bicubic's."""
        images = self.heldout()
        if images is None:
            return {}
        cfg = self.cfg
        limit = cfg.eval_images or None
        pi, _ = self.perceptual_index()
        rows = score_sr_images(G, images, cfg.scale, limit=limit, tile=cfg.eval_tile, device=self.device, pi=pi)
        if self._bicubic is None:
            self._bicubic = mean_scores(score_sr_images(None, images, cfg.scale, limit=limit, pi=pi))
        scores = mean_scores(rows)
        for key, value in self._bicubic.items():
            scores[f"{key}_bicubic"] = value
        count = min(limit or len(images), len(images))
        scores["protocol"] = (f"{images.what}, {count} images; " + SR_PROTOCOL.format(s=cfg.scale)
                              + (PI_PROTOCOL if pi else ""))
        return scores

    @torch.no_grad()
    def sample(self, G, n, generator):
        """n held-out crops as [bicubic | SR | HR] strips in [-1, 1] (training crops if none are held out)."""
        cfg = self.cfg
        source, eligible = self.heldout(), []
        if source is not None:
            eligible = [i for i, f in enumerate(source.hr_files) if min(image_size(f)) >= cfg.hr_size]
        if not eligible:  # no held-out images, or all smaller than a crop: show training crops
            source = open_sr_images(cfg.data, cfg.scale, "train")
            eligible = list(range(len(source)))
        crops = SRCrops(source, cfg.hr_size, augment="none")
        device = generator.device
        seeds = torch.randint(0, 2**62, (n, 2), generator=generator, device=device).cpu().tolist()
        strips = []
        for index, seed in seeds:
            item = crops[(eligible[index % len(eligible)], seed)]
            lr, hr = item["lr"][None].to(self.device), item["hr"][None].to(self.device)
            sr = G(lr).clamp(-1, 1)
            bicubic = bicubic_upsample(lr, cfg.scale).clamp(-1, 1)
            strips.append(torch.cat([bicubic, sr, hr], dim=-1))
        return torch.cat(strips)

    def finalize_generator(self, G):
        G.eval()

    # ---- inference verbs ---------------------------------------------------------------
    @torch.no_grad()
    def verb_inputs(self) -> dict[str, Any]:
        return {"upscale": {"scale": self.cfg.scale}}

    def upscale(self, G, image, *, tile=256, overlap=40, device=None, on_tile=None):
        """One uint8 image (3, h, w) upscaled by G → uint8 (3, s·h, s·w), tiled so any size fits in memory."""
        return upscale_image(G, image, self.cfg.scale, tile, overlap, device, on_tile)

    def export_inputs(self, G, size=None):
        cfg = self.cfg
        s = cfg.scale
        height, width = size or (cfg.hr_size // s, cfg.hr_size // s)
        lr = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0)) * 2 - 1
        h, w = spatial_dims(minimum=3)  # MATLAB's bicubic border rule needs 3 px a side
        return ExportInputs(G, (lr,), ["lr"], {"lr": "low-resolution images (batch, 3, height, width), RGB in [-1, 1]"},
                            f"upscaled images (batch, 3, {s}·height, {s}·width), RGB in [-1, 1] before clamping (the "
                            f"output is not clamped: clamp to [-1, 1])", {"lr": {0: batch_dim(), 2: h, 3: w}},
                            {"scale": s, "arch": cfg.arch, "value_range": [-1, 1]})

    def score_test_set(self, G, data, lr=None, *, limit=0, tile=256, overlap=40, device=None, on_image=None,
                       on_total=None):
        """G and bicubic on a test set (HR folder, DIV2K root or 'builtin'; LR made by MATLAB bicubic unless `lr`).

        on_image(name) is called after each of the 2·count images scored (model, then bicubic); on_total(2·count)
        once before."""
        from gancli.data.sr import SRTestSet

        scale = self.cfg.scale
        images = SRTestSet(data, lr, scale) if lr else open_sr_images(data, scale, "test")
        count = min(limit, len(images)) if limit else len(images)
        if on_total:
            on_total(2 * count)
        pi, no_pi = self.perceptual_index()
        model_rows = score_sr_images(G, images, scale, limit=count, tile=tile, overlap=overlap, device=device, pi=pi,
                                     on_image=on_image)
        bicubic_rows = score_sr_images(None, images, scale, limit=count, pi=pi, on_image=on_image)
        return {"data": images.what, "scale": scale, "count": count,
                "protocol": SR_PROTOCOL.format(s=scale) + (PI_PROTOCOL if pi else ""),
                "notes": [n for n in [images.crop_note(), no_pi] if n], "model": model_rows, "bicubic": bicubic_rows,
                "mean": {"model": mean_scores(model_rows), "bicubic": mean_scores(bicubic_rows)}}

