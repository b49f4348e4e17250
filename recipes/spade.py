"""Label-to-image synthesis with SPADE (Park et al. 2019) and SAN critics, as in the SAN paper (§4.2).

Generator: SPADE ResBlocks from a downsampled label map (or from z with the VAE style encoder).
Critic: SPADE's multi-scale PatchGAN on label ⊕ image; the trainer applies `--norm` to it (SAN with
circular padding, r = 25 %, g = 1.3 by default; `--preset original` is SPADE's SN with β1 = 0).
Loss: hinge + 10·feature matching + 10·VGG19 (+ 0.05·KL with the VAE); Adam TTUR 1e-4 / 4e-4.

    gancli train spade                                          # builtin scenes, CPU-sized
    gancli train spade --preset cityscapes --data ~/data/cityscapes --out runs/san-spade
    gancli synthesize runs/san-spade maps/*.png --out synth/
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from gancli.config import TrainConfig
from gancli.data.segmentation import instance_edges, num_labels_of, open_segmentation
from gancli.errors import ConfigError, DataError, GancliError
from gancli.nn.export import ExportInputs, batch_dim, latent, spatial_dims
from gancli.objectives import critic_penalty, get_loss
from gancli.train.imports import ImportFormat
from gancli.train.recipe import Loader, Recipe
from recipes import spade_import
from recipes.spade_nets import (
    UPSAMPLINGS,
    MultiScaleCritic,
    SPADEGenerator,
    VGG19Loss,
    feature_matching_loss,
    spade_init,
)

log = logging.getLogger("gancli.spade")

RELATIVISTIC = ("ra",)


@dataclass
class SpadeConfig(TrainConfig):
    recipe: str = "spade"
    image_size: list[int] = field(default_factory=lambda: [256, 512])  # H, W: Cityscapes at 512×256
    label_nc: int = 0  # label ids; 0 = the data's own (builtin 8, Cityscapes 35, ADE20K 151), fixed when training starts
    instance_edges: bool = False  # add Cityscapes-style instance boundaries as one more input channel
    flip: bool = True
    # training pairs resized to load_size × load_size, then a random image_size crop (SPADE's resize_and_crop: ADE20K
    # and COCO load 286 and crop 256 when training, load 256 when testing); 0: resized to image_size, no crop
    load_size: int = 0
    # generator (SPADE: ngf 64, 128 hidden channels in each SPADE, spectral norm in the ResBlocks)
    ngf: int = 64
    spade_hidden: int = 128
    g_spectral_norm: bool = True
    num_upsampling_layers: str = "normal"  # normal (label map / 32) | more (/ 64)
    use_vae: bool = False  # style encoder: multi-modal synthesis, --style IMAGE
    z_dim: int = 256
    lambda_kld: float = 0.05
    # critic: SPADE's multi-scale PatchGAN
    ndf: int = 64
    n_layers_d: int = 4
    num_d: int = 2
    d_instance_norm: bool = True
    # losses
    lambda_feat: float = 10.0
    lambda_vgg: float = 10.0
    perceptual: str = "vgg19"  # vgg19 | none
    vgg_weights: str = ""  # torchvision's vgg19-dcbb9e9d.pth; "" = the torch hub cache
    # evaluation: FID of synthesized vs real validation photos, mIoU / pixel accuracy of a segmenter on them
    eval_n: int = 500  # validation maps (Cityscapes val has 500)
    eval_features: str = ""  # "" = the builtin classifier on builtin scenes, Inception otherwise
    seg_weights: str = ""  # a torchvision segmentation model's state dict ("" = builtin segmenter on builtin scenes)
    seg_arch: str = "deeplabv3_resnet50"
    # which classes mIoU averages: "train" = Cityscapes' 19 train ids (cityscapesScripts' 35 → 19 mapping, the other
    # ids ignored), as SPADE and the papers report it, with a 19- or 35-class segmenter; "label" = all 35 label ids
    # (labelled so in the scores). Data without train ids (ADE20K, builtin) score their own label ids under both
    miou_ids: str = "train"
    # SAN paper §4.2: SAN on SPADE's critic with circular padding, r = 25 %, g = 1.3, β1 = 0.5; TTUR as SPADE.
    # Its Fig. 12 ablation (narrower SPADE, Cityscapes FID): at r = 25 % g = 1.3 is best (67.8); the best of all is
    # r = 100 %, g = 1.1 (65.8), which costs four times the σ work (--norm-ratio 1 --norm-gain 1.1).
    norm: str = "san"
    norm_ratio: float = 0.25
    norm_gain: float = 1.3
    loss: str = "hinge"
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    betas_g: list[float] = field(default_factory=lambda: [0.5, 0.9])
    betas_d: list[float] = field(default_factory=lambda: [0.5, 0.9])
    ema: bool = False  # SPADE keeps no EMA
    steps: int = 100_000  # not a paper value (SPADE counts epochs); about 540 Cityscapes epochs at batch 16
    batch_size: int = 16
    log_every: int = 100
    sample_every: int = 2000
    ckpt_every: int = 2000
    eval_every: int = 5000
    n_samples: int = 16


PRESETS = {
    # CPU-sized: builtin scenes at 32×32, narrow networks, no VGG (its weights are a download)
    "quick": {"image_size": [32, 32], "ngf": 16, "spade_hidden": 32, "ndf": 32, "z_dim": 64, "batch_size": 8,
              "steps": 800, "perceptual": "none", "log_every": 10, "sample_every": 200, "ckpt_every": 200,
              "eval_every": 200, "eval_n": 200, "n_samples": 16},
    # SAN paper §4.2 (SAN-SPADE, Cityscapes 512×256, FID 58.56): SPADE's settings, SAN r = 25 %, g = 1.3, β1 = 0.5.
    # SPADE's data/cityscapes_dataset.py: crop 512, aspect 2, 35 labels + instance edges, num_upsampling_layers more
    # (G starts at 4×8)
    "cityscapes": {"image_size": [256, 512], "instance_edges": True, "num_upsampling_layers": "more", "norm": "san",
                   "norm_ratio": 0.25, "norm_gain": 1.3, "betas_g": [0.5, 0.9], "betas_d": [0.5, 0.9],
                   "lr_g": 1e-4, "lr_d": 4e-4},
    # SPADE's data/ade20k_dataset.py: crop 256, 150 labels + dontcare (our 151 ids), no instance map
    # and resize_and_crop: load 286, random crop 256, flip
    "ade20k": {"image_size": [256, 256], "instance_edges": False, "load_size": 286},
    # SPADE's data/coco_dataset.py: crop 256, 182 labels + dontcare (183 ids), instance edges
    "coco": {"image_size": [256, 256], "instance_edges": True, "load_size": 286},
    # SPADE as published (FID 63.65 in the SAN paper): spectral + instance norm critic, TTUR with β = (0, 0.9)
    "original": {"image_size": [256, 512], "instance_edges": True, "num_upsampling_layers": "more", "norm": "sn",
                 "norm_ratio": 1.0, "norm_gain": 0.0, "betas_g": [0.0, 0.9], "betas_d": [0.0, 0.9], "lr_g": 1e-4,
                 "lr_d": 4e-4, "d_instance_norm": True},
}


class LabelToImage(Dataset):
    """(photo, label, instance) items as {"image" in [-1, 1], "label" ids[, "edges"]}, flipped (and cropped to `crop`
    (H, W) at a random place) from each key's seed."""

    def __init__(self, pairs: Dataset, flip: bool, edges: bool, crop: tuple[int, int] | None = None):
        self.pairs, self.flip, self.edges, self.crop = pairs, flip, edges, crop

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        index, seed = key
        image, label, instance = self.pairs[index]
        generator = torch.Generator().manual_seed(seed)
        flip = self.flip and torch.rand(1, generator=generator).item() < 0.5
        if self.crop is not None:  # SPADE crops the photo, label and instance maps, then draws the edges
            (h, w), (H, W) = self.crop, image.shape[-2:]
            top = int(torch.randint(H - h + 1, (1,), generator=generator))
            left = int(torch.randint(W - w + 1, (1,), generator=generator))
            image, label = image[..., top:top + h, left:left + w], label[..., top:top + h, left:left + w]
            instance = instance[..., top:top + h, left:left + w] if instance is not None else None
        item = {"image": image.float() / 127.5 - 1, "label": label}
        if self.edges:
            item["edges"] = instance_edges(instance)[None]
        return {k: v.flip(-1) for k, v in item.items()} if flip else item


class Spade(Recipe):
    name = "spade"
    summary = "Label-to-image SPADE G + multi-scale PatchGAN critic (SAN §4.2), hinge + FM + VGG19; synthesize"
    Config = SpadeConfig
    offline_critic_why = "the SAN paper's SPADE critic (§4.2: r 25 %, g 1.3); not measured against SN at this size"
    presets = PRESETS
    best_metric = ("fid", "min")
    network_fields = ("image_size", "label_nc", "instance_edges", "ngf", "spade_hidden", "g_spectral_norm",
                      "num_upsampling_layers", "use_vae", "z_dim", "ndf", "n_layers_d", "num_d", "d_instance_norm")
    no_augment_reason = "its critic sees label map and image as one tensor, and colour or cutout ops corrupt the labels"

    def __init__(self, cfg: SpadeConfig):
        super().__init__(cfg)
        if cfg.label_nc == 0:  # fixed in the saved config, so the run opens without its data
            cfg.label_nc = num_labels_of(cfg.data)
        self.vgg: nn.Module | None = None
        self._val: Dataset | None = None
        self._walk: tuple[torch.Generator | None, int] = (None, 0)
        self._judges: dict | None = None

    # ---- config ------------------------------------------------------------------------
    def validate(self) -> None:
        cfg = self.cfg
        if cfg.num_upsampling_layers not in UPSAMPLINGS:
            raise ConfigError(f"'num_upsampling_layers' must be normal or more, got '{cfg.num_upsampling_layers}'.")
        multiple = 2 ** UPSAMPLINGS[cfg.num_upsampling_layers]
        if len(cfg.image_size) != 2 or any(s < multiple or s % multiple for s in cfg.image_size):
            raise ConfigError(f"'image_size' must be [height, width], both multiples of {multiple} "
                              f"(num_upsampling_layers {cfg.num_upsampling_layers}), got {cfg.image_size}.")
        if cfg.load_size and cfg.load_size < max(cfg.image_size):
            raise ConfigError(f"'load_size' must be 0 or at least the crop {max(cfg.image_size)} (image_size), "
                              f"got {cfg.load_size}.")
        if cfg.perceptual not in ("vgg19", "none"):
            raise ConfigError(f"'perceptual' must be vgg19 or none, got '{cfg.perceptual}'.")
        if cfg.miou_ids not in ("train", "label"):
            raise ConfigError(f"'miou_ids' must be train or label, got '{cfg.miou_ids}'.")
        if cfg.eval_features not in ("", "builtin", "inception"):
            raise ConfigError(f"'eval_features' must be builtin or inception, got '{cfg.eval_features}'.")
        for key in ("ngf", "spade_hidden", "z_dim", "ndf", "num_d", "eval_n"):
            if getattr(cfg, key) < 1:
                raise ConfigError(f"'{key}' must be a positive number, got {getattr(cfg, key)}.")
        if cfg.n_layers_d < 2:
            raise ConfigError(f"'n_layers_d' must be at least 2, got {cfg.n_layers_d}.")
        for key in ("lambda_feat", "lambda_vgg", "lambda_kld", "label_nc"):
            if getattr(cfg, key) < 0:
                raise ConfigError(f"'{key}' must not be negative, got {getattr(cfg, key)}.")
        from gancli.metrics.judges.segmentation import TORCHVISION_SEGMENTERS
        if cfg.seg_arch not in TORCHVISION_SEGMENTERS:
            raise ConfigError(f"'seg_arch' must be one of {', '.join(TORCHVISION_SEGMENTERS)}, got '{cfg.seg_arch}'.")

    @property
    def label_channels(self) -> int:
        return self.cfg.label_nc + (1 if self.cfg.instance_edges else 0)

    # ---- models and data ---------------------------------------------------------------
    def build_models(self):
        cfg = self.cfg
        G = SPADEGenerator(self.label_channels, tuple(cfg.image_size), cfg.ngf, cfg.z_dim, cfg.num_upsampling_layers,
                           cfg.use_vae, cfg.spade_hidden, cfg.g_spectral_norm)
        if torch.distributed.is_available() and torch.distributed.is_initialized() and self.device.type == "cuda":
            G = nn.SyncBatchNorm.convert_sync_batchnorm(G)  # SPADE's batch statistics over all processes
        D = MultiScaleCritic(self.label_channels + 3, cfg.ndf, cfg.n_layers_d, cfg.num_d, cfg.d_instance_norm)
        return {"G": spade_init(G), "D": spade_init(D)}

    def open_pairs(self, split: str, size: tuple[int, int] | None = None) -> Dataset:
        """The (photo, label, instance) pairs of a split (at `size`, else image_size), checked against the run's label
        count."""
        cfg = self.cfg
        pairs = open_segmentation(cfg.data, split, size or tuple(cfg.image_size), cfg.instance_edges)
        if pairs.num_labels != cfg.label_nc:
            raise ConfigError(f"label_nc is {cfg.label_nc} but {pairs.name} has {pairs.num_labels} label ids; "
                              f"leave label_nc at 0 to use the data's.")
        return pairs

    def build_dataset(self):
        cfg = self.cfg
        loaded = (cfg.load_size, cfg.load_size) if cfg.load_size else None
        pairs = self.open_pairs("train", loaded)  # the data first: a missing folder fails before any weights are read
        pairs[0]  # a broken first pair fails here, before the run folder is made
        if cfg.perceptual == "vgg19" and cfg.lambda_vgg > 0:
            self.vgg = VGG19Loss(cfg.vgg_weights or None).to(self.device)
        else:
            log.warning("spade: VGG19 perceptual loss off (perceptual = %s): hinge + feature matching only.",
                        cfg.perceptual)
        return LabelToImage(pairs, cfg.flip, cfg.instance_edges, tuple(cfg.image_size) if loaded else None)

    def validation(self) -> Dataset:
        if self._val is None:
            self._val = self.open_pairs("val")
        return self._val

    # ---- the label map as the networks see it ------------------------------------------
    def segmap(self, label: Tensor, edges: Tensor | None = None) -> Tensor:
        """One-hot label map (N, label_nc[+1], H, W), with the instance-edge channel when the run uses it."""
        onehot = F.one_hot(label.long(), self.cfg.label_nc).permute(0, 3, 1, 2).float()
        if self.cfg.instance_edges:
            if edges is None:
                raise DataError("This run was trained with instance edges; give instance maps with the label maps.")
            onehot = torch.cat([onehot, edges.float()], 1)
        return onehot.contiguous(memory_format=torch.channels_last) if onehot.is_cuda else onehot

    def generate(self, G: nn.Module, segmap: Tensor, real: Tensor) -> tuple[Tensor, Tensor | None]:
        """G's image for the map; with the VAE, z from the real photo's posterior and 0.05·KL (summed, as SPADE)."""
        if not self.cfg.use_vae:
            return G(segmap), None
        mu, logvar = G.encode(real)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return G(segmap, z), self.cfg.lambda_kld * kld

    @staticmethod
    def split_outputs(outputs: list[list[Tensor]], n: int) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
        """Critic outputs on cat([fake, real]) split into the fake and the real halves."""
        return [[f[:n] for f in scale] for scale in outputs], [[f[n:] for f in scale] for scale in outputs]

    # ---- steps -------------------------------------------------------------------------
    def d_step(self, models, batch):
        G, D = models["G"], models["D"]
        seg, real = self.segmap(batch["label"], batch.get("edges")), batch["image"]
        with torch.no_grad():
            fake, _ = self.generate(G, seg, real)
        outputs = D(torch.cat([torch.cat([seg, fake], 1), torch.cat([seg, real], 1)]))
        fake_out, real_out = self.split_outputs(outputs, real.shape[0])
        d_loss, _ = get_loss(self.cfg.loss)
        adv = sum(d_loss(r[-1], f[-1]) for r, f in zip(real_out, fake_out)) / len(outputs)
        logs = {"D/loss": adv.detach(), "D/real": sum(r[-1].mean() for r in real_out).detach() / len(outputs),
                "D/fake": sum(f[-1].mean() for f in fake_out).detach() / len(outputs)}
        if self.cfg.penalty == "none":
            return adv, logs
        critic = lambda x: sum(s[-1].flatten(1).mean(1) for s in D(torch.cat([seg, x], 1)))
        penalty = critic_penalty(self.cfg.penalty, critic, D, real, fake)
        logs["D/penalty"] = penalty.detach()
        return adv + self.cfg.penalty_weight * penalty, logs

    def g_step(self, models, batch):
        cfg = self.cfg
        G, D = models["G"], models["D"]
        seg, real = self.segmap(batch["label"], batch.get("edges")), batch["image"]
        fake, kld = self.generate(G, seg, real)
        outputs = D(torch.cat([torch.cat([seg, fake], 1), torch.cat([seg, real], 1)]))
        fake_out, real_out = self.split_outputs(outputs, real.shape[0])
        _, g_loss = get_loss(cfg.loss)
        relativistic = cfg.loss in RELATIVISTIC
        adv = sum(g_loss(f[-1], r[-1].detach() if relativistic else None)
                  for f, r in zip(fake_out, real_out)) / len(outputs)
        matching = feature_matching_loss(fake_out, real_out)
        loss = adv + cfg.lambda_feat * matching
        logs = {"G/adv": adv.detach(), "G/feat": matching.detach()}
        if self.vgg is not None:
            perceptual = self.vgg(fake.float(), real.float())
            loss = loss + cfg.lambda_vgg * perceptual
            logs["G/vgg"] = perceptual.detach()
        if kld is not None:
            loss = loss + kld
            logs["G/kld"] = kld.detach()
        logs["G/loss"] = loss.detach()
        return loss, logs

    # ---- inference ---------------------------------------------------------------------
    def palette(self) -> Tensor | None:
        """Colours of the label ids for --palette maps (builtin scenes, Cityscapes), or None (ADE20K)."""
        from gancli.data.scenes import PALETTE
        from gancli.data.segmentation import ADE20K, Cityscapes, detect_format

        if not self.cfg.data:
            return PALETTE
        try:
            kind = detect_format(self.cfg.data)[0]
        except DataError:  # the data folder is gone; the spec still says what it was
            kind = "cityscapes" if "cityscapes" in self.cfg.data.lower() else "ade20k"
        return (Cityscapes if kind == "cityscapes" else ADE20K).palette

    def check_map_size(self, G: nn.Module, height: int, width: int, what: str) -> None:
        """A ConfigError unless G can take a height × width map (VAE: the training size; else multiples of 2^k)."""
        if G.use_vae and (height, width) != G.image_size:
            raise ConfigError(f"{what} is {width}×{height}, but this run's VAE generator makes "
                              f"{G.image_size[1]}×{G.image_size[0]} images only; resize the map (nearest neighbour).")
        m = G.multiple
        if height % m or width % m or height < m or width < m:
            raise ConfigError(f"{what} is {width}×{height}, but this generator takes maps whose sides are multiples "
                              f"of {m} (num_upsampling_layers {self.cfg.num_upsampling_layers}), e.g. "
                              f"{max(m, round(width / m) * m)}×{max(m, round(height / m) * m)}.")

    def export_inputs(self, G, size=None):
        """Label ids (and instance edges, and z with the VAE): the one-hot map is made inside the exported graph."""
        cfg = self.cfg
        height, width = size or tuple(cfg.image_size)
        self.check_map_size(G, height, width, "--size")
        label = torch.randint(cfg.label_nc, (2, height, width), generator=torch.Generator().manual_seed(0))
        example, names = [label], ["label"]
        describe = {"label": f"label maps (batch, height, width) of int64 ids in 0..{cfg.label_nc - 1}"}
        batch, (h, w) = batch_dim(), spatial_dims(G.multiple)
        dynamic = {"label": {0: batch} if G.use_vae else {0: batch, 1: h, 2: w}}
        if cfg.instance_edges:
            example.append((torch.rand(2, 1, height, width, generator=torch.Generator().manual_seed(1)) > 0.8).float())
            names.append("edges")
            describe["edges"] = "instance boundaries (batch, 1, height, width), float 1 on an edge else 0"
            dynamic["edges"] = {0: batch} if G.use_vae else {0: batch, 2: h, 3: w}
        if G.use_vae:
            example.append(latent(2, G.z_dim))
            names.append("z")
            describe["z"] = f"style latents (batch, {G.z_dim}) ~ N(0, I), or the style encoder's μ + σ·ε"
            dynamic["z"] = {0: batch}
        sides = ("the run's size" if G.use_vae else f"sides multiples of {G.multiple}")
        return ExportInputs(LabelMapGenerator(G, cfg.label_nc, cfg.instance_edges, G.use_vae), tuple(example), names,
                            describe, f"images (batch, 3, height, width), RGB in [-1, 1]; maps of {sides}", dynamic,
                            {"label_nc": cfg.label_nc, "label_channels": self.label_channels,
                             "instance_edges": cfg.instance_edges, "use_vae": G.use_vae,
                             "z_dim": G.z_dim if G.use_vae else None, "image_size": list(cfg.image_size),
                             "size_multiple": G.multiple, "value_range": [-1, 1]})

    @torch.no_grad()
    def synthesize(self, G: nn.Module, label: Tensor, edges: Tensor | None = None, style: Tensor | None = None,
                   generator: torch.Generator | None = None) -> Tensor:
        """Images in [-1, 1] for label maps (N, H, W); with the VAE, z from `style` images' posterior or N(0, I)."""
        segmap = self.segmap(label.to(self.device), None if edges is None else edges.to(self.device))
        if not G.use_vae:
            return G(segmap)
        device = generator.device if generator is not None else self.device
        if style is not None:
            mu, logvar = G.encode(style.to(self.device))
            eps = torch.randn(mu.shape, generator=generator, device=device).to(self.device)
            z = mu + eps * torch.exp(0.5 * logvar)
        else:
            z = torch.randn(label.shape[0], G.z_dim, generator=generator, device=device).to(self.device)
        return G(segmap, z)

    def verb_inputs(self) -> dict[str, Any]:
        palette = self.palette()
        return {"synthesize": {"label_nc": self.cfg.label_nc, "size": list(self.cfg.image_size),
                               "styles": self.cfg.use_vae, "palette": None if palette is None else palette.tolist()}}

    def synthesize_files(self, load: Loader, labels: list[Path], out: Path, *, palette: bool = False,
                         style: Path | None = None, n_styles: int = 1, seed: int = 0,
                         source: str = "this run") -> list[Path]:
        """One PNG per label map (× n_styles) in out; returns the files written. Maps hold label ids, or colours of
        the run's palette with `palette`; `style` (an image) and n_styles > 1 need a VAE run (use_vae). `source`
        names the run in errors."""
        from gancli.data.images import load_image, save_image, to_uint8

        if n_styles < 1:
            raise ConfigError(f"--n-styles must be a positive number, got {n_styles}.")
        if not self.cfg.use_vae and (style is not None or n_styles > 1):
            raise ConfigError(f"{source[:1].upper()}{source[1:]} was trained without the VAE style encoder, so it has "
                              f"one output per map; --style and --n-styles need a run trained with --use-vae.")
        G = load("G")["G"]
        style_image = load_image(style)[None].float() / 127.5 - 1 if style is not None else None
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        generator = torch.Generator(self.device).manual_seed(seed)
        written = []
        for path in map(Path, labels):
            label, edges = self._read_map(G, path, palette, source)
            expand = lambda x: None if x is None else x.expand(n_styles, *[-1] * (x.dim() - 1))
            images = self.synthesize(G, expand(label[None]), expand(edges), expand(style_image), generator)
            for k, image in enumerate(to_uint8(images.cpu())):
                target = out / (f"{path.stem}.png" if n_styles == 1 else f"{path.stem}_style{k}.png")
                save_image(image, target)
                written.append(target)
        return written

    def _read_map(self, G: nn.Module, path: Path, palette: bool, source: str) -> tuple[Tensor, Tensor | None]:
        """A label-map file as ids (H, W), checked against the run, and its instance edges (1, 1, H, W) when the
        run uses them."""
        from gancli.data.images import load_image
        from gancli.data.segmentation import check_ids, ids_from_colours, instance_partner, load_id_map

        label = ids_from_colours(load_image(path), self.palette(), path) if palette else load_id_map(path)
        check_ids(label, self.cfg.label_nc, path, source)
        self.check_map_size(G, *label.shape, f"Label map '{path}'")
        edges = None
        if self.cfg.instance_edges:
            edges = instance_edges(load_id_map(instance_partner(path)))[None, None]
        return label, edges

    def validation_batch(self, indices: list[int]) -> tuple[Tensor, Tensor | None, Tensor]:
        """(labels, edges or None, real photos in [-1, 1]) of validation items."""
        items = [self.validation()[i] for i in indices]
        labels = torch.stack([label for _, label, _ in items])
        edges = torch.stack([instance_edges(inst)[None] for _, _, inst in items]) if self.cfg.instance_edges else None
        return labels, edges, torch.stack([image for image, _, _ in items]).float() / 127.5 - 1

    @torch.no_grad()
    def sample(self, G, n, generator):
        """Images synthesized from the validation label maps, in order: calls with the same generator walk on."""
        if self._walk[0] is not generator:
            self._walk = (generator, 0)
        start = self._walk[1]
        self._walk = (generator, start + n)
        count = len(self.validation())
        images = []
        for first in range(0, n, 64):
            labels, edges, _ = self.validation_batch([(start + i) % count for i in range(first, min(n, first + 64))])
            images.append(self.synthesize(G, labels, edges, generator=generator))
        return torch.cat(images)

    # ---- evaluation --------------------------------------------------------------------
    def judges(self) -> dict:
        """The feature network (FID) and the segmenter (mIoU), each loaded once; a missing one says why."""
        if self._judges is None:
            from gancli.metrics import Evaluator
            from gancli.metrics.judges.segmentation import load_segmenter

            cfg, self._judges = self.cfg, {"skipped": []}
            builtin = not cfg.data
            try:
                self._judges["features"] = Evaluator(features=cfg.eval_features or ("builtin" if builtin else
                                                                                    "inception"),
                                                     device=self.device).net
            except GancliError as exc:
                self._judges["skipped"].append(str(exc))
            try:
                scored = self.scored_labels()
                seg = load_segmenter(cfg.label_nc, cfg.seg_weights or None, cfg.seg_arch, builtin=builtin,
                                     also=(len(scored),) if scored else ())
                self._judges["segmenter"] = seg.to(self.device).eval()
            except GancliError as exc:
                self._judges["skipped"].append(str(exc))
            if "features" not in self._judges and "segmenter" not in self._judges:
                raise GancliError(" ".join(self._judges["skipped"]))
        return self._judges

    def scored_labels(self) -> tuple[int, ...] | None:
        """The label ids mIoU averages over, in train-id order (Cityscapes' 19 under miou_ids train), or None: all."""
        return getattr(self.validation(), "scored_labels", None) if self.cfg.miou_ids == "train" else None

    def miou_classes(self) -> str:
        """What mIoU averages over, for the scores' protocol."""
        scored, name = self.scored_labels(), self.validation().name
        return f"{len(scored)} train ids of {name}" if scored else f"{self.cfg.label_nc} label ids of {name}"

    @torch.no_grad()
    def _pass(self, images_of, n: int, features, segmenter) -> tuple:
        """(feature statistics or None, segmentation scores or None) of images_of(labels, edges, real) over n maps."""
        from gancli.data.images import to_uint8
        from gancli.metrics.generative.features import extract
        from gancli.metrics.generative.stats import ReferenceStats
        from gancli.metrics.judges.miou import IGNORE, on_scored_classes
        from gancli.metrics.judges.segmentation import SegmentationScore

        val, scored = self.validation(), self.scored_labels()
        score = None
        if segmenter is not None:
            score = (SegmentationScore(len(scored), IGNORE) if scored else
                     SegmentationScore(self.cfg.label_nc, getattr(val, "ignore_label", None)))

        def batches():
            for start in range(0, n, 50):
                labels, edges, real = self.validation_batch(list(range(start, min(n, start + 50))))
                images = to_uint8(images_of(labels, edges, real)).to(self.device)
                if score is not None:
                    logits = segmenter(images)
                    score.add(*(on_scored_classes(logits, labels, scored) if scored else (logits.argmax(1), labels)))
                yield images

        if features is None:
            for _ in batches():
                pass
            return None, score.result()
        stats = ReferenceStats.from_extracted(extract(features, batches()), {})
        return stats, score.result() if score else None

    def evaluate(self, G):
        """FID of synthesized vs real validation photos, and mIoU / pixel accuracy of the segmenter on both."""
        from gancli.metrics.generative import scores as gen

        cfg, judges = self.cfg, self.judges()
        features, segmenter = judges.get("features"), judges.get("segmenter")
        n = min(cfg.eval_n, len(self.validation()))
        if "real" not in judges:
            judges["real"] = self._pass(lambda labels, edges, real: real, n, features, segmenter)
        generator = torch.Generator(self.device).manual_seed(cfg.seed)
        fake_stats, fake_seg = self._pass(lambda labels, edges, real: self.synthesize(G, labels, edges,
                                                                                      generator=generator),
                                          n, features, segmenter)
        real_stats, real_seg = judges["real"]
        scores: dict = {}
        if fake_stats is not None:
            scores["fid"] = gen.fid_from_stats(fake_stats.mu, fake_stats.sigma, real_stats.mu, real_stats.sigma)
            scores["features"] = features.label
        if fake_seg is not None:
            scores["miou"], scores["pixel_accuracy"] = fake_seg["miou"], fake_seg["pixel_accuracy"]
            scores["miou_real"], scores["pixel_accuracy_real"] = real_seg["miou"], real_seg["pixel_accuracy"]
            scores["segmenter"], scores["miou_classes"] = segmenter.label, self.miou_classes()
        scores["protocol"] = (f"{n} validation maps of {self.validation().name}: synthesized vs real photos"
                              + (f"; skipped: {' '.join(judges['skipped'])}" if judges["skipped"] else ""))
        return scores


Spade.import_formats = {
    "spade": ImportFormat(
        name="spade",
        summary="NVlabs/SPADE label-to-image",
        files="latest_net_G.pth; --critic latest_net_D.pth; --preset cityscapes|ade20k|coco (SPADE's dataset options)",
        published="NVlabs/SPADE README: checkpoints.tar.gz (Google Drive) with coco_pretrained, ade20k_pretrained and "
                  "cityscapes_pretrained folders",
        detect=spade_import.is_spade,
        convert=partial(spade_import.convert, Spade),
        preset="original",
    ),
}


class LabelMapGenerator(nn.Module):
    """SPADE's G on label ids (N, H, W), then instance edges (N, 1, H, W) and z as the run has them: the one-hot map
    (as SPADE.segmap makes it) is computed inside, so deployed code passes maps as they are stored."""

    def __init__(self, G: nn.Module, label_nc: int, edges: bool, vae: bool):
        super().__init__()
        self.G, self.edges, self.vae = G, edges, vae
        self.register_buffer("ids", torch.arange(label_nc).view(1, -1, 1, 1), persistent=False)

    def forward(self, label: Tensor, *rest: Tensor) -> Tensor:
        segmap = (label[:, None] == self.ids).float()
        if self.edges:
            segmap = torch.cat([segmap, rest[0].float()], 1)
        return self.G(segmap, rest[-1]) if self.vae else self.G(segmap)
