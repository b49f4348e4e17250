"""yunjey/stargan's published CelebA models (N-G.ckpt, N-D.ckpt) as `stargan` runs.

Its generator's instance norms track running statistics, but its test() never switches G to eval mode, so they
normalize by each image's own statistics, as ours always do: the running statistics are left out. The critic is
StarGAN's own (critic = stargan: 4×4 stride-2 convs, zero padding); the image size is read from its class head.
"""

from __future__ import annotations

import dataclasses
import re

from gancli.errors import CheckpointError
from gancli.train.imports import ImportedWeights, ImportFormat, StateDict, take_state
from recipes.stargan_nets import StarGANCritic, StarGANGenerator

RELEASED_ATTRS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]  # download.sh's pretrained models
CELEBA_CROP = 178  # StarGAN's CelebA transform: CenterCrop(178), Resize(image_size)
G_RULES = [(r"^net\.(\d+)\.body\.", r"main.\1.main."), (r"^net\.", "main.")]
D_RULES = [(r"^features\.", "main."), (r"^real_fake\.", "conv1."), (r"^attributes\.", "conv2.")]
RUNNING_STATS = r"\.(running_mean|running_var|num_batches_tracked)$"


def _weight(state: StateDict, key: str, what: str):
    if key not in state or state[key].dim() != 4:
        raise CheckpointError(f"The {what} has no 4-D '{key}', so its widths cannot be read.")
    return state[key]


def _attrs(cfg, n_attrs: int) -> list[str]:
    attrs = list(cfg.attrs) or (RELEASED_ATTRS if n_attrs == len(RELEASED_ATTRS) else [])
    if len(attrs) != n_attrs:
        given = f"--attrs names {len(attrs)}" if cfg.attrs else "name them with --attrs A,B,..."
        raise CheckpointError(f"The StarGAN generator takes {n_attrs} attributes; {given}.")
    return attrs


def _critic(critic: StateDict, n_attrs: int, what: str) -> dict:
    """The critic's config fields, read from its shapes."""
    first = _weight(critic, "main.0.weight", what)
    if tuple(first.shape[-2:]) != (4, 4):
        raise CheckpointError(f"The {what}'s convs are {first.shape[-1]}×{first.shape[-1]}, not StarGAN's 4×4.")
    layers = len({m[1] for k in critic if (m := re.match(r"^main\.(\d+)\.weight$", k))})
    head = _weight(critic, "conv2.weight", what)
    if head.shape[0] != n_attrs:
        raise CheckpointError(f"The critic judges {head.shape[0]} attributes, the generator takes {n_attrs}: they are "
                              f"not one model.")
    return {"d_width": first.shape[0], "d_layers": layers, "resolution": head.shape[-1] * 2**layers,
            "critic": "stargan"}


def convert_stargan(state: StateDict, critic: StateDict | None, cfg) -> ImportedWeights:
    what = "StarGAN generator"
    first = _weight(state, "main.0.weight", what)
    n_attrs = first.shape[1] - 3
    blocks = len({m[1] for k in state if (m := re.match(r"^main\.(\d+)\.main\.0\.weight$", k))})
    fields = {"attrs": _attrs(cfg, n_attrs), "g_width": first.shape[0], "g_blocks": blocks, "crop": CELEBA_CROP}
    if critic is not None:
        fields.update(_critic(critic, n_attrs, "StarGAN critic"))
    cfg = dataclasses.replace(cfg, **fields)
    G = take_state(state, StarGANGenerator(n_attrs, cfg.g_width, blocks).state_dict(), G_RULES, what, RUNNING_STATS)
    D = None
    if critic is not None:
        ours = StarGANCritic(n_attrs, cfg.resolution, cfg.d_width, cfg.d_layers, kernel=4).state_dict()
        D = take_state(critic, ours, D_RULES, "StarGAN critic")
    return ImportedWeights(cfg, G, D)


STARGAN_FORMATS = {
    "stargan": ImportFormat(
        name="stargan", summary="yunjey/stargan generator",
        files="N-G.ckpt; --critic N-D.ckpt (attributes: Black_Hair, Blond_Hair, Brown_Hair, Male, Young unless "
              "--attrs names others)",
        published="yunjey/stargan download.sh: pretrained-celeba-128x128, pretrained-celeba-256x256 "
                  "(200000-G.ckpt, 200000-D.ckpt)",
        detect=lambda s: "main.0.weight" in s and s["main.0.weight"].dim() == 4 and s["main.0.weight"].shape[-1] == 7
        and any(re.match(r"^main\.\d+\.main\.0\.weight$", k) for k in s),
        convert=convert_stargan, preset="original"),
}
