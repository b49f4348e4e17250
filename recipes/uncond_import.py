"""mimicry's SNGAN / SSGAN checkpoints (kwotsin/mimicry: torch_mimicry/nets/sngan, nets/ssgan, modules/resblocks.py)
as uncond runs (arch resnet).

Its files (`netG_<step>.pth`, `netD_<step>.pth`) hold the state dict under `model_state_dict`. G: `l1` (dense to
bottom²·ngf), `block2..` GBlocks (b1-ReLU-bilinear up-c1, b2-ReLU-c2, shortcut bilinear up-c_sc), then BN and a 3×3
conv to RGB; D (torch's spectral-norm hooks): `block1` DBlockOptimized, DBlocks whose first conv keeps the width,
ReLU, global sum pooling, `l<n>` dense → 1 (SSGAN adds `l_y`, its rotation head). Its 32 px networks are SAN
Table 5's ResNet CIFAR (ngf 256, ndf 128) and its 48 px ones Miyato et al.'s STL ResNet with the last critic block
(ngf 512, ndf 1024): gancli's resnet with g_upsample bilinear, d_block mimicry, d_pool sum. Its 64 and 128 px networks
(a 4×4 bottom with 1024·w channels, five and six blocks) are no gancli network.
"""

from __future__ import annotations

import re

import torch

from gancli.config import TrainConfig
from gancli.errors import CheckpointError
from gancli.nn import apply_config_norm
from gancli.train.imports import ImportedWeights
from gancli.train.state_maps import gather

StateDict = dict[str, torch.Tensor]
G_FILE = "a mimicry SNGAN/SSGAN generator (netG_*.pth)"
D_FILE = "a mimicry SNGAN/SSGAN critic (netD_*.pth) of this generator"
BOTTOMS = {16: (32, 256), 36: (48, 512)}  # l1 outputs per channel (bottom²) -> resolution, ngf at width 1


def is_mimicry(state: StateDict) -> bool:
    """A mimicry ResNet G (l1 + block2.. GBlocks with b1/c1) or D (block1.c_sc + SN dense l<n>)."""
    generator = "l1.weight" in state and "block2.b1.running_mean" in state
    critic = "block1.c_sc.weight_orig" in state and any(re.fullmatch(r"l\d+\.weight_orig", k) for k in state)
    return generator or critic


def _blocks(state: StateDict) -> list[int]:
    return sorted({int(m.group(1)) for k in state if (m := re.match(r"block(\d+)\.c1\.", k))})


def read_shapes(state: StateDict, cfg: TrainConfig) -> None:
    """Set cfg's resolution, width, z_dim and mimicry's block details from G's shapes."""
    if "l1.weight" not in state:
        raise CheckpointError("This is a mimicry critic (netD), not a generator; give it with --critic.")
    blocks, c0 = _blocks(state), state["block2.c1.weight"].shape[1]
    bottom = state["l1.weight"].shape[0] // c0
    if len(blocks) != 3 or bottom not in BOTTOMS:
        raise CheckpointError(f"This is a mimicry generator with {len(blocks)} blocks from a {int(bottom ** 0.5)}² "
                              f"bottom (its 64 or 128 px network); gancli's resnet has mimicry's 32 and 48 px ones.")
    cfg.resolution, ngf = BOTTOMS[bottom]
    cfg.arch, cfg.width, cfg.z_dim = "resnet", c0 / ngf, state["l1.weight"].shape[1]
    cfg.gen_norm, cfg.g_upsample, cfg.d_block, cfg.d_pool = "bn", "bilinear", "mimicry", "sum"
    cfg.full_stl_critic, cfg.norm = cfg.resolution == 48, "sn"


def renamer(n_blocks: int, generator: bool, dense: str = "l1"):
    """Our key -> mimicry's: blocks.i -> block{i+2} (G) or block{i+1} (D); G's last BN and conv numbered on; the
    dense layer `dense` (D's is l5 at 32 and 48 px)."""
    first = 2 if generator else 1
    last = first + n_blocks
    rules = [(r"^blocks\.(\d+)\.", lambda m: f"block{int(m.group(1)) + first}."), (r"\.norm(\d)\.layer\.", r".b\1."),
             (r"\.conv(\d)\.", r".c\1."), (r"\.shortcut\.", ".c_sc."), (r"^dense\.", f"{dense}."),
             (r"^norm\.layer\.", f"b{last}."), (r"^to_rgb\.", f"c{last}.")]

    def rename(key: str) -> str:
        for pattern, replacement in rules:
            key = re.sub(pattern, replacement, key)
        return key

    return rename


def convert(recipe_cls, G_state: StateDict, D_state: StateDict | None, cfg: TrainConfig) -> ImportedWeights:
    """mimicry netG (and netD) state dicts -> an uncond run's config and G (and SN'd D) state dicts; SSGAN's rotation
    head (l_y) is left out: gancli's critic has only the real/fake output."""
    read_shapes(G_state, cfg)
    models = recipe_cls(cfg).build_models()
    G = gather(models["G"].state_dict(), G_state, renamer(len(models["G"].blocks), True), G_FILE)
    if D_state is None:
        return ImportedWeights(cfg, G)
    D_state = {k: v for k, v in D_state.items() if not k.startswith("l_y.")}
    dense = next((m.group(1) for k in D_state if (m := re.fullmatch(r"(l\d+)\.weight_orig", k))), "l5")
    D_model = apply_config_norm(models["D"], cfg)
    return ImportedWeights(cfg, G, gather(D_model.state_dict(), D_state, renamer(len(D_model.blocks), False, dense),
                                          D_FILE))
