"""Class-conditional BigGAN (Brock, Donahue & Simonyan 2019): shared embedding, hierarchical z, projection D.

Training: hinge loss, Adam (G 5e-5, D 2e-4, β = (0, 0.999)), two D steps per G step, SN in G and D,
orthogonal init, orthogonal regularization (eq. 3, β = 1e-4, not on the class embedding), EMA of G.
Inference: standing statistics (App. C.1) and truncated latents (§3.1).
"""

from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn
from torch.utils.data import Dataset

from gancli.config import TrainConfig
from gancli.data.builtin import BuiltinImages
from gancli.data.images import TrainingImages
from gancli.data.specs import open_dataset, resized
from gancli.errors import ConfigError, DataError
from gancli.nn.export import ExportInputs, batch_dim, latent, refuse_size
from gancli.nn.latent import standing_statistics, truncated_normal
from gancli.objectives import critic_penalty, get_loss, orthogonal_regularization
from gancli.train import distributed
from gancli.train.imports import ImportFormat
from gancli.train.recipe import Recipe
from recipes import biggan_import, biggan_tfhub_import
from recipes.biggan_deep_nets import (
    DEEP_G_PLANS,
    DeepCritic,
    DeepGenerator,
    deep_attention_channels,
    deep_d_sizes,
    deep_g_sizes,
)
from recipes.biggan_nets import (
    G_PLANS,
    GEN_NORMS,
    INITS,
    Critic,
    Generator,
    attention_channels,
    d_sizes,
    g_sizes,
    initialize,
    spectral_norm_all,
)

ARCHS = ("default", "deep")
CLASS_EMBEDDINGS = ("shared", "compose")  # parameter names left out of the orthogonal regularization


@dataclass
class BigGANConfig(TrainConfig):
    """Defaults are the paper's 128 px ImageNet model (Table 1 row 7 / Table 4, App. C)."""

    # run folders written before the G/D attention split and the ε fields open as they were trained (torch's BN and
    # spectral-norm defaults, 1e-5 and 1e-12)
    RENAMED: ClassVar[dict[str, tuple[str, ...]]] = {"attention": ("g_attention", "d_attention")}
    PREDATED: ClassVar[dict[str, float]] = {"bn_eps": 1e-5, "sn_eps": 1e-12}

    recipe: str = "biggan"
    # default: BigGAN (App. B, Tables 4-6); deep: BigGAN-deep (bottleneck ResBlocks, two per resolution, z not split,
    # as ajbrock/BigGAN-PyTorch BigGANdeep.py)
    arch: str = "default"
    resolution: int = 128  # 32, 64, 128 (Table 4) or 256 (Table 5)
    ch: int = 96  # channel multiplier ("Ch." of Table 1)
    z_dim: int = 120  # 128 px: 6 chunks of 20 (one for the dense layer, one per up-block)
    shared_dim: int = 128  # shared class embedding; 0: plain per-class gain/bias tables in each BN (no hier)
    hier: bool = True  # hierarchical latents: z split into chunks fed to every block
    # resolution of the non-local block in G and in D (Tables 4-6: both at 64 for 128 px; at 256 px G's moves up to
    # 128, D's stays at 64); 0: none
    g_attention: int = 64
    d_attention: int = 64
    gen_norm: str = "cbn"  # cbn (class-conditional BN) or self-mod (conditional self-modulation, eq. 3)
    init: str = "ortho"  # ortho (the paper), N02 or xavier
    g_spectral_norm: bool = True
    # deep only, for TF-Hub's generators (pytorch-pretrained-biggan): BN statistics tabled at this many truncation
    # values in [0, 1] instead of running ones (0: running ones), and the width of the last conv, of whose output
    # the image is the first three channels (TF-Hub convolves to ch channels)
    truncation_stats: int = 0
    rgb_channels: int = 3
    # ε of G's BNs and of G's and D's spectral norms (App. C: raised from the default to 1e-4 in both "to mollify
    # low-precision numerical issues"; BigGAN-PyTorch's ImageNet launch scripts use BN_eps 1e-5, SN_eps 1e-6)
    bn_eps: float = 1e-4
    sn_eps: float = 1e-4
    ortho_reg: float = 1e-4  # β of eq. 3
    num_classes: int = 0  # 0: from the data (10 for builtin and CIFAR-10, the folder count for imagenet:PATH)
    flip: bool = False
    standing_passes: int = 100  # forward passes of random z and y for standing statistics (App. C.1); 0: keep G's own
    # sampling with --truncation re-estimates the standing statistics on z truncated at that threshold
    # (BigGAN-PyTorch sample.py --accumulate_stats, which re-accumulates at each point of its truncation curve)
    truncated_standing_stats: bool = True
    cross_replica_bn: bool = True  # under torchrun on GPUs, G's BN statistics over all processes (App. C)
    data_root: str = ""
    eval_n: int = 50_000  # BigGAN-PyTorch's num_inception_images: FID and IS over 50k samples
    eval_reference: str = ""  # "" means builtin:test at the training resolution, or the data's own spec
    eval_features: str = ""  # "" means the builtin-data classifier on builtin data, Inception otherwise
    eval_metrics: list[str] = field(default_factory=lambda: ["fid", "is"])
    # App. C: hinge loss, SA-GAN's learning rates halved, two D steps, EMA 0.9999, batch 2048 (256 × 8 accumulated)
    norm: str = "sn"
    loss: str = "hinge"
    lr_g: float = 5e-5
    lr_d: float = 2e-4
    betas_g: list[float] = field(default_factory=lambda: [0.0, 0.999])
    betas_d: list[float] = field(default_factory=lambda: [0.0, 0.999])
    n_dis: int = 2
    batch_size: int = 256
    grad_accum: int = 8
    ema: bool = True
    ema_decay: float = 0.9999
    ema_start: int = 20_000  # BigGAN-PyTorch's ImageNet scripts; the paper does not say
    steps: int = 150_000  # the paper stops early at collapse (§3.2); the telemetry below detects it
    # the paper's runs were stopped by hand at collapse (§4, App. F): collapses are logged (telemetry.jsonl,
    # spectra.png), training goes on; --on-collapse stop or rollback acts on them
    on_collapse: str = "warn"
    telemetry_every: int = 100
    sample_every: int = 2000
    ckpt_every: int = 2000


PRESETS = {
    # BigGAN-deep at 128 px: App. C's training (hinge, G 5e-5 / D 2e-4, two D steps, EMA 0.9999, orthogonal init,
    # BN and SN ε raised to 1e-4) on BigGANdeep.py's network as scripts/launch_BigGAN_deep.sh sizes it (ch 128,
    # z 128 unsplit with a 128-d shared embedding, attention at 64 in G and D, two blocks per resolution)
    "biggan-deep": {"arch": "deep", "resolution": 128, "ch": 128, "z_dim": 128, "shared_dim": 128, "hier": True,
                    "g_attention": 64, "d_attention": 64, "bn_eps": 1e-4, "sn_eps": 1e-4},
    # CPU-sized (~3-4 min on 2 idle cores with its evaluations): builtin 10-class data at 32 px, ch 4, one D step;
    # lr 4e-4 and β1 0.5 halve the builtin FID at step 400 against the paper's optimiser (35 vs 71, one seed each)
    "quick": {"resolution": 32, "ch": 4, "z_dim": 64, "g_attention": 16, "d_attention": 16,
              "batch_size": 32, "grad_accum": 1,
              "n_dis": 1, "steps": 800, "lr_g": 4e-4, "lr_d": 4e-4, "betas_g": [0.5, 0.999],
              "betas_d": [0.5, 0.999], "ema_decay": 0.99, "ema_start": 400,
              "standing_passes": 20, "sample_every": 400, "ckpt_every": 100, "log_every": 10,
              "telemetry_every": 10, "eval_every": 400, "eval_n": 1000, "n_samples": 100,
              "on_collapse": "stop"},
    # Table 5 (256 px): one more ResBlock at 16×16, G's non-local block moved up to 128×128 (D's stays at 64×64),
    # z of 140 (7 chunks of 20, one per up-block and one for the dense layer); the rest as the 128 px model
    "biggan-256": {"resolution": 256, "z_dim": 140, "g_attention": 128, "d_attention": 64},
    # BigGAN-PyTorch's launch_BigGAN_bs256x8.sh, which trained its published ImageNet 128 model (what `gancli import
    # biggan-pytorch` starts from): 1 D step, lr 1e-4 / 4e-4, no orthogonal regularization, BN_eps 1e-5,
    # SN_eps 1e-6; sample_BigGAN_bs256x8.sh samples in eval mode without --accumulate_stats
    "biggan-pytorch-imagenet": {"n_dis": 1, "lr_g": 1e-4, "lr_d": 4e-4, "ortho_reg": 0.0, "bn_eps": 1e-5,
                                "sn_eps": 1e-6, "truncated_standing_stats": False},
    # BigGAN-PyTorch's launch_cifar_ema.sh: batch 50, 4 D steps, lr 2e-4, no attention, N(0, 0.02) init,
    # no orthogonal regularization, per-layer class embeddings, no hierarchy, EMA from iteration 1000, 500 epochs;
    # BN_eps and SN_eps as utils.py's defaults (the script sets neither)
    "biggan-pytorch-cifar": {"data": "cifar10:train", "resolution": 32, "ch": 64, "z_dim": 128, "shared_dim": 0,
                             "hier": False, "g_attention": 0, "d_attention": 0, "init": "N02", "ortho_reg": 0.0,
                             "batch_size": 50,
                             "grad_accum": 1, "n_dis": 4, "lr_g": 2e-4, "lr_d": 2e-4, "ema_start": 1000,
                             "bn_eps": 1e-5, "sn_eps": 1e-8, "steps": 125_000, "eval_every": 5000,
                             "sample_every": 2000, "ckpt_every": 2000},
    # SAN paper §4.1 / Table 1: the BigGAN CIFAR-10 model with SAN in every critic ResBlock and Adam β1 = 0.5
    "san-biggan": {"data": "cifar10:train", "resolution": 32, "ch": 64, "z_dim": 128, "shared_dim": 0,
                   "hier": False, "g_attention": 0, "d_attention": 0, "init": "N02", "ortho_reg": 0.0, "batch_size": 50,
                   "grad_accum": 1, "n_dis": 4, "lr_g": 2e-4, "lr_d": 2e-4, "ema_start": 1000,
                   "bn_eps": 1e-5, "sn_eps": 1e-8, "steps": 125_000, "eval_every": 5000, "sample_every": 2000,
                   "ckpt_every": 2000,
                   "norm": "san", "betas_g": [0.5, 0.999], "betas_d": [0.5, 0.999]},
}


class BigGAN(Recipe):
    name = "biggan"
    summary = "Class-conditional BigGAN: cBN on a shared embedding + hierarchical z, projection D, truncation"
    Config = BigGANConfig
    offline_critic_why = ("BigGAN's spectral norm; SAN was not measured against it at this size, and SAN App. H finds "
                          "residual critics little channel-sparse")
    best_metric = ("fid", "min")
    network_fields = ("arch", "truncation_stats", "rgb_channels", "resolution", "ch", "z_dim", "shared_dim", "hier",
                      "g_attention", "d_attention", "gen_norm", "num_classes", "g_spectral_norm", "bn_eps", "sn_eps")
    presets = PRESETS

    def __init__(self, cfg: BigGANConfig):
        super().__init__(cfg)
        if not cfg.num_classes:  # a new run: the data says (saved in config.toml, so sampling never opens it)
            cfg.num_classes = self._source().num_classes
            if not cfg.num_classes:
                raise DataError(f"Dataset '{cfg.data}' has no class labels; BigGAN is class-conditional (use "
                                f"imagenet:PATH for a folder of class subfolders, or cifar10:train).")

    def validate(self) -> None:
        cfg = self.cfg
        if cfg.arch not in ARCHS:
            raise ConfigError(f"'arch' must be one of {', '.join(ARCHS)}, got '{cfg.arch}'.")
        plans = DEEP_G_PLANS if cfg.arch == "deep" else G_PLANS
        if cfg.resolution not in plans:
            raise ConfigError(f"'resolution' must be one of {', '.join(map(str, plans))} (BigGAN's layouts for arch "
                              f"{cfg.arch}), got {cfg.resolution}.")
        self._validate_deep() if cfg.arch == "deep" else self._validate_default()
        if cfg.gen_norm not in GEN_NORMS:
            raise ConfigError(f"'gen_norm' must be one of {', '.join(GEN_NORMS)}, got '{cfg.gen_norm}'.")
        if cfg.init not in INITS:
            raise ConfigError(f"'init' must be one of {', '.join(INITS)}, got '{cfg.init}'.")
        if not (0 < cfg.bn_eps < 1 and 0 < cfg.sn_eps < 1):
            raise ConfigError(f"'bn_eps' and 'sn_eps' must be in (0, 1), got {cfg.bn_eps:g} and {cfg.sn_eps:g}.")
        if cfg.ch < 1:
            raise ConfigError(f"'ch' must be at least 1, got {cfg.ch}.")
        for key in ("shared_dim", "num_classes", "standing_passes", "eval_n"):
            if getattr(cfg, key) < 0:
                raise ConfigError(f"'{key}' must not be negative, got {getattr(cfg, key)}.")
        if cfg.ortho_reg < 0:
            raise ConfigError(f"'ortho_reg' must not be negative, got {cfg.ortho_reg}.")
        if not cfg.eval_metrics or any(m not in ("fid", "is", "kid") for m in cfg.eval_metrics):
            raise ConfigError(f"'eval_metrics' must name one or more of fid, is, kid, got {cfg.eval_metrics}.")
        if cfg.eval_features not in ("", "inception", "builtin"):
            raise ConfigError(f"'eval_features' must be inception or builtin, got '{cfg.eval_features}'.")
        if cfg.data.startswith("imagenet:") and cfg.eval_every and not cfg.eval_reference:
            raise ConfigError("Evaluating on an imagenet: folder needs 'eval_reference' (e.g. a .npz made with "
                              "`gancli eval stats`), since its images have many sizes.")

    def _validate_default(self) -> None:
        cfg = self.cfg
        if cfg.gen_norm == "cbn" and cfg.hier and not cfg.shared_dim:
            raise ConfigError("'hier' needs a shared class embedding ('shared_dim' > 0): without one each BN reads the "
                              "class from its own table, as BigGAN-PyTorch's, and takes no z.")
        slots = len(G_PLANS[cfg.resolution]) + 1 if cfg.hier else 1
        if cfg.z_dim < slots:
            raise ConfigError(f"'z_dim' must give each of the {slots} hierarchical chunks one entry, got {cfg.z_dim}.")
        self._validate_attention(g_sizes(cfg.resolution), d_sizes(cfg.resolution))
        self._validate_attention_width(attention_channels(cfg.resolution, cfg.g_attention, cfg.d_attention))
        if cfg.truncation_stats or cfg.rgb_channels != 3:
            raise ConfigError("'truncation_stats' and 'rgb_channels' describe TF-Hub's BigGAN-deep generators; they "
                              "need --arch deep.")

    def _validate_deep(self) -> None:
        cfg = self.cfg
        if cfg.gen_norm != "cbn" or not cfg.shared_dim or not cfg.hier:
            raise ConfigError("BigGAN-deep conditions every BN on [shared embedding, z] (gen_norm cbn, shared_dim > 0, "
                              "hier true), as BigGANdeep.py does.")
        if cfg.ch < 4:
            raise ConfigError(f"'ch' must be at least 4 for BigGAN-deep (its bottlenecks take a quarter of the "
                              f"channels), got {cfg.ch}.")
        if cfg.truncation_stats == 1 or cfg.truncation_stats < 0 or cfg.rgb_channels < 3:
            raise ConfigError(f"'truncation_stats' must be 0 or at least 2 and 'rgb_channels' at least 3, got "
                              f"{cfg.truncation_stats} and {cfg.rgb_channels}.")
        if cfg.truncation_stats and cfg.standing_passes:
            raise ConfigError("A generator with tabled BN statistics ('truncation_stats', TF-Hub's) samples with them, "
                              "not with standing statistics: add --set standing_passes=0.")
        self._validate_attention(deep_g_sizes(cfg.resolution), deep_d_sizes(cfg.resolution))
        self._validate_attention_width(deep_attention_channels(cfg.resolution, cfg.g_attention, cfg.d_attention))

    def _validate_attention_width(self, widths: dict[str, int]) -> None:
        for key, channels in widths.items():
            if channels * self.cfg.ch < 8:
                raise ConfigError(f"The non-local block at '{key}' = {getattr(self.cfg, key)} has {channels} × ch = "
                                  f"{channels * self.cfg.ch} channels; it needs 8 (raise 'ch' to {-(-8 // channels)}).")

    def _validate_attention(self, g_passes: list[int], d_passes: list[int]) -> None:
        for key, sizes in (("g_attention", g_passes), ("d_attention", d_passes)):
            if getattr(self.cfg, key) and getattr(self.cfg, key) not in sizes:
                passed = ", ".join(map(str, sorted(sizes)))
                network = "G" if key == "g_attention" else "D"
                raise ConfigError(f"'{key}' must be 0 or a resolution {network} passes through ({passed}), "
                                  f"got {getattr(self.cfg, key)}.")

    # ---- networks and data ---------------------------------------------------------------
    def build_plain_generator(self) -> Generator | DeepGenerator:
        """G with orthogonal (or the configured) init and SN, its BNs per process."""
        cfg = self.cfg
        if cfg.arch == "deep":
            G = DeepGenerator(cfg.resolution, cfg.ch, cfg.z_dim, cfg.num_classes, cfg.shared_dim, cfg.g_attention,
                              cfg.bn_eps, cfg.truncation_stats, cfg.rgb_channels)
        else:
            G = Generator(cfg.resolution, cfg.ch, cfg.z_dim, cfg.num_classes, cfg.shared_dim, cfg.hier,
                          cfg.g_attention, cfg.gen_norm, cfg.bn_eps)
        initialize(G, cfg.init)
        if cfg.g_spectral_norm:
            spectral_norm_all(G, cfg.sn_eps)
        return G

    def build_models(self):
        cfg = self.cfg
        G = self.build_plain_generator()
        critic = DeepCritic if cfg.arch == "deep" else Critic
        D = critic(cfg.resolution, cfg.ch, cfg.num_classes, cfg.d_attention)
        initialize(D, cfg.init)
        if cfg.cross_replica_bn and distributed.world_from_env().size > 1 and self.device.type == "cuda":
            G = nn.SyncBatchNorm.convert_sync_batchnorm(G)  # the plain BNs inside cBN; same state_dict keys
        return {"G": G, "D": D}

    def _source(self) -> Dataset:
        cfg = self.cfg
        if not cfg.data:
            return BuiltinImages("train", cfg.resolution)
        source = open_dataset(cfg.data, root=cfg.data_root or None, resolution=cfg.resolution)
        return resized(source, cfg.resolution)

    def build_dataset(self):
        source = self._source()
        if source.num_classes != self.cfg.num_classes:
            raise DataError(f"Dataset '{self.cfg.data or 'builtin'}' has {source.num_classes} classes, but the run "
                            f"was configured with {self.cfg.num_classes}.")
        source[0]  # a dataset that reads its files on first use does so now, before loader workers fork
        return TrainingImages(source, self.cfg.flip, labels=True)

    # ---- training ------------------------------------------------------------------------
    def _latents(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, self.cfg.z_dim, device=self.device)
        return z, torch.randint(self.cfg.num_classes, (n,), device=self.device)

    def d_step(self, models, batch):
        G, D = models["G"], models["D"]
        real, labels = batch["image"], batch["label"]
        z, fake_labels = self._latents(real.shape[0])
        with torch.no_grad():
            fake = G(z, fake_labels)
        d_loss, _ = get_loss(self.cfg.loss)
        # one forward of real and fake together (as BigGAN-PyTorch): half the kernel launches, one SN power iteration
        real_logits, fake_logits = D(torch.cat([real, fake]), torch.cat([labels, fake_labels])).split(len(real))
        adv = d_loss(real_logits, fake_logits)
        logs = {"D/loss": adv.detach(), "D/real": real_logits.mean().detach(), "D/fake": fake_logits.mean().detach()}
        if self.cfg.penalty == "none":
            return adv, logs
        penalty = critic_penalty(self.cfg.penalty, lambda x: D(x, labels), D, real, fake)
        logs["D/penalty"] = penalty.detach()
        return adv + self.cfg.penalty_weight * penalty, logs

    def g_step(self, models, batch):
        G, D = models["G"], models["D"]
        z, labels = self._latents(batch["image"].shape[0])
        _, g_loss = get_loss(self.cfg.loss)
        real_logits = D(batch["image"], batch["label"]) if self.cfg.loss == "ra" else None
        loss = g_loss(D(G(z, labels), labels), real_logits)
        return loss, {"G/loss": loss.detach()}

    def step_regularizer(self, name, models):
        """Orthogonal regularization (eq. 3) once per G step, as BigGAN-PyTorch adds it to the accumulated gradients
        (train_fns.py: utils.ortho after the G accumulations), not once per micro-batch."""
        if name != "G" or not self.cfg.ortho_reg:
            return None
        ortho = orthogonal_regularization(models["G"], skip=CLASS_EMBEDDINGS)
        return self.cfg.ortho_reg * ortho, {"G/ortho": ortho.detach()}

    # ---- inference -----------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, G, n, generator, truncation: float | None = None, labels: torch.Tensor | None = None):
        """n images; labels cycle through the classes unless given; z truncated at `truncation` (resampled)."""
        device = next(G.parameters()).device
        if self.cfg.truncation_stats and truncation is not None and not 0 < truncation <= 1:
            raise ConfigError(f"This generator's BN statistics are tabled for truncations in (0, 1] (TF-Hub's), so "
                              f"it cannot sample at truncation {truncation:g}.")
        if labels is None:
            labels = torch.arange(n, device=device) % self.cfg.num_classes
        labels = labels.to(device)
        self.standing_at(G, truncation)
        out = []
        for start in range(0, n, 256):
            size = min(256, n - start)
            z = self.draw_latents((size, G.z_dim), truncation, generator, device)
            y = labels[start:start + size]
            out.append(G(z, y, truncation) if isinstance(G, DeepGenerator) else G(z, y))
        return torch.cat(out)

    def draw_latents(self, shape: tuple[int, int], truncation: float | None, generator, device) -> torch.Tensor:
        """z at a truncation: entries beyond it resampled (§3.1); for TF-Hub's tabled generators, truncation · z with
        z resampled beyond 2, the modules' own sampling (pytorch-pretrained-biggan's truncated_noise_sample), at which
        their BN statistics were tabled."""
        if self.cfg.truncation_stats and truncation is not None:
            return truncation * truncated_normal(shape, 2.0, generator=generator, device=device)
        return truncated_normal(shape, truncation, generator=generator, device=device)

    @torch.no_grad()
    def interpolate(self, G, rows: int, steps: int, generator, mode: str = "z", truncation: float | None = None,
                    label: int | None = None) -> torch.Tensor:
        """rows strips of `steps` images: z blended between two draws (class fixed), or the class code between two
        classes (z fixed). Returns (rows · steps, 3, H, W), strip after strip."""
        device = next(G.parameters()).device
        C = self.cfg.num_classes
        self.standing_at(G, truncation)
        weights = torch.linspace(0, 1, steps, device=device).view(1, steps, 1)

        def draw() -> torch.Tensor:
            return self.draw_latents((rows, G.z_dim), truncation, generator, device)

        def classes() -> torch.Tensor:
            return torch.randint(C, (rows,), generator=generator, device=device)

        z_a = draw()
        if mode == "z":
            y = torch.full((rows,), label, device=device) if label is not None else classes()
            z = torch.lerp(z_a.unsqueeze(1), draw().unsqueeze(1), weights)
            code = G.class_code(y).unsqueeze(1).expand(-1, steps, -1)
        else:
            y_a = classes()
            y_b = (y_a + 1 + torch.randint(max(C - 1, 1), (rows,), generator=generator, device=device)) % C
            z = z_a.unsqueeze(1).expand(-1, steps, -1)
            code = torch.lerp(G.class_code(y_a).unsqueeze(1), G.class_code(y_b).unsqueeze(1), weights)
        z, code = z.reshape(rows * steps, -1), code.reshape(rows * steps, -1)
        return G.generate(z, code, truncation) if isinstance(G, DeepGenerator) else G.generate(z, code)

    def finalize_generator(self, G, truncation: float | None = None) -> None:
        """Standing statistics (App. C.1): BN statistics averaged over passes of random z (truncated at `truncation`)
        and y, so outputs never depend on the batch they are drawn in. With standing_passes 0 G keeps the statistics
        it has (an imported G's)."""
        if not self.cfg.standing_passes:
            G.eval()
            return
        device = next(G.parameters()).device
        generator = torch.Generator(device).manual_seed(self.cfg.seed + 7)
        batch = min(self.cfg.batch_size, 256)

        def forward():
            z = truncated_normal((batch, G.z_dim), truncation, generator=generator, device=device)
            G(z, torch.randint(self.cfg.num_classes, (batch,), generator=generator, device=device))

        standing_statistics(G, forward, passes=self.cfg.standing_passes)
        G.standing_truncation = truncation

    def standing_at(self, G, truncation: float | None) -> None:
        """With truncated_standing_stats, re-estimate a finalized G's standing statistics on z truncated at
        `truncation` when they were gathered at another threshold (BigGAN-PyTorch sample.py --accumulate_stats)."""
        on = self.cfg.truncated_standing_stats and self.cfg.standing_passes
        if on and hasattr(G, "standing_truncation") and G.standing_truncation != truncation:
            self.finalize_generator(G, truncation)

    def export_inputs(self, G, size=None):
        """z and class indices; the BN statistics are the standing ones that load_generator computed."""
        cfg = self.cfg
        res = cfg.resolution
        refuse_size(size, f"a biggan generator makes {res}×{res} images from z and a class")
        batch = batch_dim()
        return ExportInputs(G, (latent(2, G.z_dim), torch.tensor([0, cfg.num_classes - 1])), ["z", "label"],
                            {"z": f"latents (batch, {G.z_dim}) ~ N(0, I); truncation: redraw every |z_i| > T "
                                  f"(BigGAN §3.1)",
                             "label": f"class indices (batch,), int64 in 0..{cfg.num_classes - 1}"},
                            f"images (batch, 3, {res}, {res}), RGB in [-1, 1]", {"z": {0: batch}, "label": {0: batch}},
                            {"z_dim": G.z_dim, "num_classes": cfg.num_classes, "resolution": res,
                             "standing_statistics_passes": cfg.standing_passes, "value_range": [-1, 1]})

    def evaluate(self, G):
        """FID/IS of the (standing-statistics) generator on class-balanced samples against the reference."""
        from gancli.metrics.generative.evaluator import config_evaluator

        if not hasattr(self, "_evaluator"):
            self._evaluator = config_evaluator(self.cfg, self.device)
        if any(isinstance(m, nn.SyncBatchNorm) for m in G.modules()):  # only process 0 evaluates: no syncing
            plain = self.build_plain_generator().to(next(G.parameters()).device)
            plain.load_state_dict(G.state_dict())
            G = plain
        self.finalize_generator(G)
        return self._evaluator(self.balanced_sampler(G))

    def balanced_sampler(self, G, truncation: float | None = None):
        """A sampler (n, generator) -> images whose labels continue 0, 1, ..., C-1, 0, ... across calls."""
        drawn = 0

        def sampler(n: int, generator: torch.Generator) -> torch.Tensor:
            nonlocal drawn
            labels = (torch.arange(n) + drawn) % self.cfg.num_classes
            drawn += n
            return self.sample(G, n, generator, truncation=truncation, labels=labels)

        return sampler



BigGAN.import_formats = {
    "biggan-pytorch": ImportFormat(
        name="biggan-pytorch",
        summary="ajbrock/BigGAN-PyTorch BigGAN",
        files="G.pth or G_ema.pth; --critic D.pth",
        published="ajbrock/BigGAN-PyTorch README: the ImageNet 128 model (138k and 100k iterations: G, G_ema, D); "
                  "TFHub/converter.py writes the TF-Hub BigGAN 128/256 generators in the same format",
        detect=biggan_import.is_biggan_pytorch,
        convert=partial(biggan_import.convert, BigGAN),
        preset="biggan-pytorch-imagenet",
    ),
    "biggan-deep-tfhub": ImportFormat(
        name="biggan-deep-tfhub",
        summary="pytorch-pretrained-biggan BigGAN-deep (TF-Hub)",
        files="biggan-deep-128/256/512 pytorch_model.bin (no critic)",
        published="huggingface/pytorch-pretrained-BigGAN: BigGAN.from_pretrained('biggan-deep-256') downloads "
                  "biggan-deep-{128,256,512}-pytorch_model.bin, TF-Hub's deepmind/biggan-deep-* modules converted",
        detect=biggan_tfhub_import.is_tfhub_biggan_deep,
        convert=partial(biggan_tfhub_import.convert, BigGAN),
        preset="biggan-deep",
    ),
}
