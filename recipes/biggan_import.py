"""BigGAN-PyTorch's checkpoints (ajbrock/BigGAN-PyTorch BigGAN.py, layers.py) as biggan runs: G.pth / G_ema.pth, D.pth.

Their layers: SN layers hold `weight`, `u0` (and `sv0`, a log); in eval mode σ comes from one power-iteration
step from u0 that updates nothing, which `power_step` turns into the u, v of torch's spectral norm (the same
σ). ccbn keeps its BN statistics in `stored_mean` / `stored_var`; G.blocks[i] is [GBlock] or [GBlock,
Attention]; G.output_layer is (bn, ReLU, conv). Widths, resolution, classes, hierarchy, attention position and
shared dim are read from the shapes; BN_eps / SN_eps are the config's `bn_eps` / `sn_eps`.
"""

from __future__ import annotations

import re

import torch

from gancli.config import TrainConfig
from gancli.errors import CheckpointError
from gancli.nn import apply_config_norm
from gancli.nn.attention import SelfAttention
from gancli.train.imports import ImportedWeights
from gancli.train.state_maps import gather, power_step, substitute
from recipes.biggan_deep_nets import DEEP_D_PLANS, DEEP_G_PLANS, DeepCritic
from recipes.biggan_nets import D_PLANS, G_PLANS, Critic

StateDict = dict[str, torch.Tensor]
RESOLUTIONS = {len(plan): resolution for resolution, plan in G_PLANS.items()}  # G blocks -> resolution
# BigGANdeep.py's G blocks (two per stage) -> resolution (BigGAN-PyTorch defines 32-256; 512 is TF-Hub's)
DEEP_RESOLUTIONS = {2 * len(plan): resolution for resolution, plan in DEEP_G_PLANS.items() if resolution <= 256}
G_FILE, D_FILE = "a BigGAN-PyTorch generator (G.pth, G_ema.pth)", "a BigGAN-PyTorch critic (D.pth) of this generator"


def is_biggan_pytorch(state: StateDict) -> bool:
    """A BigGAN-PyTorch G or D state dict: nested `blocks.i.0.conv1` ResBlocks and its SN vectors or BN buffers."""
    return "blocks.0.0.conv1.weight" in state and any(
        key.endswith((".u0", ".stored_mean")) for key in state)


def is_critic(state: StateDict) -> bool:
    return "embed.weight" in state and "output_layer.2.weight" not in state


def with_sn_vectors(state: StateDict, eps: float) -> StateDict:
    """The state with each SN layer's (weight, u0, sv0) in torch's hook layout (weight_orig, weight_u, weight_v)."""
    out = dict(state)
    for key in [k for k in state if k.endswith(".u0")]:
        prefix = key[: -len("u0")]
        weight = state.get(prefix + "weight")
        if weight is None or state[key].numel() != weight.shape[0]:
            raise CheckpointError(f"This file is not a BigGAN-PyTorch checkpoint: {key} has no weight of "
                                  f"{state[key].numel()} rows beside it.")
        u, v = power_step(weight.float(), state[key].float(), eps)
        del out[prefix + "weight"], out[key]
        out.pop(prefix + "sv0", None)  # a log of σ; the TF-Hub ports have none
        out.update({prefix + "weight_orig": weight, prefix + "weight_u": u, prefix + "weight_v": v})
    return out


def read_generator_shapes(state: StateDict, cfg: TrainConfig) -> None:
    """Set cfg's arch, resolution, ch, classes, shared dim, hierarchy, z_dim, attention and G's SN from G's shapes."""
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.0\.conv1\.weight$", k))})
    cfg.arch = "deep" if "blocks.0.0.conv4.weight" in state else "default"  # BigGANdeep.py's bottleneck blocks
    resolutions = DEEP_RESOLUTIONS if cfg.arch == "deep" else RESOLUTIONS
    if blocks != list(range(len(blocks))) or len(blocks) not in resolutions or "linear.weight" not in state:
        raise CheckpointError(f"This file is not {G_FILE}: it has {len(blocks)} G blocks and "
                              f"{'a' if 'linear.weight' in state else 'no'} first linear layer.")
    cfg.resolution = resolutions[len(blocks)]
    linear, gain = state["linear.weight"], state.get("blocks.0.0.bn1.gain.weight")
    cfg.ch = linear.shape[0] // (16 * G_PLANS[cfg.resolution][0][0])
    if cfg.arch == "deep" and "shared.weight" in state:  # z is not split: [shared(y), z] everywhere
        cfg.num_classes, cfg.shared_dim = state["shared.weight"].shape
        cfg.hier, cfg.z_dim = True, linear.shape[1] - cfg.shared_dim
    elif "shared.weight" in state:
        cfg.num_classes, cfg.shared_dim = state["shared.weight"].shape
        cfg.hier = gain is not None and gain.shape[1] > cfg.shared_dim
        cfg.z_dim = linear.shape[1] * (len(blocks) + 1 if cfg.hier else 1)
    elif gain is not None and cfg.arch == "default":  # per-class ccbn tables (nn.Embedding): classes × channels
        cfg.num_classes, cfg.shared_dim, cfg.hier, cfg.z_dim = gain.shape[0], 0, False, linear.shape[1]
    else:
        raise CheckpointError(f"This file is not {G_FILE}: it has neither shared.weight nor blocks.0.0.bn1.gain.weight "
                              f"(the class conditioning).")
    attention = [i for i in blocks if f"blocks.{i}.1.gamma" in state]  # after block i (BigGANdeep.py: 2 per stage)
    if len(attention) > 1:
        raise CheckpointError(f"This generator has {len(attention)} attention blocks; gancli's BigGAN has one.")
    cfg.g_attention = 8 * 2 ** (attention[0] // (2 if cfg.arch == "deep" else 1)) if attention else 0
    cfg.d_attention = cfg.g_attention  # as BigGAN-PyTorch's launch scripts place them; D's own file says otherwise
    cfg.g_spectral_norm = "linear.u0" in state
    cfg.gen_norm, cfg.standing_passes, cfg.norm = "cbn", 0, "sn"  # its own BN statistics; its critic's SN


def read_critic_attention(state: StateDict, cfg: TrainConfig) -> None:
    """Set cfg.d_attention from where D's non-local block sits (after its block i, or BigGANdeep.py's stage i: the
    resolution that block outputs)."""
    slot = 2 if cfg.arch == "deep" else 1
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(rf"blocks\.(\d+)\.{slot}\.gamma$", k))})
    if len(blocks) > 1:
        raise CheckpointError(f"This critic has {len(blocks)} attention blocks; gancli's BigGAN has one.")
    plan = (DEEP_D_PLANS if cfg.arch == "deep" else D_PLANS)[cfg.resolution]
    if blocks and blocks[0] >= len(plan):
        raise CheckpointError(f"This critic's attention follows block {blocks[0]}, but a {cfg.resolution} px critic "
                              f"has {len(plan)} blocks.")
    cfg.d_attention = cfg.resolution // 2 ** sum(down for *_, down in plan[:blocks[0] + 1]) if blocks else 0


def spelled(key: str) -> str:
    """A key of the hook layout (with_sn_vectors) as BigGAN-PyTorch's files spell it."""
    return re.sub(r"\.weight_(u|v)$", ".u0", re.sub(r"\.weight_orig$", ".weight", key))


def module_map(blocks: torch.nn.ModuleList, per_stage: int = 1) -> dict[str, str]:
    """Our `blocks.j` -> BigGAN-PyTorch's `blocks.i.k`: stage i's k-th ResBlock (k < per_stage: 1 in BigGAN.py, 2 in
    BigGANdeep.py), or `blocks.i.{per_stage}`, the attention after the stage."""
    names, count = {}, 0
    for j, block in enumerate(blocks):
        if isinstance(block, SelfAttention):
            names[f"blocks.{j}."] = f"blocks.{(count - 1) // per_stage}.{per_stage}."
        else:
            names[f"blocks.{j}."] = f"blocks.{count // per_stage}.{count % per_stage}."
            count += 1
    return names


NAMES = [  # our names -> theirs (G and D), after the block prefix
    (r"dense\.", "linear."), (r"to_rgb\.", "output_layer.2."), (r"out_bn\.weight", "output_layer.0.gain"),
    (r"out_bn\.running_(mean|var)", r"output_layer.0.stored_\1"), (r"out_bn\.", "output_layer.0."),
    (r"(blocks\.\d+\.\d+\.bn\d)\.norm\.running_(mean|var)", r"\1.stored_\2"), (r"(bn\d)\.norm\.", r"\1."),
    (r"\.shortcut\.", ".conv_sc."), (r"^stem\.", "input_conv."),
]


def renamer(blocks: torch.nn.ModuleList, per_stage: int = 1):
    prefixes = module_map(blocks, per_stage)

    def rename(key: str) -> str:
        head = re.match(r"blocks\.\d+\.", key)
        if head:
            key = prefixes[head.group(0)] + key[head.end():]
        return substitute(key, NAMES)

    return rename


def convert(recipe_cls, G_state: StateDict, D_state: StateDict | None, cfg: TrainConfig) -> ImportedWeights:
    """BigGAN-PyTorch G (and D) state dicts -> a biggan run's config and G (and SN'd D) state dicts."""
    if is_critic(G_state):
        raise CheckpointError("This is a BigGAN-PyTorch critic (D.pth), not a generator; give it with --critic.")
    read_generator_shapes(G_state, cfg)
    models = recipe_cls(cfg).build_models()
    G = gather(models["G"].state_dict(), with_sn_vectors(G_state, cfg.sn_eps), renamer(models["G"].blocks), G_FILE,
               spelled)
    if D_state is None:
        return ImportedWeights(cfg, G)
    read_critic_attention(D_state, cfg)
    deep = cfg.arch == "deep"  # BigGANdeep.py's D lists a stage's two blocks (and its attention) together, its G not
    D_model = apply_config_norm((DeepCritic if deep else Critic)(cfg.resolution, cfg.ch, cfg.num_classes,
                                                                 cfg.d_attention), cfg)
    D = gather(D_model.state_dict(), with_sn_vectors(D_state, cfg.sn_eps), renamer(D_model.blocks, 2 if deep else 1),
               D_FILE, spelled)
    return ImportedWeights(cfg, G, D)
