"""Filling our networks' state dicts from another project's, for `gancli import` converters.

A converter names, for each key of our network, the key it comes from in the reference's state dict
(`rename`); `gather` then takes our state dict as the template (its keys and shapes) and reports in one
sentence what is missing, left over or of the wrong shape. Spectral norm is read in torch's hook layout
(`P.weight_orig`, `P.weight_u`, `P.weight_v`) and written in torch's parametrization layout: in eval mode
both divide the weight by σ = uᵀ W v with the stored u and v. A layer spectrally normalized in the reference
but plain in ours gets W / σ folded into its weight.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
import torch.nn.functional as F

from gancli.errors import CheckpointError

StateDict = dict[str, torch.Tensor]

SN_LEAVES = {  # our parametrization's leaves -> torch's spectral-norm hook leaves
    "parametrizations.weight.original": "weight_orig",
    "parametrizations.weight.0._u": "weight_u",
    "parametrizations.weight.0._v": "weight_v",
}
OPTIONAL_LEAVES = ("num_batches_tracked",)  # bookkeeping that some references do not save: ours is kept


def power_step(weight: torch.Tensor, u0: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, v) after one power-iteration step from u0: v = (u0 W)/‖·‖, u = (W v)/‖·‖, so that uᵀ W v = ‖W v‖.

    That is σ of BigGAN-PyTorch's SN layers in eval mode (one step from the stored u0, nothing updated).
    """
    matrix = weight.reshape(weight.shape[0], -1)
    v = F.normalize(u0.reshape(1, -1) @ matrix, dim=1, eps=eps)
    u = F.normalize(v @ matrix.t(), dim=1, eps=eps)
    return u.reshape(-1), v.reshape(-1)


def sigma(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """σ = uᵀ W v, as torch's spectral norm computes it in eval mode."""
    return torch.vdot(u, weight.reshape(weight.shape[0], -1) @ v)


def substitute(key: str, rules: list[tuple[str, str]]) -> str:
    """key with each (regex, replacement) rule applied in turn: a converter's table of renamings."""
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def _split(key: str) -> tuple[str, str]:
    for leaf in SN_LEAVES:
        if key.endswith("." + leaf):
            return key[: -len(leaf) - 1], leaf
    module, _, leaf = key.rpartition(".")
    return module, leaf


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" (and {len(names) - 3} more)" if len(names) > 3 else "")


def gather(template: StateDict, reference: StateDict, rename: Callable[[str], str], what: str,
           spelled: Callable[[str], str] = str) -> StateDict:
    """Our state dict with the template's keys, each read from reference[rename(key)] (see the module docstring).

    `rename` maps one of our keys (plain leaves, e.g. `blocks.0.conv1.weight`) to the reference's key; it may raise
    KeyError for a key that has no source. Raises CheckpointError naming the first few missing or unexpected keys,
    or the first wrong shape, of `what` (e.g. "a BigGAN-PyTorch generator"); `spelled` gives a missing key's name
    as the reference's files spell it (when the reference was brought into the hook layout first).
    """
    out, sources, missing, used = {}, {}, [], set()
    for key, like in template.items():
        module, leaf = _split(key)
        try:
            source = rename(f"{module}.weight" if leaf in SN_LEAVES else key)
        except KeyError:
            missing.append(key)
            continue
        if leaf in SN_LEAVES:
            source = source[: -len("weight")] + SN_LEAVES[leaf]
        sources[key] = source
        if source in reference:
            out[key] = reference[source]
            used.add(source)
        elif leaf == "weight" and source + "_orig" in reference:  # SN in the reference, plain here: fold σ in
            triple = [source + "_orig", source + "_u", source + "_v"]
            if not all(name in reference for name in triple):
                missing.append(next(name for name in triple if name not in reference))
                continue
            weight, u, v = (reference[name] for name in triple)
            out[key] = weight / sigma(weight, u, v)
            used.update(triple)
        elif leaf in OPTIONAL_LEAVES:
            out[key] = like.clone()
        else:
            missing.append(source)
    unexpected = sorted(set(reference) - used)
    if missing or unexpected:
        missing = [name for name in dict.fromkeys(map(spelled, missing)) if name not in reference]
        parts = ([f"it lacks {_few(missing)}"] if missing else []) + (
            [f"it has unexpected {_few(unexpected)}"] if unexpected else [])
        raise CheckpointError(f"This file is not {what}: {'; '.join(parts)}.")
    for key, like in template.items():
        if out[key].shape != like.shape:
            raise CheckpointError(f"This file does not fit {what}: {sources[key]} has shape "
                                  f"{tuple(out[key].shape)}, where {tuple(like.shape)} was expected.")
        out[key] = out[key].to(like.dtype)
    return out
