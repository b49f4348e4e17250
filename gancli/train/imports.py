"""Published checkpoints: the contract through which a recipe reads another project's weights.

A recipe lists the formats it reads in `Recipe.import_formats` (name → ImportFormat). An ImportFormat
knows how to recognise a state dict of its kind (`detect`) and how to turn it into this project's
state dicts and config (`convert`). Reading the file (weights_only), naming another format when the
file is of one, and writing the run folder are done once, by the API, for every format; the helpers
below are what the converters share.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from gancli.config import TrainConfig
from gancli.errors import CheckpointError

StateDict = dict[str, torch.Tensor]
# Containers that training code wraps a state dict in, the preferred one first (BasicSR / Real-ESRGAN keep the EMA
# generator under 'params_ema' next to 'params'; their own inference prefers it)
CONTAINERS = ("params_ema", "params", "model_state_dict", "state_dict", "model", "net", "generator")


@dataclass
class ImportedWeights:
    """What a converter returns: the run's config (shape-derived fields set) and our networks' state dicts."""

    cfg: TrainConfig
    G: StateDict
    D: StateDict | None = None


@dataclass(frozen=True)
class ImportFormat:
    """One published checkpoint format (e.g. BigGAN-PyTorch's G.pth) that a recipe can import."""

    name: str  # e.g. "biggan-pytorch"
    summary: str  # one line: the reference network, read as "a <summary> state dict"
    files: str  # the files it takes, e.g. "G.pth or G_ema.pth; --critic D.pth"
    published: str  # where its authors publish them
    detect: Callable[[StateDict], bool]  # True when a (flattened) state dict is of this format
    # (generator state, critic state or None, the config from recipe defaults + preset + --set) → our weights;
    # raises gancli.errors.CheckpointError with one sentence on missing/unexpected keys or wrong shapes
    convert: Callable[[StateDict, StateDict | None, TrainConfig], ImportedWeights]
    # the recipe preset that trains as the reference did (its loss, critic normalization, ...): the imported run's
    # config starts from it unless --preset names another
    preset: str = ""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | Path, role: str = "checkpoint") -> StateDict:
    """The tensors of a published .pth/.ckpt/.pt file, loaded with weights_only=True and unwrapped: containers
    ({'params_ema': ...}, {'model_state_dict': ...}, ...) opened, DataParallel's 'module.' prefix dropped."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"The {role} file '{path}' does not exist.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(f"The {role} file '{path}' is a pickle that would run code when loaded (it names "
                                  f"{_unsafe_global(exc)}); it was refused, not loaded.") from None
        raise CheckpointError(f"The {role} file '{path}' is truncated or corrupt ({_reason(exc)}).") from None
    except Exception as exc:  # noqa: BLE001 - whatever the unpickler trips on, the file is unreadable
        raise CheckpointError(f"The {role} file '{path}' is truncated or corrupt ({_reason(exc)}).") from None
    return unwrap(obj, f"the {role} file '{path}'")


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _unsafe_global(exc: Exception) -> str:
    found = re.search(r"(?:GLOBAL|Unsupported global:?)\s+(?:GLOBAL\s+)?([\w.]+)", str(exc))
    return found.group(1) if found else "a Python object"


def unwrap(obj: Any, where: str) -> StateDict:
    """A flat name → tensor dict from a loaded checkpoint object (see read_state_dict)."""
    for _ in range(3):  # e.g. {'state_dict': {'params_ema': ...}}
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in CONTAINERS if isinstance(obj.get(k), Mapping) and obj[k]), None)
        if inner is None or all(torch.is_tensor(v) for v in obj.values()):
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{where[0].upper()}{where[1:]} holds no state dict (it holds a "
                              f"{type(obj).__name__}).")
    tensors = {str(k): v for k, v in obj.items() if torch.is_tensor(v)}
    if not tensors:
        raise CheckpointError(f"{where[0].upper()}{where[1:]} holds no tensors (its keys: "
                              f"{', '.join(map(str, list(obj)[:4]))}).")
    if all(k.startswith("module.") for k in tensors):  # saved from DataParallel / DistributedDataParallel
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def _first(names: Iterable[str], n: int = 3) -> str:
    names = list(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def check_state_dict(got: StateDict, expected: Mapping[str, tuple[int, ...] | torch.Size], what: str) -> None:
    """One sentence naming the first few missing or unexpected keys, or the first wrong shapes, of a state dict."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if missing or unexpected:
        parts = ([f"missing {_first(missing)}"] if missing else []) + (
            [f"unexpected {_first(unexpected)}"] if unexpected else [])
        raise CheckpointError(f"{what[0].upper()}{what[1:]} does not have the keys it should: {'; '.join(parts)}.")
    wrong = [f"{k} is {tuple(got[k].shape)}, not {tuple(expected[k])}" for k in expected
             if tuple(got[k].shape) != tuple(expected[k])]
    if wrong:
        raise CheckpointError(f"{what[0].upper()}{what[1:]} has tensors of the wrong shape: {_first(wrong, 2)}.")


def identify(state: StateDict, formats: Mapping[str, ImportFormat]) -> ImportFormat | None:
    """The first format whose detect() recognises the state dict (a detector that fails counts as no)."""
    for fmt in formats.values():
        try:
            if fmt.detect(state):
                return fmt
        except Exception:  # noqa: BLE001 - a detector reading a foreign layout may trip on it: that is a no
            continue
    return None


Rule = tuple[str, "str | Callable[[re.Match], str]"]  # (regex on one of our keys, its replacement)


def reference_name(key: str, rules: Iterable[Rule]) -> str:
    """The reference's name of one of our state-dict keys: the first rule whose regex matches rewrites it."""
    for pattern, replacement in rules:
        if re.search(pattern, key):
            return re.sub(pattern, replacement, key, count=1)
    return key


def take_state(got: StateDict, ours: Mapping[str, torch.Tensor], rules: Iterable[Rule], what: str,
               ignore: str | None = None) -> StateDict:
    """Our state dict (keys and shapes of `ours`) filled from a reference one: each key renamed by `rules`, the
    reference's keys matching `ignore` (state our network has no use for) left out, the rest checked to fit."""
    rules = list(rules)
    names = {k: reference_name(k, rules) for k in ours}
    relevant = {k: v for k, v in got.items() if not (ignore and re.search(ignore, k))}
    check_state_dict(relevant, {names[k]: v.shape for k, v in ours.items()}, what)
    return {k: relevant[names[k]].to(v.dtype).clone() for k, v in ours.items()}
