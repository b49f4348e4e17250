"""Published super-resolution generators as `sr` runs: xinntao/ESRGAN's and BasicSR's (Real-ESRGAN's) RRDBNet,
and the SAN authors' g_srgan (kligvasser/SANGAN). Their code works on [0, 1] images, so the imported networks do
too (io_range = unit); widths, block counts and scale are read from the tensors' shapes."""

from __future__ import annotations

import dataclasses
import re

from gancli.errors import CheckpointError
from gancli.train.imports import ImportedWeights, ImportFormat, StateDict, take_state
from recipes.sr_nets import RRDBNet, SRResNetGenerator

ESRGAN_RULES = [  # our RRDBNet keys → xinntao/ESRGAN RRDBNet_arch.py's
    (r"^head\.", "conv_first."),
    (r"^blocks\.(\d+)\.dense\.(\d)\.convs\.(\d)\.",
     lambda m: f"RRDB_trunk.{m[1]}.RDB{int(m[2]) + 1}.conv{int(m[3]) + 1}."),
    (r"^blocks\.(\d+)\.dense\.(\d)\.fuse\.", lambda m: f"RRDB_trunk.{m[1]}.RDB{int(m[2]) + 1}.conv5."),
    (r"^trunk\.", "trunk_conv."), (r"^up_convs\.0\.", "upconv1."), (r"^up_convs\.1\.", "upconv2."),
    (r"^tail\.", "HRconv."), (r"^to_rgb\.", "conv_last."),
]
BASICSR_RULES = [
    (r"^head\.", "conv_first."),
    (r"^blocks\.(\d+)\.dense\.(\d)\.convs\.(\d)\.", lambda m: f"body.{m[1]}.rdb{int(m[2]) + 1}.conv{int(m[3]) + 1}."),
    (r"^blocks\.(\d+)\.dense\.(\d)\.fuse\.", lambda m: f"body.{m[1]}.rdb{int(m[2]) + 1}.conv5."),
    (r"^trunk\.", "conv_body."), (r"^up_convs\.0\.", "conv_up1."), (r"^up_convs\.1\.", "conv_up2."),
    (r"^tail\.", "conv_hr."), (r"^to_rgb\.", "conv_last."),
]
SANGAN_RULES = [(r"^head\.", "image_to_features."), (r"^blocks\.", "features."), (r"^upsample\.", "usample."),
                (r"^tail\.", "hrconv."), (r"^to_rgb\.", "features_to_image.")]


def old_esrgan_rules(n_blocks: int) -> list:
    """ESRGAN's first release layout (`model.N`, converted by its transer_RRDB_models.py)."""
    return [(r"^head\.", "model.0."),
            (r"^blocks\.(\d+)\.dense\.(\d)\.convs\.(\d)\.(\w+)$",
             lambda m: f"model.1.sub.{m[1]}.RDB{int(m[2]) + 1}.conv{int(m[3]) + 1}.0.{m[4]}"),
            (r"^blocks\.(\d+)\.dense\.(\d)\.fuse\.(\w+)$",
             lambda m: f"model.1.sub.{m[1]}.RDB{int(m[2]) + 1}.conv5.0.{m[3]}"),
            (r"^trunk\.", f"model.1.sub.{n_blocks}."), (r"^up_convs\.0\.", "model.3."), (r"^up_convs\.1\.", "model.6."),
            (r"^tail\.", "model.8."), (r"^to_rgb\.", "model.10.")]


def _count(state: StateDict, pattern: str) -> int:
    """How many distinct indices N the keys matching pattern (one group: N) hold."""
    return len({m[1] for k in state if (m := re.match(pattern, k))})


def _shape(state: StateDict, key: str, what: str) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"The {what} has no '{key}', so its widths cannot be read.")
    return tuple(state[key].shape)


def _rrdb(state: StateDict, cfg, what: str, first: str, growth_key: str, n_blocks: int, rules, ignore=None):
    """An RRDBNet import: width and input channels from `first`, growth from `growth_key`."""
    features, in_channels, *_ = _shape(state, first, what)
    unshuffle = {3: 1, 12: 2}.get(in_channels)
    if unshuffle is None:
        raise CheckpointError(f"The {what} takes {in_channels} input channels; the sr recipe runs RGB networks at ×4 "
                              f"(3) and BasicSR's ×2 (12, pixel-unshuffled), not this one.")
    if n_blocks == 0:
        raise CheckpointError(f"The {what} has no RRDB blocks.")
    growth = _shape(state, growth_key, what)[0]
    cfg = dataclasses.replace(cfg, arch="rrdb", scale=4 // unshuffle, unshuffle=unshuffle, features=features,
                              n_blocks=n_blocks, growth=growth, io_range="unit")
    ours = RRDBNet(cfg.scale, features, n_blocks, growth, unshuffle, unit=True).state_dict()
    return ImportedWeights(cfg, take_state(state, ours, rules, what, ignore))


def convert_esrgan(state: StateDict, critic: StateDict | None, cfg) -> ImportedWeights:
    what = "ESRGAN RRDBNet state dict"
    if "model.0.weight" in state:  # the first release's layout
        n_blocks = _count(state, r"^model\.1\.sub\.(\d+)\.RDB1\.")
        return _rrdb(state, cfg, what, "model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight", n_blocks,
                     old_esrgan_rules(n_blocks))
    return _rrdb(state, cfg, what, "conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight",
                 _count(state, r"^RRDB_trunk\.(\d+)\."), ESRGAN_RULES)


def convert_basicsr(state: StateDict, critic: StateDict | None, cfg) -> ImportedWeights:
    return _rrdb(state, cfg, "BasicSR RRDBNet state dict", "conv_first.weight", "body.0.rdb1.conv1.weight",
                 _count(state, r"^body\.(\d+)\."), BASICSR_RULES)


def convert_sangan(state: StateDict, critic: StateDict | None, cfg) -> ImportedWeights:
    what = "SANGAN g_srgan state dict"
    features, _, kernel, _ = _shape(state, "image_to_features.weight", what)
    stages = _count(state, r"^usample\.(\d+)\.")
    if stages not in (1, 2):
        raise CheckpointError(f"The {what} upsamples ×{2 ** stages}; the sr recipe runs ×2 and ×4.")
    n_blocks = _count(state, r"^features\.(\d+)\.")
    cfg = dataclasses.replace(cfg, arch="sangan", scale=2**stages, features=features, n_blocks=n_blocks,
                              io_range="unit")
    ours = SRResNetGenerator(cfg.scale, features, n_blocks, sangan=True, unit=True).state_dict()
    return ImportedWeights(cfg, take_state(state, ours, SANGAN_RULES, what))


SR_FORMATS = {
    "esrgan": ImportFormat(
        name="esrgan", summary="xinntao/ESRGAN RRDBNet generator",
        files="RRDB_ESRGAN_x4.pth, RRDB_PSNR_x4.pth (RRDBNet_arch.py keys, or the first release's model.N keys)",
        published="xinntao/ESRGAN README: the Google Drive / Baidu links of models/",
        detect=lambda s: "RRDB_trunk.0.RDB1.conv1.weight" in s or "model.1.sub.0.RDB1.conv1.0.weight" in s,
        convert=convert_esrgan, preset="esrgan"),
    "basicsr": ImportFormat(
        name="basicsr", summary="BasicSR / Real-ESRGAN RRDBNet generator",
        files="RealESRGAN_x4plus.pth, RealESRGAN_x2plus.pth, BasicSR's ESRGAN_SRx4_DF2K*.pth (params / params_ema)",
        published="xinntao/Real-ESRGAN GitHub releases (v0.1.0, v0.2.1); XPixelGroup/BasicSR model zoo "
                  "(Google Drive)",
        detect=lambda s: "conv_first.weight" in s and "body.0.rdb1.conv1.weight" in s,
        convert=convert_basicsr, preset="esrgan"),
    "sangan": ImportFormat(
        name="sangan", summary="kligvasser/SANGAN g_srgan generator",
        files="its g_srgan .pt generators (state dicts)",
        published="kligvasser/SANGAN README: pre_trained.zip (Dropbox)",
        detect=lambda s: "image_to_features.weight" in s and "usample.0.conv.weight" in s,
        convert=convert_sangan, preset="san-paper"),
}
