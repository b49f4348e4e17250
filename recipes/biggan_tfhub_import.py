"""TF-Hub's BigGAN-deep generators as pytorch-pretrained-biggan stores them (its model.py) → biggan runs (--arch deep).

Its BigGAN(z, one_hot(y), truncation): embed = one_hot(y) @ Wᵀ (`embeddings`, a bias-free Linear), cond = [z, embed]
feeds `generator.gen_z` (whose output is laid out TF-style, 4 × 4 × 16·ch) and every BN's `scale` / `offset`;
`generator.layers` lists the GenBlocks (bn_0..3, conv_0..3) with the SelfAttn inserted before the block at
`attention_layer_position`; BNs keep statistics per truncation value (`running_means`, `running_vars`: n × C);
the last conv (`conv_to_rgb`) has ch outputs of which the image is the first three. Torch's spectral-norm hooks
(weight_orig, weight_u, weight_v) throughout. Our DeepGenerator is the same network with [embed, z] and channels
first, so the converter permutes those rows and columns (and the SN vectors with them): σ = uᵀ W v is unchanged.
"""

from __future__ import annotations

import re

import torch

from gancli.config import TrainConfig
from gancli.errors import CheckpointError
from gancli.train.imports import ImportedWeights
from gancli.train.state_maps import gather
from recipes.biggan_deep_nets import DEEP_G_PLANS

StateDict = dict[str, torch.Tensor]
WHAT = "a pytorch-pretrained-biggan BigGAN-deep generator (biggan-deep-128/256/512 pytorch_model.bin)"
RESOLUTIONS = {2 * len(plan): resolution for resolution, plan in DEEP_G_PLANS.items()}  # GenBlocks -> resolution
NAMES = [  # our names -> the package's (after blocks.j -> generator.layers.j: both lists hold attention in place)
    (r"^shared\.weight$", "embeddings.weight"), (r"^dense\.", "generator.gen_z."),
    (r"^to_rgb\.", "generator.conv_to_rgb."), (r"^out_bn\.", "generator.bn."),
    (r"^blocks\.(\d+)\.", r"generator.layers.\1."), (r"\.bn(\d)\.gain\.", r".bn\1.scale."),
    (r"\.bn(\d)\.bias\.", r".bn\1.offset."), (r"\.bn(\d)\.norm\.", r".bn\1."),
    (r"\.(bn|conv)(\d)\.", lambda m: f".{m.group(1)}_{int(m.group(2)) - 1}."),
    (r"\.table\.means$", ".running_means"), (r"\.table\.vars$", ".running_vars"),
    (r"\.(theta|phi|g)\.", r".snconv1x1_\1."), (r"\.o\.", ".snconv1x1_o_conv."),
]


def is_tfhub_biggan_deep(state: StateDict) -> bool:
    return "embeddings.weight" in state and "generator.gen_z.weight_orig" in state


def rename(key: str) -> str:
    for pattern, replacement in NAMES:
        key = re.sub(pattern, replacement, key)
    return key


def read_shapes(state: StateDict, cfg: TrainConfig) -> None:
    """Set cfg's resolution, ch, classes, dims, attention, statistics table and last-conv width from the shapes."""
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"generator\.layers\.(\d+)\.conv_0\.weight_orig$",
                                                                          k))})
    attention = sorted({int(m.group(1)) for k in state if (m := re.match(r"generator\.layers\.(\d+)\.gamma$", k))})
    if len(blocks) not in RESOLUTIONS or len(attention) > 1 or any(p % 2 for p in attention):
        raise CheckpointError(f"This file is not {WHAT}: it has {len(blocks)} GenBlocks and attention before "
                              f"{attention or 'none'} (gancli's BigGAN-deep: 8, 10, 12 or 14 blocks, attention after a "
                              f"resolution's pair).")
    stats = state.get("generator.bn.running_means")
    if stats is None or "generator.conv_to_rgb.weight_orig" not in state:
        raise CheckpointError(f"This file is not {WHAT}: it lacks generator.bn.running_means or "
                              f"generator.conv_to_rgb.weight_orig.")
    cfg.arch, cfg.resolution = "deep", RESOLUTIONS[len(blocks)]
    cfg.shared_dim, cfg.num_classes = state["embeddings.weight"].shape
    cfg.z_dim = state["generator.gen_z.weight_orig"].shape[1] - cfg.shared_dim
    cfg.ch = state["generator.gen_z.weight_orig"].shape[0] // (16 * DEEP_G_PLANS[cfg.resolution][0][0])
    cfg.g_attention = 4 * 2 ** (attention[0] // 2) if attention else 0
    cfg.d_attention = 64 if cfg.resolution >= 128 else 0  # no critic is published; BigGAN-deep's D attends at 64
    cfg.truncation_stats, cfg.rgb_channels = stats.shape[0], state["generator.conv_to_rgb.weight_orig"].shape[0]
    cfg.gen_norm, cfg.hier, cfg.g_spectral_norm, cfg.standing_passes = "cbn", True, True, 0


def ours_in_its_names(state: StateDict, z_dim: int, c0: int) -> StateDict:
    """The package's tensors laid out as ours, under its names: [z, e] columns → [e, z]; gen_z's (4, 4, C) rows →
    (C, 4, 4); the embedding transposed; running statistics (for training mode) from the truncation-1 row."""
    out = dict(state)
    for key in [k for k in state if k.endswith(".weight_orig") and re.search(r"gen_z|\.scale\.|\.offset\.", k)]:
        stem = key[: -len("weight_orig")]
        columns = torch.cat([torch.arange(z_dim, state[key].shape[1]), torch.arange(z_dim)])
        out[key] = state[key][:, columns]
        if stem + "weight_v" in state:
            out[stem + "weight_v"] = state[stem + "weight_v"][columns]
    rows = torch.arange(16 * c0).view(16, c0).t().reshape(-1)  # ours c·16 + s <- theirs s·C + c
    for leaf in ("weight_orig", "weight_u", "bias"):
        key = "generator.gen_z." + leaf
        if key in out:
            out[key] = out[key][rows]
    out["embeddings.weight"] = state["embeddings.weight"].t()
    for key in [k for k in state if k.endswith((".running_means", ".running_vars"))]:
        out[key[: -len("s")]] = state[key][-1]
    for key in [k for k in state if k.endswith(".gamma")]:
        out[key] = state[key].reshape(())
    return out


def convert(recipe_cls, G_state: StateDict, D_state: StateDict | None, cfg: TrainConfig) -> ImportedWeights:
    """A pytorch-pretrained-biggan state dict -> a biggan run (arch deep, its statistics table) and G's state."""
    if D_state is not None:
        raise CheckpointError("TF-Hub's BigGAN-deep modules (and pytorch-pretrained-biggan) publish no critic; drop "
                              "--critic.")
    read_shapes(G_state, cfg)
    G = recipe_cls(cfg).build_plain_generator()
    return ImportedWeights(cfg, gather(G.state_dict(), ours_in_its_names(G_state, cfg.z_dim, G.c0), rename, WHAT,
                                       _spelled))


def _spelled(key: str) -> str:
    """A key of ours_in_its_names as the package spells it: a BN's running statistic comes from its table."""
    return re.sub(r"\.running_(mean|var)$", r".running_\1s", key)
