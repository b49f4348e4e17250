"""NVlabs/SPADE checkpoints (models/networks/generator.py, architecture.py, normalization.py, discriminator.py) as spade
runs: latest_net_G.pth, latest_net_D.pth.

Their G: SPADEResnetBlocks whose convs carry torch's spectral-norm hooks (weight_orig, weight_u, weight_v; in eval
mode σ = uᵀ W v with the stored vectors) and whose SPADE layers normalize with a param-free SyncBN (plain
BatchNorm2d in eval); fc, head_0, G_middle_0/1, up_0..3, conv_img. Their D: discriminator_i.model{n}.0, SN on the
middle convs only. Widths, label channels and critic layout are read from the shapes; crop size, aspect ratio,
upsampling count and whether the last channel is the instance edge map are SPADE's dataset options
(`--preset cityscapes|ade20k|coco`); without one of those presets they follow from the label-channel count of the
three published models (36 Cityscapes, 151 ADE20K, 184 COCO-Stuff), else from the config.
"""

from __future__ import annotations

import re

import torch

from gancli.config import TrainConfig
from gancli.errors import CheckpointError
from gancli.nn import apply_config_norm
from gancli.train.imports import ImportedWeights
from gancli.train.state_maps import gather, substitute

StateDict = dict[str, torch.Tensor]
G_FILE, D_FILE = "a SPADE generator (latest_net_G.pth)", "a SPADE critic (latest_net_D.pth) of this generator"
# label channels of the published checkpoints (label_nc + dontcare + instance edges) -> their dataset's preset
PUBLISHED = {36: "cityscapes", 151: "ade20k", 184: "coco"}
DATASET_FIELDS = ("image_size", "instance_edges", "num_upsampling_layers")


def is_spade(state: StateDict) -> bool:
    """A SPADE G (head_0's SPADE MLP) or multi-scale D (discriminator_0.model0) state dict."""
    return "head_0.norm_0.mlp_shared.0.weight" in state or "discriminator_0.model0.0.weight" in state


def read_shapes(G: StateDict, D: StateDict | None, cfg: TrainConfig, presets: dict) -> None:
    """Set cfg's widths, label channels and critic layout from the shapes, its dataset options from the preset."""
    if "discriminator_0.model0.0.weight" in G and "fc.weight" not in G:
        raise CheckpointError("This is a SPADE critic (latest_net_D.pth), not a generator; give it with --critic.")
    fc, mlp = G.get("fc.weight"), G.get("head_0.norm_0.mlp_shared.0.weight")
    if fc is None or mlp is None:
        raise CheckpointError(f"This file is not {G_FILE}: it lacks {'fc.weight' if fc is None else 'head_0'}.")
    if fc.dim() != 4:
        raise CheckpointError("This SPADE generator uses the VAE (--use_vae), whose style encoder is another file; "
                              "gancli imports SPADE's label-to-image generators (the published ones).")
    if any(key.startswith("up_4.") for key in G):
        raise CheckpointError("This SPADE generator has num_upsampling_layers 'most' (up_4), which gancli lacks.")
    channels = fc.shape[1]
    if cfg.preset not in PUBLISHED.values() and channels in PUBLISHED:  # SPADE's dataset options of a published model
        cfg.preset = PUBLISHED[channels]
        for key in DATASET_FIELDS:
            setattr(cfg, key, presets[cfg.preset].get(key, getattr(type(cfg)(), key)))
    cfg.ngf, cfg.spade_hidden = fc.shape[0] // 16, mlp.shape[0]
    cfg.label_nc = channels - int(cfg.instance_edges)
    cfg.g_spectral_norm, cfg.use_vae = "head_0.conv_0.weight_orig" in G, False
    cfg.norm, cfg.critic_padding = "sn", "auto"  # its critic's normalization and zero padding
    if D is not None:
        first = D.get("discriminator_0.model0.0.weight")
        if first is None:
            raise CheckpointError(f"This file is not {D_FILE}: it lacks discriminator_0.model0.0.weight.")
        cfg.ndf = first.shape[0]
        cfg.num_d = len({m.group(1) for k in D if (m := re.match(r"discriminator_(\d+)\.", k))})
        cfg.n_layers_d = len({m.group(1) for k in D if (m := re.match(r"discriminator_0\.model(\d+)\.", k))}) - 1
        cfg.d_instance_norm = "discriminator_0.model1.0.0.weight_orig" in D  # norm_D spectralinstance: (conv, IN)


G_NAMES = [  # ours -> SPADE's
    (r"^middle_(\d)\.", r"G_middle_\1."), (r"^to_rgb\.", "conv_img."),
    (r"\.norm\.(running_|num_)", r".param_free_norm.\1"), (r"\.shared\.", ".mlp_shared."),
    (r"\.(gamma|beta)\.", r".mlp_\1."),
]


def critic_renamer(cfg: TrainConfig):
    """Ours scales.i.blocks.n.0 -> discriminator_i.model{n}.0, the middle convs one level deeper when SPADE's
    norm_layer wrapped them with their instance norm in a Sequential (model{n}.0.0)."""
    def rename(key: str) -> str:
        match = re.match(r"scales\.(\d+)\.blocks\.(\d+)\.0\.", key)
        if match is None:
            return key
        i, n = match.groups()
        wrapped = cfg.d_instance_norm and 0 < int(n) < cfg.n_layers_d
        return f"discriminator_{i}.model{n}.0.{'0.' if wrapped else ''}" + key[match.end():]

    return rename


def convert(recipe_cls, G_state: StateDict, D_state: StateDict | None, cfg: TrainConfig) -> ImportedWeights:
    """SPADE G (and D) state dicts -> a spade run's config and G (and SN'd D) state dicts."""
    read_shapes(G_state, D_state, cfg, recipe_cls.presets)
    models = recipe_cls(cfg).build_models()
    G = gather(models["G"].state_dict(), G_state, lambda key: substitute(key, G_NAMES), G_FILE)
    if D_state is None:
        return ImportedWeights(cfg, G)
    D_model = apply_config_norm(models["D"], cfg)
    return ImportedWeights(cfg, G, gather(D_model.state_dict(), D_state, critic_renamer(cfg), D_FILE))
