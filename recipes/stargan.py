"""Multi-attribute image translation: StarGAN with a SAN critic (SAN paper App. G, Table 7).

Loss (SAN eq. 21): L_adv + λ_cls·L_cls + λ_cycle·L_cycle. The critic learns the real/fake logits and the
attributes of real images (L_cls); the generator maps (image, target attributes) to an image that the critic
takes for real and classifies as the target, and that maps back to the input under the original attributes
(L_cycle, L1). L_cls is BCE over every attribute, as StarGAN's solver. Targets in training are the attributes of
another image of the batch, as in StarGAN (so rows with no or several hair colours stay as the data has them);
one-hot groups (hair colours) are exclusive only where StarGAN makes targets by hand: translate, its grid and the
evaluation set one member and clear the others (StarGAN `create_labels`).

    gancli train stargan                                            # builtin attribute images, CPU-sized
    gancli train stargan --data celeba:/data/celeba                 # SAN-StarGAN (hinge + SAN)
    gancli train stargan --data celeba:/data/celeba --preset original   # StarGAN (WGAN-GP, n_dis 5)
    gancli translate RUN face.jpg --attr Blond_Hair=1 --attr Male=0 --out out/
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gancli.config import TrainConfig
from gancli.data.attributes import (apply_assignments, attribute_source, domain_name, group_indices, onehot_groups,
                                    open_attribute_images, prepare_image, single_changes)
from gancli.data.images import load_image, save_image, to_uint8
from gancli.errors import ConfigError, DataError
from gancli.nn.export import ExportInputs, batch_dim, spatial_dims
from gancli.objectives import critic_penalty, get_loss
from gancli.objectives.attributes import attribute_classification_loss, decide_attributes
from gancli.train.recipe import Loader, Recipe
from recipes.stargan_import import STARGAN_FORMATS
from recipes.stargan_nets import StarGANCritic, StarGANGenerator, final_size

log = logging.getLogger("gancli.stargan")

CELEBA_TRAIN_IMAGES = 202_599 - 2_000
CRITIC_KERNELS = {"table7": 3, "stargan": 4}


@dataclass
class Translation:
    """What `translate` wrote: one row per input, with the attributes the critic saw in it."""

    inputs: list[Path]
    sources: list[dict[str, int]]  # attribute -> 1 / 0 as read by the run's critic
    outputs: list[Path]  # one translated PNG per input (when attributes were assigned)
    grid: Path | None  # inputs × single-attribute changes (and the assignments), when asked for
    columns: list[str]  # the grid's column titles


@dataclass
class StarGANConfig(TrainConfig):
    recipe: str = "stargan"
    attrs: list[str] = field(default_factory=list)  # [] = the data's default (CelebA's five; all builtin / CSV ones)
    attr_groups: list[str] = field(default_factory=list)  # one-hot groups 'A|B|C' besides hair and builtin colours
    attr_file: str = ""  # attributes of an image folder given as --data: a CSV, or a file in CelebA's layout
    resolution: int = 128  # CelebA: centre crop 178, resized to 128
    crop: int = -1  # centre crop before resizing; -1 = CelebA's 178 on CelebA, else the largest square (0)
    test_size: int = 2000  # held-out images (at most a tenth of the data): StarGAN's fixed-seed split
    flip: bool = True  # random horizontal flips of training images
    g_width: int = 64
    g_blocks: int = 6
    d_width: int = 64
    d_layers: int = 6
    # table7 (SAN Table 7: 3×3 convs, circular padding, 25M) | stargan (StarGAN's own: 4×4, zero padding, 44M)
    critic: str = "table7"
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    # evaluation (SAN App. G): each test image translated to each of StarGAN's test target domains, the Fréchet
    # distance of each domain's translations to that domain's training images; attribute accuracy by the judge
    eval_n: int = 2000  # test images (SAN: the 2,000 of the test split)
    eval_ref: int = 0  # training images behind the per-domain references: 0 = all of them (SAN), N = the first N
    eval_features: str = ""  # judge | inception; "" = the judge's on builtin data, Inception otherwise
    judge_steps: int = 3000  # training steps of the judge on real data (the builtin judge is fixed)
    judge_images: int = 20_000  # real training images the judge learns from
    # SAN App. G: hinge + SAN, Adam 1e-4 (0.5, 0.9), batch 16, 10 epochs then linear decay over 5
    norm: str = "san"
    loss: str = "hinge"
    penalty: str = "none"
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas_g: list[float] = field(default_factory=lambda: [0.5, 0.9])
    betas_d: list[float] = field(default_factory=lambda: [0.5, 0.9])
    batch_size: int = 16
    steps: int = 15 * CELEBA_TRAIN_IMAGES // 16
    lr_schedule: str = "linear"
    lr_decay_start: float = 10 / 15
    ema: bool = False
    log_every: int = 100
    sample_every: int = 5000
    ckpt_every: int = 5000
    eval_every: int = 10_000
    n_samples: int = 8


PRESETS = {
    # CPU-sized, builtin attribute images at 32 px: a narrow G (16 channels, 3 ResBlocks), a 4-layer critic, and
    # 10× the paper's learning rate: at 1e-4 the cycle L1 has not left 0.6 after 260 steps (noise in every
    # column); at 1e-3 it is 0.22 after 120 steps and the colour, size and background columns change.
    # ~0.25 CPU-s per step single-threaded: ~75 CPU-s of training plus ~1 minute of evaluation.
    "quick": {"resolution": 32, "g_width": 16, "g_blocks": 3, "d_width": 16, "d_layers": 4, "steps": 300,
              "lr_g": 1e-3, "lr_d": 1e-3, "log_every": 10, "sample_every": 150, "ckpt_every": 150,
              "eval_every": 150, "eval_n": 300, "eval_ref": 1000, "n_samples": 6, "test_size": 2000,
              # measured at this size (study stargan-quick-critic-cpu): SN's median fd_mean 12.4 against SAN's 13.8
              "norm": "sn"},
    # StarGAN (Choi et al. 2018; yunjey/stargan): its own critic (4×4 stride-2 convs, zero padding, 44M), WGAN-GP
    # λ 10, 5 critic steps per G step, Adam 1e-4 (0.5, 0.999); its 200k critic iterations are 40k generator steps,
    # the learning rate decayed linearly over the second half
    "original": {"critic": "stargan", "norm": "none", "loss": "wgan", "penalty": "gp", "penalty_weight": 10.0,
                 "n_dis": 5, "betas_g": [0.5, 0.999], "betas_d": [0.5, 0.999], "lr_g": 1e-4, "lr_d": 1e-4,
                 "steps": 40_000, "lr_decay_start": 0.5},
}


class StarGAN(Recipe):
    name = "stargan"
    summary = ("Attribute translation, StarGAN G + 6-conv critic with class head (SAN App. G, Table 7), hinge + SAN; "
               "original: StarGAN's own critic and WGAN-GP")
    Config = StarGANConfig
    presets = PRESETS
    offline_preset = "quick"
    offline_critic_why = ("measured at this size, within the seeds' noise: median fd_mean of 2 seeds 12.4 with SN "
                          "against 13.8 with SAN (study stargan-quick-critic-cpu); --norm san gives the paper's critic")
    best_metric = ("fd_mean", "min")
    no_augment_reason = "its critic's class head learns the attributes, some of which colour ops would change"
    network_fields = ("attrs", "g_width", "g_blocks", "d_width", "d_layers", "critic")
    import_formats = STARGAN_FORMATS

    def __init__(self, cfg: StarGANConfig):
        if not cfg.attrs or cfg.crop < 0:  # resolved here, so that the run's config holds them for translate
            source = attribute_source(cfg.data, cfg.attr_file)
            cfg.attrs = cfg.attrs or source.default_attrs()
            cfg.crop = source.default_crop() if cfg.crop < 0 else cfg.crop
        super().__init__(cfg)
        self.names = list(cfg.attrs)
        self.group_names = onehot_groups(self.names, cfg.attr_groups)
        self.groups = group_indices(self.names, self.group_names)
        self._eval: dict | None = None

    def validate(self) -> None:
        cfg = self.cfg
        if len(set(cfg.attrs)) != len(cfg.attrs):
            raise ConfigError(f"'attrs' names an attribute twice: {', '.join(cfg.attrs)}.")
        if cfg.resolution < 16 or cfg.resolution % 4:
            raise ConfigError(f"'resolution' must be a multiple of 4 of at least 16, got {cfg.resolution}.")
        for key in ("g_width", "g_blocks", "d_width", "d_layers", "eval_n", "judge_steps", "judge_images"):
            if getattr(cfg, key) < 1:
                raise ConfigError(f"'{key}' must be a positive number, got {getattr(cfg, key)}.")
        if cfg.critic not in CRITIC_KERNELS:
            raise ConfigError(f"'critic' must be table7 (SAN Table 7) or stargan (StarGAN's own), got '{cfg.critic}'.")
        if final_size(cfg.resolution, cfg.d_layers, CRITIC_KERNELS[cfg.critic]) < 1:
            raise ConfigError(f"{cfg.d_layers} stride-2 critic layers leave nothing of a {cfg.resolution} px image; "
                              f"lower 'd_layers' or raise 'resolution'.")
        if cfg.g_width % 4:
            raise ConfigError(f"'g_width' must be a multiple of 4 (the upsampling halves it twice), got {cfg.g_width}.")
        if cfg.lambda_cls < 0 or cfg.lambda_rec < 0 or cfg.test_size < 0 or cfg.eval_ref < 0:
            raise ConfigError("'lambda_cls', 'lambda_rec', 'test_size' and 'eval_ref' must not be negative.")
        if cfg.eval_features not in ("", "judge", "inception"):
            raise ConfigError(f"'eval_features' must be judge or inception, got '{cfg.eval_features}'.")

    # ---- models and data ---------------------------------------------------------------
    def build_models(self):
        cfg = self.cfg
        return {"G": StarGANGenerator(len(self.names), cfg.g_width, cfg.g_blocks),
                "D": StarGANCritic(len(self.names), cfg.resolution, cfg.d_width, cfg.d_layers,
                                   CRITIC_KERNELS[cfg.critic])}

    def _source(self):
        return attribute_source(self.cfg.data, self.cfg.attr_file)

    def open_split(self, split: str, flip: bool = False):
        cfg = self.cfg
        return open_attribute_images(self._source(), self.names, split, cfg.resolution, cfg.crop, flip, cfg.test_size)

    def build_dataset(self):
        data = self.open_split("train", self.cfg.flip)
        data[(0, 0)]  # a broken first file fails now, before loader workers fork
        test = self.open_split("test")  # too few images for a test split fail now, not at the first sample grid
        if len(test) < self.cfg.test_size and self._source().kind != "builtin":
            log.warning("stargan: %d images, so the test split is their first tenth after StarGAN's fixed shuffle "
                        "(%d, not test_size %d) and the other %d train.", len(test) + len(data), len(test),
                        self.cfg.test_size, len(data))
        return data

    # ---- steps -------------------------------------------------------------------------
    def _targets(self, labels: torch.Tensor) -> torch.Tensor:
        """StarGAN's targets: the attributes of a random other image of the batch."""
        return labels[torch.randperm(labels.shape[0], device=labels.device)]

    def d_step(self, models, batch):
        cfg, G, D = self.cfg, models["G"], models["D"]
        real, labels = batch["image"], batch["label"]
        with torch.no_grad():
            fake = G(real, self._targets(labels))
        d_loss, _ = get_loss(cfg.loss)
        real_logits, real_classes = D(real)
        fake_logits, _ = D(fake)
        adv = d_loss(real_logits.flatten(), fake_logits.flatten())
        cls = attribute_classification_loss(real_classes, labels)
        loss = adv + cfg.lambda_cls * cls
        logs = {"D/adv": adv.detach(), "D/cls": cls.detach(), "D/real": real_logits.mean().detach(),
                "D/fake": fake_logits.mean().detach()}
        if cfg.penalty != "none":
            penalty = critic_penalty(cfg.penalty, lambda x: D(x)[0], D, real, fake)
            loss = loss + cfg.penalty_weight * penalty
            logs["D/penalty"] = penalty.detach()
        return loss, logs

    def g_step(self, models, batch):
        cfg, G, D = self.cfg, models["G"], models["D"]
        real, labels = batch["image"], batch["label"]
        targets = self._targets(labels)
        fake = G(real, targets)
        fake_logits, fake_classes = D(fake)
        _, g_loss = get_loss(cfg.loss)
        real_logits = D(real)[0].detach().flatten() if cfg.loss == "ra" else None
        adv = g_loss(fake_logits.flatten(), real_logits)
        cls = attribute_classification_loss(fake_classes, targets)
        cycle = F.l1_loss(G(fake, labels), real)
        loss = adv + cfg.lambda_cls * cls + cfg.lambda_rec * cycle
        return loss, {"G/adv": adv.detach(), "G/cls": cls.detach(), "G/cycle": cycle.detach(), "G/loss": loss.detach()}

    # ---- inference ---------------------------------------------------------------------
    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """A uint8 image as the run's training images were: the run's centre crop (CelebA: 178, when the image is
        that large) or the largest centred square, resized to the run's resolution."""
        return prepare_image(image, self.cfg.resolution, self.cfg.crop)

    @torch.no_grad()
    def translate_batch(self, G: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """uint8 images (N, 3, R, R) and {0, 1} targets (N, A) → uint8 translations."""
        device = next(G.parameters()).device
        out = []
        for x, c in zip(images.split(batch), targets.split(batch)):
            out.append(to_uint8(G(x.to(device).float() / 127.5 - 1, c.to(device))).cpu())
        return torch.cat(out)

    def export_inputs(self, G, size=None):
        cfg = self.cfg
        height, width = size or (cfg.resolution, cfg.resolution)
        if height % 4 or width % 4:
            raise ConfigError(f"--size {height} {width}: a StarGAN generator takes images whose sides are multiples "
                              f"of 4 (two stride-2 convolutions and two transposed ones).")
        image = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0)) * 2 - 1
        targets = torch.zeros(2, len(self.names))
        targets[0, 0] = targets[1, -1] = 1
        batch, (h, w) = batch_dim(), spatial_dims(4)
        return ExportInputs(G, (image, targets), ["image", "target"],
                            {"image": f"images (batch, 3, height, width), RGB in [-1, 1], prepared as `gancli "
                                      f"translate` prepares them (the run's centre crop, resized to {cfg.resolution})",
                             "target": f"target attributes (batch, {len(self.names)}), float 0/1 in the order of "
                                       f"'attributes'; within a group exactly one is 1"},
                            "translated images (batch, 3, height, width), RGB in [-1, 1]",
                            {"image": {0: batch, 2: h, 3: w}, "target": {0: batch}},
                            {"attributes": self.names, "attribute_groups": self.group_names,
                             "resolution": cfg.resolution, "value_range": [-1, 1]})

    @torch.no_grad()
    def source_attributes(self, D: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """{0, 1} attributes of uint8 images as the critic's class head sees them, each by the sign of its logit as
        the head learned them (the generator needs the attributes an image has, to change only those asked for)."""
        device = next(D.parameters()).device
        return decide_attributes(D(images.to(device).float() / 127.5 - 1)[1].cpu())

    def verb_inputs(self) -> dict[str, Any]:
        return {"translate": {"attributes": list(self.names), "resolution": self.cfg.resolution}}

    def translate_files(self, load: Loader, images: list[Path], attrs: list[str] | dict[str, int], *, out: Path,
                        grid: bool = False) -> Translation:
        """Translate image files: attrs 'Name=1'/'Name=0' (or {name: ±1}) applied to the attributes the critic reads
        in each image, one PNG per input in out; grid=True also writes inputs × each single-attribute change."""
        from gancli.data.attributes import parse_assignments

        assignments = dict(attrs) if isinstance(attrs, dict) else parse_assignments(list(attrs))
        self.check_assignments(assignments)
        if not assignments and not grid:
            raise ConfigError("Nothing to do: give --attr NAME=VALUE (repeatable), --grid, or both.")
        paths, out = [Path(p) for p in images], Path(out)
        destinations = [out / f"{p.stem}.png" for p in paths]
        for i, dst in enumerate(destinations):
            if dst in destinations[:i]:
                raise DataError(f"'{paths[destinations.index(dst)]}' and '{paths[i]}' would both be written to "
                                f"'{dst}'; translate them separately.")
        pictures = torch.stack([self.prepare(load_image(p)) for p in paths])
        nets = load("G", "D")
        sources = self.source_attributes(nets["D"], pictures)
        out.mkdir(parents=True, exist_ok=True)
        if assignments:
            for image, dst in zip(self.translate_batch(nets["G"], pictures, self.targets(sources, assignments)),
                                  destinations):
                save_image(image, dst)
        grid_path, titles = self._translation_grid(nets["G"], pictures, sources, assignments, out) if grid else (None, [])
        readings = [{n: int(v) for n, v in zip(self.names, row.tolist())} for row in sources]
        return Translation(paths, readings, destinations if assignments else [], grid_path, titles)

    def _translation_grid(self, G: nn.Module, pictures: torch.Tensor, sources: torch.Tensor,
                          assignments: dict[str, int], out: Path) -> tuple[Path, list[str]]:
        """out/grid.png: a row per input, then its translations to each grid column's targets; and the titles."""
        from gancli.train.plots import save_grid

        columns = self.grid_targets(sources, assignments)
        cells = [pictures] + [self.translate_batch(G, pictures, targets) for _, targets in columns]
        rows = torch.stack(cells, dim=1).flatten(0, 1)  # row-major: input i, then its translations
        path = save_grid(rows.float() / 127.5 - 1, out / "grid.png", nrow=len(cells))
        return path, ["input"] + [title for title, _ in columns]

    def check_assignments(self, assignments: dict[str, int]) -> None:
        for name in assignments:
            if name not in self.names:
                raise ConfigError(f"This run was trained with the attributes {', '.join(self.names)}; it has no "
                                  f"'{name}'.")

    def targets(self, sources: torch.Tensor, assignments: dict[str, int]) -> torch.Tensor:
        """The sources' attributes with the assignments applied (setting a group member clears the others)."""
        return apply_assignments(sources, self.names, self.group_names, assignments)

    def test_targets(self, sources: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """(attribute, targets): StarGAN's test targets (solver.py `create_labels`), one per attribute: a one-hot
        group's member set and the others cleared, any other attribute flipped."""
        out = []
        for j, name in enumerate(self.names):
            if any(name in g for g in self.group_names):
                out.append((name, apply_assignments(sources, self.names, self.group_names, {name: 1})))
            else:
                flipped = sources.clone()
                flipped[:, j] = 1 - flipped[:, j]
                out.append((name, flipped))
        return out

    def grid_targets(self, sources: torch.Tensor, assignments: dict[str, int]) -> list[tuple[str, torch.Tensor]]:
        """(column title, targets) of a translation grid: StarGAN's test targets, then the assignments together
        if any."""
        grouped = {n for g in self.group_names for n in g}
        columns = [(f"{n}=1" if n in grouped else f"{n} flipped", t) for n, t in self.test_targets(sources)]
        if assignments:
            columns.append(("combined", apply_assignments(sources, self.names, self.group_names, assignments)))
        return columns

    @torch.no_grad()
    def sample(self, G, n, generator):
        """n held-out images as strips: the input, then each single-attribute change (the columns of SAN Fig. 19)."""
        data = self.open_split("test")
        index = torch.arange(n) % min(n, len(data))  # fewer test images than strips: they repeat
        images = torch.stack([data.image(i) for i in range(min(n, len(data)))])[index]
        sources = data.labels()[index]
        columns = [images] + [self.translate_batch(G, images, t) for _, t in self.grid_targets(sources, {})]
        return torch.cat(columns, dim=-1).float() / 127.5 - 1

    # ---- evaluation --------------------------------------------------------------------
    def judge(self):
        """The attribute judge: the builtin one, or one trained on this run's real training split (cached)."""
        from gancli.metrics.judges.attribute_classifier import builtin_judge, load_or_train_judge

        cfg = self.cfg
        if self._source().kind == "builtin":
            return builtin_judge(self.names, self.groups, device=self.device, log=log.warning)
        source = self._source()
        stat = source.table_file.stat()

        def split(name: str, count: int):
            data = self.open_split(name)
            count = min(count, len(data))
            images = torch.stack([prepare_image(data.image(i), 64) for i in range(count)])
            return images, data.labels()[:count]

        description = {"data": str(source.table_file.resolve()), "size": stat.st_size, "mtime": stat.st_mtime,
                       "images": str(source.image_dir.resolve()), "test_size": cfg.test_size, "n": cfg.judge_images}
        return load_or_train_judge(description, self.names, self.groups, 64, 32,
                                   lambda: split("train", cfg.judge_images), lambda: split("test", 2000),
                                   f"{cfg.data} ({cfg.judge_images} train)", steps=cfg.judge_steps,
                                   device=self.device, log=log.warning)

    def _feature_fn(self, judge) -> tuple:
        """(uint8 images → features, their label, what produced them) for the per-domain Fréchet distances."""
        cfg = self.cfg
        if cfg.eval_features == "inception" or (cfg.eval_features == "" and self._source().kind != "builtin"):
            from gancli.metrics.generative.features import load_feature_net

            net, dev = load_feature_net("inception", device=self.device), self.device

            def features(images: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    return torch.cat([net(part.to(dev))[0].cpu() for part in images.split(100)])

            return features, net.label + " pool3", net.describe()
        return (lambda images: judge(images)[1]), "judge " + judge.label + " pool128", {"judge": judge.label}

    def _data_description(self) -> dict:
        """What the training split is, for the reference statistics' cache key."""
        cfg, source = self.cfg, self._source()
        where = {"data": "builtin-attributes"}
        if source.kind != "builtin":
            stat = source.table_file.stat()
            where = {"data": str(source.table_file.resolve()), "size": stat.st_size, "mtime": stat.st_mtime,
                     "images": str(source.image_dir.resolve()), "test_size": cfg.test_size}
        return {**where, "attrs": self.names, "resolution": cfg.resolution, "crop": cfg.crop, "eval_ref": cfg.eval_ref}

    def _domain_references(self, train, n_ref: int, features, produced_by: dict) -> dict[str, tuple]:
        """(μ, Σ, n) of the features of each single-attribute domain's images among the first n_ref training images
        (SAN App. G: all of them), in one pass over the split, cached under what produced them."""
        from gancli.metrics.generative import cache
        from gancli.metrics.generative.stats import FeatureStats, ReferenceStats

        domains = {domain_name(n, v): (self.names.index(n), float(v > 0))
                   for n, v in single_changes(self.names, self.group_names)}
        keys = {d: {**self._data_description(), **produced_by, "domain": d, "stargan_reference": 1} for d in domains}
        cached = {d: cache.lookup(key) for d, key in keys.items()}
        if all(cached.values()):
            return {d: (c.mu, c.sigma, c.n) for d, c in cached.items()}
        labels, stats = train.labels()[:n_ref], {d: FeatureStats() for d in domains}
        for start in range(0, n_ref, 500):
            rows = range(start, min(start + 500, n_ref))
            found = features(torch.stack([train.image(i) for i in rows]))
            for d, (j, value) in domains.items():
                stats[d].update(found[labels[start:rows.stop, j] == value])
        out = {}
        for d, acc in stats.items():
            if acc.n >= 2:  # a domain with fewer than 2 training images has no covariance, so no distance
                out[d] = (acc.mu(), acc.sigma(), acc.n)
                cache.store(keys[d], ReferenceStats(*out[d], {"source": f"{self.cfg.data or 'builtin'} train {d}"}))
        return out

    def _prepare_evaluation(self) -> dict:
        from gancli.metrics.judges.attribute_classifier import attribute_accuracy

        judge = self.judge().to(self.device)
        features, feature_label, produced_by = self._feature_fn(judge)
        test, train = self.open_split("test"), self.open_split("train")
        n_test = min(self.cfg.eval_n, len(test))
        test_images, test_labels = torch.stack([test.image(i) for i in range(n_test)]), test.labels()[:n_test]
        n_ref = len(train) if self.cfg.eval_ref == 0 else min(self.cfg.eval_ref, len(train))
        references = self._domain_references(train, n_ref, features, produced_by)
        return {"judge": judge, "features": features, "feature_label": feature_label, "test_images": test_images,
                "test_labels": test_labels, "references": references, "n_ref": n_ref, "n_train": len(train),
                "judge_acc_real": float(attribute_accuracy(judge(test_images)[0], test_labels, self.groups).mean())}

    def evaluate(self, G):
        """SAN App. G: every test image translated to each of StarGAN's test targets (2,000 × 5 = 10k on CelebA);
        per target domain, the Fréchet distance of its translations to its training images, and the judge's
        accuracy on the changed attribute and on the others."""
        from gancli.metrics.judges.attribute_classifier import attribute_accuracy
        from gancli.metrics.generative.scores import fid_from_stats
        from gancli.metrics.generative.stats import FeatureStats

        if self._eval is None:
            self._eval = self._prepare_evaluation()
        ev = self._eval
        accuracy, keep, distance, counts = {}, {}, {}, {}
        for name, targets in self.test_targets(ev["test_labels"]):
            j = self.names.index(name)
            fakes = self.translate_batch(G, ev["test_images"], targets)
            decisions, features = ev["judge"](fakes)[0], ev["features"](fakes)
            group = next((g for g in self.groups if j in g), [j])
            others = [k for k in range(len(self.names)) if k not in group]
            for value in (1, -1):
                rows, domain = targets[:, j] == float(value > 0), domain_name(name, value)
                if rows.sum() < 2 or domain not in ev["references"]:
                    continue
                per_attribute = attribute_accuracy(decisions[rows], targets[rows], self.groups)
                accuracy[domain] = float(per_attribute[j])
                if others:
                    keep[domain] = float(per_attribute[others].mean())
                fake_stats = FeatureStats()
                fake_stats.update(features[rows])
                distance[domain] = fid_from_stats(fake_stats.mu(), fake_stats.sigma(), *ev["references"][domain][:2])
                counts[domain] = int(rows.sum())
        mean = lambda d: sum(d.values()) / len(d) if d else float("nan")  # nothing scored is no score, not 0
        return {"attr_acc": mean(accuracy), "keep_acc": mean(keep), "fd_mean": mean(distance),
                "judge_acc_real": ev["judge_acc_real"], "acc": accuracy, "keep": keep, "fd": distance,
                "judge": ev["judge"].label, "features": ev["feature_label"], "protocol": self._protocol(counts)}

    def _protocol(self, counts: dict[str, int]) -> str:
        ev = self._eval
        references = ("all" if ev["n_ref"] == ev["n_train"] else f"the first {ev['n_ref']}") + " training images"
        return (f"SAN App. G: {len(ev['test_labels'])} test images, each translated to each of StarGAN's "
                f"{len(self.names)} test targets (a one-hot group's member set, any other attribute flipped; "
                f"{len(ev['test_labels']) * len(self.names)} translations); Fréchet distance of each target "
                f"domain's translations to its real images among {references} "
                f"({', '.join(f'{d}: {n}' for d, n in counts.items())} translations)")

    def finalize_generator(self, G):
        G.eval()
